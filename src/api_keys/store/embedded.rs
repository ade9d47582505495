//! Keys on the embedded store: one JSON record a key, by id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::ApiKeyStore;
use crate::{
    api_keys::domain::{ApiKey, KeyRole},
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Schema, all_records, backend, decode, encode, millis,
            opt_millis, put, ride,
        },
    },
};

const API_KEYS: JsonTable = TableDefinition::new("api_keys");

pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![&API_KEYS],
        migrations: Vec::new(),
    }
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    id: String,
    name: String,
    role: KeyRole,
    secret_hash: String,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
    #[serde(rename = "last_used_at_ms", default, with = "opt_millis")]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(rename = "revoked_at_ms", default, with = "opt_millis")]
    revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    fn from_key(key: &ApiKey) -> Self {
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            secret_hash: key.secret_hash.clone(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }

    fn into_key(self) -> ApiKey {
        ApiKey {
            id: self.id,
            name: self.name,
            role: self.role,
            secret_hash: self.secret_hash,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// Changes the key `id` with `change`, if there is one; whether it did.
async fn change_key(
    store: &EmbeddedStore,
    id: &str,
    change: impl Fn(&mut ApiKey) -> bool + Send + 'static,
) -> Result<bool, StoreError> {
    let id = id.to_owned();
    store
        .write(move |txn| {
            let mut table = txn.open_table(API_KEYS).map_err(backend)?;
            let Some(mut key) = table
                .get(id.as_str())
                .map_err(backend)?
                .map(|bytes| decode::<KeyRecord>(bytes.value()))
                .transpose()?
                .map(KeyRecord::into_key)
            else {
                return Ok(false);
            };
            let before = key.clone();
            if !change(&mut key) {
                return Ok(false);
            }
            ride(txn, Some(&before), Some(&key))?;
            let record = encode(&KeyRecord::from_key(&key))?;
            table
                .insert(id.as_str(), record.as_slice())
                .map_err(backend)?;
            Ok(true)
        })
        .await
}

#[async_trait]
impl ApiKeyStore for EmbeddedStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |txn| {
            ride(txn, None, Some(&key))?;
            put(txn, API_KEYS, key.id.as_str(), &KeyRecord::from_key(&key))
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| {
            txn.open_table(API_KEYS)
                .map_err(backend)?
                .get(id.as_str())
                .map_err(backend)?
                .map(|bytes| decode::<KeyRecord>(bytes.value()).map(KeyRecord::into_key))
                .transpose()
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|txn| {
            let records: Vec<KeyRecord> = all_records(&txn.open_table(API_KEYS).map_err(backend)?)?;
            let mut keys: Vec<ApiKey> = records.into_iter().map(KeyRecord::into_key).collect();
            keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(keys)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        change_key(self, id, move |key| {
            key.revoked_at.is_none() && {
                key.revoked_at = Some(at);
                true
            }
        })
        .await
    }

    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        change_key(self, id, move |key| {
            key.last_used_at = Some(at);
            true
        })
        .await
        .map(|_| ())
    }
}
