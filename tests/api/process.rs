//! The release-like binary as an operator runs it: its logs and its stop on SIGTERM.

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::test_secret;

const BINARY: &str = env!("CARGO_BIN_EXE_referral-api");
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Service {
    child: Child,
    url: String,
    secret: String,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Service {
    /// Starts the binary on a fresh port with `vars`, its logs going to `log`.
    async fn start(data_dir: &std::path::Path, secret: &str, log: std::fs::File) -> Self {
        let port = free_port();
        let child = Command::new(BINARY)
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", data_dir)
            .env("JWT_SECRET", secret)
            .env("CALLBACK_SIGNING_SECRET", SIGNING_SECRET)
            .env(
                "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP",
                "http://127.0.0.1:9/credit/%s",
            )
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        let service = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            secret: secret.to_owned(),
            client: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if service
                .client
                .get(service.url("/health"))
                .send()
                .await
                .is_ok()
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the service did not answer");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn token(&self, claims: serde_json::Value) -> String {
        let mut claims = claims;
        claims["exp"] = json!(crate::helpers::now() + 3600);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("token")
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("the service did not stop within 10 s of SIGTERM");
    }
}

/// A walk-through of every kind of caller, with debug logs: the log file names no token, no
/// secret and no whole e-mail address, and every request line carries its request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_walk_through_hold_no_secrets() {
    let data = tempfile::tempdir().expect("dir");
    let log_path = data.path().join("service.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let secret = test_secret();
    let service = Service::start(data.path(), &secret, log).await;
    let billing = service.token(json!({ "sub": "billing", "roles": ["service"] }));
    let admin = service.token(json!({ "sub": "ops", "roles": ["admin"] }));
    let user = service.token(json!({ "sub": "acc-1", "email": "ana.private@example.com" }));
    let bearer = |t: &str| format!("Bearer {t}");
    let c = &service.client;
    let send = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("request").status()
    };
    // Billing sets up a program, a customer, a registration, a payment and an indication.
    for (method, path, body) in [
        (
            Method::POST,
            "/program/",
            json!({ "name": "P", "credit_value": 5, "target_value": 50 }),
        ),
        (Method::POST, "/users/", json!({ "user_hashes": ["ana"] })),
        (
            Method::POST,
            "/register/",
            json!({ "user_indicator": "ana", "user_indicated": "bo" }),
        ),
        (
            Method::PUT,
            "/invoice/user/bo/",
            json!({ "total_amount_paid": 80 }),
        ),
        (
            Method::POST,
            "/emailindication/",
            json!({ "user_indicator": "ana", "emails": "cy.private@example.org" }),
        ),
    ] {
        send(
            c.request(method, service.url(path))
                .header("Authorization", bearer(&billing))
                .json(&body),
        )
        .await;
    }
    let registered = send(
        c.post(service.url("/api/referrer/internal/register"))
            .header("Authorization", &user),
    )
    .await;
    assert_eq!(registered, StatusCode::OK);
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "ana.private@example.com",
    );
    send(
        c.get(service.url(&format!("/api/referrer/{encoded}/referral-code")))
            .header("Authorization", bearer(&admin)),
    )
    .await;
    send(
        c.post(service.url("/api/referee/redeem"))
            .header("Authorization", bearer(&user))
            .json(&json!({ "referralCode": "NOPE-1234567" })),
    )
    .await;
    // A refused token is logged as refused, never printed.
    send(
        c.get(service.url("/api/referrer/internal/referral-code"))
            .header("Authorization", "Bearer not.a.token"),
    )
    .await;
    // Let the worker try (and fail) the callbacks, which logs their errors.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = service.terminate();
    assert!(status.success(), "{status:?}");

    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(logs.contains("request_id"), "{logs}");
    assert!(logs.contains(r#"route="/register/""#), "{logs}");
    for secret_text in [
        billing.as_str(),
        admin.as_str(),
        user.as_str(),
        "not.a.token",
        secret.as_str(),
        SIGNING_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "ana.private@example.com",
        "cy.private@example.org",
        encoded.as_str(),
    ] {
        assert!(
            !logs.contains(secret_text),
            "the logs hold `{secret_text}`:\n{logs}"
        );
    }
    assert!(!logs.contains('\u{1b}'), "colour codes in a log file");
}

/// SIGTERM in the middle of a stream of writes: every write that was answered is stored, the
/// process exits 0, and the store opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_answered_write() {
    let data = tempfile::tempdir().expect("dir");
    let secret = test_secret();
    let log = std::fs::File::create(data.path().join("first.log")).expect("log");
    let service = Service::start(data.path(), &secret, log).await;
    let token = format!(
        "Bearer {}",
        service.token(json!({ "sub": "billing", "roles": ["service"] }))
    );
    let url = service.url("/users/");
    let client = service.client.clone();
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let mut stored = Vec::new();
                for i in 0.. {
                    let hash = format!("w{writer}-{i}");
                    let sent = client
                        .post(&url)
                        .header("Authorization", &token)
                        .json(&json!({ "user_hashes": [hash] }))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            stored.push(hash);
                        }
                        Ok(response) => {
                            assert!(
                                response.status() != StatusCode::INTERNAL_SERVER_ERROR,
                                "500 during shutdown"
                            );
                            break;
                        }
                        Err(_) => break,
                    }
                }
                stored
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .expect("join");
    assert!(status.success(), "exit status {status:?}");
    let mut acknowledged = HashSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 50,
        "the load was too light to mean anything"
    );

    let log = std::fs::File::create(data.path().join("second.log")).expect("log");
    let service = Service::start(data.path(), &secret, log).await;
    let token = format!(
        "Bearer {}",
        service.token(json!({ "sub": "billing", "roles": ["service"] }))
    );
    for hash in &acknowledged {
        let response = service
            .client
            .get(service.url(&format!("/statement/{hash}/")))
            .header("Authorization", &token)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{hash} was answered but not stored"
        );
    }
    assert!(service.terminate().success());
}
