//! What the indication routes need from storage. Every method that changes state does it in one
//! atomic step, together with the ledger entries and credit events that record it.

pub mod embedded;
pub mod mongo;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::domain::{EmailIndication, LedgerEntry, Payment, Registration, Unlock, User, UserHash};
use crate::{email::Email, money::Money, programs::ProgramId, storage::StoreError};

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

    /// Stores the running total. With `unlock`, and only while the indicator's credit for this
    /// user is still pending, marks it acquired and writes the unlock's ledger entry and event in
    /// the same conditional step: of any number of calls, exactly one credits.
    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        unlock: Option<Unlock>,
    ) -> Result<Payment, StoreError>;

    /// The users this user indicated.
    async fn indicated_by(&self, indicator: &UserHash) -> Result<Vec<User>, StoreError>;

    /// Saves indicated e-mails (distinct addresses), each with its ledger entry, in one write;
    /// for each, in order, `false` when any indicator had already indicated it.
    async fn save_indications(
        &self,
        indications: Vec<EmailIndication>,
    ) -> Result<Vec<bool>, StoreError>;

    /// The indicator of each of these e-mails that was indicated.
    async fn indicators_of(&self, emails: &[Email])
    -> Result<HashMap<Email, UserHash>, StoreError>;

    /// The whole ledger, oldest first.
    async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError>;
}
