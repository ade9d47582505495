//! Referrers by e-mail, with index tables for the upper-cased code and the user id, and
//! referees by account with an index by code and time; each write checks every unique key, and
//! a redemption the code's rules and count, inside one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

mod records;

use super::{Redeemed, ReferralStore, ReferrerConflict};
use crate::{
    email::Email,
    joint::embedded::record_event,
    referrals::domain::{AccountId, CodeRules, Referee, ReferralCode, Referrer, RulesChange, Via},
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Migration, Schema, backend, decode, millis, opt_millis, put,
            ride,
        },
    },
};
use records::*;

/// Referrers by normalised e-mail.
pub(crate) const REFERRERS: JsonTable = TableDefinition::new("referrers");
/// Upper-cased code → e-mail.
pub(crate) const CODES: TableDefinition<&str, &str> = TableDefinition::new("referrer_codes");
/// User id → e-mail.
pub(crate) const USER_IDS: TableDefinition<&str, &str> = TableDefinition::new("referrer_user_ids");
/// Referees by account id.
pub(crate) const REFEREES: JsonTable = TableDefinition::new("referees");
/// (upper-cased code, redeemed at in ms, account id): a code's referees in time order.
pub(crate) const REFEREES_BY_CODE: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("referees_by_code");

/// The referral codes' tables, and migration 1: the redemption index and counts built from
/// the referees stored before they existed.
pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![&REFERRERS, &CODES, &USER_IDS, &REFEREES, &REFEREES_BY_CODE],
        migrations: vec![Migration {
            version: 1,
            name: "index earlier referees and count their redemptions",
            run: Box::new(index_earlier_referees),
        }],
    }
}

fn active_by_default() -> bool {
    true
}

fn read_referrer(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    email: &str,
) -> Result<Option<Referrer>, StoreError> {
    match table.get(email).map_err(backend)? {
        Some(bytes) => decode::<ReferrerRecord>(bytes.value())?
            .into_referrer()
            .map(Some),
        None => Ok(None),
    }
}

/// The referrer the entry `key` of an index table points to.
fn referrer_via(
    index: &impl ReadableTable<&'static str, &'static str>,
    referrers: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Referrer>, StoreError> {
    match index.get(key).map_err(backend)? {
        Some(email) => read_referrer(referrers, email.value()),
        None => Ok(None),
    }
}

/// [`referrer_via`] the index table `index`.
fn referrer_via_index(
    txn: &ReadTransaction,
    index: TableDefinition<&str, &str>,
    key: &str,
) -> Result<Option<Referrer>, StoreError> {
    let index = txn.open_table(index).map_err(backend)?;
    referrer_via(&index, &txn.open_table(REFERRERS).map_err(backend)?, key)
}

/// [`referrer_via`] the code index, inside a write.
fn referrer_by_code_key(
    txn: &WriteTransaction,
    code_key: &str,
) -> Result<Option<Referrer>, StoreError> {
    let index = txn.open_table(CODES).map_err(backend)?;
    referrer_via(
        &index,
        &txn.open_table(REFERRERS).map_err(backend)?,
        code_key,
    )
}

fn read_referee(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    account: &str,
) -> Result<Option<Referee>, StoreError> {
    match table.get(account).map_err(backend)? {
        Some(bytes) => decode::<RefereeRecord>(bytes.value())?
            .into_referee()
            .map(Some),
        None => Ok(None),
    }
}

/// Indexes referees stored before the index by code existed, and counts them on their
/// referrers; runs once, when the index is empty and referees exist.
pub(crate) fn index_earlier_referees(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut index = txn.open_table(REFEREES_BY_CODE).map_err(backend)?;
    if !index.is_empty().map_err(backend)? {
        return Ok(());
    }
    let mut counts = std::collections::HashMap::<String, u64>::new();
    let referees = txn.open_table(REFEREES).map_err(backend)?;
    for entry in referees.iter().map_err(backend)? {
        let (_, bytes) = entry.map_err(backend)?;
        let referee = decode::<RefereeRecord>(bytes.value())?.into_referee()?;
        let key = referee.referral_code.key();
        index
            .insert(
                (
                    key.as_str(),
                    referee.redeemed_at.timestamp_millis(),
                    referee.account_id.as_str(),
                ),
                (),
            )
            .map_err(backend)?;
        *counts.entry(key).or_default() += 1;
    }
    drop((index, referees));
    for (key, count) in counts {
        if let Some(mut referrer) = referrer_by_code_key(txn, &key)? {
            referrer.redemptions = count;
            write_referrer(txn, &referrer)?;
        }
    }
    Ok(())
}

fn write_referrer(txn: &WriteTransaction, referrer: &Referrer) -> Result<(), StoreError> {
    put(
        txn,
        REFERRERS,
        referrer.email.as_str(),
        &ReferrerRecord::from_referrer(referrer),
    )
}

#[async_trait]
impl ReferralStore for EmbeddedStore {
    async fn referrer_by_email(&self, email: &Email) -> Result<Option<Referrer>, StoreError> {
        let email = email.clone();
        self.read(move |txn| {
            read_referrer(&txn.open_table(REFERRERS).map_err(backend)?, email.as_str())
        })
        .await
    }

    async fn referrer_by_code(&self, code: &ReferralCode) -> Result<Option<Referrer>, StoreError> {
        let key = code.key();
        self.read(move |txn| referrer_via_index(txn, CODES, &key))
            .await
    }

    async fn referrer_by_user(&self, user_id: &str) -> Result<Option<Referrer>, StoreError> {
        let key = user_id.to_owned();
        self.read(move |txn| referrer_via_index(txn, USER_IDS, &key))
            .await
    }

    async fn insert_referrer(
        &self,
        referrer: &Referrer,
    ) -> Result<Result<(), ReferrerConflict>, StoreError> {
        let referrer = referrer.clone();
        let created = referrer.created_event();
        self.write(move |txn| {
            let email = referrer.email.as_str();
            let code_key = referrer.referral_code.key();
            if txn
                .open_table(REFERRERS)
                .map_err(backend)?
                .get(email)
                .map_err(backend)?
                .is_some()
            {
                return Ok(Err(ReferrerConflict::EmailTaken));
            }
            let mut codes = txn.open_table(CODES).map_err(backend)?;
            if codes.get(code_key.as_str()).map_err(backend)?.is_some() {
                return Ok(Err(ReferrerConflict::CodeTaken));
            }
            let mut users = txn.open_table(USER_IDS).map_err(backend)?;
            if let Some(user_id) = &referrer.user_id {
                if users.get(user_id.as_str()).map_err(backend)?.is_some() {
                    return Ok(Err(ReferrerConflict::UserTaken));
                }
                users.insert(user_id.as_str(), email).map_err(backend)?;
            }
            codes.insert(code_key.as_str(), email).map_err(backend)?;
            drop((codes, users));
            write_referrer(txn, &referrer)?;
            record_event(txn, &created)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn link_user(
        &self,
        email: &Email,
        user_id: &str,
    ) -> Result<Option<Referrer>, StoreError> {
        let (email, user_id) = (email.clone(), user_id.to_owned());
        self.write(move |txn| {
            let Some(mut referrer) =
                read_referrer(&txn.open_table(REFERRERS).map_err(backend)?, email.as_str())?
            else {
                return Ok(None);
            };
            let mut users = txn.open_table(USER_IDS).map_err(backend)?;
            if referrer.user_id.is_some() || users.get(user_id.as_str()).map_err(backend)?.is_some()
            {
                return Ok(Some(referrer));
            }
            users
                .insert(user_id.as_str(), email.as_str())
                .map_err(backend)?;
            drop(users);
            referrer.user_id = Some(user_id.clone());
            write_referrer(txn, &referrer)?;
            Ok(Some(referrer))
        })
        .await
    }

    async fn referee(&self, account_id: &AccountId) -> Result<Option<Referee>, StoreError> {
        let account = account_id.to_string();
        self.read(move |txn| read_referee(&txn.open_table(REFEREES).map_err(backend)?, &account))
            .await
    }

    async fn redeem(&self, referee: &Referee, now: DateTime<Utc>) -> Result<Redeemed, StoreError> {
        let referee = referee.clone();
        let redeemed = referee.redeemed_event();
        self.write(move |txn| {
            let account = referee.account_id.as_str();
            let held = read_referee(&txn.open_table(REFEREES).map_err(backend)?, account)?;
            if let Some(held) = held {
                return Ok(Redeemed::Held(held));
            }
            let code_key = referee.referral_code.key();
            let Some(mut referrer) = referrer_by_code_key(txn, &code_key)? else {
                return Ok(Redeemed::UnknownCode);
            };
            if let Err(refusal) = referrer.rules.admits(now, referrer.redemptions) {
                return Ok(Redeemed::Refused(refusal));
            }
            let record = RefereeRecord {
                account_id: referee.account_id.to_string(),
                referral_code: referee.referral_code.to_string(),
                redeemed_at: referee.redeemed_at,
                via: referee.via,
            };
            put(txn, REFEREES, account, &record)?;
            txn.open_table(REFEREES_BY_CODE)
                .map_err(backend)?
                .insert(
                    (
                        code_key.as_str(),
                        referee.redeemed_at.timestamp_millis(),
                        account,
                    ),
                    (),
                )
                .map_err(backend)?;
            referrer.redemptions = referrer.redemptions.saturating_add(1);
            write_referrer(txn, &referrer)?;
            record_event(txn, &redeemed)?;
            Ok(Redeemed::Stored)
        })
        .await
    }

    async fn change_rules(
        &self,
        code: &ReferralCode,
        change: &RulesChange,
    ) -> Result<Option<Referrer>, StoreError> {
        let (key, change) = (code.key(), change.clone());
        self.write(move |txn| {
            let Some(mut referrer) = referrer_by_code_key(txn, &key)? else {
                return Ok(None);
            };
            let before = referrer.clone();
            change.apply(&mut referrer.rules);
            ride(txn, Some(&before), Some(&referrer))?;
            write_referrer(txn, &referrer)?;
            Ok(Some(referrer))
        })
        .await
    }

    async fn referees_of(
        &self,
        code: &ReferralCode,
        limit: usize,
    ) -> Result<Vec<Referee>, StoreError> {
        let key = code.key();
        self.read(move |txn| {
            let index = txn.open_table(REFEREES_BY_CODE).map_err(backend)?;
            let referees = txn.open_table(REFEREES).map_err(backend)?;
            let range = (key.as_str(), i64::MIN, "")..=(key.as_str(), i64::MAX, "\u{10FFFF}");
            let mut found = Vec::new();
            for entry in index.range(range).map_err(backend)?.rev().take(limit) {
                let (row, _) = entry.map_err(backend)?;
                let (_, _, account) = row.value();
                if let Some(referee) = read_referee(&referees, account)? {
                    found.push(referee);
                }
            }
            Ok(found)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    /// A file written before referees were indexed by code and counted: the index and the
    /// counts are rebuilt when it is opened.
    #[tokio::test]
    async fn referees_stored_before_the_index_are_indexed_and_counted() {
        let dir = tempfile::tempdir().expect("dir");
        // An older version: the tables, and no record of migrations.
        let older = Schema {
            tables: crate::stores::embedded_schema().tables,
            migrations: Vec::new(),
        };
        let store = EmbeddedStore::open(dir.path(), older).await.expect("store");
        let email = Email::parse("ana@example.com").expect("email");
        let code = ReferralCode::parse("ANA-2345678").expect("code");
        let referrer = Referrer::new(email, None, None, code.clone(), None, clock::now());
        assert_eq!(
            store.insert_referrer(&referrer).await.expect("insert"),
            Ok(())
        );
        for account in ["acc-1", "acc-2"] {
            let referee = Referee {
                account_id: AccountId::parse(account).expect("account"),
                referral_code: code.clone(),
                redeemed_at: clock::now(),
                via: Via::Redeem,
            };
            assert_eq!(
                store.redeem(&referee, clock::now()).await.expect("redeem"),
                Redeemed::Stored
            );
        }
        // As an older version left it: no index rows, no count.
        store
            .write(move |txn| {
                let mut index = txn.open_table(REFEREES_BY_CODE).map_err(backend)?;
                index.retain(|_, ()| false).map_err(backend)?;
                drop(index);
                let mut old = referrer.clone();
                old.redemptions = 0;
                write_referrer(txn, &old)
            })
            .await
            .expect("downgrade");
        assert_eq!(store.referees_of(&code, 10).await.expect("read").len(), 0);
        drop(store);

        let store = EmbeddedStore::open(dir.path(), crate::stores::embedded_schema())
            .await
            .expect("reopen");
        assert_eq!(store.referees_of(&code, 10).await.expect("read").len(), 2);
        let counted = store.referrer_by_code(&code).await.expect("read");
        assert_eq!(counted.map(|r| r.redemptions), Some(2));
    }
}
