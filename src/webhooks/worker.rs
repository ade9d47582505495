//! The webhook worker. It turns the feed's events into deliveries (one per matching endpoint,
//! from the position it reached, kept in the store so that any instance carries on where
//! another stopped), and runs one delivery lane per enabled endpoint: each lane claims, sends
//! and records its own endpoint's deliveries with the loop of [`crate::pump`], so a slow or
//! dead endpoint holds back no other.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    domain::{self, Answer, Delivery, Ended, WebhookEndpoint},
    sender::WebhookClient,
    store::{Health, WebhookStore},
};
use crate::{
    callbacks::{RetrySchedule, domain::AttemptOutcome, store::Lease},
    clock::Clock,
    events::{EventFeed, FeedQuery},
    ops::metrics,
    pump::{self, OutboxSignal, Pace, Queue},
};

/// How often the worker looks for new events and for changed endpoints.
pub const TICK: Duration = Duration::from_millis(500);
/// Events read from the feed per fan-out.
const FAN_OUT_PAGE: usize = 1000;
/// How often finished deliveries older than the retention are swept (embedded store).
const SWEEP_EVERY: u32 = 120;
const SWEEP_BATCH: usize = 1000;

#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub concurrency: usize,
    pub lease: Duration,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// `WEBHOOK_DISABLE_AFTER`.
    pub disable_after: Duration,
    /// `EVENT_RETENTION`: deliveries are kept as long as events.
    pub retention: Duration,
    pub tick: Duration,
}

pub struct WebhookWorker {
    pub store: Arc<dyn WebhookStore>,
    pub feed: Arc<dyn EventFeed>,
    pub client: WebhookClient,
    pub settings: WebhookSettings,
    pub clock: Arc<dyn Clock>,
    /// Names this worker's leases; unique per worker.
    pub owner: String,
}

struct Running {
    lane: Arc<Lane>,
    stop: CancellationToken,
    task: AbortHandle,
}

impl WebhookWorker {
    /// Fans out and delivers until `shutdown` is cancelled; then stops every lane between
    /// attempts and returns. The lanes are tasks of this one (a `JoinSet`): dropped with it.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut lanes: HashMap<String, Running> = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut ticks: u32 = 0;
        loop {
            let endpoints = match this.store.webhooks().await {
                Ok(endpoints) => endpoints,
                Err(err) => {
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, "cannot read webhook endpoints; retrying later");
                    Vec::new()
                }
            };
            metrics::webhook_endpoints_disabled(endpoints.iter().filter(|e| !e.enabled).count());
            while tasks.try_join_next().is_some() {}
            this.steer(&mut lanes, &mut tasks, &endpoints, &shutdown);
            if !endpoints.is_empty() {
                this.fan_out(&endpoints, &lanes, &shutdown).await;
            }
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(SWEEP_EVERY) {
                this.sweep().await;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(this.settings.tick) => {}
            }
        }
        for running in lanes.into_values() {
            running.stop.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Starts a lane for each enabled endpoint without one, stops those of endpoints deleted or
    /// switched off, and hands the others their endpoint as it now is.
    fn steer(
        self: &Arc<Self>,
        lanes: &mut HashMap<String, Running>,
        tasks: &mut JoinSet<()>,
        endpoints: &[WebhookEndpoint],
        shutdown: &CancellationToken,
    ) {
        lanes.retain(|id, running| {
            let keep = endpoints.iter().any(|e| &e.id == id && e.enabled);
            if !keep {
                running.stop.cancel();
            }
            keep && !running.task.is_finished()
        });
        for endpoint in endpoints.iter().filter(|e| e.enabled) {
            if let Some(running) = lanes.get(&endpoint.id) {
                running.lane.update(endpoint.clone());
                continue;
            }
            let lane = Arc::new(Lane {
                endpoint: RwLock::new(Arc::new(endpoint.clone())),
                off: AtomicBool::new(false),
                worker: self.clone(),
                signal: OutboxSignal::default(),
            });
            let stop = shutdown.child_token();
            let pace = Pace {
                concurrency: self.settings.concurrency,
                batch: pump::claim_batch(
                    self.settings.concurrency,
                    self.settings.lease,
                    self.settings.timeout,
                ),
                poll_interval: self.settings.tick,
            };
            let task = tasks.spawn(pump::run(
                lane.clone(),
                pace,
                Some(lane.signal.clone()),
                stop.clone(),
            ));
            lanes.insert(endpoint.id.clone(), Running { lane, stop, task });
        }
    }

    /// Turns every event written since the stored position into deliveries, a page at a time,
    /// and wakes the lanes that got some.
    async fn fan_out(
        &self,
        endpoints: &[WebhookEndpoint],
        lanes: &HashMap<String, Running>,
        shutdown: &CancellationToken,
    ) {
        let retention =
            chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        while !shutdown.is_cancelled() {
            let now = self.clock.now();
            let page = async {
                let after = self.store.fan_out_position().await?;
                let page = self
                    .feed
                    .feed(FeedQuery {
                        types: &[],
                        after,
                        limit: FAN_OUT_PAGE,
                        now,
                        retention,
                    })
                    .await?;
                if page.next == after {
                    return Ok(false);
                }
                let deliveries: Vec<Delivery> = page
                    .events
                    .iter()
                    .flat_map(|event| {
                        endpoints
                            .iter()
                            .filter(|endpoint| endpoint.wants(event))
                            .map(move |endpoint| Delivery::of(endpoint, event, now))
                    })
                    .collect();
                let woken: Vec<String> = deliveries.iter().map(|d| d.endpoint_id.clone()).collect();
                let keep_until = now.checked_add_signed(retention).unwrap_or(now);
                self.store
                    .fan_out(deliveries, page.next, keep_until)
                    .await?;
                for id in woken {
                    if let Some(running) = lanes.get(&id) {
                        running.lane.signal.wake();
                    }
                }
                Ok::<_, crate::storage::StoreError>(page.events.len() >= FAN_OUT_PAGE)
            };
            match page.await {
                Ok(true) => continue,
                Ok(false) => return,
                Err(err) => {
                    metrics::store_error(err.kind());
                    tracing::warn!(error = %err, "cannot turn events into webhook deliveries; retrying later");
                    return;
                }
            }
        }
    }

    async fn sweep(&self) {
        let retention =
            chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let before = now.checked_sub_signed(retention).unwrap_or(now);
        if let Err(err) = self.store.sweep_deliveries(before, SWEEP_BATCH).await {
            metrics::store_error(err.kind());
            tracing::warn!(error = %err, "cannot sweep old webhook deliveries");
        }
    }

    fn lease(&self, now: DateTime<Utc>) -> Lease {
        Lease::of(&self.owner, now, self.settings.lease)
    }
}

/// The deliveries of one endpoint.
struct Lane {
    /// The endpoint as last read: its URL and secrets may change while the lane runs.
    endpoint: RwLock<Arc<WebhookEndpoint>>,
    /// Set once the endpoint is switched off by an answer: the lane claims and sends no more.
    off: AtomicBool,
    worker: Arc<WebhookWorker>,
    signal: OutboxSignal,
}

impl Lane {
    fn endpoint(&self) -> Arc<WebhookEndpoint> {
        self.endpoint
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, endpoint: WebhookEndpoint) {
        *self
            .endpoint
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(endpoint);
    }

    /// Keeps the endpoint's health in the store (one write when it changes, none per delivery
    /// while it stays healthy) and switches the lane off when the endpoint is.
    async fn note(&self, endpoint: &WebhookEndpoint, answer: &Answer, at: DateTime<Utc>) {
        let disable_after = chrono::Duration::from_std(self.worker.settings.disable_after)
            .unwrap_or(chrono::Duration::MAX);
        let mut marks = Vec::new();
        match answer {
            Answer::Accepted { .. } if endpoint.failing_since.is_some() => {
                marks.push(Health::Healthy);
                self.update(WebhookEndpoint {
                    failing_since: None,
                    ..endpoint.clone()
                });
            }
            Answer::Failed { .. } if endpoint.failing_since.is_none() => {
                marks.push(Health::Failing(at));
                self.update(WebhookEndpoint {
                    failing_since: Some(at),
                    ..endpoint.clone()
                });
            }
            _ => {}
        }
        if let Some(reason) = domain::health_after(endpoint, answer, at, disable_after) {
            self.off.store(true, Ordering::SeqCst);
            marks.push(Health::Disabled(reason));
            tracing::warn!(webhook = %endpoint.id, ?reason, "webhook endpoint switched off");
        }
        for mark in marks {
            if let Err(err) = self.worker.store.mark_webhook(&endpoint.id, mark).await {
                metrics::store_error(err.kind());
                tracing::warn!(error = %err, webhook = %endpoint.id, "cannot record the endpoint's health");
            }
        }
    }
}

#[async_trait]
impl Queue for Lane {
    type Item = Delivery;
    type Ended = Ended;

    async fn claim(&self, limit: usize) -> Vec<Delivery> {
        if self.off.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let endpoint = self.endpoint();
        let now = self.worker.clock.now();
        match self
            .worker
            .store
            .claim_deliveries(&endpoint.id, &self.worker.lease(now), limit)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                metrics::store_error(err.kind());
                tracing::warn!(error = %err, "cannot claim webhook deliveries; retrying later");
                Vec::new()
            }
        }
    }

    async fn send(&self, delivery: Delivery) -> Ended {
        let now = || self.worker.clock.now();
        if self.off.load(Ordering::SeqCst) {
            // Claimed before the endpoint was switched off: handed back unsent, to wait.
            return Ended {
                delivery_id: delivery.id,
                at: now(),
                status: None,
                sent: false,
                outcome: AttemptOutcome::Retry {
                    error: String::new(),
                    next_attempt_at: delivery.next_attempt_at,
                },
            };
        }
        let endpoint = self.endpoint();
        let answer = self
            .worker
            .client
            .post(&endpoint, &delivery.event_id, &delivery.body, now())
            .await;
        let at = now();
        self.note(&endpoint, &answer, at).await;
        let outcome = match answer {
            // Waits, due at once, for the endpoint to be switched on again.
            Answer::Gone => AttemptOutcome::Retry {
                error: "HTTP 410: the endpoint is gone".to_owned(),
                next_attempt_at: at,
            },
            ref answer => domain::outcome(
                &self.worker.settings.schedule,
                delivery.attempts.saturating_add(1),
                answer,
                at,
                rand::rng().random::<f64>(),
            ),
        };
        metrics::webhook_delivery(match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
        });
        Ended {
            delivery_id: delivery.id,
            at,
            status: match answer {
                Answer::Accepted { status } => Some(status),
                Answer::Gone => Some(410),
                Answer::Failed { status, .. } => status,
            },
            sent: true,
            outcome,
        }
    }

    async fn record(&self, ended: Vec<Ended>) {
        let count = ended.len();
        match self
            .worker
            .store
            .record_deliveries(&self.worker.owner, ended)
            .await
        {
            Ok(recorded) if recorded < count => {
                tracing::warn!(
                    lost = count - recorded,
                    "leases lost before the webhook attempts were recorded"
                );
            }
            Ok(_) => {}
            Err(err) => {
                metrics::store_error(err.kind());
                tracing::warn!(error = %err, count, "cannot record webhook attempts");
            }
        }
    }
}
