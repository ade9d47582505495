//! Rate limits on the routes that look up or redeem referral codes (OWASP API6: codes are a
//! sensitive business flow), per end-user account and per client address, with `governor`.
//! Tokens with `admin` or `service` are not limited. Limits are per instance.
//!
//! A limited handler names [`CodeRateLimit`] first in its signature, so the limit is bound to
//! the handler itself: a renamed path keeps it.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use ipnet::IpNet;

use crate::{auth::Authenticator, config::HttpConfig, error::ApiError};

/// Forgotten keys are swept after this many checks, so memory follows the active clients.
const SWEEP_EVERY: u64 = 4096;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub struct RateLimits {
    account: Option<Keyed<String>>,
    ip: Option<Keyed<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
    checks: AtomicU64,
}

/// `per_minute` sustained, with bursts of a sixth of it (at least one request); `None` for 0.
fn quota(per_minute: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(per_minute.div_ceil(6)).unwrap_or(NonZeroU32::MIN);
    Some(Quota::per_minute(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(config: &HttpConfig) -> Self {
        Self {
            account: quota(config.rate_limit_account).map(RateLimiter::keyed),
            ip: quota(config.rate_limit_ip).map(RateLimiter::keyed),
            trusted_proxies: config.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        }
    }

    /// The client's address: the socket peer, or, when the peer is a trusted proxy, the
    /// nearest `X-Forwarded-For` hop that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer)
    }

    /// `Err(wait)` when the account or the address is over its limit.
    pub fn check(&self, ip: IpAddr, account: Option<&str>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(limiter) = &self.account {
                limiter.retain_recent();
            }
            if let Some(limiter) = &self.ip {
                limiter.retain_recent();
            }
        }
        let now = DefaultClock::default().now();
        if let (Some(limiter), Some(account)) = (&self.account, account) {
            limiter
                .check_key(&account.to_owned())
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        if let Some(limiter) = &self.ip {
            limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }
}

/// What the limit needs of the shared state: the limits, and the token check that tells
/// privileged callers and accounts apart.
#[derive(Clone)]
pub struct RateLimitState {
    pub limits: Arc<RateLimits>,
    pub auth: Arc<Authenticator>,
}

/// The code routes' limit, as an extractor: a handler that names it (first, before any other
/// check) answers 429 once the caller's account or address is over its limit.
pub struct CodeRateLimit;

impl<S> FromRequestParts<S> for CodeRateLimit
where
    RateLimitState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = RateLimitState::from_ref(state);
        let caller = state
            .auth
            .caller_of(&parts.headers, &mut parts.extensions)
            .ok();
        if caller.as_ref().is_some_and(|c| c.is_privileged()) {
            return Ok(Self);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        let ip = state.limits.client_ip(peer, &parts.headers);
        state
            .limits
            .check(ip, caller.as_ref().map(|c| c.sub.as_str()))
            .map(|()| Self)
            .map_err(|wait| ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(account: u32, ip: u32, proxies: &[&str]) -> RateLimits {
        RateLimits::new(&HttpConfig {
            rate_limit_account: account,
            rate_limit_ip: ip,
            trusted_proxies: proxies.iter().map(|p| p.parse().expect("cidr")).collect(),
            ..HttpConfig::default()
        })
    }

    #[test]
    fn an_account_over_its_burst_waits_and_others_do_not() {
        let limits = limits(30, 0, &[]);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..5 {
            assert_eq!(limits.check(ip, Some("ana")), Ok(()));
        }
        let wait = limits.check(ip, Some("ana")).expect_err("over the burst");
        assert!(wait <= Duration::from_secs(2), "{wait:?}");
        assert_eq!(limits.check(ip, Some("bo")), Ok(()));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = limits(0, 0, &[]);
        for _ in 0..1000 {
            assert_eq!(
                limits.check(IpAddr::from([10, 0, 0, 1]), Some("ana")),
                Ok(())
            );
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let limits = limits(0, 120, &["10.0.0.0/8"]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().expect("header"),
        );
        let proxy = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(
            limits.client_ip(proxy, &headers),
            IpAddr::from([203, 0, 113, 9])
        );
        let stranger = IpAddr::from([198, 51, 100, 7]);
        assert_eq!(limits.client_ip(stranger, &headers), stranger);
        assert_eq!(limits.client_ip(proxy, &HeaderMap::new()), proxy);
    }
}
