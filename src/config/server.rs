//! The server section: where it listens, how it logs, how often held credits are released.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use serde::Deserialize;

use super::{ConfigError, Vars, choice, positive_duration, section};

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Held credits are released at most this long after they fall due.
pub const MAX_CREDIT_RELEASE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Deserialize)]
struct ServerVars {
    listen_addr: Option<String>,
    log_format: Option<String>,
    credit_release_interval: Option<String>,
}

pub(super) struct Server {
    pub listen_addr: SocketAddr,
    pub log_format: LogFormat,
    pub credit_release_interval: Duration,
}

impl Server {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let raw: ServerVars = section(vars)?;
        let log_format = choice(
            "LOG_FORMAT",
            raw.log_format.as_deref(),
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )?;
        Ok(Self {
            listen_addr: parse_listen_addr(raw.listen_addr.as_deref())?,
            log_format,
            credit_release_interval: release_interval(raw.credit_release_interval)?,
        })
    }
}

fn parse_listen_addr(value: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or(DEFAULT_LISTEN_ADDR);
    SocketAddr::from_str(value).map_err(|_| {
        ConfigError::new(
            "LISTEN_ADDR",
            format!("`{value}` is not a socket address such as 127.0.0.1:8080"),
        )
    })
}

/// Above zero and at most a minute (the contract promises a release within a minute of its
/// due time); a minute by default.
fn release_interval(value: Option<String>) -> Result<Duration, ConfigError> {
    let interval = positive_duration(
        "CREDIT_RELEASE_INTERVAL",
        value,
        MAX_CREDIT_RELEASE_INTERVAL,
    )?;
    if interval > MAX_CREDIT_RELEASE_INTERVAL {
        return Err(ConfigError::new(
            "CREDIT_RELEASE_INTERVAL",
            "must be at most 1m: held credits are released within a minute of their release date",
        ));
    }
    Ok(interval)
}
