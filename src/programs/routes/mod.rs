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
    domain::{MAX_NAME_CHARS, Program, ProgramNameError, Review},
    service::{self, ProgramDraft, ProgramError},
};
use crate::{
    audit::{Audit, Done, Subject, domain::changes_of},
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
            ProgramError::HoldDays => Self::unprocessable(sentences::PROGRAM_BAD_HOLD_DAYS),
            ProgramError::ClawbackDays => Self::unprocessable(sentences::PROGRAM_BAD_CLAWBACK_DAYS),
            ProgramError::CreditCap(_) => Self::unprocessable(sentences::PROGRAM_BAD_CREDIT_CAP),
            ProgramError::ReviewVelocity(_) => {
                Self::unprocessable(sentences::PROGRAM_BAD_REVIEW_VELOCITY)
            }
            ProgramError::Store(err) => err.into(),
        }
    }
}

mod bodies;

use bodies::*;

pub fn router() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new();
    let router = with_slash_alias(router, routes!(list_programs, create_program));
    with_slash_alias(router, routes!(get_program, update_program, delete_program))
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

/// Create a referral program.
#[utoipa::path(
    post, path = "/program/", tag = "programs",
    request_body = NewProgramInput,
    responses(
        (status = 201, description = "The new program", body = Program),
        (status = 422, description = "Missing or empty name, wrong types, negative money", body = ErrorBody),
    ),
)]
async fn create_program(
    _: ServiceAccess,
    audit: Audit,
    State(state): State<AppState>,
    JsonOrForm(NewProgramInput(input)): JsonOrForm<NewProgramInput>,
) -> Result<(StatusCode, Json<Program>)> {
    let program = service::build(input.try_into()?, state.clock.now())?;
    let program = audit
        .record(
            Subject::new("program.create", program.id),
            changes_of(fields_of),
            async {
                state.stores.programs.insert(&program).await?;
                Ok(Done::made(program.clone(), program.clone()))
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(program)))
}

/// A program's fields as its answers show them, for the audit log's before and after.
fn fields_of(program: &Program) -> serde_json::Value {
    serde_json::to_value(program).unwrap_or_default()
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
    request_body = ProgramInput,
    responses(
        (status = 200, description = "The updated program", body = Program),
        (status = 404, description = "`ID not found`", body = ErrorBody),
        (status = 422, description = "Empty name, wrong types, negative money", body = ErrorBody),
    ),
)]
async fn update_program(
    _: ServiceAccess,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonOrForm(input): JsonOrForm<ProgramInput>,
) -> Result<Json<Program>> {
    let store = state.stores.programs.as_ref();
    let draft = input.try_into()?;
    let before = service::get(store, &id).await?;
    let program = audit
        .record(
            Subject::new("program.update", before.id),
            changes_of(|program| {
                let mut fields = fields_of(program);
                if let Some(fields) = fields.as_object_mut() {
                    fields.remove("updated_at");
                }
                fields
            }),
            async {
                let after = service::update(store, &id, draft, state.clock.now()).await?;
                Ok(Done::changed(after.clone(), before.clone(), after))
            },
        )
        .await?;
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
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let store = state.stores.programs.as_ref();
    let before = service::get(store, &id).await?;
    audit
        .record(
            Subject::new("program.delete", before.id),
            changes_of(fields_of),
            async {
                service::delete(store, &id).await?;
                Ok(Done::removed((), before.clone()))
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
