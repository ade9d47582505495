//! Referrers, referral codes and their redemption over HTTP, with the seed's sentences.

use std::{collections::HashSet, io::Cursor, sync::Arc};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use referral_api::referrals::import::import_referrers;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{AUTH_ERROR, TestApp, expect_error, expect_error_status, expect_json},
};

contract_tests!(
    external_register_returns_a_code_once_per_email,
    external_register_refuses_bad_bodies_and_roles,
    code_by_email_accepts_every_base64_form,
    code_by_email_refuses_garbage_and_other_users,
    referrer_by_code_matches_any_case_and_masks_for_end_users,
    internal_register_is_idempotent,
    twenty_concurrent_internal_registrations_give_one_code,
    redeem_answers_in_the_seed_order,
    redeem_refuses_bad_bodies,
    apply_is_for_admins_and_calls_unknown_codes_invalid,
    landlord_register_is_deprecated_but_works,
    referee_lookups_show_only_own_records_to_end_users,
    a_hundred_concurrent_redemptions_store_one_code,
    import_keeps_codes_and_reports_bad_lines,
);

const BAD_BODY: &str =
    "The body of request is wrong. Check name of field and which fields are required.";

pub fn user_token(app: &TestApp, sub: &str, email: &str) -> String {
    app.token_with(
        json!({ "sub": sub, "email": email, "given_name": "Albert", "family_name": "Zabala" }),
    )
}

const INTERNAL_REGISTER: &str = "/api/referrer/internal/register";
const EXTERNAL_REGISTER: &str = "/api/referrer/external/register";
const LANDLORD_REGISTER: &str = "/api/landlord/register";
const REDEEM: &str = "/api/referee/redeem";

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("Authorization", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn register_external(app: &TestApp, body: Value) -> Response {
    call(
        app,
        Method::POST,
        EXTERNAL_REGISTER,
        &app.service_token(),
        Some(body),
    )
    .await
}

/// Registers an external referrer and returns its code.
pub async fn code_for(app: &TestApp, email: &str, first_name: &str) -> String {
    let body = json!({ "email": email, "firstName": first_name, "lastName": "Zabala" });
    let body = expect_json(register_external(app, body).await, StatusCode::OK).await;
    body["referralCode"].as_str().expect("code").to_owned()
}

pub async fn redeem(app: &TestApp, token: &str, code: &str) -> Response {
    call(
        app,
        Method::POST,
        REDEEM,
        token,
        Some(json!({ "referralCode": code })),
    )
    .await
}

async fn external_register_returns_a_code_once_per_email(app: TestApp) {
    let body =
        json!({ "email": " Email@Molt-Bonic.com ", "firstName": "Albert", "lastName": "Zabala" });
    let first = expect_json(register_external(&app, body).await, StatusCode::OK).await;
    let code = first["referralCode"].as_str().expect("code").to_owned();
    assert!(code.starts_with("ALBE-"), "{code}");
    assert_eq!(first["email"], "email@molt-bonic.com");
    assert_eq!(first["firstName"], "Albert");
    assert_eq!(first["lastName"], "Zabala");

    let again = call(
        &app,
        Method::POST,
        EXTERNAL_REGISTER,
        &app.token("ops", &["admin"]),
        Some(json!({ "email": "email@molt-bonic.com", "firstName": "Other" })),
    )
    .await;
    let again = expect_json(again, StatusCode::OK).await;
    assert_eq!(again["referralCode"], code.as_str());
    assert_eq!(
        again["firstName"], "Albert",
        "the existing referrer is returned as it is"
    );

    let seed_spelling = json!({ "email": "fist@example.com", "fistName": "Zoe" });
    let body = expect_json(register_external(&app, seed_spelling).await, StatusCode::OK).await;
    assert!(
        body["referralCode"]
            .as_str()
            .is_some_and(|c| c.starts_with("ZOE-"))
    );
    let no_names = expect_json(
        register_external(&app, json!({ "email": "42@example.com" })).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        no_names["referralCode"]
            .as_str()
            .is_some_and(|c| c.starts_with("REF-")),
        "{no_names}"
    );
}

async fn external_register_refuses_bad_bodies_and_roles(app: TestApp) {
    for body in [
        json!({}),
        json!([]),
        json!("email@x.com"),
        json!({ "email": 5 }),
        json!({ "mail": "a@example.com" }),
        json!({ "email": "a@example.com", "firstName": { "$ne": 1 } }),
    ] {
        expect_error(
            register_external(&app, body).await,
            StatusCode::BAD_REQUEST,
            BAD_BODY,
        )
        .await;
    }
    let broken = app
        .client
        .post(app.url(EXTERNAL_REGISTER))
        .header("Authorization", app.service_token())
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("request");
    expect_error(broken, StatusCode::BAD_REQUEST, BAD_BODY).await;
    for email in ["not-an-email", "a@b", "Ana <ana@example.com>"] {
        let response = register_external(&app, json!({ "email": email })).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable entity. Email is not valid.",
        )
        .await;
    }
    let end_user = user_token(&app, "acc-1", "me@example.com");
    let response = call(
        &app,
        Method::POST,
        EXTERNAL_REGISTER,
        &end_user,
        Some(json!({ "email": "x@example.com" })),
    )
    .await;
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    let response = app
        .client
        .post(app.url(EXTERNAL_REGISTER))
        .json(&json!({ "email": "x@example.com" }))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}

async fn code_by_email_accepts_every_base64_form(app: TestApp) {
    // Its standard base64 has a `+` and padding, so the four forms all differ.
    let email = "ab~~~@example.com";
    let code = code_for(&app, email, "Ab").await;
    let forms =
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].map(|engine| engine.encode(email));
    assert_eq!(forms.iter().collect::<HashSet<_>>().len(), 4);
    for form in forms {
        let path = format!("/api/referrer/{}/referral-code", form.replace('/', "%2F"));
        let body = expect_json(
            call(&app, Method::GET, &path, &app.service_token(), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body, json!({ "referralCode": code }));
    }
    let upper = STANDARD.encode("AB~~~@EXAMPLE.COM");
    let path = format!("/api/referrer/{upper}/referral-code");
    expect_json(
        call(&app, Method::GET, &path, &app.service_token(), None).await,
        StatusCode::OK,
    )
    .await;
}

async fn code_by_email_refuses_garbage_and_other_users(app: TestApp) {
    code_for(&app, "email@molt-bonic.com", "Albert").await;
    let invalid = "Unprocessable entity. Email is not valid.";
    for encoded in [
        "%%%".to_owned(),
        "!!notbase64".to_owned(),
        STANDARD.encode("not an email"),
        STANDARD.encode([0xff, 0xfe, 0x40]),
    ] {
        let path = format!(
            "/api/referrer/{}/referral-code",
            encoded.replace('/', "%2F")
        );
        expect_error(
            call(&app, Method::GET, &path, &app.service_token(), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid,
        )
        .await;
    }
    let unknown = format!(
        "/api/referrer/{}/referral-code",
        STANDARD.encode("nobody@example.com")
    );
    expect_error(
        call(&app, Method::GET, &unknown, &app.service_token(), None).await,
        StatusCode::NOT_FOUND,
        "Email not found.",
    )
    .await;

    let path = format!(
        "/api/referrer/{}/referral-code",
        STANDARD.encode("email@molt-bonic.com")
    );
    let stranger = user_token(&app, "acc-2", "someone@example.com");
    expect_error(
        call(&app, Method::GET, &path, &stranger, None).await,
        StatusCode::UNAUTHORIZED,
        AUTH_ERROR,
    )
    .await;
    let owner = user_token(&app, "acc-1", "Email@molt-bonic.com");
    expect_json(
        call(&app, Method::GET, &path, &owner, None).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        app.without_token(Method::GET, &path).await,
        StatusCode::UNAUTHORIZED,
        AUTH_ERROR,
    )
    .await;
}

async fn referrer_by_code_matches_any_case_and_masks_for_end_users(app: TestApp) {
    let code = code_for(&app, "email@molt-bonic.com", "Albert").await;
    let lower = format!("/api/referrer?referrerCode={}", code.to_lowercase());
    let body = expect_json(
        call(&app, Method::GET, &lower, &app.service_token(), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        body,
        json!({ "fistName": "Albert", "firstName": "Albert", "lastName": "Zabala", "referralCode": code, "email": "email@molt-bonic.com" })
    );
    let stranger = user_token(&app, "acc-2", "someone@example.com");
    let body = expect_json(
        call(&app, Method::GET, &lower, &stranger, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["email"], "em***@molt-bonic.com");
    assert_eq!(body["fistName"], "Albert");
    let owner = user_token(&app, "acc-1", "email@molt-bonic.com");
    let body = expect_json(
        call(&app, Method::GET, &lower, &owner, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["email"], "email@molt-bonic.com");

    let invalid = "Unprocessable entity. Referral code is not valid.";
    for path in [
        "/api/referrer",
        "/api/referrer?referrerCode=",
        "/api/referrer?referrerCode=a%20b",
        "/api/referrer?referrerCode=%7B%22%24ne%22%3A1%7D",
    ] {
        expect_error(
            call(&app, Method::GET, path, &app.service_token(), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid,
        )
        .await;
    }
    let unknown = "/api/referrer?referrerCode=NOPE-2345678";
    expect_error(
        call(&app, Method::GET, unknown, &app.service_token(), None).await,
        StatusCode::NOT_FOUND,
        "Referrer not found.",
    )
    .await;
}

async fn internal_register_is_idempotent(app: TestApp) {
    let token = user_token(&app, "acc-7", "Albert@Example.com");
    let own_code = || {
        call(
            &app,
            Method::GET,
            "/api/referrer/internal/referral-code",
            &token,
            None,
        )
    };
    expect_error(
        own_code().await,
        StatusCode::NOT_FOUND,
        "Referrer not found.",
    )
    .await;
    let register = || async {
        let response = call(&app, Method::POST, INTERNAL_REGISTER, &token, None).await;
        expect_json(response, StatusCode::OK).await
    };
    let first = register().await;
    let code = first["referralCode"].as_str().expect("code").to_owned();
    assert!(code.starts_with("ALBE-"));
    let again = register().await;
    assert_eq!(again, first);
    let fetched = expect_json(own_code().await, StatusCode::OK).await;
    assert_eq!(fetched, first);
    assert_eq!(code_by_email(&app, "albert@example.com").await, first);

    // An e-mail registered externally first keeps its code when its user registers.
    let external = code_for(&app, "ext@example.com", "Ext").await;
    let linked = user_token(&app, "acc-8", "ext@example.com");
    let body = expect_json(
        call(&app, Method::POST, INTERNAL_REGISTER, &linked, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["referralCode"], external.as_str());

    let no_email = app.token("acc-9", &[]);
    let response = call(&app, Method::POST, INTERNAL_REGISTER, &no_email, None).await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Unprocessable entity. Email is not valid.",
    )
    .await;
    let response = app.without_token(Method::POST, INTERNAL_REGISTER).await;
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}

async fn twenty_concurrent_internal_registrations_give_one_code(app: TestApp) {
    let app = Arc::new(app);
    let token = user_token(&app, "acc-race", "race@example.com");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                let response = call(&app, Method::POST, INTERNAL_REGISTER, &token, None).await;
                expect_json(response, StatusCode::OK).await["referralCode"].clone()
            })
        })
        .collect();
    let mut codes = HashSet::new();
    for task in tasks {
        codes.insert(task.await.expect("task").to_string());
    }
    assert_eq!(codes.len(), 1, "{codes:?}");
}

async fn redeem_answers_in_the_seed_order(app: TestApp) {
    let code = code_for(&app, "email@molt-bonic.com", "Albert").await;
    let other = code_for(&app, "other@example.com", "Other").await;
    let user = user_token(&app, "acc-1", "me@example.com");

    expect_error(
        redeem(&app, &user, "NOPE-2345678").await,
        StatusCode::NOT_FOUND,
        "Referral code is not found",
    )
    .await;
    expect_error_status(
        redeem(&app, &user, "no spaces allowed").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let first = expect_json(
        redeem(&app, &user, &code.to_lowercase()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["id"], "acc-1");
    assert_eq!(
        first["referralCode"],
        code.as_str(),
        "stored with the referrer's spelling"
    );
    let redeem_on = first["redeemOn"].as_str().expect("redeemOn");
    assert!(
        chrono::NaiveDateTime::parse_from_str(redeem_on, "%Y-%m-%d %H:%M").is_ok(),
        "{redeem_on}"
    );
    let again = expect_json(redeem(&app, &user, &code).await, StatusCode::CREATED).await;
    assert_eq!(again, first);
    expect_error(
        redeem(&app, &user, &other).await,
        StatusCode::FORBIDDEN,
        "The user registered a different code before",
    )
    .await;

    // The referrer's own code (its user id is the account).
    let owner = user_token(&app, "acc-owner", "owner@example.com");
    let own = expect_json(
        call(&app, Method::POST, INTERNAL_REGISTER, &owner, None).await,
        StatusCode::OK,
    )
    .await;
    let own = own["referralCode"].as_str().expect("code");
    expect_error(
        redeem(&app, &owner, own).await,
        StatusCode::FORBIDDEN,
        "A user cannot redeem its own code",
    )
    .await;
    expect_error(
        redeem(&app, "not-a-token", own).await,
        StatusCode::UNAUTHORIZED,
        AUTH_ERROR,
    )
    .await;
}

async fn redeem_refuses_bad_bodies(app: TestApp) {
    code_for(&app, "email@molt-bonic.com", "Albert").await;
    let user = user_token(&app, "acc-1", "me@example.com");
    for body in [
        json!({}),
        json!({ "referralCode": "" }),
        json!({ "referralCode": null }),
        json!({ "code": "X" }),
    ] {
        let response = call(&app, Method::POST, REDEEM, &user, Some(body)).await;
        expect_error(response, StatusCode::BAD_REQUEST, "Attributes are required").await;
    }
    for body in [
        json!([]),
        json!("code"),
        json!({ "referralCode": { "$ne": null } }),
        json!({ "referralCode": 42 }),
    ] {
        let response = call(&app, Method::POST, REDEEM, &user, Some(body)).await;
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "The request body is not valid",
        )
        .await;
    }
    let broken = app
        .client
        .post(app.url(REDEEM))
        .header("Authorization", &user)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    expect_error(
        broken,
        StatusCode::UNPROCESSABLE_ENTITY,
        "The request body is not valid",
    )
    .await;
    let check = expect_json(
        call(&app, Method::GET, "/api/referee/check/acc-1", &user, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(check, json!({ "registered": false }));
}

async fn apply_is_for_admins_and_calls_unknown_codes_invalid(app: TestApp) {
    let code = code_for(&app, "email@molt-bonic.com", "Albert").await;
    let other = code_for(&app, "other@example.com", "Other").await;
    let admin = app.token("ops", &["admin"]);
    let apply = |token: String, body: Value| {
        let app = &app;
        async move { call(app, Method::POST, "/api/referee/apply", &token, Some(body)).await }
    };
    for token in [
        app.service_token(),
        user_token(&app, "acc-1", "me@example.com"),
    ] {
        let response = apply(token, json!({ "accountId": "acc-5", "referralCode": code })).await;
        expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    }
    let response = apply(
        admin.clone(),
        json!({ "accountId": "acc-5", "referralCode": "NOPE-2345678" }),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Referral code is not valid",
    )
    .await;
    let response = apply(admin.clone(), json!({ "accountId": "acc-5" })).await;
    expect_error(response, StatusCode::BAD_REQUEST, "Attributes are required").await;
    let response = apply(
        admin.clone(),
        json!({ "accountId": ["acc-5"], "referralCode": code }),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "The request body is not valid",
    )
    .await;
    let first = expect_json(
        apply(
            admin.clone(),
            json!({ "accountId": "acc-5", "referralCode": code }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["id"], "acc-5");
    let again = expect_json(
        apply(
            admin.clone(),
            json!({ "accountId": "acc-5", "referralCode": code.to_lowercase() }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again, first);
    let response = apply(
        admin,
        json!({ "accountId": "acc-5", "referralCode": other }),
    )
    .await;
    expect_error(
        response,
        StatusCode::FORBIDDEN,
        "The user registered a different code before",
    )
    .await;
}

async fn landlord(app: &TestApp, token: &str, body: Value) -> Response {
    call(app, Method::POST, LANDLORD_REGISTER, token, Some(body)).await
}

async fn landlord_register_is_deprecated_but_works(app: TestApp) {
    let code = code_for(&app, "landlord@example.com", "Land").await;
    let body = json!({ "accountId": "acc-l", "promoCode": code });
    let service = app.service_token();
    let response = landlord(&app, &service, body.clone()).await;
    assert_eq!(
        response.headers().get("deprecation").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    expect_json(response, StatusCode::OK).await;
    let response = landlord(&app, &service, body.clone()).await;
    expect_json(response, StatusCode::CREATED).await;
    let end_user = user_token(&app, "acc-l", "l@example.com");
    let response = landlord(&app, &end_user, body).await;
    assert!(response.headers().contains_key("deprecation"));
    expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    let response = landlord(
        &app,
        &service,
        json!({ "accountId": "x", "promoCode": "NOPE-2345678" }),
    )
    .await;
    expect_error(
        response,
        StatusCode::NOT_FOUND,
        "Referral code is not found",
    )
    .await;
    let response = landlord(&app, &service, json!({ "accountId": "x" })).await;
    expect_error(response, StatusCode::BAD_REQUEST, "Attributes are required").await;

    let check = call(
        &app,
        Method::GET,
        "/api/landlord/check/acc-l",
        &service,
        None,
    )
    .await;
    assert!(check.headers().contains_key("deprecation"));
    assert_eq!(
        expect_json(check, StatusCode::OK).await,
        json!({ "registered": true })
    );
}

async fn referee_lookups_show_only_own_records_to_end_users(app: TestApp) {
    let code = code_for(&app, "email@molt-bonic.com", "Albert").await;
    let alice = user_token(&app, "alice-acc", "alice@example.com");
    let mallory = user_token(&app, "mallory-acc", "mallory@example.com");
    let redeemed = expect_json(redeem(&app, &alice, &code).await, StatusCode::OK).await;

    let own = expect_json(
        call(&app, Method::GET, "/api/referee/u/alice-acc", &alice, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own, redeemed);
    let seen_by_service = expect_json(
        call(
            &app,
            Method::GET,
            "/api/referee/u/alice-acc",
            &app.service_token(),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen_by_service, redeemed);
    expect_error(
        call(
            &app,
            Method::GET,
            "/api/referee/u/alice-acc",
            &mallory,
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        AUTH_ERROR,
    )
    .await;
    expect_error(
        call(
            &app,
            Method::GET,
            "/api/referee/u/mallory-acc",
            &mallory,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "Referee by user id not found.",
    )
    .await;

    for path in [
        "/api/referee/check/alice-acc",
        "/api/landlord/check/alice-acc",
    ] {
        let response = call(&app, Method::GET, path, &alice, None).await;
        assert_eq!(response.headers()["deprecation"], "true");
        assert_eq!(
            expect_json(response, StatusCode::OK).await,
            json!({ "registered": true })
        );
        let response = call(&app, Method::GET, path, &mallory, None).await;
        assert_eq!(response.headers()["deprecation"], "true");
        expect_error(response, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
    }
    let response = call(
        &app,
        Method::GET,
        "/api/referee/check/nobody",
        &app.token("ops", &["admin"]),
        None,
    )
    .await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await,
        json!({ "registered": false })
    );
}

async fn a_hundred_concurrent_redemptions_store_one_code(app: TestApp) {
    let mut codes = Vec::new();
    for i in 0..100 {
        codes.push(code_for(&app, &format!("referrer{i}@example.com"), "Ref").await);
    }
    let app = Arc::new(app);
    let token = user_token(&app, "greedy", "greedy@example.com");
    let tasks: Vec<_> = codes
        .iter()
        .cloned()
        .map(|code| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                let response = redeem(&app, &token, &code).await;
                (response.status(), code)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            (StatusCode::OK, code) => winners.push(code),
            (StatusCode::FORBIDDEN, _) => refused += 1,
            (status, code) => panic!("{code}: unexpected {status}"),
        }
    }
    assert_eq!((winners.len(), refused), (1, 99), "{winners:?}");
    let stored = expect_json(
        call(&app, Method::GET, "/api/referee/u/greedy", &token, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stored["referralCode"], winners[0].as_str());
}

async fn import_keeps_codes_and_reports_bad_lines(app: TestApp) {
    let csv = "email,firstName,lastName,referralCode\n\
               old@example.com,Old,Timer,ABC-6add-T\n\
               not-an-email,X,Y,XYZ-1\n\
               quoted@example.com,\"Smith, Jr\",Q,\"QUO-77\"\n\
               clash@example.com,C,D,abc-6ADD-t\n\
               bad@example.com,B,C,bad code!\n\
               short@example.com,only-three-fields\n\
               fresh@example.com,Fresh,Start,\n";
    let store = app.stores.referrals.as_ref();
    let report = import_referrers(Cursor::new(csv), store)
        .await
        .expect("import");
    assert_eq!((report.created, report.existing), (3, 0));
    let lines: Vec<u64> = report.skipped.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![3, 5, 6, 7]);
    let again = import_referrers(Cursor::new(csv), store)
        .await
        .expect("import");
    assert_eq!((again.created, again.existing), (0, 3));

    let body = expect_json(
        call(
            &app,
            Method::GET,
            "/api/referrer?referrerCode=abc-6ADD-T",
            &app.service_token(),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        body["referralCode"], "ABC-6add-T",
        "imported codes keep their spelling"
    );
    assert_eq!(body["email"], "old@example.com");
    let body = expect_json(
        call(
            &app,
            Method::GET,
            "/api/referrer?referrerCode=QUO-77",
            &app.service_token(),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["firstName"], "Smith, Jr");
    let body = code_by_email(&app, "fresh@example.com").await;
    assert!(
        body["referralCode"]
            .as_str()
            .is_some_and(|c| c.starts_with("FRES-"))
    );

    let user = user_token(&app, "acc-1", "me@example.com");
    expect_json(redeem(&app, &user, "abc-6add-t").await, StatusCode::OK).await;
    let header_only = import_referrers(Cursor::new("email,name\n"), store).await;
    assert!(header_only.is_err());
}

/// The command of the binary, on an embedded store that no service holds open.
#[tokio::test]
async fn import_referrers_command_reports_skipped_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("referrers.csv");
    std::fs::write(&file, "email,firstName,lastName,referralCode\nold@example.com,Old,Timer,ABC-6add-T\nnot-an-email,X,Y,Z\n")
        .expect("write");
    let data = dir.path().join("data");
    let (stdout, stderr) = crate::helpers::run_import("import-referrers", &file, &data);
    assert!(stdout.contains("imported 1 new referrers, 0 already existed, 1 lines skipped"));
    assert!(stderr.contains("referrers.csv:3: skipped: the e-mail is missing or not valid"));
    let (again, _) = crate::helpers::run_import("import-referrers", &file, &data);
    assert!(again.contains("imported 0 new referrers, 1 already existed"));

    let app = crate::helpers::TestApp::spawn_with(
        crate::helpers::Backend::Embedded,
        &[("DATA_DIR", data.to_str().expect("utf-8"))],
    )
    .await;
    let response = call(
        &app,
        Method::GET,
        "/api/referrer?referrerCode=abc-6add-t",
        &app.service_token(),
        None,
    )
    .await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["referralCode"],
        "ABC-6add-T"
    );
}

/// `GET /api/referrer/{encodeEmail}/referral-code` as the billing service: the 200 body.
async fn code_by_email(app: &TestApp, email: &str) -> Value {
    let path = format!("/api/referrer/{}/referral-code", STANDARD.encode(email));
    let response = call(app, Method::GET, &path, &app.service_token(), None).await;
    expect_json(response, StatusCode::OK).await
}
