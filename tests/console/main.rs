//! The admin console in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! through `fantoccini`), against the release binary on each storage backend, with a wiremock
//! server as the billing service. Run by `scripts/console-test.sh`, which installs the browser
//! and builds the binary; screenshots of every page go to `target/console-screenshots/`.
//!
//! What it checks, as an admin would do it: sign in; see a program made through the API; edit
//! it, and read the API's own sentence for a bad value; approve a credit in review (billing
//! receives the callback); reject one with a reason and find it in the audit log; retry a
//! failed callback; limit a referral code; a revoked key brings back the sign-in; sign out
//! clears the tab's storage; no console error and no CSP violation on any page; at 360 px no
//! page scrolls sideways.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, wd::WebDriverCompatibleCommand};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path, path_regex},
};

const SECRET: &str = "console-test-jwt-secret-0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on port {port}");
}

fn binary() -> PathBuf {
    let path = std::env::var_os("CONSOLE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/referral-api")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/console-test.sh, which builds it",
        path.display()
    );
    path
}

fn token(roles: &[&str]) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": "console-admin", "roles": roles, "exp": 4_000_000_000u64 }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

/// The service, started from the release binary.
struct Service {
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
    _process: Running,
}

impl Service {
    async fn start(mongodb: Option<&str>, billing: &MockServer) -> Self {
        let port = free_port();
        let data = tempfile::tempdir().expect("a data dir");
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", data.path())
            .env("JWT_SECRET", SECRET)
            .env("RATE_LIMIT_ACCOUNT", "0")
            .env("RATE_LIMIT_IP", "0")
            .env("RUST_LOG", "warn")
            .env(
                "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP",
                format!("{}/credit/%s", billing.uri()),
            )
            .env("CALLBACK_RETRY_SCHEDULE", "50ms")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = mongodb {
            command
                .env("DATABASE_URL", url)
                .env("DATABASE_TIMEOUT", "15s");
        }
        let process = Running(command.spawn().expect("the service starts"));
        wait_for_port(port, "the service").await;
        Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _data: data,
            _process: process,
        }
    }

    async fn call(&self, verb: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(verb.clone(), format!("{}{path}", self.base))
            .bearer_auth(token(&["admin", "service"]));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        assert!(status.is_success(), "{verb} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// chromedriver's log endpoint (not in W3C WebDriver): the browser console's entries.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

struct Browser {
    client: Client,
    shots: PathBuf,
    backend: &'static str,
}

impl Browser {
    async fn open(webdriver: u16, backend: &'static str) -> Self {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        caps.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
        // chromedriver is on this machine: plain HTTP, no TLS.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{webdriver}"))
            .await
            .expect("a browser session");
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&shots).expect("a screenshot folder");
        Self {
            client,
            shots,
            backend,
        }
    }

    async fn find(&self, xpath: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(xpath))
            .await
        {
            Ok(element) => element,
            Err(err) => {
                let page = self
                    .client
                    .execute("return document.body.innerText;", Vec::new())
                    .await
                    .unwrap_or_default();
                let log = self.client.issue_cmd(BrowserLog).await.unwrap_or_default();
                panic!(
                    "[{}] no {xpath}: {err}\npage:\n{}\nconsole: {log:#}",
                    self.backend,
                    page.as_str().unwrap_or_default()
                )
            }
        }
    }

    /// The control labelled `label` (its `<label>` starts with that text).
    async fn control(&self, label: &str) -> fantoccini::elements::Element {
        self.find(&format!(
            "//label[starts-with(normalize-space(.), '{label}')]//*[self::input or self::select]"
        ))
        .await
    }

    async fn button(&self, name: &str) -> fantoccini::elements::Element {
        self.find(&format!("//button[normalize-space(.)='{name}']"))
            .await
    }

    async fn type_into(&self, label: &str, text: &str) {
        let control = self.control(label).await;
        control.clear().await.expect("cleared");
        control.send_keys(text).await.expect("typed");
    }

    async fn press(&self, name: &str) {
        self.button(name).await.click().await.expect("clicked");
    }

    /// Signs in with `token` (an admin token or API key) on the sign-in form.
    async fn sign_in(&self, token: &str) {
        self.type_into("Admin token or API key", token).await;
        self.press("Sign in").await;
    }

    async fn link(&self, text: &str) {
        self.find(&format!("//a[normalize-space(.)='{text}']"))
            .await
            .click()
            .await
            .expect("followed");
    }

    /// Waits until the page shows `text` somewhere.
    async fn sees(&self, text: &str) {
        self.find(&format!("//*[contains(normalize-space(.), \"{text}\")]"))
            .await;
    }

    async fn heading(&self, text: &str) {
        self.find(&format!("//h2[normalize-space(.)='{text}']"))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("a script runs")
    }

    /// Saves a screenshot, and checks the page at 360 px wide: nothing scrolls sideways.
    async fn page_done(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{}-{name}.png", self.backend)), png)
            .expect("the screenshot is saved");
        self.client
            .set_window_size(360, 800)
            .await
            .expect("a narrow window");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let overflow = self
            .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(1) <= 0,
            "[{}] {name} scrolls sideways at 360 px by {overflow}",
            self.backend
        );
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(
            self.shots.join(format!("{}-{name}-360.png", self.backend)),
            png,
        )
        .expect("the screenshot is saved");
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("a wide window");
        self.no_console_errors(name).await;
    }

    /// No console error and no CSP violation so far. A failed request's own line ("Failed to
    /// load resource: … 4xx") is the browser reporting an API refusal the page shows, and is
    /// not counted.
    async fn no_console_errors(&self, page: &str) {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser log");
        let problems: Vec<&Value> = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| {
                        let message = entry["message"].as_str().unwrap_or_default();
                        (entry["level"] == "SEVERE" || message.contains("Content Security Policy"))
                            && !message.contains("Failed to load resource")
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            problems.is_empty(),
            "[{}] console errors on {page}: {problems:#?}",
            self.backend
        );
    }
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

async fn billing_requests(billing: &MockServer, user: &str) -> Vec<String> {
    billing
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == format!("/credit/{user}"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

async fn run(backend: &'static str, mongodb: Option<String>, webdriver: u16) {
    let billing = MockServer::start().await;
    // Dave's signup callback fails twice (its whole schedule), then billing takes it.
    Mock::given(method("POST"))
        .and(path("/credit/dave"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&billing)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/credit/.*"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&billing)
        .await;
    let service = Service::start(mongodb.as_deref(), &billing).await;

    // Set up through the API, as billing would.
    let program = service
        .post(
            "/program/",
            json!({ "name": "Friends", "credit_value": 5, "target_value": "100.00", "review": "all" }),
        )
        .await;
    let program_id = program["id"].as_str().expect("id").to_owned();
    service
        .post("/users/", json!({ "user_hashes": ["ana"] }))
        .await;
    for user in ["bo", "cy", "dave"] {
        service
            .post(
                "/register/",
                json!({ "user_indicator": "ana", "user_indicated": user }),
            )
            .await;
    }
    for user in ["bo", "cy"] {
        service
            .call(
                reqwest::Method::PUT,
                &format!("/invoice/user/{user}/"),
                Some(json!({ "total_amount_paid": 150 })),
            )
            .await;
    }
    let code = service
        .post(
            "/api/referrer/external/register",
            json!({ "email": "rita@example.com", "firstName": "Rita", "lastName": "Ruiz" }),
        )
        .await["referralCode"]
        .as_str()
        .expect("a code")
        .to_owned();
    wait_until("dave's callback fails", || async {
        let failed = service.get("/admin/callbacks?status=failed").await;
        failed["callbacks"].as_array().is_some_and(|c| c.len() == 1)
    })
    .await;

    let browser = Browser::open(webdriver, backend).await;
    let b = &browser;
    b.client
        .goto(&format!("{}/console/", service.base))
        .await
        .expect("the console loads");

    // Sign in.
    b.heading("Sign in").await;
    b.page_done("sign-in").await;
    b.sign_in("not-a-token").await;
    b.sees("That token or key was refused").await;
    b.sign_in(&token(&["admin"])).await;

    // The program made through the API, with its figures.
    b.heading("Programs").await;
    b.find("//a[normalize-space(.)='Friends']").await;
    b.page_done("programs").await;
    b.link("Friends").await;
    b.heading("Friends").await;
    b.find("//*[local-name()='svg' and @role='img']").await;
    b.page_done("program").await;

    // Edit it; a bad value shows the API's sentence as it is.
    b.type_into("Hold days", "999").await;
    b.press("Save changes").await;
    let sentence = b
        .find("//p[@role='alert' and normalize-space(.)!='']")
        .await
        .text()
        .await
        .expect("an error sentence");
    assert!(sentence.contains("hold_days"), "{sentence}");
    b.type_into("Hold days", "0").await;
    b.type_into("Target value", "120.50").await;
    b.press("Save changes").await;
    wait_until("the program is saved", || async {
        let program = service.get(&format!("/program/{program_id}/")).await;
        // Money exact, digit for digit.
        format!("{}", program["target_value"]) == "120.50"
    })
    .await;

    // The review queue: approve bo (billing receives ana's credit), reject cy with a reason.
    b.link("Review queue").await;
    b.heading("Review queue").await;
    b.find("//a[normalize-space(.)='bo']").await;
    b.page_done("review").await;
    b.press("Approve bo").await;
    wait_until("billing receives the acquired credit", || async {
        billing_requests(&billing, "ana")
            .await
            .iter()
            .any(|body| body.contains("event_type=acquired_credit"))
    })
    .await;
    b.find("//a[normalize-space(.)='cy']").await;
    b.control("Reason for cy")
        .await
        .select_by_value("fraud")
        .await
        .expect("a reason");
    b.type_into("Note for cy", "same card as bo").await;
    b.press("Reject cy").await;
    wait_until("cy is rejected", || async {
        service.get("/admin/credits/cy").await["status"] == json!("rejected")
    })
    .await;

    // The audit log shows the rejection with its reason.
    b.link("Audit log").await;
    b.heading("Audit log").await;
    b.find("//tr[td[normalize-space(.)='credit.reject'] and td[normalize-space(.)='cy'] and td[normalize-space(.)='fraud']]")
        .await;
    b.page_done("audit").await;

    // Deliveries: retry dave's failed callback.
    b.link("Deliveries").await;
    b.heading("Deliveries").await;
    let retry = b
        .find("//button[starts-with(normalize-space(.), 'Retry ')]")
        .await;
    b.page_done("deliveries").await;
    retry.click().await.expect("retried");
    wait_until("billing takes dave's callback", || async {
        billing_requests(&billing, "dave").await.len() >= 3
    })
    .await;
    wait_until("dave's callback is delivered", || async {
        let delivered = service
            .get("/admin/callbacks?status=delivered&user_hash=dave")
            .await;
        delivered["callbacks"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;

    // Look-up of a user hash.
    b.link("Look-up").await;
    b.type_into("User hash", "ana").await;
    b.press("Look up").await;
    b.find("//h3[normalize-space(.)='Statement of ana']").await;
    b.page_done("lookup").await;

    // Referral codes: limit one.
    b.link("Referral codes").await;
    b.type_into("Referral code", &code).await;
    b.press("Find").await;
    b.find(&format!("//h3[normalize-space(.)='{code}']")).await;
    b.type_into("Redemption limit", "5").await;
    b.press("Save rules").await;
    wait_until("the code is limited", || async {
        service
            .get(&format!("/api/referrer?referrerCode={code}"))
            .await["maxRedemptions"]
            == json!(5)
    })
    .await;
    b.page_done("codes").await;

    // An API key revoked while signed in brings back the sign-in, with a message.
    b.press("Sign out").await;
    let key = service
        .post(
            "/admin/api-keys",
            json!({ "name": "console", "role": "admin" }),
        )
        .await;
    b.sign_in(key["key"].as_str().expect("a key")).await;
    // Signed in again, the console stays on the page it was on.
    b.heading("Referral codes").await;
    service
        .call(
            reqwest::Method::DELETE,
            &format!("/admin/api-keys/{}", key["id"].as_str().expect("id")),
            None,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    b.link("Audit log").await;
    b.sees("Your session ended").await;

    // Signing in again, then out: the tab's storage no longer holds the token.
    b.sign_in(&token(&["admin"])).await;
    b.heading("Audit log").await;
    assert!(
        b.script("return sessionStorage.getItem('referral-api.token');")
            .await
            .is_string()
    );
    b.press("Sign out").await;
    b.heading("Sign in").await;
    assert_eq!(
        b.script("return sessionStorage.getItem('referral-api.token');")
            .await,
        Value::Null
    );
    b.no_console_errors("the whole run").await;
    browser.client.close().await.expect("the browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_a_program_in_a_real_browser() {
    let port = free_port();
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let _driver = Running(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/console-test.sh installs it)"),
    );
    wait_for_port(port, "chromedriver").await;
    run("embedded", None, port).await;
    let base = std::env::var("TEST_MONGODB_URL")
        .expect("TEST_MONGODB_URL: scripts/console-test.sh starts a test MongoDB");
    let stamp = uuid::Uuid::new_v4().simple();
    let url = format!("{}/console_{stamp}", base.trim_end_matches('/'));
    run("mongodb", Some(url), port).await;
}
