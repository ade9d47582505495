//! Webhooks on MongoDB: `webhooks` (one document an endpoint), `webhook_deliveries` (one a
//! delivery, `_id` = `<endpoint>:<event>`, so that two instances fanning out the same event
//! make one delivery: the second insert is a duplicate, skipped) and `webhook_fan_out` (the
//! feed position reached). A fan-out inserts its deliveries, then moves the position with
//! `$max`: a crash between the two leaves the position behind, and the next fan-out inserts the
//! same deliveries again, as duplicates, skipped. Claims and records work as Part C's outbox: a
//! batch claimed in three round trips, deliveries recorded with one `updateMany` per answer
//! status. Deliveries expire with a TTL index, as events do.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Bson, Document, doc},
};
use serde::{Deserialize, Serialize};

use super::{DeliveryFilter, Health, WebhookStore};
use crate::{
    callbacks::{
        domain::AttemptOutcome,
        store::{Lease, mongo::set_undelivered},
    },
    events::EventType,
    storage::{
        StoreError,
        mongo::{
            CARRIED, Carried, Deadline, Gather, Index, IndexKind, MongoStore, Schema, claim_batch,
            from_bson_datetime, insert_unordered, to_bson, to_bson_datetime, to_document,
        },
        rider,
    },
    webhooks::domain::{Delivery, DeliveryStatus, Ended, WebhookEndpoint},
};

pub(crate) const WEBHOOKS: &str = "webhooks";
/// How often an admin's change reads the endpoint again when the worker changed it between
/// the read and the write.
const MAX_REPLACE_RACES: usize = 8;
const DELIVERIES: &str = "webhook_deliveries";
const FAN_OUT: &str = "webhook_fan_out";

pub(crate) fn schema() -> Schema {
    let plain = IndexKind::Plain;
    Schema::indexes(vec![
        Index::new(
            DELIVERIES,
            "endpoint_status_due_at",
            doc! { "endpoint_id": 1, "status": 1, "due_at": 1 },
            plain,
        ),
        Index::new(
            DELIVERIES,
            "endpoint_status_id",
            doc! { "endpoint_id": 1, "status": 1, "_id": 1 },
            plain,
        ),
        Index::new(
            DELIVERIES,
            "endpoint_id",
            doc! { "endpoint_id": 1, "_id": 1 },
            plain,
        ),
        Index::new(
            DELIVERIES,
            "expires_at_ttl",
            doc! { "expires_at": 1 },
            IndexKind::Ttl,
        ),
    ])
}

#[derive(Serialize, Deserialize)]
struct EndpointDoc {
    #[serde(rename = "_id")]
    key: String,
    #[serde(flatten)]
    endpoint: WebhookEndpoint,
}

#[derive(Serialize, Deserialize)]
struct DeliveryDoc {
    #[serde(rename = "_id")]
    id: String,
    endpoint_id: String,
    event_id: String,
    event_type: EventType,
    body: String,
    status: DeliveryStatus,
    attempts: i64,
    last_status: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: mongodb::bson::DateTime,
    /// The next attempt, or the end of the lease while a worker holds it.
    due_at: mongodb::bson::DateTime,
    delivered_at: Option<mongodb::bson::DateTime>,
    created_at: mongodb::bson::DateTime,
    expires_at: mongodb::bson::DateTime,
    lease_owner: Option<String>,
    #[serde(default)]
    claim: Option<String>,
}

impl DeliveryDoc {
    fn new(delivery: &Delivery, keep_until: DateTime<Utc>) -> Self {
        Self {
            id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type,
            body: delivery.body.clone(),
            status: delivery.status,
            attempts: i64::from(delivery.attempts),
            last_status: delivery.last_status.map(i32::from),
            last_error: delivery.last_error.clone(),
            next_attempt_at: to_bson_datetime(delivery.next_attempt_at),
            due_at: to_bson_datetime(delivery.due_at()),
            delivered_at: delivery.delivered_at.map(to_bson_datetime),
            created_at: to_bson_datetime(delivery.created_at),
            expires_at: to_bson_datetime(keep_until),
            lease_owner: delivery.lease_owner.clone(),
            claim: None,
        }
    }

    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let lease_until = match self.lease_owner {
            Some(_) => Some(from_bson_datetime(self.due_at)?),
            None => None,
        };
        Ok(Delivery {
            id: self.id,
            endpoint_id: self.endpoint_id,
            event_id: self.event_id,
            event_type: self.event_type,
            body: self.body,
            status: self.status,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            next_attempt_at: from_bson_datetime(self.next_attempt_at)?,
            delivered_at: self.delivered_at.map(from_bson_datetime).transpose()?,
            created_at: from_bson_datetime(self.created_at)?,
            lease_owner: self.lease_owner,
            lease_until,
        })
    }
}

fn many(docs: Vec<DeliveryDoc>) -> Result<Vec<Delivery>, StoreError> {
    docs.into_iter().map(DeliveryDoc::into_delivery).collect()
}

impl MongoStore {
    fn webhook_endpoints(&self) -> Collection<EndpointDoc> {
        self.db.collection(WEBHOOKS)
    }

    fn webhook_deliveries(&self) -> Collection<DeliveryDoc> {
        self.db.collection(DELIVERIES)
    }
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let record = EndpointDoc {
            key: endpoint.id.clone(),
            endpoint: endpoint.clone(),
        };
        let id = Bson::String(endpoint.id.clone());
        self.insert_made(WEBHOOKS, &record, endpoint, id).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self
            .webhook_endpoints()
            .find_one(doc! { "_id": id })
            .within(self.timeout)
            .await?
            .map(|doc| doc.endpoint))
    }

    async fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let docs = self
            .webhook_endpoints()
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .all_within(self.timeout)
            .await?;
        Ok(docs.into_iter().map(|doc| doc.endpoint).collect())
    }

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let record = EndpointDoc {
            key: endpoint.id.clone(),
            endpoint: endpoint.clone(),
        };
        // Read, then write on the condition that what the worker changes (its health) and the
        // last admin change are as read, so that the audit entry it carries says what was.
        for _ in 0..MAX_REPLACE_RACES {
            let Some(before) = self.webhook(&endpoint.id).await? else {
                return Ok(false);
            };
            let Some(carried) = Carried::of(Some(&before), Some(endpoint))? else {
                let result = self
                    .webhook_endpoints()
                    .replace_one(doc! { "_id": &endpoint.id }, &record)
                    .within(self.timeout)
                    .await?;
                return Ok(result.matched_count == 1);
            };
            let stored = to_document(&EndpointDoc {
                key: before.id.clone(),
                endpoint: before,
            })?;
            let mut filter = doc! { "_id": &endpoint.id };
            for field in ["enabled", "failing_since", "updated_at"] {
                filter.insert(field, stored.get(field).cloned().unwrap_or(Bson::Null));
            }
            let mut set = to_document(&record)?;
            set.remove("_id");
            let result = self
                .webhook_endpoints()
                .update_one(
                    filter,
                    doc! { "$set": set, "$push": { CARRIED: carried.document.clone() } },
                )
                .within(self.timeout)
                .await?;
            if result.matched_count == 1 {
                carried.done(WEBHOOKS, Bson::String(endpoint.id.clone()));
                return Ok(true);
            }
        }
        Err(StoreError::Backend(
            "the endpoint kept changing under this change".to_owned(),
        ))
    }

    /// The endpoint first, then its deliveries: a crash between leaves deliveries that no
    /// worker claims (no endpoint) and that expire with the rest.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        // A removed document cannot carry its audit entry: it is written first.
        rider::ahead().await?;
        let result = self
            .webhook_endpoints()
            .delete_one(doc! { "_id": id })
            .within(self.timeout)
            .await?;
        if result.deleted_count == 0 {
            return Ok(false);
        }
        self.webhook_deliveries()
            .delete_many(doc! { "endpoint_id": id })
            .within(self.timeout)
            .await?;
        Ok(true)
    }

    async fn mark_webhook(&self, id: &str, health: Health) -> Result<(), StoreError> {
        let (filter, set) = match health {
            Health::Healthy => (
                doc! { "_id": id, "failing_since": { "$ne": Bson::Null } },
                doc! { "failing_since": Bson::Null },
            ),
            Health::Failing(at) => (
                doc! { "_id": id, "failing_since": Bson::Null },
                doc! { "failing_since": to_bson(&at)? },
            ),
            Health::Disabled(reason) => (
                doc! { "_id": id, "enabled": true },
                doc! { "enabled": false, "disabled_reason": to_bson(&reason)? },
            ),
        };
        self.webhook_endpoints()
            .update_one(filter, doc! { "$set": set })
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn fan_out_position(&self) -> Result<u64, StoreError> {
        let found = self
            .db
            .collection::<Document>(FAN_OUT)
            .find_one(doc! { "_id": "position" })
            .within(self.timeout)
            .await?;
        Ok(found
            .and_then(|doc| doc.get_i64("position").ok())
            .and_then(|position| u64::try_from(position).ok())
            .unwrap_or(0))
    }

    async fn fan_out(
        &self,
        deliveries: Vec<Delivery>,
        next: u64,
        keep_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let docs: Vec<DeliveryDoc> = deliveries
            .iter()
            .map(|delivery| DeliveryDoc::new(delivery, keep_until))
            .collect();
        insert_unordered(&self.webhook_deliveries(), docs, self.timeout).await?;
        let next = i64::try_from(next)
            .map_err(|_| StoreError::Backend(format!("feed position {next} is too large")))?;
        self.db
            .collection::<Document>(FAN_OUT)
            .update_one(
                doc! { "_id": "position" },
                doc! { "$max": { "position": next } },
            )
            .upsert(true)
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        lease: &Lease,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let due = doc! {
            "endpoint_id": endpoint_id,
            "status": to_bson(&DeliveryStatus::Pending)?,
            "due_at": { "$lte": to_bson_datetime(lease.at) },
        };
        let docs = claim_batch(&self.webhook_deliveries(), due, lease, limit, self.timeout).await?;
        many(docs)
    }

    /// The deliveries that succeeded in one `updateMany` per answer status (they set the same
    /// fields; the batch's last attempt time stands for all); each failure on its own, as it
    /// carries its own error and due time.
    async fn record_deliveries(&self, owner: &str, ended: Vec<Ended>) -> Result<usize, StoreError> {
        let pending = to_bson(&DeliveryStatus::Pending)?;
        let mut delivered: BTreeMap<Option<u16>, (Vec<String>, DateTime<Utc>)> = BTreeMap::new();
        let mut recorded = 0;
        for attempt in ended {
            let held = doc! {
                "_id": &attempt.delivery_id,
                "lease_owner": owner,
                "status": pending.clone(),
            };
            if !attempt.sent {
                // Handed back unsent: due again at its own next attempt.
                if let AttemptOutcome::Retry {
                    next_attempt_at, ..
                } = attempt.outcome
                {
                    let result = self
                        .webhook_deliveries()
                        .update_one(
                            held,
                            doc! { "$set": {
                                "lease_owner": Bson::Null,
                                "due_at": to_bson_datetime(next_attempt_at),
                            } },
                        )
                        .within(self.timeout)
                        .await?;
                    recorded += usize::try_from(result.matched_count).unwrap_or(0);
                }
                continue;
            }
            let mut set = doc! {
                "lease_owner": Bson::Null,
                "last_status": attempt.status.map(i32::from),
            };
            match attempt.outcome {
                AttemptOutcome::Delivered => {
                    let group = delivered
                        .entry(attempt.status)
                        .or_insert_with(|| (Vec::new(), attempt.at));
                    group.0.push(attempt.delivery_id);
                    group.1 = group.1.max(attempt.at);
                    continue;
                }
                undelivered => {
                    set_undelivered(&mut set, undelivered, to_bson(&DeliveryStatus::Failed)?);
                }
            }
            let result = self
                .webhook_deliveries()
                .update_one(held, doc! { "$set": set, "$inc": { "attempts": 1 } })
                .within(self.timeout)
                .await?;
            recorded += usize::try_from(result.matched_count).unwrap_or(0);
        }
        for (status, (ids, at)) in delivered {
            let result = self
                .webhook_deliveries()
                .update_many(
                    doc! { "_id": { "$in": ids }, "lease_owner": owner, "status": pending.clone() },
                    doc! {
                        "$set": {
                            "lease_owner": Bson::Null,
                            "status": to_bson(&DeliveryStatus::Delivered)?,
                            "delivered_at": to_bson_datetime(at),
                            "last_status": status.map(i32::from),
                        },
                        "$inc": { "attempts": 1 },
                    },
                )
                .within(self.timeout)
                .await?;
            recorded += usize::try_from(result.matched_count).unwrap_or(usize::MAX);
        }
        Ok(recorded)
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let mut query = doc! { "endpoint_id": &filter.endpoint_id };
        if let Some(status) = filter.status {
            query.insert("status", to_bson(&status)?);
        }
        if let Some(after) = &filter.after {
            query.insert("_id", doc! { "$gt": after });
        }
        let docs = self
            .webhook_deliveries()
            .find(query)
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        many(docs)
    }

    async fn recover_deliveries(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // Many documents change: the audit entry is written first.
        rider::ahead().await?;
        let now = to_bson_datetime(now);
        let result = self
            .webhook_deliveries()
            .update_many(
                doc! {
                    "endpoint_id": endpoint_id,
                    "status": to_bson(&DeliveryStatus::Failed)?,
                    "created_at": { "$gte": to_bson_datetime(since) },
                },
                doc! { "$set": {
                    "status": to_bson(&DeliveryStatus::Pending)?,
                    "attempts": 0_i64,
                    "next_attempt_at": now,
                    "due_at": now,
                    "lease_owner": Bson::Null,
                } },
            )
            .within(self.timeout)
            .await?;
        Ok(result.modified_count)
    }

    async fn sweep_deliveries(
        &self,
        _before: DateTime<Utc>,
        _limit: usize,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }
}
