//! Program figures and statements kept as running totals: exact while registrations, payments,
//! folds of the totals and reads race, and rebuilt once from the users stored before them.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use referral_api::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{Backend, TestApp, expect_json},
};

contract_tests!(
    figures_stay_exact_while_moves_folds_and_reads_race,
    totals_of_users_stored_before_them_are_made_once,
);

const ROUNDS: usize = 4;
const INDICATED: usize = 32;
const CROSSING: usize = 16;
const FOLDERS: usize = 6;

/// What the figures show of the race: indicated users and acquired credits, each of which only
/// grows while users register and cross the target.
fn progress(stats: &Value, statement: &Value) -> (u64, u64, u64) {
    let count = |value: &Value| value.as_u64().unwrap_or_else(|| panic!("count: {value}"));
    (
        count(&stats["indicated_users"]),
        count(&stats["credits"]["acquired"]),
        count(&statement["indicated_users"]),
    )
}

/// One pass of folding the changes waiting into the figures' totals: how many it folded
/// (always 0 on the embedded store, which has nothing to fold).
async fn fold(app: &TestApp) -> usize {
    app.stores
        .indication
        .fold_figures(app.clock.now())
        .await
        .expect("fold")
}

/// Folds until no change is left waiting.
async fn fold_all(app: &TestApp) {
    while fold(app).await > 0 {}
}

async fn read(app: &TestApp, program: &str) -> (Value, Value) {
    let stats = app.stats(program).await;
    let statement = expect_json(app.get("/statement/ana/").await, StatusCode::OK).await;
    (stats, statement)
}

async fn figures_stay_exact_while_moves_folds_and_reads_race(app: TestApp) {
    let app = Arc::new(app);
    let program = app.create_program("Race", json!(5), json!(100)).await;
    let program = program["id"].as_str().expect("id").to_owned();
    app.create_users(&["ana"]).await;
    let done = Arc::new(AtomicBool::new(false));
    // A reader that checks every read: never more than there is, never less than before.
    let reader = {
        let (app, done, program) = (app.clone(), done.clone(), program.clone());
        tokio::spawn(async move {
            let mut last = (0, 0, 0);
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let (stats, statement) = read(&app, &program).await;
                let now = progress(&stats, &statement);
                assert!(
                    now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2,
                    "figures went back from {last:?} to {now:?}"
                );
                assert!(
                    now.0 <= INDICATED as u64
                        && now.1 <= CROSSING as u64
                        && now.2 <= INDICATED as u64,
                    "figures beyond what happened: {now:?}"
                );
                last = now;
                reads += 1;
            }
            reads
        })
    };
    // Rounds of registrations, then payments with folds racing them and each other (the app's
    // own figures worker folds too).
    let mut credited = rust_decimal::Decimal::ZERO;
    for round in 0..ROUNDS {
        let registrations: Vec<_> = (0..INDICATED / ROUNDS)
            .map(|i| {
                let (app, program) = (app.clone(), program.clone());
                tokio::spawn(async move {
                    app.register_in("ana", &format!("u{round}-{i}"), &program)
                        .await
                        .status()
                })
            })
            .collect();
        for registration in registrations {
            assert_eq!(registration.await.expect("task"), StatusCode::CREATED);
        }
        let folding = Arc::new(AtomicBool::new(true));
        let folders: Vec<_> = (0..FOLDERS)
            .map(|_| {
                let (app, folding) = (app.clone(), folding.clone());
                tokio::spawn(async move {
                    while folding.load(Ordering::SeqCst) {
                        if fold(&app).await == 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    }
                })
            })
            .collect();
        let payments: Vec<_> = (0..CROSSING / ROUNDS)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    expect_json(
                        app.invoice(&format!("u{round}-{i}"), json!(150)).await,
                        StatusCode::OK,
                    )
                    .await
                })
            })
            .collect();
        for payment in payments {
            let body = payment.await.expect("task");
            assert_eq!(body["credit_status"], "acquired", "{body}");
            credited += body["acquired_credit"]
                .to_string()
                .parse::<rust_decimal::Decimal>()
                .expect("amount");
        }
        folding.store(false, Ordering::SeqCst);
        for folder in folders {
            folder.await.expect("folder");
        }
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.await.expect("reader") > 0);
    fold_all(&app).await;
    let (stats, statement) = read(&app, &program).await;
    assert_eq!(stats["indicated_users"], json!(INDICATED));
    // The program's users: ana, imported while it was the only program, and those it indicated.
    assert_eq!(stats["users"], json!(INDICATED + 1));
    assert_eq!(
        stats["credits"],
        json!({ "pending": INDICATED - CROSSING, "held": 0, "in_review": 0,
                "acquired": CROSSING, "capped": 0, "rejected": 0, "reversed": 0 })
    );
    assert_eq!(
        stats["acquired_credit_total"]
            .to_string()
            .parse::<rust_decimal::Decimal>()
            .expect("total"),
        credited
    );
    assert_eq!(statement["indicated_users"], json!(INDICATED));
    assert_eq!(statement["acquired_credit"], stats["acquired_credit_total"]);
}

/// On MongoDB, a database written before the running totals existed (here: the totals and the
/// record of their migration removed) gets them from its users at the next start, once. The
/// embedded store has kept its figures in each write's transaction from the start.
async fn totals_of_users_stored_before_them_are_made_once(app: TestApp) {
    let program = app.create_program("Before", json!(5), json!(100)).await;
    let program = program["id"].as_str().expect("id").to_owned();
    app.create_users(&["ana"]).await;
    for i in 0..4 {
        assert_eq!(
            app.register_in("ana", &format!("b{i}"), &program)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    expect_json(app.invoice("b0", json!(100)).await, StatusCode::OK).await;
    fold_all(&app).await;
    let before = read(&app, &program).await;
    assert_eq!(before.0["indicated_users"], json!(4));
    assert_eq!(before.0["credits"]["acquired"], json!(1));
    if app.backend == Backend::Mongo {
        let url = app
            .database_url()
            .expect("a MongoDB app has a database URL");
        let client = mongodb::Client::with_uri_str(url).await.expect("client");
        let db = client.default_database().expect("database in the URL");
        db.collection::<mongodb::bson::Document>("indication_figures")
            .drop()
            .await
            .expect("drop the totals");
        let removed = db
            .collection::<mongodb::bson::Document>("schema_migrations")
            .delete_one(mongodb::bson::doc! { "_id": 8 })
            .await
            .expect("forget the migration");
        assert_eq!(removed.deleted_count, 1);
        let gone = read(&app, &program).await;
        assert_eq!(gone.0["indicated_users"], json!(0));
    }
    let app = app.restart().await;
    assert_eq!(read(&app, &program).await, before);
    // And after a second start, which finds the migration applied.
    let app = app.restart().await;
    assert_eq!(read(&app, &program).await, before);
}
