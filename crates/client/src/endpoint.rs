//! Base URLs: checking the one given, and deriving the WebSocket URL from it. Also the
//! random `client_msg_id`s, the other small piece both transports share.

use crate::error::{Error, Result};
use confab_proto::WS_PATH;
use reqwest::Url;

/// Checks `base` (an absolute `http://` or `https://` URL, maybe with a path prefix) and
/// returns it without a trailing slash, ready for `format!("{base}/v1/...")`.
pub(crate) fn normalize_base(base: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: base.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The WebSocket URL of a base URL: `http` becomes `ws`, `https` becomes `wss`, and
/// [`WS_PATH`] is appended. A `ws://` or `wss://` base is taken as is.
pub(crate) fn ws_url(base: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: base.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(invalid("the scheme must be http, https, ws or wss")),
    };
    url.set_scheme(scheme)
        .map_err(|()| invalid("cannot switch to a WebSocket scheme"))?;
    url.set_query(None);
    url.set_fragment(None);
    let path = format!("{}{WS_PATH}", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.into())
}

/// A fresh `client_msg_id`: 16 random hex digits, well inside the contract's 1-64
/// printable ASCII characters.
pub(crate) fn new_client_msg_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The caller's `client_msg_id` if valid, or a fresh one when none was given.
pub(crate) fn client_msg_id(given: Option<String>) -> crate::Result<String> {
    match given {
        Some(given) if !confab_proto::limits::valid_client_msg_id(&given) => {
            Err(crate::Error::InvalidClientMsgId(given))
        }
        Some(given) => Ok(given),
        None => Ok(new_client_msg_id()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_checked_and_trimmed() {
        assert_eq!(
            normalize_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base("https://chat.example/api/").unwrap(),
            "https://chat.example/api"
        );
        assert!(normalize_base("127.0.0.1:8080").is_err());
        assert!(normalize_base("ftp://x").is_err());
        assert!(normalize_base("http://x/?a=1").is_err());
    }

    #[test]
    fn ws_urls_follow_the_base() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/ws"
        );
        assert_eq!(
            ws_url("https://chat.example/api/").unwrap(),
            "wss://chat.example/api/v1/ws"
        );
        assert_eq!(ws_url("ws://h:1").unwrap(), "ws://h:1/v1/ws");
        assert!(ws_url("mailto:a@b").is_err());
    }

    #[test]
    fn client_msg_ids_are_valid() {
        let id = new_client_msg_id();
        assert_eq!(id.len(), 16);
        assert!(confab_proto::limits::valid_client_msg_id(&id));
        assert_ne!(id, new_client_msg_id());
    }
}
