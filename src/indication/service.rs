//! Every rule of the indication program: who may register whom and in which program, when an
//! indicator's credit unlocks, what a statement sums, which e-mails are saved. Each operation
//! works over the store traits and returns a domain result or an [`IndicationError`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{
    domain::{
        EmailIndication, IndicatorCredit, MAX_LIST_ITEMS, Registration, StringList,
        StringListTooLong, Unlock, User, UserHash,
    },
    store::{IndicationStore, RegisterOutcome, UsersCreated},
};
use crate::{
    cursor::Cursor,
    email::Email,
    money::Money,
    programs::{Program, ProgramId, ProgramStore},
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
    #[error("the indicated user is already registered")]
    AlreadyRegistered,
    #[error("no such user")]
    UserNotFound,
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

/// Stores a user's running total. When the user was indicated, its indicator's credit is still
/// pending and the total reaches the program's `target_value`, the credit unlocks in the same
/// conditional write. Returns the indicator's credit for this user (0 until unlocked).
pub async fn record_invoice(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &UserHash,
    total: Money,
    at: DateTime<Utc>,
) -> Result<Money> {
    let user = users
        .user(hash)
        .await?
        .ok_or(IndicationError::UserNotFound)?;
    let unlock = unlock_due(programs, &user, total, at).await?;
    let payment = users.record_payment(hash, total, unlock).await?;
    let user = payment.user.ok_or(IndicationError::UserNotFound)?;
    if payment.credited_now {
        tracing::info!(program = ?user.program_id, "indicator credit unlocked");
    }
    Ok(user.acquired_amount().unwrap_or(Money::ZERO))
}

/// The unlock this total earns, if the credit is pending and the threshold is reached.
async fn unlock_due(
    programs: &dyn ProgramStore,
    user: &User,
    total: Money,
    at: DateTime<Utc>,
) -> Result<Option<Unlock>> {
    let (Some(indicator), Some(IndicatorCredit::Pending), Some(program_id)) =
        (&user.indicator, &user.credit, user.program_id)
    else {
        return Ok(None);
    };
    let Some(program) = programs.get(program_id).await? else {
        return Ok(None);
    };
    Ok((total >= program.target_value).then(|| Unlock::new(user, indicator, &program, at)))
}

/// What a user has earned by indicating others.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Sum of `target_value` over the indicated users that have not yet unlocked it.
    pub potencial_credit: Money,
    pub acquired_credit: Money,
    pub indicated_users: usize,
    pub program: Option<Program>,
}

pub async fn statement(
    users: &dyn IndicationStore,
    programs: &dyn ProgramStore,
    hash: &UserHash,
) -> Result<Statement> {
    let user = users
        .user(hash)
        .await?
        .ok_or(IndicationError::UserNotFound)?;
    let indicated = users.indicated_by(hash).await?;
    let programs: HashMap<ProgramId, Program> = programs
        .list()
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let add = |sum: Money, amount: Money| sum.checked_add(amount).ok_or(IndicationError::Overflow);
    let (mut potencial, mut acquired) = (Money::ZERO, Money::ZERO);
    for other in &indicated {
        match &other.credit {
            Some(IndicatorCredit::Acquired { amount, .. }) => acquired = add(acquired, *amount)?,
            Some(IndicatorCredit::Pending) => {
                let target = other
                    .program_id
                    .and_then(|id| programs.get(&id))
                    .map_or(Money::ZERO, |p| p.target_value);
                potencial = add(potencial, target)?;
            }
            None => {}
        }
    }
    Ok(Statement {
        potencial_credit: potencial,
        acquired_credit: acquired,
        indicated_users: indicated.len(),
        program: user.program_id.and_then(|id| programs.get(&id).cloned()),
    })
}

/// One indicated user as the indicator's statement explains it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatedLine {
    pub user: User,
    /// The current `target_value` of the user's program (`None` without a program).
    pub target_value: Option<Money>,
}

impl IndicatedLine {
    /// The credit this user brings its indicator: as acquired, or else the program's target.
    pub fn credit_amount(&self) -> Option<Money> {
        self.user.acquired_amount().or(self.target_value)
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
    let mut indicated = users.indicated_by(hash).await?;
    indicated.sort_by(|a, b| (a.created_at, a.hash.as_str()).cmp(&(b.created_at, b.hash.as_str())));
    let targets: HashMap<ProgramId, Money> = programs
        .list()
        .await?
        .into_iter()
        .map(|p| (p.id, p.target_value))
        .collect();
    let after_cursor = |user: &User| match after {
        Some(cursor) => {
            (user.created_at, user.hash.as_str()) > (cursor.created_at, cursor.id.as_str())
        }
        None => true,
    };
    let mut lines: Vec<IndicatedLine> = indicated
        .into_iter()
        .filter(after_cursor)
        .take(limit.saturating_add(1))
        .map(|user| IndicatedLine {
            target_value: user.program_id.and_then(|id| targets.get(&id).copied()),
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
