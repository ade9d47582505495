//! The HTTP front: metrics, rate limits, CORS, and connection limits.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use wiremock::ResponseTemplate;

use crate::helpers::{Backend, TestApp, answering, expect_error};

const TOO_MANY: &str = "Too many requests";

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// The value of the first sample line that starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_routes_deliveries_and_the_outbox() {
    let billing = answering(ResponseTemplate::new(200)).await;
    let url = format!("{}/credit/%s", billing.uri());
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", url.as_str())],
    )
    .await;
    let before = app.metrics().await;
    let statement =
        r#"http_requests_total{method="GET",route="/statement/{user_hash}/",status="404"}"#;
    let counted_before = sample(&before, statement).unwrap_or(0.0);

    app.create_program("P", json!(5), json!(50)).await;
    app.create_users(&["ana"]).await;
    assert_eq!(
        app.register("ana", "bo").await.status(),
        StatusCode::CREATED
    );
    for _ in 0..3 {
        let response = app.get("/statement/a-hash-never-in-metrics/").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let mut text = String::new();
    for _ in 0..200 {
        text = app.metrics().await;
        // The gauge is read from this app's outbox at each scrape.
        if sample(&text, "callbacks_pending") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&text, statement),
        Some(counted_before + 3.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"http_request_duration_seconds_bucket{method="POST",route="/register/",le="+Inf"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sample(&text, r#"callback_deliveries_total{outcome="delivered"}"#) >= Some(1.0));
    assert_eq!(sample(&text, "callbacks_pending"), Some(0.0), "{text}");
    assert!(
        text.contains(r#"store_errors_total{kind="unavailable"}"#),
        "{text}"
    );
    assert!(!text.contains("a-hash-never-in-metrics"));
}

async fn redeem_as(app: &TestApp, account: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let token = app.token(account, &[]);
    let mut request = app
        .client
        .post(app.url("/api/referee/redeem"))
        .header("Authorization", format!("Bearer {token}"))
        .json(&json!({ "referralCode": "NO-SUCH-CODE" }));
    if let Some(hops) = forwarded_for {
        request = request.header("X-Forwarded-For", hops);
    }
    request.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_account_is_limited_and_others_are_not() {
    // 30 a minute: bursts of 5.
    let app = TestApp::spawn_with(Backend::Embedded, &[("RATE_LIMIT_ACCOUNT", "30")]).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(redeem_as(&app, "eager", None).await.status());
    }
    assert_eq!(statuses[..5], [StatusCode::NOT_FOUND; 5]);
    let limited = redeem_as(&app, "eager", None).await;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, TOO_MANY).await;
    assert_eq!(
        redeem_as(&app, "patient", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // Back-end tokens are never limited; other routes neither.
    for _ in 0..20 {
        let response = app
            .post_json(
                "/api/referee/apply",
                json!({ "accountId": "x", "referralCode": "NO-SUCH" }),
            )
            .await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let response = app
            .client
            .get(app.url("/api/referee/u/eager"))
            .header(
                "Authorization",
                format!("Bearer {}", app.token("eager", &[])),
            )
            .send()
            .await
            .expect("request");
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_trusts_forwarded_for_only_from_trusted_proxies() {
    // 12 a minute per address: bursts of 2.
    let limits = [("RATE_LIMIT_IP", "12"), ("RATE_LIMIT_ACCOUNT", "0")];
    let direct = TestApp::spawn_with(Backend::Embedded, &limits).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let hop = format!("203.0.113.{i}");
        statuses.push(
            redeem_as(&direct, &format!("acc-{i}"), Some(&hop))
                .await
                .status(),
        );
    }
    // Each request a new account and a forged header: the socket address is what counts.
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");

    let behind_proxy = TestApp::spawn_with(
        Backend::Embedded,
        &[
            ("RATE_LIMIT_IP", "12"),
            ("RATE_LIMIT_ACCOUNT", "0"),
            ("TRUSTED_PROXIES", "127.0.0.0/8"),
        ],
    )
    .await;
    for i in 0..6 {
        let hop = format!("203.0.113.{i}");
        let response = redeem_as(&behind_proxy, "same-account", Some(&hop)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "client {hop}");
    }
    let statuses: Vec<StatusCode> = futures_util::future::join_all(
        (0..3).map(|_| redeem_as(&behind_proxy, "same-account", Some("198.51.100.1"))),
    )
    .await
    .iter()
    .map(reqwest::Response::status)
    .collect();
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/referee/redeem"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_the_configured_origins_only() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )],
    )
    .await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allow_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("POST")
    );
    let other = preflight(&app, "https://evil.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let actual = app
        .client
        .get(app.url("/api/referrer/internal/referral-code"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .expect("request");
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    let unconfigured = TestApp::spawn(Backend::Embedded).await;
    let response = preflight(&unconfigured, "https://app.example.com").await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Reads until the server closes the connection; `true` if it did within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_while_others_are_served() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("HEADER_READ_TIMEOUT", "1s")]).await;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        stalled.push(stream);
    }
    assert_eq!(app.health().await, StatusCode::OK);
    let results = futures_util::future::join_all(
        stalled
            .iter_mut()
            .map(|stream| closed_within(stream, Duration::from_secs(5))),
    )
    .await;
    let closed = results.iter().filter(|closed| **closed).count();
    assert_eq!(closed, 200, "half-sent connections still open");
    assert_eq!(app.health().await, StatusCode::OK);
}

/// Sends a `GET /health` on an open connection and reads its answer.
async fn health_on(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.ends_with(br#"{"status":"ok"}"#) {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buffer[..n]),
            _ => return false,
        }
    }
    answer.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_wait_longer_than_a_head_may_take() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("HEADER_READ_TIMEOUT", "1s"), ("KEEP_ALIVE_TIMEOUT", "3s")],
    )
    .await;
    let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
    assert!(health_on(&mut stream).await);
    // Idle for longer than a head may take, shorter than the keep-alive limit.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(
        health_on(&mut stream).await,
        "closed while idle for less than the keep-alive"
    );
    let started = std::time::Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(6)).await);
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(2_500),
        "closed after {idle:?} of idleness, before the keep-alive limit"
    );

    // A connection that never sends a byte gets the head's limit.
    let mut silent = TcpStream::connect(host(&app)).await.expect("connect");
    let started = std::time::Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(started.elapsed() < Duration::from_millis(2_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_cap_get_503_at_once() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("MAX_CONCURRENT_REQUESTS", "2")]).await;
    // Two requests in flight: headers sent, body still coming.
    let mut holding = Vec::new();
    let token = app.service_token();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(host(&app)).await.expect("connect");
        let head = format!(
            "POST /program/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        holding.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let shed = app.without_token(Method::GET, "/health").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        shed.headers().contains_key("retry-after"),
        "{:?}",
        shed.headers()
    );
    expect_error(shed, StatusCode::SERVICE_UNAVAILABLE, "Service overloaded").await;
    drop(holding);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.without_token(Method::GET, "/health").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "served again once the others are gone"
    );
}
