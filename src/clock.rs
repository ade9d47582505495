//! Timestamps are kept to the millisecond, the precision MongoDB stores, so that both
//! backends return the same values.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_util::sync::CancellationToken;

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// `2026-11-21T17:03:55.123Z`, the form every timestamp of the API takes.
pub fn rfc3339_millis_string(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`rfc3339_millis_string`] for serde (`#[serde(with = "clock::rfc3339_millis")]`).
pub mod rfc3339_millis {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339_millis_string(*at))
    }
}

/// Where background work reads the time, so that tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time, to the millisecond.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// The real time moved by an offset that can be advanced: background work run on it behaves
/// as if that much time had passed (tests use it to reach release dates days away).
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ShiftedClock {
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
            )
    }
}

/// Runs `pass` at once, then again `interval` after each one ends, until `shutdown` is
/// cancelled: the schedule of the background workers that poll.
pub async fn every<F, Fut>(interval: std::time::Duration, shutdown: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        pass().await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
