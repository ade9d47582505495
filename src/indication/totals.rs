//! The figures worker: folds the changes to the program and indicator figures that a store
//! writes beside each move (MongoDB) into their running totals, a batch at a time, so that a
//! read of the figures finds few changes left to add. Reads are exact without it; several
//! instances may run it at once (each fold is conditional on the total it read).

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::store::IndicationStore;
use crate::clock::{self, Clock};

/// How long the worker waits when nothing was left to fold.
pub const FOLD_INTERVAL: Duration = Duration::from_millis(500);

pub struct FiguresWorker {
    pub users: Arc<dyn IndicationStore>,
    pub clock: Arc<dyn Clock>,
    pub interval: Duration,
}

impl FiguresWorker {
    /// Folds what is waiting, then again every `interval`, until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        clock::every(self.interval, &shutdown, || self.pass()).await;
    }

    /// One pass: batches until none is left, or the store fails (then the next pass retries).
    pub async fn pass(&self) {
        loop {
            match self.users.fold_figures(self.clock.now()).await {
                Ok(0) => return,
                Ok(folded) => tracing::debug!(folded, "figures folded"),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot fold the figures; retrying later");
                    return;
                }
            }
        }
    }
}
