//! Credit events owed to the billing service, their delivery state, and the retry schedule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{cursor::Cursor, indication::UserHash, money::SignedMoney};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditEventType {
    /// At register: the indicated user receives the program's `credit_value`.
    SignupCredit,
    /// At the threshold: the indicator receives the program's `target_value`.
    AcquiredCredit,
    /// An acquired credit taken back (a refund within the clawback window, or an admin's
    /// reversal): the indicator, with the credit's amount negated.
    CreditReversed,
}

// Shown by its stored (serde) name: `signup_credit`, `acquired_credit`.
serde_plain::derive_display_from_serialize!(CreditEventType);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    /// Waiting for its next attempt (or for a configured URL).
    Pending,
    /// The billing service answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed; an admin may retry it.
    Failed,
}

/// Text that names no callback status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a callback status")]
pub struct InvalidStatus;

serde_plain::derive_fromstr_from_deserialize!(CallbackStatus, |_e| -> InvalidStatus {
    InvalidStatus
});

/// A credit the billing service must receive: written with the change that earned it, then
/// delivered at least once under its stable `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditEvent {
    /// A UUID (version 7: it begins with the event's creation time, so that new events are
    /// stored side by side rather than at random places in the outbox's index); also the
    /// `webhook-id` and `Idempotency-Key` of every delivery attempt.
    pub id: String,
    pub event_type: CreditEventType,
    /// The credited user.
    pub user_hash: UserHash,
    /// Negative for `credit_reversed`: the credit billing takes back.
    pub amount: SignedMoney,
    pub program_name: String,
    /// The indicator of the indication that earned the credit.
    pub user_indicator_hash: UserHash,
    pub status: CallbackStatus,
    pub attempts: u32,
    /// Status and a short excerpt of the body, or the transport error, of the last failure.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

use crate::events::domain::uuid_v7 as event_id;

impl CreditEvent {
    pub fn new(
        event_type: CreditEventType,
        user_hash: UserHash,
        amount: SignedMoney,
        program_name: String,
        user_indicator_hash: UserHash,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: event_id(at),
            event_type,
            user_hash,
            amount,
            program_name,
            user_indicator_hash,
            status: CallbackStatus::Pending,
            attempts: 0,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: at,
            delivered_at: None,
            created_at: at,
        }
    }

    /// The position of this event in the oldest-first order of the admin list.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// What one delivery attempt ended in, as the store records it.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; another attempt is due at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed, and the schedule is exhausted.
    Failed {
        error: String,
    },
}

/// The waits after each failed attempt; after the last one an event is `failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// Up to this share of each wait is added at random, so that retries do not arrive in waves.
pub const JITTER: f64 = 0.10;

impl RetrySchedule {
    pub fn new(waits: Vec<Duration>) -> Self {
        Self(waits)
    }

    pub fn waits(&self) -> &[Duration] {
        &self.0
    }

    /// What follows the `attempts`-th failed attempt (1 for the first): a retry after the
    /// matching wait plus `jitter` (0.0..=1.0) of [`JITTER`], or the end.
    pub fn after_failure(
        &self,
        attempts: u32,
        error: String,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> AttemptOutcome {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.0.get(index) {
            Some(wait) => {
                let wait = wait.mul_f64(1.0 + JITTER * jitter.clamp(0.0, 1.0));
                let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                AttemptOutcome::Retry {
                    error,
                    next_attempt_at: now.checked_add_signed(wait).unwrap_or(now),
                }
            }
            None => AttemptOutcome::Failed { error },
        }
    }
}

impl Default for RetrySchedule {
    /// `5s,5m,30m,2h,5h,10h,10h`: about a day in all.
    fn default() -> Self {
        let (s, m, h) = (1, 60, 3600);
        Self(
            [5 * s, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

/// Which events an admin lists.
#[derive(Clone, Debug, Default)]
pub struct CallbackFilter {
    pub status: Option<CallbackStatus>,
    pub user_hash: Option<UserHash>,
    pub after: Option<Cursor>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event ids are version 7 UUIDs in the order of their events' times (as text too, which is
    /// how both stores key them), and distinct within one millisecond.
    #[test]
    fn event_ids_follow_the_event_time() {
        let at = Utc::now();
        let ids: Vec<String> = (0..50)
            .map(|i| event_id(at + chrono::Duration::milliseconds(i)))
            .collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        let same_ms: std::collections::HashSet<String> = (0..50).map(|_| event_id(at)).collect();
        assert_eq!(same_ms.len(), 50);
    }

    #[test]
    fn the_default_schedule_has_seven_waits_then_fails() {
        let schedule = RetrySchedule::default();
        let now = Utc::now();
        let AttemptOutcome::Retry {
            next_attempt_at, ..
        } = schedule.after_failure(1, "x".into(), now, 0.0)
        else {
            panic!("first failure retries");
        };
        assert_eq!(next_attempt_at - now, chrono::Duration::seconds(5));
        assert!(matches!(
            schedule.after_failure(7, "x".into(), now, 1.0),
            AttemptOutcome::Retry { .. }
        ));
        assert!(matches!(
            schedule.after_failure(8, "x".into(), now, 0.0),
            AttemptOutcome::Failed { .. }
        ));
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(100)]);
        let now = Utc::now();
        let AttemptOutcome::Retry {
            next_attempt_at, ..
        } = schedule.after_failure(1, "x".into(), now, 1.0)
        else {
            panic!("retries");
        };
        assert_eq!(next_attempt_at - now, chrono::Duration::seconds(110));
    }

    #[test]
    fn statuses_parse_by_their_stored_names() {
        assert_eq!("failed".parse(), Ok(CallbackStatus::Failed));
        assert_eq!("Failed".parse::<CallbackStatus>(), Err(InvalidStatus));
    }
}
