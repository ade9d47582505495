//! The request and response bodies of the referrals routes, as the handlers parse and send them
//! and the API description documents them.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralCodeBody {
    #[serde(rename = "referralCode")]
    #[schema(example = "ALBE-7KQ2MZP")]
    pub(super) referral_code: String,
    /// Shown to `admin` and `service`, for a code that carries rules.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = rules_when_shown)]
    pub(super) rules: Option<RulesBody>,
}

impl From<&Referrer> for ReferralCodeBody {
    fn from(referrer: &Referrer) -> Self {
        Self {
            referral_code: referrer.referral_code.to_string(),
            rules: None,
        }
    }
}

/// The fields of [`RulesBody`], present together or not at all: what a flattened optional
/// `RulesBody` adds to an answer.
pub(super) fn rules_when_shown() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let nullable = |t: Type| utoipa::openapi::schema::SchemaType::from_iter([t, Type::Null]);
    ObjectBuilder::new()
        .description(Some(
            "Shown to `admin` and `service` for a code that carries rules: all four or none.",
        ))
        .property(
            "redemptions",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .property(
            "maxRedemptions",
            ObjectBuilder::new()
                .schema_type(nullable(Type::Integer))
                .minimum(Some(0)),
        )
        .property(
            "expiresAt",
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                ))),
        )
        .property("active", ObjectBuilder::new().schema_type(Type::Boolean))
        .build()
}

/// A code's rules and use, as `admin` and `service` see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesBody {
    /// Accounts that redeemed the code.
    #[schema(example = 2)]
    pub(super) redemptions: u64,
    /// `null`: no limit.
    #[serde(rename = "maxRedemptions")]
    #[schema(example = 10)]
    pub(super) max_redemptions: Option<u64>,
    /// RFC 3339, UTC; `null`: never expires.
    #[serde(rename = "expiresAt")]
    #[schema(example = "2027-01-31T23:59:59.000Z")]
    pub(super) expires_at: Option<String>,
    /// A code switched off refuses new accounts as an expired one does.
    pub(super) active: bool,
}

impl From<&Referrer> for RulesBody {
    fn from(referrer: &Referrer) -> Self {
        Self {
            redemptions: referrer.redemptions,
            max_redemptions: referrer.rules.max_redemptions,
            expires_at: referrer
                .rules
                .expires_at
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            active: referrer.rules.active,
        }
    }
}

/// A referrer found by code. `fistName` is the seed's spelling, kept for old clients beside
/// `firstName`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferrerBody {
    #[serde(rename = "fistName")]
    #[schema(example = "Albert")]
    pub(super) fist_name: String,
    #[serde(rename = "firstName")]
    #[schema(example = "Albert")]
    pub(super) first_name: String,
    #[serde(rename = "lastName")]
    #[schema(example = "Zabala")]
    pub(super) last_name: String,
    #[serde(rename = "referralCode")]
    #[schema(example = "ALBE-MQ-X")]
    pub(super) referral_code: String,
    /// Masked (`em***@molt-bonic.com`) for an end user looking at someone else's code.
    #[schema(example = "email@molt-bonic.com")]
    pub(super) email: String,
    /// Shown to `admin` and `service` for a code that carries rules, and in the answer to a
    /// change of rules.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = rules_when_shown)]
    pub(super) rules: Option<RulesBody>,
}

impl ReferrerBody {
    pub(super) fn new(referrer: &Referrer, email: String, rules: Option<RulesBody>) -> Self {
        let first_name = referrer.first_name.clone().unwrap_or_default();
        Self {
            fist_name: first_name.clone(),
            first_name,
            last_name: referrer.last_name.clone().unwrap_or_default(),
            referral_code: referrer.referral_code.to_string(),
            email,
            rules,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredReferrerBody {
    #[serde(rename = "referralCode")]
    pub(super) referral_code: String,
    pub(super) email: String,
    #[serde(rename = "firstName")]
    pub(super) first_name: String,
    #[serde(rename = "lastName")]
    pub(super) last_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredBody {
    pub(super) registered: bool,
}

/// A change of rules from a JSON object: each key absent (unchanged), `null` (cleared) or a
/// value.
/// A change of rules, as sent: each key absent (unchanged), `null` (cleared) or a value.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesInput {
    /// RFC 3339 with an offset; `null` clears it.
    #[serde(rename = "expiresAt", default, deserialize_with = "sent")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2027-01-31T23:59:59Z")]
    pub(super) expires_at: Sent,
    /// At least 1; `null` clears it. Below the current count, it refuses every new account.
    #[serde(rename = "maxRedemptions", default, deserialize_with = "sent")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64, example = 10)]
    pub(super) max_redemptions: Sent,
    /// `false` switches the code off; `null` restores the default, `true`.
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = Option<bool>)]
    pub(super) active: Sent,
}

/// A referrer to create, as sent.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct ExternalRegisterInput {
    #[serde(default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, format = Email, example = "email@bonic.om")]
    pub(super) email: Sent,
    /// At most 100 characters.
    #[serde(rename = "firstName", default, deserialize_with = "sent")]
    #[schema(value_type = String, max_length = 100)]
    pub(super) first_name: Sent,
    /// The seed's spelling of `firstName`, read when `firstName` is absent.
    #[serde(rename = "fistName", default, deserialize_with = "sent")]
    #[schema(value_type = String, max_length = 100)]
    pub(super) fist_name: Sent,
    /// At most 100 characters.
    #[serde(rename = "lastName", default, deserialize_with = "sent")]
    #[schema(value_type = String, max_length = 100)]
    pub(super) last_name: Sent,
}

/// The referrer's own referees, as the referrer sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnRefereesBody {
    #[serde(rename = "referralCode")]
    #[schema(example = "ALBE-7KQ2MZP")]
    pub(super) referral_code: String,
    /// Every account that redeemed the code.
    #[schema(example = 2)]
    pub(super) redemptions: u64,
    /// The newest redemptions first, at most 100.
    pub(super) referees: Vec<OwnRefereeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnRefereeBody {
    /// `YYYY-MM-DD HH:MM`, UTC.
    #[serde(rename = "redeemOn")]
    #[schema(example = "2026-11-22 10:30")]
    pub(super) redeem_on: String,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct RedeemInput {
    #[serde(rename = "referralCode", default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "ALBE-MQ-X")]
    pub(super) referral_code: Sent,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct ApplyInput {
    #[serde(rename = "accountId", default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"\S", example = "aaaa-bbbb-cccc-dddd")]
    pub(super) account_id: Sent,
    #[serde(rename = "referralCode", default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "ALBE-MQ-X")]
    pub(super) referral_code: Sent,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct LandlordInput {
    #[serde(rename = "accountId", default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"\S", example = "aaaa-bbbb-cccc-dddd")]
    pub(super) account_id: Sent,
    #[serde(rename = "promoCode", default, deserialize_with = "sent")]
    #[schema(value_type = String, required = true, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "REFERLAND09283")]
    pub(super) promo_code: Sent,
}

/// A redemption's answer, as the redemption routes send and document it.
#[derive(Debug, utoipa::IntoResponses)]
pub enum Redeemed {
    /// Redeemed.
    #[response(status = 200)]
    First(RefereeBody),
    /// The same code was redeemed before: the same body.
    #[response(status = 201)]
    Again(RefereeBody),
}

impl From<Redemption> for Redeemed {
    fn from(redemption: Redemption) -> Self {
        match redemption {
            Redemption::First(referee) => Self::First(RefereeBody::from(&referee)),
            Redemption::Again(referee) => Self::Again(RefereeBody::from(&referee)),
        }
    }
}

impl axum::response::IntoResponse for Redeemed {
    fn into_response(self) -> axum::response::Response {
        match self {
            Self::First(body) => (StatusCode::OK, Json(body)).into_response(),
            Self::Again(body) => (StatusCode::CREATED, Json(body)).into_response(),
        }
    }
}
