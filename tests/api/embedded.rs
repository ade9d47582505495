//! What only the embedded store has to prove: its data outlives the process.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, expect_json};

#[tokio::test]
async fn a_restart_keeps_programs_and_the_generated_key() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("JWT_SECRET", "")]).await;
    let key = std::fs::read_to_string(app.data_path().join("jwt-secret")).expect("generated key");
    let program = app
        .create_program("Durable", json!("0.10"), json!(99.99))
        .await;
    let id = program["id"].as_str().expect("id").to_owned();

    let app = app.restart().await;
    let after = std::fs::read_to_string(app.data_path().join("jwt-secret")).expect("generated key");
    assert_eq!(after, key, "the generated key must survive a restart");
    let stored = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(stored, program);
}
