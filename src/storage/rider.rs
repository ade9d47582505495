//! Writes that ride along with a change in its own atomic step (the audit log's entries): a
//! request puts a [`Rider`] in scope ([`with_rider`]), and the store method that makes the
//! change takes it into its write, with the changed record before and after — into its redb
//! transaction on the embedded store (`embedded::ride`), into the write of the one document
//! that changes on MongoDB (`mongo::carried`). A MongoDB change that writes or removes more
//! than one document, or removes the one, cannot carry it: its store method writes the rider
//! ahead of the change instead ([`ahead`]).

use std::{any::Any, future::Future, sync::Arc};

use futures_util::future::BoxFuture;
use mongodb::bson::{Bson, Document};
use redb::WriteTransaction;

use super::StoreError;

/// Where a rider was carried on MongoDB: the document whose write carried it, in its array
/// `audit`.
#[derive(Clone, Debug)]
pub struct Place {
    pub collection: &'static str,
    pub id: Bson,
}

/// What rides with a change.
pub trait Rider: Send + Sync {
    /// Writes itself in `txn`, which also writes the change from `before` to `after`.
    fn ride(
        &self,
        txn: &WriteTransaction,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Result<(), StoreError>;

    /// Itself as the document to carry in the write of the change from `before` to `after`.
    fn carried(
        &self,
        before: Option<&dyn Any>,
        after: Option<&dyn Any>,
    ) -> Result<Document, StoreError>;

    /// Writes itself before a change that cannot carry it, saying it is not yet done.
    fn ahead(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether a committed write holds it.
    fn committed(&self) -> bool;

    /// Told once a committed write holds it (and where, on MongoDB).
    fn commit(&self, place: Option<Place>);
}

tokio::task_local! {
    static RIDER: Arc<dyn Rider>;
}

/// A record of a change as a rider takes it, its type erased.
pub fn erased<R: Any>(record: Option<&R>) -> Option<&dyn Any> {
    record.map(|record| record as &dyn Any)
}

/// Runs `work` (a request's change) with `rider` in scope.
pub async fn with_rider<T>(rider: Arc<dyn Rider>, work: impl Future<Output = T>) -> T {
    RIDER.scope(rider, work).await
}

/// The rider in scope, if any, that no write holds yet.
pub(crate) fn current() -> Option<Arc<dyn Rider>> {
    RIDER
        .try_with(Arc::clone)
        .ok()
        .filter(|rider| !rider.committed())
}

/// For a change that cannot carry its rider: writes the rider in scope, if any, first.
pub(crate) async fn ahead() -> Result<(), StoreError> {
    match current() {
        Some(rider) => rider.ahead().await,
        None => Ok(()),
    }
}
