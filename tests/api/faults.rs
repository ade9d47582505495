//! A store that stops answering: fast 503s with `Retry-After`, health 503, and recovery
//! without a restart. MongoDB is reached through a proxy the test can cut and restore.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinSet,
};

use crate::helpers::{Backend, TestApp, fresh_mongo_url};

/// What the proxy does with traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// As a dead server: open connections are dropped, new ones closed at once.
    Cut,
    /// As a hung server: connections stay open and nothing is answered.
    Frozen,
}

/// A TCP proxy to the test MongoDB server, which the test can cut or freeze.
struct Proxy {
    address: String,
    mode: Arc<std::sync::Mutex<Mode>>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let mode = Arc::new(std::sync::Mutex::new(Mode::Forward));
        let cut = Arc::new(Notify::new());
        let (mode_now, cut_signal) = (mode.clone(), cut.clone());
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        let current = *mode_now.lock().expect("mode");
                        match current {
                            Mode::Cut => continue, // dropped: closed at once
                            Mode::Frozen => held.push(client),
                            Mode::Forward => {
                                let (upstream, mode) = (upstream.clone(), mode_now.clone());
                                connections.spawn(forward(client, upstream, mode));
                            }
                        }
                    }
                    () = cut_signal.notified() => {
                        connections.abort_all();
                        held.clear();
                    }
                }
            }
        });
        Self { address, mode, cut }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
        if mode == Mode::Cut {
            self.cut.notify_one();
        }
    }
}

/// Copies both ways while the proxy forwards; swallows everything while it is frozen.
async fn forward(mut client: TcpStream, upstream: String, mode: Arc<std::sync::Mutex<Mode>>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_in, mut client_out) = client.split();
    let (mut server_in, mut server_out) = server.split();
    let (mut up, mut down) = ([0u8; 16 * 1024], [0u8; 16 * 1024]);
    loop {
        let frozen = || *mode.lock().expect("mode") == Mode::Frozen;
        tokio::select! {
            read = client_in.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) if !frozen() => if server_out.write_all(&up[..n]).await.is_err() { return },
                Ok(_) => {}
            },
            read = server_in.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) if !frozen() => if client_out.write_all(&down[..n]).await.is_err() { return },
                Ok(_) => {}
            },
        }
    }
}

/// An app on MongoDB through a proxy, with DATABASE_TIMEOUT=1s.
async fn app_behind_proxy() -> (TestApp, Proxy) {
    let direct = fresh_mongo_url();
    let scheme_end = direct.find("://").map_or(0, |i| i + 3);
    let hosts_end = direct[scheme_end..]
        .find('/')
        .map_or(direct.len(), |i| scheme_end + i);
    let proxy = Proxy::start(direct[scheme_end..hosts_end].to_owned()).await;
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
    (app, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_gives_fast_503s_and_recovers() {
    let (app, proxy) = app_behind_proxy().await;
    app.create_program("P", json!(1), json!(2)).await;

    proxy.set(Mode::Cut);
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
    assert_eq!(app.health().await, StatusCode::SERVICE_UNAVAILABLE);

    proxy.set(Mode::Forward);
    assert_recovers(&app).await;
    assert_eq!(app.health().await, StatusCode::OK);
    assert_eq!(
        app.create_users_response(&["bo"]).await.status(),
        StatusCode::CREATED
    );
}

/// A server that keeps its connections open and answers nothing: every MongoDB call has
/// DATABASE_TIMEOUT, so each request gets its 503 within about one timeout, reads and writes
/// alike, never a hang or a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_hangs_gives_503s_within_one_timeout() {
    let (app, proxy) = app_behind_proxy().await;
    let program = app.create_program("P", json!(1), json!(2)).await["id"]
        .as_str()
        .expect("program id")
        .to_owned();
    proxy.set(Mode::Frozen);
    let read = format!("/program/{program}/");
    for (what, request) in [
        ("read", app.request(Method::GET, &read)),
        (
            "write",
            app.request(Method::POST, "/users/")
                .json(&json!({ "user_hashes": ["bo"] })),
        ),
        ("statement", app.request(Method::GET, "/statement/ana/")),
    ] {
        let started = Instant::now();
        let response = request.send().await.expect("send");
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: no Retry-After"
        );
        // DATABASE_TIMEOUT is 1 s; without a deadline on each call this takes 2-5 s.
        assert!(
            took < Duration::from_millis(1_750),
            "{what} answered after {took:?}"
        );
    }
    proxy.set(Mode::Forward);
    assert_recovers(&app).await;
}

/// Once the store answers again, reads succeed within 10 s without a restart.
async fn assert_recovers(app: &TestApp) {
    for _ in 0..100 {
        if app.get("/program/").await.status() == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not recover once the store answered again");
}
