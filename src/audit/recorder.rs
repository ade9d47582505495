//! The one place entries are written. A handler that changes something takes [`Audit`] (an
//! extractor: the caller, the request id, the log) and runs its change through
//! [`Audit::record`], giving the change's before and after; the recorder does the rest.
//!
//! The entry is written before the change, not completed; the change runs; the entry is then
//! completed with the changes as done, or withdrawn if the change was refused. So no change is
//! ever made without its entry: a crash (or a store failure) between the change and the
//! completion leaves an entry with `completed: false`, which says that its change may not have
//! been made.

use std::{future::Future, sync::Arc};

use axum::{extract::FromRequestParts, http::request::Parts};

use super::{
    domain::{AuditEntry, Changes},
    store::AuditLog,
};
use crate::{
    auth::{Authenticator, Role},
    clock::Clock,
    error::ApiError,
    events::domain::uuid_v7,
    ops::metrics,
    state::AppState,
};

/// Why a change was made, as its maker said.
#[derive(Clone, Debug, Default)]
pub struct Why {
    pub reason: Option<String>,
    pub note: Option<String>,
}

/// What a change came to: its answer, and its `{field: [before, after]}`.
pub struct Done<T> {
    pub value: T,
    pub changes: Changes,
}

impl<T> Done<T> {
    pub fn new(value: T, changes: Changes) -> Self {
        Self { value, changes }
    }
}

/// The recorder of one request's changes.
pub struct Audit {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    actor: String,
    role: Option<String>,
    request_id: Option<String>,
}

impl FromRequestParts<AppState> for Audit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth: &Arc<Authenticator> = &state.auth;
        let caller = auth.caller_of(&parts.headers, &mut parts.extensions).ok();
        let role = caller.as_ref().and_then(|caller| {
            [Role::Admin, Role::Service]
                .into_iter()
                .find(|role| caller.has_role(*role))
                .map(|role| role.as_str().to_owned())
        });
        Ok(Self {
            log: state.stores.audit.clone(),
            clock: state.clock.clone(),
            actor: caller.map_or_else(|| "anonymous".to_owned(), |caller| caller.sub),
            role,
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        })
    }
}

impl Audit {
    /// Runs `change` under an entry of `action` on `target`: see the module's description.
    pub async fn record<T>(
        &self,
        action: &str,
        target: &str,
        why: Why,
        change: impl Future<Output = Result<Done<T>, ApiError>>,
    ) -> Result<T, ApiError> {
        let entry = AuditEntry {
            id: uuid_v7(self.clock.now()),
            at: self.clock.now(),
            actor: self.actor.clone(),
            role: self.role.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            changes: Changes::new(),
            reason: why.reason,
            note: why.note,
            request_id: self.request_id.clone(),
            completed: false,
        };
        self.log.insert_entry(&entry).await?;
        match change.await {
            Ok(done) => {
                if let Err(err) = self.log.complete_entry(&entry.id, &done.changes).await {
                    // The change is made; its entry stays, saying it was not seen completed.
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, entry = %entry.id, "cannot complete an audit entry");
                }
                Ok(done.value)
            }
            Err(refused) => {
                if let Err(err) = self.log.withdraw_entry(&entry.id).await {
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, entry = %entry.id, "cannot withdraw the audit entry of a refused change");
                }
                Err(refused)
            }
        }
    }
}
