//! The referral codes' HTTP routes (the seed's camelCase bodies): parse the request, call the
//! service, map the answer.

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::{HeaderName, HeaderValue, StatusCode},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{
        AccountId, CodeRules, MAX_NAME_CHARS, RefereeBody, ReferralCode, Referrer, RulesChange, Via,
    },
    service::{self, Applicant, Redemption, ReferralError},
};
use crate::{
    audit::{Audit, Done, Subject, domain::changes_of},
    auth::{AdminAccess, AnyCaller, BackendAccess, Caller},
    email::Email,
    error::{ApiError, ErrorBody, Result},
    extract::{Field, JsonObject, Sent, fields, sent},
    ops::rate_limit::CodeRateLimit,
    sentences::{
        ATTRIBUTES_REQUIRED, BAD_REGISTER_BODY, BODY_NOT_VALID, CODE_EXPIRED, CODE_LIMIT_REACHED,
        CODE_NOT_FOUND, DIFFERENT_CODE_BEFORE, EMAIL_NOT_FOUND, EMAIL_NOT_VALID,
        LOOKUP_CODE_NOT_VALID, OWN_CODE, REDEEM_CODE_NOT_VALID, REFEREE_NOT_FOUND,
        REFERRER_NOT_FOUND, RULES_BAD_ACTIVE, RULES_BAD_EXPIRES_AT, RULES_BAD_MAX_REDEMPTIONS,
        RULES_NOT_AN_OBJECT, RULES_UNKNOWN_FIELD,
    },
    state::AppState,
};

mod bodies;

use bodies::*;

pub fn router() -> OpenApiRouter<AppState> {
    [
        routes!(referral_code_by_email),
        routes!(referrer_by_code),
        routes!(register_external),
        routes!(register_internal),
        routes!(internal_referral_code),
        routes!(internal_referees),
        routes!(change_rules),
        routes!(redeem),
        routes!(apply),
        routes!(referee_by_user),
    ]
    .into_iter()
    .fold(OpenApiRouter::new(), OpenApiRouter::routes)
    .merge(deprecated_router())
}

/// The seed's deprecated routes: every answer, errors included, says `Deprecation: true`.
#[allow(deprecated)]
fn deprecated_router() -> OpenApiRouter<AppState> {
    [
        routes!(landlord_register),
        routes!(referee_check),
        routes!(landlord_check),
    ]
    .into_iter()
    .fold(OpenApiRouter::new(), OpenApiRouter::routes)
    .layer(SetResponseHeaderLayer::overriding(
        HeaderName::from_static("deprecation"),
        HeaderValue::from_static("true"),
    ))
}

impl From<ReferralError> for ApiError {
    fn from(err: ReferralError) -> Self {
        use ReferralError as E;
        match err {
            E::EmailNotFound => Self::not_found(EMAIL_NOT_FOUND),
            E::ReferrerNotFound => Self::not_found(REFERRER_NOT_FOUND),
            E::CodeNotFound => Self::not_found(CODE_NOT_FOUND),
            E::AppliedCodeNotFound => Self::unprocessable(REDEEM_CODE_NOT_VALID),
            E::OwnCode => Self::Forbidden(OWN_CODE.to_owned()),
            E::DifferentCodeBefore => Self::Forbidden(DIFFERENT_CODE_BEFORE.to_owned()),
            E::RefereeNotFound => Self::not_found(REFEREE_NOT_FOUND),
            E::CodeExpired => Self::unprocessable(CODE_EXPIRED),
            E::CodeLimitReached => Self::unprocessable(CODE_LIMIT_REACHED),
            E::Store(err) => err.into(),
        }
    }
}

/// The rules of a referrer's code, for a caller allowed to see them (`admin`, `service`), when
/// the code carries any: a code without rules answers the look-ups exactly as the seed does.
fn rules_for(caller: &Caller, referrer: &Referrer) -> Option<RulesBody> {
    (caller.is_privileged() && referrer.rules != CodeRules::default())
        .then(|| RulesBody::from(referrer))
}

/// Whether the caller is this referrer (by user id or by the token's e-mail).
fn owns(caller: &Caller, referrer: &Referrer) -> bool {
    referrer.user_id.as_deref() == Some(caller.sub.as_str())
        || caller_email(caller).is_some_and(|email| email == referrer.email)
}

fn caller_email(caller: &Caller) -> Option<Email> {
    caller.email.as_deref().and_then(Email::parse)
}

/// An end user may only look at their own account.
fn own_account_or_privileged(caller: &Caller, account_id: &str) -> Result<()> {
    if caller.is_privileged() || caller.sub == account_id {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The e-mail in a path, base64 in any of its four common forms.
fn decode_email(encoded: &str) -> Option<Email> {
    let encoded = encoded.trim();
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())?;
    Email::parse(std::str::from_utf8(&bytes).ok()?)
}

// ---- referrers ----------------------------------------------------------------------------

/// Get the referral code of a referrer by e-mail.
///
/// `encodeEmail` is the e-mail in base64, standard or URL-safe, padded or not (a `/` of
/// standard base64 must be sent as `%2F`). An end user may only ask for their own e-mail.
#[utoipa::path(
    get, path = "/api/referrer/{encodeEmail}/referral-code", tag = "referrers",
    params(("encodeEmail" = String, Path, description = "The e-mail, base64-encoded", example = "ZW1haWxAYm9uaWMub20=")),
    responses(
        (status = 200, description = "The referral code", body = ReferralCodeBody),
        (status = 404, description = "`Email not found.`", body = ErrorBody),
        (status = 422, description = "`Unprocessable entity. Email is not valid.`", body = ErrorBody),
        (status = 429, description = "`Too many requests`, with `Retry-After` (end users)", body = ErrorBody),
    ),
)]
async fn referral_code_by_email(
    _: CodeRateLimit,
    caller: AnyCaller,
    State(state): State<AppState>,
    Path(encoded): Path<String>,
) -> Result<Json<ReferralCodeBody>> {
    let email = decode_email(&encoded).ok_or_else(|| ApiError::unprocessable(EMAIL_NOT_VALID))?;
    if !caller.is_privileged() && caller_email(&caller).as_ref() != Some(&email) {
        return Err(ApiError::Unauthorized);
    }
    let referrer = service::referrer_by_email(state.stores.referrals.as_ref(), &email).await?;
    Ok(Json(ReferralCodeBody {
        rules: rules_for(&caller, &referrer),
        ..ReferralCodeBody::from(&referrer)
    }))
}

/// Get a referrer by referral code, in any letter case.
///
/// An end user sees the names and the code, and the e-mail masked unless the code is theirs.
#[utoipa::path(
    get, path = "/api/referrer", tag = "referrers",
    params(("referrerCode" = String, Query, description = "The referral code, any letter case", pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "ALBE-MQ-X")),
    responses(
        (status = 200, description = "The referrer", body = ReferrerBody),
        (status = 404, description = "`Referrer not found.`", body = ErrorBody),
        (status = 422, description = "`Unprocessable entity. Referral code is not valid.`", body = ErrorBody),
        (status = 429, description = "`Too many requests`, with `Retry-After` (end users)", body = ErrorBody),
    ),
)]
async fn referrer_by_code(
    _: CodeRateLimit,
    caller: AnyCaller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ReferrerBody>> {
    let raw = query
        .as_deref()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "referrerCode"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let code =
        ReferralCode::parse(&raw).ok_or_else(|| ApiError::unprocessable(LOOKUP_CODE_NOT_VALID))?;
    let referrer = service::referrer_by_code(state.stores.referrals.as_ref(), &code).await?;
    let email = if caller.is_privileged() || owns(&caller, &referrer) {
        referrer.email.to_string()
    } else {
        referrer.email.masked()
    };
    let rules = rules_for(&caller, &referrer);
    Ok(Json(ReferrerBody::new(&referrer, email, rules)))
}

fn rules_change(body: Option<serde_json::Map<String, serde_json::Value>>) -> Result<RulesChange> {
    use serde_json::Value;
    let body = body.ok_or_else(|| ApiError::unprocessable(RULES_NOT_AN_OBJECT))?;
    let input: RulesInput =
        fields(body).map_err(|_| ApiError::unprocessable(RULES_UNKNOWN_FIELD))?;
    let bad = |sentence: &str| ApiError::unprocessable(sentence);
    let expires_at = input
        .expires_at
        .map(|value| match value {
            Value::Null => Ok(None),
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|at| Some(at.with_timezone(&chrono::Utc)))
                .map_err(|_| bad(RULES_BAD_EXPIRES_AT)),
            _ => Err(bad(RULES_BAD_EXPIRES_AT)),
        })
        .transpose()?;
    let max_redemptions = input
        .max_redemptions
        .map(|value| match value {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_u64()
                .filter(|max| *max >= 1 && i64::try_from(*max).is_ok())
                .map(Some)
                .ok_or_else(|| bad(RULES_BAD_MAX_REDEMPTIONS)),
            _ => Err(bad(RULES_BAD_MAX_REDEMPTIONS)),
        })
        .transpose()?;
    let active = input
        .active
        .map(|value| match value {
            Value::Null => Ok(None),
            Value::Bool(active) => Ok(Some(active)),
            _ => Err(bad(RULES_BAD_ACTIVE)),
        })
        .transpose()?;
    Ok(RulesChange {
        expires_at,
        max_redemptions,
        active,
    })
}

/// Set or clear the rules of a referral code (role `admin`).
///
/// The code in any letter case. Keys left out keep their value; `null` clears a rule. Rules
/// apply to new accounts only: an account that already redeemed the code keeps it, and asking
/// again still answers 201.
#[utoipa::path(
    patch, path = "/api/referrer/{referralCode}", tag = "referrers",
    params(("referralCode" = String, Path, description = "The referral code, any letter case", example = "ALBE-MQ-X")),
    request_body = RulesInput,
    responses(
        (status = 200, description = "The referrer with its rules and redemptions", body = ReferrerBody),
        (status = 404, description = "`Referrer not found.`", body = ErrorBody),
        (status = 422, description = "A value or key that is not a rule, or a code that cannot be a code", body = ErrorBody),
    ),
)]
async fn change_rules(
    _: AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(raw_code): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<ReferrerBody>> {
    let code = ReferralCode::parse(&raw_code)
        .ok_or_else(|| ApiError::unprocessable(LOOKUP_CODE_NOT_VALID))?;
    let change = rules_change(body)?;
    let store = state.stores.referrals.as_ref();
    let before = service::referrer_by_code(store, &code).await?;
    let rules_of = |referrer: &Referrer| {
        let mut rules = serde_json::to_value(RulesBody::from(referrer)).unwrap_or_default();
        if let Some(rules) = rules.as_object_mut() {
            rules.remove("redemptions");
        }
        rules
    };
    let referrer = audit
        .record(
            Subject::new("code.rules", code.as_str()),
            changes_of(rules_of),
            async {
                let after = service::change_rules(store, &code, &change).await?;
                Ok(Done::changed(after.clone(), before, after))
            },
        )
        .await?;
    let rules = Some(RulesBody::from(&referrer));
    Ok(Json(ReferrerBody::new(
        &referrer,
        referrer.email.to_string(),
        rules,
    )))
}

/// A name field: absent is `None`; a non-string or over-long value is a bad body.
fn name_field(sent: &[&Sent]) -> Result<Option<String>> {
    for value in sent {
        match Field::from_sent(value.as_ref()) {
            Field::Missing => {}
            Field::Text(name) if name.chars().count() <= MAX_NAME_CHARS => return Ok(Some(name)),
            _ => return Err(ApiError::BadRequest(BAD_REGISTER_BODY.to_owned())),
        }
    }
    Ok(None)
}

/// Registers `applicant` now, with a random code (or finds the referrer it already is).
async fn register(state: &AppState, applicant: Applicant) -> Result<Referrer> {
    let referrals = state.stores.referrals.as_ref();
    let at = state.clock.now();
    Ok(service::register(referrals, applicant, at, service::random_code).await?)
}

/// Create a referrer identified by e-mail (role `service` or `admin`).
///
/// An e-mail already registered returns its existing code. `fistName` is accepted for
/// `firstName`.
#[utoipa::path(
    post, path = "/api/referrer/external/register", tag = "referrers",
    request_body = ExternalRegisterInput,
    responses(
        (status = 200, description = "The referrer and its code", body = RegisteredReferrerBody),
        (status = 400, description = "`The body of request is wrong. Check name of field and which fields are required.`", body = ErrorBody),
        (status = 422, description = "`Unprocessable entity. Email is not valid.`", body = ErrorBody),
    ),
)]
async fn register_external(
    _: BackendAccess,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<RegisteredReferrerBody>> {
    let bad_body = || ApiError::BadRequest(BAD_REGISTER_BODY.to_owned());
    let input: ExternalRegisterInput =
        fields(body.ok_or_else(bad_body)?).map_err(|_| bad_body())?;
    let Field::Text(raw_email) = Field::from_sent(input.email.as_ref()) else {
        return Err(bad_body());
    };
    let first_name = name_field(&[&input.first_name, &input.fist_name])?;
    let last_name = name_field(&[&input.last_name])?;
    let email = Email::parse(&raw_email).ok_or_else(|| ApiError::unprocessable(EMAIL_NOT_VALID))?;
    let applicant = Applicant {
        email,
        first_name,
        last_name,
        user_id: None,
    };
    let referrer = register(&state, applicant).await?;
    Ok(Json(RegisteredReferrerBody {
        referral_code: referrer.referral_code.to_string(),
        email: referrer.email.to_string(),
        first_name: referrer.first_name.unwrap_or_default(),
        last_name: referrer.last_name.unwrap_or_default(),
    }))
}

/// Create (or get) the referrer of the token's user.
///
/// Idempotent. The token must carry `email`; `given_name` and `family_name` become the names.
/// A referrer already registered with that e-mail is linked to the user and keeps its code.
#[utoipa::path(
    post, path = "/api/referrer/internal/register", tag = "referrers",
    responses(
        (status = 200, description = "The user's referral code", body = ReferralCodeBody),
        (status = 422, description = "`Unprocessable entity. Email is not valid.` (no usable `email` claim)", body = ErrorBody),
    ),
)]
async fn register_internal(
    caller: AnyCaller,
    State(state): State<AppState>,
) -> Result<Json<ReferralCodeBody>> {
    let email = caller_email(&caller).ok_or_else(|| ApiError::unprocessable(EMAIL_NOT_VALID))?;
    let short = |name: &Option<String>| {
        name.as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(MAX_NAME_CHARS).collect::<String>())
    };
    let applicant = Applicant {
        email,
        first_name: short(&caller.given_name),
        last_name: short(&caller.family_name),
        user_id: Some(caller.sub.clone()),
    };
    let referrer = register(&state, applicant).await?;
    Ok(Json(ReferralCodeBody::from(&referrer)))
}

/// Get the referral code of the token's user.
#[utoipa::path(
    get, path = "/api/referrer/internal/referral-code", tag = "referrers",
    responses(
        (status = 200, description = "The user's referral code", body = ReferralCodeBody),
        (status = 404, description = "`Referrer not found.`", body = ErrorBody),
    ),
)]
async fn internal_referral_code(
    caller: AnyCaller,
    State(state): State<AppState>,
) -> Result<Json<ReferralCodeBody>> {
    let email = caller_email(&caller);
    let referrer =
        service::own_referrer(state.stores.referrals.as_ref(), &caller.sub, email.as_ref()).await?;
    Ok(Json(ReferralCodeBody::from(&referrer)))
}

/// Who used the token's user's code: the count and the dates, newest first (at most 100),
/// without account ids.
#[utoipa::path(
    get, path = "/api/referrer/internal/referees", tag = "referrers",
    responses(
        (status = 200, description = "The code's redemptions", body = OwnRefereesBody),
        (status = 404, description = "`Referrer not found.`", body = ErrorBody),
    ),
)]
async fn internal_referees(
    caller: AnyCaller,
    State(state): State<AppState>,
) -> Result<Json<OwnRefereesBody>> {
    let email = caller_email(&caller);
    let (referrer, referees) =
        service::own_referees(state.stores.referrals.as_ref(), &caller.sub, email.as_ref()).await?;
    Ok(Json(OwnRefereesBody {
        referral_code: referrer.referral_code.to_string(),
        redemptions: referrer.redemptions,
        referees: referees
            .iter()
            .map(|referee| OwnRefereeBody {
                redeem_on: RefereeBody::from(referee).redeem_on,
            })
            .collect(),
    }))
}

// ---- referees -----------------------------------------------------------------------------

/// The string attributes a redemption needs, in the seed's order of checks: a body that is not
/// a JSON object is 422; a missing attribute 400; an attribute of the wrong type 422.
/// The seed's required text attributes: parsed as `T`, then each of `pick(T)` must be text;
/// absent, null or blank is 400 `Attributes are required`, another type 422.
/// The 403 of the routes that redeem a code.
const REDEEM_REFUSED: &str =
    "`A user cannot redeem its own code` or `The user registered a different code before`";
/// The 422 of the routes that redeem a code.
const REDEEM_UNPROCESSABLE: &str = "`The request body is not valid`; `Referral code is not \
     valid` (on apply also for a code that names no referrer); `Referral code has expired`; \
     `Referral code has reached its redemption limit`";

fn attributes<T: serde::de::DeserializeOwned, const N: usize>(
    body: Option<serde_json::Map<String, serde_json::Value>>,
    pick: impl FnOnce(T) -> [Sent; N],
) -> Result<[String; N]> {
    let body = body.ok_or_else(|| ApiError::unprocessable(BODY_NOT_VALID))?;
    let input: T = fields(body).map_err(|_| ApiError::unprocessable(BODY_NOT_VALID))?;
    let fields = pick(input).map(|sent| Field::from_sent(sent.as_ref()));
    if fields.contains(&Field::Missing) {
        return Err(ApiError::BadRequest(ATTRIBUTES_REQUIRED.to_owned()));
    }
    let mut values = Vec::with_capacity(N);
    for field in fields {
        match field {
            Field::Text(value) => values.push(value),
            _ => return Err(ApiError::unprocessable(BODY_NOT_VALID)),
        }
    }
    values
        .try_into()
        .map_err(|_| ApiError::unprocessable(BODY_NOT_VALID))
}

/// Redeems for the account, answering 200 for a first redemption and 201 for the same code
/// again.
/// `email` is the redeeming user's own address (a redeem's token), for the self-referral check.
async fn redeem_code(
    state: &AppState,
    account_id: &str,
    email: Option<Email>,
    raw_code: &str,
    via: Via,
) -> Result<Redeemed> {
    let account =
        AccountId::parse(account_id).ok_or_else(|| ApiError::unprocessable(BODY_NOT_VALID))?;
    let code = ReferralCode::parse(raw_code)
        .ok_or_else(|| ApiError::unprocessable(REDEEM_CODE_NOT_VALID))?;
    let store = state.stores.referrals.as_ref();
    let now = state.clock.now();
    let redemption = service::redeem(store, account, email.as_ref(), &code, via, now).await?;
    Ok(redemption.into())
}

/// Redeem a referral code for the token's account.
///
/// One code per account, ever: the first redemption answers 200, the same code again 201 with
/// the same body, a different code 403. Of concurrent redemptions for one account, one is
/// stored.
#[utoipa::path(
    post, path = "/api/referee/redeem", tag = "referees",
    request_body = RedeemInput,
    responses(
        Redeemed,
        (status = 400, description = "`Attributes are required`", body = ErrorBody),
        (status = 403, description = REDEEM_REFUSED, body = ErrorBody),
        (status = 404, description = "`Referral code is not found`", body = ErrorBody),
        (status = 422, description = REDEEM_UNPROCESSABLE, body = ErrorBody),
        (status = 429, description = "`Too many requests`, with `Retry-After` (end users)", body = ErrorBody),
    ),
)]
async fn redeem(
    _: CodeRateLimit,
    caller: AnyCaller,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Redeemed> {
    let [code] = attributes(body, |input: RedeemInput| [input.referral_code])?;
    redeem_code(
        &state,
        &caller.sub,
        caller_email(&caller),
        &code,
        Via::Redeem,
    )
    .await
}

/// Apply a referral code to an account (role `admin`).
///
/// As redeem, except that an unknown code is 422 `Referral code is not valid`, as in the seed.
#[utoipa::path(
    post, path = "/api/referee/apply", tag = "referees",
    request_body = ApplyInput,
    responses(
        Redeemed,
        (status = 400, description = "`Attributes are required`", body = ErrorBody),
        (status = 403, description = REDEEM_REFUSED, body = ErrorBody),
        (status = 422, description = REDEEM_UNPROCESSABLE, body = ErrorBody),
    ),
)]
async fn apply(
    _: AdminAccess,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Redeemed> {
    let [account, code] = attributes(body, |input: ApplyInput| {
        [input.account_id, input.referral_code]
    })?;
    redeem_code(&state, &account, None, &code, Via::Apply).await
}

/// Deprecated: redeem a code for an account (role `service` or `admin`); use redeem or apply.
#[utoipa::path(
    post, path = "/api/landlord/register", tag = "referees",
    request_body = LandlordInput,
    responses(
        Redeemed,
        (status = 400, description = "`Attributes are required`", body = ErrorBody),
        (status = 403, description = REDEEM_REFUSED, body = ErrorBody),
        (status = 404, description = "`Referral code is not found`", body = ErrorBody),
        (status = 422, description = REDEEM_UNPROCESSABLE, body = ErrorBody),
        (status = 429, description = "`Too many requests`, with `Retry-After` (end users)", body = ErrorBody),
    ),
)]
#[deprecated]
async fn landlord_register(
    _: CodeRateLimit,
    _: BackendAccess,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Redeemed> {
    let [account, code] = attributes(body, |input: LandlordInput| {
        [input.account_id, input.promo_code]
    })?;
    redeem_code(&state, &account, None, &code, Via::Landlord).await
}

/// Get the referee record of an account. An end user may only read their own.
#[utoipa::path(
    get, path = "/api/referee/u/{userId}", tag = "referees",
    params(("userId" = String, Path, description = "The account id")),
    responses(
        (status = 200, description = "The referee", body = RefereeBody),
        (status = 404, description = "`Referee by user id not found.`", body = ErrorBody),
    ),
)]
async fn referee_by_user(
    caller: AnyCaller,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Json<RefereeBody>> {
    own_account_or_privileged(&caller, &user_id)?;
    let account = AccountId::parse(&user_id).ok_or(ReferralError::RefereeNotFound)?;
    let referee = service::referee(state.stores.referrals.as_ref(), &account).await?;
    Ok(Json(RefereeBody::from(&referee)))
}

async fn registered(
    caller: &Caller,
    state: &AppState,
    account_id: &str,
) -> Result<Json<RegisteredBody>> {
    own_account_or_privileged(caller, account_id)?;
    let Some(account) = AccountId::parse(account_id) else {
        return Ok(Json(RegisteredBody { registered: false }));
    };
    let registered = match service::referee(state.stores.referrals.as_ref(), &account).await {
        Ok(_) => true,
        Err(ReferralError::RefereeNotFound) => false,
        Err(err) => return Err(err.into()),
    };
    Ok(Json(RegisteredBody { registered }))
}

/// Deprecated: whether an account has redeemed a code. An end user may only ask for their own.
#[utoipa::path(
    get, path = "/api/referee/check/{accountId}", tag = "referees",
    params(("accountId" = String, Path, description = "The account id")),
    responses(
        (status = 200, description = "Whether the account redeemed a code (with `Deprecation: true`)", body = RegisteredBody),
    ),
)]
#[deprecated]
async fn referee_check(
    caller: AnyCaller,
    State(state): State<AppState>,
    Path(account_id): Path<String>,
) -> Result<Json<RegisteredBody>> {
    registered(&caller, &state, &account_id).await
}

/// Deprecated: whether an account has redeemed a code. An end user may only ask for their own.
#[utoipa::path(
    get, path = "/api/landlord/check/{accountId}", tag = "referees",
    params(("accountId" = String, Path, description = "The account id")),
    responses(
        (status = 200, description = "Whether the account redeemed a code (with `Deprecation: true`)", body = RegisteredBody),
    ),
)]
#[deprecated]
async fn landlord_check(
    caller: AnyCaller,
    State(state): State<AppState>,
    Path(account_id): Path<String>,
) -> Result<Json<RegisteredBody>> {
    registered(&caller, &state, &account_id).await
}
