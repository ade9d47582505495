//! An entry waiting for its change: who, what, why and the request are known before the change
//! runs; its `changes` are made from the record before and after the change, wherever the
//! store has them (inside the change's own transaction on the embedded store).

use std::{
    any::Any,
    sync::atomic::{AtomicBool, Ordering},
};

use super::domain::{AuditEntry, Changes};

/// The changes of a change, from its record before and after (`None`: made, or removed).
type ChangesOf = Box<dyn Fn(Option<&dyn Any>, Option<&dyn Any>) -> Option<Changes> + Send + Sync>;

pub struct Pending {
    entry: AuditEntry,
    changes: ChangesOf,
    committed: AtomicBool,
}

impl Pending {
    /// `entry` without its changes, and how to make them from records of type `R`.
    pub fn new<R: Any>(
        entry: AuditEntry,
        changes: impl Fn(Option<&R>, Option<&R>) -> Changes + Send + Sync + 'static,
    ) -> Self {
        let changes = move |before: Option<&dyn Any>, after: Option<&dyn Any>| {
            let before = match before {
                Some(value) => Some(value.downcast_ref::<R>()?),
                None => None,
            };
            let after = match after {
                Some(value) => Some(value.downcast_ref::<R>()?),
                None => None,
            };
            Some(changes(before, after))
        };
        Self {
            entry,
            changes: Box::new(changes),
            committed: AtomicBool::new(false),
        }
    }

    /// The entry as first written, before its change is seen done.
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

    /// Whether the entry has been committed with its change.
    pub fn is_committed(&self) -> bool {
        self.committed.load(Ordering::SeqCst)
    }

    pub fn mark_committed(&self) {
        self.committed.store(true, Ordering::SeqCst);
    }
}
