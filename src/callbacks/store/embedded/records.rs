//! Credit events as the embedded store keeps them: JSON records, times in milliseconds, money as
//! exact text.

use super::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct CallbackRecord {
    pub(super) id: String,
    pub(super) event_type: CreditEventType,
    pub(super) user_hash: String,
    #[serde(with = "money_text")]
    pub(super) amount: SignedMoney,
    pub(super) program_name: String,
    pub(super) user_indicator_hash: String,
    pub(super) status: CallbackStatus,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    #[serde(default, with = "opt_millis")]
    pub(super) last_attempt_at: Option<DateTime<Utc>>,
    #[serde(rename = "next_attempt_at_ms", with = "millis")]
    pub(super) next_attempt_at: DateTime<Utc>,
    #[serde(default, with = "opt_millis")]
    pub(super) delivered_at: Option<DateTime<Utc>>,
    #[serde(rename = "created_at_ms", with = "millis")]
    pub(super) created_at: DateTime<Utc>,
    #[serde(default)]
    pub(super) lease_owner: Option<String>,
    #[serde(default, with = "opt_millis")]
    pub(super) lease_until: Option<DateTime<Utc>>,
}

impl CallbackRecord {
    pub(super) fn from_event(event: &CreditEvent) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type,
            user_hash: event.user_hash.to_string(),
            amount: event.amount,
            program_name: event.program_name.clone(),
            user_indicator_hash: event.user_indicator_hash.to_string(),
            status: event.status,
            attempts: event.attempts,
            last_error: event.last_error.clone(),
            last_attempt_at: event.last_attempt_at,
            next_attempt_at: event.next_attempt_at,
            delivered_at: event.delivered_at,
            created_at: event.created_at,
            lease_owner: None,
            lease_until: None,
        }
    }

    pub(super) fn to_event(&self) -> CreditEvent {
        CreditEvent {
            id: self.id.clone(),
            event_type: self.event_type,
            user_hash: UserHash::from_stored(self.user_hash.clone()),
            amount: self.amount,
            program_name: self.program_name.clone(),
            user_indicator_hash: UserHash::from_stored(self.user_indicator_hash.clone()),
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            last_attempt_at: self.last_attempt_at,
            next_attempt_at: self.next_attempt_at,
            delivered_at: self.delivered_at,
            created_at: self.created_at,
        }
    }

    /// When a pending event is next due: its next attempt, or the end of a lease held on it.
    pub(super) fn due_at(&self) -> DateTime<Utc> {
        self.lease_until.map_or(self.next_attempt_at, |until| {
            until.max(self.next_attempt_at)
        })
    }
}
