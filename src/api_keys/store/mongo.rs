//! Keys on MongoDB: one document a key, `_id` = its id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Bson, doc},
};
use serde::{Deserialize, Serialize};

use super::ApiKeyStore;
use crate::{
    api_keys::domain::{ApiKey, KeyRole},
    storage::{
        StoreError,
        mongo::{
            Carried, Deadline, Gather, MongoStore, Schema, from_bson_datetime, to_bson_datetime,
        },
    },
};

pub(crate) const API_KEYS: &str = "api_keys";

pub(crate) fn schema() -> Schema {
    Schema::default()
}

#[derive(Serialize, Deserialize)]
struct KeyDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    role: KeyRole,
    secret_hash: String,
    created_at: mongodb::bson::DateTime,
    #[serde(default)]
    last_used_at: Option<mongodb::bson::DateTime>,
    #[serde(default)]
    revoked_at: Option<mongodb::bson::DateTime>,
}

impl KeyDoc {
    fn into_key(self) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            id: self.id,
            name: self.name,
            role: self.role,
            secret_hash: self.secret_hash,
            created_at: from_bson_datetime(self.created_at)?,
            last_used_at: self.last_used_at.map(from_bson_datetime).transpose()?,
            revoked_at: self.revoked_at.map(from_bson_datetime).transpose()?,
        })
    }
}

impl MongoStore {
    fn api_keys(&self) -> Collection<KeyDoc> {
        self.db.collection(API_KEYS)
    }
}

#[async_trait]
impl ApiKeyStore for MongoStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let record = KeyDoc {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            secret_hash: key.secret_hash.clone(),
            created_at: to_bson_datetime(key.created_at),
            last_used_at: None,
            revoked_at: None,
        };
        let id = Bson::String(key.id.clone());
        self.insert_made(API_KEYS, &record, key, id).await
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_keys()
            .find_one(doc! { "_id": id })
            .within(self.timeout)
            .await?
            .map(KeyDoc::into_key)
            .transpose()
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let docs: Vec<KeyDoc> = self
            .api_keys()
            .find(doc! {})
            .sort(doc! { "created_at": 1, "_id": 1 })
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(KeyDoc::into_key).collect()
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(before) = self.key(id).await?.filter(|key| key.revoked_at.is_none()) else {
            return Ok(false);
        };
        let after = ApiKey {
            revoked_at: Some(at),
            ..before.clone()
        };
        let carried = Carried::of(Some(&before), Some(&after))?;
        let mut update = doc! { "$set": { "revoked_at": to_bson_datetime(at) } };
        Carried::push_in(carried.as_ref(), &mut update);
        let result = self
            .api_keys()
            .update_one(doc! { "_id": id, "revoked_at": Bson::Null }, update)
            .within(self.timeout)
            .await?;
        let revoked = result.matched_count == 1;
        if let (true, Some(carried)) = (revoked, carried) {
            carried.done(API_KEYS, Bson::String(id.to_owned()));
        }
        Ok(revoked)
    }

    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.api_keys()
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "last_used_at": to_bson_datetime(at) } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }
}
