//! Reading the outbox of credit events. Events are written by the indication stores, inside the
//! state change that causes them.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;

use super::{CallbackStatus, CreditEvent};
use crate::storage::StoreError;

#[async_trait]
pub trait CallbackOutbox: Send + Sync {
    /// Events in this status (all when `None`), oldest first.
    async fn list(&self, status: Option<CallbackStatus>) -> Result<Vec<CreditEvent>, StoreError>;
}
