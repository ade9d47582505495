//! What webhooks need from storage: endpoints, the position up to which the feed's events have
//! been turned into deliveries, and the deliveries themselves, claimed under leases a batch at
//! a time and recorded a batch at a time.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::{Delivery, DeliveryStatus, DisabledReason, Ended, WebhookEndpoint};
use crate::{callbacks::store::Lease, storage::StoreError};

/// A change of an endpoint's health, from what its deliveries came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// A delivery succeeded: the run of failures, if any, is over.
    Healthy,
    /// A delivery failed at this time: the run of failures starts here unless one has begun.
    Failing(DateTime<Utc>),
    /// Switched off (unless it already is).
    Disabled(DisabledReason),
}

/// Which deliveries of an endpoint a page lists.
#[derive(Clone, Debug)]
pub struct DeliveryFilter {
    pub endpoint_id: String,
    pub status: Option<DeliveryStatus>,
    /// The id of the last delivery of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    async fn webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Every endpoint, oldest first (a handful).
    async fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Writes an endpoint an admin changed; `false` when it is gone.
    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Removes an endpoint and every delivery of it; `false` when there was none.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;

    /// Notes what an endpoint's deliveries came to (see [`Health`]).
    async fn mark_webhook(&self, id: &str, health: Health) -> Result<(), StoreError>;

    /// The feed position up to which events have become deliveries.
    async fn fan_out_position(&self) -> Result<u64, StoreError>;

    /// Adds deliveries (one already there is left as it is) and moves the fan-out position to
    /// `next` (never back). Deliveries are kept until `keep_until` at least.
    async fn fan_out(
        &self,
        deliveries: Vec<Delivery>,
        next: u64,
        keep_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` pending deliveries of one endpoint due at the lease's time, under
    /// `lease`.
    async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        lease: &Lease,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records attempts of deliveries `owner` holds; how many it recorded (the others' leases
    /// were lost).
    async fn record_deliveries(&self, owner: &str, ended: Vec<Ended>) -> Result<usize, StoreError>;

    /// A page of an endpoint's deliveries, in id order (the order of their events).
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;

    /// Queues again, due at `now`, every failed delivery of the endpoint made at or after
    /// `since`; how many.
    async fn recover_deliveries(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Removes up to `limit` deliveries made before `before`; how many. A store that expires
    /// them by itself (a TTL index) removes none here.
    async fn sweep_deliveries(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StoreError>;
}
