//! `TestApp`: the real application on a random port, on a fresh store of either backend.

use std::{path::Path, sync::Arc};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use referral_api::{
    callbacks::{CallbackFilter, CreditEvent, CreditEventType},
    clock::ShiftedClock,
    config::Config,
    indication::{LedgerEntry, LedgerOperation},
    startup::Application,
    stores::Stores,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Mongo,
}

/// Generates, for each named `async fn name(app: TestApp)`, one test per backend:
/// `module::embedded::name` and `module::mongo::name`; likewise, after `;`, for each
/// `async fn name(backend: Backend)` (tests that start their apps themselves).
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)? $(; $($own:ident),+ $(,)?)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Embedded).await).await
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $own() {
                    super::$own($crate::helpers::Backend::Embedded).await
                }
            )+)?
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Mongo).await).await
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $own() {
                    super::$own($crate::helpers::Backend::Mongo).await
                }
            )+)?
        }
    };
}

/// Generates, for each named `async fn name(backend: Backend)` (tests that start their apps
/// themselves), one test per backend: `module::embedded::name` and `module::mongo::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Mongo).await
                }
            )*
        }
    };
}

/// The HS256 secret every test app verifies with (tests only).
pub fn test_secret() -> String {
    format!("test-secret-{}", uuid::Uuid::new_v4().simple())
}

/// A MongoDB URL naming a database of its own, on the server of `TEST_MONGODB_URL`.
pub fn fresh_mongo_url() -> String {
    let base = std::env::var("TEST_MONGODB_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_MONGODB_URL is not set: run scripts/test.sh, which starts a MongoDB-compatible \
             server, or point TEST_MONGODB_URL at a MongoDB server"
        )
    });
    let (address, query) = match base.split_once('?') {
        Some((address, query)) => (address.to_owned(), format!("?{query}")),
        None => (base.clone(), String::new()),
    };
    let scheme_end = address.find("://").map_or(0, |i| i + 3);
    let hosts_end = address[scheme_end..]
        .find('/')
        .map_or(address.len(), |i| scheme_end + i);
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    format!("{}/{db}{query}", &address[..hosts_end])
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub secret: String,
    pub data_dir: TempDir,
    /// The app's own stores, to read back what HTTP does not show (ledger, outbox).
    pub stores: Stores,
    /// The clock of the app's background work (releases, deliveries): `advance` it to reach
    /// release dates days away.
    pub clock: Arc<ShiftedClock>,
    vars: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Spawns with extra environment variables (they override the test defaults).
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let secret = test_secret();
        let mut vars: Vec<(String, String)> = vec![
            ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
            ("DATA_DIR".into(), data_dir.path().display().to_string()),
            ("JWT_SECRET".into(), secret.clone()),
            // Tests send many requests as end users; the rate-limit tests turn limits back on.
            ("RATE_LIMIT_ACCOUNT".into(), "0".into()),
            ("RATE_LIMIT_IP".into(), "0".into()),
        ];
        if backend == Backend::Mongo {
            vars.push(("DATABASE_URL".into(), fresh_mongo_url()));
            // The test server answers a few hundred operations a second, shared by every test
            // running at once: a call may queue for seconds. The fault tests set their own.
            vars.push(("DATABASE_TIMEOUT".into(), "15s".into()));
        }
        for (name, value) in extra {
            vars.retain(|(n, _)| n != name);
            if !value.is_empty() {
                vars.push(((*name).into(), (*value).into()));
            }
        }
        Self::start(backend, vars, data_dir, secret, Arc::default()).await
    }

    async fn start(
        backend: Backend,
        vars: Vec<(String, String)>,
        data_dir: TempDir,
        mut secret: String,
        clock: Arc<ShiftedClock>,
    ) -> Self {
        init_test_logs();
        let config = Config::from_vars(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect("test config");
        // After a restart, a connection task of the old server may still be dropping its
        // handle on the embedded file on another thread for a moment after the server stopped.
        let mut attempts = 0;
        let app = loop {
            match Application::build(config.clone()).await {
                Ok(app) => break app.with_clock(clock.clone()),
                Err(err) if attempts < 100 && err.to_string().contains("already open") => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(err) => panic!("application starts: {err:?}"),
            }
        };
        if !vars.iter().any(|(name, _)| name == "JWT_SECRET") {
            // No secret configured: sign test tokens with the key the app generated.
            if let Ok(generated) = std::fs::read_to_string(data_dir.path().join("jwt-secret")) {
                secret = generated.trim().to_owned();
            }
        }
        let address = format!("http://{}", app.local_addr());
        let stores = app.stores().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            address,
            client: reqwest::Client::new(),
            backend,
            secret,
            data_dir,
            stores,
            clock,
            vars,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// The MongoDB URL of the app's own database; `None` on the embedded store.
    pub fn database_url(&self) -> Option<&str> {
        self.vars
            .iter()
            .find(|(name, _)| name == "DATABASE_URL")
            .map(|(_, url)| url.as_str())
    }

    /// Stops the server and starts a new one with the same configuration and data.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        self.start_again().await
    }

    /// Kills the server as a crash would (no graceful stop: requests and deliveries in flight
    /// are dropped where they stand), then starts a new one with the same configuration and data.
    pub async fn crash_and_restart(mut self) -> Self {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.shutdown.take();
        self.start_again().await
    }

    async fn start_again(mut self) -> Self {
        let data_dir =
            std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"));
        let vars = std::mem::take(&mut self.vars);
        let (backend, secret, clock) = (self.backend, self.secret.clone(), self.clock.clone());
        // The old stores must be gone: the embedded file admits one owner at a time.
        drop(self);
        Self::start(backend, vars, data_dir, secret, clock).await
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server stops cleanly");
        }
    }

    /// The whole ledger, read from the app's store.
    pub async fn ledger(&self) -> Vec<LedgerEntry> {
        self.stores.ledger.ledger().await.expect("ledger")
    }

    /// The ledger's entries of one operation, in the ledger's order.
    pub async fn entries(&self, operation: LedgerOperation) -> Vec<LedgerEntry> {
        let mut ledger = self.ledger().await;
        ledger.retain(|entry| entry.operation == operation);
        ledger
    }

    /// The one ledger entry of this operation (fails unless there is exactly one).
    pub async fn only_entry(&self, operation: LedgerOperation) -> LedgerEntry {
        let mut entries = self.entries(operation).await;
        assert_eq!(entries.len(), 1, "{operation:?} entries");
        entries.remove(0)
    }

    /// The one event of this type in the outbox (fails unless there is exactly one).
    pub async fn only_event(&self, event_type: CreditEventType) -> CreditEvent {
        let mut events = self.events(event_type).await;
        assert_eq!(events.len(), 1, "{event_type:?} events");
        events.remove(0)
    }

    /// The events of this type in the outbox, oldest first.
    pub async fn events(&self, event_type: CreditEventType) -> Vec<CreditEvent> {
        self.stores
            .callbacks
            .list(&CallbackFilter {
                limit: usize::MAX,
                ..CallbackFilter::default()
            })
            .await
            .expect("outbox")
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }

    /// `GET /program/{id}/stats/`, expected to answer 200.
    pub async fn stats(&self, program: &str) -> Value {
        expect_json(
            self.get(&format!("/program/{program}/stats/")).await,
            StatusCode::OK,
        )
        .await
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A token signed with the app's secret.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.token_with(json!({ "sub": sub, "roles": roles }))
    }

    /// A token with these claims (`exp` added, one hour ahead, unless given).
    pub fn token_with(&self, mut claims: Value) -> String {
        if claims.get("exp").is_none() {
            claims["exp"] = json!(now() + 3600);
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .expect("sign token")
    }

    /// The status of `GET /health`, asked without a token.
    pub async fn health(&self) -> StatusCode {
        self.client
            .get(self.url("/health"))
            .send()
            .await
            .expect("health")
            .status()
    }

    pub fn service_token(&self) -> String {
        self.token("billing", &["service"])
    }

    /// `PUT /invoice/user/{hash}/` that answers 200: its JSON.
    pub async fn paid(&self, hash: &str, total: Value) -> Value {
        expect_json(self.invoice(hash, total).await, StatusCode::OK).await
    }

    /// `GET /metrics` (no token): the exposition's text.
    pub async fn metrics(&self) -> String {
        let response = self.without_token(Method::GET, "/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("body")
    }

    /// The `Authorization` value of an admin's token (`sub` `root`).
    pub fn admin_auth(&self) -> String {
        format!("Bearer {}", self.token("root", &["admin"]))
    }

    /// An admin's request, with a JSON body if any.
    pub async fn as_admin(&self, verb: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .request(verb, self.url(path))
            .header("Authorization", self.admin_auth());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    /// The JSON body of an admin request answered `status`.
    pub async fn admin_expect(
        &self,
        verb: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        expect_json(self.as_admin(verb, path, body).await, status).await
    }

    /// The JSON body of an admin `GET` answered 200.
    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin_expect(Method::GET, path, None, StatusCode::OK)
            .await
    }

    /// Polls an admin `GET` until `done` holds for its body (at most 20 s): that body.
    pub async fn wait_for_admin(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let body = self.admin_json(path).await;
            if done(&body) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("GET {path} never reached the expected state");
    }

    /// Polls an admin list until `done` holds for its `key` array (at most 20 s): that array.
    pub async fn wait_for_items(
        &self,
        path: &str,
        key: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let items = |page: &Value| page[key].as_array().cloned().unwrap_or_default();
        let page = self.wait_for_admin(path, |page| done(&items(page))).await;
        items(&page)
    }

    /// A request with no token.
    pub async fn without_token(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// A request with a service token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {}", self.service_token()))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.request(Method::POST, path)
            .form(fields)
            .send()
            .await
            .expect("request")
    }

    pub async fn put_json(&self, path: &str, body: Value) -> Response {
        self.request(Method::PUT, path)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("request")
    }

    /// `POST /users/` with these hashes, whatever the answer.
    pub async fn create_users_response(&self, hashes: &[&str]) -> Response {
        self.post_json("/users/", json!({ "user_hashes": hashes }))
            .await
    }

    /// Creates users (no indicator) through `POST /users/`.
    pub async fn create_users(&self, hashes: &[&str]) -> Value {
        expect_json(
            self.post_json("/users/", json!({ "user_hashes": hashes }))
                .await,
            StatusCode::CREATED,
        )
        .await
    }

    pub async fn register(&self, indicator: &str, indicated: &str) -> Response {
        self.post_json(
            "/register/",
            json!({ "user_indicator": indicator, "user_indicated": indicated }),
        )
        .await
    }

    /// `POST /register/` of `indicated` by `indicator` in `program`.
    pub async fn register_in(&self, indicator: &str, indicated: &str, program: &str) -> Response {
        self.post_json(
            "/register/",
            json!({ "user_indicator": indicator, "user_indicated": indicated,
                    "referral_program_id": program }),
        )
        .await
    }

    /// Registers each of `indicated` by `indicator` in `program`, each answered 201.
    pub async fn registered_in(&self, indicator: &str, indicated: &[&str], program: &str) {
        for hash in indicated {
            let response = self.register_in(indicator, hash, program).await;
            assert_eq!(response.status(), StatusCode::CREATED, "{hash}");
        }
    }

    /// `POST /program/` named `name` (credit 5, target 100) with `rules` added, answered 201:
    /// its id.
    pub async fn program_with_rules(&self, name: &str, rules: Value) -> String {
        let mut body = json!({ "name": name, "credit_value": 5, "target_value": 100 });
        if let (Some(body), Some(rules)) = (body.as_object_mut(), rules.as_object()) {
            body.extend(rules.clone());
        }
        let program =
            expect_json(self.post_json("/program/", body).await, StatusCode::CREATED).await;
        program["id"].as_str().expect("id").to_owned()
    }

    pub async fn invoice(&self, hash: &str, total: Value) -> Response {
        self.put_json(
            &format!("/invoice/user/{hash}/"),
            json!({ "total_amount_paid": total }),
        )
        .await
    }

    /// Creates a program and returns its JSON.
    pub async fn create_program(&self, name: &str, credit: Value, target: Value) -> Value {
        let response = self
            .post_json(
                "/program/",
                json!({ "name": name, "credit_value": credit, "target_value": target }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("program json")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Polls a receiver (billing, a webhook endpoint) until it has received `count` requests (at
/// most 15 s).
pub async fn wait_for_requests(
    server: &wiremock::MockServer,
    count: usize,
) -> Vec<wiremock::Request> {
    for _ in 0..300 {
        let received = server.received_requests().await.unwrap_or_default();
        if received.len() >= count {
            return received;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the receiver did not get {count} requests");
}

/// A header of a request a receiver got, as text.
pub fn header<'a>(request: &'a wiremock::Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Reads a JSON body, asserting the status first (and showing the body when it differs).
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error response: status and the exact `{"error": sentence}`.
pub async fn expect_error(response: Response, status: StatusCode, sentence: &str) {
    let body = expect_json(response, status).await;
    assert_eq!(body, json!({ "error": sentence }));
}

/// Asserts an error response with this status and some sentence, returned.
pub async fn expect_error_status(response: Response, status: StatusCode) -> String {
    let body = expect_json(response, status).await;
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error sentence in {body}"))
        .to_owned()
}

pub const AUTH_ERROR: &str = "Authentication error. Probably the authorization token is not correct or the user does not have the right role to access this service.";

/// Logs of the app under test, only when TEST_LOG is set.
fn init_test_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        referral_api::telemetry::init(referral_api::config::LogFormat::Text);
    }
}

/// Each indicated user's credit state, replayed from the ledger.
pub fn replay(ledger: &[LedgerEntry]) -> std::collections::HashMap<String, &'static str> {
    let mut states = std::collections::HashMap::new();
    for entry in ledger {
        let state = match entry.operation {
            LedgerOperation::PotencialCredit | LedgerOperation::CreditCancelled => "pending",
            LedgerOperation::CreditHeld => "held",
            LedgerOperation::CreditInReview => "in_review",
            LedgerOperation::AcquiredCredit => "acquired",
            LedgerOperation::CreditCapped => "capped",
            LedgerOperation::CreditRejected => "rejected",
            LedgerOperation::CreditReversed => "reversed",
            _ => continue,
        };
        states.insert(entry.user_indicated.clone(), state);
    }
    states
}

/// Runs the binary's import `command` on `file` into the embedded store in `data`, with no
/// other variable set; once it ended well, what it printed: standard output, then error.
pub fn run_import(command: &str, file: &Path, data: &Path) -> (String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_referral-api"))
        .env_clear()
        .env("DATA_DIR", data)
        .arg(command)
        .arg(file)
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// A receiver (billing, a webhook endpoint) that answers every POST with `answer`.
/// The first `times` POSTs `server` receives get `response`, before any other mock of lower
/// `priority`.
pub async fn first_answers(
    server: &wiremock::MockServer,
    times: u64,
    priority: u8,
    response: wiremock::ResponseTemplate,
) {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(response)
        .up_to_n_times(times)
        .with_priority(priority)
        .mount(server)
        .await;
}

pub async fn answering(answer: wiremock::ResponseTemplate) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}
