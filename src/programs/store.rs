//! What the program routes need from storage.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::{Deletion, Program, ProgramId, ProgramPatch};
use crate::storage::StoreError;

#[async_trait]
pub trait ProgramStore: Send + Sync {
    async fn insert(&self, program: &Program) -> Result<(), StoreError>;

    /// Every program, oldest first.
    async fn list(&self) -> Result<Vec<Program>, StoreError>;

    async fn get(&self, id: ProgramId) -> Result<Option<Program>, StoreError>;

    /// The default program: the oldest one.
    async fn oldest(&self) -> Result<Option<Program>, StoreError>;

    /// Changes the fields present in `patch`; `None` when there is no such program.
    async fn update(
        &self,
        id: ProgramId,
        patch: &ProgramPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Program>, StoreError>;

    /// Deletes a program unless users belong to it.
    async fn delete(&self, id: ProgramId) -> Result<Deletion, StoreError>;
}
