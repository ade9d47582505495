//! Tokens and roles: who may call which route.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{AUTH_ERROR, Backend, TestApp, expect_error, expect_json, now},
};

contract_tests!(
    program_routes_refuse_a_missing_token,
    program_routes_refuse_an_expired_token,
    program_routes_refuse_a_wrong_signature,
    program_routes_refuse_another_algorithm,
    program_routes_refuse_alg_none,
    program_routes_refuse_a_token_without_sub_or_exp,
    program_routes_refuse_a_token_without_the_role,
    bare_and_bearer_tokens_are_accepted,
);

async fn get_with(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/program/"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.expect("request")
}

/// The program list refuses `authorization` with 401 and the authentication sentence.
async fn refused(app: &TestApp, authorization: Option<&str>) {
    expect_error(
        get_with(app, authorization).await,
        StatusCode::UNAUTHORIZED,
        AUTH_ERROR,
    )
    .await;
}

/// The program list answers `authorization` with 200.
async fn accepted(app: &TestApp, authorization: Option<&str>) {
    expect_json(get_with(app, authorization).await, StatusCode::OK).await;
}

fn sign(alg: Algorithm, key: EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign")
}

async fn program_routes_refuse_a_missing_token(app: TestApp) {
    refused(&app, None).await;
    for (method, path) in [
        (Method::POST, "/program/"),
        (Method::GET, "/program/0123456789abcdef01234567/"),
        (Method::PUT, "/program/0123456789abcdef01234567/"),
        (Method::DELETE, "/program/0123456789abcdef01234567/"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .expect("request");
        expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    }
    refused(&app, Some("Bearer")).await;
    refused(&app, Some("Basic dXNlcjpwdw==")).await;
    refused(&app, Some("Bearer not.a.jwt")).await;
}

async fn program_routes_refuse_an_expired_token(app: TestApp) {
    let token =
        app.token_with(json!({ "sub": "billing", "roles": ["service"], "exp": now() - 3600 }));
    refused(&app, Some(&format!("Bearer {token}"))).await;
}

async fn program_routes_refuse_a_wrong_signature(app: TestApp) {
    let forged = sign(
        Algorithm::HS256,
        EncodingKey::from_secret(b"another-secret-another-secret-another"),
        &json!({ "sub": "billing", "roles": ["admin"], "exp": now() + 600 }),
    );
    refused(&app, Some(&forged)).await;

    // A valid token whose payload was swapped for one with more roles.
    let valid = app.token("user-1", &[]);
    let parts: Vec<&str> = valid.split('.').collect();
    let payload = URL_SAFE_NO_PAD
        .encode(json!({ "sub": "user-1", "roles": ["admin"], "exp": now() + 600 }).to_string());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    refused(&app, Some(&tampered)).await;
}

async fn program_routes_refuse_another_algorithm(app: TestApp) {
    let claims = json!({ "sub": "billing", "roles": ["admin"], "exp": now() + 600 });
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(
            alg,
            EncodingKey::from_secret(app.secret.as_bytes()),
            &claims,
        );
        refused(&app, Some(&token)).await;
    }
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_private.pem")).expect("rsa key");
    let token = sign(Algorithm::RS256, rsa, &claims);
    refused(&app, Some(&token)).await;
}

async fn program_routes_refuse_alg_none(app: TestApp) {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(json!({ "sub": "billing", "roles": ["admin"], "exp": now() + 600 }).to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        refused(&app, Some(&token)).await;
    }
}

async fn program_routes_refuse_a_token_without_sub_or_exp(app: TestApp) {
    let no_sub = app.token_with(json!({ "roles": ["admin"] }));
    refused(&app, Some(&no_sub)).await;
    let no_exp = sign(
        Algorithm::HS256,
        EncodingKey::from_secret(app.secret.as_bytes()),
        &json!({ "sub": "billing", "roles": ["admin"] }),
    );
    refused(&app, Some(&no_exp)).await;
}

async fn program_routes_refuse_a_token_without_the_role(app: TestApp) {
    for roles in [json!([]), json!(["user"]), json!(["Admin"])] {
        let token = app.token_with(json!({ "sub": "someone", "roles": roles }));
        refused(&app, Some(&token)).await;
    }
    let response = app
        .client
        .post(app.url("/program/"))
        .header("Authorization", app.token("someone", &[]))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}

async fn bare_and_bearer_tokens_are_accepted(app: TestApp) {
    for token in [
        app.token("billing", &["service"]),
        app.token("ops", &["admin"]),
    ] {
        for value in [
            token.clone(),
            format!("Bearer {token}"),
            format!("bearer {token}"),
        ] {
            accepted(&app, Some(&value)).await;
        }
    }
}

async fn spawn_with_public_key(pem_file: &str) -> TestApp {
    let path = format!("{}/tests/fixtures/{pem_file}", env!("CARGO_MANIFEST_DIR"));
    TestApp::spawn_with(
        Backend::Embedded,
        &[("JWT_SECRET", ""), ("JWT_PUBLIC_KEY", &path)],
    )
    .await
}

#[tokio::test]
async fn rs256_public_key_verifies_rs256_tokens_only() {
    let app = spawn_with_public_key("rsa_public.pem").await;
    let claims = json!({ "sub": "billing", "roles": ["service"], "exp": now() + 600 });
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_private.pem")).expect("key");
    accepted(&app, Some(&sign(Algorithm::RS256, rsa, &claims))).await;

    // The classic confusion: the public key used as an HMAC secret.
    let public = include_bytes!("../fixtures/rsa_public.pem");
    let confused = sign(Algorithm::HS256, EncodingKey::from_secret(public), &claims);
    refused(&app, Some(&confused)).await;
    let ec = EncodingKey::from_ec_pem(include_bytes!("../fixtures/ec_private.pem")).expect("key");
    refused(&app, Some(&sign(Algorithm::ES256, ec, &claims))).await;
}

#[tokio::test]
async fn es256_public_key_verifies_es256_tokens_only() {
    let app = spawn_with_public_key("ec_public.pem").await;
    let claims = json!({ "sub": "billing", "roles": ["admin"], "exp": now() + 600 });
    let ec = EncodingKey::from_ec_pem(include_bytes!("../fixtures/ec_private.pem")).expect("key");
    accepted(&app, Some(&sign(Algorithm::ES256, ec, &claims))).await;
    let rsa =
        EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa_private.pem")).expect("key");
    refused(&app, Some(&sign(Algorithm::RS256, rsa, &claims))).await;
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[
            ("JWT_ISSUER", "https://id.example"),
            ("JWT_AUDIENCE", "referral-api"),
        ],
    )
    .await;
    let good = app.token_with(json!({ "sub": "b", "roles": ["service"], "iss": "https://id.example", "aud": "referral-api" }));
    accepted(&app, Some(&good)).await;
    for claims in [
        json!({ "sub": "b", "roles": ["service"], "iss": "https://evil.example", "aud": "referral-api" }),
        json!({ "sub": "b", "roles": ["service"], "iss": "https://id.example", "aud": "other" }),
        json!({ "sub": "b", "roles": ["service"], "aud": "referral-api" }),
        json!({ "sub": "b", "roles": ["service"], "iss": "https://id.example" }),
    ] {
        let token = app.token_with(claims.clone());
        refused(&app, Some(&token)).await;
    }
}

#[tokio::test]
async fn legacy_routes_auth_none_opens_the_program_routes_only() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("LEGACY_ROUTES_AUTH", "none")]).await;
    let response = app
        .client
        .post(app.url("/program/"))
        .form(&[("name", "open")])
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::CREATED).await;
    accepted(&app, None).await;
    let response = app
        .without_token(Method::GET, "/api/referrer/internal/referral-code")
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}

/// The `token` command of the binary mints tokens the service accepts, with the key an
/// embedded deployment generated for itself in DATA_DIR.
#[tokio::test]
async fn token_command_mints_with_the_generated_key() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("JWT_SECRET", "")]).await;
    assert!(app.data_path().join("jwt-secret").exists());
    let mint = |role: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_referral-api"));
        command.env_clear().env("DATA_DIR", app.data_path()).args([
            "token",
            "--sub",
            "ops",
            "--email",
            "ops@example.com",
            "--ttl",
            "10m",
        ]);
        if let Some(role) = role {
            command.args(["--role", role]);
        }
        let output = command.output().expect("run referral-api token");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    accepted(&app, Some(&mint(Some("admin")))).await;
    accepted(&app, Some(&mint(Some("service")))).await;
    refused(&app, Some(&mint(None))).await;
}

#[tokio::test]
async fn token_command_refuses_to_mint_with_only_a_public_key() {
    let path = format!(
        "{}/tests/fixtures/rsa_public.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_referral-api"))
        .env_clear()
        .env("JWT_PUBLIC_KEY", path)
        .args(["token", "--sub", "ops"])
        .output()
        .expect("run referral-api token");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_PUBLIC_KEY"));
}
