//! `GET /events`: the feed of every event, oldest first (roles `service` and `admin`).

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{Event, EventType},
    store::FeedQuery,
};
use crate::{
    auth::BackendAccess,
    clock,
    error::{ErrorBody, Result},
    extract::{Limit, Query},
    state::AppState,
};

pub const DEFAULT_FEED_PAGE: usize = 100;
pub const MAX_FEED_PAGE: usize = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feed))
}

/// Event types, comma-separated, each one the service knows.
#[derive(Debug, Default)]
pub struct TypeList(Vec<EventType>);

impl<'de> Deserialize<'de> for TypeList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                name.parse()
                    .map_err(|_| serde::de::Error::custom(format!("unknown event type `{name}`")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// A position in the feed, as `next` gave it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Position(u64);

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse::<u64>()
            .ok()
            .filter(|position| i64::try_from(*position).is_ok())
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom("not a feed position"))
    }
}

/// The query of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Only these types, comma-separated (`credit.acquired,credit.reversed`); every type when
    /// absent.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<String>, example = "credit.acquired,credit.reversed")]
    types: Option<TypeList>,
    /// The `next` of the previous page; absent or `0`: from the oldest event kept.
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,18}$")]
    after: Option<Position>,
    /// 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<MAX_FEED_PAGE>>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody {
    /// A version 7 UUID: the `webhook-id` of its deliveries.
    id: String,
    #[serde(rename = "type")]
    event_type: EventType,
    /// RFC 3339, UTC, milliseconds.
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String, example = "2026-12-02T09:30:00.123Z")]
    timestamp: chrono::DateTime<chrono::Utc>,
    /// For `credit.*`: `program_id`, `program_name`, `user_hash` (the credited user),
    /// `user_indicator`, `user_indicated`, `amount`, `status`, `flags`, `reason`. For
    /// `referral.redeemed`: `referral_code`, `account_id`, `redeemed_at`, `via`. For
    /// `referrer.created`: `referral_code`, `email`, `first_name`, `last_name`.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

impl From<Event> for EventBody {
    fn from(event: Event) -> Self {
        Self {
            id: event.id,
            event_type: event.event_type,
            timestamp: event.timestamp,
            data: event.data,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedBody {
    events: Vec<EventBody>,
    /// Where the next page starts: pass it as `after`. Never `null` — at the end of the feed it
    /// is the position to poll from for newer events.
    next: String,
}

/// Read the feed of events, oldest first (roles `service` and `admin`).
///
/// Every credit move and redemption, in the order they were written. A consumer that keeps
/// `next` and passes it as `after` reads every event once, in order, even while new ones are
/// written; events are kept for `EVENT_RETENTION` (30 days by default).
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(FeedParams),
    responses(
        (status = 200, description = "One page of events", body = FeedBody),
        (status = 422, description = "An unknown type, a bad `after` or `limit`", body = ErrorBody),
    ),
)]
async fn feed(
    _: BackendAccess,
    State(state): State<AppState>,
    Query(params): Query<FeedParams>,
) -> Result<Json<FeedBody>> {
    let types = params.types.unwrap_or_default().0;
    let page = state
        .stores
        .events
        .feed(FeedQuery {
            types: &types,
            after: params.after.unwrap_or_default().0,
            limit: Limit::or(params.limit, DEFAULT_FEED_PAGE),
            now: state.clock.now(),
            retention: state.event_retention,
        })
        .await?;
    Ok(Json(FeedBody {
        events: page.events.into_iter().map(EventBody::from).collect(),
        next: page.next.to_string(),
    }))
}
