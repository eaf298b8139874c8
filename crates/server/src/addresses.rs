//! Client addresses: who a connection is from, and how many connections one address may
//! hold. Behind a load balancer every connection comes from the balancer, so the client is
//! read from `X-Forwarded-For`, but only when the connection comes from one of
//! `trusted_proxies` (anyone else could write any address there). Trusted proxies carry
//! many clients, so the per-address connection caps do not apply to them.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the given networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Is `ip` one of the trusted proxies?
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a connection from `peer` that carried `forwarded_for` (the
    /// `X-Forwarded-For` values, in order): the right-most address not of a trusted proxy,
    /// since each proxy appends the address it saw. `peer` itself when it is not trusted.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(','))
        {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break, // a malformed hop: trust nothing further left
            }
        }
        client
    }
}

/// The key per-address limits count under: the IPv4 address, or the IPv6 /64 (one host or
/// home network is usually given a whole /64, and could otherwise pick a new address for
/// every connection).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client's address, as [`TrustedProxies::client`] finds it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| ApiError::internal("the connection's address is missing"))?;
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(Self(app.proxies.client(peer, &forwarded)))
    }
}

/// Counts what each address holds open, up to a cap.
pub struct PerAddress {
    counts: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One unit held by an address; given back on drop.
pub struct Held {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `max` per address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(HashMap::new()),
            max,
        })
    }

    /// One more for `ip` (counted under its [`limit_key`]), or `None` when it holds `max`
    /// already.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        let ip = limit_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // Untrusted peer: its header is ignored.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
        // Through the balancer: the address it appended.
        assert_eq!(proxies.client(ip("10.0.0.2"), &["1.2.3.4"]), ip("1.2.3.4"));
        // A client that forged a first hop gets the address the balancer saw.
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &["6.6.6.6, 1.2.3.4"]),
            ip("1.2.3.4")
        );
        // Two trusted proxies in a row, over two headers.
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &["1.2.3.4", "10.0.0.7"]),
            ip("1.2.3.4")
        );
        // No header: the proxy itself. Garbage: stop at it.
        assert_eq!(proxies.client(ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &["nonsense"]),
            ip("10.0.0.2")
        );
        // IPv4-mapped peers are their IPv4 address.
        assert!(proxies.trusts(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn an_address_holds_at_most_max_and_gets_them_back() {
        let per = PerAddress::new(2);
        let a = per.take(ip("1.1.1.1")).unwrap();
        let _b = per.take(ip("1.1.1.1")).unwrap();
        assert!(per.take(ip("1.1.1.1")).is_none());
        assert!(per.take(ip("2.2.2.2")).is_some(), "per address");
        drop(a);
        assert!(per.take(ip("1.1.1.1")).is_some());
        // An IPv6 /64 is one address, whichever of its hosts connects.
        let _c = per.take(ip("2001:db8:1:2::1")).unwrap();
        let _d = per.take(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(per.take(ip("2001:db8:1:2:abcd::1")).is_none());
        assert!(per.take(ip("2001:db8:1:3::1")).is_some());
    }
}
