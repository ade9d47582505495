//! Exports for finance: the ledger and the credits as CSV — columns, exact money, quoting of
//! awkward values, filters, several pages streamed, 401 and 422 — on both backends.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    contract_tests,
    helpers::{TestApp, expect_json},
};

contract_tests!(
    the_ledger_export_matches_the_ledger,
    the_credits_export_has_a_row_per_indicated_user,
    exports_are_for_admins_and_refuse_bad_filters,
    every_export_sends_the_columns_its_description_names,
);

async fn export(app: &TestApp, path: &str) -> Vec<csv::StringRecord> {
    let response = app.as_admin(Method::GET, path, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let text = response.text().await.expect("body");
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|record| record.expect("a CSV record"))
        .collect()
}

/// The first line of an export: its column names.
async fn header_line(app: &TestApp, path: &str) -> String {
    let text = app
        .as_admin(Method::GET, path, None)
        .await
        .text()
        .await
        .expect("body");
    text.lines().next().unwrap_or_default().to_owned()
}

/// A program (credit 0.10, target 100, 10-day clawback) and `count` users indicated by an
/// awkwardly named indicator; returns the program's id.
async fn setup(app: &TestApp, count: usize) -> String {
    let program = expect_json(
        app.post_json(
            "/program/",
            json!({ "name": "Export", "credit_value": "0.10", "target_value": "100.005",
                    "clawback_days": 10 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = program["id"].as_str().expect("id").to_owned();
    app.create_users(&["ana, \"the\" first"]).await;
    for i in 0..count {
        let response = app
            .post_json(
                "/register/",
                json!({ "user_indicator": "ana, \"the\" first", "user_indicated": format!("u{i:04}"),
                        "referral_program_id": id }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    id
}

async fn the_ledger_export_matches_the_ledger(app: TestApp) {
    let program = setup(&app, 210).await;
    app.invoice("u0000", json!(200)).await;
    app.invoice("u0000", json!(0)).await;
    let other = app.create_program("Other", json!(1), json!(2)).await;
    assert_eq!(
        header_line(&app, "/admin/export/ledger.csv").await,
        "at,operation,program_id,user_indicator,user_indicated,amount,event_id"
    );
    let rows = export(&app, "/admin/export/ledger.csv").await;
    let ledger = app.ledger().await;
    assert_eq!(rows.len(), ledger.len());
    assert_eq!(rows.len(), 210 * 3 + 2);
    let reversed: Vec<&csv::StringRecord> =
        rows.iter().filter(|r| &r[1] == "credit_reversed").collect();
    assert_eq!(reversed.len(), 1);
    assert_eq!(&reversed[0][5], "-100.005");
    assert_eq!(&reversed[0][3], "ana, \"the\" first");
    assert!(!reversed[0][6].is_empty(), "the reversal's callback id");
    let signup = rows
        .iter()
        .find(|r| &r[1] == "signup_credit")
        .expect("a signup credit");
    assert_eq!(&signup[5], "0.10");
    assert_eq!(&signup[2], program.as_str());
    // Filters: another program has nothing; a window after everything has nothing.
    let other = other["id"].as_str().expect("id");
    assert!(
        export(
            &app,
            &format!("/admin/export/ledger.csv?program_id={other}")
        )
        .await
        .is_empty()
    );
    assert_eq!(
        export(
            &app,
            &format!("/admin/export/ledger.csv?program_id={program}")
        )
        .await
        .len(),
        rows.len()
    );
    assert!(
        export(&app, "/admin/export/ledger.csv?since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    assert_eq!(
        export(&app, "/admin/export/ledger.csv?until=2999-01-01T00:00:00Z")
            .await
            .len(),
        rows.len()
    );
}

async fn the_credits_export_has_a_row_per_indicated_user(app: TestApp) {
    setup(&app, 520).await;
    app.invoice("u0001", json!(100.005)).await;
    let rows = export(&app, "/admin/export/credits.csv").await;
    assert_eq!(rows.len(), 520);
    assert_eq!(&rows[0][0], "u0000");
    assert_eq!(&rows[519][0], "u0519");
    let acquired = rows.iter().find(|r| &r[0] == "u0001").expect("u0001");
    assert_eq!(&acquired[3], "acquired");
    assert_eq!(&acquired[4], "100.005");
    assert_eq!(&acquired[1], "ana, \"the\" first");
    assert!(!acquired[7].is_empty(), "acquired_at");
    assert_eq!(&rows[2][3], "pending");
    let header = header_line(&app, "/admin/export/credits.csv").await;
    assert_eq!(header.split(',').count(), 13);
}

async fn exports_are_for_admins_and_refuse_bad_filters(app: TestApp) {
    for path in ["/admin/export/ledger.csv", "/admin/export/credits.csv"] {
        assert_eq!(app.get(path).await.status(), StatusCode::UNAUTHORIZED);
    }
    for query in [
        "/admin/export/ledger.csv?since=yesterday",
        "/admin/export/ledger.csv?program_id=123",
        "/admin/export/credits.csv?program_id=zz",
    ] {
        let status = app.as_admin(Method::GET, query, None).await.status();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
}

/// The API description names each CSV export's columns (its 200 answer's description): they are
/// the header line the export sends.
async fn every_export_sends_the_columns_its_description_names(app: TestApp) {
    let description = expect_json(
        app.without_token(Method::GET, "/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    for path in [
        "/admin/export/ledger.csv",
        "/admin/export/credits.csv",
        "/admin/audit.csv",
    ] {
        let documented = description["paths"][path]["get"]["responses"]["200"]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} documents its 200 answer"));
        assert_eq!(
            documented.trim_matches('`'),
            header_line(&app, path).await,
            "{path}"
        );
    }
}
