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
    app::{AppState, with_slash_alias},
    auth::ServiceAccess,
    clock,
    error::{ApiError, ErrorBody, Result},
    extract::JsonOrForm,
    money::Money,
    sentences,
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
    /// 1 to 200 characters; required on creation.
    #[schema(example = "Friends 2026")]
    name: Option<String>,
    credit_value: Option<Money>,
    target_value: Option<Money>,
}

impl From<ProgramInput> for ProgramDraft {
    fn from(input: ProgramInput) -> Self {
        Self {
            name: input.name,
            credit_value: input.credit_value,
            target_value: input.target_value,
        }
    }
}

/// Create a referral program.
#[utoipa::path(
    post, path = "/program/", tag = "programs",
    request_body(content(
        (ProgramInput = "application/json"),
        (ProgramInput = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "The new program", body = Program),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "Missing or empty name, wrong types, negative money", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<ProgramInput>,
) -> Result<(StatusCode, Json<Program>)> {
    let program = service::create(state.stores.programs.as_ref(), input.into()).await?;
    Ok((StatusCode::CREATED, Json(program)))
}

/// List every referral program, oldest first (the first is the default program).
#[utoipa::path(
    get, path = "/program/", tag = "programs",
    responses(
        (status = 200, description = "All programs, oldest first", body = [Program]),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
    ),
    security(("bearer" = []))
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
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`ID not found`", body = ErrorBody),
    ),
    security(("bearer" = []))
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
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 422, description = "Empty name, wrong types, negative money", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn update_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonOrForm(input): JsonOrForm<ProgramInput>,
) -> Result<Json<Program>> {
    let store = state.stores.programs.as_ref();
    let program = service::update(store, &id, input.into(), clock::now()).await?;
    Ok(Json(program))
}

/// Delete a referral program that no user belongs to.
#[utoipa::path(
    delete, path = "/program/{id}/", tag = "programs",
    params(("id" = String, Path, description = "Program id (24 hex characters)")),
    responses(
        (status = 204, description = "Deleted; empty body"),
        (status = 401, description = "No valid token with role service or admin", body = ErrorBody),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 409, description = "`Program has users`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_program(
    _: ServiceAccess,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    service::delete(state.stores.programs.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
