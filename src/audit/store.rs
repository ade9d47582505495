//! Where entries are kept: written once, confirmed once the change is done, withdrawn when the
//! change was refused, and never changed or removed otherwise.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;

use super::domain::{AuditEntry, AuditFilter, Changes};
use crate::storage::StoreError;

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Whether an entry is written before its change and completed after (a store that cannot
    /// write it in the change's own atomic step); otherwise the entry rides with its change
    /// (see `storage::embedded::ride`).
    fn writes_ahead(&self) -> bool {
        true
    }

    /// Writes an entry (not yet completed).
    async fn insert_entry(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Marks an entry completed, with the changes as done.
    async fn complete_entry(&self, id: &str, changes: &Changes) -> Result<(), StoreError>;

    /// Removes an entry not completed, whose change was refused.
    async fn withdraw_entry(&self, id: &str) -> Result<(), StoreError>;

    /// A page of entries, newest first.
    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
}
