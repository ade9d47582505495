//! Where keys are kept: by id, with their hash, never the key.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::ApiKey;
use crate::storage::StoreError;

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, oldest first (a handful: one a back-end caller).
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key not yet revoked; `false` when there is none such.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Notes that the key was used at `at`.
    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}
