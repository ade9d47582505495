//! In the embedded store each state change is one redb write transaction over normalised
//! tables: users, the indicated-by index, the ledger, e-mails and the callback outbox. redb
//! runs one write transaction at a time, so each check made inside one still holds at commit.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{MultimapTableDefinition, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{IndicationStore, RegisterOutcome, UsersCreated};
use crate::{
    callbacks::store::embedded::queue,
    email::Email,
    indication::domain::{
        EmailIndication, IndicatorCredit, LedgerEntry, LedgerOperation, Payment, Registration,
        Unlock, User, UserHash,
    },
    money::Money,
    programs::{ProgramId, store::embedded::add_program_users},
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, backend, decode, encode, millis, money_text, opt_program_id,
        },
    },
};

/// Users by hash.
pub(crate) const USERS: JsonTable = TableDefinition::new("users");
/// Indicator hash → the hashes of the users it indicated.
pub(crate) const INDICATED: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("indicated_by");
/// Ledger entries by sequence number.
pub(crate) const LEDGER: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger");
/// Indicated e-mails by normalised address.
pub(crate) const EMAILS: JsonTable = TableDefinition::new("indicated_emails");

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum CreditRecord {
    Pending,
    Acquired {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
    },
}

/// A user as stored: money as exact decimal text, times as Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
struct UserRecord {
    hash: String,
    indicator: Option<String>,
    #[serde(with = "opt_program_id")]
    program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    total_amount_paid: Money,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
    credit: Option<CreditRecord>,
}

impl UserRecord {
    fn from_user(user: &User) -> Self {
        Self {
            hash: user.hash.to_string(),
            indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id,
            total_amount_paid: user.total_amount_paid,
            created_at: user.created_at,
            credit: user.credit.as_ref().map(|credit| match credit {
                IndicatorCredit::Pending => CreditRecord::Pending,
                IndicatorCredit::Acquired { amount, at } => CreditRecord::Acquired {
                    amount: *amount,
                    at: *at,
                },
            }),
        }
    }

    fn into_user(self) -> User {
        User {
            total_amount_paid: self.total_amount_paid,
            created_at: self.created_at,
            program_id: self.program_id,
            hash: UserHash::from_stored(self.hash),
            indicator: self.indicator.map(UserHash::from_stored),
            credit: self.credit.map(|credit| match credit {
                CreditRecord::Pending => IndicatorCredit::Pending,
                CreditRecord::Acquired { amount, at } => IndicatorCredit::Acquired { amount, at },
            }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerRecord {
    operation: LedgerOperation,
    user_indicator: Option<String>,
    user_indicated: String,
    #[serde(with = "opt_program_id")]
    program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    amount: Money,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
}

impl LedgerRecord {
    fn from_entry(entry: &LedgerEntry) -> Self {
        Self {
            operation: entry.operation,
            user_indicator: entry.user_indicator.clone(),
            user_indicated: entry.user_indicated.clone(),
            program_id: entry.program_id,
            amount: entry.amount,
            created_at: entry.created_at,
        }
    }

    fn into_entry(self) -> LedgerEntry {
        LedgerEntry {
            operation: self.operation,
            amount: self.amount,
            created_at: self.created_at,
            program_id: self.program_id,
            user_indicator: self.user_indicator,
            user_indicated: self.user_indicated,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct EmailRecord {
    email: String,
    user_indicator: String,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
}

fn read_user(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    hash: &str,
) -> Result<Option<User>, StoreError> {
    match table.get(hash).map_err(backend)? {
        Some(bytes) => Ok(Some(decode::<UserRecord>(bytes.value())?.into_user())),
        None => Ok(None),
    }
}

fn write_user(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    let record = encode(&UserRecord::from_user(user))?;
    txn.open_table(USERS)
        .map_err(backend)?
        .insert(user.hash.as_str(), record.as_slice())
        .map_err(backend)?;
    Ok(())
}

fn append_ledger(txn: &WriteTransaction, entries: &[LedgerEntry]) -> Result<(), StoreError> {
    let mut table = txn.open_table(LEDGER).map_err(backend)?;
    let first = table
        .last()
        .map_err(backend)?
        .map_or(0, |(key, _)| key.value() + 1);
    for (key, entry) in (first..).zip(entries) {
        let record = encode(&LedgerRecord::from_entry(entry))?;
        table.insert(key, record.as_slice()).map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl IndicationStore for EmbeddedStore {
    async fn create_users(
        &self,
        hashes: Vec<UserHash>,
        program: Option<ProgramId>,
        at: DateTime<Utc>,
    ) -> Result<UsersCreated, StoreError> {
        self.write(move |txn| {
            let mut outcome = UsersCreated::default();
            let mut seen = HashSet::new();
            {
                let users = txn.open_table(USERS).map_err(backend)?;
                for hash in hashes.into_iter().filter(|h| seen.insert(h.clone())) {
                    if users.get(hash.as_str()).map_err(backend)?.is_some() {
                        outcome.existing.push(hash);
                    } else {
                        outcome.created.push(hash);
                    }
                }
            }
            let added = u64::try_from(outcome.created.len()).unwrap_or(u64::MAX);
            let program = match program {
                Some(id) if add_program_users(txn, id, added)? => Some(id),
                _ => None,
            };
            for hash in &outcome.created {
                write_user(txn, &User::imported(hash.clone(), program, at))?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn user(&self, hash: &UserHash) -> Result<Option<User>, StoreError> {
        let hash = hash.clone();
        self.read(move |txn| read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str()))
            .await
    }

    async fn register(&self, registration: Registration) -> Result<RegisterOutcome, StoreError> {
        self.write(move |txn| {
            let user = &registration.user;
            if txn
                .open_table(USERS)
                .map_err(backend)?
                .get(user.hash.as_str())
                .map_err(backend)?
                .is_some()
            {
                return Ok(RegisterOutcome::AlreadyRegistered);
            }
            let (Some(program), Some(indicator)) = (user.program_id, &user.indicator) else {
                return Err(StoreError::Backend(
                    "a registration needs a program and an indicator".to_owned(),
                ));
            };
            if !add_program_users(txn, program, 1)? {
                return Ok(RegisterOutcome::ProgramNotFound);
            }
            write_user(txn, user)?;
            txn.open_multimap_table(INDICATED)
                .map_err(backend)?
                .insert(indicator.as_str(), user.hash.as_str())
                .map_err(backend)?;
            append_ledger(txn, &registration.ledger)?;
            queue(txn, &registration.event)?;
            Ok(RegisterOutcome::Registered)
        })
        .await
    }

    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        unlock: Option<Unlock>,
    ) -> Result<Payment, StoreError> {
        let hash = hash.clone();
        self.write(move |txn| {
            let Some(mut user) =
                read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str())?
            else {
                return Ok(Payment {
                    user: None,
                    credited_now: false,
                });
            };
            user.total_amount_paid = total;
            let mut credited_now = false;
            if let (Some(unlock), Some(IndicatorCredit::Pending)) = (unlock, &user.credit) {
                user.credit = Some(IndicatorCredit::Acquired {
                    amount: unlock.amount,
                    at: unlock.ledger.created_at,
                });
                append_ledger(txn, std::slice::from_ref(&unlock.ledger))?;
                queue(txn, &unlock.event)?;
                credited_now = true;
            }
            write_user(txn, &user)?;
            Ok(Payment {
                user: Some(user),
                credited_now,
            })
        })
        .await
    }

    async fn indicated_by(&self, indicator: &UserHash) -> Result<Vec<User>, StoreError> {
        let indicator = indicator.clone();
        self.read(move |txn| {
            let users = txn.open_table(USERS).map_err(backend)?;
            let index = txn.open_multimap_table(INDICATED).map_err(backend)?;
            let mut indicated = Vec::new();
            for hash in index.get(indicator.as_str()).map_err(backend)? {
                let hash = hash.map_err(backend)?;
                if let Some(user) = read_user(&users, hash.value())? {
                    indicated.push(user);
                }
            }
            indicated.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
            Ok(indicated)
        })
        .await
    }

    async fn save_indications(
        &self,
        indications: Vec<EmailIndication>,
    ) -> Result<Vec<bool>, StoreError> {
        if indications.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |txn| {
            let mut saved = Vec::with_capacity(indications.len());
            let mut ledger = Vec::new();
            let mut emails = txn.open_table(EMAILS).map_err(backend)?;
            for indication in indications {
                let address = indication.email.as_str();
                if emails.get(address).map_err(backend)?.is_some() {
                    saved.push(false);
                    continue;
                }
                let record = encode(&EmailRecord {
                    email: indication.email.to_string(),
                    user_indicator: indication.indicator.to_string(),
                    created_at: indication.ledger.created_at,
                })?;
                emails.insert(address, record.as_slice()).map_err(backend)?;
                ledger.push(indication.ledger);
                saved.push(true);
            }
            drop(emails);
            append_ledger(txn, &ledger)?;
            Ok(saved)
        })
        .await
    }

    async fn indicators_of(
        &self,
        emails: &[Email],
    ) -> Result<HashMap<Email, UserHash>, StoreError> {
        let emails = emails.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(EMAILS).map_err(backend)?;
            let mut found = HashMap::new();
            for email in emails {
                if let Some(bytes) = table.get(email.as_str()).map_err(backend)? {
                    let record: EmailRecord = decode(bytes.value())?;
                    found.insert(email, UserHash::from_stored(record.user_indicator));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LEDGER).map_err(backend)?;
            let mut entries = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (_, bytes) = entry.map_err(backend)?;
                entries.push(decode::<LedgerRecord>(bytes.value())?.into_entry());
            }
            Ok(entries)
        })
        .await
    }
}
