//! The figures worker: folds the changes to the program and indicator figures that a store
//! writes beside each move (MongoDB) into their running totals, a batch at a time, so that a
//! read of the figures finds few changes left to add. Reads are exact without it; several
//! instances may run it at once (each fold is conditional on the total it read).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::store::IndicationStore;
use crate::clock::{self, Clock};

/// How long the worker waits once it has caught up with the writes.
pub const FOLD_INTERVAL: Duration = Duration::from_millis(500);
/// A fold of fewer changes than this has caught up: the worker waits for its next pass rather
/// than reading again at once, which under a steady trickle of writes would spend a round of
/// reads on every one or two changes. Reads add the changes not folded yet, so waiting costs
/// them only the changes of one interval.
const CAUGHT_UP: usize = 100;

pub struct FiguresWorker {
    pub users: Arc<dyn IndicationStore>,
    pub clock: Arc<dyn Clock>,
    pub interval: Duration,
}

impl FiguresWorker {
    /// Folds what is waiting, then again every `interval`, until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let failing = AtomicBool::new(false);
        clock::every(self.interval, &shutdown, || self.pass(&failing)).await;
    }

    /// One pass: batches until it has caught up, or the store fails (then the next pass
    /// retries).
    /// A store that stays down is logged once when it starts failing, not at every pass.
    async fn pass(&self, failing: &AtomicBool) {
        loop {
            match self.users.fold_figures(self.clock.now()).await {
                Ok(folded) => {
                    if failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("folding the figures again");
                    }
                    if folded > 0 {
                        tracing::debug!(folded, "figures folded");
                    }
                    if folded < CAUGHT_UP {
                        return;
                    }
                }
                Err(err) => {
                    if failing.swap(true, Ordering::Relaxed) {
                        tracing::debug!(error = %err, "cannot fold the figures");
                    } else {
                        tracing::warn!(error = %err, "cannot fold the figures; retrying");
                    }
                    return;
                }
            }
        }
    }
}
