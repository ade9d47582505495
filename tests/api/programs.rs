//! Referral programs over HTTP: create, list, read, update, delete.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{TestApp, expect_error, expect_error_status, expect_json},
};

contract_tests!(
    create_with_json_returns_the_program,
    create_with_a_form_returns_the_program,
    money_defaults_to_zero,
    money_is_exact_beyond_binary_floats,
    missing_or_blank_name_is_422,
    name_over_200_characters_is_422,
    negative_or_non_numeric_money_is_422,
    list_is_oldest_first,
    get_answers_404_for_unknown_and_malformed_ids,
    put_changes_only_the_fields_present,
    put_treats_zero_as_a_value,
    put_on_unknown_program_is_404,
    put_with_empty_name_is_422,
    delete_returns_204_with_empty_body,
    delete_unknown_program_is_404,
    every_program_route_answers_with_and_without_trailing_slash,
);

/// Expects the answer of a route that names a program that does not exist.
async fn id_not_found(response: Response) {
    expect_error(response, StatusCode::NOT_FOUND, "ID not found").await;
}
async fn create_with_json_returns_the_program(app: TestApp) {
    let response = app
        .post_json(
            "/program/",
            json!({ "name": "Friends", "credit_value": 10.5, "target_value": "100.00" }),
        )
        .await;
    let program = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(program["name"], "Friends");
    assert_eq!(program["credit_value"], json!(10.5));
    assert_eq!(program["target_value"].to_string(), "100.00");
    let id = program["id"].as_str().expect("id");
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        program["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(program["created_at"], program["updated_at"]);

    let stored = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(stored, program);
}

async fn create_with_a_form_returns_the_program(app: TestApp) {
    let response = app
        .post_form(
            "/program/",
            &[
                ("name", "Form program"),
                ("credit_value", "5.25"),
                ("target_value", "50"),
                ("ignored", "x"),
            ],
        )
        .await;
    let program = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(program["name"], "Form program");
    assert_eq!(program["credit_value"].to_string(), "5.25");
    assert_eq!(program["target_value"].to_string(), "50");
}

async fn money_defaults_to_zero(app: TestApp) {
    let program = expect_json(
        app.post_json("/program/", json!({ "name": "Zero" })).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(program["credit_value"], json!(0));
    assert_eq!(program["target_value"], json!(0));
}

async fn money_is_exact_beyond_binary_floats(app: TestApp) {
    // 20 significant digits: a binary float would round this.
    let raw = r#"{"name": "Exact", "credit_value": 12345678901234567.891, "target_value": 0.1}"#;
    let response = app
        .request(Method::POST, "/program/")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("request");
    let text = response.text().await.expect("body");
    assert!(
        text.contains(r#""credit_value":12345678901234567.891"#),
        "{text}"
    );
    assert!(text.contains(r#""target_value":0.1"#), "{text}");
    let program: Value = serde_json::from_str(&text).expect("json");
    let id = program["id"].as_str().expect("id");
    let stored = app
        .get(&format!("/program/{id}"))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        stored.contains(r#""credit_value":12345678901234567.891"#),
        "{stored}"
    );
}

async fn missing_or_blank_name_is_422(app: TestApp) {
    for body in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": null }),
    ] {
        let response = app.post_json("/program/", body.clone()).await;
        let sentence = expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(sentence.contains("name"), "{body}: {sentence}");
    }
    let response = app.post_form("/program/", &[("credit_value", "1")]).await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let programs = expect_json(app.get("/program/").await, StatusCode::OK).await;
    assert_eq!(programs, json!([]));
}

async fn name_over_200_characters_is_422(app: TestApp) {
    let long = "é".repeat(201);
    expect_error_status(
        app.post_json("/program/", json!({ "name": long })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let exactly = "é".repeat(200);
    expect_json(
        app.post_json("/program/", json!({ "name": exactly })).await,
        StatusCode::CREATED,
    )
    .await;
}

async fn negative_or_non_numeric_money_is_422(app: TestApp) {
    for value in [
        json!(-1),
        json!("-0.01"),
        json!("ten"),
        json!(true),
        json!([1]),
        json!({ "$gt": 0 }),
        json!(""),
    ] {
        let response = app
            .post_json("/program/", json!({ "name": "P", "credit_value": value }))
            .await;
        let sentence = expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(sentence.contains("credit_value"), "{value}: {sentence}");
        let response = app
            .post_json("/program/", json!({ "name": "P", "target_value": value }))
            .await;
        expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let response = app
        .post_form("/program/", &[("name", "P"), ("target_value", "-5")])
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn list_is_oldest_first(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let program = app.create_program(name, json!(1), json!(2)).await;
        ids.push(program["id"].clone());
    }
    let programs = expect_json(app.get("/program/").await, StatusCode::OK).await;
    let listed: Vec<Value> = programs
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(listed, ids);
}

async fn get_answers_404_for_unknown_and_malformed_ids(app: TestApp) {
    for id in [
        "000000000000000000000000",
        "not-an-id",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "%7B%22%24ne%22%3A1%7D",
    ] {
        id_not_found(app.get(&format!("/program/{id}/")).await).await;
    }
}

async fn put_changes_only_the_fields_present(app: TestApp) {
    let program = app.create_program("Before", json!(1.5), json!(20)).await;
    let id = program["id"].as_str().expect("id");
    let updated = expect_json(
        app.put_json(&format!("/program/{id}/"), json!({ "name": "After" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["name"], "After");
    assert_eq!(updated["credit_value"], program["credit_value"]);
    assert_eq!(updated["target_value"], program["target_value"]);
    assert_eq!(updated["created_at"], program["created_at"]);

    let response = app
        .request(Method::PUT, &format!("/program/{id}/"))
        .form(&[("target_value", "30.75")])
        .send()
        .await
        .expect("request");
    let updated = expect_json(response, StatusCode::OK).await;
    assert_eq!(updated["name"], "After");
    assert_eq!(updated["target_value"].to_string(), "30.75");
    let stored = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(stored, updated);
}

async fn put_treats_zero_as_a_value(app: TestApp) {
    let program = app.create_program("Zeroed", json!(3), json!(9)).await;
    let id = program["id"].as_str().expect("id");
    let updated = expect_json(
        app.put_json(
            &format!("/program/{id}/"),
            json!({ "credit_value": 0, "target_value": "0" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["credit_value"], json!(0));
    assert_eq!(updated["target_value"], json!(0));
}

async fn put_on_unknown_program_is_404(app: TestApp) {
    let response = app
        .put_json("/program/0123456789abcdef01234567/", json!({ "name": "x" }))
        .await;
    id_not_found(response).await;
    let response = app.put_json("/program/nope/", json!({ "name": "x" })).await;
    id_not_found(response).await;
}

async fn put_with_empty_name_is_422(app: TestApp) {
    let program = app.create_program("Named", json!(1), json!(1)).await;
    let id = program["id"].as_str().expect("id");
    let response = app
        .put_json(&format!("/program/{id}/"), json!({ "name": " " }))
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let response = app
        .put_json(&format!("/program/{id}/"), json!({ "credit_value": -3 }))
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let stored = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(stored, program);
}

async fn delete_returns_204_with_empty_body(app: TestApp) {
    let program = app.create_program("Doomed", json!(1), json!(1)).await;
    let id = program["id"].as_str().expect("id");
    let response = app.delete(&format!("/program/{id}/")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.expect("body").is_empty());
    id_not_found(app.get(&format!("/program/{id}/")).await).await;
}

async fn delete_unknown_program_is_404(app: TestApp) {
    id_not_found(app.delete("/program/0123456789abcdef01234567/").await).await;
    id_not_found(app.delete("/program/x/").await).await;
}

async fn every_program_route_answers_with_and_without_trailing_slash(app: TestApp) {
    for path in ["/program", "/program/"] {
        expect_json(
            app.post_json(path, json!({ "name": path })).await,
            StatusCode::CREATED,
        )
        .await;
        expect_json(app.get(path).await, StatusCode::OK).await;
    }
    let program = app.create_program("Slashes", json!(1), json!(1)).await;
    let id = program["id"].as_str().expect("id");
    for path in [format!("/program/{id}"), format!("/program/{id}/")] {
        expect_json(app.get(&path).await, StatusCode::OK).await;
        expect_json(
            app.put_json(&path, json!({ "name": "renamed" })).await,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(
        app.delete(&format!("/program/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    let other = app.create_program("Other", json!(1), json!(1)).await;
    let other_id = other["id"].as_str().expect("id");
    assert_eq!(
        app.delete(&format!("/program/{other_id}/")).await.status(),
        StatusCode::NO_CONTENT
    );
}
