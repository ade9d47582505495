//! API keys (`Authorization: Bearer rk_…`): shown once, never listed, the key's role enforced,
//! unknown and revoked keys refused — on a second instance too, once its cache has run out —
//! and the last use noted, on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, expect_error, expect_json},
};

contract_tests!(
    a_key_is_shown_once_and_acts_with_its_role,
    unknown_wrong_and_revoked_keys_are_refused,
    bad_fields_are_422_and_only_admins_manage_keys,
    idempotency_keys_are_scoped_to_the_api_key,
);

fn admin(app: &TestApp) -> String {
    app.token("root", &["admin"])
}

async fn create(app: &TestApp, name: &str, role: &str) -> Value {
    expect_json(
        app.client
            .post(app.url("/admin/api-keys"))
            .bearer_auth(admin(app))
            .json(&json!({ "name": name, "role": role }))
            .send()
            .await
            .expect("request"),
        StatusCode::CREATED,
    )
    .await
}

async fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> StatusCode {
    app.client
        .request(method, app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
        .status()
}

async fn list(app: &TestApp) -> String {
    app.client
        .get(app.url("/admin/api-keys"))
        .bearer_auth(admin(app))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

async fn a_key_is_shown_once_and_acts_with_its_role(app: TestApp) {
    let billing = create(&app, "billing", "service").await;
    let key = billing["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("rk_"));
    assert_eq!(billing["role"], "service");
    let secret = key.rsplit('_').next().expect("secret");
    let listed = list(&app).await;
    assert!(!listed.contains(secret), "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed["api_keys"][0]["name"], "billing");
    assert_eq!(
        listed["api_keys"][0]["prefix"],
        json!(format!("rk_{}", billing["id"].as_str().expect("id")))
    );
    assert!(listed["api_keys"][0].get("key").is_none());
    // The key's role: service routes yes, admin routes no.
    let ops = create(&app, "ops", "admin").await;
    let ops = ops["key"].as_str().expect("key");
    for (path, key, status) in [
        ("/program/", key.as_str(), StatusCode::OK),
        ("/events", &key, StatusCode::OK),
        ("/admin/callbacks", &key, StatusCode::UNAUTHORIZED),
        ("/admin/callbacks", ops, StatusCode::OK),
    ] {
        let answered = with_key(&app, Method::GET, path, key).await;
        assert_eq!(answered, status, "{path}");
    }
    // A program created with the key is the key's doing; the last use is noted.
    let created = app
        .client
        .post(app.url("/program/"))
        .bearer_auth(&key)
        .json(&json!({ "name": "By key" }))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), StatusCode::CREATED);
    let listed: Value = serde_json::from_str(&list(&app).await).expect("JSON");
    assert!(
        listed["api_keys"][0]["last_used_at"].is_string(),
        "{listed}"
    );
}

async fn unknown_wrong_and_revoked_keys_are_refused(app: TestApp) {
    let made = create(&app, "billing", "service").await;
    let key = made["key"].as_str().expect("key").to_owned();
    let id = made["id"].as_str().expect("id").to_owned();
    let (head, _) = key.rsplit_once('_').expect("a key");
    for bad in [
        format!("{head}_wrongsecretwrongsecretwrongsecre"),
        "rk_0123456789abcdef_somesecret".to_owned(),
        "rk_nonsense".to_owned(),
    ] {
        assert_eq!(
            with_key(&app, Method::GET, "/program/", &bad).await,
            StatusCode::UNAUTHORIZED,
            "{bad}"
        );
    }
    assert_eq!(
        with_key(&app, Method::GET, "/program/", &key).await,
        StatusCode::OK
    );
    let revoke = |id: String| {
        app.client
            .delete(app.url(&format!("/admin/api-keys/{id}")))
            .bearer_auth(admin(&app))
            .send()
    };
    assert_eq!(
        revoke(id.clone()).await.expect("request").status(),
        StatusCode::NO_CONTENT
    );
    // Refused at once here (this instance's cache may hold it at most 5 seconds).
    app.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(
        with_key(&app, Method::GET, "/program/", &key).await,
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        revoke(id).await.expect("request"),
        StatusCode::NOT_FOUND,
        "API key not found",
    )
    .await;
    let listed: Value = serde_json::from_str(&list(&app).await).expect("JSON");
    assert!(listed["api_keys"][0]["revoked_at"].is_string());
}

async fn bad_fields_are_422_and_only_admins_manage_keys(app: TestApp) {
    for (body, sentence) in [
        (
            json!({ "role": "service" }),
            "Field `name` is required and must have 1 to 100 characters",
        ),
        (
            json!({ "name": "x".repeat(101), "role": "service" }),
            "Field `name` is required and must have 1 to 100 characters",
        ),
        (
            json!({ "name": "billing", "role": "root" }),
            "Field `role` must be service or admin",
        ),
    ] {
        expect_error(
            app.client
                .post(app.url("/admin/api-keys"))
                .bearer_auth(admin(&app))
                .json(&body)
                .send()
                .await
                .expect("request"),
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
        )
        .await;
    }
    let service = app.service_token();
    for (method, path) in [
        (Method::GET, "/admin/api-keys"),
        (Method::POST, "/admin/api-keys"),
        (Method::DELETE, "/admin/api-keys/0123456789abcdef"),
    ] {
        let status = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&service)
            .json(&json!({ "name": "x", "role": "admin" }))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

/// Two instances on one MongoDB database: a key revoked on one is refused by the other once its
/// cache (5 seconds, on its own clock) has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_a_second_instance() {
    let url = crate::helpers::fresh_mongo_url();
    let first = TestApp::spawn_with(Backend::Mongo, &[("DATABASE_URL", url.as_str())]).await;
    let second = TestApp::spawn_with(Backend::Mongo, &[("DATABASE_URL", url.as_str())]).await;
    let made = create(&first, "billing", "service").await;
    let key = made["key"].as_str().expect("key");
    assert_eq!(
        with_key(&second, Method::GET, "/program/", key).await,
        StatusCode::OK
    );
    let revoked = first
        .client
        .delete(first.url(&format!(
            "/admin/api-keys/{}",
            made["id"].as_str().expect("id")
        )))
        .bearer_auth(admin(&first))
        .send()
        .await
        .expect("request");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    second.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(
        with_key(&second, Method::GET, "/program/", key).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Two keys with one name are two callers: the same `Idempotency-Key` from each makes two
/// programs, and a retry from either replays its own.
async fn idempotency_keys_are_scoped_to_the_api_key(app: TestApp) {
    let (first, second) = (
        create(&app, "billing", "service").await,
        create(&app, "billing", "service").await,
    );
    let post = |key: Value| {
        let client = app.client.clone();
        let url = app.url("/program/");
        async move {
            let response = client
                .post(url)
                .bearer_auth(key["key"].as_str().expect("key"))
                .header("Idempotency-Key", "make-friends-program")
                .json(&json!({ "name": "Friends", "credit_value": 1, "target_value": 10 }))
                .send()
                .await
                .expect("request");
            expect_json(response, StatusCode::CREATED).await["id"].clone()
        }
    };
    let one = post(first.clone()).await;
    let two = post(second).await;
    assert_ne!(one, two, "each key has its own idempotency keys");
    assert_eq!(
        post(first).await,
        one,
        "a retry replays the key's own answer"
    );
}
