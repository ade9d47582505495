//! On MongoDB, a credit event is first written inside the user document whose change caused it
//! (its `callbacks` array), so that the change and the event are one single-document write.
//! A relay then copies the events, keyed by their ids, into the `callbacks` collection (one
//! unordered insert per batch of users) and removes them from their user documents (one `$pull`
//! per user, of the ids it copied). The copy is idempotent (a second insert of one id is a
//! duplicate-key no-op), so a process that dies between the copy and the removal loses nothing
//! and duplicates nothing: the next relay pass finds the events still in their users, skips
//! them in the insert, and removes them.
//!
//! In the collection, `due_at` is the next attempt, or the end of the lease while a worker holds
//! one; claiming is one conditional `findOneAndUpdate` per event on the `{status, due_at}` index.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Bson, Decimal128, Document, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

mod records;

use super::{Attempt, CallbackOutbox, Lease, Requeue};
use crate::{
    callbacks::domain::{
        AttemptOutcome, CallbackFilter, CallbackStatus, CreditEvent, CreditEventType,
    },
    indication::UserHash,
    storage::{
        StoreError,
        mongo::{
            Carried, Deadline, Gather, Held, HeldIn, Index, IndexKind, MongoStore, Schema, USERS,
            claim_batch, from_bson_datetime, from_decimal128, insert_unordered, to_bson,
            to_bson_datetime, to_decimal128,
        },
    },
};
pub(crate) use records::CallbackDoc;
use records::*;

pub(crate) const CALLBACKS: &str = "callbacks";
/// How often an admin's retry reads the callback again when it changed between the read and
/// the write.
const MAX_REQUEUE_RACES: usize = 8;

/// The outbox's indexes, and the one on events still inside a user (not yet relayed).
pub(crate) fn schema() -> Schema {
    let plain = IndexKind::Plain;
    Schema::indexes(vec![
        Index::new(
            USERS,
            "callbacks_id",
            doc! { "callbacks.id": 1 },
            IndexKind::Sparse,
        ),
        Index::new(
            CALLBACKS,
            "status_due_at",
            doc! { "status": 1, "due_at": 1 },
            plain,
        ),
        Index::new(
            CALLBACKS,
            "created_at_id",
            doc! { "created_at": 1, "_id": 1 },
            plain,
        ),
        // The admin list filtered by status, a page at a time.
        Index::new(
            CALLBACKS,
            "status_created_at_id",
            doc! { "status": 1, "created_at": 1, "_id": 1 },
            plain,
        ),
        Index::new(
            CALLBACKS,
            "user_hash_created_at_id",
            doc! { "user_hash": 1, "created_at": 1, "_id": 1 },
            plain,
        ),
    ])
}

/// Events relayed per pass; a pass repeats until none are left.
const RELAY_BATCH: i64 = 100;

/// Where credit events wait for the relay: inside their user document.
const UNRELAYED: HeldIn = HeldIn {
    collection: USERS,
    array: "callbacks",
    id: "id",
};

impl MongoStore {
    fn outbox(&self) -> Collection<OutboxDoc> {
        self.db.collection(CALLBACKS)
    }

    /// Moves every event still inside a user document into the `callbacks` collection.
    pub(crate) async fn relay_callbacks(&self) -> Result<(), StoreError> {
        loop {
            let batch: Held<CallbackDoc> = self.holding(UNRELAYED, RELAY_BATCH).await?;
            let ids: Vec<String> = batch.items.iter().map(|event| event.id.clone()).collect();
            // One unordered insert for the whole batch; an id already copied is a duplicate,
            // skipped. Then one removal from all the batch's users of exactly the events copied.
            let copies = batch.items.into_iter().map(OutboxDoc::from).collect();
            insert_unordered(&self.outbox(), copies, self.timeout).await?;
            self.pull_held(UNRELAYED, batch.holders, ids).await?;
            if !batch.full {
                return Ok(());
            }
        }
    }
}

fn status_bson(status: CallbackStatus) -> Result<Bson, StoreError> {
    to_bson(&status)
}

/// Puts in `set` what an attempt that did not deliver leaves: its error, then when the next
/// attempt is due (a retry) or `failed` as the status (the last). A delivery puts nothing.
pub(crate) fn set_undelivered(set: &mut Document, outcome: AttemptOutcome, failed: Bson) {
    match outcome {
        AttemptOutcome::Delivered => {}
        AttemptOutcome::Retry {
            error,
            next_attempt_at,
        } => {
            let next = to_bson_datetime(next_attempt_at);
            set.insert("last_error", error);
            set.insert("next_attempt_at", next);
            set.insert("due_at", next);
        }
        AttemptOutcome::Failed { error } => {
            set.insert("status", failed);
            set.insert("last_error", error);
        }
    }
}

#[async_trait]
impl CallbackOutbox for MongoStore {
    async fn list(&self, filter: &CallbackFilter) -> Result<Vec<CreditEvent>, StoreError> {
        self.relay_callbacks().await?;
        let mut query = Document::new();
        if let Some(status) = filter.status {
            query.insert("status", status_bson(status)?);
        }
        if let Some(user) = &filter.user_hash {
            query.insert("user_hash", user.as_str());
        }
        if let Some(after) = &filter.after {
            let at = to_bson_datetime(after.created_at);
            query.insert(
                "$or",
                vec![
                    doc! { "created_at": { "$gt": at } },
                    doc! { "created_at": at, "_id": { "$gt": &after.id } },
                ],
            );
        }
        let docs: Vec<OutboxDoc> = self
            .outbox()
            .find(query)
            .sort(doc! { "created_at": 1, "_id": 1 })
            .limit(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(OutboxDoc::into_event).collect()
    }

    async fn get(&self, id: &str) -> Result<Option<CreditEvent>, StoreError> {
        self.relay_callbacks().await?;
        self.outbox()
            .find_one(doc! { "_id": id })
            .within(self.timeout)
            .await?
            .map(OutboxDoc::into_event)
            .transpose()
    }

    /// The pending events of the outbox plus those still inside their users, counted without
    /// relaying them (a read only: `/metrics` calls it). An event in the moment between its
    /// copy and its removal from its user counts twice.
    async fn pending_count(&self) -> Result<u64, StoreError> {
        let relayed = self
            .outbox()
            .count_documents(doc! { "status": status_bson(CallbackStatus::Pending)? })
            .within(self.timeout)
            .await?;
        let unrelayed: Vec<Document> = self
            .db
            .collection::<Document>(USERS)
            .aggregate([
                doc! { "$match": { "callbacks.id": { "$exists": true } } },
                doc! { "$group": { "_id": null, "n": { "$sum": { "$size": "$callbacks" } } } },
            ])
            .all_within(self.timeout)
            .await?;
        let unrelayed = unrelayed
            .first()
            .and_then(|doc| match doc.get("n") {
                Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
                Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
                _ => None,
            })
            .unwrap_or(0);
        Ok(relayed + unrelayed)
    }

    async fn claim_due(&self, lease: &Lease, limit: usize) -> Result<Vec<CreditEvent>, StoreError> {
        self.relay_callbacks().await?;
        let due = doc! {
            "status": status_bson(CallbackStatus::Pending)?,
            "due_at": { "$lte": to_bson_datetime(lease.at) },
        };
        let docs = claim_batch(&self.outbox(), due, lease, limit, self.timeout).await?;
        docs.into_iter().map(OutboxDoc::into_event).collect()
    }

    async fn record_attempt(&self, owner: &str, attempt: Attempt) -> Result<bool, StoreError> {
        let at = to_bson_datetime(attempt.at);
        let mut set = doc! { "last_attempt_at": at, "lease_owner": Bson::Null };
        match attempt.outcome {
            AttemptOutcome::Delivered => {
                set.insert("status", status_bson(CallbackStatus::Delivered)?);
                set.insert("delivered_at", at);
            }
            undelivered => {
                set_undelivered(&mut set, undelivered, status_bson(CallbackStatus::Failed)?);
            }
        }
        let result = self
            .outbox()
            .update_one(
                doc! { "_id": attempt.id, "lease_owner": owner },
                doc! { "$set": set, "$inc": { "attempts": 1 } },
            )
            .within(self.timeout)
            .await?;
        Ok(result.matched_count == 1)
    }

    /// The deliveries of the batch in one `updateMany` (they set the same fields; the batch's
    /// last attempt time stands for all, within the moments the batch took); each failure on
    /// its own, as it carries its own error and due time.
    async fn record_attempts(
        &self,
        owner: &str,
        attempts: Vec<Attempt>,
    ) -> Result<usize, StoreError> {
        let (delivered, failed): (Vec<Attempt>, Vec<Attempt>) = attempts
            .into_iter()
            .partition(|attempt| attempt.outcome == AttemptOutcome::Delivered);
        let mut recorded = 0;
        if let Some(at) = delivered.iter().map(|attempt| attempt.at).max() {
            let at = to_bson_datetime(at);
            let ids: Vec<&str> = delivered
                .iter()
                .map(|attempt| attempt.id.as_str())
                .collect();
            let result = self
                .outbox()
                .update_many(
                    doc! { "_id": { "$in": ids }, "lease_owner": owner },
                    doc! {
                        "$set": {
                            "last_attempt_at": at,
                            "lease_owner": Bson::Null,
                            "status": status_bson(CallbackStatus::Delivered)?,
                            "delivered_at": at,
                        },
                        "$inc": { "attempts": 1 },
                    },
                )
                .within(self.timeout)
                .await?;
            recorded += usize::try_from(result.matched_count).unwrap_or(usize::MAX);
        }
        for attempt in failed {
            recorded += usize::from(self.record_attempt(owner, attempt).await?);
        }
        Ok(recorded)
    }

    async fn requeue(&self, id: &str, now: DateTime<Utc>) -> Result<Requeue, StoreError> {
        self.relay_callbacks().await?;
        let at = to_bson_datetime(now);
        let pending = status_bson(CallbackStatus::Pending)?;
        // Read, then write on the condition that the status is as read, so that the audit
        // entry it carries says what it was.
        for _ in 0..MAX_REQUEUE_RACES {
            let Some(before) = self
                .outbox()
                .find_one(doc! { "_id": id })
                .within(self.timeout)
                .await?
                .map(OutboxDoc::into_event)
                .transpose()?
            else {
                return Ok(Requeue::NotFound);
            };
            if before.status == CallbackStatus::Delivered {
                return Ok(Requeue::AlreadyDelivered);
            }
            let after = CreditEvent {
                status: CallbackStatus::Pending,
                next_attempt_at: now,
                ..before.clone()
            };
            let carried = Carried::of(Some(&before), Some(&after))?;
            let was = status_bson(before.status)?;
            let update = |mut set: Document| {
                set.insert("status", pending.clone());
                set.insert("next_attempt_at", at);
                let mut update = doc! { "$set": set };
                Carried::push_in(carried.as_ref(), &mut update);
                update
            };
            // Unclaimed: due now. Claimed by a worker sending it right now: due when that
            // attempt is recorded or its lease runs out, never sent twice at once.
            let unclaimed = self
                .outbox()
                .find_one_and_update(
                    doc! { "_id": id, "status": was.clone(), "lease_owner": Bson::Null },
                    update(doc! { "due_at": at }),
                )
                .return_document(ReturnDocument::After)
                .within(self.timeout)
                .await?;
            let updated = match unclaimed {
                Some(doc) => Some(doc),
                None => {
                    self.outbox()
                        .find_one_and_update(
                            doc! { "_id": id, "status": was },
                            update(Document::new()),
                        )
                        .return_document(ReturnDocument::After)
                        .within(self.timeout)
                        .await?
                }
            };
            if let Some(doc) = updated {
                if let Some(carried) = carried {
                    carried.done(CALLBACKS, Bson::String(id.to_owned()));
                }
                return Ok(Requeue::Queued(doc.into_event()?));
            }
        }
        Err(StoreError::Backend(
            "the callback kept changing under this retry".to_owned(),
        ))
    }
}
