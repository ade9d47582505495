//! The service's overhead on MongoDB, as a ratio: the same operations done directly with the
//! driver on the same database, beside the routes that do them.
//!
//! - `GET /program/{id}/` against one `find_one` on `programs` by `_id`;
//! - `POST /users/` (a fresh hash) against what the route does: a `find` of the hash in `users`,
//!   an `updateOne` `$inc` of the program's user count and an `insertMany` of the user.
//!
//! Both sides run `CONCURRENCY` tasks for `SECONDS` each, in this process (the HTTP client's work
//! counts against the service). The service writes with its default write concern (majority,
//! journaled), and so does the driver side.
//!
//!     cargo run --release --example bench_mongo_ratio -- MONGODB_URL [SECONDS] [CONCURRENCY]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::TryStreamExt;
use jsonwebtoken::{EncodingKey, Header};
use mongodb::{
    Client,
    bson::{Document, doc, oid::ObjectId},
    options::{Acknowledgment, WriteConcern},
};
use referral_api::{config::Config, startup::Application};
use serde_json::json;

const SECRET: &str = "bench-only-jwt-secret-0123456789abcdef";

/// This process's user + system CPU seconds so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `op` from `concurrency` tasks for `seconds`; returns operations a second and the
/// process's CPU microseconds per operation.
async fn rate<F, Fut>(seconds: u64, concurrency: usize, op: F) -> (f64, f64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, done, failed, stop, counter) = (
                op.clone(),
                done.clone(),
                failed.clone(),
                stop.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if op(n).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        eprintln!("  ({failures} failed)");
    }
    let ops = done.load(Ordering::Relaxed) as f64;
    let cpu = cpu_seconds() - cpu_before;
    (
        ops / started.elapsed().as_secs_f64(),
        cpu / ops.max(1.0) * 1e6,
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .expect("usage: bench_mongo_ratio MONGODB_URL [SECONDS] [CONCURRENCY]");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let db_name = format!(
        "bench_ratio_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let url = format!("{}/{db_name}", base.trim_end_matches('/'));
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = Config::from_vars([
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("DATA_DIR", data_dir.path().to_str().expect("utf-8 path")),
        ("DATABASE_URL", url.as_str()),
        ("JWT_SECRET", SECRET),
        ("RUST_LOG", "warn"),
    ])
    .expect("configuration");
    let app = Application::build(config).await.expect("application");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let token = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": "bench", "roles": ["service"], "exp": 4_000_000_000u64 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token");
    let http = reqwest::Client::new();
    let program: serde_json::Value = http
        .post(format!("{address}/program/"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Ratio", "credit_value": 1, "target_value": 10 }))
        .send()
        .await
        .expect("program")
        .json()
        .await
        .expect("program json");
    let program_id = program["id"].as_str().expect("id").to_owned();
    let oid = ObjectId::parse_str(&program_id).expect("object id");

    let client = Client::with_uri_str(&url).await.expect("driver");
    let db = client.database_with_options(
        &db_name,
        mongodb::options::DatabaseOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
            )
            .build(),
    );
    let programs = db.collection::<Document>("programs");
    let users = db.collection::<Document>("users");

    println!(
        "| operation | service req/s | driver ops/s | service / driver | service CPU µs/req (with its HTTP client) | driver CPU µs/op |"
    );
    println!("|---|---|---|---|---|---|");
    let report = |name: &str, service: (f64, f64), driver: (f64, f64)| {
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            service.0,
            driver.0,
            service.0 / driver.0.max(f64::MIN_POSITIVE),
            service.1,
            driver.1
        );
    };

    let service = {
        let (http, token, address, id) = (
            http.clone(),
            token.clone(),
            address.clone(),
            program_id.clone(),
        );
        rate(seconds, concurrency, move |_| {
            let (http, token, url) = (
                http.clone(),
                token.clone(),
                format!("{address}/program/{id}/"),
            );
            async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    };
    let driver = {
        let programs = programs.clone();
        rate(seconds, concurrency, move |_| {
            let programs = programs.clone();
            async move {
                programs
                    .find_one(doc! { "_id": oid })
                    .await
                    .is_ok_and(|d| d.is_some())
            }
        })
        .await
    };
    report("`GET /program/{id}/` vs `find_one`", service, driver);

    let service = {
        let (http, token, address) = (http.clone(), token.clone(), address.clone());
        rate(seconds, concurrency, move |n| {
            let (http, token, url) = (http.clone(), token.clone(), format!("{address}/users/"));
            async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&json!({ "user_hash": format!("s{n}") }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    };
    let driver = {
        let (programs, users) = (programs.clone(), users.clone());
        rate(seconds, concurrency, move |n| {
            let (programs, users) = (programs.clone(), users.clone());
            async move {
                let hash = format!("d{n}");
                let found: Result<Vec<Document>, _> = match users
                    .find(doc! { "_id": { "$in": [&hash] } })
                    .projection(doc! { "_id": 1 })
                    .await
                {
                    Ok(cursor) => cursor.try_collect().await,
                    Err(err) => Err(err),
                };
                if found.is_err() {
                    return false;
                }
                let counted = programs
                    .update_one(doc! { "_id": oid }, doc! { "$inc": { "user_count": 1 } })
                    .await
                    .is_ok();
                let now = mongodb::bson::DateTime::now();
                let inserted = users
                    .insert_many([doc! {
                        "_id": &hash, "user_indicator": null, "program_id": oid,
                        "total_amount_paid": mongodb::bson::Decimal128::from_bytes([0; 16]),
                        "created_at": now,
                    }])
                    .ordered(false)
                    .await
                    .is_ok();
                counted && inserted
            }
        })
        .await
    };
    report(
        "`POST /users/` vs find + updateOne + insertMany",
        service,
        driver,
    );
}
