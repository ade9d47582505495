//! What admins can do with credit events: list them, read one, and queue one for an attempt now.

use chrono::{DateTime, Utc};

use super::{
    domain::{CallbackFilter, CreditEvent},
    store::{CallbackOutbox, Requeue},
};
use crate::{cursor::Cursor, storage::StoreError};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("no such callback")]
    NotFound,
    #[error("the callback was delivered")]
    AlreadyDelivered,
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = CallbackError> = std::result::Result<T, E>;

/// One page of events, oldest first, and where the next page starts.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<CreditEvent>,
    pub next: Option<Cursor>,
}

pub async fn list(outbox: &dyn CallbackOutbox, filter: CallbackFilter) -> Result<Page> {
    let limit = filter.limit;
    // One more than asked tells whether a next page exists.
    let mut events = outbox
        .list(&CallbackFilter {
            limit: limit + 1,
            ..filter
        })
        .await?;
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(CreditEvent::cursor)
    } else {
        None
    };
    Ok(Page { events, next })
}

pub async fn get(outbox: &dyn CallbackOutbox, id: &str) -> Result<CreditEvent> {
    outbox.get(id).await?.ok_or(CallbackError::NotFound)
}

/// Queues a `pending` or `failed` event for an attempt now; its attempts count is kept.
pub async fn retry(
    outbox: &dyn CallbackOutbox,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CreditEvent> {
    match outbox.requeue(id, now).await? {
        Requeue::Queued(event) => Ok(event),
        Requeue::AlreadyDelivered => Err(CallbackError::AlreadyDelivered),
        Requeue::NotFound => Err(CallbackError::NotFound),
    }
}
