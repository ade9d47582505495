//! What idempotent writes need from storage: a record per (caller, key) that is claimed by the
//! first request, holds the fingerprint of that request, and then its answer.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::StoreError;

/// The first answer to a request, as it is replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// The headers replayed with it (content type, deprecation), as `(name, value)`.
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_body")]
    pub body: Vec<u8>,
}

/// Bodies are kept as base64 text, which both backends store compactly.
mod base64_body {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A claim on a key: who holds it, until when the holder counts as alive, and when the record
/// expires.
#[derive(Clone, Debug)]
pub struct Claim {
    /// `sha256(scope) : key`, so that callers' keys never collide and never form a query.
    pub id: String,
    pub fingerprint: String,
    /// Names this attempt; only it may complete or release the claim.
    pub owner: String,
    /// After this, a claim still running belongs to a dead request and may be taken over.
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a request found under its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begun {
    /// No live record: this request runs, and holds the key.
    Started,
    /// Another request with this key is running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// The key's request ran; here is its answer.
    Completed(StoredResponse),
}

/// A record found under a key, as both backends read it.
pub struct Held {
    pub fingerprint: String,
    pub response: Option<StoredResponse>,
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Held {
    /// What `claim` meets in this record at `now`; `None` when the record has lapsed (expired,
    /// or its request died without an answer) and the claim may take the key over.
    pub fn meets(self, claim: &Claim, now: DateTime<Utc>) -> Option<Begun> {
        let dead = self.response.is_none() && self.locked_until <= now;
        if self.expires_at <= now || dead {
            return None;
        }
        Some(if self.fingerprint != claim.fingerprint {
            Begun::Mismatch
        } else {
            match self.response {
                Some(response) => Begun::Completed(response),
                None => Begun::InProgress,
            }
        })
    }
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for `claim` at `now`, unless a live record holds it.
    async fn begin(&self, claim: &Claim, now: DateTime<Utc>) -> Result<Begun, StoreError>;

    /// Stores the answer of the claim's request; the key then replays it until it expires.
    async fn complete(&self, claim: &Claim, response: &StoredResponse) -> Result<(), StoreError>;

    /// Gives the key up (the request ended in a 5xx): the next request with it runs afresh.
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;
}
