//! `GET /admin/audit` and `GET /admin/audit.csv` (role `admin`): the log, newest first. No
//! route changes or deletes an entry.

use std::sync::Arc;

use axum::{Json, extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{AuditEntry, AuditFilter},
    store::AuditLog,
};
use crate::{
    auth::AdminAccess,
    clock,
    csv_stream::csv_export,
    cursor::next_key,
    error::{ErrorBody, Result},
    extract::{Limit, Query},
    state::AppState,
};

pub const DEFAULT_AUDIT_PAGE: usize = 50;
pub const MAX_AUDIT_PAGE: usize = 500;
/// Entries a CSV page holds.
const CSV_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(entries_csv))
}

/// The filters of both routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// A token's `sub`, or `key:<name>` for an API key.
    actor: Option<String>,
    /// `program.update`, `credit.reverse`, …
    action: Option<String>,
    /// The id of what changed: a program id, an indicated user's hash, a referral code, a
    /// callback, webhook or key id.
    target: Option<String>,
    /// From this time on (RFC 3339, included).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339, excluded).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<DateTime<Utc>>,
    /// The `next` of the previous page (JSON only).
    after: Option<String>,
    /// 1 to 500 (default 50; JSON only).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Limit<MAX_AUDIT_PAGE>>,
}

impl AuditParams {
    fn filter(self, limit: usize) -> AuditFilter {
        let blank = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        AuditFilter {
            actor: blank(self.actor),
            action: blank(self.action),
            target: blank(self.target),
            since: self.since,
            until: self.until,
            after: blank(self.after),
            limit,
        }
    }
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryBody {
    id: String,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    at: DateTime<Utc>,
    actor: String,
    role: Option<String>,
    action: String,
    target: String,
    /// `{field: [before, after]}`.
    #[schema(value_type = Object)]
    changes: serde_json::Map<String, serde_json::Value>,
    reason: Option<String>,
    note: Option<String>,
    request_id: Option<String>,
    /// `false`: the change was interrupted (a crash or a store failure after the entry was
    /// written) and may not have been made.
    completed: bool,
}

impl From<AuditEntry> for EntryBody {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            at: entry.at,
            actor: entry.actor,
            role: entry.role,
            action: entry.action,
            target: entry.target,
            changes: entry.changes,
            reason: entry.reason,
            note: entry.note,
            request_id: entry.request_id,
            completed: entry.completed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageBody {
    entries: Vec<EntryBody>,
    /// Pass as `after` for the next page; `null` on the last.
    next: Option<String>,
}

/// The audit log, newest first (role `admin`).
#[utoipa::path(
    get, path = "/admin/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries", body = AuditPageBody),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ),
)]
async fn list_entries(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPageBody>> {
    let limit = Limit::or(params.limit, DEFAULT_AUDIT_PAGE);
    let page = state.stores.audit.entries(&params.filter(limit)).await?;
    let next = next_key(&page, limit, |entry| entry.id.clone());
    Ok(Json(AuditPageBody {
        entries: page.into_iter().map(EntryBody::from).collect(),
        next,
    }))
}

const COLUMNS: [&str; 11] = [
    "id",
    "at",
    "actor",
    "role",
    "action",
    "target",
    "changes",
    "reason",
    "note",
    "request_id",
    "completed",
];

fn row(entry: AuditEntry) -> Vec<String> {
    vec![
        entry.id,
        clock::rfc3339_millis_string(entry.at),
        entry.actor,
        entry.role.unwrap_or_default(),
        entry.action,
        entry.target,
        serde_json::Value::Object(entry.changes).to_string(),
        entry.reason.unwrap_or_default(),
        entry.note.unwrap_or_default(),
        entry.request_id.unwrap_or_default(),
        entry.completed.to_string(),
    ]
}

/// The audit log as CSV, newest first, streamed (role `admin`): the JSON list's filters, every
/// page; `changes` is the JSON object as text.
#[utoipa::path(
    get, path = "/admin/audit.csv", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "`id,at,actor,role,action,target,changes,reason,note,request_id,completed`", content_type = "text/csv", body = String),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ),
)]
async fn entries_csv(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Response> {
    let filter = params.filter(CSV_PAGE);
    let log: Arc<dyn AuditLog> = state.stores.audit.clone();
    Ok(csv_export("audit.csv", &COLUMNS, move |after| {
        let (log, mut filter) = (log.clone(), filter.clone());
        filter.after = after;
        async move {
            let page = log.entries(&filter).await?;
            let next = next_key(&page, CSV_PAGE, |entry| entry.id.clone());
            Ok((page.into_iter().map(row).collect(), next))
        }
    })
    .await?)
}
