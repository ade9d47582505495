//! The MongoDB backend: one shared client, a short server-selection timeout so that a missing
//! database fails fast, and the run of what the capabilities declare — their indexes, created
//! at each start (a no-op when present), and their numbered migrations, each run once per
//! database under a claim in `schema_migrations`. Nothing here needs a replica set.

use std::{collections::HashSet, time::Duration};

use futures_util::{FutureExt, TryStreamExt};

use mongodb::{
    Client, Collection, Cursor, Database, IndexModel,
    bson::{Decimal128, doc},
    error::{Error as MongoError, ErrorKind},
    options::{Acknowledgment, ClientOptions, IndexOptions},
};

use super::{StoreError, StoreHealth};
use crate::money::Money;

pub const DEFAULT_DATABASE: &str = "referral";

/// The users: owned by the indication capability, and the one collection two capabilities
/// share — a credit event is born inside its user's document (atomic with the move), and the
/// callback relay takes it from there into `callbacks`. Named here, below both.
pub(crate) const USERS: &str = "users";
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

pub struct MongoStore {
    pub(crate) db: Database,
    /// `DATABASE_TIMEOUT`: server selection, connection, and every operation give up after it.
    pub(crate) timeout: Duration,
}

impl MongoStore {
    /// Connects, checks that the server answers, creates the indexes and runs the migrations
    /// not yet recorded. Writes are acknowledged once a majority has journaled them, unless the
    /// URL sets `w` or `journal`.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        schema: &Schema,
    ) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(url).await.map_err(|e| {
            StoreError::Unavailable(format!("DATABASE_URL cannot be used: {}", e.kind))
        })?;
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        // A server that stops answering on open connections is noticed at the next heartbeat.
        options.heartbeat_freq = Some(timeout);
        options.app_name = Some("referral-api".to_owned());
        make_durable(&mut options);
        let db_name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(store_error)?;
        let store = Self {
            db: client.database(&db_name),
            timeout,
        };
        store.db.run_command(doc! { "ping": 1 }).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "MongoDB did not answer within {:?} (is it running and is DATABASE_URL right?): {}",
                timeout,
                e.kind
            ))
        })?;
        store.create_indexes(&schema.indexes).await?;
        store.migrate(&schema.migrations).await?;
        Ok(store)
    }

    /// Creates the indexes; creating an existing index is a no-op.
    async fn create_indexes(&self, indexes: &[Index]) -> Result<(), StoreError> {
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
    async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
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

/// Write concern `majority` with `j: true`, unless the URL chose `w` or `journal` itself: a
/// write is acknowledged only once it survives a crash of the server.
fn make_durable(options: &mut ClientOptions) {
    let url_sets_durability = options
        .write_concern
        .as_ref()
        .is_some_and(|wc| wc.w.is_some() || wc.journal.is_some());
    if !url_sets_durability {
        let mut write_concern = options.write_concern.take().unwrap_or_default();
        write_concern.w = Some(Acknowledgment::Majority);
        write_concern.journal = Some(true);
        options.write_concern = Some(write_concern);
    }
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

/// Documents per bulk call. Each call carries `DATABASE_TIMEOUT`, so a large import is many
/// bounded calls rather than one that a slow server cannot finish in time.
pub(crate) const BULK_CHUNK: usize = 1_000;

/// Inserts `docs` unordered, [`BULK_CHUNK`] at a time: every document is tried, and those whose
/// `_id` (or unique key) is already taken are returned by their index in `docs`. Any other
/// failure, a write concern error included (the outcome is then unknown), ends it with an error.
pub(crate) async fn insert_unordered<T>(
    collection: &Collection<T>,
    docs: Vec<T>,
    limit: Duration,
) -> Result<HashSet<usize>, StoreError>
where
    T: serde::Serialize + Send + Sync,
{
    let mut taken = HashSet::new();
    let mut docs = docs.into_iter().peekable();
    let mut offset = 0;
    while docs.peek().is_some() {
        let chunk: Vec<T> = docs.by_ref().take(BULK_CHUNK).collect();
        let len = chunk.len();
        if let Err(err) = collection
            .insert_many(chunk)
            .ordered(false)
            .answered_within(limit)
            .await?
        {
            let ErrorKind::InsertMany(failure) = &*err.kind else {
                return Err(store_error(err));
            };
            if failure.write_concern_error.is_some() {
                return Err(store_error(err.clone()));
            }
            for write_error in failure.write_errors.iter().flatten() {
                if write_error.code != DUPLICATE_KEY {
                    return Err(store_error(err.clone()));
                }
                taken.insert(offset + write_error.index);
            }
        }
        offset += len;
    }
    Ok(taken)
}

/// A duplicate-key violation (code 11000): the unique `_id` (or index) already holds the value.
pub(crate) fn is_duplicate_key(err: &MongoError) -> bool {
    use mongodb::error::WriteFailure;
    matches!(&*err.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY)
}

pub(crate) const DUPLICATE_KEY: i32 = 11000;

#[async_trait::async_trait]
impl StoreHealth for MongoStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .within(self.timeout)
            .await
            .map(drop)
    }
}

/// Every driver call is bounded by `DATABASE_TIMEOUT`. The driver has no socket timeout: a
/// server that stops answering on an open connection would hold a request until the next
/// heartbeat noticed. Past the deadline the operation is dropped (the driver closes its
/// connection) and its outcome is unknown, which every caller already allows for, as for an
/// I/O error.
pub(crate) trait Deadline<T>: IntoFuture<Output = Result<T, MongoError>> + Sized {
    /// The answer, or `Unavailable` once `limit` has passed; driver errors mapped.
    fn within(self, limit: Duration) -> Bounded<Self::IntoFuture, Result<T, StoreError>> {
        let settle: fn(_) -> _ = |answer| match answer {
            Ok(result) => Result::map_err(result, store_error),
            Err(_) => Err(did_not_answer()),
        };
        tokio::time::timeout(limit, self.into_future()).map(settle)
    }

    /// The server's answer as it is, for callers that look into its error (a duplicate key),
    /// or `Unavailable` once `limit` has passed.
    fn answered_within(
        self,
        limit: Duration,
    ) -> Bounded<Self::IntoFuture, Result<Result<T, MongoError>, StoreError>> {
        let settle: fn(_) -> _ = |answer: Result<_, _>| answer.map_err(|_| did_not_answer());
        tokio::time::timeout(limit, self.into_future()).map(settle)
    }
}

impl<T, F: IntoFuture<Output = Result<T, MongoError>>> Deadline<T> for F {}

/// A query whose answer is a cursor, read to the end: the query and then the reading of its
/// batches, each within `DATABASE_TIMEOUT`.
pub(crate) trait Gather<T>:
    IntoFuture<Output = Result<Cursor<T>, MongoError>> + Sized + Send
where
    Self::IntoFuture: Send,
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    fn all_within(
        self,
        limit: Duration,
    ) -> impl std::future::Future<Output = Result<Vec<T>, StoreError>> + Send {
        async move { self.within(limit).await?.try_collect().within(limit).await }
    }
}

impl<T, F> Gather<T> for F
where
    F: IntoFuture<Output = Result<Cursor<T>, MongoError>> + Send,
    F::IntoFuture: Send,
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
}

/// A driver call under its deadline, mapped to its answer.
pub(crate) type Bounded<F, A> = futures_util::future::Map<
    tokio::time::Timeout<F>,
    fn(Result<<F as std::future::Future>::Output, tokio::time::error::Elapsed>) -> A,
>;

fn did_not_answer() -> StoreError {
    StoreError::Unavailable("MongoDB did not answer within DATABASE_TIMEOUT".to_owned())
}

/// Maps a driver error; selection and I/O failures mean the server is unavailable.
pub(crate) fn store_error(err: MongoError) -> StoreError {
    match *err.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Backend(err.to_string()),
    }
}

/// A stored enum (or any serde value) as BSON, for a filter or an update.
pub(crate) fn to_bson<T: serde::Serialize>(value: &T) -> Result<mongodb::bson::Bson, StoreError> {
    mongodb::bson::to_bson(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// Money is stored as Decimal128, exactly.
pub(crate) fn to_decimal128(money: Money) -> Result<Decimal128, StoreError> {
    money
        .to_string()
        .parse()
        .map_err(|e| StoreError::Backend(format!("amount {money} does not fit Decimal128: {e}")))
}

pub(crate) fn from_decimal128(value: Decimal128) -> Result<Money, StoreError> {
    value
        .to_string()
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("stored amount {value}: {e}")))
}

pub(crate) fn to_bson_datetime(at: chrono::DateTime<chrono::Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(at.timestamp_millis())
}

pub(crate) fn from_bson_datetime(
    at: mongodb::bson::DateTime,
) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis())
        .ok_or_else(|| StoreError::Corrupt(format!("stored timestamp {at} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn durability(url: &str) -> (Option<Acknowledgment>, Option<bool>) {
        let mut options = ClientOptions::parse(url).await.expect("url");
        make_durable(&mut options);
        let wc = options.write_concern.unwrap_or_default();
        (wc.w, wc.journal)
    }

    #[tokio::test]
    async fn writes_wait_for_a_journaled_majority_unless_the_url_says_otherwise() {
        assert_eq!(
            durability("mongodb://db/x").await,
            (Some(Acknowledgment::Majority), Some(true))
        );
        assert_eq!(
            durability("mongodb://db/x?wtimeoutMS=500").await,
            (Some(Acknowledgment::Majority), Some(true))
        );
        assert_eq!(
            durability("mongodb://db/x?w=1").await,
            (Some(Acknowledgment::Nodes(1)), None)
        );
        assert_eq!(
            durability("mongodb://db/x?journal=false").await,
            (None, Some(false))
        );
    }
}
