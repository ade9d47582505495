//! The embedded backend: one redb file in `DATA_DIR`. redb transactions are ACID and durable on
//! commit, so a crash leaves either the whole write or none of it. Records are JSON values keyed
//! by their identifier. Plumbing only: here the file, its reopening after a disk failure, reads
//! and health; in `writer` the writer thread; in `schema` the declared tables and the run
//! of versioned migrations; in `codec` the record encodings. Each capability declares its
//! own tables and migrations (its `store/embedded`), and the composition root (`stores.rs`)
//! hands them to [`open`].
//!
//! [`open`]: EmbeddedStore::open

use std::{
    any::Any,
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{StoreError, StoreHealth};

mod codec;
mod rider;
mod schema;
mod writer;

pub(crate) use codec::{
    decode, encode, get, get_in, millis, money_text, opt_millis, opt_program_id, put,
};
pub use rider::ride;
use schema::prepare;
pub use schema::{Migration, MigrationRun, Schema, Table};
use writer::{Job, Writer, WriterHandle};

pub const DATABASE_FILE: &str = "referral.redb";

/// A table of JSON records keyed by a string.
pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Written and removed by a health check after a disk failure, to see that writes fit again.
const HEALTH_PROBE: JsonTable = TableDefinition::new("health_probe");
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
        let ride = rider::Ride::current();
        let riding = ride.clone();
        let job = Job {
            run: Box::new(move |txn| {
                let run = || f(txn).map(|value| Box::new(value) as Box<dyn Any + Send>);
                match &riding {
                    Some(ride) => ride.during(run),
                    None => run(),
                }
            }),
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
        if let Some(ride) = ride {
            ride.committed();
        }
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

/// Every record of a JSON table, decoded, in key order: for small tables, and for migrations,
/// which run once.
pub(crate) fn all_records<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
) -> Result<Vec<T>, StoreError> {
    table
        .iter()
        .map_err(backend)?
        .map(|entry| {
            entry
                .map_err(backend)
                .and_then(|(_, bytes)| decode(bytes.value()))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use redb::ReadableTable;

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
