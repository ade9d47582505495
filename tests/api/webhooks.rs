//! Webhook endpoints (`/admin/webhooks`): made, changed and deleted by admins; every event
//! delivered to each endpoint that wants it, signed with that endpoint's secret (both secrets
//! during a rotation); `410`, `Retry-After`, a long run of failures, recovery, a test ping; and
//! the guard that keeps deliveries off private addresses even when a stored URL points there.
//! Real HTTP to wiremock receivers, on both backends.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use referral_api::{
    clock::Clock,
    events::{Event, EventType},
    webhooks::{
        domain::{Delivery, Selection, WebhookEndpoint},
        store::DeliveryFilter,
    },
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{
    AUTH_ERROR, Backend, TestApp, answering, expect_error, first_answers, header, wait_for_requests,
};

crate::backend_tests!(
    endpoints_are_made_listed_changed_and_deleted,
    private_addresses_are_refused_unless_allowed,
    each_endpoint_receives_its_types_signed_with_its_secret,
    a_rotated_secret_signs_beside_the_old_one,
    gone_switches_an_endpoint_off_and_enabling_it_resumes,
    a_spent_schedule_fails_and_recover_queues_again,
    retry_after_moves_the_next_attempt,
    an_endpoint_failing_too_long_is_switched_off,
    a_dead_endpoint_holds_back_no_other,
    the_test_route_sends_a_signed_ping,
    a_stored_private_address_is_never_connected_to,
    delivery_lists_page_and_filter,
    a_page_fanned_out_twice_makes_each_delivery_once,
    a_crash_mid_delivery_loses_nothing,
);

/// Receivers here listen on 127.0.0.1: the guard is lifted, except where a test checks it.
async fn app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("CALLBACK_RETRY_SCHEDULE", "50ms,50ms"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// An admin's POST without a body that answers 200: its JSON.
async fn admin_post(app: &TestApp, path: &str) -> Value {
    app.admin_expect(Method::POST, path, None, StatusCode::OK)
        .await
}

async fn create(app: &TestApp, url: &str, types: Value) -> Value {
    let body = json!({ "url": url, "event_types": types, "description": "billing" });
    app.admin_expect(
        Method::POST,
        "/admin/webhooks",
        Some(body),
        StatusCode::CREATED,
    )
    .await
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    answer(&server, status).await;
    server
}

async fn answer(server: &MockServer, status: u16) {
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status))
        .mount(server)
        .await;
}

fn hook(server: &MockServer) -> String {
    format!("{}/hook", server.uri())
}

/// A program (credit 10, target 100) and its indicator `ana`.
async fn program(app: &TestApp) {
    app.create_program("Friends", json!(10), json!(100)).await;
    app.create_users(&["ana"]).await;
}

/// Users registered as indicated by `ana`: one `credit.signup` event each.
async fn signups(app: &TestApp, names: &[&str]) {
    for name in names {
        assert_eq!(
            app.register("ana", name).await.status(),
            StatusCode::CREATED
        );
    }
}

/// A `credit.signup` endpoint on `server`, then the program and the signups of `names`: the
/// endpoint's id.
async fn signups_to(app: &TestApp, server: &MockServer, names: &[&str]) -> String {
    let made = create(app, &hook(server), json!(["credit.signup"])).await;
    program(app).await;
    signups(app, names).await;
    made["id"].as_str().expect("id").to_owned()
}

/// Polls an endpoint's deliveries until `done` holds.
async fn wait_for_deliveries(
    app: &TestApp,
    id: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let path = format!("/admin/webhooks/{id}/deliveries{query}");
    app.wait_for_items(&path, "deliveries", done).await
}

async fn wait_for_endpoint(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    app.wait_for_admin(&format!("/admin/webhooks/{id}"), done)
        .await
}

/// The signature as a receiver checks it, written apart from the service's code.
fn signature(secret: &str, request: &Request) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(header(request, "webhook-id").as_bytes());
    mac.update(b".");
    mac.update(header(request, "webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

async fn endpoints_are_made_listed_changed_and_deleted(backend: Backend) {
    let app = app(backend, &[]).await;
    let made = create(
        &app,
        "https://billing.example.com/hook",
        json!(["credit.acquired"]),
    )
    .await;
    let id = made["id"].as_str().expect("id").to_owned();
    assert!(
        made["secret"]
            .as_str()
            .expect("secret")
            .starts_with("whsec_")
    );
    assert_eq!(made["enabled"], json!(true));
    assert_eq!(made["event_types"], json!(["credit.acquired"]));
    assert_eq!(made["description"], json!("billing"));

    let shown = app.admin_json(&format!("/admin/webhooks/{id}")).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    let listed = app.admin_json("/admin/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1));
    assert!(listed["webhooks"][0].get("secret").is_none());

    let changed = app
        .admin_expect(
            Method::PATCH,
            &format!("/admin/webhooks/{id}"),
            Some(json!({ "event_types": ["*"], "description": "all", "enabled": false })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(changed["event_types"], json!(["*"]));
    assert_eq!(changed["enabled"], json!(false));
    assert_eq!(changed["disabled_reason"], json!("admin"));
    assert!(changed.get("secret").is_none());

    for (input, sentence) in [
        (
            json!({ "url": "ftp://x.example/", "event_types": ["*"] }),
            "Field `url` must be an http:// or https:// URL",
        ),
        (
            json!({ "url": "https://x.example/", "event_types": ["credit.paid"] }),
            "Field `event_types` names an unknown event type: `credit.paid`",
        ),
        (
            json!({ "url": "https://x.example/", "event_types": [] }),
            "Field `event_types` must list event types, or be [\"*\"] for every type",
        ),
        (
            json!({ "url": "https://x.example/", "event_types": ["*"], "description": "x".repeat(501) }),
            "Field `description` must have at most 500 characters",
        ),
    ] {
        expect_error(
            app.as_admin(Method::POST, "/admin/webhooks", Some(input))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
        )
        .await;
    }
    // A service caller is not an admin.
    let response = app
        .post_json(
            "/admin/webhooks",
            json!({ "url": "https://x.example/", "event_types": ["*"] }),
        )
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;

    let gone = app
        .as_admin(Method::DELETE, &format!("/admin/webhooks/{id}"), None)
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    for (verb, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, "/rotate-secret"),
        (Method::GET, "/deliveries"),
        (Method::POST, "/test"),
    ] {
        expect_error(
            app.as_admin(verb, &format!("/admin/webhooks/{id}{suffix}"), None)
                .await,
            StatusCode::NOT_FOUND,
            "Webhook not found",
        )
        .await;
    }
}

async fn private_addresses_are_refused_unless_allowed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://localhost:9/",
    ] {
        expect_error(
            app.as_admin(
                Method::POST,
                "/admin/webhooks",
                Some(json!({ "url": url, "event_types": ["*"] })),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Field `url` points at a loopback, link-local, private or unspecified address; set WEBHOOK_ALLOW_PRIVATE=true to allow such endpoints",
        )
        .await;
    }
    let made = create(&app, "https://93.184.216.34/hook", json!(["*"])).await;
    // Changing the URL is checked the same way.
    let id = made["id"].as_str().expect("id");
    let response = app
        .as_admin(
            Method::PATCH,
            &format!("/admin/webhooks/{id}"),
            Some(json!({ "url": "http://192.168.0.1/" })),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn each_endpoint_receives_its_types_signed_with_its_secret(backend: Backend) {
    let app = app(backend, &[]).await;
    let (signups_only, everything) = (receiver(200).await, receiver(204).await);
    let a = create(&app, &hook(&signups_only), json!(["credit.signup"])).await;
    let b = create(&app, &hook(&everything), json!(["*"])).await;
    program(&app).await;
    signups(&app, &["bo"]).await;
    // `ana` reaches the target: `credit.acquired` too.
    assert_eq!(
        app.invoice("bo", json!("100.25")).await.status(),
        StatusCode::OK
    );

    let to_b = wait_for_requests(&everything, 2).await;
    let to_a = wait_for_requests(&signups_only, 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let to_a_later = signups_only.received_requests().await.unwrap_or_default();
    assert_eq!(
        to_a_later.len(),
        1,
        "only its type reaches the first endpoint"
    );

    // Deliveries go out side by side: no order between events is promised.
    let by_type = |wanted: &str| {
        to_b.iter()
            .find(|r| body(r)["type"] == json!(wanted))
            .unwrap_or_else(|| panic!("no {wanted} delivery"))
    };
    let (b_signup, b_acquired) = (by_type("credit.signup"), by_type("credit.acquired"));
    let signup = body(&to_a[0]);
    assert_eq!(signup["type"], json!("credit.signup"));
    assert_eq!(signup["data"]["user_hash"], json!("bo"));
    assert_eq!(signup["data"]["amount"], json!(10));
    assert_eq!(body(b_acquired)["data"]["amount"], json!(100));
    DateTime::parse_from_rfc3339(signup["timestamp"].as_str().expect("timestamp"))
        .expect("an RFC 3339 timestamp");
    // One event id for every endpoint: `webhook-id` is the event's.
    assert_eq!(
        header(&to_a[0], "webhook-id"),
        header(b_signup, "webhook-id")
    );
    let feed: Value = app
        .get("/events?type=credit.signup")
        .await
        .json()
        .await
        .expect("feed");
    assert_eq!(
        feed["events"][0]["id"].as_str(),
        Some(header(&to_a[0], "webhook-id"))
    );
    assert_eq!(header(&to_a[0], "content-type"), "application/json");
    for (request, endpoint) in [(&to_a[0], &a), (b_signup, &b), (b_acquired, &b)] {
        let secret = endpoint["secret"].as_str().expect("secret");
        assert_eq!(
            header(request, "webhook-signature"),
            signature(secret, request)
        );
    }
    let a_id = a["id"].as_str().expect("id");
    let delivered = wait_for_deliveries(&app, a_id, "?status=delivered", |d| d.len() == 1).await;
    assert_eq!(delivered[0]["last_status"], json!(200));
    assert_eq!(delivered[0]["attempts"], json!(1));
    assert_eq!(delivered[0]["event_type"], json!("credit.signup"));
    assert!(delivered[0]["delivered_at"].is_string());
    let b_id = b["id"].as_str().expect("id");
    let delivered = wait_for_deliveries(&app, b_id, "?status=delivered", |d| d.len() == 2).await;
    assert_eq!(delivered[0]["last_status"], json!(204));
}

async fn a_rotated_secret_signs_beside_the_old_one(backend: Backend) {
    let app = app(backend, &[]).await;
    let server = receiver(200).await;
    let made = create(&app, &hook(&server), json!(["credit.signup"])).await;
    let id = made["id"].as_str().expect("id");
    let old = made["secret"].as_str().expect("secret");
    let rotated = admin_post(&app, &format!("/admin/webhooks/{id}/rotate-secret")).await;
    let new = rotated["secret"].as_str().expect("new secret");
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string());
    program(&app).await;
    signups(&app, &["bo"]).await;
    let received = wait_for_requests(&server, 1).await;
    let signatures = header(&received[0], "webhook-signature");
    assert_eq!(
        signatures,
        format!(
            "{} {}",
            signature(new, &received[0]),
            signature(old, &received[0])
        )
    );
    // After the overlap (24 h by default), the new secret alone.
    app.clock.advance(chrono::Duration::hours(25));
    signups(&app, &["cy"]).await;
    let received = wait_for_requests(&server, 2).await;
    assert_eq!(
        header(&received[1], "webhook-signature"),
        signature(new, &received[1])
    );
}

async fn gone_switches_an_endpoint_off_and_enabling_it_resumes(backend: Backend) {
    let app = app(backend, &[]).await;
    let server = MockServer::start().await;
    first_answers(&server, 1, 1, ResponseTemplate::new(410)).await;
    answer(&server, 200).await;
    let id = &signups_to(&app, &server, &["bo"]).await;
    let off = wait_for_endpoint(&app, id, |e| e["enabled"] == json!(false)).await;
    assert_eq!(off["disabled_reason"], json!("gone"));
    // Switched off: new events wait with the one that met the 410.
    signups(&app, &["cy"]).await;
    let waiting = wait_for_deliveries(&app, id, "?status=pending", |d| d.len() == 2).await;
    assert_eq!(waiting[0]["last_status"], json!(410));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(1));

    let on = app
        .admin_expect(
            Method::PATCH,
            &format!("/admin/webhooks/{id}"),
            Some(json!({ "enabled": true })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(on["disabled_reason"], Value::Null);
    wait_for_deliveries(&app, id, "?status=delivered", |d| d.len() == 2).await;
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(3));
}

async fn a_spent_schedule_fails_and_recover_queues_again(backend: Backend) {
    let app = app(backend, &[]).await;
    let server = MockServer::start().await;
    first_answers(
        &server,
        3,
        1,
        ResponseTemplate::new(500).set_body_string("down"),
    )
    .await;
    answer(&server, 200).await;
    let before = app.clock.now();
    let id = &signups_to(&app, &server, &["bo"]).await;
    let failed = wait_for_deliveries(&app, id, "?status=failed", |d| d.len() == 1).await;
    assert_eq!(failed[0]["attempts"], json!(3));
    assert_eq!(failed[0]["last_status"], json!(500));
    assert_eq!(failed[0]["last_error"], json!("HTTP 500: down"));
    assert_eq!(failed[0]["next_attempt_at"], Value::Null);

    let later = (app.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let none = app
        .admin_expect(
            Method::POST,
            &format!("/admin/webhooks/{id}/recover"),
            Some(json!({ "since": later })),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(none, json!({ "queued": 0 }));
    expect_error(
        app.as_admin(
            Method::POST,
            &format!("/admin/webhooks/{id}/recover"),
            Some(json!({ "since": "yesterday" })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Field `since` is required and must be an RFC 3339 date-time with an offset",
    )
    .await;
    let queued = app
        .admin_expect(
            Method::POST,
            &format!("/admin/webhooks/{id}/recover"),
            Some(json!({ "since": (before - chrono::Duration::seconds(1)).to_rfc3339() })),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(queued, json!({ "queued": 1 }));
    let delivered = wait_for_deliveries(&app, id, "?status=delivered", |d| d.len() == 1).await;
    assert_eq!(delivered[0]["attempts"], json!(1));
    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 4);
    let ids: Vec<&str> = received.iter().map(|r| header(r, "webhook-id")).collect();
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
}

async fn retry_after_moves_the_next_attempt(backend: Backend) {
    let app = app(backend, &[("CALLBACK_RETRY_SCHEDULE", "1s,1s")]).await;
    let server = answering(ResponseTemplate::new(429).insert_header("Retry-After", "120")).await;
    let id = &signups_to(&app, &server, &["bo"]).await;
    let waiting = wait_for_deliveries(&app, id, "?status=pending", |d| {
        d.len() == 1 && d[0]["attempts"] == json!(1)
    })
    .await;
    assert_eq!(waiting[0]["last_status"], json!(429));
    let next: DateTime<Utc> = waiting[0]["next_attempt_at"]
        .as_str()
        .expect("next attempt")
        .parse()
        .expect("a time");
    let wait = next - app.clock.now();
    assert!(
        wait > chrono::Duration::seconds(110) && wait <= chrono::Duration::seconds(121),
        "{wait}"
    );
}

async fn an_endpoint_failing_too_long_is_switched_off(backend: Backend) {
    let app = app(
        backend,
        &[
            ("CALLBACK_RETRY_SCHEDULE", "1m,1m,1m"),
            ("WEBHOOK_DISABLE_AFTER", "1h"),
        ],
    )
    .await;
    let server = receiver(503).await;
    let id = &signups_to(&app, &server, &["bo"]).await;
    let failing = wait_for_endpoint(&app, id, |e| e["failing_since"].is_string()).await;
    assert_eq!(failing["enabled"], json!(true));
    // An hour of failures later, the next failure switches it off.
    app.clock.advance(chrono::Duration::minutes(61));
    let off = wait_for_endpoint(&app, id, |e| e["enabled"] == json!(false)).await;
    assert_eq!(off["disabled_reason"], json!("failing"));
    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 2);
}

async fn a_dead_endpoint_holds_back_no_other(backend: Backend) {
    let app = app(
        backend,
        &[
            ("CALLBACK_TIMEOUT", "3s"),
            ("CALLBACK_LEASE", "30s"),
            ("CALLBACK_CONCURRENCY", "1"),
            ("CALLBACK_RETRY_SCHEDULE", "10m"),
        ],
    )
    .await;
    let slow = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let fast = receiver(200).await;
    let dead = create(&app, &hook(&slow), json!(["credit.signup"])).await;
    let live = create(&app, &hook(&fast), json!(["credit.signup"])).await;
    program(&app).await;
    signups(&app, &["bo", "cy", "di", "ed"]).await;
    // Every delivery to the live endpoint lands while the dead one is still on its first.
    let live_id = live["id"].as_str().expect("id");
    wait_for_deliveries(&app, live_id, "?status=delivered", |d| d.len() == 4).await;
    let dead_id = dead["id"].as_str().expect("id");
    let stuck = app
        .admin_json(&format!(
            "/admin/webhooks/{dead_id}/deliveries?status=pending"
        ))
        .await;
    let stuck = stuck["deliveries"].as_array().cloned().unwrap_or_default();
    assert!(stuck.len() >= 3, "{stuck:?}");
}

async fn the_test_route_sends_a_signed_ping(backend: Backend) {
    let app = app(backend, &[]).await;
    let server = receiver(200).await;
    let made = create(&app, &hook(&server), json!(["credit.acquired"])).await;
    let id = made["id"].as_str().expect("id");
    let answer = admin_post(&app, &format!("/admin/webhooks/{id}/test")).await;
    assert_eq!(answer["status"], json!(200));
    assert!(answer["duration_ms"].is_u64());
    let received = wait_for_requests(&server, 1).await;
    let ping = body(&received[0]);
    assert_eq!(ping["type"], json!("webhook.test"));
    assert_eq!(ping["data"]["webhook_id"], json!(id));
    let secret = made["secret"].as_str().expect("secret");
    assert_eq!(
        header(&received[0], "webhook-signature"),
        signature(secret, &received[0])
    );
    // A test leaves no delivery behind.
    let page = app
        .admin_json(&format!("/admin/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(page["deliveries"], json!([]));
    // An endpoint that takes its time: the admin has an answer within 5 seconds.
    let slow = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(30))).await;
    let made = create(&app, &hook(&slow), json!(["credit.acquired"])).await;
    let id = made["id"].as_str().expect("id");
    let started = std::time::Instant::now();
    let answer = admin_post(&app, &format!("/admin/webhooks/{id}/test")).await;
    assert_eq!(answer["status"], Value::Null);
    assert_eq!(answer["error"], json!("timed out"));
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// An endpoint stored before the guard was turned on (or a name whose DNS answer changed) is
/// still never connected to: the address is checked at connection time.
async fn a_stored_private_address_is_never_connected_to(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CALLBACK_RETRY_SCHEDULE", "10m")]).await;
    let server = receiver(200).await;
    let port = server.address().port();
    let now = app.clock.now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ] {
        let endpoint = WebhookEndpoint::new(url, Selection::All, "stored".to_owned(), now);
        app.stores
            .webhooks
            .insert_webhook(&endpoint)
            .await
            .expect("stored");
        ids.push(endpoint.id);
    }
    program(&app).await;
    signups(&app, &["bo"]).await;
    for id in &ids {
        let waiting = wait_for_deliveries(&app, id, "?status=pending", |d| {
            !d.is_empty() && d.iter().all(|d| d["attempts"] == json!(1))
        })
        .await;
        let error = waiting[0]["last_error"].as_str().expect("an error");
        assert!(error.starts_with("not sent"), "{error}");
        let answer = admin_post(&app, &format!("/admin/webhooks/{id}/test")).await;
        assert_eq!(answer["status"], Value::Null);
    }
    assert_eq!(server.received_requests().await.map(|r| r.len()), Some(0));
}

async fn delivery_lists_page_and_filter(backend: Backend) {
    let app = app(backend, &[]).await;
    let server = receiver(200).await;
    let id = &signups_to(&app, &server, &["bo", "cy", "di", "ed", "fa"]).await;
    let all = wait_for_deliveries(&app, id, "?status=delivered", |d| d.len() == 5).await;
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = app
            .admin_json(&format!("/admin/webhooks/{id}/deliveries{query}"))
            .await;
        paged.extend(page["deliveries"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let users: Vec<String> = paged
        .iter()
        .map(|d| d["event_id"].as_str().expect("event").to_owned())
        .collect();
    let mut sorted = users.clone();
    sorted.sort();
    assert_eq!(users, sorted, "in the order of their events");
    assert_eq!(
        app.admin_json(&format!("/admin/webhooks/{id}/deliveries?status=failed"))
            .await["deliveries"],
        json!([])
    );
    for bad in ["?status=lost", "?limit=0", "?limit=501"] {
        let response = app
            .as_admin(
                Method::GET,
                &format!("/admin/webhooks/{id}/deliveries{bad}"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("webhook_deliveries_total{outcome=\"delivered\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("webhook_endpoints_disabled"), "{metrics}");
}

/// Two instances on one MongoDB database both turn the feed into deliveries and both deliver:
/// each event still makes one delivery per endpoint, sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_make_one_delivery_per_event() {
    let url = crate::helpers::fresh_mongo_url();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let first = TestApp::spawn_with(Backend::Mongo, &vars).await;
    let second = TestApp::spawn_with(Backend::Mongo, &vars).await;
    let server = receiver(200).await;
    let made = create(&first, &hook(&server), json!(["credit.signup"])).await;
    program(&first).await;
    let names: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.register("ana", name).await.status(),
            StatusCode::CREATED
        );
    }
    let id = made["id"].as_str().expect("id");
    wait_for_deliveries(&first, id, "?status=delivered", |d| d.len() == 12).await;
    // Both instances have had time for more fan-outs and claims.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = first
        .admin_json(&format!("/admin/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(all["deliveries"].as_array().map(Vec::len), Some(12));
    let received = server.received_requests().await.unwrap_or_default();
    let ids: std::collections::HashSet<&str> =
        received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(received.len(), 12, "each event sent once");
}

/// Two instances that read the same page of the feed at once both write its deliveries: the
/// store keeps one per (event, endpoint), and the position only moves forward.
async fn a_page_fanned_out_twice_makes_each_delivery_once(backend: Backend) {
    let app = app(backend, &[]).await;
    let store = app.stores.webhooks.clone();
    let now = app.clock.now();
    let endpoint = WebhookEndpoint::new(
        "https://crm.example.com/hook".to_owned(),
        Selection::All,
        String::new(),
        now - chrono::Duration::seconds(1),
    );
    store.insert_webhook(&endpoint).await.expect("stored");
    let events: Vec<Event> = (0..20)
        .map(|i| Event::new(EventType::CreditSignup, json!({ "n": i }), now))
        .collect();
    // Each instance makes its own deliveries from the events it read.
    let page = || -> Vec<Delivery> {
        events
            .iter()
            .map(|event| Delivery::of(&endpoint, event, now))
            .collect()
    };
    let keep = now + chrono::Duration::days(1);
    let (one, two) = tokio::join!(
        store.fan_out(page(), 20, keep),
        store.fan_out(page(), 20, keep)
    );
    one.expect("first fan-out");
    two.expect("second fan-out");
    // A late fan-out of an earlier page leaves the position where it is.
    store
        .fan_out(page()[..5].to_vec(), 5, keep)
        .await
        .expect("late fan-out");
    assert_eq!(store.fan_out_position().await.expect("position"), 20);
    let listed = store
        .deliveries(&DeliveryFilter {
            endpoint_id: endpoint.id.clone(),
            status: None,
            after: None,
            limit: 100,
        })
        .await
        .expect("deliveries");
    assert_eq!(listed.len(), 20);
}

/// The process dies while deliveries are in flight: after a restart every event reaches the
/// endpoint (at least once), always under its own `webhook-id`, and every delivery ends
/// delivered.
async fn a_crash_mid_delivery_loses_nothing(backend: Backend) {
    let app = app(
        backend,
        &[("CALLBACK_TIMEOUT", "1s"), ("CALLBACK_LEASE", "3s")],
    )
    .await;
    let server = MockServer::start().await;
    first_answers(
        &server,
        3,
        1,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
    )
    .await;
    answer(&server, 200).await;
    let id = signups_to(&app, &server, &["bo", "cy", "di"]).await;
    // Every delivery is in flight (the receiver holds them): the process dies.
    wait_for_requests(&server, 3).await;
    let app = app.crash_and_restart().await;
    let delivered = wait_for_deliveries(&app, &id, "?status=delivered", |d| d.len() == 3).await;
    let feed: Value = app
        .get("/events?type=credit.signup")
        .await
        .json()
        .await
        .expect("feed");
    let events: std::collections::HashSet<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    let received = server.received_requests().await.unwrap_or_default();
    let sent: std::collections::HashSet<&str> =
        received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(sent, events, "every event, under its own id");
    assert!(received.len() >= 6, "each in-flight delivery sent again");
    assert!(delivered.iter().all(|d| d["attempts"].as_u64() >= Some(1)));
}
