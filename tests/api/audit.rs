//! The audit log (`/admin/audit`, `/admin/audit.csv`): one entry per change, with who, what
//! (before and after), why and the request id; none for a refused change; filters, pages and
//! the CSV; no route that changes an entry. Both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{AUTH_ERROR, TestApp, expect_error, expect_json},
    referrals::{call, code_for},
};

contract_tests!(
    every_change_writes_one_entry_with_its_before_and_after,
    refused_changes_write_none,
    filters_pages_and_the_csv_agree,
    no_route_changes_an_entry,
    decisions_retries_and_endpoint_changes_are_recorded,
    raced_updates_each_record_the_value_they_replaced,
);

async fn audit(app: &TestApp, query: &str) -> Value {
    app.admin_json(&format!("/admin/audit{query}")).await
}

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    audit(app, query).await["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect()
}

/// A program (target 100) whose indicated user `bo` has an acquired credit.
/// No entry was written after its change instead of with it (on the embedded store, every
/// audited write takes its entry into its own transaction; the counter is the process's).
async fn no_entry_written_late(app: &TestApp) {
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line == "audit_entries_late_total 0"),
        "{metrics}"
    );
}

/// A webhook endpoint for every event type, made by an admin: its answer.
async fn crm_endpoint(app: &TestApp) -> Value {
    app.admin_expect(
        Method::POST,
        "/admin/webhooks",
        Some(json!({ "url": "https://crm.example.com/hook", "event_types": ["*"] })),
        StatusCode::CREATED,
    )
    .await
}

async fn acquired_credit(app: &TestApp) -> String {
    let program = app.create_program("Friends", json!(10), json!(100)).await;
    app.create_users(&["ana"]).await;
    assert_eq!(
        app.register("ana", "bo").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(app.invoice("bo", json!(150)).await.status(), StatusCode::OK);
    program["id"].as_str().expect("id").to_owned()
}

async fn every_change_writes_one_entry_with_its_before_and_after(app: TestApp) {
    let program = acquired_credit(&app).await;
    let updated = app
        .as_admin(
            Method::PUT,
            &format!("/program/{program}/"),
            Some(json!({ "target_value": 150, "name": "Friends" })),
        )
        .await;
    let request_id = updated
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id")
        .to_owned();
    assert_eq!(updated.status(), StatusCode::OK);
    let reversed = app
        .as_admin(
            Method::POST,
            "/admin/credits/bo/reverse",
            Some(json!({ "reason": "fraud", "note": "same card as ana" })),
        )
        .await;
    assert_eq!(reversed.status(), StatusCode::OK);
    let code = code_for(&app, "cy@example.com", "Cy").await;
    let rules = app
        .as_admin(
            Method::PATCH,
            &format!("/api/referrer/{code}"),
            Some(json!({ "maxRedemptions": 3 })),
        )
        .await;
    assert_eq!(rules.status(), StatusCode::OK);
    let hook = crm_endpoint(&app).await;
    let hook_id = hook["id"].as_str().expect("id");
    let rotated = app
        .as_admin(
            Method::POST,
            &format!("/admin/webhooks/{hook_id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let key = app
        .admin_expect(
            Method::POST,
            "/admin/api-keys",
            Some(json!({ "name": "billing", "role": "service" })),
            StatusCode::CREATED,
        )
        .await;
    let key_id = key["id"].as_str().expect("id");
    let revoked = app
        .as_admin(Method::DELETE, &format!("/admin/api-keys/{key_id}"), None)
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let spare = app.create_program("Spare", json!(1), json!(2)).await;
    let spare = spare["id"].as_str().expect("id");
    let deleted = app
        .as_admin(Method::DELETE, &format!("/program/{spare}/"), None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let log = entries(&app, "").await;
    assert_eq!(
        actions(&log),
        vec![
            "program.delete",
            "program.create",
            "api_key.revoke",
            "api_key.create",
            "webhook.rotate",
            "webhook.create",
            "code.rules",
            "credit.reverse",
            "program.update",
            "program.create",
        ],
        "{log:#?}"
    );
    assert!(log.iter().all(|e| e["completed"] == json!(true)));
    let by = |action: &str| {
        log.iter()
            .find(|e| e["action"] == json!(action))
            .cloned()
            .unwrap_or_else(|| panic!("no {action}"))
    };
    let update = by("program.update");
    assert_eq!(update["actor"], json!("root"));
    assert_eq!(update["role"], json!("admin"));
    assert_eq!(update["target"], json!(program));
    assert_eq!(update["changes"], json!({ "target_value": [100, 150] }));
    assert_eq!(update["request_id"], json!(request_id));
    // The first program was made by the billing service's token.
    assert_eq!(log[9]["actor"], json!("billing"));
    assert_eq!(log[9]["role"], json!("service"));
    assert_eq!(log[9]["changes"]["name"], json!([null, "Friends"]));

    let reverse = by("credit.reverse");
    assert_eq!(reverse["target"], json!("bo"));
    assert_eq!(reverse["reason"], json!("fraud"));
    assert_eq!(reverse["note"], json!("same card as ana"));
    assert_eq!(
        reverse["changes"]["status"],
        json!(["acquired", "reversed"])
    );
    let rules = by("code.rules");
    assert_eq!(rules["target"], json!(code));
    assert_eq!(rules["changes"], json!({ "maxRedemptions": [null, 3] }));
    let rotate = by("webhook.rotate");
    assert_eq!(rotate["target"], json!(hook_id));
    assert!(rotate["changes"]["previous_secret_until"].is_array());
    let text = serde_json::to_string(&log).expect("json");
    assert!(!text.contains("whsec_"), "no secret in the log");
    assert!(!text.contains("rk_") || !text.contains(key["key"].as_str().expect("key")));
    assert_eq!(
        by("api_key.revoke")["changes"]["revoked_at"][0],
        Value::Null
    );
    assert_eq!(
        by("program.delete")["changes"]["name"],
        json!(["Spare", null])
    );
    no_entry_written_late(&app).await;
}

async fn refused_changes_write_none(app: TestApp) {
    let program = acquired_credit(&app).await;
    let before = entries(&app, "").await.len();
    // Not found, in use, not allowed in its state, bad input, not an admin.
    let refused = [
        (
            Method::PUT,
            "/program/0123456789abcdef01234567/".to_owned(),
            json!({ "name": "X" }),
        ),
        (Method::DELETE, format!("/program/{program}/"), json!(null)),
        (
            Method::PUT,
            format!("/program/{program}/"),
            json!({ "name": "" }),
        ),
        (
            Method::POST,
            "/admin/credits/bo/approve".to_owned(),
            json!({}),
        ),
        (
            Method::POST,
            "/admin/credits/bo/reject".to_owned(),
            json!({}),
        ),
        (
            Method::POST,
            "/admin/credits/nobody/reverse".to_owned(),
            json!({ "reason": "fraud" }),
        ),
        (
            Method::POST,
            "/admin/callbacks/nothing/retry".to_owned(),
            json!(null),
        ),
        (
            Method::DELETE,
            "/admin/api-keys/0123".to_owned(),
            json!(null),
        ),
        (
            Method::PATCH,
            "/api/referrer/NOPE-CODE1".to_owned(),
            json!({ "active": false }),
        ),
    ];
    for (verb, path, body) in refused {
        let body = (!body.is_null()).then_some(body);
        let response = app.as_admin(verb.clone(), &path, body).await;
        assert!(
            response.status().is_client_error(),
            "{verb} {path}: {}",
            response.status()
        );
    }
    // Raced: twelve reversals of one credit, one wins.
    let raced = (0..12).map(|_| {
        app.as_admin(
            Method::POST,
            "/admin/credits/bo/reverse",
            Some(json!({ "reason": "refund" })),
        )
    });
    let answers = futures_util::future::join_all(raced).await;
    let won = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
    let log = entries(&app, "").await;
    assert_eq!(log.len(), before + 1, "{log:#?}");
    assert_eq!(log[0]["action"], json!("credit.reverse"));
    assert!(log.iter().all(|e| e["completed"] == json!(true)));
}

async fn filters_pages_and_the_csv_agree(app: TestApp) {
    let key = app
        .admin_expect(
            Method::POST,
            "/admin/api-keys",
            Some(json!({ "name": "ops", "role": "admin" })),
            StatusCode::CREATED,
        )
        .await;
    let ops = format!("Bearer {}", key["key"].as_str().expect("key"));
    let mut programs = Vec::new();
    for i in 0..5 {
        let made = call(
            &app,
            Method::POST,
            "/program/",
            &ops,
            Some(json!({ "name": format!("P{i}"), "credit_value": 1, "target_value": 10 })),
        )
        .await;
        programs.push(expect_json(made, StatusCode::CREATED).await["id"].clone());
    }
    let middle = programs[2].as_str().expect("id");
    let changed = call(
        &app,
        Method::PUT,
        &format!("/program/{middle}/"),
        &ops,
        Some(json!({ "credit_value": "2.50" })),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);

    let by_key = entries(&app, "?actor=key:ops").await;
    assert_eq!(by_key.len(), 6);
    assert!(by_key.iter().all(|e| e["role"] == json!("admin")));
    let creations = entries(&app, "?action=program.create").await;
    assert_eq!(creations.len(), 5);
    let on_middle = entries(&app, &format!("?target={middle}")).await;
    assert_eq!(
        actions(&on_middle),
        vec!["program.update", "program.create"]
    );
    // Money as it was written, digit for digit.
    assert_eq!(
        on_middle[0]["changes"].to_string(),
        r#"{"credit_value":[1,2.50]}"#
    );
    let everything = entries(&app, "").await;
    assert_eq!(everything.len(), 7);
    // Newest first, a page at a time.
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let page = audit(&app, &query).await;
        paged.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, everything);
    let at = |entry: &Value| entry["at"].as_str().expect("at").to_owned();
    let since = at(&everything[3]);
    let until = at(&everything[1]);
    let window = entries(&app, &format!("?since={since}&until={until}")).await;
    assert!(
        window.iter().all(|e| at(e) >= since && at(e) < until),
        "{window:#?}"
    );
    assert!(window.contains(&everything[3]));
    assert!(!window.contains(&everything[0]));

    let csv = app
        .as_admin(Method::GET, "/admin/audit.csv?action=program.create", None)
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header.join(","),
        "id,at,actor,role,action,target,changes,reason,note,request_id,completed"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), creations.len());
    for (row, entry) in rows.iter().zip(&creations) {
        assert_eq!(&row[0], entry["id"].as_str().expect("id"));
        assert_eq!(&row[2], "key:ops");
        let changes: Value = serde_json::from_str(&row[6]).expect("changes as JSON");
        assert_eq!(changes, entry["changes"]);
    }
    let bad = app
        .as_admin(Method::GET, "/admin/audit?since=yesterday", None)
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn no_route_changes_an_entry(app: TestApp) {
    app.create_program("Friends", json!(1), json!(2)).await;
    let log = entries(&app, "").await;
    let id = log[0]["id"].as_str().expect("id");
    for verb in [Method::PUT, Method::PATCH, Method::DELETE, Method::POST] {
        for path in ["/admin/audit".to_owned(), format!("/admin/audit/{id}")] {
            let response = app.as_admin(verb.clone(), &path, Some(json!({}))).await;
            assert!(
                matches!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND
                ),
                "{verb} {path}: {}",
                response.status()
            );
        }
    }
    assert_eq!(entries(&app, "").await, log);
    for path in ["/admin/audit", "/admin/audit.csv"] {
        let response = app.get(path).await;
        expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    }
}

/// The actions the first test leaves out: approvals and rejections of credits in review, a
/// callback retried, a webhook endpoint changed, recovered and deleted.
async fn decisions_retries_and_endpoint_changes_are_recorded(app: TestApp) {
    let program = expect_json(
        app.post_json(
            "/program/",
            json!({ "name": "Reviewed", "credit_value": 5, "target_value": 100, "review": "all" }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let program = program["id"].as_str().expect("id").to_owned();
    app.create_users(&["ana"]).await;
    for user in ["bo", "cy"] {
        let registered = app
            .post_json(
                "/register/",
                json!({ "user_indicator": "ana", "user_indicated": user,
                        "referral_program_id": program }),
            )
            .await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        assert_eq!(app.invoice(user, json!(150)).await.status(), StatusCode::OK);
    }
    let approved = app
        .as_admin(
            Method::POST,
            "/admin/credits/bo/approve",
            Some(json!({ "note": "known customer" })),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let rejected = app
        .as_admin(
            Method::POST,
            "/admin/credits/cy/reject",
            Some(json!({ "reason": "duplicate" })),
        )
        .await;
    assert_eq!(rejected.status(), StatusCode::OK);
    // No callback URL: the signup callbacks wait as pending; an admin may send one now.
    let callbacks = app.admin_json("/admin/callbacks?user_hash=bo").await;
    let callback = callbacks["callbacks"][0]["id"]
        .as_str()
        .expect("a callback")
        .to_owned();
    let retried = app
        .as_admin(
            Method::POST,
            &format!("/admin/callbacks/{callback}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let hook = crm_endpoint(&app).await;
    let hook = hook["id"].as_str().expect("id").to_owned();
    for (verb, path, body) in [
        (
            Method::PATCH,
            format!("/admin/webhooks/{hook}"),
            Some(json!({ "description": "CRM", "enabled": false })),
        ),
        (
            Method::POST,
            format!("/admin/webhooks/{hook}/recover"),
            Some(json!({ "since": "2026-01-01T00:00:00Z" })),
        ),
        (Method::DELETE, format!("/admin/webhooks/{hook}"), None),
    ] {
        let response = app.as_admin(verb.clone(), &path, body).await;
        assert!(response.status().is_success(), "{verb} {path}");
    }

    let log = entries(&app, "").await;
    let by = |action: &str| {
        let found: Vec<&Value> = log
            .iter()
            .filter(|e| e["action"] == json!(action))
            .collect();
        assert_eq!(found.len(), 1, "one {action} entry: {log:#?}");
        found[0].clone()
    };
    let approve = by("credit.approve");
    assert_eq!(approve["target"], json!("bo"));
    assert_eq!(approve["note"], json!("known customer"));
    assert_eq!(
        approve["changes"]["status"],
        json!(["in_review", "acquired"])
    );
    let reject = by("credit.reject");
    assert_eq!(reject["reason"], json!("duplicate"));
    assert_eq!(
        reject["changes"]["status"],
        json!(["in_review", "rejected"])
    );
    let retry = by("callback.retry");
    assert_eq!(retry["target"], json!(callback));
    let update = by("webhook.update");
    assert_eq!(update["changes"]["description"], json!(["", "CRM"]));
    assert_eq!(update["changes"]["enabled"], json!([true, false]));
    let recover = by("webhook.recover");
    assert_eq!(recover["changes"]["queued"], json!([null, 0]));
    let delete = by("webhook.delete");
    assert_eq!(
        delete["changes"]["url"],
        json!(["https://crm.example.com/hook", null])
    );
    assert!(
        log.iter()
            .all(|e| e["actor"] == json!("root") || e["actor"] == json!("billing"))
    );
    no_entry_written_late(&app).await;
}

/// Asserts that a program's document carries no audit entry.
async fn carries_none(
    programs: &mongodb::Collection<mongodb::bson::Document>,
    id: mongodb::bson::oid::ObjectId,
) {
    let stored = programs
        .find_one(mongodb::bson::doc! { "_id": id })
        .await
        .expect("find")
        .expect("the program");
    assert!(
        stored
            .get_array("audit")
            .map_or(true, |carried| carried.is_empty()),
        "{stored:?}"
    );
}

/// On MongoDB a change's entry is written in the changed document itself and moved to the
/// log after it; a request that stopped between the two leaves it in the document, where the
/// next read of the log finds it and moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_left_in_its_document_is_moved_to_the_log() {
    use futures_util::TryStreamExt;
    use mongodb::bson::{Document, doc};

    let database = crate::helpers::fresh_mongo_url();
    let app = TestApp::spawn_with(
        crate::helpers::Backend::Mongo,
        &[("DATABASE_URL", database.as_str())],
    )
    .await;
    let program = app
        .admin_expect(
            Method::POST,
            "/program/",
            Some(json!({ "name": "Friends", "credit_value": "2.50", "target_value": 100 })),
            StatusCode::CREATED,
        )
        .await;
    let program = program["id"].as_str().expect("id").to_owned();
    let updated = app
        .as_admin(
            Method::PUT,
            &format!("/program/{program}/"),
            Some(json!({ "target_value": 150 })),
        )
        .await;
    assert_eq!(updated.status(), StatusCode::OK);

    let client = mongodb::Client::with_uri_str(&database)
        .await
        .expect("client");
    let db = client.default_database().expect("database in the URL");
    let log = db.collection::<Document>("audit");
    let programs = db.collection::<Document>("programs");
    let object_id = mongodb::bson::oid::ObjectId::parse_str(&program).expect("object id");
    // Both entries were moved out of the document that carried them.
    carries_none(&programs, object_id).await;
    // Put the update's entry back where its write left it, as a stop before the move does.
    let entry = log
        .find_one_and_delete(doc! { "action": "program.update" })
        .await
        .expect("find")
        .expect("the update's entry");
    programs
        .update_one(
            doc! { "_id": object_id },
            doc! { "$push": { "audit": entry.clone() } },
        )
        .await
        .expect("push");
    let remaining: Vec<Document> = log
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("entries");
    assert_eq!(remaining.len(), 1);
    // The program reads as before with the entry in it.
    let read = app.admin_json(&format!("/program/{program}/")).await;
    assert_eq!(read["target_value"], json!(150));

    let listed = entries(&app, "").await;
    assert_eq!(actions(&listed), vec!["program.update", "program.create"]);
    assert_eq!(listed[0]["id"], json!(entry.get_str("_id").expect("id")));
    assert_eq!(listed[0]["changes"], json!({ "target_value": [100, 150] }));
    assert_eq!(listed[0]["completed"], json!(true));
    carries_none(&programs, object_id).await;
}

/// Eight admins change one program's `credit_value` at once: every change is written, and each
/// entry's before is the value it really replaced, so that the entries chain from the first
/// value to the last (a write that did not check what it read would record a stale before).
async fn raced_updates_each_record_the_value_they_replaced(app: TestApp) {
    let program = app.create_program("Raced", json!(1), json!(100)).await;
    let id = program["id"].as_str().expect("id");
    let path = format!("/program/{id}/");
    let raced = (2..10)
        .map(|value| app.as_admin(Method::PUT, &path, Some(json!({ "credit_value": value }))));
    for answer in futures_util::future::join_all(raced).await {
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let log = entries(&app, "?action=program.update").await;
    assert_eq!(log.len(), 8, "{log:#?}");
    let value = |v: &Value| v.as_f64().expect("a number");
    let mut moves: Vec<(f64, f64)> = log
        .iter()
        .map(|e| {
            let change = &e["changes"]["credit_value"];
            (value(&change[0]), value(&change[1]))
        })
        .collect();
    let mut current = 1.0;
    while let Some(next) = moves.iter().position(|(before, _)| *before == current) {
        current = moves.swap_remove(next).1;
    }
    assert!(
        moves.is_empty(),
        "entries off the chain: {moves:?} in {log:#?}"
    );
    let now = app.admin_json(&path).await;
    assert_eq!(value(&now["credit_value"]), current);
}
