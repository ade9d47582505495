//! The one place entries are written. A handler that changes something takes [`Audit`] (an
//! extractor: the caller, the request id, the log) and runs its change through
//! [`Audit::record`], saying how its changes are made from the changed record before and after;
//! the recorder does the rest.
//!
//! The entry rides with its change (see `storage::rider`): the store method that makes the
//! change writes it in the same atomic step, with the changes made from the records it writes
//! — in the same transaction on the embedded store, in the same document write on MongoDB
//! (moved to the log right after, or by the log's next read) — so the two are kept together or
//! not at all, and a refused change writes none. A MongoDB change that removes its document or
//! writes many writes the entry ahead instead, not completed; the recorder completes it after
//! the change, or withdraws it if the change was refused. So no change is ever made without its
//! entry: a crash between such a change and its completion leaves an entry with
//! `completed: false`, which says that its change may not have been made.

use std::{any::Any, future::Future, sync::Arc};

use axum::{extract::FromRequestParts, http::request::Parts};

use super::{
    domain::{AuditEntry, Changes},
    pending::Pending,
    store::AuditLog,
};
use crate::{
    auth::{Authenticator, Role},
    clock::Clock,
    error::ApiError,
    events::domain::uuid_v7,
    ops::metrics,
    state::AppState,
    storage::rider::{erased, with_rider},
};

/// Why a change was made, as its maker said.
#[derive(Clone, Debug, Default)]
pub struct Why {
    pub reason: Option<String>,
    pub note: Option<String>,
}

/// What an entry is about: the action taken, on what, and why.
#[derive(Clone, Debug)]
pub struct Subject {
    action: String,
    target: String,
    why: Why,
}

impl Subject {
    /// `action` (such as `program.create`) on `target`, with no reason given.
    pub fn new(action: &str, target: impl std::fmt::Display) -> Self {
        Self {
            action: action.to_owned(),
            target: target.to_string(),
            why: Why::default(),
        }
    }

    /// The same, with its maker's reason and note.
    pub fn because(self, why: Why) -> Self {
        Self { why, ..self }
    }
}

/// What a change came to: its answer, and the changed record before and after (`None`: made,
/// or removed).
pub struct Done<T, R> {
    pub value: T,
    pub before: Option<R>,
    pub after: Option<R>,
}

impl<T, R> Done<T, R> {
    pub fn made(value: T, after: R) -> Self {
        Self {
            value,
            before: None,
            after: Some(after),
        }
    }

    pub fn changed(value: T, before: R, after: R) -> Self {
        Self {
            value,
            before: Some(before),
            after: Some(after),
        }
    }

    pub fn removed(value: T, before: R) -> Self {
        Self {
            value,
            before: Some(before),
            after: None,
        }
    }
}

impl<T, R: Any> Done<T, R> {
    /// The completed entry of this change.
    fn entry(&self, pending: &Pending) -> Option<AuditEntry> {
        pending.entry_of(erased(self.before.as_ref()), erased(self.after.as_ref()))
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
    /// Runs `change` under an entry about `subject`, whose changes `changes` makes from the
    /// changed record before and after: see the module's description.
    pub async fn record<T, R: Any>(
        &self,
        subject: Subject,
        changes: impl Fn(Option<&R>, Option<&R>) -> Changes + Send + Sync + 'static,
        change: impl Future<Output = Result<Done<T, R>, ApiError>>,
    ) -> Result<T, ApiError> {
        let Subject {
            action,
            target,
            why,
        } = subject;
        let entry = AuditEntry {
            id: uuid_v7(self.clock.now()),
            at: self.clock.now(),
            actor: self.actor.clone(),
            role: self.role.clone(),
            action: action.clone(),
            target,
            changes: Changes::new(),
            reason: why.reason,
            note: why.note,
            request_id: self.request_id.clone(),
            completed: false,
        };
        let pending = Arc::new(Pending::new(entry, changes, self.log.clone()));
        let id = &pending.draft().id;
        let result = with_rider(pending.clone(), change).await;
        if let Some((place, entry)) = pending.settling() {
            // A MongoDB write carried the entry: it moves to the log now (or, if this fails or
            // the process stops first, when the log is next read).
            if let Err(err) = self.log.settle(&entry, &place).await {
                metrics::store_error(err.kind());
                tracing::warn!(error = %err, entry = %id, "cannot move a carried audit entry yet");
            }
            return result.map(|done| done.value);
        }
        match result {
            Ok(done) if pending.written_ahead() => {
                let changes = done
                    .entry(&pending)
                    .map(|entry| entry.changes)
                    .unwrap_or_default();
                if let Err(err) = self.log.complete_entry(id, &changes).await {
                    // The change is made; its entry stays, saying it was not seen completed.
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, entry = %id, "cannot complete an audit entry");
                }
                Ok(done.value)
            }
            Ok(done) => {
                if !pending.is_committed()
                    && let Some(entry) = done.entry(&pending)
                {
                    // A change whose write did not take its entry along: a fault of the code,
                    // answered by writing the entry now rather than none.
                    metrics::audit_entry_late();
                    tracing::error!(entry = %id, %action, "an audited change wrote no entry with it");
                    self.log.insert_entry(&entry).await?;
                }
                Ok(done.value)
            }
            Err(refused) => {
                if pending.written_ahead()
                    && let Err(err) = self.log.withdraw_entry(id).await
                {
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, entry = %id, "cannot withdraw the audit entry of a refused change");
                }
                Err(refused)
            }
        }
    }
}
