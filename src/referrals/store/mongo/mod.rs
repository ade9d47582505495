//! Referrers are keyed by e-mail (`_id`), with unique indexes on the upper-cased code and on the
//! user id (sparse: external referrers have none). Referees are keyed by account id, indexed by
//! code and time.
//!
//! A redemption touches two documents without a transaction: the referrer's `redemptions` count
//! is moved first, by one conditional update that holds only while the code is under its
//! `max_redemptions`, and the referee is inserted after; if that insert loses to another
//! redemption of the same account, the count is moved back. A crash between the two leaves the
//! count one too high: a limited code then admits one account fewer, never one more.

use async_trait::async_trait;
use mongodb::{
    Collection,
    bson::{Bson, Document, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

mod records;

use super::{Redeemed, ReferralStore, ReferrerConflict};
use crate::{
    email::Email,
    joint::mongo::feed_document,
    referrals::{
        domain::{AccountId, CodeRules, Referee, ReferralCode, Referrer, RulesChange, Via},
        service::MAX_ATTEMPTS,
    },
    storage::{
        StoreError,
        mongo::{
            AsRead, Carried, Deadline, Gather, Index, IndexKind, Migration, MongoStore, REFEREES,
            REFERRERS, Schema, from_bson_datetime, is_duplicate_key, store_error, to_bson_datetime,
            to_document,
        },
    },
};
use records::*;

/// How often a change of rules reads the referrer again when it changed between the read and
/// the write.
const MAX_RULES_RACES: usize = 8;

/// The referral codes' indexes, and migration 1: the `redemptions` count of referrers stored
/// before it existed.
pub(crate) fn schema() -> Schema {
    Schema {
        indexes: vec![
            Index::new(
                REFERRERS,
                "code_key",
                doc! { "code_key": 1 },
                IndexKind::Unique,
            ),
            Index::new(
                REFERRERS,
                "user_id",
                doc! { "user_id": 1 },
                IndexKind::UniqueSparse,
            ),
            Index::new(
                REFEREES,
                "code_key_redeemed_at",
                doc! { "code_key": 1, "redeemed_at": -1 },
                IndexKind::Plain,
            ),
        ],
        migrations: vec![Migration {
            version: 1,
            name: "count earlier redemptions",
            run: Box::new(|store| Box::pin(store.count_earlier_redemptions())),
        }],
    }
}

fn active_by_default() -> bool {
    true
}

fn count_to_bson(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl MongoStore {
    fn referrers(&self) -> Collection<ReferrerDoc> {
        self.db.collection(REFERRERS)
    }

    fn referees(&self) -> Collection<RefereeDoc> {
        self.db.collection(REFEREES)
    }

    /// Counts the referees stored before referrers carried a `redemptions` count onto their
    /// referrers; a no-op once every referrer has one.
    async fn count_earlier_redemptions(&self) -> Result<(), StoreError> {
        let uncounted: Vec<Document> = self
            .db
            .collection::<Document>(REFERRERS)
            .find(doc! { "redemptions": { "$exists": false } })
            .projection(doc! { "code_key": 1 })
            .all_within(self.timeout)
            .await?;
        for referrer in uncounted {
            let (Some(id), Ok(key)) = (referrer.get("_id"), referrer.get_str("code_key")) else {
                continue;
            };
            let count = self
                .referees()
                .count_documents(doc! { "code_key": key })
                .within(self.timeout)
                .await?;
            self.referrers()
                .update_one(
                    doc! { "_id": id, "redemptions": { "$exists": false } },
                    doc! { "$set": { "redemptions": count_to_bson(count) } },
                )
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }

    /// Moves the code's count by `by`.
    async fn count_redemption(&self, email: &Email, by: i64) -> Result<(), StoreError> {
        self.referrers()
            .update_one(
                doc! { "_id": email.as_str() },
                doc! { "$inc": { "redemptions": by } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn find_referrer(&self, filter: Document) -> Result<Option<Referrer>, StoreError> {
        self.referrers()
            .find_one(filter)
            .within(self.timeout)
            .await?
            .map(ReferrerDoc::into_referrer)
            .transpose()
    }
}

#[async_trait]
impl ReferralStore for MongoStore {
    async fn referrer_by_email(&self, email: &Email) -> Result<Option<Referrer>, StoreError> {
        self.find_referrer(doc! { "_id": email.as_str() }).await
    }

    async fn referrer_by_code(&self, code: &ReferralCode) -> Result<Option<Referrer>, StoreError> {
        self.find_referrer(doc! { "code_key": code.key() }).await
    }

    async fn referrer_by_user(&self, user_id: &str) -> Result<Option<Referrer>, StoreError> {
        self.find_referrer(doc! { "user_id": user_id }).await
    }

    async fn insert_referrer(
        &self,
        referrer: &Referrer,
    ) -> Result<Result<(), ReferrerConflict>, StoreError> {
        let mut doc = ReferrerDoc::from_referrer(referrer);
        doc.events = vec![feed_document(&referrer.created_event())?];
        match self
            .referrers()
            .insert_one(doc)
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(Ok(())),
            // Which unique key was taken is read back rather than parsed from the server's
            // message, whose wording differs between servers.
            Err(err) if is_duplicate_key(&err) => {
                if self.referrer_by_email(&referrer.email).await?.is_some() {
                    Ok(Err(ReferrerConflict::EmailTaken))
                } else if self
                    .referrer_by_code(&referrer.referral_code)
                    .await?
                    .is_some()
                {
                    Ok(Err(ReferrerConflict::CodeTaken))
                } else {
                    Ok(Err(ReferrerConflict::UserTaken))
                }
            }
            Err(err) => Err(store_error(err)),
        }
    }

    async fn link_user(
        &self,
        email: &Email,
        user_id: &str,
    ) -> Result<Option<Referrer>, StoreError> {
        let linked = self
            .referrers()
            .find_one_and_update(
                doc! { "_id": email.as_str(), "user_id": { "$exists": false } },
                doc! { "$set": { "user_id": user_id } },
            )
            .return_document(ReturnDocument::After)
            .answered_within(self.timeout)
            .await?;
        match linked {
            Ok(Some(doc)) => doc.into_referrer().map(Some),
            // Already linked, or the user id belongs to another referrer: as it is.
            Ok(None) => self.referrer_by_email(email).await,
            Err(err) if is_duplicate_key(&err) => self.referrer_by_email(email).await,
            Err(err) => Err(store_error(err)),
        }
    }

    async fn referee(&self, account_id: &AccountId) -> Result<Option<Referee>, StoreError> {
        self.referees()
            .find_one(doc! { "_id": account_id.as_str() })
            .within(self.timeout)
            .await?
            .map(RefereeDoc::into_referee)
            .transpose()
    }

    async fn redeem(&self, referee: &Referee, now: DateTime<Utc>) -> Result<Redeemed, StoreError> {
        if let Some(held) = self.referee(&referee.account_id).await? {
            return Ok(Redeemed::Held(held));
        }
        let code_key = referee.referral_code.key();
        let mut counted = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(referrer) = self.find_referrer(doc! { "code_key": &code_key }).await? else {
                return Ok(Redeemed::UnknownCode);
            };
            if let Err(refusal) = referrer.rules.admits(now, referrer.redemptions) {
                return Ok(Redeemed::Refused(refusal));
            }
            let mut filter = doc! { "_id": referrer.email.as_str() };
            if let Some(max) = referrer.rules.max_redemptions {
                // Only while under the limit this redemption was checked against.
                filter.insert("max_redemptions", count_to_bson(max));
                filter.insert("redemptions", doc! { "$lt": count_to_bson(max) });
            }
            let moved = self
                .referrers()
                .update_one(filter, doc! { "$inc": { "redemptions": 1 } })
                .within(self.timeout)
                .await?;
            if moved.matched_count == 1 {
                counted = Some(referrer.email);
                break;
            }
        }
        let Some(referrer_email) = counted else {
            return Err(StoreError::Backend(format!(
                "the redemption count of a code kept changing over {MAX_ATTEMPTS} attempts"
            )));
        };
        let doc = RefereeDoc {
            account_id: referee.account_id.to_string(),
            referral_code: referee.referral_code.to_string(),
            code_key,
            redeemed_at: to_bson_datetime(referee.redeemed_at),
            via: referee.via,
            events: vec![feed_document(&referee.redeemed_event())?],
        };
        match self
            .referees()
            .insert_one(doc)
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(Redeemed::Stored),
            // The insert may have applied and its answer been lost: the count stays, erring
            // high (the code allows one redemption less), never low.
            Err(err) if !is_duplicate_key(&err) => Err(store_error(err)),
            Err(_) => {
                self.count_redemption(&referrer_email, -1).await?;
                match self.referee(&referee.account_id).await? {
                    Some(held) => Ok(Redeemed::Held(held)),
                    None => Err(StoreError::Backend(
                        "referee vanished after a duplicate key".to_owned(),
                    )),
                }
            }
        }
    }

    async fn change_rules(
        &self,
        code: &ReferralCode,
        change: &RulesChange,
    ) -> Result<Option<Referrer>, StoreError> {
        // Read, then write on the condition that the rules it changes are as read, so that
        // the audit entry it carries says what they were.
        for _ in 0..MAX_RULES_RACES {
            let Some(before) = self.find_referrer(doc! { "code_key": code.key() }).await? else {
                return Ok(None);
            };
            let mut after = before.clone();
            change.apply(&mut after.rules);
            let stored = |referrer| to_document(&ReferrerDoc::from_referrer(referrer));
            let change = (&stored(&before)?, &stored(&after)?);
            let carried = Carried::of(Some(&before), Some(&after))?;
            let key = Bson::String(before.email.to_string());
            match self.change_as_read(REFERRERS, key, change, carried).await? {
                AsRead::Unchanged => return Ok(Some(before)),
                AsRead::Written(doc) => return ReferrerDoc::into_referrer(doc).map(Some),
                AsRead::Raced => {}
            }
        }
        Err(StoreError::Backend(
            "the referrer's rules kept changing under this change".to_owned(),
        ))
    }

    async fn referees_of(
        &self,
        code: &ReferralCode,
        limit: usize,
    ) -> Result<Vec<Referee>, StoreError> {
        let docs: Vec<RefereeDoc> = self
            .referees()
            .find(doc! { "code_key": code.key() })
            .sort(doc! { "redeemed_at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(RefereeDoc::into_referee).collect()
    }
}
