//! On MongoDB, credit events live inside the user document whose change caused them (the
//! `callbacks` array), so that the change and the event are one single-document write.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Decimal128, Document, doc};
use serde::{Deserialize, Serialize};

use super::CallbackOutbox;
use crate::{
    callbacks::{CallbackStatus, CreditEvent, CreditEventType},
    indication::UserHash,
    storage::{
        StoreError,
        mongo::{
            MongoStore, USERS, from_bson_datetime, from_decimal128, store_error, to_bson,
            to_bson_datetime, to_decimal128,
        },
    },
};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallbackDoc {
    id: String,
    event_type: CreditEventType,
    user_hash: String,
    amount: Decimal128,
    program_name: String,
    user_indicator_hash: String,
    status: CallbackStatus,
    attempts: i64,
    last_error: Option<String>,
    created_at: mongodb::bson::DateTime,
    next_attempt_at: mongodb::bson::DateTime,
}

impl CallbackDoc {
    pub(crate) fn from_event(event: &CreditEvent) -> Result<Self, StoreError> {
        Ok(Self {
            id: event.id.clone(),
            event_type: event.event_type,
            user_hash: event.user_hash.to_string(),
            amount: to_decimal128(event.amount)?,
            program_name: event.program_name.clone(),
            user_indicator_hash: event.user_indicator_hash.to_string(),
            status: event.status,
            attempts: i64::from(event.attempts),
            last_error: event.last_error.clone(),
            created_at: to_bson_datetime(event.created_at),
            next_attempt_at: to_bson_datetime(event.next_attempt_at),
        })
    }

    pub(crate) fn to_document(event: &CreditEvent) -> Result<Document, StoreError> {
        mongodb::bson::to_document(&Self::from_event(event)?)
            .map_err(|e| StoreError::Backend(format!("cannot encode event: {e}")))
    }

    fn into_event(self) -> Result<CreditEvent, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("event {}: bad {what}", self.id));
        Ok(CreditEvent {
            event_type: self.event_type,
            status: self.status,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt("attempts"))?,
            user_hash: UserHash::from_stored(self.user_hash),
            amount: from_decimal128(self.amount)?,
            program_name: self.program_name,
            user_indicator_hash: UserHash::from_stored(self.user_indicator_hash),
            last_error: self.last_error,
            created_at: from_bson_datetime(self.created_at)?,
            next_attempt_at: from_bson_datetime(self.next_attempt_at)?,
            id: self.id,
        })
    }
}

#[derive(Deserialize)]
struct WithCallbacks {
    #[serde(default)]
    callbacks: Vec<CallbackDoc>,
}

#[async_trait]
impl CallbackOutbox for MongoStore {
    async fn list(&self, status: Option<CallbackStatus>) -> Result<Vec<CreditEvent>, StoreError> {
        let filter = match status {
            Some(status) => doc! { "callbacks.status": to_bson(&status)? },
            None => doc! { "callbacks.0": { "$exists": true } },
        };
        let docs: Vec<WithCallbacks> = self
            .db
            .collection::<WithCallbacks>(USERS)
            .find(filter)
            .projection(doc! { "callbacks": 1 })
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        let mut events = Vec::new();
        for event in docs.into_iter().flat_map(|d| d.callbacks) {
            let event = event.into_event()?;
            if status.is_none_or(|s| s == event.status) {
                events.push(event);
            }
        }
        events.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(events)
    }
}
