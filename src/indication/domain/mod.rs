//! The indication program: users who indicate new users, the ledger of what each indication is
//! worth, and the credit an indicator unlocks once the indicated user has paid enough.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::{
    callbacks::{CreditEvent, CreditEventType},
    email::Email,
    events::{Event, EventType},
    money::{Money, SignedMoney},
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

/// From request input (a query parameter): parsed, so an empty or over-long hash is refused.
impl<'de> Deserialize<'de> for UserHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("must have 1 to 128 characters"))
    }
}

impl fmt::Display for UserHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

    pub fn credit_status(&self) -> CreditStatus {
        self.credit
            .as_ref()
            .map_or(CreditStatus::None, IndicatorCredit::status)
    }
}

mod credit;

pub use credit::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerOperation {
    Indication,
    Signup,
    SignupCredit,
    PotencialCredit,
    AcquiredCredit,
    /// A crossing in a program with a holding period: the credit is held (amount: the credit).
    CreditHeld,
    /// A held credit sent back to pending by a total below it (amount: the credit).
    CreditCancelled,
    /// A crossing beyond the indicator's cap (amount 0).
    CreditCapped,
    /// A credit that would be acquired waits for an admin's decision (amount: the credit).
    CreditInReview,
    /// An admin rejected the credit: final (amount 0).
    CreditRejected,
    /// An acquired credit taken back (amount: the credit, negative).
    CreditReversed,
}

serde_plain::derive_display_from_serialize!(LedgerOperation);

/// One line of the ledger. `user_indicated` is a user hash, or the e-mail address of an
/// `indication`.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub operation: LedgerOperation,
    pub user_indicator: Option<String>,
    pub user_indicated: String,
    pub program_id: Option<ProgramId>,
    /// Negative for `credit_reversed`.
    pub amount: SignedMoney,
    pub created_at: DateTime<Utc>,
    /// Who decided the move it records, and why (admin decisions and reversals).
    pub decision: Option<Decision>,
    /// The id of the billing callback the move queued, for the entries that queue one.
    pub event_id: Option<String>,
}

/// Everything a registration writes, in one atomic step: the indicated user, its three ledger
/// entries and the `signup_credit` event for the billing service.
#[derive(Clone, Debug)]
pub struct Registration {
    pub user: User,
    pub ledger: Vec<LedgerEntry>,
    pub event: CreditEvent,
    /// The feed's `credit.signup` event: the signup credit, to the indicated user.
    pub feed: Event,
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
            amount: SignedMoney::from(amount),
            created_at: at,
            decision: None,
            event_id: None,
        };
        let signup = entry(LedgerOperation::SignupCredit, program.credit_value);
        let feed = credit_event(
            EventType::CreditSignup,
            &signup,
            program.name.as_str(),
            Some(indicated.as_str()),
            &IndicatorCredit::Pending,
        );
        let mut ledger = vec![
            entry(LedgerOperation::Signup, Money::ZERO),
            signup,
            entry(LedgerOperation::PotencialCredit, program.target_value),
        ];
        let event = CreditEvent::new(
            CreditEventType::SignupCredit,
            indicated.clone(),
            program.credit_value.into(),
            program.name.as_str().to_owned(),
            indicator.clone(),
            at,
        );
        ledger[1].event_id = Some(event.id.clone());
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
            feed,
        }
    }
}

/// A program's figures: how many users and credits in each state, and the money in each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramFigures {
    pub users: u64,
    pub indicated_users: u64,
    pub pending: u64,
    pub held: u64,
    pub in_review: u64,
    pub acquired: u64,
    pub capped: u64,
    pub rejected: u64,
    pub reversed: u64,
    pub signup_credit_total: Money,
    pub held_credit_total: Money,
    pub in_review_credit_total: Money,
    pub acquired_credit_total: Money,
    /// The credits taken back: the amounts of the credits now `reversed`.
    pub reversed_credit_total: Money,
}

/// The names of a program's figures, as its answers and stored records name them: the counts,
/// then the money totals, in the order of [`ProgramFigures::parts`].
pub const FIGURE_COUNTS: [&str; 9] = [
    "users",
    "indicated_users",
    "pending",
    "held",
    "in_review",
    "acquired",
    "capped",
    "rejected",
    "reversed",
];
pub const FIGURE_TOTALS: [&str; 5] = [
    "signup_credit_total",
    "held_credit_total",
    "in_review_credit_total",
    "acquired_credit_total",
    "reversed_credit_total",
];

impl ProgramFigures {
    /// The counts and the money totals, in the order of [`FIGURE_COUNTS`] and [`FIGURE_TOTALS`].
    pub fn parts(&self) -> ([u64; 9], [Money; 5]) {
        let mut copy = self.clone();
        let (counts, totals) = copy.parts_mut();
        (counts.map(|count| *count), totals.map(|total| *total))
    }

    /// The figures of [`ProgramFigures::parts`].
    pub fn from_parts(counts: [u64; 9], totals: [Money; 5]) -> Self {
        let mut figures = Self::default();
        let (count_slots, total_slots) = figures.parts_mut();
        for (slot, count) in count_slots.into_iter().zip(counts) {
            *slot = count;
        }
        for (slot, total) in total_slots.into_iter().zip(totals) {
            *slot = total;
        }
        figures
    }

    fn parts_mut(&mut self) -> ([&mut u64; 9], [&mut Money; 5]) {
        (
            [
                &mut self.users,
                &mut self.indicated_users,
                &mut self.pending,
                &mut self.held,
                &mut self.in_review,
                &mut self.acquired,
                &mut self.capped,
                &mut self.rejected,
                &mut self.reversed,
            ],
            [
                &mut self.signup_credit_total,
                &mut self.held_credit_total,
                &mut self.in_review_credit_total,
                &mut self.acquired_credit_total,
                &mut self.reversed_credit_total,
            ],
        )
    }

    /// What one user adds to the figures of its program (and of its indicator in it): itself,
    /// what it received at signup, and its credit in its state.
    pub fn of_user(user: &User, signup: Money) -> Self {
        let mut figures = Self {
            users: 1,
            signup_credit_total: signup,
            ..Self::default()
        };
        if let Some(credit) = &user.credit {
            figures.indicated_users = 1;
            let (count, total) = figures.of_status(credit.status());
            if let Some(count) = count {
                *count = 1;
            }
            if let (Some(total), Some(amount)) = (total, credit.amount()) {
                *total = amount;
            }
        }
        figures
    }

    /// Adds `other`'s counts and money; `None` on overflow.
    pub fn add(&mut self, other: &ProgramFigures) -> Option<()> {
        let (mut counts, mut totals) = self.parts();
        let (more_counts, more_totals) = other.parts();
        for (count, more) in counts.iter_mut().zip(more_counts) {
            *count = count.checked_add(more)?;
        }
        for (total, more) in totals.iter_mut().zip(more_totals) {
            *total = total.checked_add(more)?;
        }
        *self = Self::from_parts(counts, totals);
        Some(())
    }

    /// The count of credits in `status`, and the money in them where the figures keep it.
    pub fn of_status(&mut self, status: CreditStatus) -> (Option<&mut u64>, Option<&mut Money>) {
        match status {
            CreditStatus::None => (None, None),
            CreditStatus::Pending => (Some(&mut self.pending), None),
            CreditStatus::Held => (Some(&mut self.held), Some(&mut self.held_credit_total)),
            CreditStatus::InReview => (
                Some(&mut self.in_review),
                Some(&mut self.in_review_credit_total),
            ),
            CreditStatus::Acquired => (
                Some(&mut self.acquired),
                Some(&mut self.acquired_credit_total),
            ),
            CreditStatus::Capped => (Some(&mut self.capped), None),
            CreditStatus::Rejected => (Some(&mut self.rejected), None),
            CreditStatus::Reversed => (
                Some(&mut self.reversed),
                Some(&mut self.reversed_credit_total),
            ),
        }
    }
}

/// The outcome of recording a payment total.
#[derive(Clone, Debug, PartialEq)]
pub struct Payment {
    /// The user after the write, `None` if it does not exist.
    pub user: Option<User>,
    /// The step this call took the credit through, if any.
    pub step: Option<CreditStep>,
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
            amount: SignedMoney::default(),
            created_at: at,
            decision: None,
            event_id: None,
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
