//! The indication program's HTTP routes: parse the request, call the service, map the answer.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{CreditStatus, IndicatorCredit, MAX_LIST_ITEMS, StringList, UserHash},
    service::{self, IndicationError, MAX_USERS_PER_REQUEST},
};
use crate::{
    auth::ServiceAccess,
    clock,
    cursor::Cursor,
    email::Email,
    error::{ApiError, ErrorBody, Result},
    extract::{JsonOrForm, Limit, Query},
    money::Money,
    programs::Program,
    routing::with_slash_alias,
    sentences,
    state::AppState,
};

impl From<IndicationError> for ApiError {
    fn from(err: IndicationError) -> Self {
        use IndicationError as E;
        match err {
            E::NoUserHashes => Self::unprocessable(sentences::USER_HASHES_REQUIRED),
            E::TooManyUserHashes => Self::unprocessable(format!(
                "At most {MAX_USERS_PER_REQUEST} user hashes are accepted in one request"
            )),
            E::BadUserHash => Self::unprocessable(sentences::USER_HASH_LENGTH),
            E::ListTooLong(err) => Self::unprocessable(err.to_string()),
            E::SelfIndication => Self::unprocessable(sentences::SELF_INDICATION),
            E::IndicatorHashNotFound => Self::not_found(sentences::INDICATOR_HASH_NOT_FOUND),
            E::IndicatorNotFound => {
                Self::PreconditionFailed(sentences::INDICATOR_NOT_FOUND.to_owned())
            }
            E::ProgramNotFound => Self::not_found(sentences::PROGRAM_NOT_FOUND),
            E::NoProgram => Self::not_found(sentences::NO_PROGRAM),
            E::ProgramIdNotFound => Self::not_found(sentences::PROGRAM_ID_NOT_FOUND),
            E::AlreadyRegistered => Self::Conflict(sentences::ALREADY_REGISTERED.to_owned()),
            E::UserNotFound => Self::not_found(sentences::USER_NOT_FOUND),
            E::CreditNotFound => Self::not_found(sentences::CREDIT_NOT_FOUND),
            E::CreditIs(status) => Self::Conflict(format!("Credit is {status}")),
            E::Overflow => Self::Internal(err.to_string()),
            E::Store(err) => err.into(),
        }
    }
}

mod bodies;
mod credits;
mod daily;
mod exports;

use bodies::*;

pub fn router() -> OpenApiRouter<AppState> {
    let legacy = [
        routes!(create_users),
        routes!(register),
        routes!(record_invoice),
        routes!(statement),
        routes!(indicated),
        routes!(program_stats),
        routes!(indicate_emails),
        routes!(verify_emails),
    ]
    .into_iter()
    .fold(OpenApiRouter::new(), with_slash_alias);
    legacy
        .merge(credits::router())
        .merge(exports::router())
        .merge(daily::router())
}

/// A hash from a path: one that cannot be a hash names no user.
fn path_hash(raw: &str) -> Result<UserHash> {
    UserHash::parse(raw).ok_or(IndicationError::UserNotFound.into())
}

/// A blank field counts as missing.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

// ---- POST /users/ -------------------------------------------------------------------------

/// Create users (existing customers, with no indicator) in the default program.
///
/// Idempotent: hashes that are users already are reported in `existing` and left unchanged.
/// With no program configured, users are created without one. At most 1000 hashes a request.
#[utoipa::path(
    post, path = "/users/", tag = "indication",
    request_body = UsersInput,
    responses(
        (status = 201, description = "Which hashes were created and which existed", body = UsersCreatedBody),
        (status = 422, description = "No hash given, an empty or over-long hash, too many hashes", body = ErrorBody),
    ),
)]
async fn create_users(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<UsersInput>,
) -> Result<(StatusCode, Json<UsersCreatedBody>)> {
    let mut raw: Vec<String> = input.user_hash.into_iter().collect();
    if let Some(list) = input.user_hashes {
        raw.extend(
            list.capped("user_hashes", MAX_USERS_PER_REQUEST)
                .map_err(IndicationError::from)?,
        );
    }
    let hashes = raw
        .iter()
        .map(|h| UserHash::parse(h))
        .collect::<Option<Vec<_>>>()
        .ok_or(IndicationError::BadUserHash);
    let stores = &state.stores;
    let outcome = service::create_users(
        stores.indication.as_ref(),
        stores.programs.as_ref(),
        hashes?,
        state.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UsersCreatedBody {
            created: outcome.created,
            existing: outcome.existing,
        }),
    ))
}

// ---- POST /register/ ----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredUser {
    #[schema(value_type = String)]
    user_hash: UserHash,
    #[schema(value_type = String)]
    user_indicator: UserHash,
    referral_program: Program,
    #[serde(with = "clock::rfc3339_millis")]
    created_at: DateTime<Utc>,
}

/// Register a user indicated by an existing user.
///
/// All or nothing: the indicated user, the ledger entries `signup`, `signup_credit` (amount
/// `credit_value`, for the indicated user) and `potencial_credit` (amount `target_value`, for
/// the indicator), and a queued `signup_credit` callback. Of concurrent registrations of one
/// hash exactly one succeeds; the others get 409. Self-indication is refused (422) before any
/// look-up.
#[utoipa::path(
    post, path = "/register/", tag = "indication",
    request_body = RegisterInput,
    responses(
        (status = 201, description = "The new user", body = RegisteredUser),
        (status = 404, description = "`User indicator hash not found`, `Referral program id not found` or `No referral program configured`", body = ErrorBody),
        (status = 409, description = "`User already registered`", body = ErrorBody),
        (status = 412, description = "`Needed user_indicator and user_indicated hashes`", body = ErrorBody),
        (status = 422, description = "`A user cannot indicate itself`, an over-long hash, wrong types", body = ErrorBody),
    ),
)]
async fn register(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<RegisterInput>,
) -> Result<(StatusCode, Json<RegisteredUser>)> {
    let (Some(indicator), Some(indicated)) =
        (present(input.user_indicator), present(input.user_indicated))
    else {
        return Err(ApiError::PreconditionFailed(
            sentences::REGISTER_HASHES_NEEDED.to_owned(),
        ));
    };
    let too_long = |field: &str| {
        ApiError::unprocessable(format!("Field `{field}` must have at most 128 characters"))
    };
    let indicator = UserHash::parse(&indicator).ok_or_else(|| too_long("user_indicator"))?;
    let indicated = UserHash::parse(&indicated).ok_or_else(|| too_long("user_indicated"))?;
    let program = present(input.referral_program_id);
    let registered = service::register(
        state.stores.indication.as_ref(),
        state.stores.programs.as_ref(),
        indicator,
        indicated,
        program.as_deref(),
        state.clock.now(),
    )
    .await?;
    state.outbox_signal.wake();
    Ok((
        StatusCode::CREATED,
        Json(RegisteredUser {
            user_hash: registered.user_hash,
            user_indicator: registered.user_indicator,
            referral_program: registered.program,
            created_at: registered.created_at,
        }),
    ))
}

// ---- PUT /invoice/user/{user_hash}/ -------------------------------------------------------

/// Record the running total a user has paid.
///
/// When the user was indicated and the total reaches the program's `target_value`, the
/// indicator is credited in one conditional step: the "credited" mark, an `acquired_credit`
/// ledger entry (amount `target_value`) and a queued `acquired_credit` callback for the
/// **indicator**. Exactly one credit per indicated user, however many and however concurrent
/// the calls; a later lower total revokes nothing once acquired.
///
/// In a program with `hold_days` > 0 the crossing makes the credit `held` (ledger
/// `credit_held`, no callback) until `release_at`; a total below the credit while held sends it
/// back to `pending` (ledger `credit_cancelled`). In a program with `max_credits_per_indicator`,
/// a crossing beyond the indicator's cap of held + acquired credits makes it `capped` for good
/// (ledger `credit_capped`, amount 0, no callback).
#[utoipa::path(
    put, path = "/invoice/user/{user_hash}/", tag = "indication",
    params(("user_hash" = String, Path, description = "The paying user's hash")),
    request_body = InvoiceInput,
    responses(
        (status = 200, description = "The indicator's credit for this user", body = InvoiceBody),
        (status = 404, description = "`User not found`", body = ErrorBody),
        (status = 422, description = "Missing, non-numeric or negative total", body = ErrorBody),
    ),
)]
async fn record_invoice(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
    JsonOrForm(input): JsonOrForm<InvoiceInput>,
) -> Result<Json<InvoiceBody>> {
    let total = input
        .total_amount_paid
        .ok_or_else(|| ApiError::unprocessable(sentences::TOTAL_REQUIRED))?;
    let outcome = service::record_invoice(
        state.stores.indication.as_ref(),
        state.stores.programs.as_ref(),
        &path_hash(&user_hash)?,
        total,
        state.clock.now(),
    )
    .await?;
    state.outbox_signal.wake();
    Ok(Json(InvoiceBody {
        acquired_credit: outcome.acquired_credit,
        credit_status: outcome.credit_status,
        release_at: outcome.release_at.map(rfc3339_millis),
    }))
}

// ---- GET /statement/{user_hash}/ ----------------------------------------------------------

/// What a user has earned by indicating others.
#[utoipa::path(
    get, path = "/statement/{user_hash}/", tag = "indication",
    params(("user_hash" = String, Path, description = "The indicator's hash")),
    responses(
        (status = 200, description = "The statement", body = StatementBody),
        (status = 404, description = "`User not found`", body = ErrorBody),
    ),
)]
async fn statement(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
) -> Result<Json<StatementBody>> {
    let statement = service::statement(
        state.stores.indication.as_ref(),
        state.stores.programs.as_ref(),
        &path_hash(&user_hash)?,
    )
    .await?;
    Ok(Json(StatementBody {
        potencial_credit: statement.potencial_credit,
        held_credit: statement.held_credit,
        in_review_credit: statement.in_review_credit,
        acquired_credit: statement.acquired_credit,
        indicated_users: statement.indicated_users,
        referral_program: statement.program,
    }))
}

// ---- GET /statement/{user_hash}/indicated/ -------------------------------------------------

/// The users a user indicated, oldest registration first, each with its total, target and
/// credit: why an indicator was, or was not yet, credited.
#[utoipa::path(
    get, path = "/statement/{user_hash}/indicated/", tag = "indication",
    params(("user_hash" = String, Path, description = "The indicator's hash"), IndicatedParams),
    responses(
        (status = 200, description = "One page of indicated users", body = IndicatedPageBody),
        (status = 404, description = "`User not found`", body = ErrorBody),
        (status = 422, description = "A bad `limit` or cursor", body = ErrorBody),
    ),
)]
async fn indicated(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
    Query(params): Query<IndicatedParams>,
) -> Result<Json<IndicatedPageBody>> {
    let page = service::indicated(
        state.stores.indication.as_ref(),
        state.stores.programs.as_ref(),
        &path_hash(&user_hash)?,
        Limit::or(params.limit, service::DEFAULT_INDICATED_PAGE),
        params.after.as_ref(),
    )
    .await?;
    Ok(Json(IndicatedPageBody {
        indicated: page
            .lines
            .iter()
            .map(|line| {
                let credit = line.user.credit.as_ref();
                let release_at = credit.and_then(IndicatorCredit::release_at);
                let acquired_at = credit.and_then(IndicatorCredit::acquired_at);
                IndicatedBody {
                    user_hash: line.user.hash.to_string(),
                    registered_at: line.user.created_at,
                    total_amount_paid: line.user.total_amount_paid,
                    target_value: line.target_value,
                    credit_status: line.user.credit_status(),
                    credit_amount: line.credit_amount(),
                    release_at: release_at.map(rfc3339_millis),
                    acquired_at: acquired_at.map(rfc3339_millis),
                    flags: credit
                        .map(|credit| credit.flags().iter().map(|f| f.name().to_owned()).collect())
                        .unwrap_or_default(),
                }
            })
            .collect(),
        next: page.next.map(|cursor| cursor.encode()),
    }))
}

/// A time as the API writes it: RFC 3339 in UTC, to the millisecond.
use crate::clock::rfc3339_millis_string as rfc3339_millis;

// ---- GET /program/{id}/stats/ --------------------------------------------------------------

/// How many indicated users' credits are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditCounts {
    pending: u64,
    held: u64,
    in_review: u64,
    acquired: u64,
    capped: u64,
    rejected: u64,
    reversed: u64,
}

/// A program's figures: users, credits per state and exact money totals, consistent with the
/// ledger. Cheap to read: kept current by each write on the embedded store; one aggregation
/// over the program's users (index `program_id, credit.status`) on MongoDB.
#[utoipa::path(
    get, path = "/program/{id}/stats/", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)")),
    responses(
        (status = 200, description = "The program's figures", body = ProgramStatsBody),
        (status = 404, description = "`ID not found`", body = ErrorBody),
    ),
)]
async fn program_stats(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProgramStatsBody>> {
    let figures = service::program_figures(
        state.stores.indication.as_ref(),
        state.stores.programs.as_ref(),
        &id,
    )
    .await?;
    Ok(Json(ProgramStatsBody {
        users: figures.users,
        indicated_users: figures.indicated_users,
        credits: CreditCounts {
            pending: figures.pending,
            held: figures.held,
            in_review: figures.in_review,
            acquired: figures.acquired,
            capped: figures.capped,
            rejected: figures.rejected,
            reversed: figures.reversed,
        },
        signup_credit_total: figures.signup_credit_total,
        held_credit_total: figures.held_credit_total,
        in_review_credit_total: figures.in_review_credit_total,
        acquired_credit_total: figures.acquired_credit_total,
        reversed_credit_total: figures.reversed_credit_total,
    }))
}

// ---- POST /emailindication/ and /emailverification/ ---------------------------------------

fn email_list(emails: Option<StringList>) -> Result<StringList> {
    emails.ok_or_else(|| ApiError::unprocessable(sentences::EMAILS_REQUIRED))
}

/// Record e-mail addresses a user indicated.
///
/// Each address is trimmed and lower-cased; invalid ones are not saved; ones already indicated
/// by anyone are not saved; the rest are saved, each with an `indication` ledger entry. An
/// address given twice in one request counts once.
#[utoipa::path(
    post, path = "/emailindication/", tag = "indication",
    request_body = EmailIndicationInput,
    responses(
        (status = 201, description = "What was saved, and why the rest was not", body = EmailIndicationBody),
        (status = 412, description = "`Need user_indicator parameter` or `User indicator not found`", body = ErrorBody),
        (status = 422, description = "No `emails`, more than 100, wrong types", body = ErrorBody),
    ),
)]
async fn indicate_emails(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<EmailIndicationInput>,
) -> Result<(StatusCode, Json<EmailIndicationBody>)> {
    let indicator = present(input.user_indicator).ok_or_else(|| {
        ApiError::PreconditionFailed(sentences::INDICATOR_PARAMETER_NEEDED.to_owned())
    })?;
    let emails = email_list(input.emails)?;
    let report = service::indicate_emails(
        state.stores.indication.as_ref(),
        &indicator,
        emails,
        state.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EmailIndicationBody {
            saved_emails: report.saved,
            already_indicated: report.already_indicated,
            invalid_emails: report.invalid,
        }),
    ))
}

/// Which addresses were indicated, and by whom.
#[utoipa::path(
    post, path = "/emailverification/", tag = "indication",
    request_body = EmailVerificationInput,
    responses(
        (status = 200, description = "Indicator hash or false, per address", body = EmailVerificationBody),
        (status = 422, description = "No `emails`, more than 100, wrong types", body = ErrorBody),
    ),
)]
async fn verify_emails(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<EmailVerificationInput>,
) -> Result<Json<EmailVerificationBody>> {
    let found =
        service::verify_emails(state.stores.indication.as_ref(), email_list(input.emails)?).await?;
    let emails = found
        .into_iter()
        .map(|(email, indicator)| {
            let value = indicator.map_or(serde_json::Value::Bool(false), |h| {
                serde_json::Value::String(h.to_string())
            });
            (email, value)
        })
        .collect();
    Ok(Json(EmailVerificationBody { emails }))
}
