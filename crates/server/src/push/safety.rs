//! Subscriptions make the server call URLs that clients chose, so Web Push endpoints must
//! be https and may not reach loopback, private or link-local addresses (no server-side
//! request forgery), unless `push_allow_http_endpoints` is on for tests and development.
//! Names are checked when they are resolved, on every connection, so a name that later
//! points inward (DNS rebinding) is refused too.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// Why an endpoint is refused, for the client; `None` when it is acceptable.
pub fn check_endpoint(endpoint: &str, allow_http: bool) -> Option<String> {
    let url = match reqwest::Url::parse(endpoint) {
        Ok(url) => url,
        Err(e) => return Some(format!("endpoint is not an absolute URL: {e}")),
    };
    if endpoint.len() > 2048 {
        return Some("endpoint is longer than 2048 characters".into());
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Some("endpoint must be an https URL".into()),
    }
    let Some(host) = url.host() else {
        return Some("endpoint has no host".into());
    };
    if allow_http {
        return None;
    }
    let ip = match host {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(name) if name == "localhost" || name.ends_with(".localhost") => {
            return Some("endpoint may not be a loopback address".into());
        }
        url::Host::Domain(_) => return None, // checked when resolved
    };
    (!is_public(ip)).then(|| "endpoint may not be a loopback or private address".into())
}

/// Is `ip` an address on the public internet?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link local
        }
    }
}

/// A resolver that only answers public addresses.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inward_endpoints_are_refused() {
        for bad in [
            "http://push.example.com/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost:8443/x",
            "ftp://push.example.com/x",
            "not a url",
        ] {
            assert!(check_endpoint(bad, false).is_some(), "{bad} was accepted");
        }
        assert_eq!(
            check_endpoint("https://fcm.googleapis.com/fcm/send/abc", false),
            None
        );
        assert_eq!(check_endpoint("https://8.8.8.8/x", false), None);
        assert_eq!(
            check_endpoint("http://127.0.0.1:9/x", true),
            None,
            "allowed for tests"
        );
        assert!(check_endpoint("ftp://127.0.0.1/x", true).is_some());
    }
}
