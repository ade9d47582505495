//! A store that stops answering: fast 503s with `Retry-After`, health 503, and recovery
//! without a restart. MongoDB is reached through a proxy the test can cut and restore.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};

use crate::helpers::{Backend, TestApp, fresh_mongo_url};

/// A TCP proxy to the test MongoDB server. While cut, open connections are dropped and new
/// ones are closed at once, as with a server that died.
struct Proxy {
    address: String,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up_flag, cut_signal) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        if !up_flag.load(Ordering::SeqCst) {
                            continue; // dropped: closed at once
                        }
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    () = cut_signal.notified() => connections.abort_all(),
                }
            }
        });
        Self { address, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_one();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_gives_fast_503s_and_recovers() {
    let direct = fresh_mongo_url();
    let scheme_end = direct.find("://").map_or(0, |i| i + 3);
    let hosts_end = direct[scheme_end..]
        .find('/')
        .map_or(direct.len(), |i| scheme_end + i);
    let upstream = direct[scheme_end..hosts_end].to_owned();
    let proxy = Proxy::start(upstream).await;
    // directConnection: the server may name itself by its own address, which would bypass the
    // proxy.
    let rest = &direct[hosts_end..];
    let joiner = if rest.contains('?') { '&' } else { '?' };
    let url = format!(
        "mongodb://{}{rest}{joiner}directConnection=true",
        proxy.address
    );
    let app = TestApp::spawn_with(
        Backend::Mongo,
        &[("DATABASE_URL", url.as_str()), ("DATABASE_TIMEOUT", "1s")],
    )
    .await;
    app.create_program("P", json!(1), json!(2)).await;

    proxy.cut();
    // The proxy task drops the open connections as soon as it runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for path in ["/program/", "/statement/ana/"] {
        let started = Instant::now();
        let response = app.get(path).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{path} took {took:?}");
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body = response.text().await.expect("body");
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {body} after {took:?}"
        );
        assert_eq!(
            retry_after.as_ref().map(|v| v.to_str().ok()),
            Some(Some("1"))
        );
        assert_eq!(body, r#"{"error":"Storage unavailable"}"#);
    }
    let write = app.create_users_response(&["bo"]).await;
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..100 {
        let response = app.get("/program/").await;
        if response.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the service did not recover once the store answered again"
    );
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        app.create_users_response(&["bo"]).await.status(),
        StatusCode::CREATED
    );
}
