//! The composition root of storage: the stores of every capability on one backend, and the
//! list of what each capability declares (tables, collections, indexes, migrations).

use std::sync::Arc;

use crate::{
    api_keys::{self, ApiKeyStore},
    audit::{self, AuditLog},
    callbacks::{self, CallbackOutbox},
    config::StorageConfig,
    events::{self, EventFeed},
    idempotency::{self, IdempotencyStore},
    indication::{self, IndicationStore, LedgerScan},
    programs::{self, ProgramStore},
    referrals::{self, ReferralStore},
    storage::{StoreError, StoreHealth, embedded, mongo},
    webhooks::{self, WebhookStore},
};

/// The stores of every capability, all served by one backend.
#[derive(Clone)]
pub struct Stores {
    pub backend: &'static str,
    pub health: Arc<dyn StoreHealth>,
    pub programs: Arc<dyn ProgramStore>,
    pub indication: Arc<dyn IndicationStore>,
    /// The whole ledger at once, for audits and tests; nothing in the service reads it.
    pub ledger: Arc<dyn LedgerScan>,
    pub callbacks: Arc<dyn CallbackOutbox>,
    pub events: Arc<dyn EventFeed>,
    pub referrals: Arc<dyn ReferralStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub audit: Arc<dyn AuditLog>,
}

impl Stores {
    fn from_backend<B>(backend: &'static str, store: Arc<B>) -> Self
    where
        B: StoreHealth
            + ProgramStore
            + IndicationStore
            + LedgerScan
            + CallbackOutbox
            + EventFeed
            + ReferralStore
            + IdempotencyStore
            + ApiKeyStore
            + WebhookStore
            + AuditLog
            + 'static,
    {
        Self {
            backend,
            health: store.clone(),
            programs: store.clone(),
            indication: store.clone(),
            ledger: store.clone(),
            callbacks: store.clone(),
            events: store.clone(),
            referrals: store.clone(),
            idempotency: store.clone(),
            api_keys: store.clone(),
            webhooks: store.clone(),
            audit: store,
        }
    }
}

/// The schema every capability declares for `backend`, in one list.
macro_rules! capability_schemas {
    ($backend:ident) => {
        [
            programs::store::$backend::schema(),
            indication::store::$backend::schema(),
            referrals::store::$backend::schema(),
            callbacks::store::$backend::schema(),
            events::store::$backend::schema(),
            idempotency::store::$backend::schema(),
            api_keys::store::$backend::schema(),
            webhooks::store::$backend::schema(),
            audit::store::$backend::schema(),
        ]
    };
}

/// Every capability's part of the embedded file.
pub fn embedded_schema() -> embedded::Schema {
    let parts = capability_schemas!(embedded);
    let mut schema = embedded::Schema {
        tables: Vec::new(),
        migrations: Vec::new(),
    };
    for part in parts {
        schema.tables.extend(part.tables);
        schema.migrations.extend(part.migrations);
    }
    schema
}

/// Every capability's part of the MongoDB database.
pub fn mongo_schema() -> mongo::Schema {
    let parts = capability_schemas!(mongo);
    let mut schema = mongo::Schema::default();
    for part in parts {
        schema.indexes.extend(part.indexes);
        schema.migrations.extend(part.migrations);
    }
    schema
}

/// Opens the configured backend: connects, checks that it answers, creates what the
/// capabilities declare and runs the migrations not yet applied.
pub async fn open(config: &StorageConfig) -> Result<Stores, StoreError> {
    match config {
        StorageConfig::Mongo { url, timeout } => {
            let store = mongo::MongoStore::connect(url, *timeout, &mongo_schema()).await?;
            Ok(Stores::from_backend("mongodb", Arc::new(store)))
        }
        StorageConfig::Embedded { data_dir } => {
            let store = embedded::EmbeddedStore::open(data_dir, embedded_schema()).await?;
            Ok(Stores::from_backend("embedded", Arc::new(store)))
        }
    }
}
