//! Webhook endpoints, their secrets and their deliveries: what they are and how they move,
//! without storage or HTTP.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    callbacks::{RetrySchedule, SigningSecret, domain::AttemptOutcome},
    events::{Event, EventType, domain::uuid_v7},
};

/// The event types an endpoint receives: every type (`["*"]`) or the ones listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub enum Selection {
    All,
    Only(Vec<EventType>),
}

impl Selection {
    pub fn wants(&self, event_type: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&event_type),
        }
    }
}

impl From<Selection> for Vec<String> {
    fn from(selection: Selection) -> Self {
        match selection {
            Selection::All => vec!["*".to_owned()],
            Selection::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

/// Why a list of names is not a selection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error("no event types")]
    Empty,
    #[error("unknown event type `{0}`")]
    Unknown(String),
}

impl TryFrom<Vec<String>> for Selection {
    type Error = SelectionError;

    /// `["*"]` (or `*` among others) is every type; duplicates are dropped.
    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        if names.is_empty() {
            return Err(SelectionError::Empty);
        }
        if names.iter().any(|name| name.trim() == "*") {
            return Ok(Self::All);
        }
        let mut types = Vec::new();
        for name in names {
            let event_type: EventType = name
                .trim()
                .parse()
                .map_err(|_| SelectionError::Unknown(name.clone()))?;
            if !types.contains(&event_type) {
                types.push(event_type);
            }
        }
        Ok(Self::Only(types))
    }
}

/// Why an endpoint stopped receiving deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// It answered `410 Gone`.
    Gone,
    /// Its deliveries all failed for `WEBHOOK_DISABLE_AFTER`.
    Failing,
    /// An admin switched it off.
    Admin,
}

/// A secret of an endpoint: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// A URL that receives events, with its secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// A version 7 UUID.
    pub id: String,
    pub url: String,
    pub event_types: Selection,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    /// Signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, which also signs until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTime<Utc>>,
    /// When the current run of failed deliveries began (none since the last success).
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl WebhookEndpoint {
    pub fn new(
        url: String,
        event_types: Selection,
        description: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid_v7(at),
            url,
            event_types,
            description,
            enabled: true,
            disabled_reason: None,
            secret: new_secret(),
            previous_secret: None,
            previous_until: None,
            failing_since: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// Whether this endpoint gets a delivery of `event`: one of its types, written since the
    /// endpoint was made.
    pub fn wants(&self, event: &Event) -> bool {
        self.event_types.wants(event.event_type) && event.timestamp >= self.created_at
    }

    /// A new secret; the old one keeps signing for `overlap`.
    pub fn rotate(&mut self, at: DateTime<Utc>, overlap: chrono::Duration) {
        let old = std::mem::replace(&mut self.secret, new_secret());
        self.previous_secret = Some(old);
        self.previous_until = Some(at.checked_add_signed(overlap).unwrap_or(at));
        self.updated_at = at;
    }

    /// The secrets a request sent at `at` is signed with: the current one, then the previous
    /// one during the overlap. A stored secret that does not parse signs nothing.
    pub fn signing_secrets(&self, at: DateTime<Utc>) -> Vec<SigningSecret> {
        let previous = self
            .previous_secret
            .as_deref()
            .filter(|_| self.previous_until.is_some_and(|until| at < until));
        std::iter::once(self.secret.as_str())
            .chain(previous)
            .filter_map(|raw| SigningSecret::parse(raw).ok())
            .collect()
    }

    /// Switched on or off by an admin: on again, it starts afresh (no reason, no failure run).
    pub fn set_enabled(&mut self, enabled: bool) {
        if enabled == self.enabled {
            return;
        }
        self.enabled = enabled;
        self.disabled_reason = (!enabled).then_some(DisabledReason::Admin);
        self.failing_since = None;
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// Text that names no delivery status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a delivery status")]
pub struct InvalidDeliveryStatus;

serde_plain::derive_fromstr_from_deserialize!(DeliveryStatus, |_e| -> InvalidDeliveryStatus {
    InvalidDeliveryStatus
});

/// One event owed to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `<endpoint id>:<event id>`: one delivery per pair, whoever creates it.
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: EventType,
    /// The JSON body every attempt sends: `{"type", "timestamp", "data"}`.
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts since the delivery was made or last recovered.
    pub attempts: u32,
    /// The HTTP status of the last attempt, if it got an answer.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The worker holding it, and until when.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

impl Delivery {
    pub fn id_for(endpoint_id: &str, event_id: &str) -> String {
        format!("{endpoint_id}:{event_id}")
    }

    /// The delivery of `event` to `endpoint`, due at once.
    pub fn of(endpoint: &WebhookEndpoint, event: &Event, at: DateTime<Utc>) -> Self {
        Self {
            id: Self::id_for(&endpoint.id, &event.id),
            endpoint_id: endpoint.id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type,
            body: body(event.event_type.as_str(), event.timestamp, &event.data),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: at,
            delivered_at: None,
            created_at: at,
            lease_owner: None,
            lease_until: None,
        }
    }

    /// When it is due: the end of its lease while a worker holds it, else its next attempt.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.lease_until.unwrap_or(self.next_attempt_at)
    }

    /// The delivery after an attempt by `owner` ended in `outcome`; `None` when `owner` no
    /// longer holds it (its lease ran out and another worker took it).
    pub fn after_attempt(&self, owner: &str, ended: &Ended) -> Option<Self> {
        if self.lease_owner.as_deref() != Some(owner) || self.status != DeliveryStatus::Pending {
            return None;
        }
        let mut next = self.clone();
        next.lease_owner = None;
        next.lease_until = None;
        if !ended.sent {
            return Some(next);
        }
        next.attempts = next.attempts.saturating_add(1);
        next.last_status = ended.status;
        match &ended.outcome {
            AttemptOutcome::Delivered => {
                next.status = DeliveryStatus::Delivered;
                next.delivered_at = Some(ended.at);
            }
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => {
                next.last_error = Some(error.clone());
                next.next_attempt_at = *next_attempt_at;
            }
            AttemptOutcome::Failed { error } => {
                next.status = DeliveryStatus::Failed;
                next.last_error = Some(error.clone());
            }
        }
        Some(next)
    }

    /// Queued again by an admin's recovery: due at `now`, with the whole schedule ahead.
    pub fn recovered(&self, now: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.status = DeliveryStatus::Pending;
        next.attempts = 0;
        next.next_attempt_at = now;
        next
    }
}

/// The JSON body of a delivery.
pub fn body(event_type: &str, timestamp: DateTime<Utc>, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": crate::clock::rfc3339_millis_string(timestamp),
        "data": data,
    })
    .to_string()
}

/// One attempt that ended: the delivery, what it came to, and the HTTP status if there was an
/// answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    pub delivery_id: String,
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    /// `false` for a delivery handed back unsent (its endpoint was switched off meanwhile):
    /// only its lease is given up.
    pub sent: bool,
    pub outcome: AttemptOutcome,
}

/// What an endpoint answered, as far as the schedule cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Accepted { status: u16 },
    /// `410 Gone`: the endpoint is switched off at once.
    Gone,
    /// Any other failure; `retry_after` from a `429` or `503`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<std::time::Duration>,
    },
}

/// The most a `Retry-After` may add beyond the schedule's own next step.
pub const RETRY_AFTER_SLACK: chrono::Duration = chrono::Duration::hours(1);

/// What follows an answer to the `attempts`-th attempt (1 for the first): the schedule's step,
/// moved no sooner than a `Retry-After` says and at most [`RETRY_AFTER_SLACK`] past the step.
pub fn outcome(
    schedule: &RetrySchedule,
    attempts: u32,
    answer: &Answer,
    now: DateTime<Utc>,
    jitter: f64,
) -> AttemptOutcome {
    match answer {
        Answer::Accepted { .. } => AttemptOutcome::Delivered,
        Answer::Gone => AttemptOutcome::Failed {
            error: "HTTP 410: the endpoint is gone".to_owned(),
        },
        Answer::Failed {
            error, retry_after, ..
        } => match schedule.after_failure(attempts, error.clone(), now, jitter) {
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => {
                let asked = retry_after
                    .and_then(|wait| chrono::Duration::from_std(wait).ok())
                    .and_then(|wait| now.checked_add_signed(wait));
                let latest = next_attempt_at
                    .checked_add_signed(RETRY_AFTER_SLACK)
                    .unwrap_or(next_attempt_at);
                let next_attempt_at = match asked {
                    Some(asked) => asked.clamp(next_attempt_at, latest),
                    None => next_attempt_at,
                };
                AttemptOutcome::Retry {
                    error,
                    next_attempt_at,
                }
            }
            other => other,
        },
    }
}

/// What an endpoint's health becomes after an answer at `at`: `Some(reason)` when it is to be
/// switched off.
pub fn health_after(
    endpoint: &WebhookEndpoint,
    answer: &Answer,
    at: DateTime<Utc>,
    disable_after: chrono::Duration,
) -> Option<DisabledReason> {
    match answer {
        Answer::Accepted { .. } => None,
        Answer::Gone => Some(DisabledReason::Gone),
        Answer::Failed { .. } => {
            let since = endpoint.failing_since.unwrap_or(at);
            (at - since >= disable_after).then_some(DisabledReason::Failing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn selections_read_star_and_names() {
        let all = Selection::try_from(vec!["credit.acquired".into(), "*".into()]);
        assert_eq!(all, Ok(Selection::All));
        let only = Selection::try_from(vec!["credit.acquired".into(), "credit.acquired".into()]);
        assert_eq!(only, Ok(Selection::Only(vec![EventType::CreditAcquired])));
        assert_eq!(
            Selection::try_from(vec!["credit.paid".into()]),
            Err(SelectionError::Unknown("credit.paid".into()))
        );
        assert_eq!(Selection::try_from(vec![]), Err(SelectionError::Empty));
        let spaced = Selection::try_from(vec![" credit.acquired ".into()]);
        assert_eq!(spaced, Ok(Selection::Only(vec![EventType::CreditAcquired])));
    }

    #[test]
    fn retry_after_moves_the_next_attempt_within_an_hour_of_the_schedule() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(5), Duration::from_secs(60)]);
        let failed = |retry_after: Option<u64>| Answer::Failed {
            status: Some(429),
            error: "HTTP 429".into(),
            retry_after: retry_after.map(Duration::from_secs),
        };
        let next = |answer: &Answer| match outcome(&schedule, 1, answer, at(0), 0.0) {
            AttemptOutcome::Retry {
                next_attempt_at, ..
            } => next_attempt_at,
            other => panic!("retries: {other:?}"),
        };
        assert_eq!(next(&failed(None)), at(5));
        // Sooner than the schedule: the schedule stands.
        assert_eq!(next(&failed(Some(1))), at(5));
        assert_eq!(next(&failed(Some(120))), at(120));
        // Never more than an hour past the schedule's step.
        assert_eq!(next(&failed(Some(86_400))), at(5 + 3600));
        // The schedule's end is the end, whatever the endpoint asks.
        assert!(matches!(
            outcome(&schedule, 3, &failed(Some(10)), at(0), 0.0),
            AttemptOutcome::Failed { .. }
        ));
    }

    #[test]
    fn an_endpoint_is_switched_off_when_gone_or_failing_too_long() {
        let mut endpoint = WebhookEndpoint::new(
            "https://x.example".into(),
            Selection::All,
            String::new(),
            at(0),
        );
        let failed = Answer::Failed {
            status: None,
            error: "connection failed".into(),
            retry_after: None,
        };
        let five_days = chrono::Duration::days(5);
        assert_eq!(health_after(&endpoint, &failed, at(10), five_days), None);
        endpoint.failing_since = Some(at(10));
        assert_eq!(health_after(&endpoint, &failed, at(3600), five_days), None);
        assert_eq!(
            health_after(&endpoint, &failed, at(10) + five_days, five_days),
            Some(DisabledReason::Failing)
        );
        assert_eq!(
            health_after(&endpoint, &Answer::Gone, at(20), five_days),
            Some(DisabledReason::Gone)
        );
        assert_eq!(
            health_after(
                &endpoint,
                &Answer::Accepted { status: 200 },
                at(20),
                five_days
            ),
            None
        );
    }

    #[test]
    fn the_old_secret_signs_during_the_overlap_only() {
        let mut endpoint = WebhookEndpoint::new(
            "https://x.example".into(),
            Selection::All,
            String::new(),
            at(0),
        );
        assert_eq!(endpoint.signing_secrets(at(1)).len(), 1);
        endpoint.rotate(at(10), chrono::Duration::hours(24));
        assert_eq!(endpoint.signing_secrets(at(11)).len(), 2);
        assert_eq!(endpoint.signing_secrets(at(10 + 24 * 3600)).len(), 1);
        assert!(endpoint.secret.starts_with("whsec_"));
        assert!(SigningSecret::parse(&endpoint.secret).is_ok());
    }
}
