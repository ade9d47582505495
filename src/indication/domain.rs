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
    programs::{Program, ProgramId, domain::CreditCap},
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

/// Where an indicated user stands towards the credit of its indicator.
#[derive(Clone, Debug, PartialEq)]
pub enum IndicatorCredit {
    /// The indicated user has not yet paid the program's `target_value` (or a held credit was
    /// sent back when its total dropped).
    Pending,
    /// Crossed in a program with a holding period: acquired at `release_at` if the total is
    /// still at or above `amount` then.
    Held {
        amount: Money,
        held_at: DateTime<Utc>,
        release_at: DateTime<Utc>,
    },
    /// Unlocked once, for this amount; never again, never revoked.
    Acquired { amount: Money, at: DateTime<Utc> },
    /// Crossed while the indicator held its program's cap of credits: final, worth nothing.
    Capped { at: DateTime<Utc> },
}

/// The name of a credit state, as the API and the stores spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditStatus {
    /// A user without an indicator: there is no credit.
    None,
    Pending,
    Held,
    Acquired,
    Capped,
}

impl IndicatorCredit {
    pub fn status(&self) -> CreditStatus {
        match self {
            Self::Pending => CreditStatus::Pending,
            Self::Held { .. } => CreditStatus::Held,
            Self::Acquired { .. } => CreditStatus::Acquired,
            Self::Capped { .. } => CreditStatus::Capped,
        }
    }

    /// What the credit is worth in its state: the held or acquired amount, 0 when capped,
    /// nothing yet while pending.
    pub fn amount(&self) -> Option<Money> {
        match self {
            Self::Pending => None,
            Self::Held { amount, .. } | Self::Acquired { amount, .. } => Some(*amount),
            Self::Capped { .. } => Some(Money::ZERO),
        }
    }

    /// Whether the credit counts toward the indicator's cap (`held` or `acquired`).
    pub fn counts_toward_cap(&self) -> bool {
        matches!(self, Self::Held { .. } | Self::Acquired { .. })
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

/// A program's terms for one indicated user's credit, at one moment: what an invoice or a
/// release is judged by. The decision is taken from the credit as stored, inside the store's
/// atomic step, so that concurrent calls decide on the same state.
#[derive(Clone, Debug)]
pub struct CreditTerms {
    pub indicated: UserHash,
    pub indicator: UserHash,
    pub program_id: ProgramId,
    pub program_name: String,
    pub target: Money,
    pub hold: Option<chrono::Duration>,
    pub cap: Option<CreditCap>,
    pub at: DateTime<Utc>,
}

/// One move of a credit: the state it reaches, the ledger entry that records it and, when the
/// indicator is paid, the event for the billing service.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditStep {
    pub credit: IndicatorCredit,
    pub ledger: LedgerEntry,
    pub event: Option<CreditEvent>,
}

impl CreditStep {
    /// +1 for a step that takes a place under the cap, -1 for one that frees it, else 0.
    pub fn cap_delta(&self, from: &IndicatorCredit) -> i64 {
        i64::from(self.credit.counts_toward_cap()) - i64::from(from.counts_toward_cap())
    }
}

impl CreditTerms {
    /// The terms of `program` for the credit `user` brings its indicator; `None` for a user
    /// without an indicator.
    pub fn new(user: &User, program: &Program, at: DateTime<Utc>) -> Option<Self> {
        Some(Self {
            indicated: user.hash.clone(),
            indicator: user.indicator.clone()?,
            program_id: program.id,
            program_name: program.name.as_str().to_owned(),
            target: program.target_value,
            hold: program.hold_days.duration(),
            cap: program.max_credits_per_indicator,
            at,
        })
    }

    fn entry(&self, operation: LedgerOperation, amount: Money) -> LedgerEntry {
        LedgerEntry {
            operation,
            user_indicator: Some(self.indicator.to_string()),
            user_indicated: self.indicated.to_string(),
            program_id: Some(self.program_id),
            amount,
            created_at: self.at,
        }
    }

    fn acquire(&self, amount: Money) -> CreditStep {
        CreditStep {
            credit: IndicatorCredit::Acquired {
                amount,
                at: self.at,
            },
            ledger: self.entry(LedgerOperation::AcquiredCredit, amount),
            event: Some(CreditEvent::new(
                CreditEventType::AcquiredCredit,
                self.indicator.clone(),
                amount,
                self.program_name.clone(),
                self.indicator.clone(),
                self.at,
            )),
        }
    }

    fn cancel(&self, amount: Money) -> CreditStep {
        CreditStep {
            credit: IndicatorCredit::Pending,
            ledger: self.entry(LedgerOperation::CreditCancelled, amount),
            event: None,
        }
    }

    /// The step a running total of `total` takes the credit through, if any: a pending credit
    /// whose total reaches the target is acquired, or held with a holding period; a held credit
    /// whose total drops below its amount goes back to pending. Every other state stays.
    pub fn on_payment(&self, credit: &IndicatorCredit, total: Money) -> Option<CreditStep> {
        match credit {
            IndicatorCredit::Pending if total >= self.target => Some(match self.hold {
                None => self.acquire(self.target),
                Some(hold) => CreditStep {
                    credit: IndicatorCredit::Held {
                        amount: self.target,
                        held_at: self.at,
                        release_at: self.at + hold,
                    },
                    ledger: self.entry(LedgerOperation::CreditHeld, self.target),
                    event: None,
                },
            }),
            IndicatorCredit::Held { amount, .. } if total < *amount => Some(self.cancel(*amount)),
            _ => None,
        }
    }

    /// The step of a held credit once its `release_at` has come: acquired when the total is
    /// still at or above its amount, else back to pending. `None` when not held or not due.
    pub fn on_release(&self, credit: &IndicatorCredit, total: Money) -> Option<CreditStep> {
        match credit {
            IndicatorCredit::Held {
                amount, release_at, ..
            } if *release_at <= self.at => Some(if total >= *amount {
                self.acquire(*amount)
            } else {
                self.cancel(*amount)
            }),
            _ => None,
        }
    }

    /// What a step that would take a place under the cap becomes when the indicator's credits
    /// already fill it: `capped`, final, with a `credit_capped` entry of amount 0 and no event.
    pub fn capped(&self) -> CreditStep {
        CreditStep {
            credit: IndicatorCredit::Capped { at: self.at },
            ledger: self.entry(LedgerOperation::CreditCapped, Money::ZERO),
            event: None,
        }
    }

    /// The key of the indicator's count of places under the cap in this program.
    pub fn cap_key(&self) -> String {
        format!("{}:{}", self.program_id, self.indicator)
    }
}

/// A program's figures: how many users and credits in each state, and the money in each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgramFigures {
    pub users: u64,
    pub indicated_users: u64,
    pub pending: u64,
    pub held: u64,
    pub acquired: u64,
    pub capped: u64,
    pub signup_credit_total: Money,
    pub held_credit_total: Money,
    pub acquired_credit_total: Money,
}

impl ProgramFigures {
    /// Adds `other`'s counts and money; `None` on overflow.
    pub fn add(&mut self, other: &ProgramFigures) -> Option<()> {
        self.users = self.users.checked_add(other.users)?;
        self.indicated_users = self.indicated_users.checked_add(other.indicated_users)?;
        self.pending = self.pending.checked_add(other.pending)?;
        self.held = self.held.checked_add(other.held)?;
        self.acquired = self.acquired.checked_add(other.acquired)?;
        self.capped = self.capped.checked_add(other.capped)?;
        self.signup_credit_total = self
            .signup_credit_total
            .checked_add(other.signup_credit_total)?;
        self.held_credit_total = self
            .held_credit_total
            .checked_add(other.held_credit_total)?;
        self.acquired_credit_total = self
            .acquired_credit_total
            .checked_add(other.acquired_credit_total)?;
        Some(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::domain::{HoldDays, ProgramName};

    fn money(text: &str) -> Money {
        text.parse().expect("money")
    }

    fn terms(hold_days: u64, at: DateTime<Utc>) -> CreditTerms {
        let mut program = Program::new(
            ProgramName::parse("P").expect("name"),
            money("5"),
            money("100"),
            at,
        );
        program.hold_days = HoldDays::new(hold_days).expect("days");
        let mut user = User::imported(UserHash::parse("bo").expect("hash"), None, at);
        user.indicator = UserHash::parse("ana");
        CreditTerms::new(&user, &program, at).expect("terms")
    }

    #[test]
    fn a_crossing_acquires_at_once_or_is_held_for_the_period() {
        let at = Utc::now();
        let step = terms(0, at).on_payment(&IndicatorCredit::Pending, money("100"));
        assert!(matches!(
            step.map(|s| (s.credit, s.ledger.operation, s.event.is_some())),
            Some((
                IndicatorCredit::Acquired { .. },
                LedgerOperation::AcquiredCredit,
                true
            ))
        ));
        let held = terms(7, at)
            .on_payment(&IndicatorCredit::Pending, money("100"))
            .expect("a step");
        assert_eq!(held.ledger.operation, LedgerOperation::CreditHeld);
        assert!(held.event.is_none());
        assert_eq!(
            held.credit,
            IndicatorCredit::Held {
                amount: money("100"),
                held_at: at,
                release_at: at + chrono::Duration::days(7),
            }
        );
        assert!(
            terms(7, at)
                .on_payment(&IndicatorCredit::Pending, money("99.99"))
                .is_none()
        );
    }

    #[test]
    fn a_held_credit_is_cancelled_below_its_amount_and_released_when_due() {
        let at = Utc::now();
        let held = IndicatorCredit::Held {
            amount: money("100"),
            held_at: at,
            release_at: at + chrono::Duration::days(7),
        };
        let cancel = terms(7, at).on_payment(&held, money("50")).expect("a step");
        assert_eq!(cancel.credit, IndicatorCredit::Pending);
        assert_eq!(cancel.ledger.operation, LedgerOperation::CreditCancelled);
        assert_eq!(cancel.cap_delta(&held), -1);
        assert!(terms(7, at).on_payment(&held, money("100")).is_none());
        // Not due yet; then due, with the total still there or not.
        assert!(terms(7, at).on_release(&held, money("100")).is_none());
        let later = at + chrono::Duration::days(7);
        let release = terms(7, later)
            .on_release(&held, money("100"))
            .expect("due");
        assert!(matches!(release.credit, IndicatorCredit::Acquired { .. }));
        assert_eq!(release.cap_delta(&held), 0);
        let below = terms(7, later).on_release(&held, money("99")).expect("due");
        assert_eq!(below.credit, IndicatorCredit::Pending);
        assert!(below.event.is_none());
    }

    #[test]
    fn acquired_and_capped_credits_never_move() {
        let at = Utc::now();
        for credit in [
            IndicatorCredit::Acquired {
                amount: money("100"),
                at,
            },
            IndicatorCredit::Capped { at },
        ] {
            for total in ["0", "100", "1000"] {
                assert!(terms(7, at).on_payment(&credit, money(total)).is_none());
                assert!(terms(7, at).on_release(&credit, money(total)).is_none());
            }
        }
    }
}
