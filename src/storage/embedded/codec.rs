//! How records are kept: JSON values, times as Unix milliseconds, money as exact text.

use std::borrow::Borrow;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

use super::backend;
use crate::storage::StoreError;

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Writes `record` under `key` in `table`, replacing what was there.
pub(crate) fn put<'k, K: redb::Key + 'static, T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
    record: &T,
) -> Result<(), StoreError> {
    let bytes = encode(record)?;
    txn.open_table(table)
        .map_err(backend)?
        .insert(key, bytes.as_slice())
        .map_err(backend)?;
    Ok(())
}

/// The record under `key` in an open table, decoded.
pub(crate) fn get<'k, K: redb::Key + 'static, T: DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
) -> Result<Option<T>, StoreError> {
    let found = table.get(key).map_err(backend)?;
    found.map(|bytes| decode(bytes.value())).transpose()
}

/// The record under `key` in `table`, read within a write.
pub(crate) fn get_in<'k, K: redb::Key + 'static, T: DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
) -> Result<Option<T>, StoreError> {
    get(&txn.open_table(table).map_err(backend)?, key)
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

/// Money (or signed money) as its exact decimal text (`"12.50"`), never a binary float.
pub(crate) mod money_text {
    use std::{fmt::Display, str::FromStr};

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, M: Display>(money: &M, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(money)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, M: FromStr>(d: D) -> Result<M, D::Error> {
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
