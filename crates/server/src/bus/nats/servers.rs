//! The NATS servers a node connects to: those in the `bus` setting, then those the cluster
//! names in `INFO` (`connect_urls`), so a node finds servers added after it started.

use super::protocol::Auth;
use percent_encoding::percent_decode_str;

/// One server to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    /// Credentials from its URL.
    pub auth: Auth,
}

/// Parses the `bus` setting: NATS URLs separated by commas, `nats://[user:pass@|token@]host[:port]`.
pub fn parse(setting: &str) -> Result<Vec<Server>, String> {
    let servers = setting
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err("names no server; give nats://host:port, separated by commas".into());
    }
    Ok(servers)
}

fn parse_one(text: &str) -> Result<Server, String> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("nats://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "nats" {
        return Err(format!(
            "{text:?}: only nats:// is supported (TLS to NATS is not yet; keep NATS on a private network)"
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{text:?} names no host"))?;
    let port = url.port().unwrap_or(4222);
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let auth = match (url.username(), url.password()) {
        ("", None) => Auth::None,
        (token, None) => Auth::Token(decode(token)),
        (user, Some(pass)) => Auth::User {
            user: decode(user),
            pass: decode(pass),
        },
    };
    Ok(Server {
        addr: format!("{host}:{port}"),
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_commas_and_credentials() {
        let servers = parse("nats://a:4222, b:5000 ,nats://tok@c,nats://u:p%40ss@d:1").unwrap();
        assert_eq!(
            servers,
            vec![
                Server {
                    addr: "a:4222".into(),
                    auth: Auth::None
                },
                Server {
                    addr: "b:5000".into(),
                    auth: Auth::None
                },
                Server {
                    addr: "c:4222".into(),
                    auth: Auth::Token("tok".into())
                },
                Server {
                    addr: "d:1".into(),
                    auth: Auth::User {
                        user: "u".into(),
                        pass: "p@ss".into()
                    }
                },
            ]
        );
        assert!(parse("").is_err());
        assert!(parse(" , ").is_err());
        assert!(parse("tls://a:4222").unwrap_err().contains("nats://"));
        assert!(parse("nats://:4222").is_err());
    }
}
