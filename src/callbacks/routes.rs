//! Admin routes over the callback outbox (role `admin`).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{CallbackFilter, CallbackStatus, CreditEvent, CreditEventType},
    service::{self, CallbackError, DEFAULT_LIMIT, MAX_LIMIT},
};
use crate::{
    audit::{Audit, Done, Subject, domain::changes_of},
    auth::AdminAccess,
    clock,
    cursor::Cursor,
    error::{ApiError, ErrorBody, Result},
    extract::{Limit, Query},
    indication::UserHash,
    money::SignedMoney,
    sentences::{CALLBACK_ALREADY_DELIVERED, CALLBACK_NOT_FOUND},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_callbacks))
        .routes(routes!(get_callback))
        .routes(routes!(retry_callback))
}

impl From<CallbackError> for ApiError {
    fn from(err: CallbackError) -> Self {
        match err {
            CallbackError::NotFound => Self::not_found(CALLBACK_NOT_FOUND),
            CallbackError::AlreadyDelivered => {
                Self::Conflict(CALLBACK_ALREADY_DELIVERED.to_owned())
            }
            CallbackError::Store(err) => err.into(),
        }
    }
}

/// A credit event and its delivery history.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackBody {
    /// The event id: also `webhook-id` and `Idempotency-Key` of every attempt.
    id: String,
    event_type: CreditEventType,
    /// The credited user.
    #[schema(value_type = String)]
    user_hash: UserHash,
    #[schema(value_type = String)]
    user_indicator_hash: UserHash,
    /// Negative for `credit_reversed`.
    amount: SignedMoney,
    program_name: String,
    status: CallbackStatus,
    attempts: u32,
    /// The last failure: HTTP status and a body excerpt, or the transport error.
    last_error: Option<String>,
    #[serde(with = "opt_rfc3339")]
    #[schema(value_type = Option<String>)]
    last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (meaningful while `pending`).
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    next_attempt_at: DateTime<Utc>,
    #[serde(with = "opt_rfc3339")]
    #[schema(value_type = Option<String>)]
    delivered_at: Option<DateTime<Utc>>,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    created_at: DateTime<Utc>,
}

mod opt_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => crate::clock::rfc3339_millis::serialize(at, s),
            None => s.serialize_none(),
        }
    }
}

impl From<CreditEvent> for CallbackBody {
    fn from(e: CreditEvent) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            user_hash: e.user_hash,
            user_indicator_hash: e.user_indicator_hash,
            amount: e.amount,
            program_name: e.program_name,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            last_attempt_at: e.last_attempt_at,
            next_attempt_at: e.next_attempt_at,
            delivered_at: e.delivered_at,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackPage {
    callbacks: Vec<CallbackBody>,
    /// Pass as `after` for the next page; `null` on the last one.
    next: Option<String>,
}

/// The query of `GET /admin/callbacks`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only events in this state.
    #[param(inline)]
    status: Option<CallbackStatus>,
    /// Only events crediting this user.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, pattern = r"\S")]
    user_hash: Option<UserHash>,
    /// 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Limit<MAX_LIMIT>>,
    /// The `next` of the previous page.
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,15}\.([0-9a-fA-F]{2}){1,512}$")]
    after: Option<Cursor>,
}

impl From<ListParams> for CallbackFilter {
    fn from(params: ListParams) -> Self {
        Self {
            status: params.status,
            user_hash: params.user_hash,
            limit: Limit::or(params.limit, DEFAULT_LIMIT),
            after: params.after,
        }
    }
}

/// List credit events, oldest first, with cursor pagination (role `admin`).
#[utoipa::path(
    get, path = "/admin/callbacks", tag = "callbacks",
    params(ListParams),
    responses(
        (status = 200, description = "One page of events", body = CallbackPage),
        (status = 422, description = "A bad `status`, `limit`, `user_hash` or cursor", body = ErrorBody),
    ),
)]
async fn list_callbacks(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<CallbackPage>> {
    let page = service::list(state.stores.callbacks.as_ref(), params.into()).await?;
    Ok(Json(CallbackPage {
        callbacks: page.events.into_iter().map(CallbackBody::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

/// One credit event and its delivery history (role `admin`).
#[utoipa::path(
    get, path = "/admin/callbacks/{id}", tag = "callbacks",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "The event", body = CallbackBody),
        (status = 404, description = "`Callback not found`", body = ErrorBody),
    ),
)]
async fn get_callback(
    _: AdminAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallbackBody>> {
    let event = service::get(state.stores.callbacks.as_ref(), &id).await?;
    Ok(Json(event.into()))
}

/// Queue a `pending` or `failed` event for an attempt now (role `admin`).
///
/// Its attempts count is kept; if the attempt fails, the schedule continues from there (a
/// `failed` event whose schedule is spent fails again after that one attempt).
#[utoipa::path(
    post, path = "/admin/callbacks/{id}/retry", tag = "callbacks",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 202, description = "Queued; the event as it is now", body = CallbackBody),
        (status = 404, description = "`Callback not found`", body = ErrorBody),
        (status = 409, description = "`Callback already delivered`", body = ErrorBody),
    ),
)]
async fn retry_callback(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CallbackBody>)> {
    let outbox = state.stores.callbacks.as_ref();
    let status = |event: &CreditEvent| serde_json::json!({ "status": event.status });
    let before = outbox
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(CALLBACK_NOT_FOUND))?;
    let event = audit
        .record(
            Subject::new("callback.retry", &id),
            changes_of(status),
            async {
                let after = service::retry(outbox, &id, state.clock.now()).await?;
                Ok(Done::changed(after.clone(), before, after))
            },
        )
        .await?;
    state.outbox_signal.wake();
    Ok((StatusCode::ACCEPTED, Json(event.into())))
}
