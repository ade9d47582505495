//! The indication program: users who indicate new users, the ledger of what each indication is
//! worth, and the credit an indicator unlocks once the indicated user has paid enough.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::{
    callbacks::{CreditEvent, CreditEventType},
    email::Email,
    money::Money,
    programs::{Program, ProgramId},
};

pub const MAX_HASH_CHARS: usize = 128;
/// Lists given in one request (e-mails) are capped at this many items.
pub const MAX_LIST_ITEMS: usize = 100;

/// A user's opaque identifier in the billing system: 1 to 128 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserHash(String);

impl UserHash {
    /// `None` for an empty (after trimming) or over-long hash.
    pub fn parse(raw: &str) -> Option<Self> {
        let hash = raw.trim();
        (!hash.is_empty() && hash.chars().count() <= MAX_HASH_CHARS).then(|| Self(hash.to_owned()))
    }

    /// For hashes read back from a store, which were validated when written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an indicated user stands towards the credit of its indicator.
#[derive(Clone, Debug, PartialEq)]
pub enum IndicatorCredit {
    /// The indicated user has not yet paid the program's `target_value`.
    Pending,
    /// Unlocked once, for this amount; never again, never revoked.
    Acquired { amount: Money, at: DateTime<Utc> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub hash: UserHash,
    pub indicator: Option<UserHash>,
    pub program_id: Option<ProgramId>,
    pub total_amount_paid: Money,
    pub created_at: DateTime<Utc>,
    /// Present for indicated users only.
    pub credit: Option<IndicatorCredit>,
}

impl User {
    /// An existing customer, imported with no indicator.
    pub fn imported(hash: UserHash, program_id: Option<ProgramId>, at: DateTime<Utc>) -> Self {
        Self {
            hash,
            indicator: None,
            program_id,
            total_amount_paid: Money::ZERO,
            created_at: at,
            credit: None,
        }
    }

    pub fn acquired_amount(&self) -> Option<Money> {
        match &self.credit {
            Some(IndicatorCredit::Acquired { amount, .. }) => Some(*amount),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerOperation {
    Indication,
    Signup,
    SignupCredit,
    PotencialCredit,
    AcquiredCredit,
}

/// One line of the ledger. `user_indicated` is a user hash, or the e-mail address of an
/// `indication`.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub operation: LedgerOperation,
    pub user_indicator: Option<String>,
    pub user_indicated: String,
    pub program_id: Option<ProgramId>,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
}

/// Everything a registration writes, in one atomic step: the indicated user, its three ledger
/// entries and the `signup_credit` event for the billing service.
#[derive(Clone, Debug)]
pub struct Registration {
    pub user: User,
    pub ledger: Vec<LedgerEntry>,
    pub event: CreditEvent,
}

impl Registration {
    pub fn new(
        indicated: UserHash,
        indicator: UserHash,
        program: &Program,
        at: DateTime<Utc>,
    ) -> Self {
        let entry = |operation, amount| LedgerEntry {
            operation,
            user_indicator: Some(indicator.to_string()),
            user_indicated: indicated.to_string(),
            program_id: Some(program.id),
            amount,
            created_at: at,
        };
        let ledger = vec![
            entry(LedgerOperation::Signup, Money::ZERO),
            entry(LedgerOperation::SignupCredit, program.credit_value),
            entry(LedgerOperation::PotencialCredit, program.target_value),
        ];
        let event = CreditEvent::new(
            CreditEventType::SignupCredit,
            indicated.clone(),
            program.credit_value,
            program.name.as_str().to_owned(),
            indicator.clone(),
            at,
        );
        let user = User {
            hash: indicated,
            indicator: Some(indicator),
            program_id: Some(program.id),
            total_amount_paid: Money::ZERO,
            created_at: at,
            credit: Some(IndicatorCredit::Pending),
        };
        Self {
            user,
            ledger,
            event,
        }
    }
}

/// What crossing the threshold writes, together with the "credited" mark, in one conditional
/// step: the `acquired_credit` entry and the event crediting the **indicator**.
#[derive(Clone, Debug)]
pub struct Unlock {
    pub amount: Money,
    pub ledger: LedgerEntry,
    pub event: CreditEvent,
}

impl Unlock {
    pub fn new(
        indicated: &User,
        indicator: &UserHash,
        program: &Program,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            amount: program.target_value,
            ledger: LedgerEntry {
                operation: LedgerOperation::AcquiredCredit,
                user_indicator: Some(indicator.to_string()),
                user_indicated: indicated.hash.to_string(),
                program_id: Some(program.id),
                amount: program.target_value,
                created_at: at,
            },
            event: CreditEvent::new(
                CreditEventType::AcquiredCredit,
                indicator.clone(),
                program.target_value,
                program.name.as_str().to_owned(),
                indicator.clone(),
                at,
            ),
        }
    }
}

/// The outcome of recording a payment total.
#[derive(Clone, Debug, PartialEq)]
pub struct Payment {
    /// The user after the write, `None` if it does not exist.
    pub user: Option<User>,
    /// Whether this call is the one that unlocked the indicator's credit.
    pub credited_now: bool,
}

/// An e-mail indication and its `indication` ledger entry, saved together.
#[derive(Clone, Debug)]
pub struct EmailIndication {
    pub email: Email,
    pub indicator: UserHash,
    pub ledger: LedgerEntry,
}

impl EmailIndication {
    pub fn new(
        email: Email,
        indicator: UserHash,
        program_id: Option<ProgramId>,
        at: DateTime<Utc>,
    ) -> Self {
        let ledger = LedgerEntry {
            operation: LedgerOperation::Indication,
            user_indicator: Some(indicator.to_string()),
            user_indicated: email.to_string(),
            program_id,
            amount: Money::ZERO,
            created_at: at,
        };
        Self {
            email,
            indicator,
            ledger,
        }
    }
}

/// A list given as a JSON array of strings, or as one comma-separated string (as the seed's
/// forms send it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comma-separated string or an array of strings")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<StringList, E> {
                Ok(StringList(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A list longer than its field accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Field `{field}` accepts at most {max} items")]
pub struct StringListTooLong {
    pub field: &'static str,
    pub max: usize,
}

impl StringList {
    /// Refuses lists over the cap, naming the field.
    pub fn capped(self, field: &'static str, max: usize) -> Result<Vec<String>, StringListTooLong> {
        if self.0.len() > max {
            return Err(StringListTooLong { field, max });
        }
        Ok(self.0)
    }
}
