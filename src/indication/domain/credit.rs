//! An indicator's credit for one indicated user: its states, the flags that send it to review,
//! the decisions admins take on it, and every move between states as a pure function of the
//! state as stored. Each store takes a move inside its atomic step, so concurrent calls decide
//! on the same state and only one of them moves it.

use super::*;
use crate::{
    events::{Event, EventType},
    programs::domain::{CreditCap, Review},
};

/// Where an indicated user stands towards the credit of its indicator.
#[derive(Clone, Debug, PartialEq)]
pub enum IndicatorCredit {
    /// The indicated user has not yet paid the program's `target_value` (or a held or reviewed
    /// credit was sent back when its total dropped).
    Pending,
    /// Crossed in a program with a holding period: acquired (or reviewed) at `release_at` if
    /// the total is still at or above `amount` then.
    Held {
        amount: Money,
        held_at: DateTime<Utc>,
        release_at: DateTime<Utc>,
    },
    /// Would have been acquired, and waits for an admin's approval or rejection.
    InReview {
        amount: Money,
        crossed_at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
    },
    /// Unlocked for this amount; taken back only by a reversal.
    Acquired {
        amount: Money,
        at: DateTime<Utc>,
        crossed_at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
        /// The admin's approval, for a credit that was reviewed.
        approval: Option<Decision>,
    },
    /// Crossed while the indicator held its program's cap of credits: final, worth nothing.
    Capped { at: DateTime<Utc> },
    /// Rejected by an admin: final, worth nothing.
    Rejected {
        at: DateTime<Utc>,
        crossed_at: Option<DateTime<Utc>>,
        flags: Vec<CreditFlag>,
        decision: Decision,
    },
    /// Acquired, then taken back (a refund within the clawback window, or an admin). A later
    /// crossing starts again.
    Reversed {
        amount: Money,
        crossed_at: DateTime<Utc>,
        acquired_at: DateTime<Utc>,
        at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
        decision: Decision,
    },
}

/// The name of a credit state, as the API and the stores spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditStatus {
    /// A user without an indicator: there is no credit.
    None,
    Pending,
    Held,
    InReview,
    Acquired,
    Capped,
    Rejected,
    Reversed,
}

impl CreditStatus {
    /// Every state a credit can be in (not `none`), in the order the figures list them.
    pub const ALL: [CreditStatus; 7] = [
        Self::Pending,
        Self::Held,
        Self::InReview,
        Self::Acquired,
        Self::Capped,
        Self::Rejected,
        Self::Reversed,
    ];

    /// The stored (serde) name: `pending`, `in_review`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Held => "held",
            Self::InReview => "in_review",
            Self::Acquired => "acquired",
            Self::Capped => "capped",
            Self::Rejected => "rejected",
            Self::Reversed => "reversed",
        }
    }
}

impl fmt::Display for CreditStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a credit goes to review in a program that reviews `flagged` credits. Each flag keeps the
/// figures it was raised on, so that the queue can say why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum CreditFlag {
    /// The indicator registered `registrations` users in the program in the 60 minutes up to
    /// (and including) this user's registration: more than the program's `review_velocity`.
    Velocity { registrations: u64, limit: u32 },
    /// The indicator already had `reversed` reversed credits in the program.
    PreviousReversal { reversed: u64 },
}

impl CreditFlag {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Velocity { .. } => "velocity",
            Self::PreviousReversal { .. } => "previous_reversal",
        }
    }

    /// The flag's reason, as the review queue shows it.
    pub fn reason(&self) -> String {
        match self {
            Self::Velocity {
                registrations,
                limit,
            } => format!(
                "The indicator registered {registrations} users in this program in the hour up \
                 to this user's registration; the program flags more than {limit}."
            ),
            Self::PreviousReversal { reversed } => format!(
                "The indicator already has {reversed} reversed credit{} in this program.",
                if *reversed == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Why an admin rejected or reversed a credit (a reversal by a refund is `refund`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    Fraud,
    SelfReferral,
    Duplicate,
    Refund,
    TermsViolation,
    Other,
}

serde_plain::derive_display_from_serialize!(DecisionReason);

/// Who moved a credit and why: on the credit and on the ledger entry of the move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The admin token's `sub` (or API key's name); `None` for a reversal an invoice caused.
    pub by: Option<String>,
    pub reason: Option<DecisionReason>,
    pub note: Option<String>,
}

impl Decision {
    /// The decision behind a reversal by an invoice total below the credit: a refund.
    pub fn refund() -> Self {
        Self {
            by: None,
            reason: Some(DecisionReason::Refund),
            note: None,
        }
    }
}

/// A move an admin asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminMove {
    /// `in_review` → `acquired`.
    Approve,
    /// `pending`, `held` or `in_review` → `rejected`.
    Reject,
    /// `acquired` → `reversed`.
    Reverse,
}

impl IndicatorCredit {
    pub fn status(&self) -> CreditStatus {
        match self {
            Self::Pending => CreditStatus::Pending,
            Self::Held { .. } => CreditStatus::Held,
            Self::InReview { .. } => CreditStatus::InReview,
            Self::Acquired { .. } => CreditStatus::Acquired,
            Self::Capped { .. } => CreditStatus::Capped,
            Self::Rejected { .. } => CreditStatus::Rejected,
            Self::Reversed { .. } => CreditStatus::Reversed,
        }
    }

    /// What the credit is worth in its state: the held, reviewed, acquired or reversed amount,
    /// 0 when capped or rejected, nothing yet while pending.
    pub fn amount(&self) -> Option<Money> {
        match self {
            Self::Pending => None,
            Self::Held { amount, .. }
            | Self::InReview { amount, .. }
            | Self::Acquired { amount, .. }
            | Self::Reversed { amount, .. } => Some(*amount),
            Self::Capped { .. } | Self::Rejected { .. } => Some(Money::ZERO),
        }
    }

    /// Whether the credit holds a place under the indicator's cap (`held`, `in_review` or
    /// `acquired`).
    pub fn counts_toward_cap(&self) -> bool {
        matches!(
            self,
            Self::Held { .. } | Self::InReview { .. } | Self::Acquired { .. }
        )
    }

    pub fn flags(&self) -> &[CreditFlag] {
        match self {
            Self::InReview { flags, .. }
            | Self::Acquired { flags, .. }
            | Self::Rejected { flags, .. }
            | Self::Reversed { flags, .. } => flags,
            _ => &[],
        }
    }

    /// The decision that left the credit in its state, if a decision did.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Self::Acquired { approval, .. } => approval.as_ref(),
            Self::Rejected { decision, .. } | Self::Reversed { decision, .. } => Some(decision),
            _ => None,
        }
    }

    /// When the indicated user's total crossed the target, for a credit that crossed.
    pub fn crossed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Pending => None,
            Self::Held { held_at, .. } => Some(*held_at),
            Self::InReview { crossed_at, .. }
            | Self::Acquired { crossed_at, .. }
            | Self::Reversed { crossed_at, .. } => Some(*crossed_at),
            Self::Capped { at } => Some(*at),
            Self::Rejected { crossed_at, .. } => *crossed_at,
        }
    }

    pub fn release_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Held { release_at, .. } => Some(*release_at),
            _ => None,
        }
    }

    pub fn acquired_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Acquired { at, .. } => Some(*at),
            Self::Reversed { acquired_at, .. } => Some(*acquired_at),
            _ => None,
        }
    }

    pub fn reversed_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Reversed { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// When the credit reached its state, for a state a move dates (`rejected`).
    pub fn rejected_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Rejected { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// A program's terms for one indicated user's credit, at one moment: what an invoice, a
/// release or an admin's decision is judged by.
#[derive(Clone, Debug)]
pub struct CreditTerms {
    pub indicated: UserHash,
    pub indicator: UserHash,
    pub program_id: ProgramId,
    pub program_name: String,
    pub target: Money,
    pub hold: Option<chrono::Duration>,
    pub cap: Option<CreditCap>,
    pub clawback: Option<chrono::Duration>,
    pub review: Review,
    /// The flags a credit acquired now would carry (found by the service before the step).
    pub flags: Vec<CreditFlag>,
    pub at: DateTime<Utc>,
}

/// One move of a credit: the state it reaches, the ledger entry that records it and, when the
/// indicator is paid or a payment is taken back, the event for the billing service.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditStep {
    pub credit: IndicatorCredit,
    pub ledger: LedgerEntry,
    pub event: Option<CreditEvent>,
}

impl CreditStep {
    /// The feed's event for this step, in a program named `program_name`.
    pub fn feed(&self, program_name: &str) -> Event {
        let event_type = match self.ledger.operation {
            LedgerOperation::CreditHeld => EventType::CreditHeld,
            LedgerOperation::CreditInReview => EventType::CreditInReview,
            LedgerOperation::CreditCancelled => EventType::CreditCancelled,
            LedgerOperation::CreditCapped => EventType::CreditCapped,
            LedgerOperation::CreditRejected => EventType::CreditRejected,
            LedgerOperation::CreditReversed => EventType::CreditReversed,
            _ => EventType::CreditAcquired,
        };
        credit_event(
            event_type,
            &self.ledger,
            program_name,
            self.ledger.user_indicator.as_deref(),
            &self.credit,
        )
    }

    /// +1 for a step that takes a place under the cap, -1 for one that frees it, else 0.
    pub fn cap_delta(&self, from: &IndicatorCredit) -> i64 {
        i64::from(self.credit.counts_toward_cap()) - i64::from(from.counts_toward_cap())
    }
}

impl CreditTerms {
    /// The terms of `program` for the credit `user` brings its indicator, with no flags;
    /// `None` for a user without an indicator.
    pub fn new(user: &User, program: &Program, at: DateTime<Utc>) -> Option<Self> {
        Some(Self {
            indicated: user.hash.clone(),
            indicator: user.indicator.clone()?,
            program_id: program.id,
            program_name: program.name.as_str().to_owned(),
            target: program.target_value,
            hold: program.hold_days.duration(),
            cap: program.max_credits_per_indicator,
            clawback: program.clawback_days.duration(),
            review: program.review,
            flags: Vec::new(),
            at,
        })
    }

    fn entry(
        &self,
        operation: LedgerOperation,
        amount: SignedMoney,
        decision: Option<&Decision>,
    ) -> LedgerEntry {
        LedgerEntry {
            operation,
            user_indicator: Some(self.indicator.to_string()),
            user_indicated: self.indicated.to_string(),
            program_id: Some(self.program_id),
            amount,
            created_at: self.at,
            decision: decision.cloned(),
            event_id: None,
        }
    }

    /// A step that queues a billing callback: its ledger entry names the event.
    fn paid(
        &self,
        credit: IndicatorCredit,
        mut ledger: LedgerEntry,
        event: CreditEvent,
    ) -> CreditStep {
        ledger.event_id = Some(event.id.clone());
        CreditStep {
            credit,
            ledger,
            event: Some(event),
        }
    }

    fn event(&self, event_type: CreditEventType, amount: SignedMoney) -> CreditEvent {
        CreditEvent::new(
            event_type,
            self.indicator.clone(),
            amount,
            self.program_name.clone(),
            self.indicator.clone(),
            self.at,
        )
    }

    /// Whether a credit acquired now waits for an admin instead.
    fn reviewed(&self) -> bool {
        match self.review {
            Review::None => false,
            Review::All => true,
            Review::Flagged => !self.flags.is_empty(),
        }
    }

    fn acquire(
        &self,
        amount: Money,
        crossed_at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
        approval: Option<Decision>,
    ) -> CreditStep {
        self.paid(
            IndicatorCredit::Acquired {
                amount,
                at: self.at,
                crossed_at,
                flags,
                approval: approval.clone(),
            },
            self.entry(
                LedgerOperation::AcquiredCredit,
                amount.into(),
                approval.as_ref(),
            ),
            self.event(CreditEventType::AcquiredCredit, amount.into()),
        )
    }

    /// Acquired, or in review where the program's review applies to this credit.
    fn acquire_or_review(&self, amount: Money, crossed_at: DateTime<Utc>) -> CreditStep {
        if !self.reviewed() {
            return self.acquire(amount, crossed_at, self.flags.clone(), None);
        }
        CreditStep {
            credit: IndicatorCredit::InReview {
                amount,
                crossed_at,
                flags: self.flags.clone(),
            },
            ledger: self.entry(LedgerOperation::CreditInReview, amount.into(), None),
            event: None,
        }
    }

    /// A crossing of the target: held with a holding period, else acquired or reviewed.
    fn cross(&self) -> CreditStep {
        match self.hold {
            None => self.acquire_or_review(self.target, self.at),
            Some(hold) => CreditStep {
                credit: IndicatorCredit::Held {
                    amount: self.target,
                    held_at: self.at,
                    release_at: self.at + hold,
                },
                ledger: self.entry(LedgerOperation::CreditHeld, self.target.into(), None),
                event: None,
            },
        }
    }

    fn cancel(&self, amount: Money) -> CreditStep {
        CreditStep {
            credit: IndicatorCredit::Pending,
            ledger: self.entry(LedgerOperation::CreditCancelled, amount.into(), None),
            event: None,
        }
    }

    /// An acquired credit taken back: a negative entry and a negative event for billing.
    fn reverse(&self, acquired: &IndicatorCredit, decision: Decision) -> Option<CreditStep> {
        let IndicatorCredit::Acquired {
            amount,
            at,
            crossed_at,
            flags,
            ..
        } = acquired
        else {
            return None;
        };
        Some(self.paid(
            IndicatorCredit::Reversed {
                amount: *amount,
                crossed_at: *crossed_at,
                acquired_at: *at,
                at: self.at,
                flags: flags.clone(),
                decision: decision.clone(),
            },
            self.entry(
                LedgerOperation::CreditReversed,
                amount.negated(),
                Some(&decision),
            ),
            self.event(CreditEventType::CreditReversed, amount.negated()),
        ))
    }

    /// Whether a credit acquired at `acquired_at` is still inside the clawback window.
    fn within_clawback(&self, acquired_at: DateTime<Utc>) -> bool {
        self.clawback
            .is_some_and(|window| self.at <= acquired_at + window)
    }

    /// The step a running total of `total` (after `previous`) takes the credit through, if
    /// any: a pending credit whose total reaches the target crosses (held, reviewed or
    /// acquired, as the program says), and so does a reversed one whose total crosses it
    /// again; a held or reviewed credit whose total drops below its amount goes back to
    /// pending; an acquired credit whose total drops below it within the clawback window is
    /// reversed. Every other state stays.
    pub fn on_payment(
        &self,
        credit: &IndicatorCredit,
        previous: Money,
        total: Money,
    ) -> Option<CreditStep> {
        match credit {
            IndicatorCredit::Pending if total >= self.target => Some(self.cross()),
            IndicatorCredit::Reversed { .. } if previous < self.target && total >= self.target => {
                Some(self.cross())
            }
            IndicatorCredit::Held { amount, .. } | IndicatorCredit::InReview { amount, .. }
                if total < *amount =>
            {
                Some(self.cancel(*amount))
            }
            IndicatorCredit::Acquired { amount, at, .. }
                if total < *amount && self.within_clawback(*at) =>
            {
                self.reverse(credit, Decision::refund())
            }
            _ => None,
        }
    }

    /// The step of a held credit once its `release_at` has come: acquired (or reviewed) when
    /// the total is still at or above its amount, else back to pending. `None` when not held
    /// or not due.
    pub fn on_release(&self, credit: &IndicatorCredit, total: Money) -> Option<CreditStep> {
        match credit {
            IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            } if *release_at <= self.at => Some(if total >= *amount {
                self.acquire_or_review(*amount, *held_at)
            } else {
                self.cancel(*amount)
            }),
            _ => None,
        }
    }

    /// The step an admin's `action` takes the credit through, or the state it is in when the
    /// move does not apply to it.
    pub fn on_decision(
        &self,
        credit: &IndicatorCredit,
        action: AdminMove,
        decision: Decision,
    ) -> Result<CreditStep, CreditStatus> {
        let refused = || credit.status();
        match (action, credit) {
            (
                AdminMove::Approve,
                IndicatorCredit::InReview {
                    amount,
                    crossed_at,
                    flags,
                },
            ) => Ok(self.acquire(*amount, *crossed_at, flags.clone(), Some(decision))),
            (
                AdminMove::Reject,
                IndicatorCredit::Pending
                | IndicatorCredit::Held { .. }
                | IndicatorCredit::InReview { .. },
            ) => Ok(CreditStep {
                ledger: self.entry(
                    LedgerOperation::CreditRejected,
                    SignedMoney::default(),
                    Some(&decision),
                ),
                event: None,
                credit: IndicatorCredit::Rejected {
                    at: self.at,
                    crossed_at: credit.crossed_at(),
                    flags: credit.flags().to_vec(),
                    decision,
                },
            }),
            (AdminMove::Reverse, IndicatorCredit::Acquired { .. }) => {
                self.reverse(credit, decision).ok_or_else(refused)
            }
            _ => Err(refused()),
        }
    }

    /// What a step that would take a place under the cap becomes when the indicator's credits
    /// already fill it: `capped`, final, with a `credit_capped` entry of amount 0 and no event.
    pub fn capped(&self) -> CreditStep {
        CreditStep {
            credit: IndicatorCredit::Capped { at: self.at },
            ledger: self.entry(LedgerOperation::CreditCapped, SignedMoney::default(), None),
            event: None,
        }
    }

    /// The key of the indicator's count of places under the cap in this program.
    pub fn cap_key(&self) -> String {
        format!("{}:{}", self.program_id, self.indicator)
    }
}

/// A `credit.*` event: the move's ledger entry (program, users, amount, time), the credited
/// user and the credit's state after the move.
pub fn credit_event(
    event_type: EventType,
    entry: &LedgerEntry,
    program_name: &str,
    user_hash: Option<&str>,
    credit: &IndicatorCredit,
) -> Event {
    let data = serde_json::json!({
        "program_id": entry.program_id.map(|id| id.to_string()),
        "program_name": program_name,
        "user_hash": user_hash,
        "user_indicator": entry.user_indicator,
        "user_indicated": entry.user_indicated,
        "amount": entry.amount,
        "status": credit.status(),
        "flags": credit.flags().iter().map(CreditFlag::name).collect::<Vec<_>>(),
        "reason": credit.decision().and_then(|decision| decision.reason),
    });
    Event::new(event_type, data, entry.created_at)
}

/// The flags of a credit that would be acquired now, from what the store counted: the
/// indicator's registrations in the program in the hour up to the user's registration (with
/// the program's `review_velocity`), and its reversed credits in the program.
pub fn flags_for(
    velocity: Option<(u64, crate::programs::domain::ReviewVelocity)>,
    reversed: u64,
) -> Vec<CreditFlag> {
    let mut flags = Vec::new();
    if let Some((registrations, limit)) = velocity
        && registrations > u64::from(limit.get())
    {
        flags.push(CreditFlag::Velocity {
            registrations,
            limit: limit.get(),
        });
    }
    if reversed > 0 {
        flags.push(CreditFlag::PreviousReversal { reversed });
    }
    flags
}

/// The window a `velocity` flag counts registrations in: the hour up to (and including) `at`.
pub const VELOCITY_WINDOW: chrono::Duration = chrono::Duration::minutes(60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::domain::{Days, ProgramName};

    fn money(text: &str) -> Money {
        text.parse().expect("money")
    }

    #[test]
    fn reasons_and_operations_display_their_stored_names() {
        assert_eq!(DecisionReason::SelfReferral.to_string(), "self_referral");
        assert_eq!(
            DecisionReason::TermsViolation.to_string(),
            "terms_violation"
        );
        let operation = crate::indication::domain::LedgerOperation::CreditReversed;
        assert_eq!(operation.to_string(), "credit_reversed");
    }

    fn program(hold_days: u64, at: DateTime<Utc>) -> Program {
        let mut program = Program::new(
            ProgramName::parse("P").expect("name"),
            money("5"),
            money("100"),
            at,
        );
        program.hold_days = Days::new(hold_days).expect("days");
        program
    }

    fn terms_of(program: &Program, at: DateTime<Utc>) -> CreditTerms {
        let mut user = User::imported(UserHash::parse("bo").expect("hash"), None, at);
        user.indicator = UserHash::parse("ana");
        CreditTerms::new(&user, program, at).expect("terms")
    }

    fn terms(hold_days: u64, at: DateTime<Utc>) -> CreditTerms {
        terms_of(&program(hold_days, at), at)
    }

    fn acquired(at: DateTime<Utc>) -> IndicatorCredit {
        IndicatorCredit::Acquired {
            amount: money("100"),
            at,
            crossed_at: at,
            flags: Vec::new(),
            approval: None,
        }
    }

    fn admin(reason: Option<DecisionReason>) -> Decision {
        Decision {
            by: Some("root".to_owned()),
            reason,
            note: Some("checked".to_owned()),
        }
    }

    #[test]
    fn a_crossing_acquires_at_once_or_is_held_for_the_period() {
        let at = Utc::now();
        let step = terms(0, at).on_payment(&IndicatorCredit::Pending, Money::ZERO, money("100"));
        assert!(matches!(
            step.map(|s| (s.credit, s.ledger.operation, s.event.is_some())),
            Some((
                IndicatorCredit::Acquired { .. },
                LedgerOperation::AcquiredCredit,
                true
            ))
        ));
        let held = terms(7, at)
            .on_payment(&IndicatorCredit::Pending, Money::ZERO, money("100"))
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
                .on_payment(&IndicatorCredit::Pending, Money::ZERO, money("99.99"))
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
        let cancel = terms(7, at)
            .on_payment(&held, money("100"), money("50"))
            .expect("a step");
        assert_eq!(cancel.credit, IndicatorCredit::Pending);
        assert_eq!(cancel.ledger.operation, LedgerOperation::CreditCancelled);
        assert_eq!(cancel.cap_delta(&held), -1);
        assert!(
            terms(7, at)
                .on_payment(&held, money("100"), money("100"))
                .is_none()
        );
        // Not due yet; then due, with the total still there or not.
        assert!(terms(7, at).on_release(&held, money("100")).is_none());
        let later = at + chrono::Duration::days(7);
        let release = terms(7, later)
            .on_release(&held, money("100"))
            .expect("due");
        assert!(matches!(
            release.credit,
            IndicatorCredit::Acquired { crossed_at, .. } if crossed_at == at
        ));
        assert_eq!(release.cap_delta(&held), 0);
        let below = terms(7, later).on_release(&held, money("99")).expect("due");
        assert_eq!(below.credit, IndicatorCredit::Pending);
        assert!(below.event.is_none());
    }

    #[test]
    fn without_clawback_acquired_and_capped_credits_never_move() {
        let at = Utc::now();
        for credit in [acquired(at), IndicatorCredit::Capped { at }] {
            for total in ["0", "100", "1000"] {
                assert!(
                    terms(7, at)
                        .on_payment(&credit, money("100"), money(total))
                        .is_none()
                );
                assert!(terms(7, at).on_release(&credit, money(total)).is_none());
            }
        }
    }

    #[test]
    fn a_refund_within_the_window_reverses_with_a_negative_entry_and_event() {
        let at = Utc::now();
        let mut program = program(0, at);
        program.clawback_days = Days::new(14).expect("days");
        let credit = acquired(at);
        let within = terms_of(&program, at + chrono::Duration::days(14));
        let step = within
            .on_payment(&credit, money("100"), money("99"))
            .expect("reversed");
        assert_eq!(step.ledger.operation, LedgerOperation::CreditReversed);
        assert_eq!(step.ledger.amount, money("100").negated());
        assert_eq!(step.ledger.decision, Some(Decision::refund()));
        let event = step.event.as_ref().expect("an event");
        assert_eq!(event.event_type, CreditEventType::CreditReversed);
        assert_eq!(event.amount.to_string(), "-100");
        assert_eq!(event.user_hash.as_str(), "ana");
        assert_eq!(step.credit.status(), CreditStatus::Reversed);
        assert_eq!(step.cap_delta(&credit), -1);
        // At or above the credit, or after the window: nothing.
        assert!(
            within
                .on_payment(&credit, money("100"), money("100"))
                .is_none()
        );
        let after = terms_of(
            &program,
            at + chrono::Duration::days(14) + chrono::Duration::milliseconds(1),
        );
        assert!(
            after
                .on_payment(&credit, money("100"), money("0"))
                .is_none()
        );
        // A later crossing starts again; a total already above the target does not cross.
        let reversed = step.credit;
        let again = within
            .on_payment(&reversed, money("99"), money("100"))
            .expect("crossed again");
        assert_eq!(again.credit.status(), CreditStatus::Acquired);
        assert_eq!(again.cap_delta(&reversed), 1);
        assert!(
            within
                .on_payment(&reversed, money("100"), money("150"))
                .is_none()
        );
    }

    #[test]
    fn review_holds_the_credit_that_would_be_acquired() {
        let at = Utc::now();
        let mut program = program(0, at);
        program.review = Review::All;
        let all = terms_of(&program, at);
        let step = all
            .on_payment(&IndicatorCredit::Pending, Money::ZERO, money("100"))
            .expect("a step");
        assert_eq!(step.ledger.operation, LedgerOperation::CreditInReview);
        assert_eq!(step.ledger.amount, money("100").into());
        assert!(step.event.is_none());
        assert_eq!(step.cap_delta(&IndicatorCredit::Pending), 1);
        // A drop sends it back to pending.
        let back = all
            .on_payment(&step.credit, money("100"), money("10"))
            .expect("cancelled");
        assert_eq!(back.credit, IndicatorCredit::Pending);
        assert_eq!(back.ledger.operation, LedgerOperation::CreditCancelled);
        // Flagged: only with a flag; a held credit is reviewed at its release.
        program.review = Review::Flagged;
        program.hold_days = Days::new(7).expect("days");
        let unflagged = terms_of(&program, at + chrono::Duration::days(7));
        let held = IndicatorCredit::Held {
            amount: money("100"),
            held_at: at,
            release_at: at + chrono::Duration::days(7),
        };
        let released = unflagged.on_release(&held, money("100")).expect("due");
        assert_eq!(released.credit.status(), CreditStatus::Acquired);
        let mut flagged = unflagged.clone();
        flagged.flags = vec![CreditFlag::PreviousReversal { reversed: 1 }];
        let reviewed = flagged.on_release(&held, money("100")).expect("due");
        assert_eq!(
            reviewed.credit,
            IndicatorCredit::InReview {
                amount: money("100"),
                crossed_at: at,
                flags: vec![CreditFlag::PreviousReversal { reversed: 1 }],
            }
        );
        assert_eq!(reviewed.cap_delta(&held), 0);
    }

    #[test]
    fn admin_moves_apply_only_to_their_states() {
        let at = Utc::now();
        let terms = terms(0, at);
        let in_review = IndicatorCredit::InReview {
            amount: money("100"),
            crossed_at: at,
            flags: vec![CreditFlag::Velocity {
                registrations: 4,
                limit: 3,
            }],
        };
        let approved = terms
            .on_decision(&in_review, AdminMove::Approve, admin(None))
            .expect("approved");
        assert_eq!(approved.ledger.operation, LedgerOperation::AcquiredCredit);
        assert_eq!(approved.ledger.decision, Some(admin(None)));
        assert!(approved.event.is_some());
        assert_eq!(approved.credit.flags().len(), 1);
        assert_eq!(approved.credit.decision(), Some(&admin(None)));
        let reason = Some(DecisionReason::Fraud);
        for credit in [
            IndicatorCredit::Pending,
            in_review.clone(),
            IndicatorCredit::Held {
                amount: money("100"),
                held_at: at,
                release_at: at,
            },
        ] {
            let rejected = terms
                .on_decision(&credit, AdminMove::Reject, admin(reason))
                .expect("rejected");
            assert_eq!(rejected.ledger.operation, LedgerOperation::CreditRejected);
            assert_eq!(rejected.ledger.amount, SignedMoney::default());
            assert!(rejected.event.is_none());
            assert_eq!(
                rejected.cap_delta(&credit),
                -i64::from(credit.counts_toward_cap())
            );
            // Final: no payment, release or decision moves it.
            assert!(
                terms
                    .on_payment(&rejected.credit, Money::ZERO, money("1000"))
                    .is_none()
            );
            for action in [AdminMove::Approve, AdminMove::Reject, AdminMove::Reverse] {
                assert_eq!(
                    terms.on_decision(&rejected.credit, action, admin(reason)),
                    Err(CreditStatus::Rejected)
                );
            }
        }
        let reversed = terms
            .on_decision(&acquired(at), AdminMove::Reverse, admin(reason))
            .expect("reversed");
        assert_eq!(reversed.ledger.amount, money("100").negated());
        assert_eq!(
            reversed.event.map(|e| e.event_type),
            Some(CreditEventType::CreditReversed)
        );
        assert_eq!(
            terms.on_decision(&acquired(at), AdminMove::Approve, admin(None)),
            Err(CreditStatus::Acquired)
        );
        assert_eq!(
            terms.on_decision(&IndicatorCredit::Pending, AdminMove::Reverse, admin(reason)),
            Err(CreditStatus::Pending)
        );
        assert_eq!(
            terms.on_decision(
                &IndicatorCredit::Capped { at },
                AdminMove::Reject,
                admin(reason)
            ),
            Err(CreditStatus::Capped)
        );
    }

    #[test]
    fn flags_say_why() {
        let limit = crate::programs::domain::ReviewVelocity::new(3).expect("velocity");
        assert!(flags_for(Some((3, limit)), 0).is_empty());
        let flags = flags_for(Some((4, limit)), 2);
        assert_eq!(
            flags.iter().map(CreditFlag::name).collect::<Vec<_>>(),
            ["velocity", "previous_reversal"]
        );
        assert!(flags[0].reason().contains("registered 4 users"));
        assert!(flags[1].reason().contains("2 reversed credits"));
        assert!(flags_for(None, 0).is_empty());
    }
}
