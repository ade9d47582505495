//! Referral programs: what an indicated user receives at signup (`credit_value`) and the
//! threshold, and credit, of the indicator (`target_value`).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{clock, money::Money};

pub const MAX_NAME_CHARS: usize = 200;
/// The longest holding period or clawback window a program may set.
pub const MAX_DAYS: u16 = 365;

/// A program's period in days, 0 to 365, 0 by default: how long an indicator's credit is held
/// after its indicated user crosses the target (`hold_days`), or how long after its acquisition
/// a refund still takes it back (`clawback_days`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Days(u16);

/// A period outside 0..=365 days.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a period is 0 to {MAX_DAYS} days")]
pub struct InvalidDays;

impl Days {
    pub fn new(days: u64) -> Result<Self, InvalidDays> {
        u16::try_from(days)
            .ok()
            .filter(|days| *days <= MAX_DAYS)
            .map(Self)
            .ok_or(InvalidDays)
    }

    pub fn days(self) -> u16 {
        self.0
    }

    /// The period as a duration, `None` for 0 (no hold, no clawback).
    pub fn duration(self) -> Option<chrono::Duration> {
        (self.0 > 0).then(|| chrono::Duration::days(i64::from(self.0)))
    }
}

/// The most `held` + `acquired` credits one indicator may hold in a program: at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CreditCap(u32);

/// A cap below 1 or beyond what a count can hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a cap is a whole number of at least 1")]
pub struct InvalidCreditCap;

impl CreditCap {
    pub fn new(max: u64) -> Result<Self, InvalidCreditCap> {
        u32::try_from(max)
            .ok()
            .filter(|max| *max >= 1)
            .map(Self)
            .ok_or(InvalidCreditCap)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether an indicator holding `count` credits may take one more.
    pub fn admits(self, count: u64) -> bool {
        count < u64::from(self.0)
    }
}

/// Which credits wait for an admin's decision before they are acquired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// None: credits are acquired as Parts A and E say.
    #[default]
    None,
    /// Every credit that would be acquired goes to `in_review`.
    All,
    /// Only a credit carrying a flag (`velocity`, `previous_reversal`) goes to `in_review`.
    Flagged,
}

/// Text that names no review mode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("review is none, all or flagged")]
pub struct InvalidReview;

serde_plain::derive_fromstr_from_deserialize!(Review, |_e| -> InvalidReview { InvalidReview });

/// The most users an indicator may register in a program within an hour before its credits are
/// flagged `velocity`: at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ReviewVelocity(u32);

/// A velocity below 1 or beyond what a count can hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a review velocity is a whole number of at least 1")]
pub struct InvalidReviewVelocity;

impl ReviewVelocity {
    pub fn new(max: u64) -> Result<Self, InvalidReviewVelocity> {
        u32::try_from(max)
            .ok()
            .filter(|max| *max >= 1)
            .map(Self)
            .ok_or(InvalidReviewVelocity)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A program identifier: 24 hexadecimal characters (a MongoDB ObjectId on both backends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramId(ObjectId);

impl ProgramId {
    pub fn generate() -> Self {
        Self(ObjectId::new())
    }

    pub fn object_id(self) -> ObjectId {
        self.0
    }

    pub fn from_object_id(id: ObjectId) -> Self {
        Self(id)
    }
}

/// Text that cannot be a program id (anything but 24 hex characters).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a program id")]
pub struct InvalidProgramId;

impl FromStr for ProgramId {
    type Err = InvalidProgramId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectId::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidProgramId)
    }
}

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl Serialize for ProgramId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_hex())
    }
}

/// A program name: 1 to 200 characters once surrounding spaces are trimmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProgramName(String);

/// Why a text cannot be a program name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProgramNameError {
    #[error("empty")]
    Empty,
    #[error("longer than {MAX_NAME_CHARS} characters")]
    TooLong,
}

impl ProgramName {
    pub fn parse(raw: &str) -> Result<Self, ProgramNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ProgramNameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ProgramNameError::TooLong);
        }
        Ok(Self(name.to_owned()))
    }

    /// For names read back from a store, which were validated when written.
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A referral program as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Program {
    /// 24 hexadecimal characters.
    #[schema(value_type = String, example = "6740a1f2c3d4e5f601234567")]
    pub id: ProgramId,
    #[schema(value_type = String, example = "Friends 2026")]
    pub name: ProgramName,
    /// What the indicated user receives at signup.
    pub credit_value: Money,
    /// The total the indicated user must pay to unlock the indicator's credit, and that credit.
    pub target_value: Money,
    /// Days an indicator's credit is `held` after the crossing before it is acquired (0 to
    /// 365; 0 acquires at once).
    #[schema(value_type = u16, maximum = 365, example = 7)]
    pub hold_days: Days,
    /// The most `held` + `acquired` credits one indicator may hold in this program; further
    /// crossings are `capped`. `null`: no cap.
    #[schema(value_type = Option<u32>, minimum = 1, example = 3)]
    pub max_credits_per_indicator: Option<CreditCap>,
    /// Days after its acquisition during which an invoice total below an acquired credit
    /// reverses it (0 to 365; 0: an acquired credit is final).
    #[schema(value_type = u16, maximum = 365, example = 14)]
    pub clawback_days: Days,
    /// Which credits wait for an admin's approval before they are acquired.
    pub review: Review,
    /// Flags a credit `velocity` when its indicator registered more than this many users in
    /// the program in the hour up to this user's registration. `null`: no velocity flag.
    #[schema(value_type = Option<u32>, minimum = 1, example = 10)]
    pub review_velocity: Option<ReviewVelocity>,
    #[serde(with = "clock::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "clock::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

impl Program {
    /// A new program, created at `now`.
    pub fn new(
        name: ProgramName,
        credit_value: Money,
        target_value: Money,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: ProgramId::generate(),
            name,
            credit_value,
            target_value,
            hold_days: Days::default(),
            max_credits_per_indicator: None,
            clawback_days: Days::default(),
            review: Review::None,
            review_velocity: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The fields a PUT changes; `None` leaves a field as it is (0 is a value, not "absent").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramPatch {
    pub name: Option<ProgramName>,
    pub credit_value: Option<Money>,
    pub target_value: Option<Money>,
    pub hold_days: Option<Days>,
    /// `Some(None)` removes the cap.
    pub max_credits_per_indicator: Option<Option<CreditCap>>,
    pub clawback_days: Option<Days>,
    pub review: Option<Review>,
    /// `Some(None)` removes the velocity flag.
    pub review_velocity: Option<Option<ReviewVelocity>>,
}

impl ProgramPatch {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    pub fn apply(&self, program: &mut Program, at: DateTime<Utc>) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *field = value.clone();
            }
        }
        set(&mut program.name, &self.name);
        set(&mut program.credit_value, &self.credit_value);
        set(&mut program.target_value, &self.target_value);
        set(&mut program.hold_days, &self.hold_days);
        set(
            &mut program.max_credits_per_indicator,
            &self.max_credits_per_indicator,
        );
        set(&mut program.clawback_days, &self.clawback_days);
        set(&mut program.review, &self.review);
        set(&mut program.review_velocity, &self.review_velocity);
        program.updated_at = at;
    }
}

/// The outcome of deleting a program.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    NotFound,
    HasUsers,
}
