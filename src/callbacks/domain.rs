use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{indication::UserHash, money::Money};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditEventType {
    /// At register: the indicated user receives the program's `credit_value`.
    SignupCredit,
    /// At the threshold: the indicator receives the program's `target_value`.
    AcquiredCredit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Pending,
    Delivered,
    Failed,
}

/// A credit the billing service must receive exactly once.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditEvent {
    /// A UUID; also the `webhook-id` and `Idempotency-Key` of every delivery attempt.
    pub id: String,
    pub event_type: CreditEventType,
    /// The credited user.
    pub user_hash: UserHash,
    pub amount: Money,
    pub program_name: String,
    /// The indicator of the indication that earned the credit.
    pub user_indicator_hash: UserHash,
    pub status: CallbackStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
}

impl CreditEvent {
    pub fn new(
        event_type: CreditEventType,
        user_hash: UserHash,
        amount: Money,
        program_name: String,
        user_indicator_hash: UserHash,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            event_type,
            user_hash,
            amount,
            program_name,
            user_indicator_hash,
            status: CallbackStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: at,
            next_attempt_at: at,
        }
    }
}
