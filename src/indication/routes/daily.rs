//! `GET /program/{id}/stats/daily`: a program's activity per UTC day, for charts.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::ServiceAccess,
    error::{ErrorBody, Result},
    events::daily::{DayFigures, first_day, series},
    extract::{Limit, Query},
    money::Money,
    programs::service as programs,
    state::AppState,
};

pub const DEFAULT_DAYS: usize = 30;
pub const MAX_DAYS: usize = 365;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(daily_stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyParams {
    /// How many days, ending today (UTC): 1 to 365, default 30.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 365)]
    days: Option<Limit<MAX_DAYS>>,
}

/// One UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayBody {
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, example = "2026-12-02")]
    date: chrono::NaiveDate,
    /// Indicated users registered.
    registrations: u64,
    /// Credits acquired (at the target, on release, or approved).
    acquired: u64,
    /// Acquired credits taken back.
    reversed: u64,
    acquired_total: Money,
    /// What the reversals took back, as a positive amount.
    reversed_total: Money,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyBody {
    /// Oldest first; every day present, zeros for a day without activity.
    days: Vec<DayBody>,
}

/// A program's registrations, acquisitions and reversals per UTC day (role `service` or
/// `admin`). Kept per day at write time on the embedded store; on MongoDB one indexed query
/// over the events kept, so days older than `EVENT_RETENTION` read as zeros there.
#[utoipa::path(
    get, path = "/program/{id}/stats/daily", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)"), DailyParams),
    responses(
        (status = 200, description = "Every day of the window", body = DailyBody),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 422, description = "`days` outside 1..365", body = ErrorBody),
    ),
)]
async fn daily_stats(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<DailyParams>,
) -> Result<Json<DailyBody>> {
    let program = programs::get(state.stores.programs.as_ref(), &id).await?;
    let days = u32::try_from(Limit::or(params.days, DEFAULT_DAYS)).unwrap_or(30);
    let now = state.clock.now();
    let since = first_day(now, days)
        .and_hms_opt(0, 0, 0)
        .map_or(now, |start| start.and_utc());
    let known = state
        .stores
        .events
        .program_days(&program.id.to_string(), since, now, state.event_retention)
        .await?;
    Ok(Json(DailyBody {
        days: series(now, days, &known)
            .into_iter()
            .map(|(date, figures): (_, DayFigures)| DayBody {
                date,
                registrations: figures.registrations,
                acquired: figures.acquired,
                reversed: figures.reversed,
                acquired_total: figures.acquired_total,
                reversed_total: figures.reversed_total,
            })
            .collect(),
    }))
}
