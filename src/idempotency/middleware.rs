//! The one piece of HTTP code for idempotent writes: it wraps every `POST`, `PUT`, `PATCH` and
//! `DELETE` that carries `Idempotency-Key`, so no handler knows about keys.
//!
//! - The key is scoped to the caller (the API key's id, or the token's `sub`; requests without a valid token share
//!   one anonymous scope, which only matters with `LEGACY_ROUTES_AUTH=none`).
//! - The request is fingerprinted by method, path with query, and body bytes.
//! - Answers are kept for 24 hours and replayed with `Idempotency-Replayed: true`, except those
//!   that say nothing about the request itself: 5xx, 401, 408 and 429. Such an answer, or a
//!   request whose process died (its claim lapses after [`LOCK`]), leaves the key free.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::store::{Begun, Claim, IdempotencyStore, StoredResponse};
use crate::{
    auth::Authenticator,
    clock::Clock,
    error::ApiError,
    extract::read_body,
    limits::REQUEST_TIMEOUT,
    sentences::{IDEMPOTENCY_KEY_IN_PROGRESS, IDEMPOTENCY_KEY_NOT_VALID, IDEMPOTENCY_KEY_REUSED},
};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENCY_REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

/// How long a key's answer is replayed.
pub const RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long a running request holds its key before it counts as dead: beyond the request
/// timeout, after which no handler is still running.
pub const LOCK: std::time::Duration = REQUEST_TIMEOUT.saturating_mul(2);
/// Keys are 1 to 255 printable ASCII characters.
pub const MAX_KEY_LEN: usize = 255;

/// The headers replayed with a stored answer.
const KEPT_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    HeaderName::from_static("deprecation"),
];

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Whether an answer is kept for replay: not when it depends on the moment rather than on the
/// request.
fn kept(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(stored.body)).into_response();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// What the middleware needs of the shared state.
#[derive(Clone)]
pub struct IdempotencyState {
    pub store: Arc<dyn IdempotencyStore>,
    /// Tells callers apart: a key is scoped to the token's `sub`.
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
}

pub async fn enforce(
    State(state): State<IdempotencyState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    if !writes {
        return next.run(request).await;
    }
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| valid_key(k))
        .map(str::to_owned)
    else {
        return ApiError::BadRequest(IDEMPOTENCY_KEY_NOT_VALID.to_owned()).into_response();
    };
    let (mut parts, body) = request.into_parts();
    let scope = state
        .auth
        .caller_of(&parts.headers, &mut parts.extensions)
        .map(|caller| caller.scope())
        .unwrap_or_default();
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(err) => return err.into_response(),
    };
    let target = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    let fingerprint = hex::encode(
        Sha256::new()
            .chain_update(parts.method.as_str())
            .chain_update(b"\n")
            .chain_update(target)
            .chain_update(b"\n")
            .chain_update(&bytes)
            .finalize(),
    );
    let now = state.clock.now();
    let claim = Claim {
        id: format!("{}:{key}", hex::encode(Sha256::digest(scope.as_bytes()))),
        fingerprint,
        owner: uuid::Uuid::new_v4().to_string(),
        locked_until: now + chrono::Duration::from_std(LOCK).unwrap_or(RETENTION),
        expires_at: now + RETENTION,
    };
    let store = state.store;
    match store.begin(&claim, now).await {
        Ok(Begun::Started) => {}
        Ok(Begun::Completed(stored)) => return replay(stored),
        Ok(Begun::InProgress) => {
            return ApiError::Conflict(IDEMPOTENCY_KEY_IN_PROGRESS.to_owned()).into_response();
        }
        Ok(Begun::Mismatch) => {
            return ApiError::unprocessable(IDEMPOTENCY_KEY_REUSED).into_response();
        }
        Err(err) => return ApiError::from(err).into_response(),
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if !kept(status) {
        if let Err(err) = store.release(&claim).await {
            tracing::warn!(error = %err, "cannot release an idempotency key; it lapses by itself");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read an answer to keep it");
            let _ = store.release(&claim).await;
            return ApiError::Internal(err.to_string()).into_response();
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(err) = store.complete(&claim, &stored).await {
        // The write happened; its answer goes out. A retry then finds the key running until
        // its claim lapses, and runs again after that.
        tracing::warn!(error = %err, "cannot keep the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::{Router, middleware::from_fn_with_state, routing::post};
    use tower::ServiceExt;

    use super::*;
    use crate::{
        clock::SystemClock,
        config::{JwtConfig, JwtKeyConfig, LegacyRoutesAuth, StorageConfig},
        stores,
    };

    async fn state(dir: &std::path::Path) -> IdempotencyState {
        let stores = stores::open(&StorageConfig::Embedded {
            data_dir: dir.to_owned(),
        })
        .await
        .expect("store");
        let jwt = JwtConfig {
            key: JwtKeyConfig::Secret("unit-test-secret-unit-test-secret-0123".to_owned()),
            issuer: None,
            audience: None,
        };
        IdempotencyState {
            store: stores.idempotency,
            auth: Arc::new(Authenticator::new(&jwt, dir, LegacyRoutesAuth::None).expect("auth")),
            clock: Arc::new(SystemClock),
        }
    }

    /// A route that fails with a 503 on its first call and succeeds after.
    #[tokio::test]
    async fn a_server_error_does_not_hold_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let state = state(dir.path()).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new()
            .route(
                "/flaky",
                post(move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::CREATED
                        }
                    }
                }),
            )
            .layer(from_fn_with_state(state.clone(), enforce))
            .with_state(state);
        let request = || {
            Request::post("/flaky")
                .header("idempotency-key", "k1")
                .body(Body::from("{}"))
                .expect("request")
        };
        let first = app.clone().oneshot(request()).await.expect("answer");
        assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
        let second = app.clone().oneshot(request()).await.expect("answer");
        assert_eq!(second.status(), StatusCode::CREATED);
        assert!(second.headers().get(&IDEMPOTENCY_REPLAYED).is_none());
        let third = app.oneshot(request()).await.expect("answer");
        assert_eq!(third.status(), StatusCode::CREATED);
        assert_eq!(third.headers()[&IDEMPOTENCY_REPLAYED], "true");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keys_are_short_printable_ascii() {
        assert!(valid_key("a"));
        assert!(valid_key("order 42/retry-1"));
        assert!(valid_key(&"k".repeat(255)));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("tab\there"));
        assert!(!valid_key("clé"));
    }

    #[test]
    fn moment_dependent_answers_are_not_kept() {
        assert!(kept(StatusCode::CREATED));
        assert!(kept(StatusCode::CONFLICT));
        assert!(kept(StatusCode::UNPROCESSABLE_ENTITY));
        for status in [500, 503, 401, 408, 429] {
            assert!(!kept(StatusCode::from_u16(status).expect("status")));
        }
    }
}
