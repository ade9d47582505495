//! Removes the events older than `EVENT_RETENTION`, a little at a time: one batch per write,
//! every minute (on MongoDB a TTL index does it, and a pass removes nothing).

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::store::EventFeed;
use crate::clock::{self, Clock};

/// Events removed per write.
pub const SWEEP_BATCH: usize = 1000;
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

pub struct Sweeper {
    pub feed: Arc<dyn EventFeed>,
    pub clock: Arc<dyn Clock>,
    pub retention: chrono::Duration,
    pub interval: Duration,
}

impl Sweeper {
    pub async fn run(self, shutdown: CancellationToken) {
        clock::every(self.interval, &shutdown, || self.pass(&shutdown)).await;
    }

    /// Removes every expired event, a batch per write, until none is left or the service
    /// stops.
    async fn pass(&self, shutdown: &CancellationToken) {
        let before = self.clock.now() - self.retention;
        while !shutdown.is_cancelled() {
            match self.feed.sweep(before, SWEEP_BATCH).await {
                Ok(removed) if removed == SWEEP_BATCH => tokio::task::yield_now().await,
                Ok(_) => return,
                Err(err) => {
                    crate::ops::metrics::store_error(err.kind());
                    tracing::warn!(error = %err, "cannot remove expired events; retrying later");
                    return;
                }
            }
        }
    }
}
