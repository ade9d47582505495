//! The events section: how long the feed keeps events.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Vars, positive_duration, section};

pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct EventConfig {
    /// `EVENT_RETENTION`: events older than this are removed by themselves.
    pub retention: Duration,
}

#[derive(Deserialize)]
struct EventVars {
    event_retention: Option<String>,
}

pub(super) fn read(vars: &Vars) -> Result<EventConfig, ConfigError> {
    let EventVars { event_retention } = section(vars)?;
    Ok(EventConfig {
        retention: positive_duration("EVENT_RETENTION", event_retention, DEFAULT_EVENT_RETENTION)?,
    })
}
