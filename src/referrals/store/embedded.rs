//! Referrers by e-mail, with index tables for the upper-cased code and the user id, and
//! referees by account; each write checks every unique key inside one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{ReferralStore, ReferrerConflict};
use crate::{
    email::Email,
    referrals::domain::{AccountId, Referee, ReferralCode, Referrer, Via},
    storage::{
        StoreError,
        embedded::{EmbeddedStore, JsonTable, backend, decode, encode, millis},
    },
};

/// Referrers by normalised e-mail.
pub(crate) const REFERRERS: JsonTable = TableDefinition::new("referrers");
/// Upper-cased code → e-mail.
pub(crate) const CODES: TableDefinition<&str, &str> = TableDefinition::new("referrer_codes");
/// User id → e-mail.
pub(crate) const USER_IDS: TableDefinition<&str, &str> = TableDefinition::new("referrer_user_ids");
/// Referees by account id.
pub(crate) const REFEREES: JsonTable = TableDefinition::new("referees");

#[derive(Debug, Serialize, Deserialize)]
struct ReferrerRecord {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    referral_code: String,
    user_id: Option<String>,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
}

impl ReferrerRecord {
    fn from_referrer(r: &Referrer) -> Self {
        Self {
            email: r.email.to_string(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            referral_code: r.referral_code.to_string(),
            user_id: r.user_id.clone(),
            created_at: r.created_at,
        }
    }

    fn into_referrer(self) -> Result<Referrer, StoreError> {
        Ok(Referrer {
            created_at: self.created_at,
            email: Email::from_stored(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            referral_code: ReferralCode::from_stored(self.referral_code),
            user_id: self.user_id,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RefereeRecord {
    account_id: String,
    referral_code: String,
    #[serde(rename = "redeemed_at_ms", with = "millis")]
    redeemed_at: DateTime<Utc>,
    via: Via,
}

impl RefereeRecord {
    fn into_referee(self) -> Result<Referee, StoreError> {
        Ok(Referee {
            redeemed_at: self.redeemed_at,
            account_id: AccountId::from_stored(self.account_id),
            referral_code: ReferralCode::from_stored(self.referral_code),
            via: self.via,
        })
    }
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

/// The referrer an index table points to.
fn referrer_via_index(
    txn: &ReadTransaction,
    index: TableDefinition<&str, &str>,
    key: &str,
) -> Result<Option<Referrer>, StoreError> {
    let email = match txn
        .open_table(index)
        .map_err(backend)?
        .get(key)
        .map_err(backend)?
    {
        Some(email) => email.value().to_owned(),
        None => return Ok(None),
    };
    read_referrer(&txn.open_table(REFERRERS).map_err(backend)?, &email)
}

fn write_referrer(txn: &WriteTransaction, referrer: &Referrer) -> Result<(), StoreError> {
    let record = encode(&ReferrerRecord::from_referrer(referrer))?;
    txn.open_table(REFERRERS)
        .map_err(backend)?
        .insert(referrer.email.as_str(), record.as_slice())
        .map_err(backend)?;
    Ok(())
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
            referrer.user_id = Some(user_id);
            write_referrer(txn, &referrer)?;
            Ok(Some(referrer))
        })
        .await
    }

    async fn referee(&self, account_id: &AccountId) -> Result<Option<Referee>, StoreError> {
        let account = account_id.to_string();
        self.read(move |txn| {
            match txn
                .open_table(REFEREES)
                .map_err(backend)?
                .get(account.as_str())
                .map_err(backend)?
            {
                Some(bytes) => decode::<RefereeRecord>(bytes.value())?
                    .into_referee()
                    .map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn insert_referee(&self, referee: &Referee) -> Result<Result<(), Referee>, StoreError> {
        let referee = referee.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(REFEREES).map_err(backend)?;
            if let Some(bytes) = table.get(referee.account_id.as_str()).map_err(backend)? {
                return Ok(Err(decode::<RefereeRecord>(bytes.value())?.into_referee()?));
            }
            let record = encode(&RefereeRecord {
                account_id: referee.account_id.to_string(),
                referral_code: referee.referral_code.to_string(),
                redeemed_at: referee.redeemed_at,
                via: referee.via,
            })?;
            table
                .insert(referee.account_id.as_str(), record.as_slice())
                .map_err(backend)?;
            Ok(Ok(()))
        })
        .await
    }
}
