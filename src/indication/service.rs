//! Every rule of the indication program: who may register whom and in which program, when an
//! indicator's credit unlocks, what a statement sums, which e-mails are saved. Each operation
//! works over the store traits and returns a domain result or an [`IndicationError`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{
    domain::{
        AdminMove, CreditFlag, CreditStatus, CreditTerms, Decision, EmailIndication,
        IndicatorCredit, LedgerEntry, MAX_LIST_ITEMS, ProgramFigures, Registration, StringList,
        StringListTooLong, User, UserHash, VELOCITY_WINDOW, flags_for,
    },
    store::{CreditFilter, CreditPage, Decided, IndicationStore, RegisterOutcome, UsersCreated},
};
use crate::{
    cursor::Cursor,
    email::Email,
    money::Money,
    programs::{Program, ProgramId, ProgramStore, domain::Review},
    storage::StoreError,
};

/// `POST /users/` accepts up to this many hashes; `import-users` is there for more.
pub const MAX_USERS_PER_REQUEST: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum IndicationError {
    #[error("no user hash given")]
    NoUserHashes,
    #[error("too many user hashes")]
    TooManyUserHashes,
    #[error("a user hash is empty or too long")]
    BadUserHash,
    #[error(transparent)]
    ListTooLong(#[from] StringListTooLong),
    #[error("the indicator and the indicated user are the same")]
    SelfIndication,
    #[error("the indicator of a registration is not a user")]
    IndicatorHashNotFound,
    #[error("the indicator of an e-mail indication is not a user")]
    IndicatorNotFound,
    #[error("the requested program does not exist")]
    ProgramNotFound,
    #[error("no program exists")]
    NoProgram,
    #[error("no program has this id")]
    ProgramIdNotFound,
    #[error("the indicated user is already registered")]
    AlreadyRegistered,
    #[error("no such user")]
    UserNotFound,
    #[error("no credit for this user")]
    CreditNotFound,
    #[error("the move does not apply to a credit that is {0}")]
    CreditIs(CreditStatus),
    #[error("a sum of credits overflows")]
    Overflow,
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = IndicationError> = std::result::Result<T, E>;

/// Creates, in the default program, the users among `hashes` that do not exist yet.
pub async fn create_users(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hashes: Vec<UserHash>,
    at: DateTime<Utc>,
) -> Result<UsersCreated> {
    if hashes.is_empty() {
        return Err(IndicationError::NoUserHashes);
    }
    if hashes.len() > MAX_USERS_PER_REQUEST {
        return Err(IndicationError::TooManyUserHashes);
    }
    let program = programs.oldest().await?.map(|p| p.id);
    Ok(users.create_users(hashes, program, at).await?)
}

/// A new user indicated by an existing one, and the program it joined.
#[derive(Clone, Debug)]
pub struct Registered {
    pub user_hash: UserHash,
    pub user_indicator: UserHash,
    pub program: Program,
    pub created_at: DateTime<Utc>,
}

/// Registers `indicated` as indicated by `indicator`, in the requested or the default program.
/// Self-indication is refused before any look-up; then the indicator, then the program.
pub async fn register(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    indicator: UserHash,
    indicated: UserHash,
    requested_program: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Registered> {
    if indicator == indicated {
        return Err(IndicationError::SelfIndication);
    }
    if users.user(&indicator).await?.is_none() {
        return Err(IndicationError::IndicatorHashNotFound);
    }
    let program = registration_program(programs, requested_program).await?;
    let registration = Registration::new(indicated, indicator, &program, at);
    let registered = Registered {
        user_hash: registration.user.hash.clone(),
        user_indicator: registration.event.user_indicator_hash.clone(),
        program,
        created_at: registration.user.created_at,
    };
    match users.register(registration).await? {
        RegisterOutcome::Registered => Ok(registered),
        RegisterOutcome::AlreadyRegistered => Err(IndicationError::AlreadyRegistered),
        RegisterOutcome::ProgramNotFound => Err(IndicationError::ProgramNotFound),
    }
}

async fn registration_program(
    programs: &dyn ProgramStore,
    requested: Option<&str>,
) -> Result<Program> {
    match requested {
        Some(raw) => {
            let id: ProgramId = raw
                .trim()
                .parse()
                .map_err(|_| IndicationError::ProgramNotFound)?;
            programs
                .get(id)
                .await?
                .ok_or(IndicationError::ProgramNotFound)
        }
        None => programs.oldest().await?.ok_or(IndicationError::NoProgram),
    }
}

/// Where an indicated user's credit stands after an invoice.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceOutcome {
    /// The indicator's acquired credit for this user; 0 until acquired.
    pub acquired_credit: Money,
    pub credit_status: CreditStatus,
    /// While held: when the credit is released.
    pub release_at: Option<DateTime<Utc>>,
}

/// The terms of the user's program for its indicator's credit, at `at`, with the flags a
/// credit acquired now would carry where the program reviews credits and this one may still
/// reach its acquisition.
async fn credit_terms(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    user: &User,
    at: DateTime<Utc>,
) -> Result<Option<CreditTerms>> {
    let (Some(_), Some(program_id)) = (&user.indicator, user.program_id) else {
        return Ok(None);
    };
    let Some(program) = programs.get(program_id).await? else {
        return Ok(None);
    };
    let Some(mut terms) = CreditTerms::new(user, &program, at) else {
        return Ok(None);
    };
    if program.review != Review::None
        && matches!(
            user.credit,
            Some(
                IndicatorCredit::Pending
                    | IndicatorCredit::Held { .. }
                    | IndicatorCredit::Reversed { .. }
            )
        )
    {
        terms.flags = credit_flags(users, &program, user).await?;
    }
    Ok(Some(terms))
}

/// The most registrations a `velocity` flag counts (its reason says "at least" beyond).
const VELOCITY_COUNT_MAX: u64 = 10_000;

/// The flags of `user`'s credit if it were acquired now: two indexed counts. Read before the
/// store's atomic step: a reversal committed between the count and the step is not seen.
async fn credit_flags(
    users: &dyn IndicationStore,
    program: &Program,
    user: &User,
) -> Result<Vec<CreditFlag>> {
    let Some(indicator) = &user.indicator else {
        return Ok(Vec::new());
    };
    let velocity = match program.review_velocity {
        Some(limit) => {
            // The hour up to and including the registration: (registered - 60 min, registered].
            let from = user.created_at - VELOCITY_WINDOW + chrono::Duration::milliseconds(1);
            let count = users
                .registrations_between(
                    program.id,
                    indicator,
                    from,
                    user.created_at,
                    VELOCITY_COUNT_MAX,
                )
                .await?;
            Some((count, limit))
        }
        None => None,
    };
    let reversed = users.reversed_credits(program.id, indicator).await?;
    Ok(flags_for(velocity, reversed))
}

/// Stores a user's running total and moves its indicator's credit as the program's terms say:
/// a pending credit whose total reaches `target_value` is acquired (or held, with a holding
/// period, or capped, beyond the indicator's cap); a held one whose total drops below it goes
/// back to pending. Each move is one conditional write with its ledger entry and event.
pub async fn record_invoice(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &UserHash,
    total: Money,
    at: DateTime<Utc>,
) -> Result<InvoiceOutcome> {
    let user = users
        .user(hash)
        .await?
        .ok_or(IndicationError::UserNotFound)?;
    let terms = credit_terms(users, programs, &user, at).await?;
    let payment = users.record_payment(hash, total, terms).await?;
    let user = payment.user.ok_or(IndicationError::UserNotFound)?;
    if let Some(step) = &payment.step {
        tracing::info!(program = ?user.program_id, credit = ?step.credit.status(), "indicator credit moved");
    }
    Ok(InvoiceOutcome {
        acquired_credit: user.acquired_amount().unwrap_or(Money::ZERO),
        credit_status: user.credit_status(),
        release_at: match &user.credit {
            Some(IndicatorCredit::Held { release_at, .. }) => Some(*release_at),
            _ => None,
        },
    })
}

/// How many due held credits one pass of the release worker moves at most.
pub const RELEASE_BATCH: usize = 100;

/// What one release pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Held credits moved, either way.
    pub moved: usize,
    /// Of those, the ones acquired.
    pub acquired: usize,
}

/// Moves up to [`RELEASE_BATCH`] held credits due at `now`: acquired (with the
/// `acquired_credit` entry and event) when the total is still at or above the credit, else back
/// to pending (`credit_cancelled`). A credit another worker moved first is skipped.
pub async fn release_due(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    now: DateTime<Utc>,
) -> Result<Released> {
    let mut released = Released::default();
    for user in users.due_holds(now, RELEASE_BATCH).await? {
        let Some(terms) = credit_terms(users, programs, &user, now).await? else {
            continue;
        };
        if let Some(step) = users.release(&user.hash, terms).await? {
            released.moved += 1;
            if step.event.is_some() {
                released.acquired += 1;
            }
        }
    }
    Ok(released)
}

/// What a user has earned by indicating others.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Sum of `target_value` over the indicated users whose credit is pending.
    pub potencial_credit: Money,
    /// Sum of the credits held, waiting for their release.
    pub held_credit: Money,
    /// Sum of the credits waiting for an admin's review.
    pub in_review_credit: Money,
    /// Sum of the credits acquired and not reversed.
    pub acquired_credit: Money,
    pub indicated_users: usize,
    pub program: Option<Program>,
}

/// Sums what `hash` earned from the figures kept per program of its indicated users: one read
/// per program, however many users it indicated.
pub async fn statement(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &UserHash,
) -> Result<Statement> {
    let user = users
        .user(hash)
        .await?
        .ok_or(IndicationError::UserNotFound)?;
    let overflow = || IndicationError::Overflow;
    let mut potencial = Money::ZERO;
    let mut sum = ProgramFigures::default();
    for (program, figures) in users.indicated_figures(hash).await? {
        sum.add(&figures).ok_or_else(overflow)?;
        if figures.pending > 0
            && let Some(program) = match program {
                Some(id) => programs.get(id).await?,
                None => None,
            }
        {
            let pending = program
                .target_value
                .checked_times(figures.pending)
                .ok_or_else(overflow)?;
            potencial = potencial.checked_add(pending).ok_or_else(overflow)?;
        }
    }
    let program = match user.program_id {
        Some(id) => programs.get(id).await?,
        None => None,
    };
    Ok(Statement {
        potencial_credit: potencial,
        held_credit: sum.held_credit_total,
        in_review_credit: sum.in_review_credit_total,
        acquired_credit: sum.acquired_credit_total,
        indicated_users: usize::try_from(sum.indicated_users).unwrap_or(usize::MAX),
        program,
    })
}

/// A program's users and credits per state, with the money in each.
pub async fn program_figures(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    id: &str,
) -> Result<ProgramFigures> {
    let id: ProgramId = id.parse().map_err(|_| IndicationError::ProgramIdNotFound)?;
    programs
        .get(id)
        .await?
        .ok_or(IndicationError::ProgramIdNotFound)?;
    Ok(users.program_figures(id).await?)
}

/// One indicated user as the indicator's statement explains it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatedLine {
    pub user: User,
    /// The current `target_value` of the user's program (`None` without a program).
    pub target_value: Option<Money>,
}

impl IndicatedLine {
    /// The credit this user brings its indicator: as held or acquired (0 when capped), or
    /// else, while pending, the program's target.
    pub fn credit_amount(&self) -> Option<Money> {
        match &self.user.credit {
            Some(IndicatorCredit::Pending) | None => self.target_value,
            Some(credit) => credit.amount(),
        }
    }
}

/// A page of an indicator's indicated users, oldest registration first.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatedPage {
    pub lines: Vec<IndicatedLine>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

pub const DEFAULT_INDICATED_PAGE: usize = 100;
pub const MAX_INDICATED_PAGE: usize = 500;

/// The users `hash` indicated, oldest registration first, `limit` of them after `after`.
pub async fn indicated(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &UserHash,
    limit: usize,
    after: Option<&Cursor>,
) -> Result<IndicatedPage> {
    users
        .user(hash)
        .await?
        .ok_or(IndicationError::UserNotFound)?;
    let indicated = users
        .indicated_by(hash, after, limit.saturating_add(1))
        .await?;
    // The targets of the page's programs only: a page costs the same however many programs
    // and indicated users there are.
    let mut targets: HashMap<ProgramId, Option<Money>> = HashMap::new();
    for id in indicated.iter().filter_map(|user| user.program_id) {
        if let std::collections::hash_map::Entry::Vacant(slot) = targets.entry(id) {
            slot.insert(programs.get(id).await?.map(|p| p.target_value));
        }
    }
    let mut lines: Vec<IndicatedLine> = indicated
        .into_iter()
        .map(|user| IndicatedLine {
            target_value: user
                .program_id
                .and_then(|id| targets.get(&id).copied().flatten()),
            user,
        })
        .collect();
    let next = if lines.len() > limit {
        lines.truncate(limit);
        lines.last().map(|line| Cursor {
            created_at: line.user.created_at,
            id: line.user.hash.to_string(),
        })
    } else {
        None
    };
    Ok(IndicatedPage { lines, next })
}

/// The fate of each address of an e-mail indication, in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndicationReport {
    pub saved: Vec<Email>,
    pub already_indicated: Vec<Email>,
    /// As given (trimmed), once each.
    pub invalid: Vec<String>,
}

/// Saves the valid, not yet indicated addresses among `emails` for `indicator`, each with an
/// `indication` ledger entry, in one write. An address given twice counts once.
pub async fn indicate_emails(
    users: &dyn IndicationStore,
    indicator: &str,
    emails: StringList,
    at: DateTime<Utc>,
) -> Result<IndicationReport> {
    let emails = emails.capped("emails", MAX_LIST_ITEMS)?;
    let indicator = UserHash::parse(indicator).ok_or(IndicationError::IndicatorNotFound)?;
    let user = users
        .user(&indicator)
        .await?
        .ok_or(IndicationError::IndicatorNotFound)?;
    let mut report = IndicationReport::default();
    let mut seen = HashSet::new();
    let mut indications = Vec::new();
    for raw in emails {
        match Email::parse(&raw) {
            Some(email) if seen.insert(email.clone()) => indications.push(EmailIndication::new(
                email,
                indicator.clone(),
                user.program_id,
                at,
            )),
            Some(_) => {}
            None => {
                let raw = raw.trim().to_owned();
                if !report.invalid.contains(&raw) {
                    report.invalid.push(raw);
                }
            }
        }
    }
    let emails: Vec<Email> = indications.iter().map(|i| i.email.clone()).collect();
    let saved = users.save_indications(indications).await?;
    for (email, saved) in emails.into_iter().zip(saved) {
        if saved {
            report.saved.push(email);
        } else {
            report.already_indicated.push(email);
        }
    }
    Ok(report)
}

/// For each address as given (normalised: trimmed, lower-cased), the user who indicated it.
pub async fn verify_emails(
    users: &dyn IndicationStore,
    emails: StringList,
) -> Result<Vec<(String, Option<UserHash>)>> {
    let raw = emails.capped("emails", MAX_LIST_ITEMS)?;
    let valid: Vec<Email> = raw.iter().filter_map(|r| Email::parse(r)).collect();
    let indicators = users.indicators_of(&valid).await?;
    Ok(raw
        .iter()
        .map(|r| {
            let indicator = Email::parse(r).and_then(|e| indicators.get(&e).cloned());
            (r.trim().to_lowercase(), indicator)
        })
        .collect())
}

/// One indicated user's credit, as an admin reviews it.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditView {
    pub user: User,
    /// The credit's ledger entries, oldest first (only when asked for).
    pub history: Vec<LedgerEntry>,
}

/// The credit of the indicated user `hash`; with its ledger history.
pub async fn credit(users: &dyn IndicationStore, hash: &str) -> Result<CreditView> {
    let hash = UserHash::parse(hash).ok_or(IndicationError::CreditNotFound)?;
    let user = users
        .user(&hash)
        .await?
        .filter(|user| user.credit.is_some())
        .ok_or(IndicationError::CreditNotFound)?;
    let history = users
        .history(&hash)
        .await?
        .into_iter()
        .filter(|entry| entry.operation != super::domain::LedgerOperation::Indication)
        .collect();
    Ok(CreditView { user, history })
}

pub const DEFAULT_CREDIT_PAGE: usize = 50;
pub const MAX_CREDIT_PAGE: usize = 500;

/// The credits matching `filter`, in registration order, `limit` of them after `after`.
pub async fn credits(
    users: &dyn IndicationStore,
    filter: &CreditFilter,
    limit: usize,
    after: Option<&Cursor>,
) -> Result<CreditPage> {
    Ok(users.credits(filter, after, limit).await?)
}

/// Takes an admin's `action` on the credit of the indicated user `hash`, recording `decision`:
/// the user after the move, or why it did not apply.
pub async fn decide(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &str,
    action: AdminMove,
    decision: Decision,
    at: DateTime<Utc>,
) -> Result<User> {
    let hash = UserHash::parse(hash).ok_or(IndicationError::CreditNotFound)?;
    let user = users
        .user(&hash)
        .await?
        .ok_or(IndicationError::CreditNotFound)?;
    let (Some(_), Some(program_id)) = (&user.indicator, user.program_id) else {
        return Err(IndicationError::CreditNotFound);
    };
    let terms = programs
        .get(program_id)
        .await?
        .and_then(|program| CreditTerms::new(&user, &program, at))
        .ok_or(IndicationError::CreditNotFound)?;
    match users.decide(&hash, terms, action, decision).await? {
        Decided::NotFound => Err(IndicationError::CreditNotFound),
        Decided::Refused(status) => Err(IndicationError::CreditIs(status)),
        Decided::Moved(moved) => {
            let (user, step) = *moved;
            tracing::info!(program = %program_id, credit = %step.credit.status(), ?action, "credit decided");
            Ok(user)
        }
    }
}
