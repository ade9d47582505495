//! The feed of events (`GET /events`): every credit move written with the move, read back in
//! order, filtered by type, paged without loss or repeat while writes go on, and kept only for
//! the retention, on both backends.

use std::collections::HashSet;

use referral_api::{clock::Clock, indication::LedgerOperation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, expect_json},
};

contract_tests!(
    every_credit_move_is_an_event_in_the_order_written,
    the_types_filter_keeps_only_those_types,
    pages_read_every_event_once_while_writes_go_on,
    events_survive_a_crash_as_the_moves_do,
    bad_queries_are_422_and_end_users_are_401,
    referrers_and_first_redemptions_are_events,
    ;
    events_leave_the_feed_after_the_retention,
);

async fn feed(app: &TestApp, query: &str) -> Value {
    expect_json(app.get(&format!("/events{query}")).await, StatusCode::OK).await
}

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_owned())
        .collect()
}

/// Every event from the start, following `next` with pages of `size`.
async fn read_all(app: &TestApp, query: &str, size: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let page = feed(app, &format!("?limit={size}&after={after}{query}")).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        after = page["next"].as_str().expect("next").to_owned();
        if events.is_empty() {
            return all;
        }
        all.extend(events);
    }
}

async fn every_credit_move_is_an_event_in_the_order_written(app: TestApp) {
    let held = app
        .program_with_rules(
            "Feed",
            json!({ "hold_days": 7, "max_credits_per_indicator": 1 }),
        )
        .await;
    let open = app
        .program_with_rules("Feed", json!({ "clawback_days": 10 }))
        .await;
    app.create_users(&["ana"]).await;
    app.registered_in("ana", &["bo", "cy"], &held).await;
    app.registered_in("ana", &["dy"], &open).await;
    app.invoice("bo", json!(100)).await; // held (the only place)
    app.invoice("cy", json!(100)).await; // capped
    app.invoice("bo", json!(10)).await; // cancelled
    app.invoice("dy", json!(100)).await; // acquired
    app.invoice("dy", json!(0)).await; // reversed
    let all = read_all(&app, "", 3).await;
    assert_eq!(
        types(&json!({ "events": all })),
        [
            "credit.signup",
            "credit.signup",
            "credit.signup",
            "credit.held",
            "credit.capped",
            "credit.cancelled",
            "credit.acquired",
            "credit.reversed",
        ]
    );
    let reversed = &all[7];
    assert_eq!(
        reversed["data"],
        json!({
            "program_id": open, "program_name": "Feed", "user_hash": "ana",
            "user_indicator": "ana", "user_indicated": "dy", "amount": -100,
            "status": "reversed", "flags": [], "reason": "refund",
        })
    );
    let signup = &all[0];
    assert_eq!(signup["data"]["user_hash"], "bo");
    assert_eq!(signup["data"]["amount"], json!(5));
    assert_eq!(signup["data"]["status"], "pending");
    for event in &all {
        let id = uuid::Uuid::parse_str(event["id"].as_str().expect("id")).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    // At the end, `next` stays where it was: a poll from it finds nothing new, then the new.
    let end = feed(&app, "?after=0&limit=1000").await;
    let next = end["next"].as_str().expect("next").to_owned();
    assert!(
        feed(&app, &format!("?after={next}")).await["events"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    app.registered_in("ana", &["ed"], &open).await;
    assert_eq!(
        types(&feed(&app, &format!("?after={next}")).await),
        ["credit.signup"]
    );
}

async fn the_types_filter_keeps_only_those_types(app: TestApp) {
    let open = app
        .program_with_rules("Feed", json!({ "clawback_days": 10 }))
        .await;
    app.create_users(&["ana"]).await;
    for hash in ["b1", "b2", "b3"] {
        app.registered_in("ana", &[hash], &open).await;
        app.invoice(hash, json!(100)).await;
    }
    app.invoice("b2", json!(0)).await;
    let picked = read_all(&app, "&type=credit.reversed,credit.acquired", 1).await;
    assert_eq!(
        types(&json!({ "events": picked })),
        [
            "credit.acquired",
            "credit.acquired",
            "credit.acquired",
            "credit.reversed"
        ]
    );
    assert_eq!(read_all(&app, "&type=credit.signup", 2).await.len(), 3);
    assert!(read_all(&app, "&type=referrer.created", 2).await.is_empty());
}

async fn pages_read_every_event_once_while_writes_go_on(app: TestApp) {
    let open = app.program_with_rules("Feed", json!({})).await;
    app.create_users(&["ana"]).await;
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, base, token, open) = (
                app.client.clone(),
                app.url(""),
                app.service_token(),
                open.clone(),
            );
            tokio::spawn(async move {
                for i in 0..15 {
                    let response = client
                        .post(format!("{base}/register/"))
                        .bearer_auth(&token)
                        .json(&json!({ "user_indicator": "ana",
                                       "user_indicated": format!("w{writer}-{i}"),
                                       "referral_program_id": open }))
                        .send()
                        .await
                        .expect("register");
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    // A consumer reads pages of 4 while the writers run, then to the end.
    let mut seen = Vec::new();
    let mut after = "0".to_owned();
    let mut done = false;
    loop {
        let page = feed(&app, &format!("?limit=4&after={after}")).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        after = page["next"].as_str().expect("next").to_owned();
        seen.extend(
            events
                .iter()
                .map(|e| e["data"]["user_hash"].as_str().expect("user").to_owned()),
        );
        if events.is_empty() {
            if done {
                break;
            }
            if writers.iter().all(tokio::task::JoinHandle::is_finished) {
                done = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "an event read twice: {seen:?}");
    assert_eq!(seen.len(), 60, "{seen:?}");
    // Each writer's registrations, in the order it made them.
    for writer in 0..4 {
        let own: Vec<&String> = seen
            .iter()
            .filter(|hash| hash.starts_with(&format!("w{writer}-")))
            .collect();
        let expected: Vec<String> = (0..15).map(|i| format!("w{writer}-{i}")).collect();
        assert_eq!(own, expected.iter().collect::<Vec<_>>());
    }
}

async fn events_survive_a_crash_as_the_moves_do(app: TestApp) {
    let open = app
        .program_with_rules("Feed", json!({ "review": "all" }))
        .await;
    app.create_users(&["ana"]).await;
    for hash in ["c1", "c2", "c3"] {
        app.registered_in("ana", &[hash], &open).await;
        app.invoice(hash, json!(100)).await;
    }
    let app = app.crash_and_restart().await;
    let all = read_all(&app, "", 100).await;
    let ledger = app.ledger().await;
    let moves = ledger
        .iter()
        .filter(|e| {
            matches!(
                e.operation,
                LedgerOperation::SignupCredit | LedgerOperation::CreditInReview
            )
        })
        .count();
    assert_eq!(all.len(), moves);
    assert_eq!(
        types(&json!({ "events": all })),
        [
            "credit.signup",
            "credit.in_review",
            "credit.signup",
            "credit.in_review",
            "credit.signup",
            "credit.in_review"
        ]
    );
}

async fn bad_queries_are_422_and_end_users_are_401(app: TestApp) {
    for query in [
        "?type=credit.paid",
        "?after=-1",
        "?after=abc",
        "?limit=0",
        "?limit=1001",
    ] {
        let response = app.get(&format!("/events{query}")).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
    }
    for token in [None, Some(app.token("someone", &[]))] {
        let mut request = app.client.get(app.url("/events"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Events older than `EVENT_RETENTION` leave the feed at once, on the moved clock, and the
/// embedded store's sweep then removes them.
async fn events_leave_the_feed_after_the_retention(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("EVENT_RETENTION", "1h")]).await;
    let open = app.program_with_rules("Feed", json!({})).await;
    app.create_users(&["ana"]).await;
    app.registered_in("ana", &["old"], &open).await;
    app.clock.advance(chrono::Duration::minutes(59));
    app.registered_in("ana", &["new"], &open).await;
    assert_eq!(read_all(&app, "", 10).await.len(), 2);
    app.clock.advance(chrono::Duration::minutes(2));
    let kept = read_all(&app, "", 10).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["data"]["user_hash"], "new");
    let removed = app
        .stores
        .events
        .sweep(app.clock.now() - chrono::Duration::hours(1), 1000)
        .await
        .expect("sweep");
    assert_eq!(removed, usize::from(backend == Backend::Embedded));
    assert_eq!(read_all(&app, "", 10).await.len(), 1);
}

async fn referrers_and_first_redemptions_are_events(app: TestApp) {
    let admin = app.token("root", &["admin"]);
    let post = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let created = expect_json(
        post(
            "/api/referrer/external/register",
            json!({ "email": "maria@example.com", "firstName": "Maria" }),
        )
        .await
        .expect("register"),
        StatusCode::OK,
    )
    .await;
    let code = created["referralCode"].as_str().expect("code").to_owned();
    for _ in 0..2 {
        let response = post(
            "/api/referee/apply",
            json!({ "accountId": "acc-1", "referralCode": code }),
        )
        .await
        .expect("apply");
        assert!(response.status().is_success(), "{}", response.status());
    }
    let all = read_all(&app, "", 10).await;
    assert_eq!(
        types(&json!({ "events": all })),
        ["referrer.created", "referral.redeemed"]
    );
    assert_eq!(all[0]["data"]["referral_code"], json!(code));
    assert_eq!(all[0]["data"]["email"], "maria@example.com");
    assert_eq!(all[0]["data"]["first_name"], "Maria");
    assert_eq!(all[1]["data"]["referral_code"], json!(code));
    assert_eq!(all[1]["data"]["account_id"], "acc-1");
    assert_eq!(all[1]["data"]["via"], "apply");
    assert!(
        all[1]["data"]["redeemed_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}
