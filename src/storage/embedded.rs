//! The embedded backend: one redb file in `DATA_DIR`. redb transactions are ACID and durable on
//! commit, so a crash leaves either the whole write or none of it. Records are JSON values keyed
//! by their identifier. This file is plumbing only: the file, the writer thread, health, and
//! the run of versioned migrations. Each capability declares its own tables and migrations
//! (its `store/embedded.rs`), and the composition root (`stores.rs`) hands them to [`open`].
//!
//! [`open`]: EmbeddedStore::open

use std::{
    any::Any,
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};

use super::{StoreError, StoreHealth};

pub const DATABASE_FILE: &str = "referral.redb";

/// A table of JSON records keyed by a string.
pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Written and removed by a health check after a disk failure, to see that writes fit again.
const HEALTH_PROBE: JsonTable = TableDefinition::new("health_probe");
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
/// redb's page cache (its default is 1 GiB, which the process's memory would grow into as the
/// file grows). Hot pages — the tables' upper levels, recent users — fit well within this.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// As much as a large request writes.
const PROBE_BYTES: usize = 256 * 1024;

/// The open database, or none while it is being reopened after a disk failure.
type Slot = Arc<RwLock<Option<Arc<Database>>>>;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Slot,
    /// The writer thread and its queue.
    writer: Arc<WriterHandle>,
    /// Commits made, each holding one batch of writes.
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// Shared with the writer: what the last writes said of the disk.
    disk: Arc<DiskState>,
}

/// What the writes have found out about the disk.
#[derive(Default)]
struct DiskState {
    /// Set when a write failed for want of a working disk; the next batch or health check then
    /// reopens the file first (redb refuses all work after an I/O error until reopened).
    /// Cleared by the next commit.
    failing: AtomicBool,
    /// How many operations have failed for want of a working disk (or a file that could not be
    /// reopened).
    failures: AtomicU64,
    /// The failure count that the last successful health probe began after. While it is below
    /// `failures`, every health check writes a probe the size of a large request: a nearly full
    /// disk can let small writes through, which clear `failing`, while most writes still fail.
    /// Each check answers by its own probe, so that two at once never take each other's word.
    probed: AtomicU64,
    /// Set while a read's disk failure has queued an empty write to have the writer reopen the
    /// file: requests whose first step is a read would otherwise never reach the writer.
    reopen_queued: AtomicBool,
}

impl DiskState {
    fn failed(&self) {
        self.failing.store(true, Ordering::SeqCst);
        self.failures.fetch_add(1, Ordering::SeqCst);
    }
}

/// A write waiting for the writer thread: re-runnable, since a batch in which another write
/// fails is run again without it.
struct Job {
    run: Box<dyn Fn(&WriteTransaction) -> Written + Send>,
    reply: tokio::sync::oneshot::Sender<Written>,
}

/// What a write's closure returned, its type erased on the way through the writer thread.
type Written = Result<Box<dyn Any + Send>, StoreError>;

/// The queue of the writer thread, which the last store handle closes and waits for, so that
/// the file is closed once the store is dropped.
struct WriterHandle {
    writes: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.writes.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The most writes one commit holds.
const MAX_BATCH: usize = 256;

/// The writer thread: takes every write waiting (up to [`MAX_BATCH`]), runs them one after the
/// other in one transaction — so each sees the writes before it, and a check made inside a write
/// still holds at commit — commits once, and only then answers each. A write whose closure
/// fails is answered with its error, and the others run again in a fresh transaction without
/// it, so that its partial changes never commit and it never holds back the rest. Returns when
/// every store handle is gone.
struct Writer {
    slot: Slot,
    path: PathBuf,
    disk: Arc<DiskState>,
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    fn run(self, jobs: std::sync::mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&self, mut batch: Vec<Job>) {
        loop {
            let txn = self.begin();
            let txn = match txn {
                Ok(txn) => txn,
                Err(err) => return answer_all(batch, &err),
            };
            let mut values = Vec::with_capacity(batch.len());
            let mut failed = None;
            for (index, job) in batch.iter().enumerate() {
                match (job.run)(&txn) {
                    Ok(value) => values.push(value),
                    Err(err) => {
                        failed = Some((index, err));
                        break;
                    }
                }
            }
            if let Some((index, err)) = failed {
                drop(txn);
                if let StoreError::Unavailable(_) = err {
                    // The disk failed: every write of the batch would.
                    self.mark_failing(&err);
                    return answer_all(batch, &err);
                }
                let job = batch.remove(index);
                let _ = job.reply.send(Err(err));
                if batch.is_empty() {
                    return;
                }
                continue;
            }
            match txn.commit().map_err(backend) {
                Ok(()) => {
                    self.disk.failing.store(false, Ordering::SeqCst);
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    for (job, value) in batch.into_iter().zip(values) {
                        let _ = job.reply.send(Ok(value));
                    }
                }
                Err(err) => {
                    self.mark_failing(&err);
                    answer_all(batch, &err);
                }
            }
            return;
        }
    }

    fn begin(&self) -> Result<WriteTransaction, StoreError> {
        if self.disk.failing.load(Ordering::SeqCst) {
            let reopened = EmbeddedStore::reopen(&self.slot, &self.path);
            self.disk.reopen_queued.store(false, Ordering::SeqCst);
            if let Err(err) = &reopened {
                tracing::warn!(error = %err, "embedded store not reopened yet; the next operation tries again");
            }
            reopened?;
        }
        let db = EmbeddedStore::current(&self.slot)?;
        db.begin_write()
            .map_err(backend)
            .inspect_err(|err| self.mark_failing(err))
    }

    fn mark_failing(&self, err: &StoreError) {
        if let StoreError::Unavailable(detail) = err {
            tracing::warn!(error = %detail, "embedded store write failed; it will be reopened");
            self.disk.failed();
        }
    }
}

fn answer_all(batch: Vec<Job>, err: &StoreError) {
    for job in batch {
        let _ = job.reply.send(Err(err.clone()));
    }
}

fn unavailable(detail: impl Into<String>) -> StoreError {
    StoreError::Unavailable(detail.into())
}

/// Opens (or creates) the file; nothing else, so that a reopen after a disk failure runs no
/// migration and reads no table.
fn open_file(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| {
            let hint = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    " (is another referral-api process using this DATA_DIR?)"
                }
                _ => "",
            };
            unavailable(format!("cannot open {}: {e}{hint}", path.display()))
        })
}

/// Opens every table of `schema` and runs, in one transaction, the migrations this file has
/// not recorded yet, recording each. redb admits one process per file, so no other instance
/// can run them at the same time.
fn prepare(db: &Database, schema: &Schema) -> Result<Vec<u32>, StoreError> {
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
        let record = encode(&AppliedMigration {
            name: migration.name.to_owned(),
            applied_at_ms: chrono::Utc::now().timestamp_millis(),
        })?;
        txn.open_table(MIGRATIONS)
            .map_err(backend)?
            .insert(migration.version, record.as_slice())
            .map_err(backend)?;
        applied.push(migration.version);
    }
    txn.commit().map_err(backend)?;
    Ok(applied)
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, opens every table of `schema`, so that reads
    /// never meet a missing table, and runs the migrations not yet recorded.
    pub async fn open(data_dir: &Path, schema: Schema) -> Result<Self, StoreError> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(|e| {
                unavailable(format!(
                    "cannot create DATA_DIR {}: {e}",
                    data_dir.display()
                ))
            })?;
            let path = data_dir.join(DATABASE_FILE);
            let db = open_file(&path)?;
            prepare(&db, &schema)?;
            let slot: Slot = Arc::new(RwLock::new(Some(Arc::new(db))));
            let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let disk = Arc::new(DiskState::default());
            let (writes, jobs) = std::sync::mpsc::channel();
            let writer = Writer {
                slot: slot.clone(),
                path,
                disk: disk.clone(),
                commits: commits.clone(),
            };
            let thread = std::thread::Builder::new()
                .name("embedded-writer".to_owned())
                .spawn(move || writer.run(jobs))
                .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
            Ok(Self {
                db: slot,
                writer: Arc::new(WriterHandle {
                    writes: Some(writes),
                    thread: Some(thread),
                }),
                commits,
                disk,
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// The open database, on a blocking thread.
    fn current(slot: &Slot) -> Result<Arc<Database>, StoreError> {
        slot.read()
            .map_err(|_| unavailable("store lock poisoned"))?
            .clone()
            .ok_or_else(|| unavailable("the store is being reopened"))
    }

    /// Closes and reopens the file, once no operation holds it. Nothing acknowledged is lost:
    /// every acknowledged write was committed, and redb's commits are durable.
    fn reopen(slot: &Slot, path: &Path) -> Result<(), StoreError> {
        let mut guard = slot
            .write()
            .map_err(|_| unavailable("store lock poisoned"))?;
        if let Some(mut db) = guard.take() {
            // Taken out of the slot, so no new read starts on it; reads already running finish
            // within moments. Steady reads would otherwise keep it shared for good.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_used) if std::time::Instant::now() < deadline => {
                        db = still_used;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(still_used) => {
                        *guard = Some(still_used);
                        return Err(unavailable("the store is busy; reopening later"));
                    }
                }
            }
        }
        let db = open_file(path)?;
        *guard = Some(Arc::new(db));
        tracing::info!(path = %path.display(), "embedded store reopened");
        Ok(())
    }

    /// Runs a read over one consistent snapshot, on the calling task: a read is a few page
    /// look-ups, mostly in the page cache, cheaper than the hand-off to a blocking thread (which
    /// the profile of the read routes showed as their largest cost). Writes, which flush, run on
    /// the writer thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        // `db` is held until the read is done: a reopen waits for it rather than closing the
        // file under the read.
        let read = Self::current(&self.db)
            .and_then(|db| db.begin_read().map_err(backend).and_then(|txn| f(&txn)));
        if let Err(StoreError::Unavailable(detail)) = &read {
            self.read_failed(detail);
        }
        read
    }

    /// A read met the disk failing (redb refuses every read too after an I/O error, until the
    /// file is reopened), or found the file closed because a reopen was refused: the writer is
    /// told to (try again to) reopen it, by an empty write, once at a time. A service that is
    /// only read would otherwise never come back.
    fn read_failed(&self, detail: &str) {
        self.disk.failed();
        if self.disk.reopen_queued.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(error = %detail, "embedded store read failed; it will be reopened");
        let (reply, _) = tokio::sync::oneshot::channel();
        let job = Job {
            run: Box::new(|_| Ok(Box::new(()) as Box<dyn Any + Send>)),
            reply,
        };
        if let Some(writes) = &self.writer.writes {
            let _ = writes.send(job);
        }
    }

    /// Runs a write on the writer thread, and answers once the commit that holds it is durable
    /// (group commit: writes waiting together share one transaction and one flush). redb admits
    /// one writer at a time and the writes of a batch run one after the other, so every check
    /// made inside `f` still holds at commit. `f` may run more than once — a batch in which
    /// another write fails runs again without it — and only the last run commits. After a disk
    /// failure the file is reopened first.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            run: Box::new(move |txn| f(txn).map(|value| Box::new(value) as Box<dyn Any + Send>)),
            reply,
        };
        self.writer
            .writes
            .as_ref()
            .ok_or_else(|| unavailable("the writer thread has stopped"))?
            .send(job)
            .map_err(|_| unavailable("the writer thread has stopped"))?;
        let value = answer
            .await
            .map_err(|_| unavailable("the writer thread has stopped"))??;
        value
            .downcast::<T>()
            .map(|value| *value)
            .map_err(|_| StoreError::Backend("a write answered with another type".to_owned()))
    }

    /// How many commits the store has made: fewer than its writes when they were grouped.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
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

#[async_trait::async_trait]
impl StoreHealth for EmbeddedStore {
    /// Healthy when the file reads, and — after a write failed for want of a working disk —
    /// once a write the size of a large request commits again.
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await?;
        // Read before the probe: a failure during it leaves the next check a probe of its own.
        let failures = self.disk.failures.load(Ordering::SeqCst);
        if self.disk.probed.load(Ordering::SeqCst) < failures {
            self.probe().await?;
            self.disk.probed.fetch_max(failures, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// Writes and removes a record the size of a large request.
    async fn probe(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut probe = txn.open_table(HEALTH_PROBE).map_err(backend)?;
            probe
                .insert("probe", vec![0u8; PROBE_BYTES].as_slice())
                .map_err(backend)?;
            Ok(())
        })
        .await?;
        self.write(|txn| {
            txn.open_table(HEALTH_PROBE)
                .map_err(backend)?
                .remove("probe")
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// A redb error as a store error: the disk failing (an I/O error, or redb refusing work after
/// one) is `Unavailable`, so that the client gets 503 and may retry; the rest is `Backend`.
pub(crate) fn backend(err: impl Into<redb::Error>) -> StoreError {
    let err = err.into();
    match err {
        // DatabaseClosed: a read that began as a reopen took the file out of use.
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
            StoreError::Unavailable(err.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Backend(format!("cannot encode record: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Timestamps as Unix milliseconds (`#[serde(with = "millis")]`).
pub(crate) mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(at.timestamp_millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let ms = i64::deserialize(d)?;
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}

/// Optional timestamps as Unix milliseconds or null.
pub(crate) mod opt_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&at.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| D::Error::custom("timestamp out of range"))
            })
            .transpose()
    }
}

/// Money as its exact decimal text (`"12.50"`), never a binary float.
pub(crate) mod money_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::money::Money;

    pub fn serialize<S: Serializer>(money: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(money)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("bad amount {text}")))
    }
}

/// Program ids as their 24 hex characters, or null.
pub(crate) mod opt_program_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::programs::ProgramId;

    pub fn serialize<S: Serializer>(id: &Option<ProgramId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.collect_str(id),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProgramId>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|id| {
                id.parse()
                    .map_err(|_| D::Error::custom(format!("bad program id {id}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBERS: TableDefinition<&str, u64> = TableDefinition::new("group_commit_test");

    fn no_schema() -> Schema {
        Schema {
            tables: Vec::new(),
            migrations: Vec::new(),
        }
    }

    /// A schema whose one migration counts its runs in `runs`.
    fn counted(runs: &Arc<AtomicU64>) -> Schema {
        let runs = runs.clone();
        Schema {
            tables: vec![&NUMBERS],
            migrations: vec![Migration {
                version: 7,
                name: "count runs",
                run: Box::new(move |txn| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    txn.open_table(NUMBERS)
                        .map_err(backend)?
                        .insert("migrated", 1)
                        .map_err(backend)?;
                    Ok(())
                }),
            }],
        }
    }

    /// A migration runs at the first start and is recorded; the next starts run nothing.
    #[tokio::test]
    async fn a_recorded_migration_is_not_run_again() {
        let dir = tempfile::tempdir().expect("dir");
        let runs = Arc::new(AtomicU64::new(0));
        for _ in 0..3 {
            let store = EmbeddedStore::open(dir.path(), counted(&runs))
                .await
                .expect("store");
            assert_eq!(store.applied_migrations().await.expect("read"), vec![7]);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    /// A migration that fails records nothing and leaves none of its writes.
    #[tokio::test]
    async fn a_failing_migration_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let schema = Schema {
            tables: Vec::new(),
            migrations: vec![Migration {
                version: 1,
                name: "fails",
                run: Box::new(|txn| {
                    txn.open_table(NUMBERS)
                        .map_err(backend)?
                        .insert("half", 1)
                        .map_err(backend)?;
                    Err(StoreError::Corrupt("bad record".to_owned()))
                }),
            }],
        };
        assert!(EmbeddedStore::open(dir.path(), schema).await.is_err());
        let store = EmbeddedStore::open(dir.path(), no_schema())
            .await
            .expect("store");
        assert_eq!(
            store.applied_migrations().await.expect("read"),
            Vec::<u32>::new()
        );
        let half = store
            .read(|txn| match txn.open_table(NUMBERS) {
                Ok(table) => Ok(table.get("half").map_err(backend)?.is_some()),
                Err(_) => Ok(false),
            })
            .await
            .expect("read");
        assert!(!half);
    }

    /// Writes queued while the writer is busy share one commit; the ones whose closure fails
    /// (after writing) leave nothing, and the others all commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_commits_exactly_its_succeeding_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path(), no_schema())
            .await
            .expect("store");
        let before = store.commits();
        // Holds the writer while the others queue up behind it.
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let started = std::sync::Mutex::new(Some(started));
        let blocker = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |txn| {
                        if let Some(started) = started.lock().ok().and_then(|mut s| s.take()) {
                            let _ = started.send(());
                            std::thread::sleep(std::time::Duration::from_millis(300));
                        }
                        txn.open_table(NUMBERS)
                            .map_err(backend)?
                            .insert("blocker", 0)
                            .map_err(backend)?;
                        Ok(())
                    })
                    .await
            })
        };
        running.await.expect("blocker runs");
        let writes: Vec<_> = (0..20u64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write(move |txn| {
                            let key = format!("n{i:02}");
                            txn.open_table(NUMBERS)
                                .map_err(backend)?
                                .insert(key.as_str(), i)
                                .map_err(backend)?;
                            if i % 2 == 1 {
                                return Err(StoreError::Corrupt(format!("write {i} fails")));
                            }
                            Ok(i)
                        })
                        .await
                })
            })
            .collect();
        blocker.await.expect("task").expect("blocker commits");
        for (i, write) in (0..20u64).zip(writes) {
            let result = write.await.expect("task");
            if i % 2 == 1 {
                assert!(
                    matches!(result, Err(StoreError::Corrupt(_))),
                    "{i}: {result:?}"
                );
            } else {
                assert_eq!(result.expect("commits"), i);
            }
        }
        let stored: Vec<String> = store
            .read(|txn| {
                let table = txn.open_table(NUMBERS).map_err(backend)?;
                let mut keys = Vec::new();
                for entry in table.iter().map_err(backend)? {
                    keys.push(entry.map_err(backend)?.0.value().to_owned());
                }
                Ok(keys)
            })
            .await
            .expect("read");
        let mut expected: Vec<String> = (0..20).step_by(2).map(|i| format!("n{i:02}")).collect();
        expected.insert(0, "blocker".to_owned());
        assert_eq!(stored, expected);
        // The blocker's commit, then the twenty queued writes in one or two more.
        let commits = store.commits() - before;
        assert!(commits <= 3, "{commits} commits for 21 writes");
    }

    #[test]
    fn a_failing_disk_is_unavailable_not_a_bug() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        assert!(matches!(
            backend(redb::Error::Io(full)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            backend(redb::Error::PreviousIo),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            backend(redb::Error::DatabaseClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            backend(redb::Error::Corrupted("x".into())),
            StoreError::Backend(_)
        ));
    }
}
