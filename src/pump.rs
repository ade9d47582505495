//! The loop every delivery worker runs: claim a batch of due items under a lease, send up to
//! `concurrency` at once, and record the attempts that ended together in one write, until told
//! to stop. Part C's callbacks and each webhook endpoint run it over their own queue.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

/// A wake-up call for a worker: rung after a write that queued something for it.
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

/// A queue of deliveries: what the loop claims, sends and records.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// One claimed delivery.
    type Item: Send + 'static;
    /// What one attempt came to, for [`Queue::record`].
    type Ended: Send + 'static;

    /// Claims up to `limit` due items under a lease; none when the store fails (the failure is
    /// the queue's to report).
    async fn claim(&self, limit: usize) -> Vec<Self::Item>;

    /// Sends one attempt.
    async fn send(&self, item: Self::Item) -> Self::Ended;

    /// Records attempts that ended, in one write where the store can.
    async fn record(&self, ended: Vec<Self::Ended>);
}

/// How a loop paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Items one claim takes.
    pub batch: usize,
    /// How often an idle loop looks for due items it was not woken for.
    pub poll_interval: Duration,
}

/// Delivers until `shutdown` is cancelled, then lets the attempts in flight finish, records
/// them and returns. Items claimed but not yet sent are left to their leases.
///
/// Neither a claim nor a record holds deliveries back: attempts that end go to a recorder task,
/// which writes all that have ended since its last write in one; claims refill a local queue
/// while the queued items are sent.
pub async fn run<Q: Queue>(
    queue: Arc<Q>,
    pace: Pace,
    signal: Option<OutboxSignal>,
    shutdown: CancellationToken,
) {
    let (ended, attempts) = mpsc::unbounded_channel::<Q::Ended>();
    let recorder = tokio::spawn(record_until_closed(queue.clone(), attempts));
    let mut in_flight = JoinSet::new();
    let mut queued: VecDeque<Q::Item> = VecDeque::new();
    let concurrency = pace.concurrency.max(1);
    let woken = async || match &signal {
        Some(signal) => signal.woken().await,
        None => std::future::pending().await,
    };
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let send = |queued: &mut VecDeque<Q::Item>, in_flight: &mut JoinSet<()>| {
            while in_flight.len() < concurrency {
                let Some(item) = queued.pop_front() else {
                    break;
                };
                let (queue, ended) = (queue.clone(), ended.clone());
                in_flight.spawn(async move {
                    // The recorder outlives every attempt; a send cannot fail before.
                    let _ = ended.send(queue.send(item).await);
                });
            }
        };
        send(&mut queued, &mut in_flight);
        // One claim refills the local queue once it runs below a round of deliveries.
        if queued.len() < concurrency {
            let want = pace.batch.saturating_sub(queued.len() + in_flight.len());
            if want > 0 {
                queued.extend(queue.claim(want).await);
                send(&mut queued, &mut in_flight);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = woken() => {}
            () = tokio::time::sleep(pace.poll_interval) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                while in_flight.try_join_next().is_some() {}
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
    drop(ended);
    if recorder.await.is_err() {
        tracing::error!("a delivery recorder stopped unexpectedly");
    }
}

/// Records the attempts that end, all those waiting in one write, until every sender is gone.
async fn record_until_closed<Q: Queue>(
    queue: Arc<Q>,
    mut attempts: mpsc::UnboundedReceiver<Q::Ended>,
) {
    while let Some(first) = attempts.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = attempts.try_recv() {
            batch.push(more);
        }
        queue.record(batch).await;
    }
}

/// The most rounds of `concurrency` deliveries one claim covers.
const MAX_CLAIM_ROUNDS: u32 = 8;

/// How many items one claim takes: as many rounds of `concurrency` attempts as fit in the
/// lease with a round to spare when every attempt takes the whole timeout, so that no claimed
/// item waits past its lease (where another instance would send it too).
pub fn claim_batch(concurrency: usize, lease: Duration, timeout: Duration) -> usize {
    let rounds = lease
        .as_secs_f64()
        .div_euclid(timeout.as_secs_f64().max(0.001));
    // Bounded above, so the cast cannot truncate.
    let rounds = (rounds - 1.0).clamp(1.0, f64::from(MAX_CLAIM_ROUNDS)) as usize;
    concurrency.max(1).saturating_mul(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_covers_the_rounds_that_fit_in_the_lease() {
        let secs = Duration::from_secs;
        // 60 s lease, 10 s timeout: six rounds fit, five are claimed.
        assert_eq!(claim_batch(8, secs(60), secs(10)), 40);
        // A lease barely longer than the timeout: one round.
        assert_eq!(claim_batch(8, secs(15), secs(10)), 8);
        // A long lease: at most eight rounds.
        assert_eq!(claim_batch(8, secs(3600), secs(1)), 64);
        assert_eq!(claim_batch(0, secs(60), secs(10)), 5);
    }
}
