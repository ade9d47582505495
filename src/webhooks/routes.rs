//! `/admin/webhooks` (role `admin`): endpoints, their secrets, their deliveries.

use std::time::Instant;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{
        self, Delivery, DeliveryStatus, DisabledReason, Selection, SelectionError, WebhookEndpoint,
    },
    guard::{self, UrlError},
    sender::WebhookClient,
    store::DeliveryFilter,
};
use crate::{
    audit::{Audit, Done, Subject, domain::changes_of},
    auth::AdminAccess,
    clock,
    cursor::next_key,
    error::{ApiError, ErrorBody, Result},
    events::domain::uuid_v7,
    extract::{JsonOrForm, Limit, Query},
    sentences,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(recover))
        .routes(routes!(send_test))
}

const MAX_DESCRIPTION: usize = 500;
pub const DEFAULT_DELIVERY_PAGE: usize = 50;
/// How long a test send may take (shorter than `CALLBACK_TIMEOUT` may be: an admin waits).
const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
pub const MAX_DELIVERY_PAGE: usize = 500;

/// An endpoint to make.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookInput {
    /// `http://` or `https://`; not a loopback, link-local, private or unspecified address
    /// unless `WEBHOOK_ALLOW_PRIVATE=true`.
    #[schema(value_type = String, required = true, pattern = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$",
             example = "https://billing.example.com/referral-events")]
    url: Option<String>,
    /// Event types (`credit.acquired`, …), or `["*"]` for every type.
    #[schema(schema_with = crate::schema::event_type_names, required = true,
             example = json!(["credit.acquired", "credit.reversed"]))]
    event_types: Option<Vec<String>>,
    /// Up to 500 characters.
    #[schema(value_type = Option<String>, max_length = 500)]
    description: Option<String>,
}

/// Changes to an endpoint: the fields sent, the others as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookPatch {
    #[schema(value_type = Option<String>, pattern = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$")]
    url: Option<String>,
    #[schema(schema_with = crate::schema::event_type_names)]
    event_types: Option<Vec<String>>,
    #[schema(value_type = Option<String>, max_length = 500)]
    description: Option<String>,
    /// `true` switches it on again (its waiting deliveries resume); `false` off.
    #[schema(value_type = Option<bool>)]
    enabled: Option<bool>,
}

/// An endpoint. `secret` only in the answers of creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookBody {
    id: String,
    url: String,
    #[schema(value_type = Vec<String>)]
    event_types: Selection,
    description: String,
    enabled: bool,
    /// `gone` (it answered 410), `failing` (failed for `WEBHOOK_DISABLE_AFTER`) or `admin`.
    disabled_reason: Option<DisabledReason>,
    /// `whsec_…`: verify the `webhook-signature` header with it (Standard Webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Until then, requests also carry a signature with the secret before the last rotation.
    #[schema(value_type = Option<String>)]
    previous_secret_until: Option<String>,
    /// Since when every delivery has failed, if the last one did.
    #[schema(value_type = Option<String>)]
    failing_since: Option<String>,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    created_at: DateTime<Utc>,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    updated_at: DateTime<Utc>,
}

impl WebhookBody {
    fn of(endpoint: WebhookEndpoint, with_secret: bool, now: DateTime<Utc>) -> Self {
        Self {
            previous_secret_until: endpoint
                .previous_until
                .filter(|until| *until > now)
                .map(clock::rfc3339_millis_string),
            failing_since: endpoint.failing_since.map(clock::rfc3339_millis_string),
            secret: with_secret.then_some(endpoint.secret),
            id: endpoint.id,
            url: endpoint.url,
            event_types: endpoint.event_types,
            description: endpoint.description,
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListBody {
    webhooks: Vec<WebhookBody>,
}

async fn checked_url(raw: &str, client: &WebhookClient) -> Result<String> {
    match guard::check_url(raw, client.allow_private()).await {
        Ok(url) => Ok(url.to_string()),
        Err(UrlError::Scheme) => Err(ApiError::unprocessable(sentences::WEBHOOK_BAD_URL)),
        Err(UrlError::Forbidden) => Err(ApiError::unprocessable(sentences::WEBHOOK_PRIVATE_URL)),
    }
}

fn selection(names: Vec<String>) -> Result<Selection> {
    Selection::try_from(names).map_err(|err| match err {
        SelectionError::Empty => ApiError::unprocessable(sentences::WEBHOOK_NO_EVENT_TYPES),
        SelectionError::Unknown(name) => ApiError::unprocessable(format!(
            "Field `event_types` names an unknown event type: `{name}`"
        )),
    })
}

fn description(text: Option<String>) -> Result<String> {
    let text = text.unwrap_or_default().trim().to_owned();
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::unprocessable(sentences::WEBHOOK_BAD_DESCRIPTION));
    }
    Ok(text)
}

/// An endpoint's fields as the audit log compares them: never its secret.
fn audited(endpoint: &WebhookEndpoint, now: DateTime<Utc>) -> serde_json::Value {
    let mut fields =
        serde_json::to_value(WebhookBody::of(endpoint.clone(), false, now)).unwrap_or_default();
    if let Some(fields) = fields.as_object_mut() {
        fields.remove("updated_at");
    }
    fields
}

/// Writes an endpoint an admin changed, under its audit entry.
async fn replace_audited(
    state: &AppState,
    audit: &Audit,
    action: &str,
    before: &WebhookEndpoint,
    after: WebhookEndpoint,
) -> Result<WebhookEndpoint> {
    let now = state.clock.now();
    audit
        .record(
            Subject::new(action, &after.id),
            changes_of(move |endpoint| audited(endpoint, now)),
            async {
                if !state.stores.webhooks.replace_webhook(&after).await? {
                    return Err(ApiError::not_found(sentences::WEBHOOK_NOT_FOUND));
                }
                Ok(Done::changed(after.clone(), before.clone(), after))
            },
        )
        .await
}

async fn found(state: &AppState, id: &str) -> Result<WebhookEndpoint> {
    state
        .stores
        .webhooks
        .webhook(id)
        .await?
        .ok_or_else(|| ApiError::not_found(sentences::WEBHOOK_NOT_FOUND))
}

/// Subscribe an endpoint to event types (role `admin`): its secret is in this answer only.
#[utoipa::path(
    post, path = "/admin/webhooks", tag = "webhooks",
    request_body(content = WebhookInput, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint, with its secret", body = WebhookBody),
        (status = 422, description = "A bad or forbidden URL, unknown event types, or a long description", body = ErrorBody),
    ),
)]
async fn create_webhook(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<WebhookInput>,
) -> Result<(StatusCode, Json<WebhookBody>)> {
    let url = input.url.unwrap_or_default();
    let url = checked_url(&url, &state.webhooks.client).await?;
    let event_types = selection(input.event_types.unwrap_or_default())?;
    let description = description(input.description)?;
    let now = state.clock.now();
    let endpoint = WebhookEndpoint::new(url, event_types, description, now);
    audit
        .record(
            Subject::new("webhook.create", &endpoint.id),
            changes_of(move |endpoint| audited(endpoint, now)),
            async {
                state.stores.webhooks.insert_webhook(&endpoint).await?;
                Ok(Done::made((), endpoint.clone()))
            },
        )
        .await?;
    tracing::info!(webhook = %endpoint.id, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(WebhookBody::of(endpoint, true, now)),
    ))
}

/// Every endpoint, oldest first, without secrets (role `admin`).
#[utoipa::path(
    get, path = "/admin/webhooks", tag = "webhooks",
    responses((status = 200, description = "The endpoints", body = WebhookListBody)),
)]
async fn list_webhooks(
    _: AdminAccess,
    State(state): State<AppState>,
) -> Result<Json<WebhookListBody>> {
    let now = state.clock.now();
    let endpoints = state.stores.webhooks.webhooks().await?;
    Ok(Json(WebhookListBody {
        webhooks: endpoints
            .into_iter()
            .map(|endpoint| WebhookBody::of(endpoint, false, now))
            .collect(),
    }))
}

/// One endpoint, without its secret (role `admin`).
#[utoipa::path(
    get, path = "/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
    ),
)]
async fn get_webhook(
    _: AdminAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WebhookBody>> {
    let endpoint = found(&state, &id).await?;
    Ok(Json(WebhookBody::of(endpoint, false, state.clock.now())))
}

/// Change an endpoint's URL, event types, description, or switch it on or off (role `admin`).
#[utoipa::path(
    patch, path = "/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body(content = WebhookPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
        (status = 422, description = "A bad field", body = ErrorBody),
    ),
)]
async fn update_webhook(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonOrForm(patch): JsonOrForm<WebhookPatch>,
) -> Result<Json<WebhookBody>> {
    let before = found(&state, &id).await?;
    let mut endpoint = before.clone();
    if let Some(url) = patch.url {
        endpoint.url = checked_url(&url, &state.webhooks.client).await?;
    }
    if let Some(names) = patch.event_types {
        endpoint.event_types = selection(names)?;
    }
    if patch.description.is_some() {
        endpoint.description = description(patch.description)?;
    }
    if let Some(enabled) = patch.enabled {
        endpoint.set_enabled(enabled);
    }
    let now = state.clock.now();
    endpoint.updated_at = now;
    let endpoint = replace_audited(&state, &audit, "webhook.update", &before, endpoint).await?;
    Ok(Json(WebhookBody::of(endpoint, false, now)))
}

/// Delete an endpoint and drop its deliveries (role `admin`).
#[utoipa::path(
    delete, path = "/admin/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted, with its deliveries"),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
    ),
)]
async fn delete_webhook(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let before = found(&state, &id).await?;
    let now = state.clock.now();
    audit
        .record(
            Subject::new("webhook.delete", &id),
            changes_of(move |endpoint| audited(endpoint, now)),
            async {
                if !state.stores.webhooks.delete_webhook(&id).await? {
                    return Err(ApiError::not_found(sentences::WEBHOOK_NOT_FOUND));
                }
                Ok(Done::removed((), before))
            },
        )
        .await?;
    tracing::info!(webhook = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for an endpoint (role `admin`), in this answer only. For
/// `WEBHOOK_ROTATION_OVERLAP` every request carries two signatures, `v1,<new> v1,<old>`.
#[utoipa::path(
    post, path = "/admin/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint, with its new secret", body = WebhookBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
    ),
)]
async fn rotate_secret(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WebhookBody>> {
    let before = found(&state, &id).await?;
    let mut endpoint = before.clone();
    let now = state.clock.now();
    endpoint.rotate(now, state.webhooks.rotation_overlap);
    let endpoint = replace_audited(&state, &audit, "webhook.rotate", &before, endpoint).await?;
    tracing::info!(webhook = %id, "webhook secret rotated");
    Ok(Json(WebhookBody::of(endpoint, true, now)))
}

/// The query of the delivery list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<DeliveryStatus>,
    /// The `next` of the previous page.
    #[param(value_type = Option<String>)]
    after: Option<String>,
    /// 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Limit<MAX_DELIVERY_PAGE>>,
}

/// One event owed to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    /// `<endpoint id>:<event id>`.
    id: String,
    /// Also the `webhook-id` header of every attempt.
    event_id: String,
    #[schema(value_type = String)]
    event_type: crate::events::EventType,
    status: DeliveryStatus,
    /// Attempts since the delivery was made or last recovered.
    attempts: u32,
    /// The HTTP status of the last attempt, if it got an answer.
    last_status: Option<u16>,
    last_error: Option<String>,
    /// While pending.
    #[schema(value_type = Option<String>)]
    next_attempt_at: Option<String>,
    #[schema(value_type = Option<String>)]
    delivered_at: Option<String>,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryBody {
    fn from(delivery: Delivery) -> Self {
        Self {
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then(|| clock::rfc3339_millis_string(delivery.next_attempt_at)),
            delivered_at: delivery.delivered_at.map(clock::rfc3339_millis_string),
            id: delivery.id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            status: delivery.status,
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            created_at: delivery.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListBody {
    deliveries: Vec<DeliveryBody>,
    /// Pass as `after` for the next page; `null` on the last.
    next: Option<String>,
}

/// An endpoint's deliveries in the order of their events (role `admin`).
#[utoipa::path(
    get, path = "/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id"), DeliveryParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryListBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
        (status = 422, description = "A bad `status` or `limit`", body = ErrorBody),
    ),
)]
async fn list_deliveries(
    _: AdminAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryListBody>> {
    found(&state, &id).await?;
    let limit = Limit::or(params.limit, DEFAULT_DELIVERY_PAGE);
    let page = state
        .stores
        .webhooks
        .deliveries(&DeliveryFilter {
            endpoint_id: id,
            status: params.status,
            after: params.after,
            limit,
        })
        .await?;
    let next = next_key(&page, limit, |delivery| delivery.id.clone());
    Ok(Json(DeliveryListBody {
        deliveries: page.into_iter().map(DeliveryBody::from).collect(),
        next,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverInput {
    /// RFC 3339: failed deliveries made at or after this time are queued again.
    #[schema(value_type = String, required = true, format = DateTime, example = "2026-12-01T00:00:00Z")]
    since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverBody {
    queued: u64,
}

/// Queue again every failed delivery of an endpoint made since a time (role `admin`); each
/// starts the retry schedule afresh.
#[utoipa::path(
    post, path = "/admin/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body(content = RecoverInput, content_type = "application/json"),
    responses(
        (status = 202, description = "How many were queued", body = RecoverBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
        (status = 422, description = "A bad `since`", body = ErrorBody),
    ),
)]
async fn recover(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonOrForm(input): JsonOrForm<RecoverInput>,
) -> Result<(StatusCode, Json<RecoverBody>)> {
    let since = input
        .since
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
        .ok_or_else(|| ApiError::unprocessable(sentences::WEBHOOK_BAD_SINCE))?
        .with_timezone(&Utc);
    found(&state, &id).await?;
    let queued = audit
        .record(
            Subject::new("webhook.recover", &id),
            changes_of(move |queued: &u64| {
                serde_json::json!({
                    "recovered_since": clock::rfc3339_millis_string(since),
                    "queued": queued,
                })
            }),
            async {
                let queued = state
                    .stores
                    .webhooks
                    .recover_deliveries(&id, since, state.clock.now())
                    .await?;
                Ok(Done::made(queued, queued))
            },
        )
        .await?;
    tracing::info!(webhook = %id, queued, "webhook deliveries recovered");
    Ok((StatusCode::ACCEPTED, Json(RecoverBody { queued })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestBody {
    /// The endpoint's HTTP status; `null` when it did not answer.
    status: Option<u16>,
    duration_ms: u64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Send a `webhook.test` event to an endpoint at once, signed as deliveries are (role
/// `admin`); nothing is stored or retried. The answer comes within 5 seconds (`status: null`
/// and an error when the endpoint took longer).
#[utoipa::path(
    post, path = "/admin/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "What the endpoint answered", body = TestBody),
        (status = 404, description = "`Webhook not found`", body = ErrorBody),
    ),
)]
async fn send_test(
    _: AdminAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestBody>> {
    let endpoint = found(&state, &id).await?;
    let now = state.clock.now();
    let body = domain::body(
        "webhook.test",
        now,
        &serde_json::json!({ "webhook_id": endpoint.id }),
    );
    let started = Instant::now();
    let answer = state
        .webhooks
        .client
        .post_within(&endpoint, &uuid_v7(now), &body, now, Some(TEST_LIMIT))
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error) = match answer {
        domain::Answer::Accepted { status } => (Some(status), None),
        domain::Answer::Gone => (Some(410), Some("HTTP 410: the endpoint is gone".to_owned())),
        domain::Answer::Failed { status, error, .. } => (status, Some(error)),
    };
    Ok(Json(TestBody {
        status,
        duration_ms,
        error,
    }))
}
