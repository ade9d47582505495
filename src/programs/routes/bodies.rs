//! The request and response bodies of the programs routes, as the handlers parse and send them
//! and the API description documents them.

use super::*;

/// A program's fields, as JSON or as a form. Money defaults to 0 on creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProgramInput {
    /// 1 to 200 characters, not all blank; required on creation.
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"\S", example = "Friends 2026")]
    pub(super) name: Option<String>,
    /// What the indicator earns when an indicated user signs up (default 0).
    #[schema(value_type = Money)]
    pub(super) credit_value: Option<Money>,
    /// What the indicated user must have paid before the indicator's credit is acquired
    /// (default 0).
    #[schema(value_type = Money)]
    pub(super) target_value: Option<Money>,
    /// Days an indicator's credit is held before it is acquired: a whole number from 0 to 365
    /// (default 0, no hold).
    #[schema(value_type = u16, required = false, maximum = 365, example = 7)]
    pub(super) hold_days: Option<serde_json::Value>,
    /// At least 1, or `null` for no cap (the default); in a form, an empty value or `null` is
    /// `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, example = 3)]
    pub(super) max_credits_per_indicator: Option<serde_json::Value>,
    /// Days after a credit's acquisition during which an invoice total below it reverses it: a
    /// whole number from 0 to 365 (default 0: an acquired credit is final).
    #[schema(value_type = u16, required = false, maximum = 365, example = 14)]
    pub(super) clawback_days: Option<serde_json::Value>,
    /// `none` (the default), `all` or `flagged`: which credits wait for an admin's approval.
    #[schema(value_type = Review, required = false)]
    pub(super) review: Option<serde_json::Value>,
    /// At least 1, or `null` for no velocity flag (the default); in a form, an empty value or
    /// `null` is `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, example = 10)]
    pub(super) review_velocity: Option<serde_json::Value>,
}

/// A program to create: [`ProgramInput`] with its `name`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NewProgramInput(pub(super) ProgramInput);

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
        let clawback_days = input
            .clawback_days
            .map(|value| {
                whole_number(&value)
                    .ok_or_else(|| ApiError::unprocessable(sentences::PROGRAM_BAD_CLAWBACK_DAYS))
            })
            .transpose()?;
        let review = input
            .review
            .map(|value| match &value {
                serde_json::Value::String(text) => text.trim().parse().ok(),
                _ => None,
            })
            .map(|review| {
                review.ok_or_else(|| ApiError::unprocessable(sentences::PROGRAM_BAD_REVIEW))
            })
            .transpose()?;
        Ok(Self {
            name: input.name,
            credit_value: input.credit_value,
            target_value: input.target_value,
            hold_days,
            max_credits_per_indicator: input
                .max_credits_per_indicator
                .map(|value| nullable_whole_number(&value, sentences::PROGRAM_BAD_CREDIT_CAP))
                .transpose()?,
            clawback_days,
            review,
            review_velocity: input
                .review_velocity
                .map(|value| nullable_whole_number(&value, sentences::PROGRAM_BAD_REVIEW_VELOCITY))
                .transpose()?,
        })
    }
}

/// A whole number, or `None` for `null` (in a form: an empty value or `null`); else 422 with
/// the field's sentence.
fn nullable_whole_number(value: &serde_json::Value, sentence: &'static str) -> Result<Option<u64>> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(text) if text.trim().is_empty() || text.trim() == "null" => {
            Ok(None)
        }
        other => whole_number(other)
            .map(Some)
            .ok_or_else(|| ApiError::unprocessable(sentence)),
    }
}
