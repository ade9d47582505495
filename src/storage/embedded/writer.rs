//! The writer thread: group commit of the writes waiting, each re-runnable.

use std::{
    any::Any,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use redb::WriteTransaction;

use super::{DiskState, EmbeddedStore, Slot, backend};
use crate::storage::StoreError;

/// A write waiting for the writer thread: re-runnable, since a batch in which another write
/// fails is run again without it.
pub(super) struct Job {
    pub(super) run: Box<dyn Fn(&WriteTransaction) -> Written + Send>,
    pub(super) reply: tokio::sync::oneshot::Sender<Written>,
}

/// What a write's closure returned, its type erased on the way through the writer thread.
pub(super) type Written = Result<Box<dyn Any + Send>, StoreError>;

/// The queue of the writer thread, which the last store handle closes and waits for, so that
/// the file is closed once the store is dropped.
pub(super) struct WriterHandle {
    pub(super) writes: Option<std::sync::mpsc::Sender<Job>>,
    pub(super) thread: Option<std::thread::JoinHandle<()>>,
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
pub(super) const MAX_BATCH: usize = 256;

/// The writer thread: takes every write waiting (up to [`MAX_BATCH`]), runs them one after the
/// other in one transaction — so each sees the writes before it, and a check made inside a write
/// still holds at commit — commits once, and only then answers each. A write whose closure
/// fails is answered with its error, and the others run again in a fresh transaction without
/// it, so that its partial changes never commit and it never holds back the rest. Returns when
/// every store handle is gone.
pub(super) struct Writer {
    pub(super) slot: Slot,
    pub(super) path: PathBuf,
    pub(super) disk: Arc<DiskState>,
    pub(super) commits: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(super) fn run(self, jobs: std::sync::mpsc::Receiver<Job>) {
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

    pub(super) fn commit(&self, mut batch: Vec<Job>) {
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

    pub(super) fn begin(&self) -> Result<WriteTransaction, StoreError> {
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

    pub(super) fn mark_failing(&self, err: &StoreError) {
        if let StoreError::Unavailable(detail) = err {
            tracing::warn!(error = %detail, "embedded store write failed; it will be reopened");
            self.disk.failed();
        }
    }
}

pub(super) fn answer_all(batch: Vec<Job>, err: &StoreError) {
    for job in batch {
        let _ = job.reply.send(Err(err.clone()));
    }
}
