//! Entries on the embedded store: one table by id. Ids are version 7 UUIDs, so the table read
//! backwards is newest first, and a time range is an id range.

use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{TableDefinition, WriteTransaction};

use super::AuditLog;
use crate::{
    audit::domain::{AuditEntry, AuditFilter, Changes},
    storage::{
        StoreError,
        embedded::{EmbeddedStore, JsonTable, Schema, backend, decode, get, get_in, put},
        rider::Place,
    },
};

const AUDIT: JsonTable = TableDefinition::new("audit");

/// Entries read per page at most, filtered or not: a narrow filter over a long log may give a
/// short page with a `next`.
const SCAN_BUDGET: usize = 5_000;

pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![&AUDIT],
        migrations: Vec::new(),
    }
}

/// The first id a version 7 UUID made at `at` can have.
fn id_floor(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

/// Writes `entry` in `txn`, the transaction of its change.
pub(crate) fn write_entry(txn: &WriteTransaction, entry: &AuditEntry) -> Result<(), StoreError> {
    put(txn, AUDIT, entry.id.as_str(), entry)
}

#[async_trait]
impl AuditLog for EmbeddedStore {
    async fn insert_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |txn| write_entry(txn, &entry)).await
    }

    async fn complete_entry(&self, id: &str, changes: &Changes) -> Result<(), StoreError> {
        let (id, changes) = (id.to_owned(), changes.clone());
        self.write(move |txn| {
            if let Some(mut entry) = get_in::<_, AuditEntry>(txn, AUDIT, id.as_str())? {
                entry.changes = changes.clone();
                entry.completed = true;
                write_entry(txn, &entry)?;
            }
            Ok(())
        })
        .await
    }

    async fn withdraw_entry(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(AUDIT).map_err(backend)?;
            let found: Option<AuditEntry> = get(&table, id.as_str())?;
            if !found.is_some_and(|entry| entry.completed) {
                table.remove(id.as_str()).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    /// Entries ride in the change's own transaction here: none is ever carried elsewhere.
    async fn settle(&self, _: &AuditEntry, _: &Place) -> Result<(), StoreError> {
        Ok(())
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let filter = filter.clone();
        self.read(move |txn| {
            let table = txn.open_table(AUDIT).map_err(backend)?;
            let low = filter.since.map(id_floor);
            let high = filter.until.map(id_floor);
            let start = match &low {
                Some(low) => Bound::Included(low.as_str()),
                None => Bound::Unbounded,
            };
            let end = match (&filter.after, &high) {
                (Some(after), Some(high)) if high.as_str() < after.as_str() => {
                    Bound::Excluded(high.as_str())
                }
                (Some(after), _) => Bound::Excluded(after.as_str()),
                (None, Some(high)) => Bound::Excluded(high.as_str()),
                (None, None) => Bound::Unbounded,
            };
            let mut page = Vec::new();
            for entry in table
                .range::<&str>((start, end))
                .map_err(backend)?
                .rev()
                .take(SCAN_BUDGET)
            {
                let (_, bytes) = entry.map_err(backend)?;
                let entry: AuditEntry = decode(bytes.value())?;
                if filter.admits(&entry) {
                    page.push(entry);
                    if page.len() >= filter.limit {
                        break;
                    }
                }
            }
            Ok(page)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_of_a_time_sorts_before_its_ids_and_after_earlier_ones() {
        let at = Utc::now();
        let id = crate::events::domain::uuid_v7(at);
        let earlier = crate::events::domain::uuid_v7(at - chrono::Duration::milliseconds(1));
        assert!(id_floor(at) <= id, "{} {id}", id_floor(at));
        assert!(earlier < id_floor(at));
    }
}
