//! What the feed needs from storage. Events are written by the stores of the capabilities whose
//! moves they record, inside those moves (see `joint`); this trait reads them back in the order
//! they were written and removes them once they are older than the retention.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    daily::DayFigures,
    domain::{Event, EventType},
};
use crate::storage::StoreError;

/// A page of the feed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedPage {
    pub events: Vec<Event>,
    /// The position after the last event read (or the one asked from, when none was): where
    /// the next page starts.
    pub next: u64,
}

/// A read of the feed: up to `limit` events of `types` (every type when empty) written after
/// position `after`, leaving out those older than `retention` at `now`.
#[derive(Clone, Copy, Debug)]
pub struct FeedQuery<'a> {
    pub types: &'a [EventType],
    pub after: u64,
    pub limit: usize,
    pub now: DateTime<Utc>,
    pub retention: chrono::Duration,
}

impl FeedQuery<'_> {
    /// The oldest time an event may have and still be read.
    pub fn since(&self) -> DateTime<Utc> {
        self.now - self.retention
    }
}

#[async_trait]
pub trait EventFeed: Send + Sync {
    /// The events `query` asks for, in the order they were written.
    async fn feed(&self, query: FeedQuery<'_>) -> Result<FeedPage, StoreError>;

    /// Removes up to `limit` of the events older than `before`; how many it removed. A store
    /// that expires events by itself (a TTL index) removes none here.
    async fn sweep(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError>;

    /// A program's figures per UTC day from the day of `since` on (days without activity may be
    /// left out, and a day may come in parts, to be summed).
    async fn program_days(
        &self,
        program_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        retention: chrono::Duration,
    ) -> Result<Vec<(chrono::NaiveDate, DayFigures)>, StoreError>;
}
