//! What the capabilities declare of the database — indexes and numbered migrations — created
//! at each start, and the run of the migrations not yet recorded in `schema_migrations`, each
//! once however many instances start together.

use std::{collections::HashSet, time::Duration};

use mongodb::{IndexModel, bson::doc, options::IndexOptions};

use super::{Deadline, Gather, MongoStore, is_duplicate_key, store_error};
use crate::storage::StoreError;

/// The migrations applied to this database, and the claims of those running.
const MIGRATIONS: &str = "schema_migrations";
/// A running migration's claim is renewed this often; one not renewed for
/// [`MIGRATION_STALE`] belonged to an instance that died, and is taken over.
const MIGRATION_HEARTBEAT: Duration = Duration::from_secs(5);
const MIGRATION_STALE: Duration = Duration::from_secs(30);

/// A capability's part of the database: its indexes and its data migrations.
#[derive(Default)]
pub struct Schema {
    pub indexes: Vec<Index>,
    pub migrations: Vec<Migration>,
}

pub struct Index {
    pub collection: &'static str,
    pub name: &'static str,
    pub keys: mongodb::bson::Document,
    pub kind: IndexKind,
}

impl Index {
    pub fn new(
        collection: &'static str,
        name: &'static str,
        keys: mongodb::bson::Document,
        kind: IndexKind,
    ) -> Self {
        Self {
            collection,
            name,
            keys,
            kind,
        }
    }
}

impl Schema {
    /// Indexes and no migration.
    pub fn indexes(indexes: Vec<Index>) -> Self {
        Self {
            indexes,
            migrations: Vec::new(),
        }
    }
}

/// What a migration runs: idempotent, since an instance that dies while running one leaves it
/// to the next instance to run again.
pub type MigrationRun = Box<
    dyn for<'a> Fn(&'a MongoStore) -> futures_util::future::BoxFuture<'a, Result<(), StoreError>>
        + Send
        + Sync,
>;

/// A numbered change to stored data, run once per database.
pub struct Migration {
    /// Unique across the whole store; migrations run in ascending order.
    pub version: u32,
    pub name: &'static str,
    pub run: MigrationRun,
}

#[derive(Clone, Copy)]
pub enum IndexKind {
    Plain,
    Sparse,
    Unique,
    UniqueSparse,
    /// A TTL index: documents go once the indexed date has passed.
    Ttl,
}

impl MongoStore {
    /// Creates the indexes; creating an existing index is a no-op.
    pub(super) async fn create_indexes(&self, indexes: &[Index]) -> Result<(), StoreError> {
        for Index {
            collection,
            name,
            keys,
            kind,
        } in indexes
        {
            let unique = matches!(kind, IndexKind::Unique | IndexKind::UniqueSparse);
            let sparse = matches!(kind, IndexKind::Sparse | IndexKind::UniqueSparse);
            let ttl = matches!(kind, IndexKind::Ttl);
            let options = IndexOptions::builder()
                .name((*name).to_owned())
                .unique(unique.then_some(true))
                .sparse(sparse.then_some(true))
                .expire_after(ttl.then_some(std::time::Duration::ZERO))
                .build();
            self.db
                .collection::<mongodb::bson::Document>(collection)
                .create_index(
                    IndexModel::builder()
                        .keys(keys.clone())
                        .options(options)
                        .build(),
                )
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }
}

/// A migration's record in `schema_migrations`: `_id` is its version.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MigrationRecord {
    #[serde(rename = "_id")]
    version: u32,
    name: String,
    /// `running` while an instance holds it, then `applied`.
    state: String,
    owner: String,
    heartbeat: mongodb::bson::DateTime,
}

const RUNNING: &str = "running";
const APPLIED: &str = "applied";

impl MongoStore {
    /// Runs, in ascending order, the migrations this database has not recorded as applied. A
    /// start on a migrated database reads `schema_migrations` and nothing else.
    ///
    /// Each is claimed by inserting its record (`_id` = version) as `running`: of instances
    /// starting together, one inserts and runs it, renewing its heartbeat, then marks it
    /// `applied`; the others wait for that. A claim whose heartbeat stopped (its instance died)
    /// is taken over with one conditional update on the heartbeat that was read.
    pub(super) async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        let records = self.db.collection::<MigrationRecord>(MIGRATIONS);
        let applied: HashSet<u32> = records
            .find(doc! { "state": APPLIED })
            .projection(doc! { "_id": 1, "name": 1, "state": 1, "owner": 1, "heartbeat": 1 })
            .all_within(self.timeout)
            .await?
            .into_iter()
            .map(|record| record.version)
            .collect();
        let mut pending: Vec<&Migration> = migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect();
        pending.sort_by_key(|m| m.version);
        let owner = uuid::Uuid::new_v4().to_string();
        for migration in pending {
            if self.claim_migration(migration, &owner).await? {
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "running migration"
                );
                self.run_claimed(migration, &owner).await?;
            }
        }
        Ok(())
    }

    /// `true` once this instance holds the migration's claim; `false` once another instance
    /// has applied it.
    async fn claim_migration(
        &self,
        migration: &Migration,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let records = self.db.collection::<MigrationRecord>(MIGRATIONS);
        let id = i64::from(migration.version);
        loop {
            let now = mongodb::bson::DateTime::now();
            let record = MigrationRecord {
                version: migration.version,
                name: migration.name.to_owned(),
                state: RUNNING.to_owned(),
                owner: owner.to_owned(),
                heartbeat: now,
            };
            match records
                .insert_one(&record)
                .answered_within(self.timeout)
                .await?
            {
                Ok(_) => return Ok(true),
                Err(err) if is_duplicate_key(&err) => {}
                Err(err) => return Err(store_error(err)),
            }
            let Some(held) = records
                .find_one(doc! { "_id": id })
                .within(self.timeout)
                .await?
            else {
                continue;
            };
            if held.state == APPLIED {
                return Ok(false);
            }
            let stale = now.timestamp_millis() - held.heartbeat.timestamp_millis()
                > i64::try_from(MIGRATION_STALE.as_millis()).unwrap_or(i64::MAX);
            if stale {
                let taken = records
                    .update_one(
                        doc! { "_id": id, "state": RUNNING, "owner": &held.owner, "heartbeat": held.heartbeat },
                        doc! { "$set": { "owner": owner, "heartbeat": now } },
                    )
                    .within(self.timeout)
                    .await?;
                if taken.modified_count == 1 {
                    tracing::warn!(
                        version = migration.version,
                        "taking over a migration whose instance stopped"
                    );
                    return Ok(true);
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a claimed migration, renewing the claim's heartbeat meanwhile, then records it.
    async fn run_claimed(&self, migration: &Migration, owner: &str) -> Result<(), StoreError> {
        let records = self.db.collection::<MigrationRecord>(MIGRATIONS);
        let id = i64::from(migration.version);
        let heartbeat = async {
            loop {
                tokio::time::sleep(MIGRATION_HEARTBEAT).await;
                let renewed = records
                    .update_one(
                        doc! { "_id": id, "owner": owner },
                        doc! { "$set": { "heartbeat": mongodb::bson::DateTime::now() } },
                    )
                    .within(self.timeout)
                    .await;
                if let Err(err) = renewed {
                    tracing::warn!(error = %err, version = migration.version, "cannot renew a migration's claim");
                }
            }
        };
        tokio::select! {
            ran = (migration.run)(self) => ran?,
            () = heartbeat => {}
        }
        let done = records
            .update_one(
                doc! { "_id": id, "owner": owner },
                doc! { "$set": { "state": APPLIED, "heartbeat": mongodb::bson::DateTime::now() } },
            )
            .within(self.timeout)
            .await?;
        if done.matched_count == 0 {
            return Err(StoreError::Backend(format!(
                "migration {} was taken over by another instance while it ran",
                migration.version
            )));
        }
        Ok(())
    }

    /// The versions of the migrations recorded as applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<u32>, StoreError> {
        let mut versions: Vec<u32> = self
            .db
            .collection::<MigrationRecord>(MIGRATIONS)
            .find(doc! { "state": APPLIED })
            .all_within(self.timeout)
            .await?
            .into_iter()
            .map(|record| record.version)
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }
}
