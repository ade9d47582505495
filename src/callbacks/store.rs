//! The outbox of credit events. Events are written by the indication stores, inside the state
//! change that causes them; the worker claims due ones under a lease and records each attempt.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::{AttemptOutcome, CallbackFilter, CallbackStatus, CreditEvent};
use crate::storage::StoreError;

/// A claim on due events: what is due at `at` may be claimed; until `until`, no other worker
/// may claim them.
#[derive(Clone, Debug)]
pub struct Lease {
    /// Who holds it: one value per worker.
    pub owner: String,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Lease {
    /// `owner`'s claim from `now` for `length`.
    pub fn of(owner: &str, now: DateTime<Utc>, length: std::time::Duration) -> Self {
        Self {
            owner: owner.to_owned(),
            at: now,
            until: now
                + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::seconds(60)),
        }
    }
}

/// One attempt to record: the event, when the attempt ended and what it came to.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub id: String,
    pub at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
}

/// What an admin's "retry now" did.
#[derive(Clone, Debug, PartialEq)]
pub enum Requeue {
    Queued(CreditEvent),
    AlreadyDelivered,
    NotFound,
}

#[async_trait]
pub trait CallbackOutbox: Send + Sync {
    /// Events matching the filter, oldest first (by creation, then id), at most `limit`.
    async fn list(&self, filter: &CallbackFilter) -> Result<Vec<CreditEvent>, StoreError>;

    async fn get(&self, id: &str) -> Result<Option<CreditEvent>, StoreError>;

    /// How many events are `pending`.
    async fn pending_count(&self) -> Result<u64, StoreError>;

    /// Claims up to `limit` pending events due at the lease's time whose lease (if any) has
    /// expired, each in one atomic step, and returns them. An event claimed here is not due
    /// again until the lease expires or its attempt is recorded.
    async fn claim_due(&self, lease: &Lease, limit: usize) -> Result<Vec<CreditEvent>, StoreError>;

    /// Records an attempt of an event this owner holds the lease of, and releases the lease.
    /// `false` (nothing written) when the lease was lost to another worker meanwhile.
    async fn record_attempt(&self, owner: &str, attempt: Attempt) -> Result<bool, StoreError>;

    /// Records several attempts, as [`Self::record_attempt`] each, in as few writes as the
    /// store can: how many were recorded (the others' leases were lost).
    async fn record_attempts(
        &self,
        owner: &str,
        attempts: Vec<Attempt>,
    ) -> Result<usize, StoreError> {
        let mut recorded = 0;
        for attempt in attempts {
            recorded += usize::from(self.record_attempt(owner, attempt).await?);
        }
        Ok(recorded)
    }

    /// Makes a `pending` or `failed` event due at `now` (its attempts are kept).
    async fn requeue(&self, id: &str, now: DateTime<Utc>) -> Result<Requeue, StoreError>;
}

/// Whether an event passes a filter's status and user (not its cursor or limit).
pub(crate) fn matches(filter: &CallbackFilter, event: &CreditEvent) -> bool {
    filter
        .status
        .is_none_or(|s: CallbackStatus| s == event.status)
        && filter
            .user_hash
            .as_ref()
            .is_none_or(|h| *h == event.user_hash)
}
