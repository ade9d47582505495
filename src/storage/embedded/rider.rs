//! Riders on the embedded store (see `storage::rider`): every write a request makes carries
//! the request's rider to the writer thread, and the store's write that makes the change calls
//! [`ride`] with its record before and after, in the transaction that writes them. The rider
//! is then committed with the change or not at all; the first write that commits it ends its
//! ride.

use std::{
    any::Any,
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use redb::WriteTransaction;

use crate::storage::{
    StoreError,
    rider::{self, Rider},
};

thread_local! {
    /// On the writer thread, while a write runs: the rider of its request, and whether this
    /// run wrote it.
    static RIDING: RefCell<Option<Ride>> = const { RefCell::new(None) };
}

/// Called by a store's write in its transaction, where it makes its change: writes the rider of
/// the request, if any, in the same transaction.
pub fn ride<R: Any>(
    txn: &WriteTransaction,
    before: Option<&R>,
    after: Option<&R>,
) -> Result<(), StoreError> {
    RIDING.with_borrow(|riding| match riding {
        Some(ride) if !ride.rider.committed() => {
            ride.rider
                .ride(txn, rider::erased(before), rider::erased(after))?;
            ride.rode.store(true, Ordering::SeqCst);
            Ok(())
        }
        _ => Ok(()),
    })
}

/// The rider of one write, taken from its request when the write is made.
#[derive(Clone)]
pub(super) struct Ride {
    rider: Arc<dyn Rider>,
    /// Whether the last run of the write wrote the rider.
    rode: Arc<AtomicBool>,
}

impl Ride {
    /// The rider in scope where a write is made, if any.
    pub(super) fn current() -> Option<Self> {
        rider::current().map(|rider| Self {
            rider,
            rode: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs one attempt of the write (on the writer thread) with the rider in reach of [`ride`].
    pub(super) fn during<T>(&self, run: impl FnOnce() -> T) -> T {
        self.rode.store(false, Ordering::SeqCst);
        RIDING.with_borrow_mut(|riding| *riding = Some(self.clone()));
        let result = run();
        RIDING.with_borrow_mut(|riding| *riding = None);
        result
    }

    /// The write committed: if its last run wrote the rider, the rider is committed.
    pub(super) fn committed(&self) {
        if self.rode.load(Ordering::SeqCst) {
            self.rider.commit(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;
    use mongodb::bson::Document;
    use redb::{ReadableTable, TableDefinition};

    use super::*;
    use crate::storage::{
        embedded::{EmbeddedStore, Schema, backend},
        rider::{Place, with_rider},
    };

    const CHANGES: TableDefinition<&str, u64> = TableDefinition::new("rider_test_changes");
    const RIDERS: TableDefinition<&str, u64> = TableDefinition::new("rider_test_riders");

    /// Writes the sum of the records it rides with.
    #[derive(Default)]
    struct Sum {
        committed: AtomicBool,
    }

    impl Rider for Sum {
        fn ride(
            &self,
            txn: &WriteTransaction,
            before: Option<&dyn Any>,
            after: Option<&dyn Any>,
        ) -> Result<(), StoreError> {
            let value = |record: Option<&dyn Any>| {
                record
                    .and_then(|record| record.downcast_ref::<u64>())
                    .copied()
                    .unwrap_or(0)
            };
            txn.open_table(RIDERS)
                .map_err(backend)?
                .insert("rider", value(before) + value(after))
                .map_err(backend)?;
            Ok(())
        }

        fn carried(
            &self,
            _: Option<&dyn Any>,
            _: Option<&dyn Any>,
        ) -> Result<Document, StoreError> {
            Err(StoreError::Backend("not on MongoDB".to_owned()))
        }

        fn ahead(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async { Err(StoreError::Backend("never ahead".to_owned())) })
        }

        fn committed(&self) -> bool {
            self.committed.load(Ordering::SeqCst)
        }

        fn commit(&self, _: Option<Place>) {
            self.committed.store(true, Ordering::SeqCst);
        }
    }

    /// A change writing `value`, riding with it, then failing or not.
    async fn change(store: &EmbeddedStore, value: u64, fail: bool) -> Result<(), StoreError> {
        store
            .write(move |txn| {
                txn.open_table(CHANGES)
                    .map_err(backend)?
                    .insert("change", value)
                    .map_err(backend)?;
                ride(txn, Some(&1_u64), Some(&value))?;
                if fail {
                    return Err(StoreError::Backend("refused after riding".to_owned()));
                }
                Ok(())
            })
            .await
    }

    async fn read(
        store: &EmbeddedStore,
        table: TableDefinition<'static, &str, u64>,
    ) -> Option<u64> {
        store
            .read(move |txn| {
                let Ok(table) = txn.open_table(table) else {
                    return Ok(None);
                };
                let mut values = table.iter().map_err(backend)?;
                Ok(values
                    .next()
                    .transpose()
                    .map_err(backend)?
                    .map(|(_, value)| value.value()))
            })
            .await
            .expect("read")
    }

    /// The rider is written in the transaction of the change: with it, once, or not at all.
    #[tokio::test]
    async fn a_rider_commits_with_its_change_or_not_at_all() {
        let dir = tempfile::tempdir().expect("dir");
        let schema = Schema {
            tables: Vec::new(),
            migrations: Vec::new(),
        };
        let store = EmbeddedStore::open(dir.path(), schema)
            .await
            .expect("store");

        // A change refused after riding leaves neither.
        let rider = Arc::new(Sum::default());
        let failed = with_rider(rider.clone(), change(&store, 7, true)).await;
        assert!(failed.is_err());
        assert!(!rider.committed());
        assert_eq!(read(&store, CHANGES).await, None);
        assert_eq!(read(&store, RIDERS).await, None);

        // A change made writes its rider in the same commit.
        let commits = store.commits();
        with_rider(rider.clone(), change(&store, 7, false))
            .await
            .expect("change");
        assert!(rider.committed());
        assert_eq!(store.commits(), commits + 1);
        assert_eq!(read(&store, CHANGES).await, Some(7));
        assert_eq!(read(&store, RIDERS).await, Some(8));

        // It rides once: a second change under it does not write it again.
        with_rider(rider.clone(), change(&store, 9, false))
            .await
            .expect("change");
        assert_eq!(read(&store, CHANGES).await, Some(9));
        assert_eq!(read(&store, RIDERS).await, Some(8));

        // Without a rider in scope, a change writes only itself.
        change(&store, 11, false).await.expect("change");
        assert_eq!(read(&store, RIDERS).await, Some(8));
    }
}
