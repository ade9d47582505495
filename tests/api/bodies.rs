//! Bad bodies get clear 4xx answers: broken JSON, wrong types, other content types, size.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    contract_tests,
    helpers::{TestApp, expect_error_status, expect_json},
};

contract_tests!(
    broken_json_is_400,
    a_content_type_other_than_json_or_form_is_415,
    a_body_over_64_kib_is_413,
    a_body_that_is_not_an_object_is_422,
    injection_shaped_objects_are_422_and_store_nothing,
    an_empty_body_without_content_type_reaches_the_field_checks,
    json_with_a_charset_is_json,
);

async fn send_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: &'static str,
) -> reqwest::Response {
    let mut request = app.request(Method::POST, "/program/");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body).send().await.expect("request")
}

async fn broken_json_is_400(app: TestApp) {
    for body in [
        r#"{"name": "x""#,
        "{name: 'x'}",
        "",
        "{\"name\": \"x\"} trailing",
    ] {
        let sentence = expect_error_status(
            send_raw(&app, Some("application/json"), body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(sentence.starts_with("Malformed JSON body"), "{sentence}");
    }
}

async fn a_content_type_other_than_json_or_form_is_415(app: TestApp) {
    for content_type in [
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let response = send_raw(&app, content_type, r#"{"name": "x"}"#).await;
        expect_error_status(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
}

async fn a_body_over_64_kib_is_413(app: TestApp) {
    let name = "x".repeat(70 * 1024);
    let response = app.post_json("/program/", json!({ "name": name })).await;
    let sentence = expect_error_status(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(sentence.contains("64 KiB"), "{sentence}");
    // Well over the limit but under the 1 MiB guard: the client still gets to read the 413.
    let response = app
        .post_json("/program/", json!({ "name": "z".repeat(900 * 1024) }))
        .await;
    expect_error_status(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let padding = "y".repeat(65 * 1024);
    let response = app
        .post_form("/program/", &[("name", "ok"), ("padding", &padding)])
        .await;
    expect_error_status(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Just under the limit is fine (and the name length rule answers instead).
    let response = app
        .post_json("/program/", json!({ "name": "x".repeat(60 * 1024) }))
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn a_body_that_is_not_an_object_is_422(app: TestApp) {
    for body in ["[]", "null", "42", "\"name\"", "[{\"name\": \"x\"}]"] {
        expect_error_status(
            send_raw(&app, Some("application/json"), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
}

async fn injection_shaped_objects_are_422_and_store_nothing(app: TestApp) {
    for body in [
        json!({ "name": { "$ne": null } }),
        json!({ "name": { "$where": "sleep(1000)" } }),
        json!({ "name": ["a", "b"] }),
        json!({ "name": "ok", "credit_value": { "$gt": "" } }),
        json!({ "name": 12 }),
    ] {
        let response = app.post_json("/program/", body.clone()).await;
        expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let program = app.create_program("Real", json!(1), json!(1)).await;
    let id = program["id"].as_str().expect("id");
    let response = app
        .put_json(
            &format!("/program/{id}/"),
            json!({ "name": { "$set": "x" } }),
        )
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let programs = expect_json(app.get("/program/").await, StatusCode::OK).await;
    assert_eq!(programs, json!([program]));
}

async fn an_empty_body_without_content_type_reaches_the_field_checks(app: TestApp) {
    let sentence = expect_error_status(
        send_raw(&app, None, "").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(sentence.contains("name"), "{sentence}");
}

async fn json_with_a_charset_is_json(app: TestApp) {
    let response = send_raw(
        &app,
        Some("application/json; charset=utf-8"),
        r#"{"name": "charset"}"#,
    )
    .await;
    expect_json(response, StatusCode::CREATED).await;
}
