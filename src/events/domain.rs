//! An event: what happened (`type`), when, and its data; its id is a version 7 UUID, which
//! begins with its time.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an event says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// Part A's signup credit, owed to the indicated user at registration.
    #[serde(rename = "credit.signup")]
    CreditSignup,
    #[serde(rename = "credit.held")]
    CreditHeld,
    #[serde(rename = "credit.in_review")]
    CreditInReview,
    #[serde(rename = "credit.acquired")]
    CreditAcquired,
    #[serde(rename = "credit.cancelled")]
    CreditCancelled,
    #[serde(rename = "credit.capped")]
    CreditCapped,
    #[serde(rename = "credit.rejected")]
    CreditRejected,
    #[serde(rename = "credit.reversed")]
    CreditReversed,
    /// A first redemption of a referral code by an account.
    #[serde(rename = "referral.redeemed")]
    ReferralRedeemed,
    #[serde(rename = "referrer.created")]
    ReferrerCreated,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        Self::CreditSignup,
        Self::CreditHeld,
        Self::CreditInReview,
        Self::CreditAcquired,
        Self::CreditCancelled,
        Self::CreditCapped,
        Self::CreditRejected,
        Self::CreditReversed,
        Self::ReferralRedeemed,
        Self::ReferrerCreated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreditSignup => "credit.signup",
            Self::CreditHeld => "credit.held",
            Self::CreditInReview => "credit.in_review",
            Self::CreditAcquired => "credit.acquired",
            Self::CreditCancelled => "credit.cancelled",
            Self::CreditCapped => "credit.capped",
            Self::CreditRejected => "credit.rejected",
            Self::CreditReversed => "credit.reversed",
            Self::ReferralRedeemed => "referral.redeemed",
            Self::ReferrerCreated => "referrer.created",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no event type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an event type")]
pub struct InvalidEventType;

serde_plain::derive_fromstr_from_deserialize!(EventType, |_e| -> InvalidEventType {
    InvalidEventType
});

/// One event, as written with the move it records.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// A version 7 UUID.
    pub id: String,
    pub event_type: EventType,
    pub timestamp: DateTime<Utc>,
    /// The event's data, as the feed shows it (money as exact JSON numbers).
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(event_type: EventType, data: serde_json::Value, at: DateTime<Utc>) -> Self {
        Self {
            id: uuid_v7(at),
            event_type,
            timestamp: at,
            data,
        }
    }
}

/// A version 7 UUID for something created at `at`: time-ordered, random below the millisecond.
pub fn uuid_v7(at: DateTime<Utc>) -> String {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    let time = uuid::Timestamp::from_unix(uuid::NoContext, seconds, at.timestamp_subsec_nanos());
    uuid::Uuid::new_v7(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_back_from_their_names() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse(), Ok(event_type));
            assert_eq!(
                serde_json::to_value(event_type).ok(),
                Some(serde_json::Value::String(event_type.as_str().to_owned()))
            );
        }
        assert_eq!("credit.paid".parse::<EventType>(), Err(InvalidEventType));
    }
}
