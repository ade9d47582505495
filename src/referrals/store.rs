//! What the referral routes need from storage. Uniqueness (e-mail, code in any letter case,
//! user id, one referee per account) is enforced by the store, so concurrent requests cannot
//! break it.

pub mod embedded;
pub mod mongo;

use async_trait::async_trait;

use super::domain::{AccountId, Referee, ReferralCode, Referrer};
use crate::{email::Email, storage::StoreError};

/// Why a referrer was not inserted; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferrerConflict {
    EmailTaken,
    CodeTaken,
    UserTaken,
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

    /// Stores the account's redemption unless it has one: `Err(existing)` then, unchanged.
    async fn insert_referee(&self, referee: &Referee) -> Result<Result<(), Referee>, StoreError>;
}
