//! Storage plumbing: the error type, health, and the two backends' connection or file. The
//! store traits and schemas belong to the capabilities; `stores.rs` composes them.
//!
//! - [`mongo::MongoStore`]: MongoDB through the official driver, for production. Every state
//!   change is one single-document write, so a standalone server is enough.
//! - [`embedded::EmbeddedStore`]: a redb file in `DATA_DIR`, so a first run needs nothing.

pub mod embedded;
pub mod mongo;
pub mod rider;

use async_trait::async_trait;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (down, unreachable, timed out).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of the store.
    #[error("store failure: {0}")]
    Backend(String),
    /// A stored record could not be read back into its type.
    #[error("stored record cannot be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The `kind` label of `store_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Backend(_) | Self::Corrupt(_) => "backend",
        }
    }
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Answers `Ok` when the store answers a trivial request.
    async fn ping(&self) -> Result<(), StoreError>;
}
