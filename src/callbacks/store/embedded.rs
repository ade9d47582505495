//! In the embedded store, credit events have a table of their own, written in the same
//! transaction as the state change that causes them.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::CallbackOutbox;
use crate::{
    callbacks::{CallbackStatus, CreditEvent, CreditEventType},
    indication::UserHash,
    money::Money,
    storage::{
        StoreError,
        embedded::{EmbeddedStore, JsonTable, backend, decode, encode},
    },
};

/// Events by id.
pub(crate) const CALLBACKS: JsonTable = TableDefinition::new("callbacks");

#[derive(Debug, Serialize, Deserialize)]
struct CallbackRecord {
    id: String,
    event_type: CreditEventType,
    user_hash: String,
    amount: String,
    program_name: String,
    user_indicator_hash: String,
    status: CallbackStatus,
    attempts: u32,
    last_error: Option<String>,
    created_at_ms: i64,
    next_attempt_at_ms: i64,
}

impl CallbackRecord {
    fn from_event(event: &CreditEvent) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type,
            user_hash: event.user_hash.to_string(),
            amount: event.amount.to_string(),
            program_name: event.program_name.clone(),
            user_indicator_hash: event.user_indicator_hash.to_string(),
            status: event.status,
            attempts: event.attempts,
            last_error: event.last_error.clone(),
            created_at_ms: event.created_at.timestamp_millis(),
            next_attempt_at_ms: event.next_attempt_at.timestamp_millis(),
        }
    }

    fn into_event(self) -> Result<CreditEvent, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("event {}: bad {what}", self.id));
        Ok(CreditEvent {
            event_type: self.event_type,
            user_hash: UserHash::from_stored(self.user_hash),
            amount: self
                .amount
                .parse::<Money>()
                .map_err(|_| corrupt("amount"))?,
            program_name: self.program_name,
            user_indicator_hash: UserHash::from_stored(self.user_indicator_hash),
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at: chrono::DateTime::from_timestamp_millis(self.created_at_ms)
                .ok_or_else(|| corrupt("created_at"))?,
            next_attempt_at: chrono::DateTime::from_timestamp_millis(self.next_attempt_at_ms)
                .ok_or_else(|| corrupt("next_attempt_at"))?,
            id: self.id,
        })
    }
}

/// Queues an event inside the caller's transaction.
pub(crate) fn queue(txn: &WriteTransaction, event: &CreditEvent) -> Result<(), StoreError> {
    let record = encode(&CallbackRecord::from_event(event))?;
    txn.open_table(CALLBACKS)
        .map_err(backend)?
        .insert(event.id.as_str(), record.as_slice())
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl CallbackOutbox for EmbeddedStore {
    async fn list(&self, status: Option<CallbackStatus>) -> Result<Vec<CreditEvent>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(CALLBACKS).map_err(backend)?;
            let mut events = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (_, bytes) = entry.map_err(backend)?;
                let event = decode::<CallbackRecord>(bytes.value())?.into_event()?;
                if status.is_none_or(|s| s == event.status) {
                    events.push(event);
                }
            }
            events.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(events)
        })
        .await
    }
}
