//! The embedded backend: one redb file in `DATA_DIR`. redb transactions are ACID and durable on
//! commit, so a crash leaves either the whole write or none of it. Records are JSON values keyed
//! by their identifier; a capability's tables are declared beside its store implementation.

use std::{path::Path, sync::Arc};

use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

use super::{StoreError, StoreHealth};

pub const DATABASE_FILE: &str = "referral.redb";

/// A table of JSON records keyed by a string.
pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and every table, so that reads never meet a
    /// missing table.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create DATA_DIR {}: {e}",
                    data_dir.display()
                ))
            })?;
            let path = data_dir.join(DATABASE_FILE);
            let db = Database::create(&path).map_err(|e| {
                let hint = match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        " (is another referral-api process using this DATA_DIR?)"
                    }
                    _ => "",
                };
                StoreError::Unavailable(format!("cannot open {}: {e}{hint}", path.display()))
            })?;
            let txn = db.begin_write().map_err(backend)?;
            create_tables(&txn)?;
            txn.commit().map_err(backend)?;
            Ok(Self { db: Arc::new(db) })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs a read on a blocking thread, over one consistent snapshot.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs a write on a blocking thread and commits it when `f` succeeds. redb admits one
    /// writer at a time, so every check made inside `f` still holds at commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            let value = f(&txn)?;
            txn.commit().map_err(backend)?;
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// Every table of the store, opened (created) at start so that reads never meet a missing one.
/// Each is defined beside the store implementation that uses it.
fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    use crate::{
        callbacks::store::embedded as callbacks, idempotency::store::embedded as idempotency,
        indication::store::embedded as indication, programs::store::embedded as programs,
        referrals::store::embedded as referrals,
    };
    for table in [
        programs::PROGRAMS,
        indication::USERS,
        indication::EMAILS,
        referrals::REFERRERS,
        referrals::REFEREES,
        callbacks::CALLBACKS,
        idempotency::IDEMPOTENCY,
    ] {
        txn.open_table(table).map_err(backend)?;
    }
    for index in [referrals::CODES, referrals::USER_IDS] {
        txn.open_table(index).map_err(backend)?;
    }
    txn.open_table(programs::PROGRAM_USERS).map_err(backend)?;
    txn.open_table(indication::LEDGER).map_err(backend)?;
    txn.open_multimap_table(indication::INDICATED)
        .map_err(backend)?;
    for index in [
        callbacks::CALLBACKS_DUE,
        callbacks::CALLBACKS_CREATED,
        idempotency::IDEMPOTENCY_EXPIRY,
    ] {
        txn.open_table(index).map_err(backend)?;
    }
    referrals::index_earlier_referees(txn)
}

#[async_trait::async_trait]
impl StoreHealth for EmbeddedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }
}

/// A redb error as a store error: the disk failing (an I/O error, or redb refusing work after
/// one) is `Unavailable`, so that the client gets 503 and may retry; the rest is `Backend`.
pub(crate) fn backend(err: impl Into<redb::Error>) -> StoreError {
    let err = err.into();
    match err {
        redb::Error::Io(_) | redb::Error::PreviousIo => StoreError::Unavailable(err.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Timestamps as Unix milliseconds (`#[serde(with = "millis")]`).
pub(crate) mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(at.timestamp_millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let ms = i64::deserialize(d)?;
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}

/// Optional timestamps as Unix milliseconds or null.
pub(crate) mod opt_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&at.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| D::Error::custom("timestamp out of range"))
            })
            .transpose()
    }
}

/// Money as its exact decimal text (`"12.50"`), never a binary float.
pub(crate) mod money_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::money::Money;

    pub fn serialize<S: Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(money)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("bad amount {text}")))
    }
}

/// Program ids as their 24 hex characters, or null.
pub(crate) mod opt_program_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::programs::ProgramId;

    pub fn serialize<S: Serializer>(id: &Option<ProgramId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.collect_str(id),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProgramId>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|id| {
                id.parse()
                    .map_err(|_| D::Error::custom(format!("bad program id {id}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_disk_is_unavailable_not_a_bug() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        assert!(matches!(
            backend(redb::Error::Io(full)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            backend(redb::Error::PreviousIo),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            backend(redb::Error::Corrupted("x".into())),
            StoreError::Backend(_)
        ));
    }
}
