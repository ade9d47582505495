//! The callbacks section: where credit events go, how they are signed, and how their delivery
//! is paced.

use std::{fmt, time::Duration};

use serde::Deserialize;

use super::{ConfigError, Vars, parse_duration, positive_duration, section};
use crate::callbacks::{RetrySchedule, SigningSecret};

pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CALLBACK_CONCURRENCY: usize = 8;
pub const MAX_CALLBACK_CONCURRENCY: usize = 256;
pub const DEFAULT_CALLBACK_LEASE: Duration = Duration::from_secs(60);

/// Credit callbacks: where credit events go and how their delivery is paced. `SigningSecret` redacts
/// itself from `Debug`; the endpoint may carry credentials, so it is printed as `<set>`.
#[derive(Clone)]
pub struct CallbackConfig {
    pub endpoint: Option<String>,
    pub signing_secret: Option<SigningSecret>,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub concurrency: usize,
    pub lease: Duration,
}

impl fmt::Debug for CallbackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackConfig")
            .field("endpoint", &self.endpoint.as_ref().map(|_| "<set>"))
            .field("signing_secret", &self.signing_secret)
            .field("timeout", &self.timeout)
            .field("schedule", &self.schedule)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .finish()
    }
}

#[derive(Deserialize)]
struct CallbackVars {
    endpoint_callback_credit_on_signup: Option<String>,
    callback_signing_secret: Option<String>,
    callback_timeout: Option<String>,
    callback_retry_schedule: Option<String>,
    callback_concurrency: Option<String>,
    callback_lease: Option<String>,
}

pub(super) fn read(vars: &Vars) -> Result<CallbackConfig, ConfigError> {
    let CallbackVars {
        endpoint_callback_credit_on_signup: endpoint,
        callback_signing_secret: secret,
        callback_timeout: timeout,
        callback_retry_schedule: schedule,
        callback_concurrency: concurrency,
        callback_lease: lease,
    } = section(vars)?;
    if let Some(endpoint) = &endpoint {
        validate_callback_url(endpoint)?;
    }
    let signing_secret = secret
        .map(|s| SigningSecret::parse(&s))
        .transpose()
        .map_err(|e| {
            ConfigError::new(
                "CALLBACK_SIGNING_SECRET",
                format!("{e} (a Standard Webhooks secret: `whsec_` + base64)"),
            )
        })?;
    let timeout = positive_duration("CALLBACK_TIMEOUT", timeout, DEFAULT_CALLBACK_TIMEOUT)?;
    let schedule = match schedule {
        Some(value) => RetrySchedule::new(
            value
                .split(',')
                .map(|wait| parse_duration("CALLBACK_RETRY_SCHEDULE", wait))
                .collect::<Result<_, _>>()?,
        ),
        None => RetrySchedule::default(),
    };
    let concurrency = match concurrency {
        Some(value) => value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CALLBACK_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    "CALLBACK_CONCURRENCY",
                    format!("`{value}` is not a whole number from 1 to {MAX_CALLBACK_CONCURRENCY}"),
                )
            })?,
        None => DEFAULT_CALLBACK_CONCURRENCY,
    };
    let lease = match lease {
        Some(value) => parse_duration("CALLBACK_LEASE", &value)?,
        None => DEFAULT_CALLBACK_LEASE,
    };
    if lease <= timeout {
        return Err(ConfigError::new(
            "CALLBACK_LEASE",
            format!(
                "must be longer than CALLBACK_TIMEOUT ({}), or a slow attempt could be sent twice at once",
                humantime::format_duration(timeout)
            ),
        ));
    }
    Ok(CallbackConfig {
        endpoint,
        signing_secret,
        timeout,
        schedule,
        concurrency,
        lease,
    })
}

fn validate_callback_url(value: &str) -> Result<(), ConfigError> {
    let candidate = value.replace("%s", "x").replace("{user_hash}", "x");
    match url::Url::parse(&candidate) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::new(
            "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP",
            "must be an http:// or https:// URL",
        )),
    }
}
