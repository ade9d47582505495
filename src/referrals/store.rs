//! What the referral routes need from storage. Uniqueness (e-mail, code in any letter case,
//! user id, one referee per account) is enforced by the store, so concurrent requests cannot
//! break it.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::domain::{AccountId, CodeRefusal, Referee, ReferralCode, Referrer, RulesChange};
use crate::{email::Email, storage::StoreError};

/// Why a referrer was not inserted; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferrerConflict {
    EmailTaken,
    CodeTaken,
    UserTaken,
}

/// What became of a redemption.
#[derive(Clone, Debug, PartialEq)]
pub enum Redeemed {
    /// Stored, and counted on the referrer.
    Stored,
    /// The account holds a code already (this one or another); nothing changed.
    Held(Referee),
    /// The code's rules refuse a new account; nothing changed.
    Refused(CodeRefusal),
    /// No referrer has the code.
    UnknownCode,
}

#[async_trait]
pub trait ReferralStore: Send + Sync {
    async fn referrer_by_email(&self, email: &Email) -> Result<Option<Referrer>, StoreError>;

    /// By code, in any letter case.
    async fn referrer_by_code(&self, code: &ReferralCode) -> Result<Option<Referrer>, StoreError>;

    async fn referrer_by_user(&self, user_id: &str) -> Result<Option<Referrer>, StoreError>;

    async fn insert_referrer(
        &self,
        referrer: &Referrer,
    ) -> Result<Result<(), ReferrerConflict>, StoreError>;

    /// Gives the referrer of `email` this user id if it has none yet; returns the referrer as
    /// it is afterwards (`None` if there is no such referrer).
    async fn link_user(&self, email: &Email, user_id: &str)
    -> Result<Option<Referrer>, StoreError>;

    async fn referee(&self, account_id: &AccountId) -> Result<Option<Referee>, StoreError>;

    /// Stores the account's redemption of `referee.referral_code` and counts it on the
    /// referrer, unless the account holds a code already or the code's rules refuse it at
    /// `now`. Concurrent redemptions of one code never exceed its `max_redemptions`.
    async fn redeem(&self, referee: &Referee, now: DateTime<Utc>) -> Result<Redeemed, StoreError>;

    /// Changes the rules of the code's referrer; `None` if no referrer has the code.
    async fn change_rules(
        &self,
        code: &ReferralCode,
        change: &RulesChange,
    ) -> Result<Option<Referrer>, StoreError>;

    /// The accounts that redeemed the code, newest first, at most `limit`.
    async fn referees_of(
        &self,
        code: &ReferralCode,
        limit: usize,
    ) -> Result<Vec<Referee>, StoreError>;
}
