//! An entry waiting for its change: who, what, why and the request are known before the change
//! runs; its `changes` are made from the record before and after the change, where the store
//! writes it (see `storage::rider`, which it rides with).

use std::{
    any::Any,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use futures_util::future::BoxFuture;
use mongodb::bson::Document;
use redb::WriteTransaction;

use super::{
    domain::{AuditEntry, Changes},
    store::{AuditLog, embedded::write_entry, mongo::entry_document},
};
use crate::storage::{
    StoreError,
    rider::{Place, Rider},
};

/// The changes of a change, from its record before and after (`None`: made, or removed).
type ChangesOf = Box<dyn Fn(Option<&dyn Any>, Option<&dyn Any>) -> Option<Changes> + Send + Sync>;

pub struct Pending {
    entry: AuditEntry,
    changes: ChangesOf,
    log: Arc<dyn AuditLog>,
    committed: AtomicBool,
    /// Where a MongoDB write carried it.
    place: Mutex<Option<Place>>,
    /// The entry as last made to be carried by a MongoDB write.
    carried: Mutex<Option<AuditEntry>>,
    /// Whether it was written ahead of its change, not completed.
    ahead: AtomicBool,
}

impl Pending {
    /// `entry` without its changes, how to make them from records of type `R`, and the log
    /// that keeps it.
    pub fn new<R: Any>(
        entry: AuditEntry,
        changes: impl Fn(Option<&R>, Option<&R>) -> Changes + Send + Sync + 'static,
        log: Arc<dyn AuditLog>,
    ) -> Self {
        // `None` for a record of another type; `Some(None)` for no record.
        fn typed<R: Any>(record: Option<&dyn Any>) -> Option<Option<&R>> {
            record.map_or(Some(None), |record| record.downcast_ref::<R>().map(Some))
        }
        let changes = move |before: Option<&dyn Any>, after: Option<&dyn Any>| {
            Some(changes(typed(before)?, typed(after)?))
        };
        Self {
            entry,
            changes: Box::new(changes),
            log,
            committed: AtomicBool::new(false),
            place: Mutex::new(None),
            carried: Mutex::new(None),
            ahead: AtomicBool::new(false),
        }
    }

    /// The entry as written ahead of its change, not completed.
    pub fn draft(&self) -> &AuditEntry {
        &self.entry
    }

    /// The entry of the change from `before` to `after`, completed; `None` if the records are
    /// not of the type the entry's changes are made from.
    pub fn entry_of(
        &self,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Option<AuditEntry> {
        (self.changes)(before, after).map(|changes| AuditEntry {
            changes,
            completed: true,
            ..self.entry.clone()
        })
    }

    fn checked_entry_of(
        &self,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Result<AuditEntry, StoreError> {
        self.entry_of(before, after).ok_or_else(|| {
            StoreError::Backend(format!(
                "the change of audit entry {} gave records of another type",
                self.entry.action
            ))
        })
    }

    /// Whether the entry has been committed with its change.
    pub fn is_committed(&self) -> bool {
        self.committed.load(Ordering::SeqCst)
    }

    /// The entry a MongoDB write carried, and where: to be moved to the log.
    pub fn settling(&self) -> Option<(Place, AuditEntry)> {
        let place = self.place.lock().ok()?.clone()?;
        let entry = self.carried.lock().ok()?.clone()?;
        Some((place, entry))
    }

    /// Whether it was written ahead of its change.
    pub fn written_ahead(&self) -> bool {
        self.ahead.load(Ordering::SeqCst)
    }
}

impl Rider for Pending {
    fn ride(
        &self,
        txn: &WriteTransaction,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Result<(), StoreError> {
        write_entry(txn, &self.checked_entry_of(before, after)?)
    }

    fn carried(
        &self,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Result<Document, StoreError> {
        let entry = self.checked_entry_of(before, after)?;
        let document = entry_document(&entry)?;
        if let Ok(mut carried) = self.carried.lock() {
            *carried = Some(entry);
        }
        Ok(document)
    }

    fn ahead(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.log.insert_entry(&self.entry).await?;
            self.ahead.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    fn committed(&self) -> bool {
        self.committed.load(Ordering::SeqCst)
    }

    fn commit(&self, place: Option<Place>) {
        if let Ok(mut held) = self.place.lock() {
            *held = place;
        }
        self.committed.store(true, Ordering::SeqCst);
    }
}
