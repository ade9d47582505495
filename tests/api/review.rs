//! Credits taken back and reviewed (Part F): clawback by refunds, review of all or flagged
//! credits, admin decisions and their races, the `credit_reversed` callback, and figures that
//! agree with a replay of the ledger, on both backends.

use std::{collections::HashMap, time::Duration};

use referral_api::{
    callbacks::CreditEventType,
    clock::Clock,
    indication::{LedgerEntry, LedgerOperation, service::release_due},
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, answering, expect_error, expect_json, replay},
};

contract_tests!(
    programs_take_the_review_fields_and_refuse_bad_ones,
    a_refund_within_the_window_reverses_with_a_negative_entry_and_event,
    after_the_window_or_without_clawback_a_drop_changes_nothing,
    review_all_holds_every_crossing_until_an_approval_pays_once,
    a_drop_while_in_review_sends_the_credit_back_to_pending,
    a_rejection_needs_a_known_reason_is_final_and_frees_the_cap_place,
    flagged_review_with_a_velocity_flags_only_the_fast_indicator,
    a_previous_reversal_flags_the_next_credit,
    an_admin_reverses_and_a_later_crossing_acquires_again,
    the_admin_list_filters_and_pages,
    one_credit_with_its_history_and_404s,
    a_bulk_approval_answers_for_each_as_alone,
    only_admins_decide,
    twelve_concurrent_approvals_pay_once,
    raced_moves_on_one_credit_leave_one_winner,
    a_due_release_raced_by_rejections_moves_the_credit_once,
    figures_agree_with_a_replay_of_the_ledger_before_and_after_a_crash,
    ;
    billing_receives_the_reversal,
);

async fn admin_get(app: &TestApp, path: &str) -> Response {
    app.as_admin(Method::GET, path, None).await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> Response {
    app.as_admin(Method::POST, path, Some(body)).await
}

async fn decide(app: &TestApp, hash: &str, action: &str, body: Value) -> Response {
    admin_post(app, &format!("/admin/credits/{hash}/{action}"), body).await
}

async fn credit(app: &TestApp, hash: &str) -> Value {
    expect_json(
        admin_get(app, &format!("/admin/credits/{hash}")).await,
        StatusCode::OK,
    )
    .await
}

/// A program with these rules (credit 5, target 100), the indicator `ana` and the users it
/// registered; returns the program's id.
async fn program_with(app: &TestApp, rules: Value, indicated: &[&str]) -> String {
    let id = app.program_with_rules("Reviewed", rules).await;
    app.create_users(&["ana"]).await;
    app.registered_in("ana", indicated, &id).await;
    id
}

async fn statement(app: &TestApp, hash: &str) -> Value {
    expect_json(
        app.get(&format!("/statement/{hash}/")).await,
        StatusCode::OK,
    )
    .await
}

fn flags(credit: &Value) -> Vec<&str> {
    credit["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

async fn programs_take_the_review_fields_and_refuse_bad_ones(app: TestApp) {
    let plain = app.create_program("Plain", json!(1), json!(2)).await;
    assert_eq!(plain["clawback_days"], json!(0));
    assert_eq!(plain["review"], json!("none"));
    assert_eq!(plain["review_velocity"], Value::Null);
    let reviewed = expect_json(
        app.post_json(
            "/program/",
            json!({ "name": "R", "clawback_days": 14, "review": "flagged", "review_velocity": 3 }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(reviewed["clawback_days"], json!(14));
    assert_eq!(reviewed["review"], json!("flagged"));
    assert_eq!(reviewed["review_velocity"], json!(3));
    let id = reviewed["id"].as_str().expect("id");
    let changed = expect_json(
        app.put_json(
            &format!("/program/{id}/"),
            json!({ "review": "all", "review_velocity": null }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["review"], json!("all"));
    assert_eq!(changed["review_velocity"], Value::Null);
    assert_eq!(changed["clawback_days"], json!(14));
    let form = expect_json(
        app.post_form(
            "/program/",
            &[
                ("name", "Form"),
                ("clawback_days", "7"),
                ("review", "all"),
                ("review_velocity", "5"),
            ],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (
            &form["clawback_days"],
            &form["review"],
            &form["review_velocity"]
        ),
        (&json!(7), &json!("all"), &json!(5))
    );
    let fetched = expect_json(app.get(&format!("/program/{id}/")).await, StatusCode::OK).await;
    assert_eq!(fetched["review"], json!("all"));
    for (body, sentence) in [
        (
            json!({ "name": "X", "clawback_days": 366 }),
            "Field `clawback_days` must be a whole number from 0 to 365",
        ),
        (
            json!({ "name": "X", "clawback_days": -1 }),
            "Field `clawback_days` must be a whole number from 0 to 365",
        ),
        (
            json!({ "name": "X", "review": "some" }),
            "Field `review` must be one of none, all, flagged",
        ),
        (
            json!({ "name": "X", "review": 1 }),
            "Field `review` must be one of none, all, flagged",
        ),
        (
            json!({ "name": "X", "review_velocity": 0 }),
            "Field `review_velocity` must be a whole number of at least 1, or null",
        ),
        (
            json!({ "name": "X", "review_velocity": "fast" }),
            "Field `review_velocity` must be a whole number of at least 1, or null",
        ),
    ] {
        expect_error(
            app.post_json("/program/", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
        )
        .await;
    }
}

async fn a_refund_within_the_window_reverses_with_a_negative_entry_and_event(app: TestApp) {
    let program = program_with(&app, json!({ "clawback_days": 14 }), &["bo"]).await;
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "acquired"
    );
    app.clock.advance(chrono::Duration::days(13));
    let refunded = app.paid("bo", json!(40)).await;
    assert_eq!(
        refunded,
        json!({ "acquired_credit": 0, "credit_status": "reversed" })
    );
    let reversed = app.only_entry(LedgerOperation::CreditReversed).await;
    assert_eq!(reversed.amount.to_string(), "-100");
    assert_eq!(reversed.user_indicator.as_deref(), Some("ana"));
    let callback = app.only_event(CreditEventType::CreditReversed).await;
    assert_eq!(callback.amount.to_string(), "-100");
    assert_eq!(callback.user_hash.as_str(), "ana");
    let statement = statement(&app, "ana").await;
    assert_eq!(statement["acquired_credit"], json!(0));
    assert_eq!(statement["in_review_credit"], json!(0));
    let figures = app.stats(&program).await;
    assert_eq!(figures["credits"]["reversed"], json!(1));
    assert_eq!(figures["credits"]["acquired"], json!(0));
    assert_eq!(figures["reversed_credit_total"], json!(100));
    assert_eq!(figures["acquired_credit_total"], json!(0));
    let shown = credit(&app, "bo").await;
    assert_eq!(shown["status"], "reversed");
    assert_eq!(shown["reason"], "refund");
    assert_eq!(shown["decided_by"], Value::Null);
    assert!(shown["reversed_at"].is_string());
    // Another drop changes nothing; paid again, the credit is acquired again, with a new event.
    app.paid("bo", json!(10)).await;
    assert_eq!(app.events(CreditEventType::CreditReversed).await.len(), 1);
    let again = app.paid("bo", json!(120)).await;
    assert_eq!(
        again,
        json!({ "acquired_credit": 100, "credit_status": "acquired" })
    );
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 2);
    let figures = app.stats(&program).await;
    assert_eq!(figures["credits"]["reversed"], json!(0));
    assert_eq!(figures["credits"]["acquired"], json!(1));
    assert_eq!(statement_acquired(&app).await, json!(100));
}

async fn statement_acquired(app: &TestApp) -> Value {
    statement(app, "ana").await["acquired_credit"].clone()
}

async fn after_the_window_or_without_clawback_a_drop_changes_nothing(app: TestApp) {
    let program = program_with(&app, json!({ "clawback_days": 14 }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    app.clock
        .advance(chrono::Duration::days(14) + chrono::Duration::seconds(1));
    assert_eq!(app.paid("bo", json!(0)).await["credit_status"], "acquired");
    let plain = app.create_program("Plain", json!(5), json!(100)).await;
    let plain = plain["id"].as_str().expect("id").to_owned();
    app.registered_in("ana", &["cy"], &plain).await;
    app.paid("cy", json!(100)).await;
    assert_eq!(app.paid("cy", json!(0)).await["credit_status"], "acquired");
    assert!(
        app.entries(LedgerOperation::CreditReversed)
            .await
            .is_empty()
    );
    assert!(app.events(CreditEventType::CreditReversed).await.is_empty());
    assert_eq!(app.stats(&program).await["credits"]["acquired"], json!(1));
}

async fn review_all_holds_every_crossing_until_an_approval_pays_once(app: TestApp) {
    let program = program_with(&app, json!({ "review": "all" }), &["bo", "cy"]).await;
    for hash in ["bo", "cy"] {
        assert_eq!(
            app.paid(hash, json!(100)).await,
            json!({ "acquired_credit": 0, "credit_status": "in_review" })
        );
    }
    assert!(app.events(CreditEventType::AcquiredCredit).await.is_empty());
    let in_review = app.entries(LedgerOperation::CreditInReview).await;
    assert_eq!(in_review.len(), 2);
    assert!(in_review.iter().all(|e| e.amount.to_string() == "100"));
    let figures = app.stats(&program).await;
    assert_eq!(figures["credits"]["in_review"], json!(2));
    assert_eq!(figures["in_review_credit_total"], json!(200));
    assert_eq!(statement(&app, "ana").await["in_review_credit"], json!(200));
    let shown = credit(&app, "bo").await;
    assert_eq!(flags(&shown), Vec::<&str>::new());
    let approved = expect_json(
        decide(&app, "bo", "approve", json!({ "note": "known customer" })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(approved["status"], "acquired");
    assert_eq!(approved["decided_by"], "root");
    assert_eq!(approved["note"], "known customer");
    assert!(approved["acquired_at"].is_string());
    expect_error(
        decide(&app, "bo", "approve", json!({})).await,
        StatusCode::CONFLICT,
        "Credit is acquired",
    )
    .await;
    let acquired = app.only_event(CreditEventType::AcquiredCredit).await;
    assert_eq!(acquired.user_hash.as_str(), "ana");
    let entry = app.only_entry(LedgerOperation::AcquiredCredit).await;
    let decision = entry.decision.as_ref().expect("the decision on the entry");
    assert_eq!(decision.by.as_deref(), Some("root"));
    assert_eq!(decision.note.as_deref(), Some("known customer"));
    // An approval takes no body at all, too.
    let response = app
        .as_admin(Method::POST, "/admin/credits/cy/approve", None)
        .await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["status"],
        "acquired"
    );
    assert_eq!(
        app.paid("bo", json!(100)).await,
        json!({ "acquired_credit": 100, "credit_status": "acquired" })
    );
}

async fn a_drop_while_in_review_sends_the_credit_back_to_pending(app: TestApp) {
    let program = program_with(&app, json!({ "review": "all" }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    assert_eq!(app.paid("bo", json!(99)).await["credit_status"], "pending");
    assert_eq!(app.entries(LedgerOperation::CreditCancelled).await.len(), 1);
    expect_error(
        decide(&app, "bo", "approve", json!({})).await,
        StatusCode::CONFLICT,
        "Credit is pending",
    )
    .await;
    let figures = app.stats(&program).await;
    assert_eq!(figures["credits"]["pending"], json!(1));
    assert_eq!(figures["credits"]["in_review"], json!(0));
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "in_review"
    );
}

async fn a_rejection_needs_a_known_reason_is_final_and_frees_the_cap_place(app: TestApp) {
    let program = program_with(
        &app,
        json!({ "review": "all", "max_credits_per_indicator": 1 }),
        &["bo", "cy"],
    )
    .await;
    app.paid("bo", json!(100)).await;
    // The credit in review holds the only place: the next crossing is capped.
    assert_eq!(app.paid("cy", json!(100)).await["credit_status"], "capped");
    for (body, sentence) in [
        (
            json!({}),
            "Field `reason` is required: one of fraud, self_referral, duplicate, refund, \
             terms_violation, other",
        ),
        (
            json!({ "reason": "boredom" }),
            "Field `reason` must be one of fraud, self_referral, duplicate, refund, \
             terms_violation, other",
        ),
        (
            json!({ "reason": "fraud", "note": "x".repeat(501) }),
            "Field `note` must be at most 500 characters",
        ),
    ] {
        expect_error(
            decide(&app, "bo", "reject", body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence,
        )
        .await;
    }
    assert!(
        app.entries(LedgerOperation::CreditRejected)
            .await
            .is_empty()
    );
    let rejected = expect_json(
        decide(
            &app,
            "bo",
            "reject",
            json!({ "reason": "self_referral", "note": "same card" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "self_referral");
    assert_eq!(rejected["amount"], json!(0));
    let entry = app.only_entry(LedgerOperation::CreditRejected).await;
    assert_eq!(entry.amount.to_string(), "0");
    assert_eq!(
        entry.decision.as_ref().and_then(|d| d.note.as_deref()),
        Some("same card")
    );
    // Final: payments and decisions change nothing; no callback was queued.
    assert_eq!(
        app.paid("bo", json!(500)).await["credit_status"],
        "rejected"
    );
    for action in ["approve", "reject", "reverse"] {
        expect_error(
            decide(&app, "bo", action, json!({ "reason": "fraud" })).await,
            StatusCode::CONFLICT,
            "Credit is rejected",
        )
        .await;
    }
    assert!(app.events(CreditEventType::AcquiredCredit).await.is_empty());
    // The place is free again.
    app.registered_in("ana", &["dy"], &program).await;
    assert_eq!(
        app.paid("dy", json!(100)).await["credit_status"],
        "in_review"
    );
    let figures = app.stats(&program).await;
    assert_eq!(figures["credits"]["rejected"], json!(1));
    assert_eq!(figures["credits"]["capped"], json!(1));
    assert_eq!(figures["credits"]["in_review"], json!(1));
}

async fn flagged_review_with_a_velocity_flags_only_the_fast_indicator(app: TestApp) {
    let program = program_with(
        &app,
        json!({ "review": "flagged", "review_velocity": 2 }),
        &["a1", "a2", "a3"],
    )
    .await;
    app.create_users(&["eve"]).await;
    app.registered_in("eve", &["e1"], &program).await;
    // An hour and a bit later, ana's next registration is alone in its hour.
    app.clock
        .advance(chrono::Duration::minutes(60) + chrono::Duration::seconds(1));
    app.registered_in("ana", &["a4"], &program).await;
    for hash in ["a1", "a2", "a3", "a4", "e1"] {
        app.paid(hash, json!(100)).await;
    }
    let statuses: Vec<(String, Value)> = {
        let mut out = Vec::new();
        for hash in ["a1", "a2", "a3", "a4", "e1"] {
            out.push((hash.to_owned(), credit(&app, hash).await["status"].clone()));
        }
        out
    };
    assert_eq!(
        statuses,
        vec![
            ("a1".to_owned(), json!("acquired")),
            ("a2".to_owned(), json!("acquired")),
            ("a3".to_owned(), json!("in_review")),
            ("a4".to_owned(), json!("acquired")),
            ("e1".to_owned(), json!("acquired")),
        ]
    );
    let flagged = credit(&app, "a3").await;
    assert_eq!(flags(&flagged), ["velocity"]);
    let reason = flagged["flag_reasons"][0]["reason"]
        .as_str()
        .expect("a reason");
    assert!(reason.contains("registered 3 users"), "{reason}");
    assert!(reason.contains("more than 2"), "{reason}");
    let queue = expect_json(
        admin_get(&app, "/admin/credits?flagged=true").await,
        StatusCode::OK,
    )
    .await;
    let listed: Vec<&str> = queue["credits"]
        .as_array()
        .expect("credits")
        .iter()
        .filter_map(|c| c["user_indicated"].as_str())
        .collect();
    assert_eq!(listed, ["a3"]);
    let page = expect_json(app.get("/statement/ana/indicated/").await, StatusCode::OK).await;
    let a3 = page["indicated"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|line| line["user_hash"] == "a3")
        .cloned()
        .expect("a3 listed");
    assert_eq!(a3["flags"], json!(["velocity"]));
    assert_eq!(a3["credit_status"], "in_review");
}

async fn a_previous_reversal_flags_the_next_credit(app: TestApp) {
    program_with(
        &app,
        json!({ "review": "flagged", "clawback_days": 30 }),
        &["bo", "cy"],
    )
    .await;
    app.paid("bo", json!(100)).await;
    app.paid("bo", json!(0)).await;
    assert_eq!(credit(&app, "bo").await["status"], "reversed");
    assert_eq!(
        app.paid("cy", json!(100)).await["credit_status"],
        "in_review"
    );
    let flagged = credit(&app, "cy").await;
    assert_eq!(flags(&flagged), ["previous_reversal"]);
    assert!(
        flagged["flag_reasons"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1 reversed credit "))
    );
}

async fn an_admin_reverses_and_a_later_crossing_acquires_again(app: TestApp) {
    let program = program_with(&app, json!({}), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    expect_error(
        decide(&app, "bo", "reverse", json!({ "note": "no reason" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Field `reason` is required: one of fraud, self_referral, duplicate, refund, \
         terms_violation, other",
    )
    .await;
    let reversed = expect_json(
        decide(&app, "bo", "reverse", json!({ "reason": "fraud" })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reversed["status"], "reversed");
    assert_eq!(reversed["decided_by"], "root");
    expect_error(
        decide(&app, "bo", "reverse", json!({ "reason": "fraud" })).await,
        StatusCode::CONFLICT,
        "Credit is reversed",
    )
    .await;
    // The same total again is not a crossing; a drop and a new crossing is.
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "reversed"
    );
    app.paid("bo", json!(50)).await;
    assert_eq!(
        app.paid("bo", json!(100)).await["credit_status"],
        "acquired"
    );
    assert_eq!(app.events(CreditEventType::CreditReversed).await.len(), 1);
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 2);
    assert_eq!(
        app.stats(&program).await["acquired_credit_total"],
        json!(100)
    );
}

async fn the_admin_list_filters_and_pages(app: TestApp) {
    let program = program_with(&app, json!({ "review": "all" }), &["b1", "b2", "b3", "b4"]).await;
    let other = app.create_program("Other", json!(1), json!(10)).await;
    let other = other["id"].as_str().expect("id").to_owned();
    app.create_users(&["eve"]).await;
    app.registered_in("eve", &["e1"], &other).await;
    for hash in ["b1", "b2", "b3"] {
        app.paid(hash, json!(100)).await;
    }
    app.paid("e1", json!(10)).await;
    let hashes = |page: &Value| -> Vec<String> {
        page["credits"]
            .as_array()
            .expect("credits")
            .iter()
            .filter_map(|c| c["user_indicated"].as_str().map(str::to_owned))
            .collect()
    };
    let list = |query: &str| {
        let app = &app;
        let query = query.to_owned();
        async move {
            expect_json(
                admin_get(app, &format!("/admin/credits{query}")).await,
                StatusCode::OK,
            )
            .await
        }
    };
    assert_eq!(hashes(&list("").await), ["b1", "b2", "b3", "b4", "e1"]);
    assert_eq!(hashes(&list("?status=in_review").await), ["b1", "b2", "b3"]);
    assert_eq!(hashes(&list("?status=acquired").await), ["e1"]);
    assert_eq!(hashes(&list("?status=pending").await), ["b4"]);
    assert_eq!(hashes(&list(&format!("?program_id={other}")).await), ["e1"]);
    assert_eq!(
        hashes(
            &list(&format!(
                "?program_id={program}&status=in_review&user_indicator=ana"
            ))
            .await
        ),
        ["b1", "b2", "b3"]
    );
    assert_eq!(hashes(&list("?user_indicator=eve").await), ["e1"]);
    assert!(hashes(&list("?flagged=true").await).is_empty());
    // Pages of 2, then of 1, cover the list once, in order.
    for size in [1, 2] {
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = list(&format!("?status=in_review&limit={size}{after}")).await;
            seen.extend(hashes(&page));
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["b1", "b2", "b3"]);
    }
    let first = list("?limit=1").await;
    assert_eq!(first["credits"][0]["status"], "in_review");
    assert_eq!(first["credits"][0]["amount"], json!(100));
    assert_eq!(first["credits"][0]["user_indicator"], "ana");
    assert!(first["credits"][0]["crossed_at"].is_string());
    for query in [
        "?status=paid",
        "?limit=0",
        "?limit=501",
        "?after=nope",
        "?program_id=123",
        "?flagged=maybe",
    ] {
        let response = admin_get(&app, &format!("/admin/credits{query}")).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
}

async fn one_credit_with_its_history_and_404s(app: TestApp) {
    program_with(&app, json!({ "review": "all" }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    decide(
        &app,
        "bo",
        "reject",
        json!({ "reason": "duplicate", "note": "twin" }),
    )
    .await;
    let shown = credit(&app, "bo").await;
    assert_eq!(shown["user_indicated"], "bo");
    assert_eq!(shown["status"], "rejected");
    let history: Vec<(&str, String)> = shown["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().expect("operation"),
                e["amount"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("signup", "0".to_owned()),
            ("signup_credit", "5".to_owned()),
            ("potencial_credit", "100".to_owned()),
            ("credit_in_review", "100".to_owned()),
            ("credit_rejected", "0".to_owned()),
        ]
    );
    let last = &shown["history"][4];
    assert_eq!(
        (&last["decided_by"], &last["reason"], &last["note"]),
        (&json!("root"), &json!("duplicate"), &json!("twin"))
    );
    for hash in ["ana", "nobody", "%20"] {
        expect_error(
            admin_get(&app, &format!("/admin/credits/{hash}")).await,
            StatusCode::NOT_FOUND,
            "Credit not found",
        )
        .await;
        expect_error(
            decide(&app, hash, "approve", json!({})).await,
            StatusCode::NOT_FOUND,
            "Credit not found",
        )
        .await;
    }
}

async fn a_bulk_approval_answers_for_each_as_alone(app: TestApp) {
    program_with(&app, json!({ "review": "all" }), &["b1", "b2", "b3"]).await;
    app.paid("b1", json!(100)).await;
    app.paid("b2", json!(100)).await;
    let body = expect_json(
        admin_post(
            &app,
            "/admin/credits/approve",
            json!({ "user_hashes": ["b1", "b3", "nobody", "b1"], "note": "batch" }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let results: Vec<(&str, u64)> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["user_hash"].as_str().expect("hash"),
                r["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        results,
        [("b1", 200), ("b3", 409), ("nobody", 404), ("b1", 409)]
    );
    assert_eq!(body["results"][0]["credit"]["note"], "batch");
    assert_eq!(body["results"][1]["error"], "Credit is pending");
    assert_eq!(body["results"][2]["error"], "Credit not found");
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 1);
    for bad in [
        json!({}),
        json!({ "user_hashes": [] }),
        json!({ "user_hashes": vec!["x"; 101] }),
    ] {
        expect_error(
            admin_post(&app, "/admin/credits/approve", bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Field `user_hashes` must list 1 to 100 user hashes",
        )
        .await;
    }
}

async fn only_admins_decide(app: TestApp) {
    program_with(&app, json!({ "review": "all" }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    for (method, path) in [
        ("GET", "/admin/credits"),
        ("GET", "/admin/credits/bo"),
        ("POST", "/admin/credits/bo/approve"),
        ("POST", "/admin/credits/bo/reject"),
        ("POST", "/admin/credits/bo/reverse"),
        ("POST", "/admin/credits/approve"),
    ] {
        let method: reqwest::Method = method.parse().expect("method");
        let response = app
            .request(method, path)
            .json(&json!({ "reason": "fraud", "user_hashes": ["bo"] }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(credit(&app, "bo").await["status"], "in_review");
}

async fn twelve_concurrent_approvals_pay_once(app: TestApp) {
    program_with(&app, json!({ "review": "all" }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    let statuses = race(&app, (0..12).map(|_| Move::Decide("approve"))).await;
    assert_eq!(count(&statuses, StatusCode::OK), 1, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::CONFLICT), 11, "{statuses:?}");
    assert_eq!(app.events(CreditEventType::AcquiredCredit).await.len(), 1);
    assert_eq!(app.entries(LedgerOperation::AcquiredCredit).await.len(), 1);
}

#[derive(Clone, Copy)]
enum Move {
    Decide(&'static str),
    Invoice(u32),
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Runs the moves on `bo`'s credit all at once.
async fn race(app: &TestApp, moves: impl Iterator<Item = Move>) -> Vec<StatusCode> {
    let auth = app.admin_auth();
    let tasks: Vec<_> = moves
        .map(|step| {
            let client = app.client.clone();
            let (auth, service) = (auth.clone(), format!("Bearer {}", app.service_token()));
            let base = app.url("");
            tokio::spawn(async move {
                let request = match step {
                    Move::Decide(action) => client
                        .post(format!("{base}/admin/credits/bo/{action}"))
                        .header("Authorization", auth)
                        .json(&json!({ "reason": "fraud" })),
                    Move::Invoice(total) => client
                        .put(format!("{base}/invoice/user/bo/"))
                        .header("Authorization", service)
                        .json(&json!({ "total_amount_paid": total })),
                };
                request.send().await.expect("request").status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses
}

async fn raced_moves_on_one_credit_leave_one_winner(app: TestApp) {
    // In review: approvals, rejections and drops race; one of them moves the credit.
    let program = program_with(
        &app,
        json!({ "review": "all", "clawback_days": 30 }),
        &["bo"],
    )
    .await;
    app.paid("bo", json!(100)).await;
    let moves = (0..12).map(|i| match i % 3 {
        0 => Move::Decide("approve"),
        1 => Move::Decide("reject"),
        _ => Move::Invoice(100),
    });
    let statuses = race(&app, moves).await;
    let moved = app.entries(LedgerOperation::AcquiredCredit).await.len()
        + app.entries(LedgerOperation::CreditRejected).await.len();
    assert_eq!(moved, 1, "{statuses:?}");
    // Of the eight decisions, exactly one succeeded.
    assert_eq!(count(&statuses, StatusCode::CONFLICT), 7, "{statuses:?}");
    assert!(app.events(CreditEventType::AcquiredCredit).await.len() <= 1);
    if credit(&app, "bo").await["status"] == "rejected" {
        return;
    }
    // Acquired: reversals by admins and by refunds race; it is reversed once, with one event.
    let moves = (0..12).map(|i| match i % 3 {
        0 => Move::Decide("reverse"),
        1 => Move::Invoice(0),
        _ => Move::Decide("approve"),
    });
    let statuses = race(&app, moves).await;
    assert_eq!(
        app.entries(LedgerOperation::CreditReversed).await.len(),
        1,
        "{statuses:?}"
    );
    assert_eq!(app.events(CreditEventType::CreditReversed).await.len(), 1);
    assert_eq!(app.stats(&program).await["credits"]["reversed"], json!(1));
}

/// The last amount each credit moved with, replayed from the ledger: the money in its state.
fn replay_money(ledger: &[LedgerEntry], state: &str) -> rust_decimal::Decimal {
    let states = replay(ledger);
    let mut last = HashMap::new();
    for entry in ledger {
        if matches!(
            entry.operation,
            LedgerOperation::CreditInReview
                | LedgerOperation::AcquiredCredit
                | LedgerOperation::CreditReversed
                | LedgerOperation::CreditHeld
        ) {
            last.insert(entry.user_indicated.clone(), entry.amount.amount().abs());
        }
    }
    states
        .iter()
        .filter(|(_, s)| **s == state)
        .filter_map(|(hash, _)| last.get(hash))
        .sum()
}

async fn a_due_release_raced_by_rejections_moves_the_credit_once(app: TestApp) {
    let program = program_with(&app, json!({ "hold_days": 7 }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    app.clock.advance(chrono::Duration::days(8));
    let releases: Vec<_> = (0..4)
        .map(|_| {
            let (indication, programs, now) = (
                app.stores.indication.clone(),
                app.stores.programs.clone(),
                app.clock.now(),
            );
            tokio::spawn(async move {
                release_due(indication.as_ref(), programs.as_ref(), now)
                    .await
                    .expect("release")
            })
        })
        .collect();
    let statuses = race(&app, (0..4).map(|_| Move::Decide("reject"))).await;
    for release in releases {
        release.await.expect("release task");
    }
    let acquired = app.entries(LedgerOperation::AcquiredCredit).await.len();
    let rejected = app.entries(LedgerOperation::CreditRejected).await.len();
    assert_eq!(acquired + rejected, 1, "{statuses:?}");
    assert_eq!(count(&statuses, StatusCode::OK), rejected, "{statuses:?}");
    assert_eq!(
        app.events(CreditEventType::AcquiredCredit).await.len(),
        acquired
    );
    assert_figures_replay(&app, &program).await;
}

async fn assert_figures_replay(app: &TestApp, program: &str) {
    let ledger = app.ledger().await;
    let states = replay(&ledger);
    let figures = app.stats(program).await;
    for state in "pending held in_review acquired capped rejected reversed".split(' ') {
        let replayed = states.values().filter(|s| **s == state).count();
        assert_eq!(
            figures["credits"][state],
            json!(replayed),
            "{state}: {figures}"
        );
    }
    let money = |value: &Value| value.to_string().parse::<rust_decimal::Decimal>().ok();
    for (field, state) in [
        ("in_review_credit_total", "in_review"),
        ("acquired_credit_total", "acquired"),
        ("reversed_credit_total", "reversed"),
    ] {
        assert_eq!(
            money(&figures[field]),
            Some(replay_money(&ledger, state)),
            "{field}: {figures}"
        );
    }
    let statement = statement(app, "ana").await;
    assert_eq!(
        money(&statement["acquired_credit"]),
        Some(replay_money(&ledger, "acquired"))
    );
    assert_eq!(
        money(&statement["in_review_credit"]),
        Some(replay_money(&ledger, "in_review"))
    );
    let page = expect_json(
        app.get("/statement/ana/indicated/?limit=500").await,
        StatusCode::OK,
    )
    .await;
    for line in page["indicated"].as_array().expect("lines") {
        let hash = line["user_hash"].as_str().expect("hash");
        assert_eq!(line["credit_status"], states[hash], "{line}");
    }
}

async fn figures_agree_with_a_replay_of_the_ledger_before_and_after_a_crash(app: TestApp) {
    let users = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    let program = program_with(
        &app,
        json!({ "review": "flagged", "clawback_days": 10, "max_credits_per_indicator": 4 }),
        &users,
    )
    .await;
    app.paid("m1", json!(100)).await; // acquired
    app.paid("m2", json!(150)).await; // acquired, then refunded: reversed
    app.paid("m2", json!(20)).await;
    app.paid("m3", json!(100)).await; // flagged (previous reversal): in review
    app.paid("m4", json!(100)).await; // in review, then rejected
    decide(&app, "m4", "reject", json!({ "reason": "fraud" })).await;
    app.paid("m5", json!(100)).await; // in review, then approved
    decide(&app, "m5", "approve", json!({})).await;
    app.paid("m6", json!(30)).await; // pending
    decide(
        &app,
        "m1",
        "reverse",
        json!({ "reason": "terms_violation" }),
    )
    .await;
    app.paid("m7", json!(100)).await; // in review
    let figures = app.stats(&program).await;
    assert_eq!(
        figures["credits"],
        json!({ "pending": 1, "held": 0, "in_review": 2, "acquired": 1, "capped": 0,
                "rejected": 1, "reversed": 2 })
    );
    assert_eq!(figures["reversed_credit_total"], json!(200));
    assert_figures_replay(&app, &program).await;
    let app = app.crash_and_restart().await;
    assert_figures_replay(&app, &program).await;
    assert_eq!(app.stats(&program).await, figures);
}

/// A refunded customer's credit reaches billing as a signed `credit_reversed` callback with the
/// negative amount, to the indicator's hash.
async fn billing_receives_the_reversal(backend: Backend) {
    let server = answering(ResponseTemplate::new(200)).await;
    let url = format!("{}/credit/{{user_hash}}", server.uri());
    let secret = format!("whsec_{}", base64_secret());
    let app = TestApp::spawn_with(
        backend,
        &[
            ("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", url.as_str()),
            ("CALLBACK_SIGNING_SECRET", secret.as_str()),
        ],
    )
    .await;
    program_with(&app, json!({ "clawback_days": 14 }), &["bo"]).await;
    app.paid("bo", json!(100)).await;
    app.paid("bo", json!(0)).await;
    let mut reversal = None;
    for _ in 0..300 {
        let received = server.received_requests().await.unwrap_or_default();
        reversal = received.into_iter().find(|request| {
            String::from_utf8_lossy(&request.body).contains("event_type=credit_reversed")
        });
        if reversal.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = reversal.expect("billing received the reversal");
    assert_eq!(request.url.path(), "/credit/ana");
    let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert_eq!(form["amount"], "-100");
    assert_eq!(form["user_hash"], "ana");
    assert_eq!(form["program_name"], "Reviewed");
    assert!(request.headers.get("webhook-signature").is_some());
}

fn base64_secret() -> String {
    use base64::Engine;
    let bytes = [
        *uuid::Uuid::new_v4().as_bytes(),
        *uuid::Uuid::new_v4().as_bytes(),
    ]
    .concat();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
