//! Configuration, read once from environment variables and validated before anything starts.
//!
//! Every problem is reported with the name of the variable at fault, so an operator can fix
//! the deployment without reading code.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use std::time::Duration;

use serde::Deserialize;

use crate::callbacks::{RetrySchedule, SigningSecret};

/// The variables as they come from the environment (all optional, all strings).
#[derive(Debug, Default, Deserialize)]
struct RawEnv {
    listen_addr: Option<String>,
    database_url: Option<String>,
    database_timeout: Option<String>,
    data_dir: Option<String>,
    endpoint_callback_credit_on_signup: Option<String>,
    callback_signing_secret: Option<String>,
    callback_timeout: Option<String>,
    callback_retry_schedule: Option<String>,
    callback_concurrency: Option<String>,
    callback_lease: Option<String>,
    legacy_routes_auth: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    log_format: Option<String>,
    rate_limit_account: Option<String>,
    rate_limit_ip: Option<String>,
    trusted_proxies: Option<String>,
    cors_allowed_origins: Option<String>,
    max_concurrent_requests: Option<String>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    credit_release_interval: Option<String>,
}

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

/// Where the records live.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// MongoDB through the official driver; the URL may hold credentials, so it is never printed.
    /// `timeout` bounds finding a server and every call to it: past it, requests get a 503.
    Mongo { url: String, timeout: Duration },
    /// The embedded store in this directory.
    Embedded { data_dir: PathBuf },
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mongo { timeout, .. } => f
                .debug_struct("Mongo")
                .field("url", &"<redacted>")
                .field("timeout", timeout)
                .finish(),
            Self::Embedded { data_dir } => f
                .debug_struct("Embedded")
                .field("data_dir", data_dir)
                .finish(),
        }
    }
}

/// The key that verifies tokens. Secrets are redacted from `Debug`.
#[derive(Clone)]
pub enum JwtKeyConfig {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 or ES256 with a PEM public key (the algorithm follows the key type).
    PublicKeyPem(String),
    /// No key configured: in embedded mode one is generated and kept in `DATA_DIR`.
    Generated,
}

impl fmt::Debug for JwtKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
            Self::Generated => f.write_str("Generated"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub key: JwtKeyConfig,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Whether the Part A (indication program) routes require a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyRoutesAuth {
    /// A token with role `service` or `admin` (the default).
    Token,
    /// No authentication, for deployments that keep those routes on a private network.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Part C: where credit events go and how their delivery is paced. `SigningSecret` redacts
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

/// Part D: what the HTTP front of the service admits.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Requests a minute for one end-user account on the rate-limited routes; 0: no limit.
    pub rate_limit_account: u32,
    /// Requests a minute from one client address on the rate-limited routes; 0: no limit.
    pub rate_limit_ip: u32,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed to call the API; empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<axum::http::HeaderValue>,
    /// Requests served at once; beyond, 503 at once.
    pub max_concurrent_requests: usize,
    /// A connection whose request head has not all arrived within this of its first byte is
    /// closed.
    pub header_read_timeout: Duration,
    /// A keep-alive connection waiting this long for its next request is closed.
    pub keep_alive_timeout: Duration,
}

pub const DEFAULT_RATE_LIMIT_ACCOUNT: u32 = 30;
pub const DEFAULT_RATE_LIMIT_IP: u32 = 120;
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            rate_limit_account: DEFAULT_RATE_LIMIT_ACCOUNT,
            rate_limit_ip: DEFAULT_RATE_LIMIT_IP,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
        }
    }
}

pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CALLBACK_CONCURRENCY: usize = 8;
pub const MAX_CALLBACK_CONCURRENCY: usize = 256;
pub const DEFAULT_CALLBACK_LEASE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub storage: StorageConfig,
    /// Always known: the embedded store lives here, and so does a generated JWT key.
    pub data_dir: PathBuf,
    pub jwt: JwtConfig,
    pub legacy_routes_auth: LegacyRoutesAuth,
    pub callbacks: CallbackConfig,
    pub log_format: LogFormat,
    pub http: HttpConfig,
    /// How often the background worker releases the held credits that are due.
    pub credit_release_interval: Duration,
}

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Held credits are released at most this long after they fall due.
pub const MAX_CREDIT_RELEASE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a request waits for MongoDB to answer before it gets a 503.
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_DATA_DIR: &str = "./data";
/// HS256 secrets shorter than this are refused: a short shared secret can be brute-forced.
pub const MIN_JWT_SECRET_LEN: usize = 32;

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw: RawEnv = envy::from_env().map_err(|e| match e {
            envy::Error::MissingValue(name) => {
                ConfigError::new("environment", format!("missing {name}"))
            }
            envy::Error::Custom(msg) => ConfigError::new("environment", msg),
        })?;
        Self::from_raw(raw)
    }

    /// Validates variables given as `(NAME, value)` pairs; used by tests and tools.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let raw: RawEnv =
            envy::from_iter(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())))
                .map_err(|e| ConfigError::new("environment", e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawEnv) -> Result<Self, ConfigError> {
        let listen_addr = parse_listen_addr(non_empty(raw.listen_addr).as_deref())?;
        let data_dir =
            PathBuf::from(non_empty(raw.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()));
        let storage = match non_empty(raw.database_url) {
            None => StorageConfig::Embedded {
                data_dir: data_dir.clone(),
            },
            Some(url) if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
                let timeout = positive_duration(
                    "DATABASE_TIMEOUT",
                    non_empty(raw.database_timeout),
                    DEFAULT_DATABASE_TIMEOUT,
                )?;
                StorageConfig::Mongo { url, timeout }
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with mongodb:// or mongodb+srv:// (leave it unset for the embedded store)",
                ));
            }
        };
        let jwt = JwtConfig {
            key: parse_jwt_key(
                non_empty(raw.jwt_secret),
                non_empty(raw.jwt_public_key),
                &storage,
            )?,
            issuer: non_empty(raw.jwt_issuer),
            audience: non_empty(raw.jwt_audience),
        };
        let legacy_routes_auth = match non_empty(raw.legacy_routes_auth).as_deref() {
            None | Some("token") => LegacyRoutesAuth::Token,
            Some("none") => LegacyRoutesAuth::None,
            Some(other) => {
                return Err(ConfigError::new(
                    "LEGACY_ROUTES_AUTH",
                    format!("expected `token` or `none`, got `{other}`"),
                ));
            }
        };
        let log_format = match non_empty(raw.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("expected `text` or `json`, got `{other}`"),
                ));
            }
        };
        let endpoint = non_empty(raw.endpoint_callback_credit_on_signup);
        if let Some(endpoint) = &endpoint {
            validate_callback_url(endpoint)?;
        }
        Ok(Self {
            listen_addr,
            storage,
            data_dir,
            jwt,
            legacy_routes_auth,
            callbacks: parse_callbacks(
                endpoint,
                non_empty(raw.callback_signing_secret),
                non_empty(raw.callback_timeout),
                non_empty(raw.callback_retry_schedule),
                non_empty(raw.callback_concurrency),
                non_empty(raw.callback_lease),
            )?,
            log_format,
            http: parse_http(
                non_empty(raw.rate_limit_account),
                non_empty(raw.rate_limit_ip),
                non_empty(raw.trusted_proxies),
                non_empty(raw.cors_allowed_origins),
                non_empty(raw.max_concurrent_requests),
                non_empty(raw.header_read_timeout),
                non_empty(raw.keep_alive_timeout),
            )?,
            credit_release_interval: release_interval(non_empty(raw.credit_release_interval))?,
        })
    }
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

fn parse_http(
    rate_limit_account: Option<String>,
    rate_limit_ip: Option<String>,
    trusted_proxies: Option<String>,
    cors_allowed_origins: Option<String>,
    max_concurrent_requests: Option<String>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
) -> Result<HttpConfig, ConfigError> {
    let per_minute = 0..=1_000_000;
    let trusted_proxies = list(trusted_proxies)
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("`{item}` is not an address or a CIDR block (10.0.0.0/8)"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let cors_allowed_origins = list(cors_allowed_origins)
        .map(|origin| {
            let valid = url::Url::parse(&origin).ok().is_some_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && !origin.ends_with('/')
            });
            valid
                .then(|| axum::http::HeaderValue::from_str(&origin).ok())
                .flatten()
                .ok_or_else(|| {
                    ConfigError::new(
                        "CORS_ALLOWED_ORIGINS",
                        format!("`{origin}` is not an origin (https://app.example.com, no path)"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let header_read_timeout = positive_duration(
        "HEADER_READ_TIMEOUT",
        header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT,
    )?;
    let keep_alive_timeout = positive_duration(
        "KEEP_ALIVE_TIMEOUT",
        keep_alive_timeout,
        DEFAULT_KEEP_ALIVE_TIMEOUT,
    )?;
    Ok(HttpConfig {
        rate_limit_account: parse_count(
            "RATE_LIMIT_ACCOUNT",
            rate_limit_account,
            DEFAULT_RATE_LIMIT_ACCOUNT,
            per_minute.clone(),
        )?,
        rate_limit_ip: parse_count(
            "RATE_LIMIT_IP",
            rate_limit_ip,
            DEFAULT_RATE_LIMIT_IP,
            per_minute,
        )?,
        trusted_proxies,
        cors_allowed_origins,
        max_concurrent_requests: parse_count(
            "MAX_CONCURRENT_REQUESTS",
            max_concurrent_requests,
            DEFAULT_MAX_CONCURRENT_REQUESTS,
            1..=1_000_000,
        )?,
        header_read_timeout,
        keep_alive_timeout,
    })
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

/// An empty variable counts as unset, as shells and compose files often export `VAR=`.
fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
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

fn parse_jwt_key(
    secret: Option<String>,
    public_key: Option<String>,
    storage: &StorageConfig,
) -> Result<JwtKeyConfig, ConfigError> {
    match (secret, public_key) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "JWT_SECRET",
            "set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY (RS256/ES256), not both",
        )),
        (Some(secret), None) if secret.len() < MIN_JWT_SECRET_LEN => Err(ConfigError::new(
            "JWT_SECRET",
            format!("must be at least {MIN_JWT_SECRET_LEN} characters long"),
        )),
        (Some(secret), None) => Ok(JwtKeyConfig::Secret(secret)),
        (None, Some(pem)) => Ok(JwtKeyConfig::PublicKeyPem(read_pem(pem)?)),
        (None, None) => match storage {
            StorageConfig::Embedded { .. } => Ok(JwtKeyConfig::Generated),
            StorageConfig::Mongo { .. } => Err(ConfigError::new(
                "JWT_SECRET",
                "with DATABASE_URL set, JWT_SECRET or JWT_PUBLIC_KEY is required",
            )),
        },
    }
}

/// `JWT_PUBLIC_KEY` holds the PEM text itself or the path of a PEM file.
fn read_pem(value: String) -> Result<String, ConfigError> {
    if value.starts_with("-----BEGIN") {
        return Ok(value.replace("\\n", "\n"));
    }
    std::fs::read_to_string(&value).map_err(|e| {
        ConfigError::new(
            "JWT_PUBLIC_KEY",
            format!("neither PEM text nor a readable file ({e})"),
        )
    })
}

fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        ConfigError::new(
            variable,
            format!("`{value}` is not a duration such as 500ms, 10s, 5m or 2h"),
        )
    })
}

fn parse_callbacks(
    endpoint: Option<String>,
    secret: Option<String>,
    timeout: Option<String>,
    schedule: Option<String>,
    concurrency: Option<String>,
    lease: Option<String>,
) -> Result<CallbackConfig, ConfigError> {
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
        let cases: [(&str, &str); 21] = [
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
