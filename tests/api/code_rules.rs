//! Referral codes with rules (expiry, redemption limit, switch), self-referral by
//! e-mail, and a referrer's own referees.

use chrono::{Duration, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    contract_tests,
    helpers::{AUTH_ERROR, TestApp, expect_error, expect_error_status, expect_json},
    referrals::{call, code_for, redeem, user_token},
};

contract_tests!(
    limited_expiring_and_inactive_codes_answer_as_the_spec_says,
    rules_are_checked_after_the_seed_checks,
    patch_refuses_bad_values_roles_and_unknown_codes,
    thirty_accounts_racing_for_ten_redemptions_get_ten,
    self_referral_by_email_is_refused,
    referrers_see_their_referees_without_account_ids,
);

const EXPIRED: &str = "Referral code has expired";
const LIMIT: &str = "Referral code has reached its redemption limit";

async fn patch(app: &TestApp, code: &str, body: Value) -> Response {
    call(
        app,
        Method::PATCH,
        &format!("/api/referrer/{code}"),
        &app.admin_auth(),
        Some(body),
    )
    .await
}

/// Redeems `code` for account `acc`, with a token whose e-mail is not the referrer's.
async fn redeem_as(app: &TestApp, account: &str, code: &str) -> Response {
    let token = user_token(app, account, &format!("{account}@users.example"));
    redeem(app, &token, code).await
}

/// The status of `account`'s redemption of `code` (see `redeem_as`).
async fn redeemed(app: &TestApp, account: &str, code: &str) -> StatusCode {
    redeem_as(app, account, code).await.status()
}

/// Expects `account`'s redemption of `code` refused by the code's rules (422, `sentence`).
async fn refused_as(app: &TestApp, account: &str, code: &str, sentence: &str) {
    let response = redeem_as(app, account, code).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, sentence).await;
}

async fn looked_up(app: &TestApp, token: &str, code: &str) -> Value {
    expect_json(
        call(
            app,
            Method::GET,
            &format!("/api/referrer?referrerCode={code}"),
            token,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn limited_expiring_and_inactive_codes_answer_as_the_spec_says(app: TestApp) {
    let code = code_for(&app, "ana@example.com", "Ana").await;
    let expires = (Utc::now() + Duration::days(30)).to_rfc3339();
    let limited = expect_json(
        patch(
            &app,
            &code.to_lowercase(),
            json!({ "maxRedemptions": 2, "expiresAt": expires }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(limited["referralCode"], code.as_str());
    assert_eq!(limited["redemptions"], 0);
    assert_eq!(limited["maxRedemptions"], 2);
    assert_eq!(limited["active"], true);
    assert!(limited["expiresAt"].as_str().is_some(), "{limited}");

    assert_eq!(redeemed(&app, "acc-1", &code).await, StatusCode::OK);
    assert_eq!(redeemed(&app, "acc-2", &code).await, StatusCode::OK);
    refused_as(&app, "acc-3", &code, LIMIT).await;
    // An account that holds the code is never refused by its rules.
    assert_eq!(redeemed(&app, "acc-1", &code).await, StatusCode::CREATED);
    let seen = looked_up(&app, &format!("Bearer {}", app.service_token()), &code).await;
    assert_eq!(seen["redemptions"], 2);
    assert_eq!(seen["maxRedemptions"], 2);
    let end_user = looked_up(&app, &user_token(&app, "acc-9", "x@y.example"), &code).await;
    assert!(end_user.get("redemptions").is_none(), "{end_user}");
    assert!(end_user.get("maxRedemptions").is_none(), "{end_user}");

    // Clearing the limit with null restores redemptions.
    let cleared = expect_json(
        patch(&app, &code, json!({ "maxRedemptions": null })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["maxRedemptions"], Value::Null);
    assert_eq!(redeemed(&app, "acc-3", &code).await, StatusCode::OK);

    // Switched off: refused as expired, on every redemption route; holders still get 201.
    patch(&app, &code, json!({ "active": false })).await;
    refused_as(&app, "acc-4", &code, EXPIRED).await;
    for (path, token, body) in [
        (
            "/api/referee/apply",
            app.admin_auth(),
            json!({ "accountId": "acc-4", "referralCode": code }),
        ),
        (
            "/api/landlord/register",
            format!("Bearer {}", app.service_token()),
            json!({ "accountId": "acc-4", "promoCode": code }),
        ),
    ] {
        let response = call(&app, Method::POST, path, &token, Some(body)).await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, EXPIRED).await;
    }
    assert_eq!(redeemed(&app, "acc-2", &code).await, StatusCode::CREATED);
    patch(&app, &code, json!({ "active": null })).await;
    assert_eq!(redeemed(&app, "acc-4", &code).await, StatusCode::OK);

    // Past its expiry: refused as expired until the expiry is cleared.
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    patch(&app, &code, json!({ "expiresAt": past })).await;
    refused_as(&app, "acc-5", &code, EXPIRED).await;
    let unexpired = expect_json(
        patch(&app, &code, json!({ "expiresAt": null })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unexpired["expiresAt"], Value::Null);
    assert_eq!(unexpired["redemptions"], 4);
    assert_eq!(redeemed(&app, "acc-5", &code).await, StatusCode::OK);
}

/// Unknown code (404), own code and a different code before (403) come before the rules.
async fn rules_are_checked_after_the_seed_checks(app: TestApp) {
    let open = code_for(&app, "bo@example.com", "Bo").await;
    let closed = code_for(&app, "cy@example.com", "Cy").await;
    patch(
        &app,
        &closed,
        json!({ "active": false, "maxRedemptions": 1 }),
    )
    .await;
    assert_eq!(redeemed(&app, "acc-1", &open).await, StatusCode::OK);
    expect_error(
        redeem_as(&app, "acc-1", &closed).await,
        StatusCode::FORBIDDEN,
        "The user registered a different code before",
    )
    .await;
    let owner = user_token(&app, "cy-account", "cy@example.com");
    expect_error(
        redeem(&app, &owner, &closed).await,
        StatusCode::FORBIDDEN,
        "A user cannot redeem its own code",
    )
    .await;
    expect_error(
        redeem_as(&app, "acc-2", "NOPE-1234567").await,
        StatusCode::NOT_FOUND,
        "Referral code is not found",
    )
    .await;
}

async fn patch_refuses_bad_values_roles_and_unknown_codes(app: TestApp) {
    let code = code_for(&app, "dee@example.com", "Dee").await;
    for bad in [
        json!({ "maxRedemptions": 0 }),
        json!({ "maxRedemptions": -1 }),
        json!({ "maxRedemptions": 1.5 }),
        json!({ "maxRedemptions": "3" }),
        json!({ "maxRedemptions": 1e30 }),
        json!({ "expiresAt": "tomorrow" }),
        json!({ "expiresAt": "2027-01-01" }),
        json!({ "expiresAt": 5 }),
        json!({ "active": "yes" }),
        json!({ "active": 1 }),
        json!({ "maxRedemption": 3 }),
        json!([1, 2]),
        json!("active"),
    ] {
        expect_error_status(
            patch(&app, &code, bad.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    // Nothing was changed by the refused requests.
    let unchanged = expect_json(patch(&app, &code, json!({})).await, StatusCode::OK).await;
    assert_eq!(unchanged["maxRedemptions"], Value::Null);
    assert_eq!(unchanged["expiresAt"], Value::Null);
    assert_eq!(unchanged["active"], true);

    expect_error(
        patch(&app, "NOPE-1234567", json!({ "active": false })).await,
        StatusCode::NOT_FOUND,
        "Referrer not found.",
    )
    .await;
    expect_error_status(
        patch(&app, "not%20a%20code", json!({ "active": false })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let path = format!("/api/referrer/{code}");
    let body = Some(json!({ "active": false }));
    for token in [
        format!("Bearer {}", app.service_token()),
        user_token(&app, "dee-account", "dee@example.com"),
    ] {
        expect_error(
            call(&app, Method::PATCH, &path, &token, body.clone()).await,
            StatusCode::UNAUTHORIZED,
            AUTH_ERROR,
        )
        .await;
    }
    assert_eq!(redeemed(&app, "acc-1", &code).await, StatusCode::OK);
}

async fn thirty_accounts_racing_for_ten_redemptions_get_ten(app: TestApp) {
    let code = code_for(&app, "eve@example.com", "Eve").await;
    patch(&app, &code, json!({ "maxRedemptions": 10 })).await;
    let accounts: Vec<String> = (0..30).map(|i| format!("racer-{i}")).collect();
    let responses =
        futures_util::future::join_all(accounts.iter().map(|a| redeem_as(&app, a, &code))).await;
    let ok = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let refused = responses
        .iter()
        .filter(|r| r.status() == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((ok, refused), (10, 20));
    let seen = looked_up(&app, &app.admin_auth(), &code).await;
    assert_eq!(seen["redemptions"], 10);
    let mut holders = 0;
    for account in &accounts {
        let response = call(
            &app,
            Method::GET,
            &format!("/api/referee/u/{account}"),
            &app.admin_auth(),
            None,
        )
        .await;
        if response.status() == StatusCode::OK {
            holders += 1;
        }
    }
    assert_eq!(holders, 10, "exactly the accepted accounts hold the code");
}

async fn self_referral_by_email_is_refused(app: TestApp) {
    let gmail = code_for(&app, "anasmith@googlemail.com", "Ana").await;
    let plain = code_for(&app, "ana@example.com", "Ana").await;
    // The same mailbox under another spelling: dots and a tag at Gmail, a tag elsewhere.
    for (account, email, code) in [
        ("second-account", "Ana.Smith+promo@gmail.com", &gmail),
        ("third-account", "ana+x@example.com", &plain),
    ] {
        let token = user_token(&app, account, email);
        expect_error(
            redeem(&app, &token, code).await,
            StatusCode::FORBIDDEN,
            "A user cannot redeem its own code",
        )
        .await;
    }
    let other_domain = user_token(&app, "fourth-account", "ana@example.org");
    assert_eq!(
        redeem(&app, &other_domain, &plain).await.status(),
        StatusCode::OK
    );
}

async fn referrers_see_their_referees_without_account_ids(app: TestApp) {
    let referrer = user_token(&app, "ref-account", "ref@example.com");
    let registered = call(
        &app,
        Method::POST,
        "/api/referrer/internal/register",
        &referrer,
        None,
    )
    .await;
    let code = expect_json(registered, StatusCode::OK).await["referralCode"]
        .as_str()
        .expect("code")
        .to_owned();
    let mine = || {
        call(
            &app,
            Method::GET,
            "/api/referrer/internal/referees",
            &referrer,
            None,
        )
    };
    let empty = expect_json(mine().await, StatusCode::OK).await;
    assert_eq!(
        empty,
        json!({ "referralCode": code, "redemptions": 0, "referees": [] })
    );

    for account in ["secret-account-1", "secret-account-2"] {
        assert_eq!(redeemed(&app, account, &code).await, StatusCode::OK);
    }
    let response = mine().await;
    let text = response.text().await.expect("body");
    assert!(!text.contains("secret-account"), "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["redemptions"], 2);
    let referees = body["referees"].as_array().expect("referees");
    assert_eq!(referees.len(), 2);
    for referee in referees {
        let keys: Vec<&String> = referee.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["redeemOn"]);
    }
    assert!(referees[0]["redeemOn"].as_str() >= referees[1]["redeemOn"].as_str());

    // Someone who is not a referrer, and no token at all.
    let stranger = user_token(&app, "secret-account-1", "s1@users.example");
    expect_error(
        call(
            &app,
            Method::GET,
            "/api/referrer/internal/referees",
            &stranger,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "Referrer not found.",
    )
    .await;
    let anonymous = app
        .without_token(Method::GET, "/api/referrer/internal/referees")
        .await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, AUTH_ERROR).await;
}
