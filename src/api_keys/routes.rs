//! `POST/GET/DELETE /admin/api-keys` (role `admin`): keys for back-end callers.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{ApiKey, KeyFieldError, KeyRole, NewKey, key_fields};
use crate::{
    audit::{Audit, Done, Subject, domain::changes_of},
    auth::AdminAccess,
    clock,
    error::{ApiError, ErrorBody, Result},
    extract::JsonOrForm,
    sentences,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A key to make.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyInput {
    /// Who uses the key (`billing`): 1 to 100 characters; callers with the key are
    /// `key:<name>`.
    #[schema(value_type = String, min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    /// `service` or `admin`.
    #[schema(value_type = KeyRole)]
    role: Option<String>,
}

/// A key just made, with the key itself: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyBody {
    id: String,
    name: String,
    role: KeyRole,
    /// `rk_…`: pass it as `Authorization: Bearer rk_…`. Only its hash is kept.
    key: String,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    created_at: DateTime<Utc>,
}

/// A key as lists show it: never the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody {
    id: String,
    name: String,
    role: KeyRole,
    /// `rk_<id>`: the start of the key, to recognise it.
    prefix: String,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String)]
    created_at: DateTime<Utc>,
    /// Within a minute.
    #[schema(value_type = Option<String>)]
    last_used_at: Option<String>,
    #[schema(value_type = Option<String>)]
    revoked_at: Option<String>,
}

impl From<ApiKey> for KeyBody {
    fn from(key: ApiKey) -> Self {
        Self {
            prefix: key.prefix(),
            last_used_at: key.last_used_at.map(clock::rfc3339_millis_string),
            revoked_at: key.revoked_at.map(clock::rfc3339_millis_string),
            id: key.id,
            name: key.name,
            role: key.role,
            created_at: key.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListBody {
    api_keys: Vec<KeyBody>,
}

impl From<KeyFieldError> for ApiError {
    fn from(err: KeyFieldError) -> Self {
        Self::unprocessable(match err {
            KeyFieldError::Name => sentences::API_KEY_BAD_NAME,
            KeyFieldError::Role => sentences::API_KEY_BAD_ROLE,
        })
    }
}

/// Make an API key (role `admin`): the key is in this answer only.
#[utoipa::path(
    post, path = "/admin/api-keys", tag = "api-keys",
    request_body(content = KeyInput, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, shown this once", body = CreatedKeyBody),
        (status = 422, description = "A bad name or role", body = ErrorBody),
    ),
)]
async fn create_key(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<KeyInput>,
) -> Result<(StatusCode, Json<CreatedKeyBody>)> {
    let (name, role) = key_fields(input.name.as_deref(), input.role.as_deref())?;
    let made = NewKey::generate(name, role, state.clock.now());
    audit
        .record(
            Subject::new("api_key.create", &made.record.id),
            changes_of(audited),
            async {
                state.stores.api_keys.insert_key(&made.record).await?;
                Ok(Done::made((), made.record.clone()))
            },
        )
        .await?;
    tracing::info!(key = %made.record.prefix(), role = role.as_str(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyBody {
            id: made.record.id,
            name: made.record.name,
            role,
            key: made.key,
            created_at: made.record.created_at,
        }),
    ))
}

/// Every API key, oldest first, revoked ones with `revoked_at` (role `admin`).
#[utoipa::path(
    get, path = "/admin/api-keys", tag = "api-keys",
    responses((status = 200, description = "The keys, never the keys themselves", body = KeyListBody)),
)]
async fn list_keys(_: AdminAccess, State(state): State<AppState>) -> Result<Json<KeyListBody>> {
    let keys = state.stores.api_keys.keys().await?;
    Ok(Json(KeyListBody {
        api_keys: keys.into_iter().map(KeyBody::from).collect(),
    }))
}

/// Revoke an API key (role `admin`): refused on every instance within 10 seconds.
#[utoipa::path(
    delete, path = "/admin/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`API key not found`", body = ErrorBody),
    ),
)]
async fn revoke_key(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let keys = state.stores.api_keys.as_ref();
    let not_found = || ApiError::not_found(sentences::API_KEY_NOT_FOUND);
    let before = keys
        .key(&id)
        .await?
        .filter(|key| key.revoked_at.is_none())
        .ok_or_else(not_found)?;
    audit
        .record(
            Subject::new("api_key.revoke", &id),
            changes_of(audited),
            async {
                if !keys.revoke_key(&id, state.clock.now()).await? {
                    return Err(not_found());
                }
                let after = keys.key(&id).await?.ok_or_else(not_found)?;
                Ok(Done::changed((), before, after))
            },
        )
        .await?;
    tracing::info!(key = %format!("rk_{id}"), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A key's fields as the audit log shows them (never the key, nor its hash).
fn audited(key: &ApiKey) -> serde_json::Value {
    let mut fields = serde_json::to_value(KeyBody::from(key.clone())).unwrap_or_default();
    if let Some(fields) = fields.as_object_mut() {
        fields.remove("last_used_at");
    }
    fields
}
