//! Subscriptions make the server call URLs that clients chose, so Web Push endpoints must
//! be https on port 443 and may not reach any address that is not plainly on the public
//! internet: loopback, private, link-local, shared, reserved, and the IPv6 forms that carry
//! an IPv4 address inside them (IPv4-compatible and -mapped, NAT64, 6to4, Teredo), whose
//! IPv4 part a gateway might route inward (no server-side request forgery). Proxies are off
//! for push (see `providers`). `push_allow_http_endpoints` lifts all of it for tests and
//! development. Names are checked when they are resolved, on every connection, so a name
//! that later points inward (DNS rebinding) is refused too.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
    if url.port().is_some_and(|port| port != 443) {
        return Some("endpoint must use the https port, 443".into());
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
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (192.0.0.170: NAT64 discovery)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // Forms that carry an IPv4 address are as public as that address. (`::` and `::1` fall
    // in the IPv4-compatible range and are refused through 0.0.0.0 and 0.0.0.1.)
    if s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        || s[..6] == [0, 0, 0, 0, 0, 0xffff] // IPv4-mapped
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    // NAT64 (RFC 6052)
    {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2])); // 6to4
    }
    !((s[0] == 0x2001 && (s[1] == 0 || s[1] == 0x0db8)) // Teredo (hides an IPv4), documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // local-use NAT64 (64:ff9b:1::/48)
        || s[..4] == [0x0100, 0, 0, 0] // discard only
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed inward)
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
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
            // IPv4 inside IPv6: compatible, NAT64, 6to4, Teredo.
            "https://[::7f00:1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[64:ff9b:1::1]/x",
            "https://[2002:7f00:1::]/x",
            "https://[2002:a00:1::1]/x",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
            // Site local, documentation, discard, outside global unicast.
            "https://[fec0::1]/x",
            "https://[2001:db8::1]/x",
            "https://[100::1]/x",
            "https://[4000::1]/x",
            // IPv4 special ranges.
            "https://192.0.0.170/x",
            "https://192.88.99.1/x",
            "https://100.64.0.1/x",
            "https://0.1.2.3/x",
            "https://240.0.0.1/x",
            // Any port but https's.
            "https://push.example.com:8443/x",
            "https://8.8.8.8:22/x",
        ] {
            assert!(check_endpoint(bad, false).is_some(), "{bad} was accepted");
        }
        assert_eq!(
            check_endpoint("https://fcm.googleapis.com/fcm/send/abc", false),
            None
        );
        assert_eq!(check_endpoint("https://8.8.8.8/x", false), None);
        assert_eq!(check_endpoint("https://8.8.8.8:443/x", false), None);
        assert_eq!(check_endpoint("https://[2606:4700::1111]/x", false), None);
        assert_eq!(
            check_endpoint("https://[64:ff9b::808:808]/x", false),
            None,
            "NAT64 of a public address"
        );
        assert_eq!(
            check_endpoint("https://[2002:808:808::1]/x", false),
            None,
            "6to4 of a public address"
        );
        assert_eq!(
            check_endpoint("http://127.0.0.1:9/x", true),
            None,
            "allowed for tests"
        );
        assert!(check_endpoint("ftp://127.0.0.1/x", true).is_some());
    }
}
