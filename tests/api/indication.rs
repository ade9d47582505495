//! Users, registrations, invoices, statements and e-mail indications over HTTP.

use std::sync::Arc;

use referral_api::{
    callbacks::{CallbackFilter, CallbackStatus, CreditEvent, CreditEventType},
    indication::{LedgerEntry, LedgerOperation},
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{TestApp, expect_error, expect_error_status, expect_json},
};

contract_tests!(
    pages_split_users_registered_in_one_millisecond_exactly,
    users_are_created_once_in_the_default_program,
    users_endpoint_refuses_missing_empty_and_overlong_hashes,
    concurrent_user_creation_creates_each_hash_once,
    register_writes_the_user_ledger_and_signup_callback,
    register_accepts_a_form,
    register_needs_both_hashes,
    register_refuses_swapped_labels,
    register_refuses_self_indication,
    register_checks_the_program,
    register_without_any_program_is_404,
    twenty_concurrent_registrations_of_one_hash_make_one_user,
    invoice_validates_user_and_total,
    invoice_credits_the_indicator_once_at_the_threshold,
    fifty_concurrent_invoices_crossing_the_threshold_credit_once,
    invoice_of_a_user_without_indicator_credits_nobody,
    statement_sums_pending_and_acquired_credit,
    statement_sums_decimals_exactly,
    statement_of_unknown_user_is_404,
    indicated_list_explains_each_credit_page_by_page,
    email_indication_saves_normalised_new_addresses,
    email_indication_needs_a_known_indicator,
    email_lists_are_capped_at_100,
    email_verification_names_the_indicator,
    program_with_users_cannot_be_deleted,
);

/// Indicates the e-mails `body` names (`POST /emailindication/`).
async fn indicate(app: &TestApp, body: Value) -> Response {
    app.post_json("/emailindication/", body).await
}

/// The indicator's statement as the service writes it.
async fn statement_text(app: &TestApp) -> String {
    app.get("/statement/indicator/")
        .await
        .text()
        .await
        .expect("body")
}

/// Expects the answer of a route that names a user who does not exist.
async fn user_not_found(response: Response) {
    expect_error(response, StatusCode::NOT_FOUND, "User not found").await;
}

async fn ledger_ops(app: &TestApp, indicated: &str) -> Vec<LedgerOperation> {
    app.ledger()
        .await
        .into_iter()
        .filter(|e| e.user_indicated == indicated)
        .map(|e| e.operation)
        .collect()
}

async fn pending_events(app: &TestApp) -> Vec<CreditEvent> {
    app.stores
        .callbacks
        .list(&CallbackFilter {
            status: Some(CallbackStatus::Pending),
            limit: usize::MAX,
            ..CallbackFilter::default()
        })
        .await
        .expect("outbox")
}

/// A program, an existing indicator, and the program's id.
async fn setup(app: &TestApp, credit: Value, target: Value) -> String {
    let program = app.create_program("Friends", credit, target).await;
    app.create_users(&["indicator"]).await;
    program["id"].as_str().expect("id").to_owned()
}

async fn users_are_created_once_in_the_default_program(app: TestApp) {
    let default = app.create_program("Default", json!(1), json!(2)).await;
    app.create_program("Newer", json!(1), json!(2)).await;
    let body = expect_json(
        app.post_json("/users/", json!({ "user_hash": "u1" })).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body, json!({ "created": ["u1"], "existing": [] }));
    let body = app.create_users(&["u1", "u2", "u3", "u2"]).await;
    assert_eq!(body, json!({ "created": ["u2", "u3"], "existing": ["u1"] }));
    let response = app.post_form("/users/", &[("user_hashes", "u3, u4")]).await;
    assert_eq!(
        expect_json(response, StatusCode::CREATED).await,
        json!({ "created": ["u4"], "existing": ["u3"] })
    );

    let statement = expect_json(app.get("/statement/u2/").await, StatusCode::OK).await;
    assert_eq!(statement["referral_program"], default);
    assert!(
        app.ledger().await.is_empty(),
        "imported users have no ledger entries"
    );
}

async fn users_endpoint_refuses_missing_empty_and_overlong_hashes(app: TestApp) {
    for body in [
        json!({}),
        json!({ "user_hash": "" }),
        json!({ "user_hashes": ["ok", " "] }),
        json!({ "user_hash": "x".repeat(129) }),
        json!({ "user_hash": { "$ne": null } }),
        json!({ "user_hashes": [1, 2] }),
    ] {
        expect_error_status(
            app.post_json("/users/", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    expect_error_status(
        app.post_json("/users/", json!({ "user_hashes": many }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    user_not_found(app.get("/statement/ok/").await).await;
}

async fn concurrent_user_creation_creates_each_hash_once(app: TestApp) {
    app.create_program("Default", json!(1), json!(2)).await;
    let hashes: Vec<String> = (0..40).map(|i| format!("h{i:02}")).collect();
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..8)
        .map(|round| {
            let (app, mut hashes) = (app.clone(), hashes.clone());
            hashes.rotate_left(round * 5);
            tokio::spawn(async move {
                let response = app
                    .post_json("/users/", json!({ "user_hashes": hashes }))
                    .await;
                expect_json(response, StatusCode::CREATED).await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        let body = task.await.expect("task");
        let listed = body["created"].as_array().expect("created").len()
            + body["existing"].as_array().expect("existing").len();
        assert_eq!(
            listed, 40,
            "every hash is reported once per request: {body}"
        );
        created.extend(
            body["created"]
                .as_array()
                .expect("created")
                .iter()
                .map(|h| h.as_str().expect("hash").to_owned()),
        );
    }
    created.sort();
    assert_eq!(created, hashes, "each hash created by exactly one request");
}

async fn register_writes_the_user_ledger_and_signup_callback(app: TestApp) {
    let program_id = setup(&app, json!("10.50"), json!(100)).await;
    let body = expect_json(
        app.register("indicator", "newbie").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["user_hash"], "newbie");
    assert_eq!(body["user_indicator"], "indicator");
    assert_eq!(body["referral_program"]["id"], program_id.as_str());
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let entries: Vec<LedgerEntry> = app
        .ledger()
        .await
        .into_iter()
        .filter(|e| e.user_indicated == "newbie")
        .collect();
    let summary: Vec<(LedgerOperation, String)> = entries
        .iter()
        .map(|e| (e.operation, e.amount.to_string()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (LedgerOperation::Signup, "0".to_owned()),
            (LedgerOperation::SignupCredit, "10.50".to_owned()),
            (LedgerOperation::PotencialCredit, "100".to_owned()),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.user_indicator.as_deref() == Some("indicator"))
    );
    assert!(
        entries
            .iter()
            .all(|e| e.program_id.map(|id| id.to_string()) == Some(program_id.clone()))
    );

    let events = pending_events(&app).await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, CreditEventType::SignupCredit);
    assert_eq!(event.user_hash.as_str(), "newbie");
    assert_eq!(event.user_indicator_hash.as_str(), "indicator");
    assert_eq!(event.amount.to_string(), "10.50");
    assert_eq!(event.program_name, "Friends");
    assert_eq!(event.attempts, 0);
    assert!(uuid::Uuid::parse_str(&event.id).is_ok());
}

async fn register_accepts_a_form(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let response = app
        .post_form(
            "/register",
            &[
                ("user_indicator", "indicator"),
                ("user_indicated", "formed"),
            ],
        )
        .await;
    let body = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(body["user_hash"], "formed");
}

async fn register_needs_both_hashes(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let sentence = "Needed user_indicator and user_indicated hashes";
    for body in [
        json!({}),
        json!({ "user_indicator": "indicator" }),
        json!({ "user_indicated": "x" }),
        json!({ "user_indicator": "", "user_indicated": "x" }),
        json!({ "user_indicator": "indicator", "user_indicated": "  " }),
        json!({ "user_indicator": null, "user_indicated": "x" }),
    ] {
        expect_error(
            app.post_json("/register/", body).await,
            StatusCode::PRECONDITION_FAILED,
            sentence,
        )
        .await;
    }
    expect_error(
        app.post_form("/register/", &[("user_indicated", "x")])
            .await,
        StatusCode::PRECONDITION_FAILED,
        sentence,
    )
    .await;
    let response = app
        .post_json(
            "/register/",
            json!({ "user_indicator": { "$ne": null }, "user_indicated": "x" }),
        )
        .await;
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(app.ledger().await.is_empty());
}

/// The seed's prose swaps the labels: the indicator must already exist, the indicated must not.
async fn register_refuses_swapped_labels(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    expect_error(
        app.register("brand-new", "indicator").await,
        StatusCode::NOT_FOUND,
        "User indicator hash not found",
    )
    .await;
    app.create_users(&["old-customer"]).await;
    expect_error(
        app.register("indicator", "old-customer").await,
        StatusCode::CONFLICT,
        "User already registered",
    )
    .await;
    assert!(app.ledger().await.is_empty());
    assert!(pending_events(&app).await.is_empty());
}

async fn register_refuses_self_indication(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    for user in ["indicator", "someone"] {
        expect_error(
            app.register(user, user).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "A user cannot indicate itself",
        )
        .await;
    }
    assert!(app.ledger().await.is_empty());
}

async fn register_checks_the_program(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let chosen = app.create_program("Chosen", json!(5), json!(50)).await;
    for id in ["0123456789abcdef01234567", "not-an-id", "{\"$ne\":1}"] {
        let body = json!({ "user_indicator": "indicator", "user_indicated": "x", "referral_program_id": id });
        expect_error(
            app.post_json("/register/", body).await,
            StatusCode::NOT_FOUND,
            "Referral program id not found",
        )
        .await;
    }
    let body = json!({ "user_indicator": "indicator", "user_indicated": "x", "referral_program_id": chosen["id"] });
    let registered =
        expect_json(app.post_json("/register/", body).await, StatusCode::CREATED).await;
    assert_eq!(registered["referral_program"], chosen);
    let events = pending_events(&app).await;
    assert_eq!(events[0].amount.to_string(), "5");
    assert_eq!(events[0].program_name, "Chosen");
}

async fn register_without_any_program_is_404(app: TestApp) {
    app.create_users(&["indicator"]).await;
    expect_error(
        app.register("indicator", "newbie").await,
        StatusCode::NOT_FOUND,
        "No referral program configured",
    )
    .await;
    user_not_found(app.get("/statement/newbie/").await).await;
}

async fn twenty_concurrent_registrations_of_one_hash_make_one_user(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.register("indicator", "racer").await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    assert_eq!(
        ledger_ops(&app, "racer").await,
        vec![
            LedgerOperation::Signup,
            LedgerOperation::SignupCredit,
            LedgerOperation::PotencialCredit
        ]
    );
    assert_eq!(pending_events(&app).await.len(), 1);
    let statement = expect_json(app.get("/statement/indicator/").await, StatusCode::OK).await;
    assert_eq!(statement["indicated_users"], 1);
}

async fn invoice_validates_user_and_total(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    user_not_found(app.invoice("ghost", json!(10)).await).await;
    for total in [
        json!(-1),
        json!("abc"),
        json!({ "$gt": 0 }),
        json!([5]),
        json!(null),
    ] {
        expect_error_status(
            app.invoice("indicator", total).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let response = app
        .request(Method::PUT, "/invoice/user/indicator/")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let response = app
        .request(Method::PUT, "/invoice/user/indicator")
        .form(&[("total_amount_paid", "-3")])
        .send()
        .await
        .expect("request");
    expect_error_status(response, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn invoice_credits_the_indicator_once_at_the_threshold(app: TestApp) {
    setup(&app, json!(10), json!("100.00")).await;
    expect_json(
        app.register("indicator", "payer").await,
        StatusCode::CREATED,
    )
    .await;
    let credit = |body: Value| body["acquired_credit"].to_string();

    assert_eq!(
        credit(expect_json(app.invoice("payer", json!(99.99)).await, StatusCode::OK).await),
        "0"
    );
    let response = app
        .request(Method::PUT, "/invoice/user/payer")
        .form(&[("total_amount_paid", "100")])
        .send()
        .await
        .expect("request");
    assert_eq!(
        credit(expect_json(response, StatusCode::OK).await),
        "100.00"
    );
    assert_eq!(
        credit(expect_json(app.invoice("payer", json!(250)).await, StatusCode::OK).await),
        "100.00"
    );
    // A lower running total later (a refund) revokes nothing and credits nothing again.
    assert_eq!(
        credit(expect_json(app.invoice("payer", json!(5)).await, StatusCode::OK).await),
        "100.00"
    );
    assert_eq!(
        credit(expect_json(app.invoice("payer", json!(300)).await, StatusCode::OK).await),
        "100.00"
    );

    let acquired = app.only_entry(LedgerOperation::AcquiredCredit).await;
    assert_eq!(acquired.user_indicated, "payer");
    assert_eq!(acquired.user_indicator.as_deref(), Some("indicator"));
    assert_eq!(acquired.amount.to_string(), "100.00");

    let events: Vec<CreditEvent> = pending_events(&app)
        .await
        .into_iter()
        .filter(|e| e.event_type == CreditEventType::AcquiredCredit)
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].user_hash.as_str(),
        "indicator",
        "the indicator is credited, not the payer"
    );
    assert_eq!(events[0].amount.to_string(), "100.00");
}

async fn fifty_concurrent_invoices_crossing_the_threshold_credit_once(app: TestApp) {
    setup(&app, json!(1), json!(100)).await;
    expect_json(app.register("indicator", "rich").await, StatusCode::CREATED).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let response = app.invoice("rich", json!(150)).await;
                expect_json(response, StatusCode::OK).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.expect("task"),
            json!({ "acquired_credit": 100, "credit_status": "acquired" })
        );
    }
    let ops = ledger_ops(&app, "rich").await;
    assert_eq!(
        ops.iter()
            .filter(|op| **op == LedgerOperation::AcquiredCredit)
            .count(),
        1,
        "{ops:?}"
    );
    let acquired_events = pending_events(&app)
        .await
        .into_iter()
        .filter(|e| e.event_type == CreditEventType::AcquiredCredit)
        .count();
    assert_eq!(acquired_events, 1);
}

async fn invoice_of_a_user_without_indicator_credits_nobody(app: TestApp) {
    setup(&app, json!(1), json!(10)).await;
    let body = expect_json(app.invoice("indicator", json!(1000)).await, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({ "acquired_credit": 0, "credit_status": "none" })
    );
    assert!(app.ledger().await.is_empty());
    assert!(pending_events(&app).await.is_empty());
}

async fn statement_sums_pending_and_acquired_credit(app: TestApp) {
    let program_id = setup(&app, json!(5), json!(40)).await;
    for user in ["a", "b", "c"] {
        expect_json(app.register("indicator", user).await, StatusCode::CREATED).await;
    }
    expect_json(app.invoice("b", json!(40)).await, StatusCode::OK).await;
    let statement = expect_json(app.get("/statement/indicator/").await, StatusCode::OK).await;
    assert_eq!(statement["potencial_credit"], json!(80));
    assert_eq!(statement["acquired_credit"], json!(40));
    assert_eq!(statement["indicated_users"], json!(3));
    assert_eq!(statement["referral_program"]["id"], program_id.as_str());
    let statement = expect_json(app.get("/statement/b").await, StatusCode::OK).await;
    assert_eq!(statement["indicated_users"], json!(0));
    assert_eq!(statement["potencial_credit"], json!(0));
}

async fn statement_sums_decimals_exactly(app: TestApp) {
    setup(&app, json!(0), json!(0.1)).await;
    let second = app.create_program("Second", json!(0), json!(0.2)).await;
    expect_json(app.register("indicator", "p1").await, StatusCode::CREATED).await;
    let body = json!({ "user_indicator": "indicator", "user_indicated": "p2", "referral_program_id": second["id"] });
    expect_json(app.post_json("/register/", body).await, StatusCode::CREATED).await;
    let text = statement_text(&app).await;
    assert!(text.contains(r#""potencial_credit":0.3"#), "{text}");
    expect_json(app.invoice("p1", json!("0.1")).await, StatusCode::OK).await;
    expect_json(app.invoice("p2", json!("0.2")).await, StatusCode::OK).await;
    let text = statement_text(&app).await;
    assert!(text.contains(r#""acquired_credit":0.3"#), "{text}");
    assert!(text.contains(r#""potencial_credit":0"#), "{text}");
}

async fn statement_of_unknown_user_is_404(app: TestApp) {
    user_not_found(app.get("/statement/nobody/").await).await;
    user_not_found(app.get(&format!("/statement/{}/", "x".repeat(300))).await).await;
}

async fn email_indication_saves_normalised_new_addresses(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    app.create_users(&["other"]).await;
    let body = json!({ "user_indicator": "other", "emails": "taken@example.com" });
    expect_json(indicate(&app, body).await, StatusCode::CREATED).await;

    let response = app
        .post_form(
            "/emailindication",
            &[("user_indicator", "indicator"), ("emails", " Ana@Example.COM, bo@example.org ,not-an-email, ana@example.com, TAKEN@example.com")],
        )
        .await;
    let body = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(
        body,
        json!({
            "saved_emails": ["ana@example.com", "bo@example.org"],
            "already_indicated": ["taken@example.com"],
            "invalid_emails": ["not-an-email"],
        })
    );
    let body = json!({ "user_indicator": "indicator", "emails": ["BO@example.org", "cy@example.net", "x@", ""] });
    let body = expect_json(indicate(&app, body).await, StatusCode::CREATED).await;
    assert_eq!(body["saved_emails"], json!(["cy@example.net"]));
    assert_eq!(body["already_indicated"], json!(["bo@example.org"]));
    assert_eq!(body["invalid_emails"], json!(["x@", ""]));

    let indications: Vec<String> = app
        .ledger()
        .await
        .into_iter()
        .filter(|e| {
            e.operation == LedgerOperation::Indication
                && e.user_indicator.as_deref() == Some("indicator")
        })
        .map(|e| e.user_indicated)
        .collect();
    assert_eq!(
        indications,
        vec!["ana@example.com", "bo@example.org", "cy@example.net"]
    );
}

async fn email_indication_needs_a_known_indicator(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    for body in [
        json!({ "emails": "a@example.com" }),
        json!({ "user_indicator": "", "emails": "a@example.com" }),
    ] {
        expect_error(
            indicate(&app, body).await,
            StatusCode::PRECONDITION_FAILED,
            "Need user_indicator parameter",
        )
        .await;
    }
    let body = json!({ "user_indicator": "ghost", "emails": "a@example.com" });
    expect_error(
        indicate(&app, body).await,
        StatusCode::PRECONDITION_FAILED,
        "User indicator not found",
    )
    .await;
    let body = json!({ "user_indicator": "indicator" });
    expect_error_status(indicate(&app, body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let body = json!({ "user_indicator": "indicator", "emails": { "$in": ["a@example.com"] } });
    expect_error_status(indicate(&app, body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(app.ledger().await.is_empty());
}

async fn email_lists_are_capped_at_100(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let emails: Vec<String> = (0..101).map(|i| format!("u{i}@example.com")).collect();
    let body = json!({ "user_indicator": "indicator", "emails": emails });
    expect_error_status(indicate(&app, body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let body = json!({ "user_indicator": "indicator", "emails": emails.join(",") });
    expect_error_status(indicate(&app, body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    expect_error_status(
        app.post_json("/emailverification/", json!({ "emails": emails }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(app.ledger().await.is_empty());
    let body = json!({ "user_indicator": "indicator", "emails": emails[..100] });
    let saved = expect_json(indicate(&app, body).await, StatusCode::CREATED).await;
    assert_eq!(saved["saved_emails"].as_array().map(Vec::len), Some(100));
}

async fn email_verification_names_the_indicator(app: TestApp) {
    setup(&app, json!(1), json!(2)).await;
    let body = json!({ "user_indicator": "indicator", "emails": ["ana@example.com"] });
    expect_json(indicate(&app, body).await, StatusCode::CREATED).await;
    let response = app
        .post_form(
            "/emailverification/",
            &[("emails", " ANA@example.com ,zed@example.com,junk")],
        )
        .await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({ "emails": { "ana@example.com": "indicator", "zed@example.com": false, "junk": false } })
    );
    let body = expect_json(
        app.post_json(
            "/emailverification",
            json!({ "emails": ["ana@example.com"] }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        body,
        json!({ "emails": { "ana@example.com": "indicator" } })
    );
    expect_error_status(
        app.post_json("/emailverification/", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

async fn program_with_users_cannot_be_deleted(app: TestApp) {
    let program_id = setup(&app, json!(1), json!(2)).await;
    expect_error(
        app.delete(&format!("/program/{program_id}/")).await,
        StatusCode::CONFLICT,
        "Program has users",
    )
    .await;
    let empty = app.create_program("Empty", json!(1), json!(1)).await;
    let empty_id = empty["id"].as_str().expect("id");
    let body = json!({ "user_indicator": "indicator", "user_indicated": "joiner", "referral_program_id": empty_id });
    expect_json(app.post_json("/register/", body).await, StatusCode::CREATED).await;
    expect_error(
        app.delete(&format!("/program/{empty_id}/")).await,
        StatusCode::CONFLICT,
        "Program has users",
    )
    .await;
    expect_json(
        app.get(&format!("/program/{empty_id}/")).await,
        StatusCode::OK,
    )
    .await;
    let unused = app.create_program("Unused", json!(1), json!(1)).await;
    let unused_id = unused["id"].as_str().expect("id");
    assert_eq!(
        app.delete(&format!("/program/{unused_id}/")).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn indicated_list_explains_each_credit_page_by_page(app: TestApp) {
    app.create_program("P", json!(10), json!("100.00")).await;
    app.create_users(&["ana"]).await;
    for user in ["bo", "cy", "dee"] {
        assert_eq!(
            app.register("ana", user).await.status(),
            StatusCode::CREATED
        );
        // Distinct registration times, so the order is the registration order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.invoice("bo", json!(150)).await.status(), StatusCode::OK);
    assert_eq!(
        app.invoice("cy", json!("50.5")).await.status(),
        StatusCode::OK
    );

    let first = expect_json(
        app.get("/statement/ana/indicated/?limit=2").await,
        StatusCode::OK,
    )
    .await;
    let lines = first["indicated"].as_array().expect("indicated");
    let hashes: Vec<&str> = lines
        .iter()
        .map(|l| l["user_hash"].as_str().expect("hash"))
        .collect();
    assert_eq!(hashes, ["bo", "cy"]);
    let bo = &lines[0];
    assert_eq!(bo["credit_status"], "acquired");
    assert_eq!(bo["total_amount_paid"].to_string(), "150");
    assert_eq!(bo["target_value"].to_string(), "100.00");
    assert_eq!(bo["credit_amount"].to_string(), "100.00");
    assert!(bo["acquired_at"].as_str().is_some());
    assert!(bo["registered_at"].as_str().is_some());
    let cy = &lines[1];
    assert_eq!(cy["credit_status"], "pending");
    assert_eq!(cy["total_amount_paid"].to_string(), "50.5");
    assert_eq!(cy["acquired_at"], Value::Null);
    assert_eq!(cy["release_at"], Value::Null);
    let next = first["next"].as_str().expect("a next page");

    let second = expect_json(
        app.get(&format!("/statement/ana/indicated?limit=2&after={next}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["indicated"][0]["user_hash"], "dee");
    assert_eq!(second["indicated"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next"], Value::Null);

    // The lines add up to the statement.
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    assert_eq!(statement["acquired_credit"].to_string(), "100.00");
    assert_eq!(statement["potencial_credit"].to_string(), "200.00");

    user_not_found(app.get("/statement/nobody/indicated/").await).await;
    for query in ["limit=0", "limit=501", "limit=x", "after=garbage"] {
        let response = app.get(&format!("/statement/ana/indicated/?{query}")).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
    let end_user = app
        .client
        .get(app.url("/statement/ana/indicated/"))
        .header("Authorization", format!("Bearer {}", app.token("ana", &[])))
        .send()
        .await
        .expect("request");
    assert_eq!(end_user.status(), StatusCode::UNAUTHORIZED);
}

/// Users registered in the same millisecond sort by hash: pages of any size, cut inside that
/// millisecond, list each user once and in order.
async fn pages_split_users_registered_in_one_millisecond_exactly(app: TestApp) {
    use referral_api::{
        indication::{UserHash, domain::Registration},
        programs::ProgramId,
    };
    let created = app.create_program("P", json!(1), json!(100)).await;
    app.create_users(&["ana"]).await;
    let id: ProgramId = created["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("program id");
    let program = app
        .stores
        .programs
        .get(id)
        .await
        .expect("read")
        .expect("program");
    let hash = |h: &str| UserHash::parse(h).expect("hash");
    let at = referral_api::clock::now();
    let mut expected = Vec::new();
    for (i, ms) in [0, 1, 1, 1, 1, 1, 2, 2, 3].into_iter().enumerate() {
        let name = format!("u{}", 9 - i); // later hashes first, so time and hash orders differ
        let registration = Registration::new(
            hash(&name),
            hash("ana"),
            &program,
            at + chrono::Duration::milliseconds(ms),
        );
        app.stores
            .indication
            .register(registration)
            .await
            .expect("registered");
        expected.push((ms, name));
    }
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, name)| name).collect();
    for limit in 1..=4 {
        let mut seen = Vec::new();
        let mut path = format!("/statement/ana/indicated/?limit={limit}");
        loop {
            let page = expect_json(app.get(&path).await, StatusCode::OK).await;
            for line in page["indicated"].as_array().expect("lines") {
                seen.push(line["user_hash"].as_str().expect("hash").to_owned());
            }
            match page["next"].as_str() {
                Some(next) => {
                    path = format!("/statement/ana/indicated/?limit={limit}&after={next}")
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
}
