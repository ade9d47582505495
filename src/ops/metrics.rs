//! Prometheus metrics through the `metrics` facade: one process-wide recorder, the HTTP
//! middleware that counts and times requests by matched route, and `GET /metrics`.
//!
//! Names: `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}` (histogram), `callbacks_pending`,
//! `callback_deliveries_total{outcome}` and `webhook_deliveries_total{outcome}` (`delivered`,
//! `retry`, `failed`), `webhook_endpoints_disabled` and `store_errors_total{kind}`
//! (`unavailable`, `backend`).

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{callbacks::CallbackOutbox, error::StoreFailure, storage::StoreError};

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const CALLBACKS_PENDING: &str = "callbacks_pending";
pub const CALLBACK_DELIVERIES: &str = "callback_deliveries_total";
pub const STORE_ERRORS: &str = "store_errors_total";
pub const WEBHOOK_DELIVERIES: &str = "webhook_deliveries_total";
pub const WEBHOOKS_DISABLED: &str = "webhook_endpoints_disabled";
pub const AUDIT_ENTRIES_LATE: &str = "audit_entries_late_total";

/// Latency buckets, in seconds: from 100 µs (a read on the embedded store) to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` if another recorder was installed
/// first (the metrics then go there, and `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    keep_up(handle.clone());
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into its buckets; without
/// it, a service nobody scrapes would grow by every request it answers. One thread for the
/// process, as the recorder is.
fn keep_up(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(err) = started {
        tracing::warn!(error = %err, "cannot start metrics upkeep; /metrics scrapes will do it");
    }
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by matched route");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by matched route"
    );
    metrics::describe_gauge!(
        CALLBACKS_PENDING,
        "Credit events waiting to be delivered to the billing service"
    );
    metrics::describe_counter!(
        CALLBACK_DELIVERIES,
        "Callback attempts, by outcome: delivered, retry (failed, will retry), failed (for good)"
    );
    metrics::describe_counter!(STORE_ERRORS, "Store operations that failed, by kind");
    // Present from the start, so that dashboards and alerts see zeros rather than no data.
    for kind in ["unavailable", "backend"] {
        metrics::counter!(STORE_ERRORS, "kind" => kind).absolute(0);
    }
    metrics::describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook attempts, by outcome: delivered, retry (failed, will retry), failed (for good)"
    );
    metrics::describe_gauge!(WEBHOOKS_DISABLED, "Webhook endpoints switched off");
    for outcome in ["delivered", "retry", "failed"] {
        metrics::counter!(CALLBACK_DELIVERIES, "outcome" => outcome).absolute(0);
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).absolute(0);
    }
    metrics::gauge!(WEBHOOKS_DISABLED).set(0.0);
    metrics::describe_counter!(
        AUDIT_ENTRIES_LATE,
        "Audit entries written after their change rather than in its transaction (a fault)"
    );
    metrics::counter!(AUDIT_ENTRIES_LATE).absolute(0);
}

/// Counts and times every request under its matched route (never the raw path, which holds
/// hashes and e-mails); an unmatched path counts as `<unmatched>`.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route: String = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "<unmatched>".to_owned(),
    };
    let response = next.run(request).await;
    if let Some(StoreFailure(err)) = response.extensions().get::<StoreFailure>() {
        store_failed(err, &route);
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A request refused because `MAX_CONCURRENT_REQUESTS` were in flight.
pub fn shed_request() {
    metrics::counter!(HTTP_REQUESTS, "method" => "", "route" => "<overloaded>", "status" => "503")
        .increment(1);
}

pub fn store_error(kind: &'static str) {
    metrics::counter!(STORE_ERRORS, "kind" => kind).increment(1);
}

/// A request ended by a store failure: counted, and logged with its detail (which never
/// reaches the client).
fn store_failed(err: &StoreError, route: &str) {
    store_error(err.kind());
    match err {
        StoreError::Unavailable(detail) => {
            tracing::warn!(error = %detail, route, "store unavailable")
        }
        other => tracing::error!(error = %other, route, "request failed in the store"),
    }
}

/// An embedded store's change whose write did not take its audit entry along.
pub fn audit_entry_late() {
    metrics::counter!(AUDIT_ENTRIES_LATE).increment(1);
}

pub fn webhook_delivery(outcome: &'static str) {
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// How many endpoints are switched off, as the webhook worker last read them.
pub fn webhook_endpoints_disabled(count: usize) {
    metrics::gauge!(WEBHOOKS_DISABLED).set(count as f64);
}

pub fn callback_attempt(outcome: &'static str) {
    metrics::counter!(CALLBACK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// Prometheus text format. Unauthenticated: keep it on a private network (see the README).
/// A scrape only reads: the pending count is a count, never a relay or any other write.
pub async fn render(State(outbox): State<Arc<dyn CallbackOutbox>>) -> Response {
    match outbox.pending_count().await {
        Ok(pending) => metrics::gauge!(CALLBACKS_PENDING).set(pending as f64),
        Err(err) => tracing::warn!(error = %err, "cannot count pending callbacks for /metrics"),
    }
    let body = handle().map_or_else(
        || "# metrics are recorded by another recorder in this process\n".to_owned(),
        PrometheusHandle::render,
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
