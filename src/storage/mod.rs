//! The storage seam: one trait per capability (in its own folder), two backends behind them.
//!
//! - [`mongo::MongoStore`]: MongoDB through the official driver, for production. Every state
//!   change is one single-document write, so a standalone server is enough.
//! - [`embedded::EmbeddedStore`]: a redb file in `DATA_DIR`, so a first run needs nothing.

pub mod embedded;
pub mod mongo;

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    callbacks::CallbackOutbox, config::StorageConfig, idempotency::IdempotencyStore,
    indication::IndicationStore, programs::ProgramStore, referrals::ReferralStore,
};

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

/// The stores of every capability, all served by one backend.
#[derive(Clone)]
pub struct Stores {
    pub backend: &'static str,
    pub health: Arc<dyn StoreHealth>,
    pub programs: Arc<dyn ProgramStore>,
    pub indication: Arc<dyn IndicationStore>,
    pub callbacks: Arc<dyn CallbackOutbox>,
    pub referrals: Arc<dyn ReferralStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
}

impl Stores {
    fn from_backend<B>(backend: &'static str, store: Arc<B>) -> Self
    where
        B: StoreHealth
            + ProgramStore
            + IndicationStore
            + CallbackOutbox
            + ReferralStore
            + IdempotencyStore
            + 'static,
    {
        Self {
            backend,
            health: store.clone(),
            programs: store.clone(),
            indication: store.clone(),
            callbacks: store.clone(),
            referrals: store.clone(),
            idempotency: store,
        }
    }
}

/// Opens the configured backend: connects, checks that it answers and creates indexes.
pub async fn open(config: &StorageConfig) -> Result<Stores, StoreError> {
    match config {
        StorageConfig::Mongo { url, timeout } => {
            let store = mongo::MongoStore::connect(url, *timeout).await?;
            Ok(Stores::from_backend("mongodb", Arc::new(store)))
        }
        StorageConfig::Embedded { data_dir } => {
            let store = embedded::EmbeddedStore::open(data_dir).await?;
            Ok(Stores::from_backend("embedded", Arc::new(store)))
        }
    }
}
