//! Idempotency records by id, with an index by expiry that each claim sweeps a little of.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Begun, Claim, Held, IdempotencyStore, StoredResponse};
use crate::storage::{
    StoreError,
    embedded::{EmbeddedStore, JsonTable, Schema, backend, decode, encode, get_in, millis},
};

pub(crate) const IDEMPOTENCY: JsonTable = TableDefinition::new("idempotency");
/// (expires at in ms, id): what to sweep.
pub(crate) const IDEMPOTENCY_EXPIRY: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_expiry");

/// The idempotency records' tables; no migration yet.
pub(crate) fn schema() -> Schema {
    Schema::tables(vec![&IDEMPOTENCY, &IDEMPOTENCY_EXPIRY])
}

/// Expired records removed per claim, so that the table shrinks without a sweeper.
const SWEEP: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    owner: String,
    #[serde(rename = "locked_until_ms", with = "millis")]
    locked_until: DateTime<Utc>,
    #[serde(rename = "expires_at_ms", with = "millis")]
    expires_at: DateTime<Utc>,
    response: Option<StoredResponse>,
}

fn sweep(txn: &WriteTransaction, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY).map_err(backend)?;
    let mut records = txn.open_table(IDEMPOTENCY).map_err(backend)?;
    let due: Vec<(i64, String)> = expiry
        .range(..=(now.timestamp_millis(), "\u{10FFFF}"))
        .map_err(backend)?
        .take(SWEEP)
        .map(|entry| {
            entry.map_err(backend).map(|(key, _)| {
                let (at, id) = key.value();
                (at, id.to_owned())
            })
        })
        .collect::<Result<_, _>>()?;
    for (at, id) in due {
        expiry.remove((at, id.as_str())).map_err(backend)?;
        let expired = match records.get(id.as_str()).map_err(backend)? {
            Some(bytes) => decode::<Record>(bytes.value())?.expires_at <= now,
            None => false,
        };
        if expired {
            records.remove(id.as_str()).map_err(backend)?;
        }
    }
    Ok(())
}

fn put(txn: &WriteTransaction, id: &str, record: &Record) -> Result<(), StoreError> {
    txn.open_table(IDEMPOTENCY)
        .map_err(backend)?
        .insert(id, encode(record)?.as_slice())
        .map_err(backend)?;
    txn.open_table(IDEMPOTENCY_EXPIRY)
        .map_err(backend)?
        .insert((record.expires_at.timestamp_millis(), id), ())
        .map_err(backend)?;
    Ok(())
}

fn read(txn: &WriteTransaction, id: &str) -> Result<Option<Record>, StoreError> {
    get_in(txn, IDEMPOTENCY, id)
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn begin(&self, claim: &Claim, now: DateTime<Utc>) -> Result<Begun, StoreError> {
        let claim = claim.clone();
        self.write(move |txn| {
            sweep(txn, now)?;
            if let Some(found) = read(txn, &claim.id)? {
                let held = Held {
                    fingerprint: found.fingerprint,
                    response: found.response,
                    locked_until: found.locked_until,
                    expires_at: found.expires_at,
                };
                if let Some(begun) = held.meets(&claim, now) {
                    return Ok(begun);
                }
            }
            put(
                txn,
                &claim.id,
                &Record {
                    fingerprint: claim.fingerprint.clone(),
                    owner: claim.owner.clone(),
                    locked_until: claim.locked_until,
                    expires_at: claim.expires_at,
                    response: None,
                },
            )?;
            Ok(Begun::Started)
        })
        .await
    }

    async fn complete(&self, claim: &Claim, response: &StoredResponse) -> Result<(), StoreError> {
        let (claim, response) = (claim.clone(), response.clone());
        self.write(move |txn| {
            if let Some(mut record) = read(txn, &claim.id)?
                && record.owner == claim.owner
            {
                record.response = Some(response.clone());
                put(txn, &claim.id, &record)?;
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let claim = claim.clone();
        self.write(move |txn| {
            if let Some(record) = read(txn, &claim.id)?
                && record.owner == claim.owner
                && record.response.is_none()
            {
                txn.open_table(IDEMPOTENCY)
                    .map_err(backend)?
                    .remove(claim.id.as_str())
                    .map_err(backend)?;
                txn.open_table(IDEMPOTENCY_EXPIRY)
                    .map_err(backend)?
                    .remove((record.expires_at.timestamp_millis(), claim.id.as_str()))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }
}
