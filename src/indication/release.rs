//! The release worker: every `interval`, moves the held credits whose release date has come
//! (acquired, or back to pending when the total dropped), each in one atomic step with its
//! ledger entry and event, and wakes the callback worker when it queued any. Several instances
//! may run it at once: each move is conditional on the credit still being held.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{service, store::IndicationStore};
use crate::{
    callbacks::OutboxSignal,
    clock::{self, Clock},
    programs::ProgramStore,
};

pub struct ReleaseWorker {
    pub users: Arc<dyn IndicationStore>,
    pub programs: Arc<dyn ProgramStore>,
    pub clock: Arc<dyn Clock>,
    pub interval: Duration,
    pub signal: OutboxSignal,
}

impl ReleaseWorker {
    /// Releases what is due at once, then every `interval`, until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        clock::every(self.interval, &shutdown, || self.pass()).await;
    }

    /// One pass: every credit due now, a batch at a time.
    pub async fn pass(&self) {
        loop {
            let now = self.clock.now();
            match service::release_due(self.users.as_ref(), self.programs.as_ref(), now).await {
                Ok(outcome) => {
                    if outcome.acquired > 0 {
                        tracing::info!(acquired = outcome.acquired, "held credits released");
                        self.signal.wake();
                    }
                    if outcome.moved < service::RELEASE_BATCH {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot release held credits; retrying later");
                    return;
                }
            }
        }
    }
}
