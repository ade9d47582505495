//! Admin routes over credits (role `admin`): the review queue, one credit with its history, and
//! the decisions — approve, reject, reverse — each recorded with who took it and why.

use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    super::{
        domain::{
            AdminMove, CreditFlag, CreditStatus, Decision, DecisionReason, LedgerEntry,
            LedgerOperation, User, UserHash,
        },
        service::{self, DEFAULT_CREDIT_PAGE, MAX_CREDIT_PAGE},
        store::CreditFilter,
    },
    rfc3339_millis,
};
use crate::{
    audit::{Audit, Done, Subject, Why, domain::changes_of},
    auth::AdminAccess,
    cursor::Cursor,
    error::{ApiError, ErrorBody, Result},
    extract::{JsonOrForm, Limit, Query},
    money::{Money, SignedMoney},
    programs::ProgramId,
    sentences,
    state::AppState,
};

/// The longest note a decision takes, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// The most credits one bulk approval names.
pub const MAX_BULK: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credits))
        .routes(routes!(approve_credits))
        .routes(routes!(get_credit))
        .routes(routes!(approve_credit))
        .routes(routes!(reject_credit))
        .routes(routes!(reverse_credit))
}

/// One flag on a credit and why it was raised.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagBody {
    /// `velocity` or `previous_reversal`.
    flag: &'static str,
    /// The figures the flag was raised on, in a sentence.
    reason: String,
}

/// An indicator's credit for one indicated user, as an admin reviews it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditBody {
    #[schema(value_type = String)]
    user_indicated: UserHash,
    #[schema(value_type = Option<String>)]
    user_indicator: Option<UserHash>,
    #[schema(value_type = Option<String>)]
    program_id: Option<ProgramId>,
    status: CreditStatus,
    /// The credit's amount in its state (0 when capped or rejected); `null` while pending.
    amount: Option<Money>,
    /// The names of its flags: `velocity`, `previous_reversal`; `[]` for none.
    flags: Vec<&'static str>,
    /// Each flag with its reason.
    flag_reasons: Vec<FlagBody>,
    /// When the indicated user's total crossed the target.
    #[schema(value_type = Option<String>)]
    crossed_at: Option<String>,
    /// While held: when it is released.
    #[schema(value_type = Option<String>)]
    release_at: Option<String>,
    #[schema(value_type = Option<String>)]
    acquired_at: Option<String>,
    #[schema(value_type = Option<String>)]
    reversed_at: Option<String>,
    /// Who took the decision that left the credit in its state (an admin token's `sub`);
    /// `null` for a move billing's invoice caused.
    decided_by: Option<String>,
    reason: Option<DecisionReason>,
    note: Option<String>,
}

impl From<&User> for CreditBody {
    fn from(user: &User) -> Self {
        let credit = user.credit.as_ref();
        let decision = credit.and_then(|credit| credit.decision());
        let flags = credit.map(|credit| credit.flags()).unwrap_or_default();
        let time = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(rfc3339_millis);
        Self {
            user_indicated: user.hash.clone(),
            user_indicator: user.indicator.clone(),
            program_id: user.program_id,
            status: user.credit_status(),
            amount: credit.and_then(|credit| credit.amount()),
            flags: flags.iter().map(CreditFlag::name).collect(),
            flag_reasons: flags
                .iter()
                .map(|flag| FlagBody {
                    flag: flag.name(),
                    reason: flag.reason(),
                })
                .collect(),
            crossed_at: time(credit.and_then(|c| c.crossed_at())),
            release_at: time(credit.and_then(|c| c.release_at())),
            acquired_at: time(credit.and_then(|c| c.acquired_at())),
            reversed_at: time(credit.and_then(|c| c.reversed_at())),
            decided_by: decision.and_then(|d| d.by.clone()),
            reason: decision.and_then(|d| d.reason),
            note: decision.and_then(|d| d.note.clone()),
        }
    }
}

/// One ledger entry of a credit's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryBody {
    operation: LedgerOperation,
    /// Negative for `credit_reversed`.
    amount: SignedMoney,
    #[schema(value_type = String)]
    created_at: String,
    decided_by: Option<String>,
    reason: Option<DecisionReason>,
    note: Option<String>,
}

impl From<LedgerEntry> for HistoryEntryBody {
    fn from(entry: LedgerEntry) -> Self {
        let decision = entry.decision.unwrap_or(Decision {
            by: None,
            reason: None,
            note: None,
        });
        Self {
            operation: entry.operation,
            amount: entry.amount,
            created_at: rfc3339_millis(entry.created_at),
            decided_by: decision.by,
            reason: decision.reason,
            note: decision.note,
        }
    }
}

/// A credit and its ledger entries, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditHistoryBody {
    #[serde(flatten)]
    credit: CreditBody,
    history: Vec<HistoryEntryBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreditPageBody {
    credits: Vec<CreditBody>,
    /// Pass as `after` for the next page; `null` on the last one.
    next: Option<String>,
}

/// The query of `GET /admin/credits`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreditParams {
    /// Only credits in this state.
    #[param(inline)]
    status: Option<CreditStatus>,
    /// Only credits of this program (24 hex characters).
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{24}$")]
    program_id: Option<ProgramIdParam>,
    /// Only credits of this indicator.
    #[param(value_type = Option<String>, min_length = 1, max_length = 128, pattern = r"\S")]
    user_indicator: Option<UserHash>,
    /// `true`: only credits that carry a flag.
    flagged: Option<bool>,
    /// 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Limit<MAX_CREDIT_PAGE>>,
    /// The `next` of the previous page.
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,15}\.([0-9a-fA-F]{2}){1,512}$")]
    after: Option<Cursor>,
}

/// A program id in a query: 24 hex characters, else 422.
#[derive(Debug)]
pub struct ProgramIdParam(ProgramId);

impl ProgramIdParam {
    pub fn id(self) -> ProgramId {
        self.0
    }
}

impl<'de> Deserialize<'de> for ProgramIdParam {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse()
            .map(Self)
            .map_err(|_| serde::de::Error::custom("must be 24 hexadecimal characters"))
    }
}

/// List credits in registration order of their indicated users, with cursor pagination
/// (role `admin`).
///
/// `status=in_review` is the review queue; `flagged=true` keeps the credits that carry a flag.
/// On the embedded store a page reads at most 2,000 index entries: with filters that match
/// few credits, a page may hold fewer than `limit` (even none) while `next` is set — follow
/// `next` until it is `null`.
#[utoipa::path(
    get, path = "/admin/credits", tag = "credits",
    params(CreditParams),
    responses(
        (status = 200, description = "One page of credits", body = CreditPageBody),
        (status = 422, description = "A bad filter, `limit` or cursor", body = ErrorBody),
    ),
)]
async fn list_credits(
    _: AdminAccess,
    State(state): State<AppState>,
    Query(params): Query<CreditParams>,
) -> Result<Json<CreditPageBody>> {
    let filter = CreditFilter {
        status: params.status.filter(|status| *status != CreditStatus::None),
        program: params.program_id.map(|id| id.0),
        indicator: params.user_indicator,
        flagged: params.flagged.unwrap_or(false),
    };
    if params.status == Some(CreditStatus::None) {
        return Ok(Json(CreditPageBody {
            credits: Vec::new(),
            next: None,
        }));
    }
    let page = service::credits(
        state.stores.indication.as_ref(),
        &filter,
        Limit::or(params.limit, DEFAULT_CREDIT_PAGE),
        params.after.as_ref(),
    )
    .await?;
    Ok(Json(CreditPageBody {
        credits: page.users.iter().map(CreditBody::from).collect(),
        next: page.next.map(|cursor| cursor.encode()),
    }))
}

/// One credit, with its ledger history (role `admin`). A credit is named by the indicated
/// user's hash.
#[utoipa::path(
    get, path = "/admin/credits/{user_hash}", tag = "credits",
    params(("user_hash" = String, Path, description = "The indicated user's hash")),
    responses(
        (status = 200, description = "The credit and its history", body = CreditHistoryBody),
        (status = 404, description = "`Credit not found`", body = ErrorBody),
    ),
)]
async fn get_credit(
    _: AdminAccess,
    State(state): State<AppState>,
    Path(user_hash): Path<String>,
) -> Result<Json<CreditHistoryBody>> {
    let view = service::credit(state.stores.indication.as_ref(), &user_hash).await?;
    Ok(Json(CreditHistoryBody {
        credit: CreditBody::from(&view.user),
        history: view.history.into_iter().map(Into::into).collect(),
    }))
}

/// An admin's decision to reject or reverse a credit: why, and a note.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DecisionInput {
    /// `fraud`, `self_referral`, `duplicate`, `refund`, `terms_violation` or `other`.
    #[schema(value_type = DecisionReason, required = true)]
    reason: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// An approval: an optional note. The body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApprovalInput {
    /// Up to 500 characters.
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// The decision `input` records for `caller`, with its reason required or not.
fn decision(caller: &str, input: DecisionInput, reason_required: bool) -> Result<Decision> {
    let reason = match input.reason.as_deref().map(str::trim) {
        None | Some("") if reason_required => {
            return Err(ApiError::unprocessable(sentences::DECISION_REASON_REQUIRED));
        }
        None | Some("") => None,
        Some(raw) => Some(
            serde_json::from_value(serde_json::Value::String(raw.to_owned()))
                .map_err(|_| ApiError::unprocessable(sentences::DECISION_BAD_REASON))?,
        ),
    };
    let note = input
        .note
        .map(|note| note.trim().to_owned())
        .filter(|note| !note.is_empty());
    if note
        .as_ref()
        .is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::unprocessable(sentences::DECISION_NOTE_TOO_LONG));
    }
    Ok(Decision {
        by: Some(caller.to_owned()),
        reason,
        note,
    })
}

/// A decision's request: the admin taking it, the audit log, and the credit the path names.
#[derive(FromRequestParts)]
#[from_request(state(AppState))]
struct CreditAt {
    admin: AdminAccess,
    audit: Audit,
    state: State<AppState>,
    user_hash: Path<String>,
}

impl CreditAt {
    /// The admin's decision: validated (a reason is required to reject or reverse), taken,
    /// and answered with the credit after the move.
    async fn decide(self, action: AdminMove, input: DecisionInput) -> Result<Json<CreditBody>> {
        let reason_required = matches!(action, AdminMove::Reject | AdminMove::Reverse);
        let decision = decision(&self.admin.0.sub, input, reason_required)?;
        let credit = take(&self.state, &self.audit, &self.user_hash, action, decision).await?;
        Ok(Json(credit))
    }
}

/// A credit's fields as the audit log compares them: the decision's who and why are the
/// entry's own.
fn audited_fields(credit: &CreditBody) -> serde_json::Value {
    let mut fields = serde_json::to_value(credit).unwrap_or_default();
    if let Some(fields) = fields.as_object_mut() {
        for own in ["decided_by", "reason", "note", "flag_reasons"] {
            fields.remove(own);
        }
    }
    fields
}

async fn take(
    state: &AppState,
    audit: &Audit,
    user_hash: &str,
    action: AdminMove,
    decision: Decision,
) -> Result<CreditBody> {
    let users = state.stores.indication.as_ref();
    let before = service::credit(users, user_hash).await?.user;
    let why = Why {
        reason: decision.reason.map(|reason| reason.to_string()),
        note: decision.note.clone(),
    };
    let name = match action {
        AdminMove::Approve => "credit.approve",
        AdminMove::Reject => "credit.reject",
        AdminMove::Reverse => "credit.reverse",
    };
    let credit = audit
        .record(
            Subject::new(name, user_hash).because(why),
            changes_of(|user| audited_fields(&CreditBody::from(user))),
            async {
                let user = service::decide(
                    users,
                    state.stores.programs.as_ref(),
                    user_hash,
                    action,
                    decision,
                    state.clock.now(),
                )
                .await?;
                Ok(Done::changed(CreditBody::from(&user), before, user))
            },
        )
        .await?;
    // Approvals and reversals queue a callback.
    state.outbox_signal.wake();
    Ok(credit)
}

/// Approve a credit in review: it is acquired, with the `acquired_credit` entry and callback
/// (role `admin`).
#[utoipa::path(
    post, path = "/admin/credits/{user_hash}/approve", tag = "credits",
    params(("user_hash" = String, Path, description = "The indicated user's hash")),
    request_body(content = ApprovalInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The credit after the move", body = CreditBody),
        (status = 404, description = "`Credit not found`", body = ErrorBody),
        (status = 409, description = "`Credit is <status>`: not in review", body = ErrorBody),
        (status = 422, description = "A bad note", body = ErrorBody),
    ),
)]
async fn approve_credit(
    credit: CreditAt,
    JsonOrForm(input): JsonOrForm<ApprovalInput>,
) -> Result<Json<CreditBody>> {
    let input = DecisionInput {
        reason: None,
        note: input.note,
    };
    credit.decide(AdminMove::Approve, input).await
}

/// Reject a pending, held or reviewed credit: final, worth nothing, its cap place given back
/// (role `admin`).
#[utoipa::path(
    post, path = "/admin/credits/{user_hash}/reject", tag = "credits",
    params(("user_hash" = String, Path, description = "The indicated user's hash")),
    request_body(content = DecisionInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The credit after the move", body = CreditBody),
        (status = 404, description = "`Credit not found`", body = ErrorBody),
        (status = 409, description = "`Credit is <status>`", body = ErrorBody),
        (status = 422, description = "A missing or unknown reason, or a bad note", body = ErrorBody),
    ),
)]
async fn reject_credit(
    credit: CreditAt,
    JsonOrForm(input): JsonOrForm<DecisionInput>,
) -> Result<Json<CreditBody>> {
    credit.decide(AdminMove::Reject, input).await
}

/// Reverse an acquired credit: a negative `credit_reversed` entry and a `credit_reversed`
/// callback with the negative amount, so that billing takes the credit back (role `admin`).
#[utoipa::path(
    post, path = "/admin/credits/{user_hash}/reverse", tag = "credits",
    params(("user_hash" = String, Path, description = "The indicated user's hash")),
    request_body(content = DecisionInput, content_type = "application/json"),
    responses(
        (status = 200, description = "The credit after the move", body = CreditBody),
        (status = 404, description = "`Credit not found`", body = ErrorBody),
        (status = 409, description = "`Credit is <status>`: not acquired", body = ErrorBody),
        (status = 422, description = "A missing or unknown reason, or a bad note", body = ErrorBody),
    ),
)]
async fn reverse_credit(
    credit: CreditAt,
    JsonOrForm(input): JsonOrForm<DecisionInput>,
) -> Result<Json<CreditBody>> {
    credit.decide(AdminMove::Reverse, input).await
}

/// Credits to approve at once.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkApproveInput {
    /// 1 to 100 indicated users' hashes.
    #[schema(min_items = 1, max_items = 100)]
    user_hashes: Option<Vec<String>>,
    /// Up to 500 characters, recorded on each approval.
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// The outcome of one approval of a bulk approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResultBody {
    user_hash: String,
    /// 200, 404 or 409: as the approval alone would have answered.
    status: u16,
    /// With 200: the credit after the move.
    #[serde(skip_serializing_if = "Option::is_none")]
    credit: Option<CreditBody>,
    /// With 404 or 409: the sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkApproveBody {
    results: Vec<BulkResultBody>,
}

/// Approve up to 100 credits in review, each as if alone (role `admin`).
#[utoipa::path(
    post, path = "/admin/credits/approve", tag = "credits",
    request_body(content = BulkApproveInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Each approval's outcome, in the order given", body = BulkApproveBody),
        (status = 422, description = "No hashes, more than 100, or a bad note", body = ErrorBody),
    ),
)]
async fn approve_credits(
    AdminAccess(caller): AdminAccess,
    audit: Audit,
    State(state): State<AppState>,
    JsonOrForm(input): JsonOrForm<BulkApproveInput>,
) -> Result<Json<BulkApproveBody>> {
    let hashes = input.user_hashes.unwrap_or_default();
    if hashes.is_empty() || hashes.len() > MAX_BULK {
        return Err(ApiError::unprocessable(sentences::BULK_APPROVE_HASHES));
    }
    let decision = decision(
        &caller.sub,
        DecisionInput {
            reason: None,
            note: input.note,
        },
        false,
    )?;
    let mut results = Vec::with_capacity(hashes.len());
    for user_hash in hashes {
        let outcome = take(
            &state,
            &audit,
            &user_hash,
            AdminMove::Approve,
            decision.clone(),
        )
        .await;
        results.push(match outcome {
            Ok(credit) => BulkResultBody {
                user_hash,
                status: 200,
                credit: Some(credit),
                error: None,
            },
            Err(err @ (ApiError::NotFound(_) | ApiError::Conflict(_))) => BulkResultBody {
                user_hash,
                status: err.status().as_u16(),
                credit: None,
                error: Some(err.to_string()),
            },
            Err(err) => return Err(err),
        });
    }
    Ok(Json(BulkApproveBody { results }))
}
