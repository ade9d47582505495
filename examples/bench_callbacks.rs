//! Callback delivery throughput: events delivered per second to a local receiver that answers
//! 200 at once.
//!
//! First the service runs without a callback URL while `EVENTS` registrations queue one
//! `signup_credit` event each; then it is started again with the URL, and the clock runs from
//! that start until the receiver has counted every event. On MongoDB the time includes the relay
//! of events from user documents into the `callbacks` collection.
//!
//!     cargo run --release --example bench_callbacks -- [EVENTS] [CONCURRENCY] [MONGODB_URL]
//!
//! Without a MongoDB URL the embedded store is measured (in a fresh temporary directory); with
//! one, a fresh database named `bench_callbacks_<time>` on that server.
//!
//! With `BENCH_WEBHOOKS=N`, webhook deliveries are measured instead of Part C's callbacks: `N`
//! endpoints subscribed to every event type are made (switched off) before the registrations,
//! switched on at the second start, and the clock runs until the receiver has counted
//! `EVENTS × N` deliveries (the fan-out of events into deliveries included).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, routing::post};
use futures_util::{StreamExt, stream};
use jsonwebtoken::{EncodingKey, Header};
use referral_api::{config::Config, startup::Application};
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

const SECRET: &str = "bench-only-jwt-secret-0123456789abcdef";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type Running = (String, oneshot::Sender<()>, JoinHandle<()>);

async fn start(vars: &[(&str, &str)]) -> Running {
    let config = Config::from_vars(vars.iter().copied()).expect("configuration");
    // The previous run's connections may hold the embedded file for a moment after it stopped.
    let mut tries = 0;
    let app = loop {
        match Application::build(config.clone()).await {
            Ok(app) => break app,
            Err(err) if tries < 100 && err.to_string().contains("already open") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("application: {err}"),
        }
    };
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("serves");
    });
    (address, stop, task)
}

async fn stop((_, stop, task): Running) {
    let _ = stop.send(());
    task.await.expect("stops");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let concurrency = args.get(1).cloned().unwrap_or_else(|| "8".to_owned());
    let mongodb = args.get(2).cloned();

    let webhooks: usize = std::env::var("BENCH_WEBHOOKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let received = Arc::new(AtomicUsize::new(0));
    let count_one = {
        let counter = received.clone();
        move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }
    };
    let receiver = Router::new()
        .route("/credit/{hash}", post(count_one.clone()))
        .route("/hook", post(count_one));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver_at = listener.local_addr().expect("addr");
    let callback_url = format!("http://{receiver_at}/credit/%s");
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let data_dir = tempfile::tempdir().expect("temp dir");
    let data = data_dir.path().display().to_string();
    let database = mongodb.map(|url| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("{}/bench_callbacks_{stamp}", url.trim_end_matches('/'))
    });
    let mut base = vec![
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("DATA_DIR", data.as_str()),
        ("JWT_SECRET", SECRET),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("CALLBACK_CONCURRENCY", concurrency.as_str()),
    ];
    if let Some(url) = &database {
        base.push(("DATABASE_URL", url.as_str()));
    }
    let backend = if database.is_some() {
        "mongodb"
    } else {
        "embedded"
    };

    // Queue the events with no callback URL.
    let queueing = start(&base).await;
    let token = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": "bench", "roles": ["service", "admin"], "exp": 4_000_000_000u64 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token");
    let client = reqwest::Client::new();
    let call = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", queueing.0))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let program = json!({ "name": "Bench", "credit_value": 1, "target_value": 10 });
    assert!(
        call("/program/", program)
            .await
            .expect("program")
            .status()
            .is_success()
    );
    let ana = json!({ "user_hashes": ["ana"] });
    assert!(
        call("/users/", ana)
            .await
            .expect("users")
            .status()
            .is_success()
    );
    let mut endpoints = Vec::new();
    for _ in 0..webhooks {
        let made: serde_json::Value = call(
            "/admin/webhooks",
            json!({ "url": format!("http://{receiver_at}/hook"), "event_types": ["*"] }),
        )
        .await
        .expect("webhook")
        .json()
        .await
        .expect("webhook json");
        let id = made["id"].as_str().expect("webhook id").to_owned();
        switch(&client, &token, &queueing.0, &id, false).await;
        endpoints.push(id);
    }
    let queued_since = Instant::now();
    let created = stream::iter(0..events)
        .map(|i| {
            call(
                "/register/",
                json!({ "user_indicator": "ana", "user_indicated": format!("u{i}") }),
            )
        })
        .buffer_unordered(32)
        .filter(|r| std::future::ready(r.as_ref().is_ok_and(|r| r.status().as_u16() == 201)))
        .count()
        .await;
    assert_eq!(created, events, "every registration queues one event");
    let queued_in = queued_since.elapsed();
    stop(queueing).await;

    // Deliver them.
    let mut delivering_vars = base.clone();
    if webhooks == 0 {
        delivering_vars.extend([
            ("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", callback_url.as_str()),
            ("CALLBACK_SIGNING_SECRET", SIGNING),
        ]);
    }
    let expected = events * webhooks.max(1);
    let started = Instant::now();
    let delivering = start(&delivering_vars).await;
    for id in &endpoints {
        switch(&client, &token, &delivering.0, id, true).await;
    }
    let deadline = started + Duration::from_secs(600);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let count = received.load(Ordering::Relaxed);
    stop(delivering).await;
    assert_eq!(count, expected, "every delivery made exactly once");

    let what = if webhooks == 0 {
        "callbacks".to_owned()
    } else {
        format!("webhooks × {webhooks}")
    };
    println!(
        "| {backend} | {what} | {events} | {concurrency} | {:.2} s | {:.0} | ({events} events queued in {:.2} s) |",
        elapsed.as_secs_f64(),
        expected as f64 / elapsed.as_secs_f64(),
        queued_in.as_secs_f64(),
    );
}

/// Switches the webhook endpoint `id` of the service at `base` on or off.
async fn switch(client: &reqwest::Client, token: &str, base: &str, id: &str, enabled: bool) {
    let answer = client
        .patch(format!("{base}/admin/webhooks/{id}"))
        .bearer_auth(token)
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .expect("switch an endpoint");
    assert!(answer.status().is_success());
}
