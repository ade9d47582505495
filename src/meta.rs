//! `GET /` and `GET /health`.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(health))
}

#[derive(Serialize, ToSchema)]
pub struct Index {
    #[schema(example = "0.1.0")]
    version: &'static str,
    /// `METHOD path` of every route.
    #[schema(example = json!(["GET /program/", "POST /program/"]))]
    endpoints: Vec<String>,
}

/// The service's version and its routes.
#[utoipa::path(
    get, path = "/", tag = "service",
    responses((status = 200, body = Index)),
    security(()),
)]
async fn index(State(state): State<AppState>) -> Json<Index> {
    Json(Index {
        version: env!("CARGO_PKG_VERSION"),
        endpoints: state.endpoints.to_vec(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Whether the store answers.
#[utoipa::path(
    get, path = "/health", tag = "service",
    security(()),
    responses(
        (status = 200, description = "The store answers", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.stores.health.ping().await {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ok" })),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                }),
            )
        }
    }
}
