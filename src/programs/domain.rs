//! Referral programs: what an indicated user receives at signup (`credit_value`) and the
//! threshold, and credit, of the indicator (`target_value`).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use mongodb::bson::oid::ObjectId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{clock, money::Money};

pub const MAX_NAME_CHARS: usize = 200;

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
    #[serde(with = "clock::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "clock::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

impl Program {
    pub fn new(name: ProgramName, credit_value: Money, target_value: Money) -> Self {
        let now = clock::now();
        Self {
            id: ProgramId::generate(),
            name,
            credit_value,
            target_value,
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
}

impl ProgramPatch {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    pub fn apply(&self, program: &mut Program, at: DateTime<Utc>) {
        if let Some(name) = &self.name {
            program.name = name.clone();
        }
        if let Some(value) = self.credit_value {
            program.credit_value = value;
        }
        if let Some(value) = self.target_value {
            program.target_value = value;
        }
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
