//! `GET /`, `/health`, the API description and its routes.

use std::{collections::BTreeSet, sync::Arc};

use referral_api::{
    config::Config,
    startup::Application,
    storage::{StoreError, StoreHealth},
    stores,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{TestApp, expect_error, expect_json, test_secret},
};

/// Every route of the SPEC that exists so far. A route added to the router must be added here
/// and to the API description; the test below holds the three together.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/program/"),
    ("POST", "/program/"),
    ("GET", "/program/{id}/"),
    ("PUT", "/program/{id}/"),
    ("DELETE", "/program/{id}/"),
    ("POST", "/users/"),
    ("POST", "/register/"),
    ("PUT", "/invoice/user/{user_hash}/"),
    ("GET", "/statement/{user_hash}/"),
    ("GET", "/statement/{user_hash}/indicated/"),
    ("GET", "/program/{id}/stats/"),
    ("POST", "/emailindication/"),
    ("POST", "/emailverification/"),
    ("GET", "/api/referrer/{encodeEmail}/referral-code"),
    ("GET", "/api/referrer"),
    ("POST", "/api/referrer/external/register"),
    ("POST", "/api/referrer/internal/register"),
    ("GET", "/api/referrer/internal/referral-code"),
    ("GET", "/api/referrer/internal/referees"),
    ("PATCH", "/api/referrer/{referralCode}"),
    ("POST", "/api/referee/redeem"),
    ("POST", "/api/referee/apply"),
    ("POST", "/api/landlord/register"),
    ("GET", "/api/referee/u/{userId}"),
    ("GET", "/api/referee/check/{accountId}"),
    ("GET", "/api/landlord/check/{accountId}"),
    ("GET", "/admin/callbacks"),
    ("GET", "/admin/callbacks/{id}"),
    ("POST", "/admin/callbacks/{id}/retry"),
    ("GET", "/events"),
    ("GET", "/admin/export/ledger.csv"),
    ("GET", "/admin/export/credits.csv"),
    ("GET", "/admin/api-keys"),
    ("POST", "/admin/api-keys"),
    ("DELETE", "/admin/api-keys/{id}"),
    ("GET", "/admin/credits"),
    ("GET", "/admin/credits/{user_hash}"),
    ("POST", "/admin/credits/approve"),
    ("POST", "/admin/credits/{user_hash}/approve"),
    ("POST", "/admin/credits/{user_hash}/reject"),
    ("POST", "/admin/credits/{user_hash}/reverse"),
    ("GET", "/admin/webhooks"),
    ("POST", "/admin/webhooks"),
    ("GET", "/admin/webhooks/{id}"),
    ("PATCH", "/admin/webhooks/{id}"),
    ("DELETE", "/admin/webhooks/{id}"),
    ("POST", "/admin/webhooks/{id}/rotate-secret"),
    ("GET", "/admin/webhooks/{id}/deliveries"),
    ("POST", "/admin/webhooks/{id}/recover"),
    ("POST", "/admin/webhooks/{id}/test"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/audit.csv"),
    ("GET", "/program/{id}/stats/daily"),
];

contract_tests!(
    index_lists_the_version_and_every_route,
    health_is_ok_when_the_store_answers,
    routes_and_api_description_are_the_same_set,
    docs_ui_is_served_without_internet,
    the_console_is_served_from_the_binary_under_a_strict_policy,
    every_response_carries_a_request_id,
    unknown_routes_and_methods_get_json_errors,
);

fn expected_routes() -> BTreeSet<String> {
    ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect()
}

async fn index_lists_the_version_and_every_route(app: TestApp) {
    let body = expect_json(app.without_token(Method::GET, "/").await, StatusCode::OK).await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let listed: BTreeSet<String> = body["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e.as_str().expect("string").to_owned())
        .collect();
    assert_eq!(listed, expected_routes());
}

async fn health_is_ok_when_the_store_answers(app: TestApp) {
    let response = app.without_token(Method::GET, "/health").await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await,
        json!({ "status": "ok" })
    );
}

fn documented_routes(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    out
}

async fn routes_and_api_description_are_the_same_set(app: TestApp) {
    let doc = expect_json(
        app.without_token(Method::GET, "/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let documented = documented_routes(&doc);
    assert_eq!(documented, expected_routes());

    // Every documented operation is served by a handler: neither the router's fallback nor 405.
    for route in &documented {
        let (method, path) = route.split_once(' ').expect("METHOD path");
        let concrete = path
            .replace("{id}", "0123456789abcdef01234567")
            .replace("{user_hash}", "no-such-user")
            .replace("{encodeEmail}", "bm9ib2R5QGV4YW1wbGUuY29t")
            .replace("{userId}", "no-such-account")
            .replace("{accountId}", "no-such-account")
            .replace("{referralCode}", "NO-SUCH-CODE");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .request(method, &concrete)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{route} is documented but not routed"
        );
        assert!(
            !body.contains("Route not found"),
            "{route} is documented but not routed"
        );
    }

    let deprecated: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("item")
                .iter()
                .filter(|(_, op)| op["deprecated"] == json!(true))
                .map(move |(method, _)| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let expected_deprecated: BTreeSet<String> = [
        "POST /api/landlord/register",
        "GET /api/referee/check/{accountId}",
        "GET /api/landlord/check/{accountId}",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(deprecated, expected_deprecated);

    // Every documented operation lists its responses, and each error has a body schema.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/json"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

async fn docs_ui_is_served_without_internet(app: TestApp) {
    let response = app.without_token(Method::GET, "/docs/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load assets from the internet"
    );
    let script = app
        .without_token(Method::GET, "/docs/swagger-ui-bundle.js")
        .await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.bytes().await.expect("js").len() > 100_000);
}

async fn the_console_is_served_from_the_binary_under_a_strict_policy(app: TestApp) {
    let get = |path: &str| app.client.get(app.url(path)).send();
    let moved = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/console"))
        .send()
        .await
        .expect("request");
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    for (path, kind) in [
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = get(path).await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        // The SVG namespace is a name, not an address.
        let body = response
            .text()
            .await
            .expect("body")
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{path}: no other origin"
        );
    }
    let html = get("/console/")
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(!html.contains("<style"), "no inline style sheet");
    assert!(!html.contains("style="), "no inline style");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(html.contains(r#"<script src="console.js" defer></script>"#));
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let generated = app.without_token(Method::GET, "/health").await;
    let id = generated
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let refused = app.without_token(Method::GET, "/program/").await;
    assert!(refused.headers().contains_key("x-request-id"));
    let propagated = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("request");
    assert_eq!(propagated.headers()["x-request-id"], "trace-me-123");
}

async fn unknown_routes_and_methods_get_json_errors(app: TestApp) {
    expect_error(
        app.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "Route not found",
    )
    .await;
    let response = app
        .request(Method::PATCH, "/program/")
        .send()
        .await
        .expect("request");
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
    )
    .await;
}

struct FailingHealth;

#[async_trait::async_trait]
impl StoreHealth for FailingHealth {
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".to_owned()))
    }
}

#[tokio::test]
async fn health_is_503_when_the_store_does_not_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let secret = test_secret();
    let config = Config::from_vars([
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("DATA_DIR", dir.path().to_str().expect("utf-8")),
        ("JWT_SECRET", secret.as_str()),
    ])
    .expect("config");
    let mut stores = stores::open(&config.storage).await.expect("stores");
    stores.health = Arc::new(FailingHealth);
    let app = Application::build_with_stores(config, stores)
        .await
        .expect("app");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let response = reqwest::get(format!("{address}/health"))
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await,
        json!({ "status": "unavailable" })
    );
}

#[tokio::test]
async fn an_unreachable_mongodb_stops_the_start_with_a_clear_message() {
    let secret = test_secret();
    let config = Config::from_vars([
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("DATABASE_URL", "mongodb://127.0.0.1:1/referral"),
        ("JWT_SECRET", secret.as_str()),
    ])
    .expect("config");
    let started = std::time::Instant::now();
    let Err(err) = Application::build(config).await else {
        panic!("the application started without a database");
    };
    let message = err.to_string();
    assert!(message.contains("MongoDB did not answer"), "{message}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "failing to connect must be fast"
    );
}
