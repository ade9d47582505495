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
            crate::programs::store::embedded::create_tables(&txn)?;
            crate::indication::store::embedded::create_tables(&txn)?;
            crate::referrals::store::embedded::create_tables(&txn)?;
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

#[async_trait::async_trait]
impl StoreHealth for EmbeddedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }
}

pub(crate) fn backend(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(err.into().to_string())
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
