//! Importing users and referrers from the original's files.

use std::io::Cursor;

use referral_api::indication::import::{ImportReport, import_users};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, expect_json, run_import},
};

contract_tests!(
    import_reports_bad_lines_and_is_idempotent,
    import_of_ten_thousand_users_creates_them_all
);

const USERS_TXT: &str =
    "alice|Alice|alice@example.com\n\n   \n|no hash\nbob\ncarol|x|y|z\nalice|again\n";

async fn import(app: &TestApp, text: String) -> ImportReport {
    import_users(
        Cursor::new(text),
        app.stores.programs.as_ref(),
        app.stores.indication.as_ref(),
    )
    .await
    .expect("import")
}

async fn import_reports_bad_lines_and_is_idempotent(app: TestApp) {
    let program = app.create_program("Default", json!(1), json!(2)).await;
    let long = "h".repeat(129);
    let text = format!("{USERS_TXT}{long}|too long\n");
    let first = import(&app, text.clone()).await;
    // alice appears twice: one user, counted once.
    assert_eq!((first.created, first.existing), (3, 0));
    let lines: Vec<usize> = first.skipped.iter().map(|(line, _)| *line).collect();
    assert_eq!(
        lines,
        vec![2, 3, 4, 8],
        "blank lines 2 and 3, no hash on 4, too long on 8"
    );

    let second = import(&app, text).await;
    assert_eq!((second.created, second.existing), (0, 3));

    let statement = expect_json(app.get("/statement/carol/").await, StatusCode::OK).await;
    assert_eq!(statement["referral_program"], program);
    expect_json(app.register("alice", "dave").await, StatusCode::CREATED).await;
}

async fn import_of_ten_thousand_users_creates_them_all(app: TestApp) {
    app.create_program("Default", json!(1), json!(2)).await;
    let text: String = (0..10_000)
        .map(|i| format!("user-{i:05}|Name {i}\n"))
        .collect();
    let report = import(&app, text).await;
    assert_eq!(
        (report.created, report.existing, report.skipped.len()),
        (10_000, 0, 0)
    );
    expect_json(
        app.register("user-09999", "newcomer").await,
        StatusCode::CREATED,
    )
    .await;
    let again = app.create_users(&["user-00000", "user-05000"]).await;
    assert_eq!(again["existing"], json!(["user-00000", "user-05000"]));
}

/// The command of the binary, on an embedded store that no service holds open.
#[tokio::test]
async fn import_users_command_reports_skipped_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("users.txt");
    std::fs::write(&file, USERS_TXT).expect("write");
    let data = dir.path().join("data");
    let (stdout, stderr) = run_import("import-users", &file, &data);
    assert!(
        stdout.contains("imported 3 new users, 0 already existed, 3 lines skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains("users.txt:2: skipped: blank line"),
        "{stderr}"
    );
    assert!(
        stderr.contains("users.txt:4: skipped: the first field (the user hash) is empty"),
        "{stderr}"
    );
    let (again, _) = run_import("import-users", &file, &data);
    assert!(again.contains("imported 0 new users, 3 already existed"));

    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("DATA_DIR", data.to_str().expect("utf-8"))],
    )
    .await;
    expect_json(app.get("/statement/bob/").await, StatusCode::OK).await;
}
