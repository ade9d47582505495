//! What the capabilities declare of the file — tables and numbered migrations — and the run of
//! the migrations not yet recorded in `schema_migrations`.

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};

use super::{EmbeddedStore, HEALTH_PROBE, backend, put};
use crate::storage::StoreError;

/// The migrations applied to this file: version → name and time.
const MIGRATIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("schema_migrations");

/// A capability's part of the file: the tables it opens at start (so that reads never meet a
/// missing one) and its data migrations.
pub struct Schema {
    pub tables: Vec<&'static dyn Table>,
    pub migrations: Vec<Migration>,
}

impl Schema {
    /// Tables and no migration.
    pub fn tables(tables: Vec<&'static dyn Table>) -> Self {
        Self {
            tables,
            migrations: Vec::new(),
        }
    }
}

/// A table a capability declares: created, if missing, at start.
pub trait Table: Send + Sync {
    fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError>;
}

impl<K: redb::Key + Send + Sync + 'static, V: redb::Value + Send + Sync + 'static> Table
    for TableDefinition<'static, K, V>
{
    fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        txn.open_table(*self).map(drop).map_err(backend)
    }
}

impl<K: redb::Key + Send + Sync + 'static, V: redb::Key + Send + Sync + 'static> Table
    for redb::MultimapTableDefinition<'static, K, V>
{
    fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        txn.open_multimap_table(*self).map(drop).map_err(backend)
    }
}

/// What a migration runs, inside the transaction that records it.
pub type MigrationRun = Box<dyn Fn(&WriteTransaction) -> Result<(), StoreError> + Send + Sync>;

/// A numbered change to stored data, run once per file and recorded in `schema_migrations` in
/// the same transaction: a start on a migrated file reads one small table and runs nothing.
pub struct Migration {
    /// Unique across the whole store; migrations run in ascending order.
    pub version: u32,
    pub name: &'static str,
    pub run: MigrationRun,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AppliedMigration {
    name: String,
    applied_at_ms: i64,
}

/// Opens every table of `schema` and runs, in one transaction, the migrations this file has
/// not recorded yet, recording each. redb admits one process per file, so no other instance
/// can run them at the same time.
pub(super) fn prepare(db: &Database, schema: &Schema) -> Result<Vec<u32>, StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    txn.open_table(HEALTH_PROBE).map_err(backend)?;
    for table in &schema.tables {
        table.create(&txn)?;
    }
    let mut applied = Vec::new();
    let mut migrations: Vec<&Migration> = schema.migrations.iter().collect();
    migrations.sort_by_key(|m| m.version);
    for migration in migrations {
        let done = txn
            .open_table(MIGRATIONS)
            .map_err(backend)?
            .get(migration.version)
            .map_err(backend)?
            .is_some();
        if done {
            continue;
        }
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "running migration"
        );
        (migration.run)(&txn)?;
        let record = AppliedMigration {
            name: migration.name.to_owned(),
            applied_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        put(&txn, MIGRATIONS, migration.version, &record)?;
        applied.push(migration.version);
    }
    txn.commit().map_err(backend)?;
    Ok(applied)
}

impl EmbeddedStore {
    /// The versions of the migrations recorded as applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<u32>, StoreError> {
        self.read(|txn| {
            let table = match txn.open_table(MIGRATIONS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(err) => return Err(backend(err)),
            };
            let mut versions = Vec::new();
            for entry in table.iter().map_err(backend)? {
                versions.push(entry.map_err(backend)?.0.value());
            }
            Ok(versions)
        })
        .await
    }
}
