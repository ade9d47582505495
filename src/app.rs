//! Assembles the router: every capability's routes, the API description, and the layers.

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
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::Authenticator,
    callbacks::{self, OutboxSignal},
    config::HttpConfig,
    error,
    idempotency::middleware as idempotency,
    indication, meta,
    openapi::ApiDoc,
    ops::{
        metrics,
        rate_limit::{self, RateLimits},
    },
    programs, referrals,
    storage::Stores,
};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Beyond this the outer guard stops reading a body at all (413 and the connection closed);
/// between the two, the extractors read and drop the rest so that the client sees the 413.
pub const DRAIN_LIMIT: usize = 1024 * 1024;
/// A request that takes longer is answered 408 and its work dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler and middleware shares. A request clones the state several times (each
/// middleware that takes it, then the handler), so it sits behind one `Arc`: one reference
/// count to move per clone, where a clone field by field moved ten, each shared by every
/// request on every core.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The token checks' extractors take the authenticator from the state.
impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

pub struct SharedState {
    pub stores: Stores,
    pub auth: Arc<Authenticator>,
    /// Rung after a write that queued a credit event, so the worker sends it at once.
    pub outbox_signal: OutboxSignal,
    /// `METHOD path` of every documented route, for `GET /`.
    pub endpoints: Arc<Vec<String>>,
    pub rate_limits: Arc<RateLimits>,
}

/// Registers documented routes and, for each path ending in `/`, the same handlers without it:
/// Part A paths answer with and without the trailing slash. The alias stays out of the docs.
pub fn with_slash_alias<S>(
    router: OpenApiRouter<S>,
    routes: UtoipaMethodRouter<S>,
) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (_, paths, method_router) = &routes;
    let aliases: Vec<String> = paths
        .paths
        .keys()
        .filter(|p| p.len() > 1 && p.ends_with('/'))
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect();
    let method_router = method_router.clone();
    let mut router = router.routes(routes);
    for alias in aliases {
        router = router.route(&alias, method_router.clone());
    }
    router
}

/// All documented routes of the service, and their API description.
pub fn api_routes() -> (Router<AppState>, OpenApiDoc) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(meta::router())
        .merge(programs::router())
        .merge(indication::router())
        .merge(referrals::router())
        .merge(callbacks::router())
        .split_for_parts()
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

/// The whole application: routes, docs at `/docs` and `/openapi.json`, `/metrics`, and the
/// layer stack.
pub fn router(
    stores: Stores,
    auth: Arc<Authenticator>,
    outbox_signal: OutboxSignal,
    http: &HttpConfig,
) -> Router {
    metrics::handle();
    let (routes, doc) = api_routes();
    let state = AppState::new(SharedState {
        stores,
        auth,
        outbox_signal,
        endpoints: Arc::new(endpoints(&doc)),
        rate_limits: Arc::new(RateLimits::new(http)),
    });
    let x_request_id = HeaderName::from_static("x-request-id");
    let app = routes
        .route("/metrics", axum::routing::get(metrics::render))
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
            middleware::from_fn_with_state(state.clone(), rate_limit::enforce),
            middleware::from_fn_with_state(state.clone(), idempotency::enforce),
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
