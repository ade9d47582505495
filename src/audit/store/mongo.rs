//! Entries on MongoDB: the `audit` collection, `_id` = the entry's id (newest first is `_id`
//! descending), `changes` kept as JSON text so money stays exact, with an index per filter.

use async_trait::async_trait;
use mongodb::{
    Collection,
    bson::{Document, doc},
};
use serde::{Deserialize, Serialize};

use super::AuditLog;
use crate::{
    api_keys::store::mongo::API_KEYS,
    audit::domain::{AuditEntry, AuditFilter, Changes},
    callbacks::store::mongo::CALLBACKS,
    programs::store::mongo::PROGRAMS,
    storage::{
        StoreError,
        mongo::{
            CARRIED, Deadline, Gather, Held, HeldIn, Index, IndexKind, MongoStore, REFERRERS,
            Schema, USERS, from_bson_datetime, insert_unordered, to_bson_datetime, to_document,
        },
        rider::Place,
    },
    webhooks::store::mongo::WEBHOOKS,
};

const AUDIT: &str = "audit";

/// The collections whose documents carry the entries of their own changes (in `audit`) until
/// they are moved here.
const CARRIERS: [&str; 6] = [PROGRAMS, REFERRERS, USERS, CALLBACKS, WEBHOOKS, API_KEYS];
/// Documents swept per batch.
const SWEEP_BATCH: i64 = 100;

pub(crate) fn schema() -> Schema {
    let plain = IndexKind::Plain;
    let mut indexes = vec![
        Index::new(AUDIT, "actor_id", doc! { "actor": 1, "_id": -1 }, plain),
        Index::new(AUDIT, "action_id", doc! { "action": 1, "_id": -1 }, plain),
        Index::new(AUDIT, "target_id", doc! { "target": 1, "_id": -1 }, plain),
    ];
    for carrier in CARRIERS {
        indexes.push(Index::new(
            carrier,
            "audit_id",
            doc! { "audit._id": 1 },
            IndexKind::Sparse,
        ));
    }
    Schema::indexes(indexes)
}

/// An entry as a change's document carries it.
pub(crate) fn entry_document(entry: &AuditEntry) -> Result<Document, StoreError> {
    to_document(&AuditDoc::of(entry))
}

/// Where the entries `carrier`'s documents carry are.
fn carried(carrier: &str) -> HeldIn<'_> {
    HeldIn {
        collection: carrier,
        array: CARRIED,
        id: "_id",
    }
}

#[derive(Serialize, Deserialize)]
struct AuditDoc {
    #[serde(rename = "_id")]
    id: String,
    at: mongodb::bson::DateTime,
    actor: String,
    role: Option<String>,
    action: String,
    target: String,
    changes: String,
    reason: Option<String>,
    note: Option<String>,
    request_id: Option<String>,
    completed: bool,
}

fn changes_text(changes: &Changes) -> String {
    serde_json::Value::Object(changes.clone()).to_string()
}

impl AuditDoc {
    fn of(entry: &AuditEntry) -> Self {
        Self {
            id: entry.id.clone(),
            at: to_bson_datetime(entry.at),
            actor: entry.actor.clone(),
            role: entry.role.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            changes: changes_text(&entry.changes),
            reason: entry.reason.clone(),
            note: entry.note.clone(),
            request_id: entry.request_id.clone(),
            completed: entry.completed,
        }
    }

    fn into_entry(self) -> Result<AuditEntry, StoreError> {
        let changes = match serde_json::from_str(&self.changes) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StoreError::Corrupt("audit changes".to_owned())),
        };
        Ok(AuditEntry {
            id: self.id,
            at: from_bson_datetime(self.at)?,
            actor: self.actor,
            role: self.role,
            action: self.action,
            target: self.target,
            changes,
            reason: self.reason,
            note: self.note,
            request_id: self.request_id,
            completed: self.completed,
        })
    }
}

impl MongoStore {
    fn audit(&self) -> Collection<AuditDoc> {
        self.db.collection(AUDIT)
    }

    /// Moves `entries` into the log (those already there stay as they are), then takes them
    /// out of the documents `holders` of `carrier`.
    async fn move_carried(
        &self,
        carrier: &str,
        holders: Vec<mongodb::bson::Bson>,
        entries: Vec<AuditDoc>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
        insert_unordered(&self.audit(), entries, self.timeout).await?;
        self.pull_held(carried(carrier), holders, ids).await
    }

    /// Moves every entry still carried by a document (a request that stopped between its
    /// change and the move) into the log.
    async fn sweep_carried(&self) -> Result<(), StoreError> {
        for carrier in CARRIERS {
            loop {
                let batch: Held<AuditDoc> = self.holding(carried(carrier), SWEEP_BATCH).await?;
                if batch.holders.is_empty() {
                    break;
                }
                self.move_carried(carrier, batch.holders, batch.items)
                    .await?;
                if !batch.full {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MongoStore {
    async fn insert_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit()
            .insert_one(AuditDoc::of(entry))
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn complete_entry(&self, id: &str, changes: &Changes) -> Result<(), StoreError> {
        self.audit()
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "completed": true, "changes": changes_text(changes) } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn withdraw_entry(&self, id: &str) -> Result<(), StoreError> {
        self.audit()
            .delete_one(doc! { "_id": id, "completed": false })
            .within(self.timeout)
            .await?;
        Ok(())
    }

    async fn settle(&self, entry: &AuditEntry, place: &Place) -> Result<(), StoreError> {
        self.move_carried(
            place.collection,
            vec![place.id.clone()],
            vec![AuditDoc::of(entry)],
        )
        .await
    }

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.sweep_carried().await?;
        let mut query = Document::new();
        for (field, value) in [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("target", &filter.target),
        ] {
            if let Some(value) = value {
                query.insert(field, value);
            }
        }
        let mut at = Document::new();
        if let Some(since) = filter.since {
            at.insert("$gte", to_bson_datetime(since));
        }
        if let Some(until) = filter.until {
            at.insert("$lt", to_bson_datetime(until));
        }
        if !at.is_empty() {
            query.insert("at", at);
        }
        if let Some(after) = &filter.after {
            query.insert("_id", doc! { "$lt": after });
        }
        let docs = self
            .audit()
            .find(query)
            .sort(doc! { "_id": -1 })
            .limit(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(AuditDoc::into_entry).collect()
    }
}
