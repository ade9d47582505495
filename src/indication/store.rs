//! What the indication routes need from storage. Every method that changes state does it in one
//! atomic step, together with the ledger entries and credit events that record it.

pub mod embedded;
pub mod mongo;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::{
    AdminMove, CreditStatus, CreditStep, CreditTerms, Decision, EmailIndication, LedgerEntry,
    Payment, ProgramFigures, Registration, User, UserHash,
};
use crate::{cursor::Cursor, email::Email, money::Money, programs::ProgramId, storage::StoreError};

/// Users asked for, split by whether this call created them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsersCreated {
    pub created: Vec<UserHash>,
    pub existing: Vec<UserHash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    Registered,
    /// The indicated hash is already a user: nothing was written.
    AlreadyRegistered,
    /// The program disappeared before the user could join it: nothing was written.
    ProgramNotFound,
}

/// Which credits an admin lists: every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreditFilter {
    pub status: Option<CreditStatus>,
    pub program: Option<ProgramId>,
    pub indicator: Option<UserHash>,
    /// Only credits that carry a flag.
    pub flagged: bool,
}

impl CreditFilter {
    pub fn matches(&self, user: &User) -> bool {
        let Some(credit) = &user.credit else {
            return false;
        };
        self.status.is_none_or(|status| credit.status() == status)
            && self
                .program
                .is_none_or(|program| user.program_id == Some(program))
            && self
                .indicator
                .as_ref()
                .is_none_or(|indicator| user.indicator.as_ref() == Some(indicator))
            && (!self.flagged || !credit.flags().is_empty())
    }
}

/// A page of credits (their indicated users), in registration order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreditPage {
    pub users: Vec<User>,
    /// Where the next page starts; `None` at the end of the list.
    pub next: Option<Cursor>,
}

impl CreditPage {
    /// The page of up to `limit` users out of `users`, read one beyond the page to learn
    /// whether another follows.
    pub fn of(mut users: Vec<User>, limit: usize) -> Self {
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(|user| Cursor {
                created_at: user.created_at,
                id: user.hash.to_string(),
            })
        } else {
            None
        };
        Self { users, next }
    }
}

/// What an admin's decision on a credit did.
#[derive(Clone, Debug, PartialEq)]
pub enum Decided {
    /// No indicated user has this hash.
    NotFound,
    /// The move does not apply to the credit's state: the state it is in.
    Refused(CreditStatus),
    /// The credit moved: the user after the move, and the step.
    Moved(Box<(User, CreditStep)>),
}

#[async_trait]
pub trait IndicationStore: Send + Sync {
    /// Creates, with no indicator, the users that do not exist yet. Idempotent.
    async fn create_users(
        &self,
        hashes: Vec<UserHash>,
        program: Option<ProgramId>,
        at: DateTime<Utc>,
    ) -> Result<UsersCreated, StoreError>;

    async fn user(&self, hash: &UserHash) -> Result<Option<User>, StoreError>;

    /// Writes the indicated user, its ledger entries and its credit event, all or nothing.
    /// Of concurrent registrations of one hash, exactly one succeeds.
    async fn register(&self, registration: Registration) -> Result<RegisterOutcome, StoreError>;

    /// Stores the running total and, with `terms`, moves the indicator's credit for this user
    /// as [`CreditTerms::on_payment`] decides from the credit as stored — `capped` instead when
    /// the step would take a place under a full cap — with the step's ledger entry and event, in
    /// one atomic step: of any number of concurrent calls, one crosses, and an indicator's
    /// places never exceed its cap.
    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        terms: Option<CreditTerms>,
    ) -> Result<Payment, StoreError>;

    /// Users whose held credit is due at `now`, earliest release first, at most `limit`.
    async fn due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<User>, StoreError>;

    /// Moves a due held credit as [`CreditTerms::on_release`] decides from the credit and total
    /// as stored, with its ledger entry and event, in one atomic step; `None` when it is no
    /// longer held or not due. Of any number of concurrent releases, one moves it.
    async fn release(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
    ) -> Result<Option<CreditStep>, StoreError>;

    /// Takes the admin's `action` on the user's credit as [`CreditTerms::on_decision`] decides
    /// from the credit as stored, with its ledger entry and event, in one atomic step: of any
    /// number of concurrent moves of one credit, one wins and the others see its state.
    async fn decide(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
        action: AdminMove,
        decision: Decision,
    ) -> Result<Decided, StoreError>;

    /// How many users `indicator` registered in `program` between `from` and `to` (both
    /// included), counting no further than `limit`: one indexed range.
    async fn registrations_between(
        &self,
        program: ProgramId,
        indicator: &UserHash,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError>;

    /// How many of `indicator`'s credits in `program` are reversed.
    async fn reversed_credits(
        &self,
        program: ProgramId,
        indicator: &UserHash,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` credits matching `filter`, in registration order after `after`. A page
    /// may hold fewer than `limit` (even none) while `next` is set: a store reads a bounded
    /// number of index entries per page.
    async fn credits(
        &self,
        filter: &CreditFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<CreditPage, StoreError>;

    /// The ledger entries about one indicated user, oldest first.
    async fn history(&self, hash: &UserHash) -> Result<Vec<LedgerEntry>, StoreError>;

    /// The program's users and credits per state, and the money in each.
    async fn program_figures(&self, program: ProgramId) -> Result<ProgramFigures, StoreError>;

    /// The credits of the users `indicator` indicated, per program and state (`users` is 0):
    /// what a statement sums, without reading each indicated user.
    async fn indicated_figures(
        &self,
        indicator: &UserHash,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError>;

    /// Folds into the figures' running totals the changes written beside the moves that made
    /// them, a batch at a time: how many it folded, 0 when none was waiting. A store that
    /// writes its totals in the same step as each move has nothing to fold.
    /// `now` dates the changes of writes that stopped half-way (see the MongoDB store).
    async fn fold_figures(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let _ = now;
        Ok(0)
    }

    /// Up to `limit` of the users this user indicated, in registration order (time, then
    /// hash), after `after`: one indexed range read, whatever the indicator's count.
    async fn indicated_by(
        &self,
        indicator: &UserHash,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;

    /// Saves indicated e-mails (distinct addresses), each with its ledger entry, in one write;
    /// for each, in order, `false` when any indicator had already indicated it.
    async fn save_indications(
        &self,
        indications: Vec<EmailIndication>,
    ) -> Result<Vec<bool>, StoreError>;

    /// The indicator of each of these e-mails that was indicated.
    async fn indicators_of(&self, emails: &[Email])
    -> Result<HashMap<Email, UserHash>, StoreError>;
}

/// Which ledger entries an export takes: every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerFilter {
    pub program: Option<ProgramId>,
    /// From this time on (included).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (excluded).
    pub until: Option<DateTime<Utc>>,
}

impl LedgerFilter {
    pub fn matches(&self, entry: &LedgerEntry) -> bool {
        self.program
            .is_none_or(|program| entry.program_id == Some(program))
            && self.since.is_none_or(|since| entry.created_at >= since)
            && self.until.is_none_or(|until| entry.created_at < until)
    }
}

/// Records an export page reads at most.
pub const LEDGER_PAGE: usize = 500;

/// A page of the ledger, for an export.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// Where the next page starts (opaque); `None` at the end.
    pub next: Option<String>,
}

/// The ledger, read whole (for audits and the contract tests, which replay it against the
/// figures; no route or worker reads it whole) or a page at a time (for exports).
#[async_trait]
pub trait LedgerScan: Send + Sync {
    async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError>;

    /// The entries matching `filter` among the next records read after `after` (a few hundred
    /// at most, so a page may hold fewer, even none, while `next` is set).
    async fn ledger_page(
        &self,
        filter: &LedgerFilter,
        after: Option<String>,
    ) -> Result<LedgerPage, StoreError>;
}
