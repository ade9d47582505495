//! In the embedded store, credit events have a table of their own, written in the same
//! transaction as the state change that causes them, and two indexes: by due time (pending
//! events only, so that the worker finds due ones at once at any size) and by creation (the
//! admin list).
//!
//! An event's due time is its next attempt, or the end of its lease while it is claimed: a
//! claim moves the event's key to the lease end, so a crashed worker's events fall due again by
//! themselves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::ops::Bound;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

mod records;

use super::{Attempt, CallbackOutbox, Lease, Requeue, matches};
use crate::{
    callbacks::domain::{
        AttemptOutcome, CallbackFilter, CallbackStatus, CreditEvent, CreditEventType,
    },
    indication::UserHash,
    money::SignedMoney,
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Migration, Schema, all_records, backend, decode, get_in,
            millis, money_text, opt_millis, put, ride,
        },
    },
};
use records::*;

/// Events by id.
pub(crate) const CALLBACKS: JsonTable = TableDefinition::new("callbacks");
/// `(due time in ms, id)` of every pending event.
pub(crate) const CALLBACKS_DUE: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("callbacks_due");
/// `(creation time in ms, id)` of every event, for the oldest-first list.
pub(crate) const CALLBACKS_CREATED: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("callbacks_created");

/// `(status, creation ms, id)` of every event: the list filtered by status, a page at a time.
const CALLBACKS_BY_STATUS: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("callbacks_by_status");
/// `(credited user, creation ms, id)` of every event: the list filtered by user.
const CALLBACKS_BY_USER: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("callbacks_by_user");

/// The outbox's tables, and migration 4: the two list indexes built for the events stored
/// before them.
pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![
            &CALLBACKS,
            &CALLBACKS_DUE,
            &CALLBACKS_CREATED,
            &CALLBACKS_BY_STATUS,
            &CALLBACKS_BY_USER,
        ],
        migrations: vec![Migration {
            version: 4,
            name: "callback list indexes by status and by user",
            run: Box::new(index_earlier_events),
        }],
    }
}

fn index_earlier_events(txn: &WriteTransaction) -> Result<(), StoreError> {
    let records: Vec<CallbackRecord> = all_records(&txn.open_table(CALLBACKS).map_err(backend)?)?;
    for record in &records {
        index_for_lists(txn, None, record)?;
    }
    Ok(())
}

/// The status name an index key holds.
fn status_key(status: CallbackStatus) -> &'static str {
    match status {
        CallbackStatus::Pending => "pending",
        CallbackStatus::Delivered => "delivered",
        CallbackStatus::Failed => "failed",
    }
}

/// Keeps the list indexes of `record` current: its user's (written once) and its status's
/// (moved when the status changes from what `old` had).
fn index_for_lists(
    txn: &WriteTransaction,
    old: Option<&CallbackRecord>,
    record: &CallbackRecord,
) -> Result<(), StoreError> {
    let at = record.created_at.timestamp_millis();
    let id = record.id.as_str();
    let mut by_status = txn.open_table(CALLBACKS_BY_STATUS).map_err(backend)?;
    match old {
        Some(old) if old.status == record.status => return Ok(()),
        Some(old) => {
            by_status
                .remove((status_key(old.status), at, id))
                .map_err(backend)?;
        }
        None => {
            txn.open_table(CALLBACKS_BY_USER)
                .map_err(backend)?
                .insert((record.user_hash.as_str(), at, id), ())
                .map_err(backend)?;
        }
    }
    by_status
        .insert((status_key(record.status), at, id), ())
        .map_err(backend)?;
    Ok(())
}

fn read(txn: &WriteTransaction, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
    get_in(txn, CALLBACKS, id)
}

/// Writes the record, moving its due-index key from what `old` had to what it has now.
fn write(
    txn: &WriteTransaction,
    old: Option<&CallbackRecord>,
    record: &CallbackRecord,
) -> Result<(), StoreError> {
    let mut due = txn.open_table(CALLBACKS_DUE).map_err(backend)?;
    if let Some(old) = old.filter(|o| o.status == CallbackStatus::Pending) {
        due.remove((old.due_at().timestamp_millis(), old.id.as_str()))
            .map_err(backend)?;
    }
    if record.status == CallbackStatus::Pending {
        due.insert((record.due_at().timestamp_millis(), record.id.as_str()), ())
            .map_err(backend)?;
    }
    drop(due);
    index_for_lists(txn, old, record)?;
    put(txn, CALLBACKS, record.id.as_str(), record)
}

/// Queues an event inside the caller's transaction.
pub(crate) fn queue(txn: &WriteTransaction, event: &CreditEvent) -> Result<(), StoreError> {
    let record = CallbackRecord::from_event(event);
    write(txn, None, &record)?;
    txn.open_table(CALLBACKS_CREATED)
        .map_err(backend)?
        .insert(
            (record.created_at.timestamp_millis(), record.id.as_str()),
            (),
        )
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl CallbackOutbox for EmbeddedStore {
    /// One range read of the index that fits the filter — by user, by status, or by time —
    /// starting after the cursor: a page costs the same however many events the others hold.
    async fn list(&self, filter: &CallbackFilter) -> Result<Vec<CreditEvent>, StoreError> {
        let filter = filter.clone();
        self.read(move |txn| {
            let table = txn.open_table(CALLBACKS).map_err(backend)?;
            let after = filter
                .after
                .as_ref()
                .map(|c| (c.created_at.timestamp_millis(), c.id.as_str()));
            let mut events = Vec::new();
            let mut take = |id: &str| -> Result<bool, StoreError> {
                if let Some(bytes) = table.get(id).map_err(backend)? {
                    let event = decode::<CallbackRecord>(bytes.value())?.to_event();
                    if matches(&filter, &event) {
                        events.push(event);
                    }
                }
                Ok(events.len() < filter.limit)
            };
            let prefix = match (&filter.user_hash, filter.status) {
                (Some(user), _) => Some((CALLBACKS_BY_USER, user.as_str())),
                (None, Some(status)) => Some((CALLBACKS_BY_STATUS, status_key(status))),
                (None, None) => None,
            };
            match prefix {
                Some((index, key)) => {
                    let index = txn.open_table(index).map_err(backend)?;
                    let start = match after {
                        Some((at, id)) => Bound::Excluded((key, at, id)),
                        None => Bound::Included((key, i64::MIN, "")),
                    };
                    let end = Bound::Included((key, i64::MAX, "\u{10FFFF}"));
                    for entry in index.range((start, end)).map_err(backend)? {
                        let (entry, _) = entry.map_err(backend)?;
                        if !take(entry.value().2)? {
                            break;
                        }
                    }
                }
                None => {
                    let created = txn.open_table(CALLBACKS_CREATED).map_err(backend)?;
                    let start = match after {
                        Some(position) => Bound::Excluded(position),
                        None => Bound::Unbounded,
                    };
                    for entry in created.range((start, Bound::Unbounded)).map_err(backend)? {
                        let (entry, _) = entry.map_err(backend)?;
                        if !take(entry.value().1)? {
                            break;
                        }
                    }
                }
            }
            Ok(events)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<CreditEvent>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(CALLBACKS).map_err(backend)?;
            let record = table.get(id.as_str()).map_err(backend)?;
            Ok(record
                .map(|bytes| decode::<CallbackRecord>(bytes.value()))
                .transpose()?
                .map(|r| r.to_event()))
        })
        .await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            txn.open_table(CALLBACKS_DUE)
                .map_err(backend)?
                .len()
                .map_err(backend)
        })
        .await
    }

    async fn claim_due(&self, lease: &Lease, limit: usize) -> Result<Vec<CreditEvent>, StoreError> {
        let (now, lease) = (lease.at, lease.clone());
        self.write(move |txn| {
            let due: Vec<String> = {
                let table = txn.open_table(CALLBACKS_DUE).map_err(backend)?;
                let mut ids = Vec::new();
                for entry in table
                    .range(..=(now.timestamp_millis(), "\u{10FFFF}"))
                    .map_err(backend)?
                {
                    let (key, _) = entry.map_err(backend)?;
                    ids.push(key.value().1.to_owned());
                    if ids.len() >= limit {
                        break;
                    }
                }
                ids
            };
            let mut claimed = Vec::with_capacity(due.len());
            for id in due {
                let Some(old) = read(txn, &id)? else { continue };
                let mut record = old.clone();
                record.lease_owner = Some(lease.owner.clone());
                record.lease_until = Some(lease.until);
                write(txn, Some(&old), &record)?;
                claimed.push(record.to_event());
            }
            Ok(claimed)
        })
        .await
    }

    async fn record_attempt(&self, owner: &str, attempt: Attempt) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.write(move |txn| apply_attempt(txn, &owner, &attempt))
            .await
    }

    /// One write for the whole batch: one commit, however many attempts.
    async fn record_attempts(
        &self,
        owner: &str,
        attempts: Vec<Attempt>,
    ) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.write(move |txn| {
            let mut recorded = 0;
            for attempt in &attempts {
                recorded += usize::from(apply_attempt(txn, &owner, attempt)?);
            }
            Ok(recorded)
        })
        .await
    }

    async fn requeue(&self, id: &str, now: DateTime<Utc>) -> Result<Requeue, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let Some(old) = read(txn, &id)? else {
                return Ok(Requeue::NotFound);
            };
            if old.status == CallbackStatus::Delivered {
                return Ok(Requeue::AlreadyDelivered);
            }
            let mut record = old.clone();
            // A lease held by a worker sending it right now stays: the event is due again
            // when that attempt is recorded or its lease runs out, never sent twice at once.
            record.status = CallbackStatus::Pending;
            record.next_attempt_at = now;
            write(txn, Some(&old), &record)?;
            let event = record.to_event();
            ride(txn, Some(&old.to_event()), Some(&event))?;
            Ok(Requeue::Queued(event))
        })
        .await
    }
}

/// Records an attempt of an event `owner` holds the lease of, and releases the lease; `false`
/// (nothing written) when the lease was lost to another worker meanwhile.
fn apply_attempt(
    txn: &WriteTransaction,
    owner: &str,
    attempt: &Attempt,
) -> Result<bool, StoreError> {
    let at = attempt.at;
    let Some(old) = read(txn, &attempt.id)? else {
        return Ok(false);
    };
    if old.lease_owner.as_deref() != Some(owner) {
        return Ok(false);
    }
    let mut record = old.clone();
    record.attempts = record.attempts.saturating_add(1);
    record.last_attempt_at = Some(at);
    record.lease_owner = None;
    record.lease_until = None;
    match attempt.outcome.clone() {
        AttemptOutcome::Delivered => {
            record.status = CallbackStatus::Delivered;
            record.delivered_at = Some(at);
        }
        AttemptOutcome::Retry {
            error,
            next_attempt_at,
        } => {
            record.last_error = Some(error);
            record.next_attempt_at = next_attempt_at;
        }
        AttemptOutcome::Failed { error } => {
            record.status = CallbackStatus::Failed;
            record.last_error = Some(error);
        }
    }
    write(txn, Some(&old), &record)?;
    Ok(true)
}
