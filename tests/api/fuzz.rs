//! Property tests of request parsing: whatever the body, form, money, e-mail list, code,
//! base64 e-mail or path, the service answers without a panic and without a 5xx.

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

/// Field names the routes read, so that generated objects reach the parsers behind them.
const FIELDS: &[&str] = &[
    "name",
    "credit_value",
    "target_value",
    "is_default",
    "user_hash",
    "user_hashes",
    "user_indicator",
    "user_indicated",
    "referral_program",
    "total_amount_paid",
    "emails",
    "email",
    "firstName",
    "lastName",
    "referralCode",
    "accountId",
    "promoCode",
    "expiresAt",
    "maxRedemptions",
    "active",
];

/// Text that looks like money, almost money, or nothing like it.
fn money() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{1,4})?",
        "(NaN|inf|-inf|1e999999|0x10|1_000|١٢٣|,5|5,)",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        money().prop_map(Value::from),
        "[a-zA-Z0-9@.+_ -]{0,40}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A body: JSON of any shape, or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => "\\{[\"a-z:, 0-9\\[\\]{}]{0,60}".prop_map(String::into_bytes),
    ]
}

/// A form body with the routes' field names and generated values.
fn form() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(FIELDS), money()), 0..6).prop_map(|pairs| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    })
}

/// A path segment: printable, percent-encoded, or base64 of arbitrary bytes.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,300}",
        any::<String>().prop_map(|s| {
            percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|bytes| {
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, bytes)
        }),
        "(%00|%2F|%2e%2e|\\.\\.|%FF|%C0%AF|%)",
    ]
}

const JSON_ROUTES: &[(&str, &str)] = &[
    ("POST", "/program/"),
    ("PUT", "/program/{x}/"),
    ("POST", "/users/"),
    ("POST", "/register/"),
    ("PUT", "/invoice/user/{x}/"),
    ("POST", "/emailindication/"),
    ("POST", "/emailverification/"),
    ("POST", "/api/referrer/external/register"),
    ("POST", "/api/referee/redeem"),
    ("POST", "/api/referee/apply"),
    ("POST", "/api/landlord/register"),
    ("PATCH", "/api/referrer/{x}"),
];

const PATH_ROUTES: &[(&str, &str)] = &[
    ("GET", "/program/{x}/"),
    ("DELETE", "/program/{x}/"),
    ("GET", "/statement/{x}/"),
    ("GET", "/api/referrer/{x}/referral-code"),
    ("GET", "/api/referrer?referrerCode={x}"),
    ("GET", "/api/referee/u/{x}"),
    ("GET", "/api/referee/check/{x}"),
    ("GET", "/admin/callbacks/{x}"),
    ("GET", "/admin/callbacks?status={x}&after={x}&limit={x}"),
    ("GET", "/{x}"),
];

#[derive(Clone, Debug)]
enum Content {
    Json(Vec<u8>),
    Form(String),
    None,
}

fn case() -> impl Strategy<Value = (&'static str, &'static str, String, Content, bool)> {
    let json = (
        prop::sample::select(JSON_ROUTES),
        segment(),
        body(),
        any::<bool>(),
    )
        .prop_map(|((m, p), seg, body, admin)| (m, p, seg, Content::Json(body), admin));
    let forms = (
        prop::sample::select(&JSON_ROUTES[..7]),
        segment(),
        form(),
        any::<bool>(),
    )
        .prop_map(|((m, p), seg, form, admin)| (m, p, seg, Content::Form(form), admin));
    let paths = (prop::sample::select(PATH_ROUTES), segment(), any::<bool>())
        .prop_map(|((m, p), seg, admin)| (m, p, seg, Content::None, admin));
    prop_oneof![2 => json, 1 => forms, 2 => paths]
}

#[test]
fn no_input_gets_a_server_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(async {
        let app = TestApp::spawn(Backend::Embedded).await;
        app.create_program("Fuzz", json!(10), json!(100)).await;
        app.create_users(&["ana"]).await;
        app
    });
    let admin = format!("Bearer {}", app.token("root", &["admin"]));
    let user = format!("Bearer {}", app.token("acc-1", &[]));
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |(method, template, segment, content, as_admin)| {
        let path = template.replace("{x}", &segment);
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = app
            .client
            .request(method, app.url(&path))
            .header("Authorization", if as_admin { &admin } else { &user });
        request = match content {
            Content::Json(bytes) => request
                .header("content-type", "application/json")
                .body(bytes),
            Content::Form(form) => request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
            Content::None => request,
        };
        let status = runtime
            .block_on(request.send())
            .map_err(|e| TestCaseError::fail(format!("no answer for {path}: {e}")))?
            .status();
        prop_assert!(
            status.as_u16() < 500,
            "{status} for {template} with {segment:?}"
        );
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
