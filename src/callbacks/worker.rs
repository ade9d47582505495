//! The delivery worker: claims due events under a lease, sends up to `concurrency` at once,
//! records each attempt, and stops between deliveries when told to. It wakes at once when an
//! event is written in this process, and polls for the rest (events written by other instances,
//! retries falling due, leases running out).

use std::{sync::Arc, time::Duration};

use rand::RngExt;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    delivery::{Sender, Sent},
    domain::{AttemptOutcome, CreditEvent, RetrySchedule},
    store::{CallbackOutbox, Lease},
};
use crate::clock::Clock;

/// How often an idle worker looks for due events it was not woken for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// A wake-up call for the worker: rung after a write that queued an event.
#[derive(Clone, Debug, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub lease: Duration,
    pub schedule: RetrySchedule,
    pub poll_interval: Duration,
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
    /// is bounded by the callback timeout) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut in_flight = JoinSet::new();
        tracing::info!(owner = %this.owner, "callback worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let free = this.settings.concurrency.saturating_sub(in_flight.len());
            if free > 0 {
                for event in this.claim(free).await {
                    let worker = this.clone();
                    in_flight.spawn(async move { worker.deliver(event).await });
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = this.signal.woken() => {}
                () = tokio::time::sleep(this.settings.poll_interval) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
        tracing::info!(owner = %this.owner, "callback worker stopped");
    }

    async fn claim(&self, limit: usize) -> Vec<CreditEvent> {
        let now = self.clock.now();
        let lease = Lease {
            owner: self.owner.clone(),
            until: now
                + chrono::Duration::from_std(self.settings.lease)
                    .unwrap_or(chrono::Duration::seconds(60)),
        };
        match self.outbox.claim_due(now, &lease, limit).await {
            Ok(events) => events,
            Err(err) => {
                crate::ops::metrics::store_error(err.kind());
                tracing::warn!(error = %err, "cannot claim due callbacks; retrying later");
                Vec::new()
            }
        }
    }

    async fn deliver(&self, event: CreditEvent) {
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
                tracing::info!(event_id = %event.id, event_type = %event.event_type, attempts, "callback delivered");
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
        match self
            .outbox
            .record_attempt(&event.id, &self.owner, now, outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(event_id = %event.id, "lease lost before the attempt was recorded");
            }
            Err(err) => {
                // The lease runs out and the event is sent again: at least once, never lost.
                crate::ops::metrics::store_error(err.kind());
                tracing::warn!(event_id = %event.id, error = %err, "cannot record callback attempt");
            }
        }
    }
}
