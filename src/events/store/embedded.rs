//! Events in the embedded store: one table keyed by a sequence number given in the write
//! transaction of the move (redb runs one write transaction at a time, so the numbers follow
//! the commits), an index by type and one by time for the retention sweep.

use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{EventFeed, FeedPage, FeedQuery};
use crate::{
    events::{
        daily::{self, DayFigures},
        domain::{Event, EventType},
    },
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, Migration, Schema, all_records, backend, decode, encode, get, millis,
            put,
        },
    },
};

/// Events by position.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Positions by (type, position).
const EVENTS_BY_TYPE: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_type");
/// Positions by (event ms, position), for the retention sweep.
const EVENT_TIMES: TableDefinition<(i64, u64), ()> = TableDefinition::new("event_times");
/// The last position given (`"last"`): positions never go back, even once every event is swept.
const EVENT_POSITIONS: TableDefinition<&str, u64> = TableDefinition::new("event_positions");
/// `(program id, UTC day as days since 0001-01-01)` → that day's figures (JSON), counted in the
/// transaction of each counted event and never swept.
const PROGRAM_DAYS: TableDefinition<(&str, i32), &[u8]> = TableDefinition::new("program_days");

pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![
            &EVENTS,
            &EVENTS_BY_TYPE,
            &EVENT_TIMES,
            &EVENT_POSITIONS,
            &PROGRAM_DAYS,
        ],
        migrations: vec![Migration {
            version: 6,
            name: "daily program figures from the events kept",
            run: Box::new(count_kept_events),
        }],
    }
}

/// Counts the events already kept into the daily figures (older ones were swept).
fn count_kept_events(txn: &WriteTransaction) -> Result<(), StoreError> {
    let records: Vec<EventRecord> = all_records(&txn.open_table(EVENTS).map_err(backend)?)?;
    for event in records.into_iter().map(EventRecord::into_event) {
        count_day(txn, &event)?;
    }
    Ok(())
}

/// Adds a counted event to its program's day.
fn count_day(txn: &WriteTransaction, event: &Event) -> Result<(), StoreError> {
    let Some((program, day, event_type, amount)) = daily::tally(event) else {
        return Ok(());
    };
    let mut days = txn.open_table(PROGRAM_DAYS).map_err(backend)?;
    let key = (program.as_str(), day.num_days_from_ce());
    let mut figures: DayFigures = get(&days, key)?.unwrap_or_default();
    figures.count(event_type, amount);
    let bytes = encode(&figures)?;
    days.insert(key, bytes.as_slice()).map_err(backend)?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct EventRecord {
    id: String,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(rename = "timestamp_ms", with = "millis")]
    timestamp: DateTime<Utc>,
    data: serde_json::Value,
}

impl EventRecord {
    fn into_event(self) -> Event {
        Event {
            id: self.id,
            event_type: self.event_type,
            timestamp: self.timestamp,
            data: self.data,
        }
    }
}

/// Appends `event` at the next position, in the caller's transaction.
pub(crate) fn append(txn: &WriteTransaction, event: &Event) -> Result<(), StoreError> {
    let mut positions = txn.open_table(EVENT_POSITIONS).map_err(backend)?;
    let position = positions
        .get("last")
        .map_err(backend)?
        .map_or(0, |last| last.value())
        .saturating_add(1);
    positions.insert("last", position).map_err(backend)?;
    let record = EventRecord {
        id: event.id.clone(),
        event_type: event.event_type,
        timestamp: event.timestamp,
        data: event.data.clone(),
    };
    put(txn, EVENTS, position, &record)?;
    txn.open_table(EVENTS_BY_TYPE)
        .map_err(backend)?
        .insert((event.event_type.as_str(), position), ())
        .map_err(backend)?;
    txn.open_table(EVENT_TIMES)
        .map_err(backend)?
        .insert((event.timestamp.timestamp_millis(), position), ())
        .map_err(backend)?;
    count_day(txn, event)
}

#[async_trait]
impl EventFeed for EmbeddedStore {
    async fn feed(&self, query: FeedQuery<'_>) -> Result<FeedPage, StoreError> {
        let FeedQuery { after, limit, .. } = query;
        let types = query.types.to_vec();
        let since = query.since();
        self.read(move |txn| {
            let events = txn.open_table(EVENTS).map_err(backend)?;
            // The positions to read, in order: every event, or the merged ranges of the types.
            let positions: Vec<u64> = if types.is_empty() {
                let mut positions = Vec::new();
                for entry in events
                    .range((Bound::Excluded(after), Bound::Unbounded))
                    .map_err(backend)?
                    .take(limit)
                {
                    positions.push(entry.map_err(backend)?.0.value());
                }
                positions
            } else {
                let by_type = txn.open_table(EVENTS_BY_TYPE).map_err(backend)?;
                let mut positions = Vec::new();
                for event_type in &types {
                    let name = event_type.as_str();
                    for entry in by_type
                        .range((name, after.saturating_add(1))..=(name, u64::MAX))
                        .map_err(backend)?
                        .take(limit)
                    {
                        positions.push(entry.map_err(backend)?.0.value().1);
                    }
                }
                positions.sort_unstable();
                positions.truncate(limit);
                positions
            };
            let mut page = FeedPage {
                events: Vec::with_capacity(positions.len()),
                next: positions.last().copied().unwrap_or(after),
            };
            for position in positions {
                let Some(bytes) = events.get(position).map_err(backend)? else {
                    continue;
                };
                let event = decode::<EventRecord>(bytes.value())?.into_event();
                if event.timestamp >= since {
                    page.events.push(event);
                }
            }
            Ok(page)
        })
        .await
    }

    async fn sweep(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError> {
        self.write(move |txn| {
            let mut times = txn.open_table(EVENT_TIMES).map_err(backend)?;
            let mut expired = Vec::new();
            for entry in times
                .range((i64::MIN, 0)..(before.timestamp_millis(), 0))
                .map_err(backend)?
                .take(limit)
            {
                expired.push(entry.map_err(backend)?.0.value());
            }
            let mut events = txn.open_table(EVENTS).map_err(backend)?;
            let mut by_type = txn.open_table(EVENTS_BY_TYPE).map_err(backend)?;
            for (ms, position) in &expired {
                times.remove((*ms, *position)).map_err(backend)?;
                let removed = events.remove(*position).map_err(backend)?;
                if let Some(bytes) = removed {
                    let record: EventRecord = decode(bytes.value())?;
                    by_type
                        .remove((record.event_type.as_str(), *position))
                        .map_err(backend)?;
                }
            }
            Ok(expired.len())
        })
        .await
    }

    async fn program_days(
        &self,
        program_id: &str,
        since: DateTime<Utc>,
        _now: DateTime<Utc>,
        _retention: chrono::Duration,
    ) -> Result<Vec<(NaiveDate, DayFigures)>, StoreError> {
        let program = program_id.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(PROGRAM_DAYS).map_err(backend)?;
            let first = since.date_naive().num_days_from_ce();
            let mut days = Vec::new();
            for entry in table
                .range((program.as_str(), first)..=(program.as_str(), i32::MAX))
                .map_err(backend)?
            {
                let (key, bytes) = entry.map_err(backend)?;
                let Some(day) = NaiveDate::from_num_days_from_ce_opt(key.value().1) else {
                    continue;
                };
                days.push((day, decode(bytes.value())?));
            }
            Ok(days)
        })
        .await
    }
}
