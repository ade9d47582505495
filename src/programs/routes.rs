//! The programs' HTTP routes: parse the request, call the service, map the answer.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{MAX_NAME_CHARS, Program, ProgramNameError},
    service::{self, ProgramDraft, ProgramError},
};
use crate::{
    auth::ServiceAccess,
    error::{ApiError, ErrorBody, Result},
    extract::JsonOrForm,
    money::Money,
    routing::with_slash_alias,
    sentences,
    state::AppState,
};

impl From<ProgramError> for ApiError {
    fn from(err: ProgramError) -> Self {
        match err {
            ProgramError::NotFound => Self::not_found(sentences::PROGRAM_ID_NOT_FOUND),
            ProgramError::HasUsers => Self::Conflict(sentences::PROGRAM_HAS_USERS.to_owned()),
            ProgramError::Name(ProgramNameError::Empty) => {
                Self::unprocessable(sentences::PROGRAM_NAME_REQUIRED)
            }
            ProgramError::Name(ProgramNameError::TooLong) => Self::unprocessable(format!(
                "Field `name` must be at most {MAX_NAME_CHARS} characters"
            )),
            ProgramError::HoldDays(_) => Self::unprocessable(sentences::PROGRAM_BAD_HOLD_DAYS),
            ProgramError::CreditCap(_) => Self::unprocessable(sentences::PROGRAM_BAD_CREDIT_CAP),
            ProgramError::Store(err) => err.into(),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new();
    let router = with_slash_alias(router, routes!(list_programs, create_program));
    with_slash_alias(router, routes!(get_program, update_program, delete_program))
}

/// A program's fields, as JSON or as a form. Money defaults to 0 on creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProgramInput {
    /// 1 to 200 characters, not all blank; required on creation.
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"\S", example = "Friends 2026")]
    name: Option<String>,
    /// What the indicator earns when an indicated user signs up (default 0).
    #[schema(value_type = Money)]
    credit_value: Option<Money>,
    /// What the indicated user must have paid before the indicator's credit is acquired
    /// (default 0).
    #[schema(value_type = Money)]
    target_value: Option<Money>,
    /// Days an indicator's credit is held before it is acquired: a whole number from 0 to 365
    /// (default 0, no hold).
    #[schema(value_type = u16, required = false, maximum = 365, example = 7)]
    hold_days: Option<serde_json::Value>,
    /// At least 1, or `null` for no cap (the default); in a form, an empty value or `null` is
    /// `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, example = 3)]
    max_credits_per_indicator: Option<serde_json::Value>,
}

/// Keeps a field given as `null` apart from an absent one (`Some(Value::Null)`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// A whole number given as a JSON number or as decimal digits (forms carry only text).
fn whole_number(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(text) => {
            let text = text.trim();
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        }
        _ => None,
    }
}

/// A program to create: [`ProgramInput`] with its `name`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NewProgramInput(ProgramInput);

impl utoipa::PartialSchema for NewProgramInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let mut schema = <ProgramInput as utoipa::PartialSchema>::schema();
        if let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object)) = &mut schema {
            object.required.push("name".to_owned());
        }
        schema
    }
}

impl ToSchema for NewProgramInput {}

impl TryFrom<ProgramInput> for ProgramDraft {
    type Error = ApiError;

    fn try_from(input: ProgramInput) -> Result<Self> {
        let hold_days = input
            .hold_days
            .map(|value| {
                whole_number(&value)
                    .ok_or_else(|| ApiError::unprocessable(sentences::PROGRAM_BAD_HOLD_DAYS))
            })
            .transpose()?;
        let max_credits_per_indicator = input
            .max_credits_per_indicator
            .map(|value| match &value {
                serde_json::Value::Null => Ok(None),
                serde_json::Value::String(text)
                    if text.trim().is_empty() || text.trim() == "null" =>
                {
                    Ok(None)
                }
                other => whole_number(other)
                    .map(Some)
                    .ok_or_else(|| ApiError::unprocessable(sentences::PROGRAM_BAD_CREDIT_CAP)),
            })
            .transpose()?;
        Ok(Self {
            name: input.name,
            credit_value: input.credit_value,
            target_value: input.target_value,
            hold_days,
            max_credits_per_indicator,
        })
    }
}

/// Create a referral program.
#[utoipa::path(
    post, path = "/program/", tag = "programs",
    request_body(content(
        (NewProgramInput = "application/json"),
        (NewProgramInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "The new program", body = Program),
        (status = 422, description = "Missing or empty name, wrong types, negative money", body = ErrorBody),
    ),
)]
async fn create_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(NewProgramInput(input)): JsonOrForm<NewProgramInput>,
) -> Result<(StatusCode, Json<Program>)> {
    let program = service::create(
        state.stores.programs.as_ref(),
        input.try_into()?,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(program)))
}

/// List every referral program, oldest first (the first is the default program).
#[utoipa::path(
    get, path = "/program/", tag = "programs",
    responses(
        (status = 200, description = "All programs, oldest first", body = [Program]),
    ),
)]
async fn list_programs(
    _: ServiceAccess,
    State(state): State<AppState>,
) -> Result<Json<Vec<Program>>> {
    Ok(Json(service::list(state.stores.programs.as_ref()).await?))
}

/// Get one referral program.
#[utoipa::path(
    get, path = "/program/{id}/", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)")),
    responses(
        (status = 200, description = "The program", body = Program),
        (status = 404, description = "`ID not found`", body = ErrorBody),
    ),
)]
async fn get_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Program>> {
    Ok(Json(
        service::get(state.stores.programs.as_ref(), &id).await?,
    ))
}

/// Update a referral program: only the fields present change (0 is a value, not "absent").
#[utoipa::path(
    put, path = "/program/{id}/", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)")),
    request_body(content(
        (ProgramInput = "application/json"),
        (ProgramInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The updated program", body = Program),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 422, description = "Empty name, wrong types, negative money", body = ErrorBody),
    ),
)]
async fn update_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonOrForm(input): JsonOrForm<ProgramInput>,
) -> Result<Json<Program>> {
    let store = state.stores.programs.as_ref();
    let program = service::update(store, &id, input.try_into()?, state.clock.now()).await?;
    Ok(Json(program))
}

/// Delete a referral program that no user belongs to.
#[utoipa::path(
    delete, path = "/program/{id}/", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)")),
    responses(
        (status = 204, description = "Deleted; empty body"),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 409, description = "`Program has users`", body = ErrorBody),
    ),
)]
async fn delete_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    service::delete(state.stores.programs.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
