//! `GET /program/{id}/stats/daily`: a program's activity per UTC day, every day present, on
//! both backends.

use referral_api::clock::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{AUTH_ERROR, TestApp, expect_error, expect_json},
    referrals::call,
};

contract_tests!(
    days_count_registrations_acquisitions_and_reversals,
    unknown_programs_bad_windows_and_end_users_are_refused,
);

async fn daily(app: &TestApp, program: &str, query: &str) -> Vec<Value> {
    let page = expect_json(
        app.get(&format!("/program/{program}/stats/daily{query}"))
            .await,
        StatusCode::OK,
    )
    .await;
    page["days"].as_array().cloned().expect("days")
}

async fn days_count_registrations_acquisitions_and_reversals(app: TestApp) {
    let program = app
        .create_program("Friends", json!(5), json!("99.90"))
        .await;
    let id = program["id"].as_str().expect("id");
    let other = app.create_program("Other", json!(1), json!(1)).await;
    app.create_users(&["ana"]).await;
    for user in ["bo", "cy"] {
        assert_eq!(
            app.register("ana", user).await.status(),
            StatusCode::CREATED
        );
    }
    for (user, total) in [("bo", "100"), ("cy", "120.50")] {
        assert_eq!(
            app.invoice(user, json!(total)).await.status(),
            StatusCode::OK
        );
    }
    let admin = format!("Bearer {}", app.token("root", &["admin"]));
    let reversed = call(
        &app,
        Method::POST,
        "/admin/credits/cy/reverse",
        &admin,
        Some(json!({ "reason": "refund" })),
    )
    .await;
    assert_eq!(reversed.status(), StatusCode::OK);

    let today = app.clock.now().date_naive();
    let days = daily(&app, id, "?days=3").await;
    assert_eq!(days.len(), 3);
    let dates: Vec<&str> = days
        .iter()
        .map(|d| d["date"].as_str().expect("date"))
        .collect();
    let expected: Vec<String> = (0..3)
        .rev()
        .map(|back| (today - chrono::Days::new(back)).to_string())
        .collect();
    assert_eq!(dates, expected);
    let zero = json!({ "date": dates[0], "registrations": 0, "acquired": 0, "reversed": 0,
                       "acquired_total": 0, "reversed_total": 0 });
    assert_eq!(days[0], zero);
    assert_eq!(days[2]["registrations"], json!(2));
    assert_eq!(days[2]["acquired"], json!(2));
    assert_eq!(days[2]["reversed"], json!(1));
    // Money exact, digit for digit.
    assert_eq!(days[2]["acquired_total"].to_string(), "199.80");
    assert_eq!(days[2]["reversed_total"].to_string(), "99.90");
    assert_eq!(daily(&app, id, "").await.len(), 30, "30 days by default");
    let untouched = daily(&app, other["id"].as_str().expect("id"), "?days=1").await;
    assert_eq!(untouched[0]["registrations"], json!(0));

    // A day later, the activity is yesterday's.
    app.clock.advance(chrono::Duration::days(1));
    let days = daily(&app, id, "?days=2").await;
    assert_eq!(days[0]["date"], json!(today.to_string()));
    assert_eq!(days[0]["registrations"], json!(2));
    assert_eq!(days[1]["registrations"], json!(0));
}

async fn unknown_programs_bad_windows_and_end_users_are_refused(app: TestApp) {
    let program = app.create_program("Friends", json!(5), json!(100)).await;
    let id = program["id"].as_str().expect("id");
    expect_error(
        app.get("/program/0123456789abcdef01234567/stats/daily")
            .await,
        StatusCode::NOT_FOUND,
        "ID not found",
    )
    .await;
    for bad in ["0", "366", "many", "-1"] {
        let response = app
            .get(&format!("/program/{id}/stats/daily?days={bad}"))
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(daily(&app, id, "?days=365").await.len(), 365);
    let end_user = format!("Bearer {}", app.token("someone", &[]));
    let response = call(
        &app,
        Method::GET,
        &format!("/program/{id}/stats/daily"),
        &end_user,
        None,
    )
    .await;
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}
