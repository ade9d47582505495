//! Holding periods and caps: credit states over HTTP, the release of held credits on a
//! clock the test moves, caps under concurrent crossings, and program figures that agree with
//! the ledger, on both backends.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use referral_api::{
    callbacks::CreditEventType,
    clock::Clock,
    indication::{LedgerOperation, service::release_due},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, answering, expect_error, expect_json, replay},
};

contract_tests!(
    programs_take_a_hold_and_a_cap_and_refuse_bad_ones,
    a_crossing_with_a_hold_is_held_without_a_callback,
    a_drop_below_the_credit_while_held_cancels_it,
    a_total_below_at_release_time_does_not_acquire,
    twenty_crossings_at_once_with_a_cap_of_five_credit_five,
    a_cancelled_hold_frees_its_place_under_the_cap,
    stats_and_the_indicated_list_agree_with_the_ledger,
    stats_of_an_unknown_program_is_404,
    ;
    a_due_release_acquires_once_with_one_callback,
);

/// A program with these rules (credit 5, target 100), an indicator and `indicated` users it
/// registered; returns the program's id.
async fn program_with(app: &TestApp, rules: Value, indicated: &[&str]) -> String {
    let id = app.program_with_rules("Held", rules).await;
    app.create_users(&["ana"]).await;
    app.registered_in("ana", indicated, &id).await;
    id
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// Runs one release pass now, on the app's clock.
async fn release(app: &TestApp) -> usize {
    release_due(
        app.stores.indication.as_ref(),
        app.stores.programs.as_ref(),
        app.clock.now(),
    )
    .await
    .expect("release")
    .acquired
}

async fn programs_take_a_hold_and_a_cap_and_refuse_bad_ones(app: TestApp) {
    let plain = app.create_program("Plain", json!(1), json!(2)).await;
    assert_eq!(plain["hold_days"], json!(0));
    assert_eq!(plain["max_credits_per_indicator"], Value::Null);
    let held = expect_json(
        app.post_json(
            "/program/",
            json!({ "name": "Held", "hold_days": 7, "max_credits_per_indicator": 3 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(held["hold_days"], json!(7));
    assert_eq!(held["max_credits_per_indicator"], json!(3));
    let id = held["id"].as_str().expect("id");
    // A form carries text; an empty value clears the cap; absent fields stay.
    let changed = expect_json(
        app.request(reqwest::Method::PUT, &format!("/program/{id}/"))
            .form(&[("hold_days", "30"), ("max_credits_per_indicator", "")])
            .send()
            .await
            .expect("request"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["hold_days"], json!(30));
    assert_eq!(changed["max_credits_per_indicator"], Value::Null);
    let changed = expect_json(
        app.put_json(
            &format!("/program/{id}/"),
            json!({ "max_credits_per_indicator": 2 }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["hold_days"], json!(30));
    assert_eq!(changed["max_credits_per_indicator"], json!(2));
    let read = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(read, changed);
    let hold = "Field `hold_days` must be a whole number from 0 to 365";
    let cap = "Field `max_credits_per_indicator` must be a whole number of at least 1, or null";
    for (body, sentence) in [
        (json!({ "name": "x", "hold_days": 366 }), hold),
        (json!({ "name": "x", "hold_days": -1 }), hold),
        (json!({ "name": "x", "hold_days": 1.5 }), hold),
        (json!({ "name": "x", "hold_days": "a week" }), hold),
        (json!({ "name": "x", "max_credits_per_indicator": 0 }), cap),
        (
            json!({ "name": "x", "max_credits_per_indicator": "many" }),
            cap,
        ),
        (
            json!({ "name": "x", "max_credits_per_indicator": 5_000_000_000_u64 }),
            cap,
        ),
    ] {
        expect_error(
            app.post_json("/program/", body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
        )
        .await;
    }
    expect_error(
        app.put_json(&format!("/program/{id}/"), json!({ "hold_days": 400 }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        hold,
    )
    .await;
}

async fn a_crossing_with_a_hold_is_held_without_a_callback(app: TestApp) {
    program_with(&app, json!({ "hold_days": 7 }), &["bo"]).await;
    let before = referral_api::clock::now(); // to the millisecond, as stored
    let body = app.paid("bo", json!(150)).await;
    assert_eq!(body["acquired_credit"], json!(0));
    assert_eq!(body["credit_status"], "held");
    let release_at = time(&body["release_at"]);
    let week = chrono::Duration::days(7);
    assert!(release_at >= before + week && release_at <= Utc::now() + week);
    // Paying more while held changes nothing.
    let again = app.paid("bo", json!(200)).await;
    assert_eq!(again, body);
    assert_eq!(app.entries(LedgerOperation::CreditHeld).await.len(), 1);
    assert_eq!(app.entries(LedgerOperation::AcquiredCredit).await.len(), 0);
    assert!(app.events(CreditEventType::AcquiredCredit).await.is_empty());
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    assert_eq!(statement["held_credit"], json!(100));
    assert_eq!(statement["potencial_credit"], json!(0));
    assert_eq!(statement["acquired_credit"], json!(0));
    // Not yet due: a release pass leaves it held.
    assert_eq!(release(&app).await, 0);
    assert_eq!(app.paid("bo", json!(200)).await["credit_status"], "held");
}

async fn a_drop_below_the_credit_while_held_cancels_it(app: TestApp) {
    program_with(&app, json!({ "hold_days": 7 }), &["bo"]).await;
    let first = app.paid("bo", json!(100)).await;
    assert_eq!(first["credit_status"], "held");
    // A refund brings the total below the credit.
    let body = app.paid("bo", json!(60)).await;
    assert_eq!(
        body,
        json!({ "acquired_credit": 0, "credit_status": "pending" })
    );
    let cancelled = app.only_entry(LedgerOperation::CreditCancelled).await;
    assert_eq!(cancelled.amount.to_string(), "100");
    assert_eq!(cancelled.user_indicator.as_deref(), Some("ana"));
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    assert_eq!(statement["held_credit"], json!(0));
    assert_eq!(statement["potencial_credit"], json!(100));
    // A later crossing holds it again, from then.
    app.clock.advance(chrono::Duration::days(3));
    let again = app.paid("bo", json!(120)).await;
    assert_eq!(again["credit_status"], "held");
    assert!(time(&again["release_at"]) > time(&first["release_at"]));
    assert_eq!(app.entries(LedgerOperation::CreditHeld).await.len(), 2);
}

async fn a_total_below_at_release_time_does_not_acquire(app: TestApp) {
    program_with(&app, json!({ "hold_days": 7 }), &["bo", "cy"]).await;
    app.paid("bo", json!(100)).await;
    app.paid("cy", json!(100)).await;
    app.paid("cy", json!(99.99)).await;
    app.clock.advance(chrono::Duration::days(8));
    assert_eq!(release(&app).await, 1);
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "acquired"
    );
    assert_eq!(
        app.paid("cy", json!(99.99)).await["credit_status"],
        "pending"
    );
    let acquired: Vec<String> = app
        .entries(LedgerOperation::AcquiredCredit)
        .await
        .into_iter()
        .map(|e| e.user_indicated)
        .collect();
    assert_eq!(acquired, ["bo"]);
}

async fn twenty_crossings_at_once_with_a_cap_of_five_credit_five(app: TestApp) {
    let hashes: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let program = program_with(&app, json!({ "max_credits_per_indicator": 5 }), &refs).await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = hashes
        .iter()
        .map(|hash| {
            let (app, hash) = (app.clone(), hash.clone());
            tokio::spawn(async move { app.paid(&hash, json!(100)).await })
        })
        .collect();
    let mut statuses = HashMap::<String, usize>::new();
    for task in tasks {
        let body = task.await.expect("task");
        *statuses
            .entry(body["credit_status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert_eq!(statuses.get("acquired"), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get("capped"), Some(&15), "{statuses:?}");
    assert_eq!(app.entries(LedgerOperation::AcquiredCredit).await.len(), 5);
    let capped = app.entries(LedgerOperation::CreditCapped).await;
    assert_eq!(capped.len(), 15);
    assert!(capped.iter().all(|e| e.amount.to_string() == "0"));
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 5);
    let figures = app.stats(&program).await;
    assert_eq!(
        figures["credits"],
        json!({ "pending": 0, "held": 0, "in_review": 0, "acquired": 5, "capped": 15,
                "rejected": 0, "reversed": 0 })
    );
    assert_eq!(figures["acquired_credit_total"], json!(500));
    // Capped is final: paying more changes nothing.
    let capped_user = capped[0].user_indicated.clone();
    let body = app.paid(&capped_user, json!(1000)).await;
    assert_eq!(
        body,
        json!({ "acquired_credit": 0, "credit_status": "capped" })
    );
}

async fn a_cancelled_hold_frees_its_place_under_the_cap(app: TestApp) {
    program_with(
        &app,
        json!({ "hold_days": 7, "max_credits_per_indicator": 1 }),
        &["bo", "cy", "di"],
    )
    .await;
    assert_eq!(app.paid("bo", json!(100)).await["credit_status"], "held");
    assert_eq!(app.paid("cy", json!(100)).await["credit_status"], "capped");
    assert_eq!(app.paid("bo", json!(0)).await["credit_status"], "pending");
    assert_eq!(app.paid("di", json!(100)).await["credit_status"], "held");
    // bo crossing again meets a full cap.
    assert_eq!(app.paid("bo", json!(100)).await["credit_status"], "capped");
}

async fn stats_and_the_indicated_list_agree_with_the_ledger(app: TestApp) {
    let users = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];
    let program = program_with(
        &app,
        json!({ "hold_days": 7, "max_credits_per_indicator": 3 }),
        &users,
    )
    .await;
    app.create_users(&["imported"]).await;
    app.paid("a1", json!(100)).await; // held, then released
    app.paid("a2", json!(250.5)).await; // held, then released
    app.paid("a3", json!(100)).await; // held, cancelled, stays pending
    app.paid("a3", json!(10)).await;
    app.clock.advance(chrono::Duration::days(8));
    assert_eq!(release(&app).await, 2);
    app.paid("a4", json!(100)).await; // held (third place)
    app.paid("a5", json!(100)).await; // capped
    app.paid("a6", json!(40)).await; // pending
    let ledger = app.ledger().await;
    let states = replay(&ledger);
    let count = |state: &str| states.values().filter(|s| **s == state).count();
    let figures = app.stats(&program).await;
    assert_eq!(
        figures["credits"],
        json!({
            "pending": count("pending"), "held": count("held"), "in_review": 0,
            "acquired": count("acquired"), "capped": count("capped"),
            "rejected": 0, "reversed": 0,
        })
    );
    assert_eq!(
        figures["credits"],
        json!({ "pending": 3, "held": 1, "in_review": 0, "acquired": 2, "capped": 1,
                "rejected": 0, "reversed": 0 })
    );
    let sum = |operation: LedgerOperation| {
        ledger
            .iter()
            .filter(|e| e.operation == operation)
            .fold(rust_decimal::Decimal::ZERO, |sum, e| {
                sum + e.amount.amount()
            })
    };
    let money = |value: &Value| value.to_string().parse::<rust_decimal::Decimal>().ok();
    assert_eq!(
        money(&figures["signup_credit_total"]),
        Some(sum(LedgerOperation::SignupCredit))
    );
    assert_eq!(
        money(&figures["acquired_credit_total"]),
        Some(sum(LedgerOperation::AcquiredCredit))
    );
    assert_eq!(figures["acquired_credit_total"], json!(200));
    assert_eq!(figures["held_credit_total"], json!(100));
    assert_eq!(figures["signup_credit_total"], json!(35));
    // ana and imported joined it too: it is the default (oldest) program.
    assert_eq!(figures["users"], json!(9));
    assert_eq!(figures["indicated_users"], json!(7));
    // The indicated list explains each credit as the ledger does.
    let list = expect_json(
        app.get("/statement/ana/indicated/?limit=4").await,
        StatusCode::OK,
    )
    .await;
    let next = list["next"].as_str().expect("a second page").to_owned();
    let rest = expect_json(
        app.get(&format!("/statement/ana/indicated/?limit=4&after={next}"))
            .await,
        StatusCode::OK,
    )
    .await;
    let lines: Vec<&Value> = list["indicated"]
        .as_array()
        .into_iter()
        .chain(rest["indicated"].as_array())
        .flatten()
        .collect();
    assert_eq!(lines.len(), users.len());
    for line in lines {
        let hash = line["user_hash"].as_str().expect("hash");
        assert_eq!(line["credit_status"], states[hash], "{line}");
        match states[hash] {
            "held" => {
                assert!(line["release_at"].is_string(), "{line}");
                assert_eq!(line["credit_amount"], json!(100));
            }
            "acquired" => {
                assert!(line["acquired_at"].is_string(), "{line}");
                assert!(line["release_at"].is_null(), "{line}");
            }
            "capped" => assert_eq!(line["credit_amount"], json!(0)),
            _ => assert!(line["release_at"].is_null() && line["acquired_at"].is_null()),
        }
    }
    // The figures survive a crash; the restarted app's own worker, on the clock moved 7 more
    // days, then releases a4's hold (due 7 days after its crossing, which the invoice route
    // dated on the moved clock too).
    app.clock.advance(chrono::Duration::days(7));
    let app = app.crash_and_restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut after = app.stats(&program).await;
    while after["credits"]["held"] != json!(0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = app.stats(&program).await;
    }
    let mut expected = figures;
    expected["credits"] = json!({ "pending": 3, "held": 0, "in_review": 0, "acquired": 3,
                                  "capped": 1, "rejected": 0, "reversed": 0 });
    expected["held_credit_total"] = json!(0);
    expected["acquired_credit_total"] = json!(300);
    assert_eq!(after, expected);
    assert_eq!(app.entries(LedgerOperation::AcquiredCredit).await.len(), 3);
}

async fn stats_of_an_unknown_program_is_404(app: TestApp) {
    for id in ["0123456789abcdef01234567", "not-an-id"] {
        expect_error(
            app.get(&format!("/program/{id}/stats/")).await,
            StatusCode::NOT_FOUND,
            "ID not found",
        )
        .await;
    }
    let program = app.create_program("Empty", json!(1), json!(2)).await;
    let id = program["id"].as_str().expect("id");
    let figures = app.stats(id).await;
    assert_eq!(
        figures,
        json!({
            "users": 0, "indicated_users": 0,
            "credits": { "pending": 0, "held": 0, "in_review": 0, "acquired": 0, "capped": 0,
                         "rejected": 0, "reversed": 0 },
            "signup_credit_total": 0, "held_credit_total": 0, "in_review_credit_total": 0,
            "acquired_credit_total": 0, "reversed_credit_total": 0,
        })
    );
    let anonymous = app
        .without_token(Method::GET, &format!("/program/{id}/stats/"))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// A release on a moved clock, raced by two passes and the app's own worker, acquires once and
/// sends one callback.
async fn a_due_release_acquires_once_with_one_callback(backend: Backend) {
    let server = answering(ResponseTemplate::new(200)).await;
    let url = format!("{}/credit/%s", server.uri());
    let app = TestApp::spawn_with(
        backend,
        &[
            ("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", &url),
            ("CREDIT_RELEASE_INTERVAL", "100ms"),
        ],
    )
    .await;
    program_with(&app, json!({ "hold_days": 7 }), &["bo", "cy"]).await;
    app.paid("bo", json!(100)).await;
    app.paid("cy", json!(150)).await;
    app.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    let (first, second) = tokio::join!(release(&app), release(&app));
    assert!(first + second <= 2, "{first} + {second}");
    // Whoever released them, each is acquired once, with one event and one delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let received = server.received_requests().await.unwrap_or_default();
        let acquired = received
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("event_type=acquired_credit"))
            .count();
        if acquired >= 2 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = server.received_requests().await.unwrap_or_default();
    let acquired: Vec<String> = received
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("event_type=acquired_credit"))
        .map(|r| {
            r.headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(acquired.len(), 2, "{acquired:?}");
    assert_ne!(acquired[0], acquired[1]);
    assert_eq!(app.entries(LedgerOperation::AcquiredCredit).await.len(), 2);
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 2);
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "acquired"
    );
    assert_eq!(
        app.paid("cy", json!(150)).await["acquired_credit"],
        json!(100)
    );
    // The callback went to the indicator, for the held amount.
    let forms: Vec<String> = received
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("event_type=acquired_credit"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        forms
            .iter()
            .all(|f| f.contains("user_hash=ana") && f.contains("amount=100"))
    );
}
