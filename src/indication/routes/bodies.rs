//! The request and response bodies of the indication routes, as the handlers parse and send them
//! and the API description documents them.

use super::*;

#[derive(Debug, Deserialize)]
pub struct UsersInput {
    pub(super) user_hash: Option<String>,
    pub(super) user_hashes: Option<StringList>,
}

impl utoipa::PartialSchema for UsersInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::RefOr::T(utoipa::openapi::Schema::AllOf(users_input_schema()))
    }
}

impl ToSchema for UsersInput {}

/// `user_hash`, `user_hashes` or both.
pub(super) fn users_input_schema() -> utoipa::openapi::schema::AllOf {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder};
    let requires = |field: &str| ObjectBuilder::new().required(field);
    AllOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .property(
                    "user_hash",
                    crate::schema::user_hash()
                        .description(Some("One user hash"))
                        .examples([serde_json::json!("a1b2c3")]),
                )
                .property(
                    "user_hashes",
                    crate::schema::user_hash_list(MAX_USERS_PER_REQUEST),
                ),
        )
        .item(
            AnyOfBuilder::new()
                .item(requires("user_hash"))
                .item(requires("user_hashes")),
        )
        .description(Some("`user_hash`, `user_hashes` or both"))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersCreatedBody {
    /// Hashes this request created.
    #[schema(value_type = Vec<String>)]
    pub(super) created: Vec<UserHash>,
    /// Hashes that were users already (left unchanged).
    #[schema(value_type = Vec<String>)]
    pub(super) existing: Vec<UserHash>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterInput {
    /// The existing user who referred the new one.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"\S", example = "indicator-hash")]
    pub(super) user_indicator: Option<String>,
    /// The new user who just signed up (not the indicator).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"\S", example = "new-user-hash")]
    pub(super) user_indicated: Option<String>,
    /// The program to join (24 hex characters); the default (oldest) program when absent.
    #[schema(value_type = String, pattern = r"^[0-9a-fA-F]{24}$")]
    pub(super) referral_program_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InvoiceInput {
    /// The sum of all invoices the user has paid so far (a running total, not an increment).
    #[schema(value_type = Money, required = true)]
    pub(super) total_amount_paid: Option<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceBody {
    /// The indicator's credit for this user: `target_value` once the threshold has been reached
    /// (by this call or before) and the credit acquired, else 0.
    pub(super) acquired_credit: Money,
    /// `none` for a user without an indicator; else `pending`, `held`, `in_review`,
    /// `acquired`, `capped`, `rejected` or `reversed`.
    pub(super) credit_status: CreditStatus,
    /// Only while `held`: when the credit is released, if the total is still at or above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "2026-11-29T09:00:00.000Z")]
    pub(super) release_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementBody {
    /// Sum of `target_value` over the indicated users whose credit is pending (the seed's
    /// spelling).
    pub(super) potencial_credit: Money,
    /// Sum of the credits held, waiting for their release date.
    pub(super) held_credit: Money,
    /// Sum of the credits waiting for an admin's review.
    pub(super) in_review_credit: Money,
    /// Sum of the credits already unlocked.
    pub(super) acquired_credit: Money,
    /// How many users this user indicated.
    pub(super) indicated_users: usize,
    /// The user's own program.
    pub(super) referral_program: Option<Program>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatedBody {
    pub(super) user_hash: String,
    #[serde(with = "clock::rfc3339_millis")]
    #[schema(value_type = String, example = "2026-11-21T17:03:55.123Z")]
    pub(super) registered_at: DateTime<Utc>,
    pub(super) total_amount_paid: Money,
    /// The current `target_value` of the user's program; `null` without a program.
    pub(super) target_value: Option<Money>,
    pub(super) credit_status: CreditStatus,
    /// As held, in review, acquired or reversed (0 when capped or rejected); while pending,
    /// what the program's target would unlock.
    pub(super) credit_amount: Option<Money>,
    /// Why the credit was flagged for review (`velocity`, `previous_reversal`); `[]` for none.
    pub(super) flags: Vec<String>,
    /// While held: when the credit is released; else `null`.
    #[schema(value_type = Option<String>, example = "2026-11-29T09:00:00.000Z")]
    pub(super) release_at: Option<String>,
    #[schema(value_type = Option<String>, example = "2026-11-22T09:00:00.000Z")]
    pub(super) acquired_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatedPageBody {
    pub(super) indicated: Vec<IndicatedBody>,
    /// Pass as `after` for the next page; `null` on the last.
    pub(super) next: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IndicatedParams {
    /// 1 to 500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub(super) limit: Option<Limit<{ service::MAX_INDICATED_PAGE }>>,
    /// The `next` of the previous page.
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,15}\.([0-9a-fA-F]{2}){1,512}$")]
    pub(super) after: Option<Cursor>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramStatsBody {
    /// Users in the program, imported or indicated.
    pub(super) users: u64,
    /// Users registered in the program by an indicator.
    pub(super) indicated_users: u64,
    pub(super) credits: CreditCounts,
    /// What the indicated users received at signup (the `signup_credit` ledger entries).
    pub(super) signup_credit_total: Money,
    /// Credits held now, waiting for their release.
    pub(super) held_credit_total: Money,
    /// Credits waiting for an admin's review.
    pub(super) in_review_credit_total: Money,
    /// Credits acquired and not reversed.
    pub(super) acquired_credit_total: Money,
    /// Credits taken back (positive): the amounts of the credits now `reversed`.
    pub(super) reversed_credit_total: Money,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailIndicationInput {
    /// The indicating user's hash.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"\S")]
    pub(super) user_indicator: Option<String>,
    /// A comma-separated string, or an array; at most 100 addresses.
    #[schema(schema_with = emails_schema, required = true, example = json!(["ana@example.com", "bo@example.org"]))]
    pub(super) emails: Option<StringList>,
}

pub(super) fn emails_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    crate::schema::email_list(MAX_LIST_ITEMS)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailIndicationBody {
    #[schema(value_type = Vec<String>)]
    pub(super) saved_emails: Vec<Email>,
    #[schema(value_type = Vec<String>)]
    pub(super) already_indicated: Vec<Email>,
    pub(super) invalid_emails: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailVerificationInput {
    /// A comma-separated string, or an array; at most 100 addresses.
    #[schema(schema_with = emails_schema, required = true, example = json!(["ana@example.com"]))]
    pub(super) emails: Option<StringList>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerificationBody {
    /// For each address as normalised (trimmed, lower-cased): the hash of the user who indicated
    /// it, or `false`.
    #[schema(value_type = Object, example = json!({"ana@example.com": "indicator-hash", "bo@example.org": false}))]
    pub(super) emails: BTreeMap<String, serde_json::Value>,
}
