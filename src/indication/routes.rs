use std::collections::{BTreeMap, HashMap, HashSet};

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
    domain::{
        EmailIndication, IndicatorCredit, MAX_LIST_ITEMS, Registration, StringList, Unlock,
        UserHash,
    },
    store::RegisterOutcome,
};
use crate::{
    app::{AppState, with_slash_alias},
    auth::ServiceAccess,
    clock,
    email::Email,
    error::{ApiError, ErrorBody, Result},
    extract::JsonOrForm,
    money::Money,
    programs::{Program, ProgramId},
};

/// `POST /users/` accepts up to this many hashes; `import-users` is there for more.
pub const MAX_USERS_PER_REQUEST: usize = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    [
        routes!(create_users),
        routes!(register),
        routes!(record_invoice),
        routes!(statement),
        routes!(indicate_emails),
        routes!(verify_emails),
    ]
    .into_iter()
    .fold(OpenApiRouter::new(), with_slash_alias)
}

/// A list field: an array of strings, or one comma-separated string (what forms can send).
fn string_list_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Comma-separated items")),
        )
        .into()
}

fn user_not_found() -> ApiError {
    ApiError::not_found("User not found")
}

/// A blank field counts as missing.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

// ---- POST /users/ -------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct UsersInput {
    /// One user hash (1 to 128 characters).
    #[schema(example = "a1b2c3")]
    user_hash: Option<String>,
    /// Several hashes: an array, or one comma-separated string (forms).
    #[schema(schema_with = string_list_schema)]
    user_hashes: Option<StringList>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersCreatedBody {
    /// Hashes this request created.
    #[schema(value_type = Vec<String>)]
    created: Vec<UserHash>,
    /// Hashes that were users already (left unchanged).
    #[schema(value_type = Vec<String>)]
    existing: Vec<UserHash>,
}

/// Create users (existing customers, with no indicator) in the default program.
///
/// Idempotent: hashes that are users already are reported in `existing` and left unchanged.
/// With no program configured, users are created without one. At most 1000 hashes a request.
#[utoipa::path(
    post, path = "/users/", tag = "indication",
    request_body(content(
        (UsersInput = "application/json"),
        (UsersInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Which hashes were created and which existed", body = UsersCreatedBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "No hash given, an empty or over-long hash, too many hashes", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_users(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<UsersInput>,
) -> Result<(StatusCode, Json<UsersCreatedBody>)> {
    let mut raw: Vec<String> = input.user_hash.into_iter().collect();
    if let Some(list) = input.user_hashes {
        raw.extend(list.capped("user_hashes", MAX_USERS_PER_REQUEST)?);
    }
    if raw.is_empty() {
        return Err(ApiError::unprocessable(
            "Field `user_hash` or `user_hashes` is required",
        ));
    }
    if raw.len() > MAX_USERS_PER_REQUEST {
        return Err(ApiError::unprocessable(format!(
            "At most {MAX_USERS_PER_REQUEST} user hashes are accepted in one request"
        )));
    }
    let hashes = raw
        .iter()
        .map(|h| UserHash::parse(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::unprocessable("Every user hash must have 1 to 128 characters"))?;
    let program = state.stores.programs.oldest().await?.map(|p| p.id);
    let outcome = state
        .stores
        .indication
        .create_users(hashes, program, clock::now())
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterInput {
    /// The existing user who referred the new one.
    #[schema(example = "indicator-hash")]
    user_indicator: Option<String>,
    /// The new user who just signed up.
    #[schema(example = "new-user-hash")]
    user_indicated: Option<String>,
    /// The program to join; the default (oldest) program when absent.
    referral_program_id: Option<String>,
}

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
    request_body(content(
        (RegisterInput = "application/json"),
        (RegisterInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "The new user", body = RegisteredUser),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`User indicator hash not found`, `Referral program id not found` or `No referral program configured`", body = ErrorBody),
        (status = 409, description = "`User already registered`", body = ErrorBody),
        (status = 412, description = "`Needed user_indicator and user_indicated hashes`", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "`A user cannot indicate itself`, an over-long hash, wrong types", body = ErrorBody),
    ),
    security(("bearer" = []))
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
            "Needed user_indicator and user_indicated hashes".to_owned(),
        ));
    };
    let too_long = |field: &str| {
        ApiError::unprocessable(format!("Field `{field}` must have at most 128 characters"))
    };
    let indicator = UserHash::parse(&indicator).ok_or_else(|| too_long("user_indicator"))?;
    let indicated = UserHash::parse(&indicated).ok_or_else(|| too_long("user_indicated"))?;
    if indicator == indicated {
        return Err(ApiError::unprocessable("A user cannot indicate itself"));
    }
    if state.stores.indication.user(&indicator).await?.is_none() {
        return Err(ApiError::not_found("User indicator hash not found"));
    }
    let program = registration_program(&state, present(input.referral_program_id)).await?;
    let registration = Registration::new(indicated, indicator, &program, clock::now());
    let body = RegisteredUser {
        user_hash: registration.user.hash.clone(),
        user_indicator: registration.event.user_indicator_hash.clone(),
        referral_program: program,
        created_at: registration.user.created_at,
    };
    match state.stores.indication.register(registration).await? {
        RegisterOutcome::Registered => Ok((StatusCode::CREATED, Json(body))),
        RegisterOutcome::AlreadyRegistered => {
            Err(ApiError::Conflict("User already registered".to_owned()))
        }
        RegisterOutcome::ProgramNotFound => {
            Err(ApiError::not_found("Referral program id not found"))
        }
    }
}

async fn registration_program(state: &AppState, requested: Option<String>) -> Result<Program> {
    match requested {
        Some(raw) => {
            let not_found = || ApiError::not_found("Referral program id not found");
            let id: ProgramId = raw.trim().parse().map_err(|_| not_found())?;
            state.stores.programs.get(id).await?.ok_or_else(not_found)
        }
        None => state
            .stores
            .programs
            .oldest()
            .await?
            .ok_or_else(|| ApiError::not_found("No referral program configured")),
    }
}

// ---- PUT /invoice/user/{user_hash}/ -------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct InvoiceInput {
    /// The sum of all invoices the user has paid so far (a running total, not an increment).
    total_amount_paid: Option<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceBody {
    /// The indicator's credit for this user: `target_value` once the threshold has been reached
    /// (by this call or before), else 0.
    acquired_credit: Money,
}

/// Record the running total a user has paid.
///
/// When the user was indicated and the total reaches the program's `target_value`, the
/// indicator is credited in one conditional step: the "credited" mark, an `acquired_credit`
/// ledger entry (amount `target_value`) and a queued `acquired_credit` callback for the
/// **indicator**. Exactly one credit per indicated user, however many and however concurrent
/// the calls; a later lower total revokes nothing.
#[utoipa::path(
    put, path = "/invoice/user/{user_hash}/", tag = "indication",
    params(("user_hash" = String, Path, description = "The paying user's hash")),
    request_body(content(
        (InvoiceInput = "application/json"),
        (InvoiceInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The indicator's credit for this user", body = InvoiceBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`User not found`", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "Missing, non-numeric or negative total", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn record_invoice(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
    JsonOrForm(input): JsonOrForm<InvoiceInput>,
) -> Result<Json<InvoiceBody>> {
    let total = input
        .total_amount_paid
        .ok_or_else(|| ApiError::unprocessable("Field `total_amount_paid` is required"))?;
    let hash = UserHash::parse(&user_hash).ok_or_else(user_not_found)?;
    let user = state
        .stores
        .indication
        .user(&hash)
        .await?
        .ok_or_else(user_not_found)?;
    let mut unlock = None;
    if let (Some(indicator), Some(IndicatorCredit::Pending), Some(program_id)) =
        (&user.indicator, &user.credit, user.program_id)
        && let Some(program) = state.stores.programs.get(program_id).await?
        && total >= program.target_value
    {
        unlock = Some(Unlock::new(&user, indicator, &program, clock::now()));
    }
    let payment = state
        .stores
        .indication
        .record_payment(&hash, total, unlock)
        .await?;
    let user = payment.user.ok_or_else(user_not_found)?;
    if payment.credited_now {
        tracing::info!(program = ?user.program_id, "indicator credit unlocked");
    }
    Ok(Json(InvoiceBody {
        acquired_credit: user.acquired_amount().unwrap_or(Money::ZERO),
    }))
}

// ---- GET /statement/{user_hash}/ ----------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementBody {
    /// Sum of `target_value` over the indicated users that have not yet unlocked it (the seed's
    /// spelling).
    potencial_credit: Money,
    /// Sum of the credits already unlocked.
    acquired_credit: Money,
    /// How many users this user indicated.
    indicated_users: usize,
    /// The user's own program.
    referral_program: Option<Program>,
}

/// What a user has earned by indicating others.
#[utoipa::path(
    get, path = "/statement/{user_hash}/", tag = "indication",
    params(("user_hash" = String, Path, description = "The indicator's hash")),
    responses(
        (status = 200, description = "The statement", body = StatementBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`User not found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn statement(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
) -> Result<Json<StatementBody>> {
    let hash = UserHash::parse(&user_hash).ok_or_else(user_not_found)?;
    let user = state
        .stores
        .indication
        .user(&hash)
        .await?
        .ok_or_else(user_not_found)?;
    let indicated = state.stores.indication.indicated_by(&hash).await?;
    let programs: HashMap<ProgramId, Program> = state
        .stores
        .programs
        .list()
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let overflow = || ApiError::Internal("statement sum overflows".to_owned());
    let (mut potencial, mut acquired) = (Money::ZERO, Money::ZERO);
    for other in &indicated {
        match &other.credit {
            Some(IndicatorCredit::Acquired { amount, .. }) => {
                acquired = acquired.checked_add(*amount).ok_or_else(overflow)?;
            }
            Some(IndicatorCredit::Pending) => {
                let target = other
                    .program_id
                    .and_then(|id| programs.get(&id))
                    .map_or(Money::ZERO, |p| p.target_value);
                potencial = potencial.checked_add(target).ok_or_else(overflow)?;
            }
            None => {}
        }
    }
    Ok(Json(StatementBody {
        potencial_credit: potencial,
        acquired_credit: acquired,
        indicated_users: indicated.len(),
        referral_program: user.program_id.and_then(|id| programs.get(&id).cloned()),
    }))
}

// ---- POST /emailindication/ and /emailverification/ ---------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailIndicationInput {
    /// The indicating user's hash.
    user_indicator: Option<String>,
    /// A comma-separated string, or an array; at most 100 addresses.
    #[schema(schema_with = string_list_schema, example = json!(["ana@example.com", "bo@example.org"]))]
    emails: Option<StringList>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailIndicationBody {
    #[schema(value_type = Vec<String>)]
    saved_emails: Vec<Email>,
    #[schema(value_type = Vec<String>)]
    already_indicated: Vec<Email>,
    invalid_emails: Vec<String>,
}

fn email_list(emails: Option<StringList>) -> Result<Vec<String>> {
    emails
        .ok_or_else(|| ApiError::unprocessable("Field `emails` is required"))?
        .capped("emails", MAX_LIST_ITEMS)
}

/// Record e-mail addresses a user indicated.
///
/// Each address is trimmed and lower-cased; invalid ones are not saved; ones already indicated
/// by anyone are not saved; the rest are saved, each with an `indication` ledger entry. An
/// address given twice in one request counts once.
#[utoipa::path(
    post, path = "/emailindication/", tag = "indication",
    request_body(content(
        (EmailIndicationInput = "application/json"),
        (EmailIndicationInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "What was saved, and why the rest was not", body = EmailIndicationBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 412, description = "`Need user_indicator parameter` or `User indicator not found`", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "No `emails`, more than 100, wrong types", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn indicate_emails(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<EmailIndicationInput>,
) -> Result<(StatusCode, Json<EmailIndicationBody>)> {
    let indicator = present(input.user_indicator)
        .ok_or_else(|| ApiError::PreconditionFailed("Need user_indicator parameter".to_owned()))?;
    let raw = email_list(input.emails)?;
    let not_found = || ApiError::PreconditionFailed("User indicator not found".to_owned());
    let indicator = UserHash::parse(&indicator).ok_or_else(not_found)?;
    let user = state
        .stores
        .indication
        .user(&indicator)
        .await?
        .ok_or_else(not_found)?;

    let mut body = EmailIndicationBody {
        saved_emails: Vec::new(),
        already_indicated: Vec::new(),
        invalid_emails: Vec::new(),
    };
    let mut seen = HashSet::new();
    for raw in raw {
        let Some(email) = Email::parse(&raw) else {
            let raw = raw.trim().to_owned();
            if !body.invalid_emails.contains(&raw) {
                body.invalid_emails.push(raw);
            }
            continue;
        };
        if !seen.insert(email.clone()) {
            continue;
        }
        let indication = EmailIndication::new(
            email.clone(),
            indicator.clone(),
            user.program_id,
            clock::now(),
        );
        if state.stores.indication.save_indication(indication).await? {
            body.saved_emails.push(email);
        } else {
            body.already_indicated.push(email);
        }
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailVerificationInput {
    /// A comma-separated string, or an array; at most 100 addresses.
    #[schema(schema_with = string_list_schema, example = json!(["ana@example.com"]))]
    emails: Option<StringList>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerificationBody {
    /// For each address as normalised (trimmed, lower-cased): the hash of the user who indicated
    /// it, or `false`.
    #[schema(value_type = Object, example = json!({"ana@example.com": "indicator-hash", "bo@example.org": false}))]
    emails: BTreeMap<String, serde_json::Value>,
}

/// Which addresses were indicated, and by whom.
#[utoipa::path(
    post, path = "/emailverification/", tag = "indication",
    request_body(content(
        (EmailVerificationInput = "application/json"),
        (EmailVerificationInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Indicator hash or false, per address", body = EmailVerificationBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "No `emails`, more than 100, wrong types", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn verify_emails(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<EmailVerificationInput>,
) -> Result<Json<EmailVerificationBody>> {
    let raw = email_list(input.emails)?;
    let valid: Vec<Email> = raw.iter().filter_map(|r| Email::parse(r)).collect();
    let indicators = state.stores.indication.indicators_of(&valid).await?;
    let emails = raw
        .iter()
        .map(|r| {
            let key = r.trim().to_lowercase();
            let value = Email::parse(r)
                .and_then(|e| indicators.get(&e))
                .map_or(serde_json::Value::Bool(false), |h| {
                    serde_json::Value::String(h.to_string())
                });
            (key, value)
        })
        .collect();
    Ok(Json(EmailVerificationBody { emails }))
}
