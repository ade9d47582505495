//! The guard against server-side request forgery: an endpoint may not point the service at
//! itself, its network or the cloud's metadata service. A URL is checked when it is given, and
//! again at every connection: the HTTP client resolves names through [`GuardedResolver`], which
//! hands it only the addresses it checked, so a DNS answer cannot change between the check and
//! the connection. Redirects and proxies are off for the same reason.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is one an endpoint may not reach: loopback, link-local (the cloud
/// metadata service), private, shared (carrier-grade NAT), unspecified, broadcast or multicast.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 0.0.0.0/8 ("this network") and 100.64.0.0/10 (shared address space).
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 (unique local) and fe80::/10 (link-local).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// Why a URL cannot be an endpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("must be an http:// or https:// URL")]
    Scheme,
    #[error("points at a loopback, link-local, private or unspecified address")]
    Forbidden,
}

/// Checks a URL given for an endpoint: http(s), and unless private addresses are allowed, a
/// host that is not and does not resolve to a forbidden address. A name that does not resolve
/// now is accepted: its deliveries fail and retry until it does, and are checked then.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, UrlError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| UrlError::Scheme)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(UrlError::Scheme);
    }
    if allow_private {
        return Ok(url);
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if is_forbidden(IpAddr::V4(ip)) => Err(UrlError::Forbidden),
        Some(url::Host::Ipv6(ip)) if is_forbidden(IpAddr::V6(ip)) => Err(UrlError::Forbidden),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            let resolved = tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((name.to_owned(), port)),
            )
            .await;
            match resolved {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.iter().any(|addr| is_forbidden(addr.ip())) {
                        Err(UrlError::Forbidden)
                    } else {
                        Ok(url)
                    }
                }
                _ => Ok(url),
            }
        }
        _ => Ok(url),
    }
}

/// How long a check at creation waits for DNS.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a URL names a forbidden address literally (the client resolves no name for it, so
/// the sender checks it before connecting).
pub fn literal_is_forbidden(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_forbidden(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_forbidden(IpAddr::V6(ip)),
        _ => false,
    }
}

/// The resolver of the webhook client: the system's answer, less every forbidden address; a
/// name left with none fails to connect.
#[derive(Clone, Debug, Default)]
pub struct GuardedResolver;

/// The error of a name that resolves only to forbidden addresses.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to a loopback, link-local, private or unspecified address")]
pub struct ForbiddenAddress;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|addr| !is_forbidden(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(ForbiddenAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The guarded resolver, as the client builder takes it.
pub fn resolver() -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_forbidden(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_forbidden(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_by_scheme_and_address() {
        for bad in ["ftp://example.com/", "not a url", "http://"] {
            assert_eq!(check_url(bad, false).await, Err(UrlError::Scheme), "{bad}");
        }
        for private in [
            "http://127.0.0.1:8080/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://10.0.0.7/",
            "http://localhost:9/",
        ] {
            assert_eq!(
                check_url(private, false).await,
                Err(UrlError::Forbidden),
                "{private}"
            );
            assert!(check_url(private, true).await.is_ok(), "{private}");
        }
        assert!(check_url("https://93.184.216.34/hook", false).await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_hands_out_no_forbidden_address() {
        let name: Name = "localhost".parse().expect("a name");
        assert!(GuardedResolver.resolve(name).await.is_err());
    }
}
