//! Exports for finance (role `admin`): the ledger and the credits as CSV, streamed from the
//! store a page at a time, so an export of any size takes the memory of one page.

use std::sync::Arc;

use axum::{extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    super::{
        domain::LedgerEntry,
        store::{CreditFilter, IndicationStore, LedgerFilter, LedgerScan},
    },
    credits::ProgramIdParam,
};
use crate::{
    auth::AdminAccess,
    clock::rfc3339_millis_string as rfc3339,
    csv_stream::csv_export,
    error::{ErrorBody, Result},
    extract::Query,
    state::AppState,
};

/// Credits an export page holds.
const CREDIT_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger_csv))
        .routes(routes!(credits_csv))
}

/// The query of the ledger export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerExportParams {
    /// Only this program's entries (24 hex characters).
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{24}$")]
    program_id: Option<ProgramIdParam>,
    /// From this time on (RFC 3339, included).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339, excluded).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<DateTime<Utc>>,
}

/// The query of the credits export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreditExportParams {
    /// Only this program's credits (24 hex characters).
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{24}$")]
    program_id: Option<ProgramIdParam>,
}

const LEDGER_COLUMNS: [&str; 7] = [
    "at",
    "operation",
    "program_id",
    "user_indicator",
    "user_indicated",
    "amount",
    "event_id",
];

fn ledger_row(entry: LedgerEntry) -> Vec<String> {
    vec![
        rfc3339(entry.created_at),
        entry.operation.to_string(),
        entry
            .program_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        entry.user_indicator.unwrap_or_default(),
        entry.user_indicated,
        entry.amount.to_string(),
        entry.event_id.unwrap_or_default(),
    ]
}

/// Export the ledger as CSV (role `admin`), streamed in write order on the embedded store and
/// user by user on MongoDB; money as exact decimals, negative for `credit_reversed`.
#[utoipa::path(
    get, path = "/admin/export/ledger.csv", tag = "exports",
    params(LedgerExportParams),
    responses(
        (status = 200, description = "`at,operation,program_id,user_indicator,user_indicated,amount,event_id`", content_type = "text/csv", body = String),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ),
)]
async fn ledger_csv(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<LedgerExportParams>,
) -> Result<Response> {
    let filter = LedgerFilter {
        program: params.program_id.map(ProgramIdParam::id),
        since: params.since,
        until: params.until,
    };
    let ledger: Arc<dyn LedgerScan> = state.stores.ledger.clone();
    Ok(csv_export("ledger.csv", &LEDGER_COLUMNS, move |after| {
        let (ledger, filter) = (ledger.clone(), filter.clone());
        async move {
            let page = ledger.ledger_page(&filter, after).await?;
            Ok((
                page.entries.into_iter().map(ledger_row).collect(),
                page.next,
            ))
        }
    })
    .await?)
}

const CREDIT_COLUMNS: [&str; 13] = [
    "user_indicated",
    "user_indicator",
    "program_id",
    "status",
    "amount",
    "crossed_at",
    "release_at",
    "acquired_at",
    "reversed_at",
    "flags",
    "decided_by",
    "reason",
    "note",
];

fn credit_row(user: crate::indication::domain::User) -> Vec<String> {
    let credit = user.credit.as_ref();
    let time = |at: Option<DateTime<Utc>>| at.map(rfc3339).unwrap_or_default();
    let decision = credit.and_then(|c| c.decision());
    vec![
        user.hash.to_string(),
        user.indicator
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        user.program_id.map(|id| id.to_string()).unwrap_or_default(),
        user.credit_status().to_string(),
        credit
            .and_then(|c| c.amount())
            .map(|amount| amount.to_string())
            .unwrap_or_default(),
        time(credit.and_then(|c| c.crossed_at())),
        time(credit.and_then(|c| c.release_at())),
        time(credit.and_then(|c| c.acquired_at())),
        time(credit.and_then(|c| c.reversed_at())),
        credit
            .map(|c| {
                c.flags()
                    .iter()
                    .map(|flag| flag.name())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        decision.and_then(|d| d.by.clone()).unwrap_or_default(),
        decision
            .and_then(|d| d.reason)
            .map(|reason| reason.to_string())
            .unwrap_or_default(),
        decision.and_then(|d| d.note.clone()).unwrap_or_default(),
    ]
}

/// Export the credits as CSV (role `admin`): one row per indicated user, its credit's state,
/// amount, dates, flags and last decision, in registration order.
#[utoipa::path(
    get, path = "/admin/export/credits.csv", tag = "exports",
    params(CreditExportParams),
    responses(
        (status = 200, description = "`user_indicated,user_indicator,program_id,status,amount,crossed_at,release_at,acquired_at,reversed_at,flags,decided_by,reason,note`", content_type = "text/csv", body = String),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ),
)]
async fn credits_csv(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<CreditExportParams>,
) -> Result<Response> {
    let filter = CreditFilter {
        program: params.program_id.map(ProgramIdParam::id),
        ..CreditFilter::default()
    };
    let users: Arc<dyn IndicationStore> = state.stores.indication.clone();
    Ok(csv_export("credits.csv", &CREDIT_COLUMNS, move |after| {
        let (users, filter) = (users.clone(), filter.clone());
        async move {
            let page = users.credits(&filter, after.as_ref(), CREDIT_PAGE).await?;
            Ok((page.users.into_iter().map(credit_row).collect(), page.next))
        }
    })
    .await?)
}
