//! The embedded backend: one redb file in `DATA_DIR`. redb transactions are ACID and durable on
//! commit, so a crash leaves either the whole write or none of it. Records are JSON values keyed
//! by their identifier; a capability's tables are declared beside its store implementation.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

use super::{StoreError, StoreHealth};

pub const DATABASE_FILE: &str = "referral.redb";

/// A table of JSON records keyed by a string.
pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Written and removed by a health check after a disk failure, to see that writes fit again.
const HEALTH_PROBE: JsonTable = TableDefinition::new("health_probe");
/// As much as a large request writes.
const PROBE_BYTES: usize = 256 * 1024;

/// The open database, or none while it is being reopened after a disk failure.
type Slot = Arc<RwLock<Option<Arc<Database>>>>;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Slot,
    path: PathBuf,
    /// Set when a write failed for want of a working disk; the next write or health check then
    /// reopens the file first (redb refuses all work after an I/O error until reopened).
    failing: Arc<AtomicBool>,
}

fn unavailable(detail: impl Into<String>) -> StoreError {
    StoreError::Unavailable(detail.into())
}

/// Opens (or creates) the file and every table.
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let db = Database::create(path).map_err(|e| {
        let hint = match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                " (is another referral-api process using this DATA_DIR?)"
            }
            _ => "",
        };
        unavailable(format!("cannot open {}: {e}{hint}", path.display()))
    })?;
    let txn = db.begin_write().map_err(backend)?;
    create_tables(&txn)?;
    txn.commit().map_err(backend)?;
    Ok(db)
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and every table, so that reads never meet a
    /// missing table.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(|e| {
                unavailable(format!(
                    "cannot create DATA_DIR {}: {e}",
                    data_dir.display()
                ))
            })?;
            let path = data_dir.join(DATABASE_FILE);
            let db = open_file(&path)?;
            Ok(Self {
                db: Arc::new(RwLock::new(Some(Arc::new(db)))),
                path,
                failing: Arc::new(AtomicBool::new(false)),
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// The open database, on a blocking thread.
    fn current(slot: &Slot) -> Result<Arc<Database>, StoreError> {
        slot.read()
            .map_err(|_| unavailable("store lock poisoned"))?
            .clone()
            .ok_or_else(|| unavailable("the store is being reopened"))
    }

    /// Closes and reopens the file, once no operation holds it. Nothing acknowledged is lost:
    /// every acknowledged write was committed, and redb's commits are durable.
    fn reopen(slot: &Slot, path: &Path) -> Result<(), StoreError> {
        let mut guard = slot
            .write()
            .map_err(|_| unavailable("store lock poisoned"))?;
        if let Some(db) = guard.take() {
            match Arc::try_unwrap(db) {
                Ok(db) => drop(db),
                Err(still_used) => {
                    *guard = Some(still_used);
                    return Err(unavailable("the store is busy; reopening later"));
                }
            }
        }
        let db = open_file(path)?;
        *guard = Some(Arc::new(db));
        tracing::info!(path = %path.display(), "embedded store reopened");
        Ok(())
    }

    /// Runs a read on a blocking thread, over one consistent snapshot.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let db = Self::current(&slot)?;
            let txn = db.begin_read().map_err(backend)?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs a write on a blocking thread and commits it when `f` succeeds. redb admits one
    /// writer at a time, so every check made inside `f` still holds at commit. After a disk
    /// failure the file is reopened first.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (slot, path, failing) = (self.db.clone(), self.path.clone(), self.failing.clone());
        tokio::task::spawn_blocking(move || {
            if failing.load(Ordering::SeqCst) {
                Self::reopen(&slot, &path)?;
            }
            let db = Self::current(&slot)?;
            let result = db
                .begin_write()
                .map_err(backend)
                .and_then(|txn| {
                    let value = f(&txn)?;
                    txn.commit().map_err(backend)?;
                    Ok(value)
                });
            match &result {
                Ok(_) => failing.store(false, Ordering::SeqCst),
                Err(StoreError::Unavailable(detail)) => {
                    tracing::warn!(error = %detail, "embedded store write failed; it will be reopened");
                    failing.store(true, Ordering::SeqCst);
                }
                Err(_) => {}
            }
            result
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
        indication::FIGURES,
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
    txn.open_table(indication::CAP_PLACES).map_err(backend)?;
    txn.open_table(indication::HOLDS_DUE).map_err(backend)?;
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
    referrals::index_earlier_referees(txn)?;
    indication::count_earlier_credits(txn)
}

#[async_trait::async_trait]
impl StoreHealth for EmbeddedStore {
    /// Healthy when the file reads, and — after a write failed for want of a working disk —
    /// when a write the size of a large request commits again.
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await?;
        if self.failing.load(Ordering::SeqCst) {
            self.write(|txn| {
                let mut probe = txn.open_table(HEALTH_PROBE).map_err(backend)?;
                probe
                    .insert("probe", vec![0u8; PROBE_BYTES].as_slice())
                    .map_err(backend)?;
                Ok(())
            })
            .await?;
            self.write(|txn| {
                txn.open_table(HEALTH_PROBE)
                    .map_err(backend)?
                    .remove("probe")
                    .map_err(backend)?;
                Ok(())
            })
            .await?;
        }
        Ok(())
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
