//! Webhooks on the embedded store: endpoints by id; deliveries by `<endpoint>:<event>` id, so
//! that an endpoint's deliveries lie side by side in event order; an index of pending ones by
//! (endpoint, due time) for claims, one by (endpoint, status) for lists, and one by creation
//! time for the retention sweep. A fan-out writes its deliveries and its position in one
//! transaction.

use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{DeliveryFilter, Health, WebhookStore};
use crate::{
    callbacks::store::Lease,
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Schema, all_records, backend, decode, get, get_in, put, ride,
        },
    },
    webhooks::domain::{Delivery, DeliveryStatus, Ended, WebhookEndpoint},
};

const WEBHOOKS: JsonTable = TableDefinition::new("webhooks");
const DELIVERIES: JsonTable = TableDefinition::new("webhook_deliveries");
/// `(endpoint, due ms, delivery)` of every pending delivery.
const DUE: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("webhook_deliveries_due");
/// `(endpoint, status, delivery)` of every delivery.
const BY_STATUS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("webhook_deliveries_by_status");
/// `(creation ms, delivery)` of every delivery.
const MADE: TableDefinition<(i64, &str), ()> = TableDefinition::new("webhook_deliveries_made");
/// `"position"`: the feed position up to which events have become deliveries.
const FAN_OUT: TableDefinition<&str, u64> = TableDefinition::new("webhook_fan_out");

pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![&WEBHOOKS, &DELIVERIES, &DUE, &BY_STATUS, &MADE, &FAN_OUT],
        migrations: Vec::new(),
    }
}

fn read_endpoint(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    get(table, id)
}

fn write_endpoint(txn: &WriteTransaction, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    put(txn, WEBHOOKS, endpoint.id.as_str(), endpoint)
}

fn read_delivery(txn: &WriteTransaction, id: &str) -> Result<Option<Delivery>, StoreError> {
    get_in(txn, DELIVERIES, id)
}

/// Writes a delivery and moves its index keys from what `old` had.
fn write_delivery(
    txn: &WriteTransaction,
    old: Option<&Delivery>,
    delivery: &Delivery,
) -> Result<(), StoreError> {
    let (endpoint, id) = (delivery.endpoint_id.as_str(), delivery.id.as_str());
    let mut due = txn.open_table(DUE).map_err(backend)?;
    let mut by_status = txn.open_table(BY_STATUS).map_err(backend)?;
    match old {
        Some(old) => {
            if old.status == DeliveryStatus::Pending {
                due.remove((endpoint, old.due_at().timestamp_millis(), id))
                    .map_err(backend)?;
            }
            by_status
                .remove((endpoint, old.status.as_str(), id))
                .map_err(backend)?;
        }
        None => {
            txn.open_table(MADE)
                .map_err(backend)?
                .insert((delivery.created_at.timestamp_millis(), id), ())
                .map_err(backend)?;
        }
    }
    if delivery.status == DeliveryStatus::Pending {
        due.insert((endpoint, delivery.due_at().timestamp_millis(), id), ())
            .map_err(backend)?;
    }
    by_status
        .insert((endpoint, delivery.status.as_str(), id), ())
        .map_err(backend)?;
    put(txn, DELIVERIES, id, delivery)
}

/// Removes a delivery and its index keys.
fn remove_delivery(txn: &WriteTransaction, delivery: &Delivery) -> Result<(), StoreError> {
    let (endpoint, id) = (delivery.endpoint_id.as_str(), delivery.id.as_str());
    if delivery.status == DeliveryStatus::Pending {
        txn.open_table(DUE)
            .map_err(backend)?
            .remove((endpoint, delivery.due_at().timestamp_millis(), id))
            .map_err(backend)?;
    }
    txn.open_table(BY_STATUS)
        .map_err(backend)?
        .remove((endpoint, delivery.status.as_str(), id))
        .map_err(backend)?;
    txn.open_table(MADE)
        .map_err(backend)?
        .remove((delivery.created_at.timestamp_millis(), id))
        .map_err(backend)?;
    txn.open_table(DELIVERIES)
        .map_err(backend)?
        .remove(id)
        .map_err(backend)?;
    Ok(())
}

/// The ids of an endpoint's deliveries of one status, in order.
fn ids_with_status(
    txn: &WriteTransaction,
    endpoint: &str,
    status: DeliveryStatus,
) -> Result<Vec<String>, StoreError> {
    let table = txn.open_table(BY_STATUS).map_err(backend)?;
    let status = status.as_str();
    let range = table
        .range((endpoint, status, "")..=(endpoint, status, "\u{10FFFF}"))
        .map_err(backend)?;
    range
        .map(|entry| {
            entry
                .map_err(backend)
                .map(|(key, _)| key.value().2.to_owned())
        })
        .collect()
}

/// The delivery ids of the first `limit` entries of an index range, each picked out of its key.
fn ids_in<K: redb::Key + 'static>(
    range: redb::Range<'_, K, ()>,
    limit: usize,
    id: impl Fn(K::SelfType<'_>) -> String,
) -> Result<Vec<String>, StoreError> {
    range
        .take(limit)
        .map(|entry| entry.map_err(backend).map(|(key, _)| id(key.value())))
        .collect()
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        self.write(move |txn| {
            ride(txn, None, Some(&endpoint))?;
            write_endpoint(txn, &endpoint)
        })
        .await
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        let id = id.to_owned();
        self.read(move |txn| read_endpoint(&txn.open_table(WEBHOOKS).map_err(backend)?, &id))
            .await
    }

    async fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        // Ids are version 7 UUIDs: in id order is in creation order.
        self.read(|txn| all_records(&txn.open_table(WEBHOOKS).map_err(backend)?))
            .await
    }

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let endpoint = endpoint.clone();
        self.write(move |txn| {
            let table = txn.open_table(WEBHOOKS).map_err(backend)?;
            let Some(before) = read_endpoint(&table, &endpoint.id)? else {
                return Ok(false);
            };
            drop(table);
            ride(txn, Some(&before), Some(&endpoint))?;
            write_endpoint(txn, &endpoint)?;
            Ok(true)
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let Some(removed) = txn
                .open_table(WEBHOOKS)
                .map_err(backend)?
                .remove(id.as_str())
                .map_err(backend)?
                .map(|bytes| decode::<WebhookEndpoint>(bytes.value()))
                .transpose()?
            else {
                return Ok(false);
            };
            ride(txn, Some(&removed), None)?;
            let ids: Vec<String> = {
                let table = txn.open_table(DELIVERIES).map_err(backend)?;
                let (start, end) = (format!("{id}:"), format!("{id};"));
                let range = table.range(start.as_str()..end.as_str()).map_err(backend)?;
                range
                    .map(|entry| {
                        entry
                            .map_err(backend)
                            .map(|(key, _)| key.value().to_owned())
                    })
                    .collect::<Result<_, _>>()?
            };
            for delivery_id in ids {
                if let Some(delivery) = read_delivery(txn, &delivery_id)? {
                    remove_delivery(txn, &delivery)?;
                }
            }
            Ok(true)
        })
        .await
    }

    async fn mark_webhook(&self, id: &str, health: Health) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let table = txn.open_table(WEBHOOKS).map_err(backend)?;
            let Some(mut endpoint) = read_endpoint(&table, &id)? else {
                return Ok(());
            };
            drop(table);
            let changed = match health {
                Health::Healthy => endpoint.failing_since.take().is_some(),
                Health::Failing(at) => {
                    endpoint.failing_since.is_none() && endpoint.failing_since.replace(at).is_none()
                }
                Health::Disabled(reason) => {
                    endpoint.enabled && {
                        endpoint.enabled = false;
                        endpoint.disabled_reason = Some(reason);
                        true
                    }
                }
            };
            if changed {
                write_endpoint(txn, &endpoint)?;
            }
            Ok(())
        })
        .await
    }

    async fn fan_out_position(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            Ok(txn
                .open_table(FAN_OUT)
                .map_err(backend)?
                .get("position")
                .map_err(backend)?
                .map_or(0, |value| value.value()))
        })
        .await
    }

    async fn fan_out(
        &self,
        deliveries: Vec<Delivery>,
        next: u64,
        _keep_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(move |txn| {
            let endpoints = txn.open_table(WEBHOOKS).map_err(backend)?;
            let mut known: Vec<String> = Vec::new();
            for delivery in &deliveries {
                // An endpoint deleted meanwhile gets nothing.
                if !known.contains(&delivery.endpoint_id) {
                    if read_endpoint(&endpoints, &delivery.endpoint_id)?.is_none() {
                        continue;
                    }
                    known.push(delivery.endpoint_id.clone());
                }
                if read_delivery(txn, &delivery.id)?.is_none() {
                    write_delivery(txn, None, delivery)?;
                }
            }
            let mut position = txn.open_table(FAN_OUT).map_err(backend)?;
            let current = position
                .get("position")
                .map_err(backend)?
                .map_or(0, |value| value.value());
            position
                .insert("position", current.max(next))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        lease: &Lease,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (endpoint, now, lease) = (endpoint_id.to_owned(), lease.at, lease.clone());
        self.write(move |txn| {
            let ids = {
                let due = txn.open_table(DUE).map_err(backend)?;
                let range = due
                    .range(
                        (endpoint.as_str(), i64::MIN, "")
                            ..=(endpoint.as_str(), now.timestamp_millis(), "\u{10FFFF}"),
                    )
                    .map_err(backend)?;
                ids_in(range, limit, |(_, _, id)| id.to_owned())?
            };
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                let Some(old) = read_delivery(txn, &id)? else {
                    continue;
                };
                let mut delivery = old.clone();
                delivery.lease_owner = Some(lease.owner.clone());
                delivery.lease_until = Some(lease.until);
                write_delivery(txn, Some(&old), &delivery)?;
                claimed.push(delivery);
            }
            Ok(claimed)
        })
        .await
    }

    async fn record_deliveries(&self, owner: &str, ended: Vec<Ended>) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.write(move |txn| {
            let mut recorded = 0;
            for attempt in &ended {
                let Some(old) = read_delivery(txn, &attempt.delivery_id)? else {
                    continue;
                };
                if let Some(delivery) = old.after_attempt(&owner, attempt) {
                    write_delivery(txn, Some(&old), &delivery)?;
                    recorded += 1;
                }
            }
            Ok(recorded)
        })
        .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let filter = filter.clone();
        self.read(move |txn| {
            let table = txn.open_table(DELIVERIES).map_err(backend)?;
            let endpoint = filter.endpoint_id.as_str();
            let after = filter.after.as_deref();
            let mut page = Vec::new();
            let mut take = |id: &str| -> Result<bool, StoreError> {
                if let Some(bytes) = table.get(id).map_err(backend)? {
                    page.push(decode::<Delivery>(bytes.value())?);
                }
                Ok(page.len() < filter.limit)
            };
            match filter.status {
                Some(status) => {
                    let index = txn.open_table(BY_STATUS).map_err(backend)?;
                    let status = status.as_str();
                    let start = match after {
                        Some(id) => Bound::Excluded((endpoint, status, id)),
                        None => Bound::Included((endpoint, status, "")),
                    };
                    let end = Bound::Included((endpoint, status, "\u{10FFFF}"));
                    for entry in index.range((start, end)).map_err(backend)? {
                        let (key, _) = entry.map_err(backend)?;
                        if !take(key.value().2)? {
                            break;
                        }
                    }
                }
                None => {
                    let first = format!("{endpoint}:");
                    let end = format!("{endpoint};");
                    let start = match after {
                        Some(id) => Bound::Excluded(id),
                        None => Bound::Included(first.as_str()),
                    };
                    let ids: Vec<String> = table
                        .range::<&str>((start, Bound::Excluded(end.as_str())))
                        .map_err(backend)?
                        .take(filter.limit)
                        .map(|entry| {
                            entry
                                .map_err(backend)
                                .map(|(key, _)| key.value().to_owned())
                        })
                        .collect::<Result<_, _>>()?;
                    for id in ids {
                        if !take(&id)? {
                            break;
                        }
                    }
                }
            }
            Ok(page)
        })
        .await
    }

    async fn recover_deliveries(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let endpoint = endpoint_id.to_owned();
        self.write(move |txn| {
            let mut queued = 0;
            for id in ids_with_status(txn, &endpoint, DeliveryStatus::Failed)? {
                let Some(old) = read_delivery(txn, &id)? else {
                    continue;
                };
                if old.created_at >= since {
                    write_delivery(txn, Some(&old), &old.recovered(now))?;
                    queued += 1;
                }
            }
            ride(txn, None, Some(&queued))?;
            Ok(queued)
        })
        .await
    }

    async fn sweep_deliveries(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.write(move |txn| {
            let ids = {
                let made = txn.open_table(MADE).map_err(backend)?;
                let range = made
                    .range(..(before.timestamp_millis(), ""))
                    .map_err(backend)?;
                ids_in(range, limit, |(_, id)| id.to_owned())?
            };
            let mut removed = 0;
            for id in ids {
                if let Some(delivery) = read_delivery(txn, &id)? {
                    remove_delivery(txn, &delivery)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
