//! The limits section: what the HTTP front admits (rate limits, proxies, origins, connections).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Vars, list, parse_count, positive_duration, section};

/// What the HTTP front of the service admits.
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

#[derive(Deserialize)]
struct LimitVars {
    rate_limit_account: Option<String>,
    rate_limit_ip: Option<String>,
    trusted_proxies: Option<String>,
    cors_allowed_origins: Option<String>,
    max_concurrent_requests: Option<String>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
}

pub(super) fn read(vars: &Vars) -> Result<HttpConfig, ConfigError> {
    let LimitVars {
        rate_limit_account,
        rate_limit_ip,
        trusted_proxies,
        cors_allowed_origins,
        max_concurrent_requests,
        header_read_timeout,
        keep_alive_timeout,
    } = section(vars)?;
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
