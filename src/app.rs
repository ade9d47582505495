//! Assembles the router: every capability's routes, the API description, and the layers. The
//! state it serves is `state.rs`; the limits it enforces, `limits.rs`.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{FromRef, MatchedPath, Request},
    http::{HeaderName, StatusCode, header},
    middleware,
    response::Response,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};
use utoipa::{OpenApi, openapi::OpenApi as OpenApiDoc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    api_keys::{self, KeyResolver},
    audit,
    auth::Authenticator,
    callbacks::{self, OutboxSignal},
    clock::Clock,
    config::HttpConfig,
    console, error, events,
    idempotency::middleware as idempotency,
    indication,
    limits::{DRAIN_LIMIT, REQUEST_TIMEOUT},
    meta,
    openapi::{self, ApiDoc},
    ops::{metrics, rate_limit::RateLimits},
    programs, referrals,
    state::{AppState, SharedState},
    stores::Stores,
    webhooks::{self, sender::WebhookAdmin},
};

/// All documented routes of the service, and their API description.
pub fn api_routes() -> (Router<AppState>, OpenApiDoc) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(meta::router())
        .merge(programs::router())
        .merge(indication::router())
        .merge(referrals::router())
        .merge(callbacks::router())
        .merge(events::router())
        .merge(api_keys::router())
        .merge(webhooks::router())
        .merge(audit::router())
        .split_for_parts();
    openapi::add_common_responses(&mut doc);
    (routes, doc)
}

/// `METHOD path` for every operation in the document, in path order.
pub fn endpoints(doc: &OpenApiDoc) -> Vec<String> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in methods {
            if present {
                out.push(format!("{method} {path}"));
            }
        }
    }
    out
}

/// What the router is built from.
pub struct Parts {
    pub stores: Stores,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub outbox_signal: OutboxSignal,
    pub event_retention: chrono::Duration,
    pub webhooks: WebhookAdmin,
}

/// The whole application: routes, docs at `/docs` and `/openapi.json`, `/metrics`, and the
/// layer stack.
pub fn router(parts: Parts, http: &HttpConfig) -> Router {
    metrics::handle();
    let (routes, doc) = api_routes();
    let Parts {
        stores,
        auth,
        clock,
        outbox_signal,
        event_retention,
        webhooks,
    } = parts;
    let (stores_keys, clock_keys) = (stores.api_keys.clone(), clock.clone());
    let state = AppState::new(SharedState {
        stores,
        auth,
        clock,
        outbox_signal,
        endpoints: Arc::new(endpoints(&doc)),
        rate_limits: Arc::new(RateLimits::new(http)),
        event_retention,
        api_keys: Arc::new(KeyResolver::new(stores_keys, clock_keys)),
        webhooks,
    });
    let x_request_id = HeaderName::from_static("x-request-id");
    let app = routes
        .route("/metrics", axum::routing::get(metrics::render))
        .merge(console::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(route_not_found)
        .layer((
            SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]),
            SetRequestIdLayer::new(x_request_id.clone(), MakeRequestUuid),
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_response(record_response),
            PropagateRequestIdLayer::new(x_request_id),
            middleware::from_fn(metrics::track),
            middleware::from_fn_with_state(state.api_keys.clone(), api_keys::resolve),
            middleware::from_fn_with_state(
                idempotency::IdempotencyState::from_ref(&state),
                idempotency::enforce,
            ),
            middleware::map_response(error::json_error_bodies),
            CatchPanicLayer::new(),
            TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT),
            RequestBodyLimitLayer::new(DRAIN_LIMIT),
        ))
        .with_state(state);
    match cors(http) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// CORS for the browser origins of `CORS_ALLOWED_ORIGINS`; none configured, no CORS headers.
fn cors(http: &HttpConfig) -> Option<CorsLayer> {
    if http.cors_allowed_origins.is_empty() {
        return None;
    }
    use axum::http::Method;
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(http.cors_allowed_origins.clone()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                HeaderName::from_static("deprecation"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn route_not_found() -> error::ApiError {
    error::ApiError::not_found(crate::sentences::ROUTE_NOT_FOUND)
}

/// One span per request: method, matched route (never the raw path, which may hold e-mails or
/// hashes), request id; status and latency are recorded when the response leaves.
fn make_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("<unmatched>");
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        status = Empty,
        latency_ms = Empty,
    )
}

fn record_response(response: &Response, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    // Sub-millisecond precision: most answers take well under a millisecond.
    span.record("latency_ms", latency.as_micros() as f64 / 1000.0);
    tracing::info!(parent: span, "response");
}
