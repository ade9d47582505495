//! The delivery worker: claims due events under a lease, a batch at a time, sends up to
//! `concurrency` at once, records the attempts that ended together in one write, and stops
//! between deliveries when told to. It wakes at once when an event is written in this process,
//! and polls for the rest (events written by other instances, retries falling due, leases
//! running out).

use std::{collections::VecDeque, sync::Arc, time::Duration};

use rand::RngExt;
use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    delivery::{Sender, Sent},
    domain::{AttemptOutcome, CreditEvent, RetrySchedule},
    store::{Attempt, CallbackOutbox, Lease},
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
    /// How long one attempt may take (`CALLBACK_TIMEOUT`).
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub poll_interval: Duration,
}

/// The most rounds of `concurrency` deliveries one claim covers.
const MAX_CLAIM_ROUNDS: u32 = 8;

impl WorkerSettings {
    /// How many events one claim takes: as many rounds of `concurrency` deliveries as fit in
    /// the lease with a round to spare when every attempt takes the whole timeout, so that no
    /// claimed event waits past its lease (where another instance would send it too).
    pub fn claim_batch(&self) -> usize {
        let rounds = self
            .lease
            .as_secs_f64()
            .div_euclid(self.timeout.as_secs_f64().max(0.001));
        // Bounded above, so the cast cannot truncate.
        let rounds = (rounds - 1.0).clamp(1.0, f64::from(MAX_CLAIM_ROUNDS)) as usize;
        self.concurrency.max(1).saturating_mul(rounds)
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
    ///
    /// Neither a claim nor a record holds deliveries back: attempts that end go to a recorder
    /// task, which writes all that have ended since its last write in one; claims refill a
    /// local queue while the queued events are sent.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let (ended, attempts) = mpsc::unbounded_channel::<Attempt>();
        let recorder = tokio::spawn(this.clone().record_until_closed(attempts));
        let mut in_flight = JoinSet::new();
        let mut queued: VecDeque<CreditEvent> = VecDeque::new();
        let concurrency = this.settings.concurrency.max(1);
        let batch = this.settings.claim_batch();
        tracing::info!(owner = %this.owner, batch, "callback worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let send = |queued: &mut VecDeque<CreditEvent>, in_flight: &mut JoinSet<()>| {
                while in_flight.len() < concurrency {
                    let Some(event) = queued.pop_front() else {
                        break;
                    };
                    let (worker, ended) = (this.clone(), ended.clone());
                    in_flight.spawn(async move {
                        // The recorder outlives every delivery; a send cannot fail before.
                        let _ = ended.send(worker.deliver(event).await);
                    });
                }
            };
            send(&mut queued, &mut in_flight);
            // One claim refills the local queue once it runs below a round of deliveries.
            if queued.len() < concurrency {
                let want = batch.saturating_sub(queued.len() + in_flight.len());
                if want > 0 {
                    queued.extend(this.claim(want).await);
                    send(&mut queued, &mut in_flight);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = this.signal.woken() => {}
                () = tokio::time::sleep(this.settings.poll_interval) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                    while in_flight.try_join_next().is_some() {}
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
        drop(ended);
        if recorder.await.is_err() {
            tracing::error!(owner = %this.owner, "the callback recorder stopped unexpectedly");
        }
        tracing::info!(owner = %this.owner, "callback worker stopped");
    }

    /// Records the attempts that end, all those waiting in one write, until every sender is
    /// gone.
    async fn record_until_closed(self: Arc<Self>, mut attempts: mpsc::UnboundedReceiver<Attempt>) {
        while let Some(first) = attempts.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = attempts.try_recv() {
                batch.push(more);
            }
            self.record(batch).await;
        }
    }

    /// Records attempts that ended, in one write where the store can.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize, lease: u64, timeout: u64) -> WorkerSettings {
        WorkerSettings {
            concurrency,
            lease: Duration::from_secs(lease),
            timeout: Duration::from_secs(timeout),
            schedule: RetrySchedule::default(),
            poll_interval: POLL_INTERVAL,
        }
    }

    #[test]
    fn a_claim_covers_the_rounds_that_fit_in_the_lease() {
        // 60 s lease, 10 s timeout: six rounds fit, five are claimed.
        assert_eq!(settings(8, 60, 10).claim_batch(), 40);
        // A lease barely longer than the timeout: one round.
        assert_eq!(settings(8, 15, 10).claim_batch(), 8);
        // A long lease: at most eight rounds.
        assert_eq!(settings(8, 3600, 1).claim_batch(), 64);
        assert_eq!(settings(0, 60, 10).claim_batch(), 5);
    }
}
