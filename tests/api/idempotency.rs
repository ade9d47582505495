//! `Idempotency-Key` on writes, on both backends.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use referral_api::idempotency::{
    IdempotencyStore,
    middleware::RETENTION,
    store::{Begun, Claim, StoredResponse},
};

use crate::{
    contract_tests,
    helpers::{TestApp, expect_error, expect_json},
};

contract_tests!(
    a_retried_register_gets_its_first_answer_and_writes_nothing,
    a_key_reused_for_another_request_is_refused,
    concurrent_requests_with_one_key_run_once,
    keys_belong_to_their_caller,
    a_replay_survives_a_restart,
    bad_keys_and_reads_are_handled,
    a_dead_request_s_claim_lapses,
    an_oversized_body_with_a_key_is_413_and_holds_no_key,
);

async fn send(app: &TestApp, method: Method, path: &str, key: &str, body: &Value) -> Response {
    app.request(method, path)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotency-replayed")
        .is_some_and(|v| v == "true")
}

async fn pending_callbacks(app: &TestApp) -> usize {
    let response = app
        .client
        .get(app.url("/admin/callbacks?limit=100"))
        .header(
            "Authorization",
            format!("Bearer {}", app.token("root", &["admin"])),
        )
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await["callbacks"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn a_retried_register_gets_its_first_answer_and_writes_nothing(app: TestApp) {
    app.create_program("P", json!(10), json!(100)).await;
    app.create_users(&["ana"]).await;
    let body = json!({ "user_indicator": "ana", "user_indicated": "bo" });
    let first = send(&app, Method::POST, "/register/", "register-bo-1", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));
    let first_body = first.bytes().await.expect("body");

    for _ in 0..3 {
        let again = send(&app, Method::POST, "/register/", "register-bo-1", &body).await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert!(replayed(&again));
        assert_eq!(
            again.headers()["content-type"],
            "application/json",
            "replayed with its content type"
        );
        assert_eq!(again.bytes().await.expect("body"), first_body);
    }
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    assert_eq!(statement["indicated_users"], 1);
    assert_eq!(pending_callbacks(&app).await, 1, "one signup_credit event");
    // Without the key the seed's answer stands.
    expect_error(
        app.register("ana", "bo").await,
        StatusCode::CONFLICT,
        "User already registered",
    )
    .await;
    // Error answers are kept too: the same key replays this 409.
    let conflict = send(&app, Method::POST, "/register/", "register-bo-2", &body).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let again = send(&app, Method::POST, "/register/", "register-bo-2", &body).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(replayed(&again));
}

async fn a_key_reused_for_another_request_is_refused(app: TestApp) {
    app.create_users(&["ana"]).await;
    let first = send(
        &app,
        Method::PUT,
        "/invoice/user/ana/",
        "k",
        &json!({ "total_amount_paid": 10 }),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let reused = "Idempotency-Key reused with a different request";
    for (method, path, body) in [
        (
            Method::PUT,
            "/invoice/user/ana/",
            json!({ "total_amount_paid": 11 }),
        ),
        (
            Method::PUT,
            "/invoice/user/ana",
            json!({ "total_amount_paid": 10 }),
        ),
        (
            Method::POST,
            "/invoice/user/ana/",
            json!({ "total_amount_paid": 10 }),
        ),
    ] {
        expect_error(
            send(&app, method, path, "k", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            reused,
        )
        .await;
    }
}

async fn concurrent_requests_with_one_key_run_once(app: TestApp) {
    app.create_program("P", json!(10), json!(100)).await;
    app.create_users(&["ana"]).await;
    let body = json!({ "user_indicator": "ana", "user_indicated": "cy" });
    let responses = futures_util::future::join_all(
        (0..12).map(|_| send(&app, Method::POST, "/register/", "same-key", &body)),
    )
    .await;
    let mut executed = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED if replayed(&response) => {}
            StatusCode::CREATED => executed += 1,
            StatusCode::CONFLICT => {
                let error = response.json::<Value>().await.expect("json");
                assert_eq!(
                    error["error"],
                    "A request with this Idempotency-Key is in progress"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(executed, 1, "one execution");
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    assert_eq!(statement["indicated_users"], 1);
}

async fn keys_belong_to_their_caller(app: TestApp) {
    app.create_users(&["ana"]).await;
    let as_caller = |sub: &str, indicated: &str| {
        app.client
            .post(app.url("/register/"))
            .header(
                "Authorization",
                format!("Bearer {}", app.token(sub, &["service"])),
            )
            .header("Idempotency-Key", "shared-key")
            .json(&json!({ "user_indicator": "ana", "user_indicated": indicated }))
            .send()
    };
    app.create_program("P", json!(1), json!(2)).await;
    let billing = as_caller("billing", "dee").await.expect("request");
    let crm = as_caller("crm", "eve").await.expect("request");
    assert_eq!(billing.status(), StatusCode::CREATED);
    assert_eq!(crm.status(), StatusCode::CREATED);
    assert!(!replayed(&crm));
}

async fn a_replay_survives_a_restart(app: TestApp) {
    app.create_users(&["ana"]).await;
    let body = json!({ "user_hashes": ["fay"] });
    let first = send(&app, Method::POST, "/users/", "users-fay", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_body = first.bytes().await.expect("body");
    let app = app.restart().await;
    let again = send(&app, Method::POST, "/users/", "users-fay", &body).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(replayed(&again));
    assert_eq!(again.bytes().await.expect("body"), first_body);
}

async fn bad_keys_and_reads_are_handled(app: TestApp) {
    let body = json!({ "user_hashes": ["gus"] });
    for key in ["", &"k".repeat(256)] {
        let response = send(&app, Method::POST, "/users/", key, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key:?}");
    }
    // Reads ignore the header.
    let read = app
        .request(Method::GET, "/program/")
        .header("Idempotency-Key", "read")
        .send()
        .await
        .expect("request");
    assert_eq!(read.status(), StatusCode::OK);
    assert!(!replayed(&read));
}

/// A claim whose request died (never completed nor released) lapses after its lock.
async fn a_dead_request_s_claim_lapses(app: TestApp) {
    let stores = app.stores.clone();
    let now = chrono::Utc::now();
    let claim_at = |owner: &str, at: chrono::DateTime<chrono::Utc>| Claim {
        id: "scope:key".to_owned(),
        fingerprint: "f".to_owned(),
        owner: owner.to_owned(),
        locked_until: at + chrono::Duration::seconds(60),
        expires_at: at + RETENTION,
    };
    let store: &dyn IdempotencyStore = stores.idempotency.as_ref();
    // What `owner`'s request starting at `at` gets.
    let begin = |owner: &'static str, at| async move {
        store.begin(&claim_at(owner, at), at).await.expect("begin")
    };
    assert_eq!(begin("a", now).await, Begun::Started);
    assert_eq!(begin("b", now).await, Begun::InProgress);
    let later = now + chrono::Duration::seconds(61);
    assert_eq!(begin("b", later).await, Begun::Started);
    // The dead request cannot complete the key it lost.
    let late = StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: b"late".to_vec(),
    };
    let lost = claim_at("a", now);
    store.complete(&lost, &late).await.expect("complete");
    assert_eq!(begin("c", later).await, Begun::InProgress);
    // And after 24 hours the record is gone.
    let tomorrow = later + RETENTION + chrono::Duration::seconds(1);
    assert_eq!(begin("d", tomorrow).await, Begun::Started);
}

/// The middleware reads the body before any handler: an oversized one is drained and answered
/// 413 with our JSON body (not a reset), and leaves the key free for a corrected request.
async fn an_oversized_body_with_a_key_is_413_and_holds_no_key(app: TestApp) {
    for size in [70 * 1024, 900 * 1024] {
        let response = send(
            &app,
            Method::POST,
            "/program/",
            "big-1",
            &json!({ "name": "x".repeat(size) }),
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = response.json().await.expect("JSON error body");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("64 KiB")),
            "{body}"
        );
    }
    let response = send(
        &app,
        Method::POST,
        "/program/",
        "big-1",
        &json!({ "name": "P" }),
    )
    .await;
    expect_json(response, StatusCode::CREATED).await;
}
