//! Every rule about programs: a new program's defaults, partial updates, and that a program
//! with users cannot be deleted. Ids that cannot name a program are simply not found.

use chrono::{DateTime, Utc};

use super::{
    domain::{
        CreditCap, Days, Deletion, InvalidCreditCap, InvalidProgramId, InvalidReviewVelocity,
        Program, ProgramId, ProgramName, ProgramNameError, ProgramPatch, Review, ReviewVelocity,
    },
    store::ProgramStore,
};
use crate::{money::Money, storage::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("no such program")]
    NotFound,
    #[error("users belong to the program")]
    HasUsers,
    #[error("program name: {0}")]
    Name(#[from] ProgramNameError),
    #[error("hold_days is 0 to 365 days")]
    HoldDays,
    #[error("clawback_days is 0 to 365 days")]
    ClawbackDays,
    #[error(transparent)]
    CreditCap(#[from] InvalidCreditCap),
    #[error(transparent)]
    ReviewVelocity(#[from] InvalidReviewVelocity),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<InvalidProgramId> for ProgramError {
    fn from(_: InvalidProgramId) -> Self {
        Self::NotFound
    }
}

type Result<T, E = ProgramError> = std::result::Result<T, E>;

/// What a client asks a program to be; absent money defaults to 0 on creation.
#[derive(Debug, Default)]
pub struct ProgramDraft {
    pub name: Option<String>,
    pub credit_value: Option<Money>,
    pub target_value: Option<Money>,
    /// Days, 0 to 365.
    pub hold_days: Option<u64>,
    /// At least 1; `Some(None)` removes the cap.
    pub max_credits_per_indicator: Option<Option<u64>>,
    /// Days, 0 to 365.
    pub clawback_days: Option<u64>,
    pub review: Option<Review>,
    /// At least 1; `Some(None)` removes the velocity flag.
    pub review_velocity: Option<Option<u64>>,
}

impl ProgramDraft {
    fn into_patch(self) -> Result<ProgramPatch> {
        Ok(ProgramPatch {
            name: self.name.as_deref().map(ProgramName::parse).transpose()?,
            credit_value: self.credit_value,
            target_value: self.target_value,
            hold_days: self
                .hold_days
                .map(Days::new)
                .transpose()
                .map_err(|_| ProgramError::HoldDays)?,
            max_credits_per_indicator: self
                .max_credits_per_indicator
                .map(|cap| cap.map(CreditCap::new).transpose())
                .transpose()?,
            clawback_days: self
                .clawback_days
                .map(Days::new)
                .transpose()
                .map_err(|_| ProgramError::ClawbackDays)?,
            review: self.review,
            review_velocity: self
                .review_velocity
                .map(|velocity| velocity.map(ReviewVelocity::new).transpose())
                .transpose()?,
        })
    }
}

/// A new program from a draft, checked, not yet stored.
pub fn build(draft: ProgramDraft, now: DateTime<Utc>) -> Result<Program> {
    let name = ProgramName::parse(draft.name.as_deref().unwrap_or(""))?;
    let patch = draft.into_patch()?;
    let mut program = Program::new(
        name,
        patch.credit_value.unwrap_or(Money::ZERO),
        patch.target_value.unwrap_or(Money::ZERO),
        now,
    );
    program.hold_days = patch.hold_days.unwrap_or_default();
    program.max_credits_per_indicator = patch.max_credits_per_indicator.flatten();
    program.clawback_days = patch.clawback_days.unwrap_or_default();
    program.review = patch.review.unwrap_or_default();
    program.review_velocity = patch.review_velocity.flatten();
    Ok(program)
}

pub async fn list(store: &dyn ProgramStore) -> Result<Vec<Program>> {
    Ok(store.list().await?)
}

pub async fn get(store: &dyn ProgramStore, id: &str) -> Result<Program> {
    let id: ProgramId = id.parse()?;
    store.get(id).await?.ok_or(ProgramError::NotFound)
}

/// Changes only the fields present in `draft` (0 is a value, not "absent").
pub async fn update(
    store: &dyn ProgramStore,
    id: &str,
    draft: ProgramDraft,
    at: DateTime<Utc>,
) -> Result<Program> {
    let id: ProgramId = id.parse()?;
    let patch = draft.into_patch()?;
    store
        .update(id, &patch, at)
        .await?
        .ok_or(ProgramError::NotFound)
}

pub async fn delete(store: &dyn ProgramStore, id: &str) -> Result<()> {
    let id: ProgramId = id.parse()?;
    match store.delete(id).await? {
        Deletion::Deleted => Ok(()),
        Deletion::NotFound => Err(ProgramError::NotFound),
        Deletion::HasUsers => Err(ProgramError::HasUsers),
    }
}
