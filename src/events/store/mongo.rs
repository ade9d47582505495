//! Events on MongoDB. A move is one single-document write, so its event is written into the
//! document it moves (`events`, beside the user's ledger) and relayed from there into the
//! `events` collection, where the feed reads it.
//!
//! The feed's order is the relay's: one relay runs at a time, under a lease on the
//! `event_positions` document, which gives each batch a range of positions (`$inc` on `last`),
//! inserts the batch with them, removes it from its documents, and only then moves `committed`
//! past the range. Readers read up to `committed` and no further, so an event is never
//! positioned behind a reader that has already passed its place: ids made in one millisecond
//! on two instances, or an event whose move committed after a later one's, are placed when they
//! are relayed. A relay that dies leaves its range uncommitted: the next one (once the lease
//! has run out) inserts what was not inserted under new positions — an id already inserted is a
//! duplicate, skipped — and commits past both. The one case not covered: a relay stalled for
//! longer than its lease (30 s) between taking its range and inserting it, while another has
//! committed past it.

use std::{sync::OnceLock, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Document, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use super::{EventFeed, FeedPage, FeedQuery};
use crate::{
    events::{
        daily::{self, DayFigures},
        domain::{Event, EventType},
    },
    storage::{
        StoreError,
        mongo::{
            Deadline, Gather, Held, HeldIn, Index, IndexKind, MongoStore, REFEREES, REFERRERS,
            Schema, USERS, from_bson_datetime, insert_unordered, is_duplicate_key, store_error,
            to_bson_datetime,
        },
    },
};

pub(crate) const EVENTS: &str = "events";
const POSITIONS: &str = "event_positions";
/// The collections whose documents carry events waiting for the relay.
const SOURCES: [&str; 3] = [USERS, REFERRERS, REFEREES];
/// Documents relayed per batch.
const RELAY_BATCH: i64 = 100;
/// How long a relay holds the feed's positions before another may take them over.
const RELAY_LEASE: Duration = Duration::from_secs(30);

pub(crate) fn schema() -> Schema {
    let mut indexes = vec![
        Index::new(
            EVENTS,
            "position",
            doc! { "position": 1 },
            IndexKind::Unique,
        ),
        Index::new(
            EVENTS,
            "type_position",
            doc! { "type": 1, "position": 1 },
            IndexKind::Plain,
        ),
        // The daily figures of a program.
        Index::new(
            EVENTS,
            "program_type_timestamp",
            doc! { "program_id": 1, "type": 1, "timestamp": 1 },
            IndexKind::Plain,
        ),
        Index::new(
            EVENTS,
            "expires_at_ttl",
            doc! { "expires_at": 1 },
            IndexKind::Ttl,
        ),
    ];
    for source in SOURCES {
        indexes.push(Index::new(
            source,
            "events_id",
            doc! { "events.id": 1 },
            IndexKind::Sparse,
        ));
    }
    Schema {
        indexes,
        migrations: Vec::new(),
    }
}

/// An event as it waits inside the document of its move, and as the feed keeps it. Its data
/// is kept as JSON text: money stays exact, digit for digit, as the feed shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EventDoc {
    pub(crate) id: String,
    #[serde(rename = "type")]
    event_type: EventType,
    timestamp: mongodb::bson::DateTime,
    data: String,
}

impl EventDoc {
    pub(crate) fn from_event(event: &Event) -> Result<Self, StoreError> {
        Ok(Self {
            id: event.id.clone(),
            event_type: event.event_type,
            timestamp: to_bson_datetime(event.timestamp),
            data: event.data.to_string(),
        })
    }

    pub(crate) fn to_document(event: &Event) -> Result<Document, StoreError> {
        mongodb::bson::to_document(&Self::from_event(event)?)
            .map_err(|e| StoreError::Backend(format!("cannot encode event: {e}")))
    }

    fn into_event(self) -> Result<Event, StoreError> {
        Ok(Event {
            id: self.id,
            event_type: self.event_type,
            timestamp: from_bson_datetime(self.timestamp)?,
            data: serde_json::from_str(&self.data)
                .map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?,
        })
    }
}

/// An event in the feed: its place and when it expires.
#[derive(Debug, Serialize, Deserialize)]
struct FedEvent {
    #[serde(rename = "_id")]
    id: String,
    position: i64,
    #[serde(rename = "type")]
    event_type: EventType,
    timestamp: mongodb::bson::DateTime,
    data: String,
    expires_at: mongodb::bson::DateTime,
    /// The program of a credit's event, for the daily figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    program_id: Option<String>,
}

/// Names this process's relay in the lease.
fn relay_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

impl MongoStore {
    fn positions(&self) -> Collection<Document> {
        self.db.collection(POSITIONS)
    }

    /// Takes (or renews) the relay lease; `false` while another process holds it.
    async fn take_relay_lease(&self) -> Result<bool, StoreError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(RELAY_LEASE).unwrap_or_default();
        let taken = self
            .positions()
            .find_one_and_update(
                doc! { "_id": "feed", "$or": [
                    { "until": { "$lt": to_bson_datetime(now) } },
                    { "owner": relay_owner() },
                ] },
                doc! {
                    "$set": { "owner": relay_owner(), "until": to_bson_datetime(until) },
                    "$setOnInsert": { "last": 0_i64, "committed": 0_i64 },
                },
            )
            .upsert(true)
            .answered_within(self.timeout)
            .await?;
        match taken {
            Ok(_) => Ok(true),
            // The document exists and another process holds it.
            Err(err) if is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Relays the events waiting in their documents into the feed, a batch at a time, while
    /// this process holds the relay lease. Events older than `since` are dropped, not fed.
    async fn relay_events(
        &self,
        since: DateTime<Utc>,
        retention: chrono::Duration,
    ) -> Result<(), StoreError> {
        if !self.take_relay_lease().await? {
            return Ok(());
        }
        for source in SOURCES {
            let waiting = HeldIn {
                collection: source,
                array: "events",
                id: "id",
            };
            loop {
                let batch: Held<EventDoc> = self.holding(waiting, RELAY_BATCH).await?;
                if batch.holders.is_empty() {
                    break;
                }
                let mut events = batch.items;
                events.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
                let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
                let since = to_bson_datetime(since);
                events.retain(|e| e.timestamp >= since);
                let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let reserved = self
                    .positions()
                    .find_one_and_update(
                        doc! { "_id": "feed", "owner": relay_owner() },
                        doc! { "$inc": { "last": count } },
                    )
                    .return_document(ReturnDocument::Before)
                    .within(self.timeout)
                    .await?;
                let Some(reserved) = reserved else {
                    // The lease went to another process meanwhile: it relays the rest.
                    return Ok(());
                };
                let first = reserved.get_i64("last").unwrap_or(0).saturating_add(1);
                let fed = events
                    .into_iter()
                    .zip(first..)
                    .map(|(event, position)| {
                        let expires = from_bson_datetime(event.timestamp)? + retention;
                        let program_id = serde_json::from_str::<serde_json::Value>(&event.data)
                            .ok()
                            .and_then(|data| data.get("program_id")?.as_str().map(str::to_owned));
                        Ok(FedEvent {
                            program_id,
                            id: event.id,
                            position,
                            event_type: event.event_type,
                            timestamp: event.timestamp,
                            data: event.data,
                            expires_at: to_bson_datetime(expires),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                insert_unordered(&self.db.collection::<FedEvent>(EVENTS), fed, self.timeout)
                    .await?;
                self.pull_held(waiting, batch.holders, ids).await?;
                self.positions()
                    .update_one(
                        doc! { "_id": "feed", "owner": relay_owner() },
                        doc! { "$max": { "committed": first.saturating_add(count).saturating_sub(1) } },
                    )
                    .within(self.timeout)
                    .await?;
                if !batch.full {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventFeed for MongoStore {
    async fn feed(&self, query: FeedQuery<'_>) -> Result<FeedPage, StoreError> {
        let FeedQuery {
            types,
            after,
            limit,
            retention,
            ..
        } = query;
        let since = query.since();
        self.relay_events(since, retention).await?;
        let committed = self
            .positions()
            .find_one(doc! { "_id": "feed" })
            .within(self.timeout)
            .await?
            .and_then(|doc| doc.get_i64("committed").ok())
            .unwrap_or(0);
        let after_position = i64::try_from(after).unwrap_or(i64::MAX);
        let mut query = doc! { "position": { "$gt": after_position, "$lte": committed } };
        if !types.is_empty() {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            query.insert("type", doc! { "$in": names });
        }
        let docs: Vec<FedEvent> = self
            .db
            .collection::<FedEvent>(EVENTS)
            .find(query)
            .sort(doc! { "position": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        let next = docs
            .last()
            .map_or(after, |doc| u64::try_from(doc.position).unwrap_or(after));
        let since = to_bson_datetime(since);
        let events = docs
            .into_iter()
            .filter(|doc| doc.timestamp >= since)
            .map(|doc| {
                EventDoc {
                    id: doc.id,
                    event_type: doc.event_type,
                    timestamp: doc.timestamp,
                    data: doc.data,
                }
                .into_event()
            })
            .collect::<Result<_, _>>()?;
        Ok(FeedPage { events, next })
    }

    /// The TTL index on `expires_at` removes events by itself.
    async fn sweep(&self, _before: DateTime<Utc>, _limit: usize) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// One indexed query (`program_id, type, timestamp`) over the events kept, counted here: a
    /// day older than `EVENT_RETENTION` has no events left and reads as zeros.
    async fn program_days(
        &self,
        program_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        retention: chrono::Duration,
    ) -> Result<Vec<(chrono::NaiveDate, DayFigures)>, StoreError> {
        self.relay_events(now - retention, retention).await?;
        let names: Vec<&str> = daily::COUNTED.iter().map(|t| t.as_str()).collect();
        let docs: Vec<FedEvent> = self
            .db
            .collection::<FedEvent>(EVENTS)
            .find(doc! {
                "program_id": program_id,
                "type": { "$in": names },
                "timestamp": { "$gte": to_bson_datetime(since) },
            })
            .all_within(self.timeout)
            .await?;
        let mut days: Vec<(chrono::NaiveDate, DayFigures)> = Vec::new();
        for doc in docs {
            let event = EventDoc {
                id: doc.id,
                event_type: doc.event_type,
                timestamp: doc.timestamp,
                data: doc.data,
            }
            .into_event()?;
            let Some((_, day, event_type, amount)) = daily::tally(&event) else {
                continue;
            };
            match days.iter_mut().find(|(known, _)| *known == day) {
                Some((_, figures)) => figures.count(event_type, amount),
                None => {
                    let mut figures = DayFigures::default();
                    figures.count(event_type, amount);
                    days.push((day, figures));
                }
            }
        }
        Ok(days)
    }
}
