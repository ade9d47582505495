//! Keys presented as `Authorization: Bearer rk_…`: looked up (a short cache, so that a
//! revocation is seen on every instance within [`CACHE_FOR`]), checked in constant time, and
//! kept in the request as its caller, with the key's role and `key:<name>` as its `sub`, for
//! every extractor and middleware after this one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};

use super::{
    domain::{ApiKey, KEY_PREFIX, split_key},
    store::ApiKeyStore,
};
use crate::{
    auth::{self, Caller},
    clock::Clock,
    error::ApiError,
    storage::StoreError,
};

/// How long a key read from the store is trusted: a revoked key is refused on every instance
/// within this.
pub const CACHE_FOR: chrono::Duration = chrono::Duration::seconds(5);
/// How often a key's last use is written at most.
pub const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);
/// Cached look-ups kept at most (unknown ids included); past it the cache starts again.
const CACHE_ENTRIES: usize = 10_000;

struct Cached {
    key: Option<ApiKey>,
    fetched_at: DateTime<Utc>,
}

pub struct KeyResolver {
    store: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl KeyResolver {
    pub fn new(store: Arc<dyn ApiKeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, id: &str, now: DateTime<Utc>) -> Option<Option<ApiKey>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(id)
            .filter(|cached| now - cached.fetched_at < CACHE_FOR)
            .map(|cached| cached.key.clone())
    }

    fn remember(&self, id: &str, key: Option<ApiKey>, now: DateTime<Utc>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                id.to_owned(),
                Cached {
                    key,
                    fetched_at: now,
                },
            );
        }
    }

    /// The caller `token` names: `None` for a key unknown, revoked or with a wrong secret.
    pub async fn caller(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let Some((id, secret)) = split_key(token) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let key = match self.cached(id, now) {
            Some(key) => key,
            None => {
                let key = self.store.key(id).await?;
                self.remember(id, key.clone(), now);
                // The last use is written on a refresh, at most once a minute a key.
                if let Some(key) = &key
                    && key.revoked_at.is_none()
                    && key.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY)
                    && key.admits(secret)
                    && let Err(err) = self.store.touch_key(id, now).await
                {
                    tracing::warn!(error = %err, "cannot note an API key's last use");
                }
                key
            }
        };
        Ok(key
            .filter(|key| key.revoked_at.is_none() && key.admits(secret))
            .map(|key| Caller {
                sub: format!("key:{}", key.name),
                email: None,
                given_name: None,
                family_name: None,
                roles: vec![key.role.as_str().to_owned()],
                key_id: Some(key.id.clone()),
            }))
    }
}

/// Resolves a bearer API key into the request's caller (a refused key leaves no caller, so the
/// route answers 401 as for a bad token); a store that does not answer is 503.
pub async fn resolve(
    State(resolver): State<Arc<KeyResolver>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = auth::bearer_token(request.headers())
        .filter(|token| token.starts_with(KEY_PREFIX))
        .map(str::to_owned);
    if let Some(token) = token {
        match resolver.caller(&token).await {
            Ok(caller) => auth::remember_caller(request.extensions_mut(), caller),
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    next.run(request).await
}
