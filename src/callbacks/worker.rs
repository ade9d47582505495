//! The callback worker: Part C's queue for the delivery loop of [`crate::pump`]. It wakes at
//! once when an event is written in this process, and polls for the rest (events written by
//! other instances, retries falling due, leases running out).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use super::{
    delivery::{Sender, Sent},
    domain::{AttemptOutcome, CreditEvent, RetrySchedule},
    store::{Attempt, CallbackOutbox, Lease},
};
pub use crate::pump::OutboxSignal;
use crate::{
    clock::Clock,
    pump::{self, Pace, Queue},
};

/// How often an idle worker looks for due events it was not woken for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub lease: Duration,
    /// How long one attempt may take (`CALLBACK_TIMEOUT`).
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub poll_interval: Duration,
}

impl WorkerSettings {
    /// How many events one claim takes (see [`pump::claim_batch`]).
    pub fn claim_batch(&self) -> usize {
        pump::claim_batch(self.concurrency, self.lease, self.timeout)
    }

    pub fn pace(&self) -> Pace {
        Pace {
            concurrency: self.concurrency,
            batch: self.claim_batch(),
            poll_interval: self.poll_interval,
        }
    }
}

pub struct Worker {
    pub outbox: Arc<dyn CallbackOutbox>,
    pub sender: Sender,
    pub settings: WorkerSettings,
    pub clock: Arc<dyn Clock>,
    pub signal: OutboxSignal,
    /// Names this worker's leases; unique per worker.
    pub owner: String,
}

impl Worker {
    /// Delivers until `shutdown` is cancelled, then lets the deliveries in flight finish (each
    /// is bounded by the callback timeout), records them and returns. Events claimed but not
    /// yet sent are left to their leases, and go out again when those run out.
    pub async fn run(self, shutdown: CancellationToken) {
        let (pace, signal, owner) = (
            self.settings.pace(),
            self.signal.clone(),
            self.owner.clone(),
        );
        tracing::info!(%owner, batch = pace.batch, "callback worker started");
        pump::run(Arc::new(self), pace, Some(signal), shutdown).await;
        tracing::info!(%owner, "callback worker stopped");
    }
}

#[async_trait]
impl Queue for Worker {
    type Item = CreditEvent;
    type Ended = Attempt;

    async fn claim(&self, limit: usize) -> Vec<CreditEvent> {
        let lease = Lease::of(&self.owner, self.clock.now(), self.settings.lease);
        match self.outbox.claim_due(&lease, limit).await {
            Ok(events) => events,
            Err(err) => {
                crate::ops::metrics::store_error(err.kind());
                tracing::warn!(error = %err, "cannot claim due callbacks; retrying later");
                Vec::new()
            }
        }
    }

    async fn send(&self, event: CreditEvent) -> Attempt {
        self.deliver(event).await
    }

    async fn record(&self, attempts: Vec<Attempt>) {
        if attempts.is_empty() {
            return;
        }
        let count = attempts.len();
        match self.outbox.record_attempts(&self.owner, attempts).await {
            Ok(recorded) if recorded < count => {
                tracing::warn!(
                    lost = count - recorded,
                    "leases lost before the attempts were recorded"
                );
            }
            Ok(_) => {}
            Err(err) => {
                // The leases run out and the events are sent again: at least once, never lost.
                crate::ops::metrics::store_error(err.kind());
                tracing::warn!(error = %err, count, "cannot record callback attempts");
            }
        }
    }
}

impl Worker {
    /// Sends one attempt and says what it came to; the caller records it.
    async fn deliver(&self, event: CreditEvent) -> Attempt {
        let started = self.clock.now();
        let sent = self.sender.send(&event, started.timestamp()).await;
        let attempts = event.attempts.saturating_add(1);
        let now = self.clock.now();
        let outcome = match sent {
            Sent::Delivered => AttemptOutcome::Delivered,
            Sent::Failed(error) => {
                let jitter = rand::rng().random::<f64>();
                self.settings
                    .schedule
                    .after_failure(attempts, error, now, jitter)
            }
        };
        crate::ops::metrics::callback_attempt(match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
        });
        match &outcome {
            AttemptOutcome::Delivered => {
                tracing::debug!(event_id = %event.id, event_type = %event.event_type, attempts, "callback delivered");
            }
            AttemptOutcome::Retry {
                error,
                next_attempt_at,
            } => {
                tracing::warn!(event_id = %event.id, attempts, %error, %next_attempt_at, "callback failed; will retry");
            }
            AttemptOutcome::Failed { error } => {
                tracing::error!(event_id = %event.id, attempts, %error, "callback failed for good");
            }
        }
        Attempt {
            id: event.id,
            at: now,
            outcome,
        }
    }
}
