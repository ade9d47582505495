//! Where entries are kept: written with their change (or, where a change cannot carry its
//! entry, written ahead, then completed, or withdrawn when the change was refused), and never
//! changed or removed otherwise.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;

use super::domain::{AuditEntry, AuditFilter, Changes};
use crate::storage::{StoreError, rider::Place};

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Writes an entry (not yet completed).
    async fn insert_entry(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Marks an entry completed, with the changes as done.
    async fn complete_entry(&self, id: &str, changes: &Changes) -> Result<(), StoreError>;

    /// Removes an entry not completed, whose change was refused.
    async fn withdraw_entry(&self, id: &str) -> Result<(), StoreError>;

    /// Moves an entry a change's document carried (see `storage::rider`) from `place` into
    /// the log.
    async fn settle(&self, entry: &AuditEntry, place: &Place) -> Result<(), StoreError>;

    /// A page of entries, newest first.
    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
}
