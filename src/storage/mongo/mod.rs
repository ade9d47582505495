//! The MongoDB backend: one shared client, a short server-selection timeout so that a missing
//! database fails fast, every call within `DATABASE_TIMEOUT`, and the conversions the stores
//! share. What the capabilities declare — indexes and numbered migrations — is run by
//! `schema`. Nothing here needs a replica set.

use std::{any::Any, collections::HashSet, sync::Arc, time::Duration};

use futures_util::{FutureExt, TryStreamExt};

use mongodb::{
    Client, Collection, Cursor, Database,
    bson::{Bson, Decimal128, Document, doc},
    error::{Error as MongoError, ErrorKind},
    options::{Acknowledgment, ClientOptions},
};

use super::{
    StoreError, StoreHealth,
    rider::{self, Place, Rider},
};

mod schema;

pub use schema::{Index, IndexKind, Migration, MigrationRun, Schema};

pub const DEFAULT_DATABASE: &str = "referral";

/// The users: owned by the indication capability, and the one collection two capabilities
/// share — a credit event is born inside its user's document (atomic with the move), and the
/// callback relay takes it from there into `callbacks`. Named here, below both.
pub(crate) const USERS: &str = "users";
/// Referrers and referees: their documents carry the feed events of their creation and
/// redemption until the events relay takes them. Named here, below both.
pub(crate) const REFERRERS: &str = "referrers";
pub(crate) const REFEREES: &str = "referees";
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

/// Leases a batch of due documents in three round trips, whatever its size: the ids of up to
/// `limit` documents matching `due` (earliest `due_at` first); one `updateMany` that moves those
/// still matching to the lease (`due_at` = its end, `lease_owner`) under a token of this claim,
/// so that of two claimers each document goes to one; and the documents carrying the token.
pub(crate) async fn claim_batch<T>(
    collection: &Collection<T>,
    due: mongodb::bson::Document,
    lease: &crate::callbacks::store::Lease,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<T>, StoreError>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    let ids: Vec<mongodb::bson::Bson> = collection
        .clone_with_type::<mongodb::bson::Document>()
        .find(due.clone())
        .sort(doc! { "due_at": 1 })
        .projection(doc! { "_id": 1 })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .all_within(timeout)
        .await?
        .into_iter()
        .filter_map(|doc| doc.get("_id").cloned())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let token = uuid::Uuid::new_v4().to_string();
    let mut leased = due;
    leased.insert("_id", doc! { "$in": ids.clone() });
    collection
        .update_many(
            leased,
            doc! { "$set": {
                "due_at": to_bson_datetime(lease.until),
                "lease_owner": &lease.owner,
                "claim": &token,
            } },
        )
        .within(timeout)
        .await?;
    collection
        .find(doc! { "_id": { "$in": ids }, "claim": &token })
        .sort(doc! { "due_at": 1, "_id": 1 })
        .all_within(timeout)
        .await
}

/// A batch of the items documents hold in one of their arrays until they are moved to a
/// collection of their own: credit events and feed events inside the document whose change made
/// them, audit entries inside the document they are about.
pub(crate) struct Held<T> {
    /// The holding documents' `_id`s.
    pub holders: Vec<Bson>,
    /// Their items, document after document.
    pub items: Vec<T>,
    /// Whether the batch is as large as asked: more may be waiting.
    pub full: bool,
}

/// Where held items are: the collection, the holding array, and the field naming each item.
#[derive(Clone, Copy)]
pub(crate) struct HeldIn<'a> {
    pub collection: &'a str,
    pub array: &'a str,
    pub id: &'a str,
}

impl MongoStore {
    /// The items held `at` by up to `limit` documents, through the sparse index on the items'
    /// id field.
    pub(crate) async fn holding<T: serde::de::DeserializeOwned>(
        &self,
        at: HeldIn<'_>,
        limit: i64,
    ) -> Result<Held<T>, StoreError> {
        let docs: Vec<Document> = self
            .db
            .collection::<Document>(at.collection)
            .find(doc! { format!("{}.{}", at.array, at.id): { "$exists": true } })
            .projection(doc! { at.array: 1 })
            .limit(limit)
            .all_within(self.timeout)
            .await?;
        let mut held = Held {
            full: i64::try_from(docs.len()).unwrap_or(i64::MAX) >= limit,
            holders: Vec::with_capacity(docs.len()),
            items: Vec::new(),
        };
        for mut doc in docs {
            if let Some(items) = doc.remove(at.array) {
                let items: Vec<T> = mongodb::bson::from_bson(items)
                    .map_err(|e| StoreError::Backend(format!("cannot decode {}: {e}", at.array)))?;
                held.items.extend(items);
            }
            held.holders.push(doc.remove("_id").unwrap_or(Bson::Null));
        }
        Ok(held)
    }

    /// Takes the items `ids` out of the documents `holders` (item ids are unique: each document
    /// loses only its own).
    pub(crate) async fn pull_held<I: Into<Bson>>(
        &self,
        at: HeldIn<'_>,
        holders: Vec<Bson>,
        ids: Vec<I>,
    ) -> Result<(), StoreError> {
        if holders.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = ids.into_iter().map(Into::into).collect();
        self.db
            .collection::<Document>(at.collection)
            .update_many(
                doc! { "_id": { "$in": holders } },
                doc! { "$pull": { at.array: { at.id: { "$in": ids } } } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }
}

impl MongoStore {
    /// Inserts `record` as the document `id` of `collection`, carrying the audit entry of
    /// making `made` if the change is audited.
    pub(crate) async fn insert_made<T: serde::Serialize, R: Any>(
        &self,
        collection: &'static str,
        record: &T,
        made: &R,
        id: Bson,
    ) -> Result<(), StoreError> {
        let carried = Carried::of(None, Some(made))?;
        let mut document = to_document(record)?;
        if let Some(carried) = &carried {
            document.insert(CARRIED, vec![Bson::Document(carried.document.clone())]);
        }
        self.db
            .collection::<Document>(collection)
            .insert_one(document)
            .within(self.timeout)
            .await?;
        if let Some(carried) = carried {
            carried.done(collection, id);
        }
        Ok(())
    }
}

/// What a change written on the condition that what it changes is as read came to.
pub(crate) enum AsRead<D> {
    /// It changes nothing and carries no audit entry: nothing was written.
    Unchanged,
    /// Written: the document after it.
    Written(D),
    /// Another write changed the document since it was read: nothing was written.
    Raced,
}

impl MongoStore {
    /// Writes the change of the document `id` of `collection` from `before` (as read) to
    /// `after`: it `$set`s the fields whose value changed and `$unset`s those `after` leaves out,
    /// on the condition that each of them is still as read (an absent field reads as its
    /// default, so it matches too; `updated_at` is no condition), and carries the change's
    /// audit entry, done once written.
    pub(crate) async fn change_as_read<D>(
        &self,
        collection: &'static str,
        id: Bson,
        (before, after): (&Document, &Document),
        carried: Option<Carried>,
    ) -> Result<AsRead<D>, StoreError>
    where
        D: serde::de::DeserializeOwned + Send + Sync,
    {
        let set: Document = after
            .iter()
            .filter(|(field, value)| before.get(field.as_str()) != Some(*value))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        let unset: Document = before
            .keys()
            .filter(|field| !after.contains_key(field.as_str()))
            .map(|field| (field.clone(), Bson::String(String::new())))
            .collect();
        if set.is_empty() && unset.is_empty() && carried.is_none() {
            return Ok(AsRead::Unchanged);
        }
        let mut filter = doc! { "_id": id.clone() };
        for field in set.keys().chain(unset.keys()) {
            if field != "updated_at" {
                let value = before.get(field).cloned().unwrap_or(Bson::Null);
                filter.insert(field, doc! { "$in": [value, Bson::Null] });
            }
        }
        let mut update = Document::new();
        for (operator, fields) in [("$set", set), ("$unset", unset)] {
            if !fields.is_empty() {
                update.insert(operator, fields);
            }
        }
        Carried::push_in(carried.as_ref(), &mut update);
        let written = self
            .db
            .collection::<D>(collection)
            .find_one_and_update(filter, update)
            .return_document(mongodb::options::ReturnDocument::After)
            .within(self.timeout)
            .await?;
        let Some(written) = written else {
            return Ok(AsRead::Raced);
        };
        if let Some(carried) = carried {
            carried.done(collection, id);
        }
        Ok(AsRead::Written(written))
    }
}

/// The array of a document that carries the audit entries of its own changes until they are
/// moved to the `audit` collection (see `storage::rider`).
pub(crate) const CARRIED: &str = "audit";

/// The rider of a request (see `storage::rider`) as the document a change's write carries.
pub(crate) struct Carried {
    rider: Arc<dyn Rider>,
    /// `$push` it to [`CARRIED`] in the write of the change (or set `[it]` on a new document).
    pub document: Document,
}

impl Carried {
    /// The rider in scope, if any, as the document to carry in the write of the one document a
    /// change writes, from that document's record before and after.
    pub(crate) fn of<R: Any>(
        before: Option<&R>,
        after: Option<&R>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(rider) = rider::current() else {
            return Ok(None);
        };
        let document = rider.carried(rider::erased(before), rider::erased(after))?;
        Ok(Some(Self { rider, document }))
    }

    /// Adds the `$push` of the rider, if any, to `update`.
    pub(crate) fn push_in(carried: Option<&Self>, update: &mut Document) {
        if let Some(carried) = carried {
            update.insert("$push", doc! { CARRIED: carried.document.clone() });
        }
    }

    /// The write that carried it is done: it is in the document `id` of `collection`.
    pub(crate) fn done(self, collection: &'static str, id: Bson) {
        self.rider.commit(Some(Place { collection, id }));
    }
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
pub(crate) fn to_document<T: serde::Serialize>(record: &T) -> Result<Document, StoreError> {
    mongodb::bson::to_document(record)
        .map_err(|err| StoreError::Backend(format!("cannot encode a record: {err}")))
}

pub(crate) fn to_decimal128(money: impl std::fmt::Display) -> Result<Decimal128, StoreError> {
    money
        .to_string()
        .parse()
        .map_err(|e| StoreError::Backend(format!("amount {money} does not fit Decimal128: {e}")))
}

pub(crate) fn from_decimal128<M>(value: Decimal128) -> Result<M, StoreError>
where
    M: std::str::FromStr,
    M::Err: std::fmt::Display,
{
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
