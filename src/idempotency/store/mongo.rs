//! Idempotency records in the `idempotency_keys` collection, keyed by id, removed by a TTL
//! index on `expires_at` (MongoDB's sweeper runs about once a minute, so a claim also treats an
//! expired record as absent). A dead request's claim is taken over only while it is still the
//! record that was read (`{_id, owner}`), so two takers never both start.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{Collection, bson::doc};
use serde::{Deserialize, Serialize};

use super::{Begun, Claim, Held, IdempotencyStore, StoredResponse};
use crate::storage::{
    StoreError,
    mongo::{
        Deadline, Index, IndexKind, MongoStore, Schema, from_bson_datetime, is_duplicate_key,
        store_error, to_bson, to_bson_datetime,
    },
};

pub(crate) const IDEMPOTENCY: &str = "idempotency_keys";

/// Records remove themselves once `expires_at` has passed (a TTL index).
pub(crate) fn schema() -> Schema {
    let keys = doc! { "expires_at": 1 };
    Schema::indexes(vec![Index::new(
        IDEMPOTENCY,
        "expires_at_ttl",
        keys,
        IndexKind::Ttl,
    )])
}

/// Rounds of insert, read and take-over before answering "in progress".
const ATTEMPTS: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
struct RecordDoc {
    #[serde(rename = "_id")]
    id: String,
    fingerprint: String,
    owner: String,
    locked_until: mongodb::bson::DateTime,
    expires_at: mongodb::bson::DateTime,
    #[serde(default)]
    response: Option<StoredResponse>,
}

impl RecordDoc {
    fn new(claim: &Claim) -> Self {
        Self {
            id: claim.id.clone(),
            fingerprint: claim.fingerprint.clone(),
            owner: claim.owner.clone(),
            locked_until: to_bson_datetime(claim.locked_until),
            expires_at: to_bson_datetime(claim.expires_at),
            response: None,
        }
    }
}

impl MongoStore {
    fn idempotency(&self) -> Collection<RecordDoc> {
        self.db.collection(IDEMPOTENCY)
    }
}

#[async_trait]
impl IdempotencyStore for MongoStore {
    async fn begin(&self, claim: &Claim, now: DateTime<Utc>) -> Result<Begun, StoreError> {
        for _ in 0..ATTEMPTS {
            match self
                .idempotency()
                .insert_one(RecordDoc::new(claim))
                .answered_within(self.timeout)
                .await?
            {
                Ok(_) => return Ok(Begun::Started),
                Err(err) if is_duplicate_key(&err) => {}
                Err(err) => return Err(store_error(err)),
            }
            let Some(found) = self
                .idempotency()
                .find_one(doc! { "_id": &claim.id })
                .within(self.timeout)
                .await?
            else {
                continue;
            };
            let owner = found.owner.clone();
            let held = Held {
                fingerprint: found.fingerprint,
                response: found.response,
                locked_until: from_bson_datetime(found.locked_until)?,
                expires_at: from_bson_datetime(found.expires_at)?,
            };
            if let Some(begun) = held.meets(claim, now) {
                return Ok(begun);
            }
            let taken = self
                .idempotency()
                .replace_one(
                    doc! { "_id": &claim.id, "owner": &owner },
                    RecordDoc::new(claim),
                )
                .within(self.timeout)
                .await?;
            if taken.matched_count == 1 {
                return Ok(Begun::Started);
            }
        }
        Ok(Begun::InProgress)
    }

    async fn complete(&self, claim: &Claim, response: &StoredResponse) -> Result<(), StoreError> {
        self.idempotency()
            .update_one(
                doc! { "_id": &claim.id, "owner": &claim.owner },
                doc! { "$set": { "response": to_bson(response)? } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.idempotency()
            .delete_one(doc! { "_id": &claim.id, "owner": &claim.owner, "response": null })
            .within(self.timeout)
            .await?;
        Ok(())
    }
}
