//! Referrers are keyed by e-mail (`_id`), with unique indexes on the upper-cased code and on the
//! user id (sparse: external referrers have none). Referees are keyed by account id.

use async_trait::async_trait;
use mongodb::{
    Collection,
    bson::{Document, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use super::{ReferralStore, ReferrerConflict};
use crate::{
    email::Email,
    referrals::domain::{AccountId, Referee, ReferralCode, Referrer, Via},
    storage::{
        StoreError,
        mongo::{
            MongoStore, REFEREES, REFERRERS, from_bson_datetime, is_duplicate_key, store_error,
            to_bson_datetime,
        },
    },
};

#[derive(Debug, Serialize, Deserialize)]
struct ReferrerDoc {
    #[serde(rename = "_id")]
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    referral_code: String,
    code_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    created_at: mongodb::bson::DateTime,
}

impl ReferrerDoc {
    fn from_referrer(r: &Referrer) -> Self {
        Self {
            email: r.email.to_string(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            referral_code: r.referral_code.to_string(),
            code_key: r.referral_code.key(),
            user_id: r.user_id.clone(),
            created_at: to_bson_datetime(r.created_at),
        }
    }

    fn into_referrer(self) -> Result<Referrer, StoreError> {
        Ok(Referrer {
            email: Email::from_stored(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            referral_code: ReferralCode::from_stored(self.referral_code),
            user_id: self.user_id,
            created_at: from_bson_datetime(self.created_at)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RefereeDoc {
    #[serde(rename = "_id")]
    account_id: String,
    referral_code: String,
    code_key: String,
    redeemed_at: mongodb::bson::DateTime,
    via: Via,
}

impl RefereeDoc {
    fn into_referee(self) -> Result<Referee, StoreError> {
        Ok(Referee {
            via: self.via,
            account_id: AccountId::from_stored(self.account_id),
            referral_code: ReferralCode::from_stored(self.referral_code),
            redeemed_at: from_bson_datetime(self.redeemed_at)?,
        })
    }
}

impl MongoStore {
    fn referrers(&self) -> Collection<ReferrerDoc> {
        self.db.collection(REFERRERS)
    }

    fn referees(&self) -> Collection<RefereeDoc> {
        self.db.collection(REFEREES)
    }

    async fn find_referrer(&self, filter: Document) -> Result<Option<Referrer>, StoreError> {
        self.referrers()
            .find_one(filter)
            .await
            .map_err(store_error)?
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
        match self
            .referrers()
            .insert_one(ReferrerDoc::from_referrer(referrer))
            .await
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
            .await;
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
            .await
            .map_err(store_error)?
            .map(RefereeDoc::into_referee)
            .transpose()
    }

    async fn insert_referee(&self, referee: &Referee) -> Result<Result<(), Referee>, StoreError> {
        let doc = RefereeDoc {
            account_id: referee.account_id.to_string(),
            referral_code: referee.referral_code.to_string(),
            code_key: referee.referral_code.key(),
            redeemed_at: to_bson_datetime(referee.redeemed_at),
            via: referee.via,
        };
        match self.referees().insert_one(doc).await {
            Ok(_) => Ok(Ok(())),
            Err(err) if is_duplicate_key(&err) => match self.referee(&referee.account_id).await? {
                Some(existing) => Ok(Err(existing)),
                None => Err(StoreError::Backend(
                    "referee vanished after a duplicate key".to_owned(),
                )),
            },
            Err(err) => Err(store_error(err)),
        }
    }
}
