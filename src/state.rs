//! What every handler and middleware shares, and the parts of it each middleware takes
//! (axum's `FromRef`): a middleware names the piece it needs, never the whole state.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::{
    api_keys::KeyResolver,
    auth::Authenticator,
    callbacks::{CallbackOutbox, OutboxSignal},
    clock::Clock,
    idempotency::middleware::IdempotencyState,
    ops::rate_limit::{RateLimitState, RateLimits},
    stores::Stores,
    webhooks::sender::WebhookAdmin,
};

/// A request clones the state several times (each middleware that takes it, then the handler),
/// so it sits behind one `Arc`: one reference count to move per clone, where a clone field by
/// field moved ten, each shared by every request on every core.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

pub struct SharedState {
    pub stores: Stores,
    pub auth: Arc<Authenticator>,
    /// The one clock of the service: handlers, domain constructors and workers read the time
    /// from it, so tests can move time for any route.
    pub clock: Arc<dyn Clock>,
    /// Rung after a write that queued a credit event, so the worker sends it at once.
    pub outbox_signal: OutboxSignal,
    /// `METHOD path` of every documented route, for `GET /`.
    pub endpoints: Arc<Vec<String>>,
    pub rate_limits: Arc<RateLimits>,
    /// `EVENT_RETENTION`: how long the feed keeps events.
    pub event_retention: chrono::Duration,
    /// Resolves `Bearer rk_…` API keys, with a short cache.
    pub api_keys: Arc<KeyResolver>,
    /// The webhook routes' client and settings.
    pub webhooks: WebhookAdmin,
}

/// The API-key layer takes the resolver.
impl FromRef<AppState> for Arc<KeyResolver> {
    fn from_ref(state: &AppState) -> Self {
        state.api_keys.clone()
    }
}

/// The token checks' extractors take the authenticator from the state.
impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Arc<dyn Clock> {
    fn from_ref(state: &AppState) -> Self {
        state.clock.clone()
    }
}

/// `GET /metrics` counts the pending callbacks.
impl FromRef<AppState> for Arc<dyn CallbackOutbox> {
    fn from_ref(state: &AppState) -> Self {
        state.stores.callbacks.clone()
    }
}

impl FromRef<AppState> for RateLimitState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            limits: state.rate_limits.clone(),
            auth: state.auth.clone(),
        }
    }
}

impl FromRef<AppState> for IdempotencyState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            store: state.stores.idempotency.clone(),
            auth: state.auth.clone(),
            clock: state.clock.clone(),
        }
    }
}
