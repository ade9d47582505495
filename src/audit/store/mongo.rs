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
    audit::domain::{AuditEntry, AuditFilter, Changes},
    storage::{
        StoreError,
        mongo::{
            Deadline, Gather, Index, IndexKind, MongoStore, Schema, from_bson_datetime,
            to_bson_datetime,
        },
    },
};

const AUDIT: &str = "audit";

pub(crate) fn schema() -> Schema {
    let plain = IndexKind::Plain;
    Schema::indexes(vec![
        Index::new(AUDIT, "actor_id", doc! { "actor": 1, "_id": -1 }, plain),
        Index::new(AUDIT, "action_id", doc! { "action": 1, "_id": -1 }, plain),
        Index::new(AUDIT, "target_id", doc! { "target": 1, "_id": -1 }, plain),
    ])
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
}

#[async_trait]
impl AuditLog for MongoStore {
    async fn insert_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit()
            .insert_one(AuditDoc {
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
            })
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

    async fn entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
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
