//! Credit callbacks: credit events reach a real HTTP server playing the billing service, on both
//! backends. Waits poll the service or the server every few milliseconds; retry schedules are
//! configured short, so no test waits for a real schedule.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path, path_regex},
};

use crate::helpers::{
    AUTH_ERROR, Backend, TestApp, expect_error, expect_json, first_answers, fresh_mongo_url,
    header, wait_for_requests,
};

/// A secret in the Standard Webhooks form, for tests only.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

crate::backend_tests!(
    a_delivered_callback_carries_its_fields_headers_and_signature,
    the_url_takes_either_placeholder_or_none,
    retries_after_errors_and_a_timeout_keep_one_event_id,
    a_spent_schedule_fails_and_an_admin_retry_delivers,
    admin_routes_refuse_other_roles_and_unknown_ids,
    a_restart_while_the_billing_service_is_down_loses_nothing,
    a_lease_left_by_a_killed_process_expires_and_the_event_goes_out_again,
    concurrent_crossings_and_registrations_send_one_callback_each,
    without_a_url_events_wait_as_pending,
    lists_filtered_by_status_or_user_page_like_the_whole_list,
);

async fn app_with(backend: Backend, server: &MockServer, extra: &[(&str, &str)]) -> TestApp {
    let url = format!("{}/credit/%s", server.uri());
    let mut vars = vec![
        ("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", url.as_str()),
        ("CALLBACK_SIGNING_SECRET", SECRET),
        ("CALLBACK_RETRY_SCHEDULE", "50ms,50ms,50ms"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

async fn answer(server: &MockServer, status: u16) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string("billing says no"))
        .mount(server)
        .await;
}

/// An app with this callback timeout and lease, and `bo` registered (see [`register_bo`]).
async fn bo_with_timeout(
    backend: Backend,
    server: &MockServer,
    timeout: &str,
    lease: &str,
) -> TestApp {
    let vars = [("CALLBACK_TIMEOUT", timeout), ("CALLBACK_LEASE", lease)];
    let app = app_with(backend, server, &vars).await;
    register_bo(&app).await;
    app
}

/// A program (credit 10, target 100), user `ana`, and `bo` registered as indicated by her.
async fn register_bo(app: &TestApp) {
    app.create_program("Friends", json!(10), json!("100.50"))
        .await;
    app.create_users(&["ana"]).await;
    let response = app.register("ana", "bo").await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Polls the admin list until `done` holds for it.
async fn wait_for_callbacks(
    app: &TestApp,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    app.wait_for_items(&format!("/admin/callbacks{query}"), "callbacks", done)
        .await
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The signature as the billing service would check it, written apart from the service's code.
fn expected_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn a_delivered_callback_carries_its_fields_headers_and_signature(backend: Backend) {
    let server = MockServer::start().await;
    answer(&server, 204).await;
    let app = app_with(backend, &server, &[]).await;
    register_bo(&app).await;

    let received = wait_for_requests(&server, 1).await;
    let request = &received[0];
    assert_eq!(request.url.path(), "/credit/bo");
    assert_eq!(
        header(request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let fields = form(request);
    let id = fields["event_id"].clone();
    assert_eq!(fields["amount"], "10");
    assert_eq!(fields["program_name"], "Friends");
    assert_eq!(fields["user_indicator_hash"], "ana");
    assert_eq!(fields["event_type"], "signup_credit");
    assert_eq!(fields["user_hash"], "bo");
    assert_eq!(header(request, "webhook-id"), id);
    assert_eq!(header(request, "idempotency-key"), id);
    assert!(header(request, "user-agent").starts_with("referral-api/"));
    let timestamp = header(request, "webhook-timestamp");
    let sent_at: i64 = timestamp.parse().expect("unix seconds");
    assert!((crate::helpers::now() as i64 - sent_at).abs() < 60);
    assert_eq!(
        header(request, "webhook-signature"),
        expected_signature(&id, timestamp, &request.body)
    );

    let callbacks = wait_for_callbacks(&app, "", |c| {
        c.first().is_some_and(|e| e["status"] == "delivered")
    })
    .await;
    let event = &callbacks[0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["attempts"], 1);
    assert_eq!(event["amount"], json!(10));
    assert!(event["delivered_at"].is_string());
    assert_eq!(event["last_error"], Value::Null);

    // Crossing the threshold credits the indicator, under a new event id.
    let response = app.invoice("bo", json!("100.50")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let received = wait_for_requests(&server, 2).await;
    let fields = form(&received[1]);
    assert_eq!(received[1].url.path(), "/credit/ana");
    assert_eq!(fields["event_type"], "acquired_credit");
    assert_eq!(fields["user_hash"], "ana");
    assert_eq!(fields["amount"], "100.50");
    assert_ne!(fields["event_id"], id);
}

async fn the_url_takes_either_placeholder_or_none(backend: Backend) {
    for (template, expected) in [
        ("/u/{user_hash}/credit", "/u/b%20o%2F1/credit"),
        ("/credit", "/credit"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(expected))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let url = format!("{}{template}", server.uri());
        let app = TestApp::spawn_with(
            backend,
            &[("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", url.as_str())],
        )
        .await;
        app.create_program("P", json!(1), json!(2)).await;
        app.create_users(&["ana"]).await;
        assert_eq!(
            app.register("ana", "b o/1").await.status(),
            StatusCode::CREATED
        );
        let received = wait_for_requests(&server, 1).await;
        assert!(
            received[0].headers.get("webhook-signature").is_none(),
            "no secret, no signature"
        );
        wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 1).await;
        server.verify().await;
    }
}

async fn retries_after_errors_and_a_timeout_keep_one_event_id(backend: Backend) {
    let server = MockServer::start().await;
    let down = ResponseTemplate::new(500).set_body_string("down for maintenance");
    first_answers(&server, 2, 1, down).await;
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(3));
    first_answers(&server, 1, 2, slow).await;
    answer(&server, 200).await;
    let app = bo_with_timeout(backend, &server, "300ms", "10s").await;

    let callbacks = wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 1).await;
    assert_eq!(callbacks[0]["attempts"], 4, "two 500s, a timeout, then 200");
    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 4);
    let ids: HashSet<&str> = received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    assert_eq!(ids.into_iter().next(), callbacks[0]["id"].as_str());
}

async fn a_spent_schedule_fails_and_an_admin_retry_delivers(backend: Backend) {
    let server = MockServer::start().await;
    let down = ResponseTemplate::new(503).set_body_string("billing is down");
    first_answers(&server, 4, 1, down).await;
    answer(&server, 200).await;
    let app = app_with(backend, &server, &[]).await;
    register_bo(&app).await;

    // Three waits: four attempts, then `failed`.
    let failed = wait_for_callbacks(&app, "?status=failed", |c| c.len() == 1).await;
    let event = &failed[0];
    assert_eq!(event["attempts"], 4);
    assert_eq!(event["last_error"], "HTTP 503: billing is down");
    assert!(event["last_attempt_at"].is_string());
    let id = event["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.admin_json(&format!("/admin/callbacks/{id}")).await,
        *event
    );

    let response = app
        .as_admin(Method::POST, &format!("/admin/callbacks/{id}/retry"), None)
        .await;
    let queued = expect_json(response, StatusCode::ACCEPTED).await;
    assert_eq!(queued["status"], "pending");
    assert_eq!(queued["attempts"], 4, "the attempts count is kept");

    let delivered = wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 1).await;
    assert_eq!(delivered[0]["attempts"], 5);
    let response = app
        .as_admin(Method::POST, &format!("/admin/callbacks/{id}/retry"), None)
        .await;
    expect_error(response, StatusCode::CONFLICT, "Callback already delivered").await;
}

async fn admin_routes_refuse_other_roles_and_unknown_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    register_bo(&app).await;
    for token in [app.service_token(), app.token("ana", &[])] {
        for (verb, route) in [
            (reqwest::Method::GET, "/admin/callbacks"),
            (reqwest::Method::GET, "/admin/callbacks/x"),
            (reqwest::Method::POST, "/admin/callbacks/x/retry"),
        ] {
            let response = app
                .client
                .request(verb, app.url(route))
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("request");
            expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
        }
    }
    for route in [
        "/admin/callbacks/no-such-event",
        "/admin/callbacks/%7B%22%24ne%22%3A1%7D",
    ] {
        let response = app.as_admin(Method::GET, route, None).await;
        expect_error(response, StatusCode::NOT_FOUND, "Callback not found").await;
    }
    let response = app
        .as_admin(Method::POST, "/admin/callbacks/no-such-event/retry", None)
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "Callback not found").await;
    for query in [
        "?status=lost",
        "?limit=0",
        "?limit=501",
        "?limit=x",
        "?after=garbage",
    ] {
        let response = app
            .as_admin(Method::GET, &format!("/admin/callbacks{query}"), None)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
}

async fn a_restart_while_the_billing_service_is_down_loses_nothing(backend: Backend) {
    let server = MockServer::start().await;
    first_answers(&server, 1, 1, ResponseTemplate::new(502)).await;
    let app = app_with(backend, &server, &[("CALLBACK_RETRY_SCHEDULE", "1s,50ms")]).await;
    register_bo(&app).await;
    wait_for_requests(&server, 1).await;
    let app = app.restart().await;
    answer(&server, 200).await;
    app.invoice("bo", json!(500)).await;

    let delivered = wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 2).await;
    let received = server.received_requests().await.unwrap_or_default();
    let mut sends: HashMap<String, usize> = HashMap::new();
    for request in &received {
        *sends
            .entry(header(request, "webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(sends.len(), 2, "{sends:?}");
    let signup = &delivered[0];
    assert_eq!(signup["event_type"], "signup_credit");
    assert_eq!(
        sends[signup["id"].as_str().expect("id")],
        2,
        "one failure, one success"
    );
    assert_eq!(sends[delivered[1]["id"].as_str().expect("id")], 1);
}

/// The process dies while the billing service is still answering: the attempt is never
/// recorded, and the lease it left runs out. The next process sends the event again under the
/// same id (at least once), and only after the lease, never beside the first send.
async fn a_lease_left_by_a_killed_process_expires_and_the_event_goes_out_again(backend: Backend) {
    let server = MockServer::start().await;
    let hanging = ResponseTemplate::new(200).set_delay(Duration::from_secs(30));
    first_answers(&server, 1, 1, hanging).await;
    answer(&server, 200).await;
    let lease = Duration::from_secs(2);
    let app = bo_with_timeout(backend, &server, "1s", "2s").await;
    wait_for_requests(&server, 1).await;
    let killed_at = std::time::Instant::now();
    let app = app.crash_and_restart().await;

    let delivered = wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 1).await;
    let resent_after = killed_at.elapsed();
    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 2, "one send cut short, one delivered");
    assert_eq!(
        header(&received[0], "webhook-id"),
        header(&received[1], "webhook-id")
    );
    assert_eq!(header(&received[1], "webhook-id"), delivered[0]["id"]);
    // The cut-short send was never recorded; only the one that got an answer counts.
    assert_eq!(delivered[0]["attempts"], 1);
    assert!(
        resent_after >= lease - Duration::from_millis(300),
        "sent again after {resent_after:?}, before the lease of {lease:?} ran out"
    );
}

async fn concurrent_crossings_and_registrations_send_one_callback_each(backend: Backend) {
    let server = MockServer::start().await;
    answer(&server, 200).await;
    let app = app_with(backend, &server, &[]).await;
    register_bo(&app).await;
    app.create_users(&["cy"]).await;

    let invoices = (0..50).map(|i| app.invoice("bo", json!(100 + i)));
    let registrations = (0..20).map(|_| app.register("cy", "dee"));
    let (invoices, registrations) = tokio::join!(
        futures_util::future::join_all(invoices),
        futures_util::future::join_all(registrations)
    );
    assert!(invoices.iter().all(|r| r.status() == StatusCode::OK));
    let created = registrations
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);

    wait_for_callbacks(&app, "?status=delivered", |c| c.len() == 3).await;
    // Time for a stray second send to arrive, if there were one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = server.received_requests().await.unwrap_or_default();
    let types: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let f = form(r);
            (f["event_type"].clone(), f["user_hash"].clone())
        })
        .collect();
    assert_eq!(received.len(), 3, "{types:?}");
    assert!(types.contains(&("acquired_credit".into(), "ana".into())));
    assert!(types.contains(&("signup_credit".into(), "dee".into())));
    let page = app.admin_json("/admin/callbacks?limit=2").await;
    assert_eq!(page["callbacks"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().expect("a next page");
    let rest = app
        .admin_json(&format!("/admin/callbacks?limit=2&after={next}"))
        .await;
    assert_eq!(rest["callbacks"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["next"], Value::Null);
    let dee = app.admin_json("/admin/callbacks?user_hash=dee").await;
    assert_eq!(dee["callbacks"][0]["event_type"], "signup_credit");
}

async fn without_a_url_events_wait_as_pending(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    register_bo(&app).await;
    let pending = app.admin_json("/admin/callbacks?status=pending").await;
    assert_eq!(pending["callbacks"][0]["attempts"], 0);
    assert_eq!(pending["callbacks"][0]["user_hash"], "bo");
}

/// Two service processes' workers on one MongoDB database: every event is delivered, and no
/// event is ever sent twice (each attempt succeeds, so a second send would be an overlap).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_never_send_an_event_twice() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/credit/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(30)))
        .mount(&server)
        .await;
    let database = fresh_mongo_url();
    let shared = [("DATABASE_URL", database.as_str())];
    let first = app_with(Backend::Mongo, &server, &shared).await;
    let secret = first.secret.clone();
    let mut second = app_with(
        Backend::Mongo,
        &server,
        &[
            ("DATABASE_URL", database.as_str()),
            ("JWT_SECRET", secret.as_str()),
        ],
    )
    .await;
    second.secret = secret;
    first.create_program("P", json!(1), json!(2)).await;
    first.create_users(&["ana"]).await;
    let users: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    let registrations = users.iter().enumerate().map(|(i, user)| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.register("ana", user)
    });
    for response in futures_util::future::join_all(registrations).await {
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    wait_for_callbacks(&first, "?status=delivered&limit=100", |c| c.len() == 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = server.received_requests().await.unwrap_or_default();
    let ids: HashSet<&str> = received.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(received.len(), 30, "an event was sent twice");
}

/// On MongoDB, events wait inside their user documents until the relay copies them to the
/// `callbacks` collection and then removes them. A relay stopped between the two steps leaves
/// the copies in both places: the next pass must list each event once, under its own id, and
/// still clear the users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_copied_but_not_yet_removed_from_their_users_are_relayed_once() {
    use mongodb::bson::{Document, doc};

    let database = fresh_mongo_url();
    let app = TestApp::spawn_with(Backend::Mongo, &[("DATABASE_URL", database.as_str())]).await;
    register_bo(&app).await;
    for user in ["cy", "dee", "eve"] {
        assert_eq!(
            app.register("ana", user).await.status(),
            StatusCode::CREATED
        );
    }
    // Listing relays: every event is in `callbacks` now, and no user holds one.
    let relayed = app.admin_json("/admin/callbacks?limit=100").await["callbacks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(relayed.len(), 4);

    let client = mongodb::Client::with_uri_str(&database)
        .await
        .expect("client");
    let db = client.default_database().expect("database in the URL");
    let users = db.collection::<Document>("users");
    let copies: Vec<Document> = {
        use futures_util::TryStreamExt;
        db.collection::<Document>("callbacks")
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("copies")
    };
    assert_eq!(copies.len(), 4);
    // Put each copy back where it was written, as the relay leaves it between its steps.
    for copy in &copies {
        let mut event = copy.clone();
        let id = event.remove("_id").expect("id");
        event.insert("id", id);
        let holder = event.get_str("user_hash").expect("user_hash").to_owned();
        let put = users
            .update_one(
                doc! { "_id": &holder },
                doc! { "$push": { "callbacks": event } },
            )
            .await
            .expect("push");
        assert_eq!(put.matched_count, 1, "no user {holder}");
    }

    let listed = app.admin_json("/admin/callbacks?limit=100").await["callbacks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<&str> = listed.iter().filter_map(|c| c["id"].as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 4, "{listed:?}");
    assert_eq!(unique.len(), 4, "an event listed twice: {ids:?}");
    let before: HashSet<&str> = relayed.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(unique, before);
    let still_held = users
        .count_documents(doc! { "callbacks.id": { "$exists": true } })
        .await
        .expect("count");
    assert_eq!(still_held, 0, "the relay left events in their users");
}

/// `GET /metrics` only reads: on MongoDB it counts the events still inside their users as
/// pending, and leaves them there (a scrape relays nothing, writes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_scrape_counts_unrelayed_events_and_moves_none() {
    use mongodb::bson::{Document, doc};

    let database = fresh_mongo_url();
    let app = TestApp::spawn_with(Backend::Mongo, &[("DATABASE_URL", database.as_str())]).await;
    register_bo(&app).await;
    assert_eq!(
        app.register("ana", "cy").await.status(),
        StatusCode::CREATED
    );
    for _ in 0..2 {
        let text = app.metrics().await;
        assert!(
            text.lines().any(|line| line == "callbacks_pending 2"),
            "{text}"
        );
    }
    let client = mongodb::Client::with_uri_str(&database)
        .await
        .expect("client");
    let db = client.default_database().expect("database in the URL");
    let inside = db
        .collection::<Document>("users")
        .count_documents(doc! { "callbacks.id": { "$exists": true } })
        .await
        .expect("count");
    assert_eq!(inside, 2, "the events are still inside their users");
    let relayed = db
        .collection::<Document>("callbacks")
        .count_documents(doc! {})
        .await
        .expect("count");
    assert_eq!(relayed, 0);
}

/// The list filtered by status or by user, read a page at a time, gives exactly the events of
/// the whole list that match, in the same order, whatever the page size.
async fn lists_filtered_by_status_or_user_page_like_the_whole_list(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/credit/(ana|u[13])$"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    answer(&server, 500).await;
    let app = app_with(backend, &server, &[("CALLBACK_RETRY_SCHEDULE", "10ms")]).await;
    app.create_program("P", json!(10), json!(100)).await;
    app.create_users(&["ana"]).await;
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        assert_eq!(
            app.register("ana", user).await.status(),
            StatusCode::CREATED
        );
    }
    for user in ["u1", "u2"] {
        app.invoice(user, json!(100)).await;
    }
    let all = wait_for_callbacks(&app, "?limit=500", |c| {
        c.len() == 7 && c.iter().all(|e| e["status"] != "pending")
    })
    .await;
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_owned())
            .collect()
    };
    type Keep = fn(&Value) -> bool;
    let filters: [(&str, Keep); 4] = [
        ("status=delivered", |e| e["status"] == "delivered"),
        ("status=failed", |e| e["status"] == "failed"),
        ("user_hash=ana", |e| e["user_hash"] == "ana"),
        ("user_hash=u2&status=failed", |e| {
            e["user_hash"] == "u2" && e["status"] == "failed"
        }),
    ];
    for (query, keep) in filters {
        let expected: Vec<Value> = all.iter().filter(|e| keep(e)).cloned().collect();
        assert!(!expected.is_empty(), "{query}");
        for limit in [1, 2, 500] {
            let mut seen = Vec::new();
            let mut path = format!("/admin/callbacks?{query}&limit={limit}");
            loop {
                let page = app.admin_json(&path).await;
                seen.extend(page["callbacks"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) => {
                        path = format!("/admin/callbacks?{query}&limit={limit}&after={next}")
                    }
                    None => break,
                }
            }
            assert_eq!(ids(&seen), ids(&expected), "{query}, limit {limit}");
        }
    }
}
