//! Configuration, read once from environment variables and validated before anything starts.
//!
//! One module per section — [`server`], [`storage`], [`auth`], [`callbacks`], [`events`],
//! [`webhooks`], [`limits`] — each reading and validating its own variables; [`Config`]
//! composes them. Every problem is reported with the name of the variable at fault, so an
//! operator can fix the deployment without reading code.

pub mod auth;
pub mod callbacks;
pub mod events;
pub mod limits;
pub mod server;
pub mod storage;
pub mod webhooks;

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use serde::de::DeserializeOwned;

pub use auth::{JwtConfig, JwtKeyConfig, LegacyRoutesAuth, MIN_JWT_SECRET_LEN};
pub use callbacks::{
    CallbackConfig, DEFAULT_CALLBACK_CONCURRENCY, DEFAULT_CALLBACK_LEASE, DEFAULT_CALLBACK_TIMEOUT,
    MAX_CALLBACK_CONCURRENCY,
};
pub use limits::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_RATE_LIMIT_ACCOUNT, DEFAULT_RATE_LIMIT_IP, HttpConfig,
};
pub use server::{DEFAULT_LISTEN_ADDR, LogFormat, MAX_CREDIT_RELEASE_INTERVAL};
pub use storage::{DEFAULT_DATA_DIR, DEFAULT_DATABASE_TIMEOUT, StorageConfig};

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub storage: StorageConfig,
    /// Always known: the embedded store lives here, and so does a generated JWT key.
    pub data_dir: PathBuf,
    pub jwt: JwtConfig,
    pub legacy_routes_auth: LegacyRoutesAuth,
    pub callbacks: CallbackConfig,
    pub events: events::EventConfig,
    pub webhooks: webhooks::WebhookConfig,
    pub log_format: LogFormat,
    pub http: HttpConfig,
    /// How often the background worker releases the held credits that are due.
    pub credit_release_interval: Duration,
}

/// The environment's variables, as `(NAME, value)` pairs.
type Vars = [(String, String)];

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::from_pairs(&vars)
    }

    /// Validates variables given as `(NAME, value)` pairs; used by tests and tools.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self::from_pairs(&vars)
    }

    fn from_pairs(vars: &Vars) -> Result<Self, ConfigError> {
        let server = server::Server::read(vars)?;
        let storage = storage::Storage::read(vars)?;
        let auth = auth::Auth::read(vars, &storage.config)?;
        Ok(Self {
            listen_addr: server.listen_addr,
            storage: storage.config,
            data_dir: storage.data_dir,
            jwt: auth.jwt,
            legacy_routes_auth: auth.legacy_routes,
            callbacks: callbacks::read(vars)?,
            events: events::read(vars)?,
            webhooks: webhooks::read(vars)?,
            log_format: server.log_format,
            http: limits::read(vars)?,
            credit_release_interval: server.credit_release_interval,
        })
    }
}

/// A section's variables, as the struct `T` names them (all optional strings; the rest of the
/// environment is ignored). An empty variable counts as unset, as shells and compose files
/// often export `VAR=`.
fn section<T: DeserializeOwned>(vars: &Vars) -> Result<T, ConfigError> {
    let set = vars
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.clone(), value.trim().to_owned()));
    envy::from_iter(set).map_err(|e| ConfigError::new("environment", e.to_string()))
}

/// One of the named `choices`; the first when the variable is unset.
fn choice<T: Copy>(
    variable: &'static str,
    value: Option<&str>,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(choices[0].1);
    };
    choices
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            ConfigError::new(
                variable,
                format!("expected {}, got `{value}`", names.join(" or ")),
            )
        })
}

/// A duration above zero, or `default` when the variable is unset.
fn positive_duration(
    variable: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let duration = match value {
        Some(value) => parse_duration(variable, &value)?,
        None => default,
    };
    if duration.is_zero() {
        return Err(ConfigError::new(variable, "must be above 0"));
    }
    Ok(duration)
}

fn parse_count<T>(
    variable: &'static str,
    value: Option<String>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(value) = value else {
        return Ok(default);
    };
    let bad = || {
        ConfigError::new(
            variable,
            format!(
                "expected a whole number from {} to {}, got `{value}`",
                range.start(),
                range.end()
            ),
        )
    };
    let parsed: T = value.parse().map_err(|_| bad())?;
    if range.contains(&parsed) {
        Ok(parsed)
    } else {
        Err(bad())
    }
}

/// The items of a comma-separated list, trimmed, blanks dropped.
fn list(value: Option<String>) -> impl Iterator<Item = String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError::new(
            variable,
            format!("`{value}` is not a duration such as 500ms, 10s, 5m or 2h"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_embedded_store_and_a_generated_key() {
        let config = Config::from_vars([]).expect("empty environment is valid");
        assert_eq!(config.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
        assert!(matches!(config.storage, StorageConfig::Embedded { .. }));
        assert!(matches!(config.jwt.key, JwtKeyConfig::Generated));
        assert_eq!(config.legacy_routes_auth, LegacyRoutesAuth::Token);
        assert_eq!(config.http.rate_limit_account, 30);
        assert_eq!(config.http.rate_limit_ip, 120);
        assert_eq!(config.http.max_concurrent_requests, 1024);
        assert!(config.http.cors_allowed_origins.is_empty());
    }

    #[test]
    fn lists_of_proxies_and_origins() {
        let config = Config::from_vars([
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,::1"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example.com,http://localhost:3000",
            ),
            ("RATE_LIMIT_ACCOUNT", "0"),
        ])
        .expect("valid");
        assert_eq!(config.http.trusted_proxies.len(), 3);
        assert_eq!(config.http.cors_allowed_origins.len(), 2);
        assert_eq!(config.http.rate_limit_account, 0);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&str, &str); 24] = [
            ("WEBHOOK_ALLOW_PRIVATE", "yes"),
            ("WEBHOOK_ROTATION_OVERLAP", "0s"),
            ("WEBHOOK_DISABLE_AFTER", "a while"),
            ("KEEP_ALIVE_TIMEOUT", "0s"),
            ("RATE_LIMIT_ACCOUNT", "-1"),
            ("RATE_LIMIT_IP", "lots"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
            ("CORS_ALLOWED_ORIGINS", "app.example.com"),
            ("MAX_CONCURRENT_REQUESTS", "0"),
            ("HEADER_READ_TIMEOUT", "0s"),
            ("LISTEN_ADDR", "localhost"),
            ("DATABASE_URL", "postgres://x"),
            ("LEGACY_ROUTES_AUTH", "off"),
            ("LOG_FORMAT", "xml"),
            ("JWT_SECRET", "short"),
            ("ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP", "ftp://billing/%s"),
            ("CALLBACK_SIGNING_SECRET", "plain-secret"),
            ("CALLBACK_TIMEOUT", "soon"),
            ("CALLBACK_RETRY_SCHEDULE", "5s,later"),
            ("CALLBACK_CONCURRENCY", "0"),
            ("CALLBACK_LEASE", "5s"),
            ("CALLBACK_TIMEOUT", "0s"),
        ];
        for (name, value) in cases {
            let err = Config::from_vars([(name, value)]).expect_err(name);
            assert_eq!(err.variable, name, "{err}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn database_timeout_is_a_positive_duration() {
        let mongo = ("DATABASE_URL", "mongodb://localhost/x");
        let key = ("JWT_SECRET", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t");
        for bad in ["0s", "soon"] {
            let err = Config::from_vars([mongo, key, ("DATABASE_TIMEOUT", bad)]).expect_err(bad);
            assert_eq!(err.variable, "DATABASE_TIMEOUT");
        }
        let config = Config::from_vars([mongo, key]).expect("valid");
        assert!(matches!(
            config.storage,
            StorageConfig::Mongo { timeout, .. } if timeout == DEFAULT_DATABASE_TIMEOUT
        ));
    }

    #[test]
    fn mongo_mode_refuses_to_start_without_a_key() {
        let err =
            Config::from_vars([("DATABASE_URL", "mongodb://localhost/x")]).expect_err("no key");
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        let config = Config::from_vars([
            ("JWT_SECRET", secret),
            (
                "CALLBACK_SIGNING_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("DATABASE_URL", "mongodb://user:pw@db/x"),
        ])
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains(secret));
        assert!(!printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!printed.contains("pw@db"));
    }
}
