//! The SDK's one error type, for HTTP calls and the WebSocket connection alike.
//!
//! Contract errors (`{"error": {...}}` on HTTP, `error` frames and close code 4001 on the
//! WebSocket) all become [`Error::Api`], so callers match on [`Error::code`] whatever the
//! transport. Parsing of error bodies lives here too; building requests does not.

use confab_proto::{BodyError, EmojiError, ErrorBody, ErrorCode, FrameError};
use std::time::Duration;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a call.
///
/// ```
/// use confab_client::{Error, ErrorCode};
///
/// fn explain(e: &Error) -> &'static str {
///     match e.code() {
///         Some(ErrorCode::Unauthorized) => "log in again",
///         Some(ErrorCode::RateLimited) => "slow down",
///         Some(_) => "the server refused",
///         None if e.is_retryable() => "network trouble, try again",
///         None => "a bug or a misconfiguration",
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a contract error: an HTTP error body, a WebSocket `error`
    /// frame, or close code 4001 (as [`ErrorCode::Unauthorized`]).
    #[error("{} (status {status}): {message}", code.as_str())]
    Api {
        /// The HTTP status; for WebSocket errors, the status that goes with the code.
        status: u16,
        /// What went wrong.
        code: ErrorCode,
        /// The server's sentence for people.
        message: String,
        /// With `rate_limited` (and sometimes `overloaded`): how long to wait.
        retry_after_ms: Option<u64>,
    },
    /// An HTTP error status without a contract error body (a proxy's 502, say).
    #[error("unexpected HTTP status {status}: {body}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, for logs.
        body: String,
    },
    /// The HTTP request failed before an answer arrived (connect, timeout, reset).
    #[error("HTTP transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The WebSocket failed (connect, handshake, protocol, I/O).
    #[error("WebSocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// JSON did not match the contract: an answer that could not be decoded.
    #[error("decoding JSON: {0}")]
    Decode(#[from] serde_json::Error),
    /// The base URL is not an absolute `http://` or `https://` URL.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The message body breaks the contract's limits; checked before sending.
    #[error(transparent)]
    InvalidBody(#[from] BodyError),
    /// A reaction is one emoji; checked before sending.
    #[error(transparent)]
    InvalidEmoji(#[from] EmojiError),
    /// A `client_msg_id` must be 1 to 64 printable ASCII characters.
    #[error("invalid client_msg_id {0:?}: 1 to 64 printable ASCII characters")]
    InvalidClientMsgId(String),
    /// The call needs a token and the [`Client`](crate::Client) has none.
    #[error("this call needs a token: use Client::with_token")]
    MissingToken,
    /// Connecting (TCP, upgrade, `hello` to `welcome`) took too long.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// A WebSocket send gave up before an `ack` (its deadline or its tries ran out). The
    /// message may or may not be stored: sending again with this `client_msg_id` is safe and
    /// answers with the stored message if there is one.
    #[error("send not confirmed; retry with client_msg_id {client_msg_id:?}")]
    Unconfirmed {
        /// The id to retry with.
        client_msg_id: String,
    },
    /// The server closed the WebSocket before `welcome` with this code.
    #[error("the server closed the connection ({code}): {reason}")]
    ClosedByServer {
        /// The close code (see `confab_proto::limits::close`).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Writing what the server sent (an export) to the caller's writer failed.
    #[error("writing the answer: {0}")]
    Io(#[from] std::io::Error),
    /// The connection was closed (by [`Connection::close`](crate::Connection::close), every
    /// handle being dropped, or a final error) and can no longer be used.
    #[error("the connection is closed")]
    Closed,
}

impl Error {
    /// The contract error code, if the server sent one, or the code the server would have
    /// sent for a body refused locally (`invalid_request` when empty, `message_too_long`).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            Self::InvalidBody(BodyError::Empty | BodyError::Nul)
            | Self::InvalidEmoji(_)
            | Self::InvalidClientMsgId(_) => Some(ErrorCode::InvalidRequest),
            Self::InvalidBody(BodyError::TooLong) => Some(ErrorCode::MessageTooLong),
            _ => None,
        }
    }

    /// The HTTP status, for errors that came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after_ms, .. } => retry_after_ms.map(Duration::from_millis),
            _ => None,
        }
    }

    /// True when trying the same call again later may succeed: transport trouble, timeouts,
    /// `rate_limited`, `overloaded`, `internal` and 5xx statuses. Client mistakes
    /// (`forbidden`, `message_too_long`, ...) are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { code, .. } => matches!(
                code,
                ErrorCode::RateLimited | ErrorCode::Overloaded | ErrorCode::Internal
            ),
            Self::UnexpectedStatus { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(_)
            | Self::WebSocket(_)
            | Self::Timeout(_)
            | Self::Unconfirmed { .. }
            | Self::ClosedByServer { .. } => true,
            Self::Decode(_)
            | Self::InvalidUrl { .. }
            | Self::InvalidBody(_)
            | Self::InvalidEmoji(_)
            | Self::InvalidClientMsgId(_)
            | Self::MissingToken
            | Self::Io(_)
            | Self::Closed => false,
        }
    }

    /// The error for an HTTP answer with a failing `status` and this `body`. A body in the
    /// contract's shape gives [`Error::Api`]; anything else [`Error::UnexpectedStatus`].
    /// `retry_after_header_ms` (from a `Retry-After` header) fills in a missing
    /// `retry_after_ms`.
    pub(crate) fn from_http(status: u16, body: &[u8], retry_after_header_ms: Option<u64>) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => Self::Api {
                status,
                code: error.code,
                message: error.message,
                retry_after_ms: error.retry_after_ms.or(retry_after_header_ms),
            },
            Err(_) => {
                const SHOWN: usize = 512;
                let text = String::from_utf8_lossy(body);
                let body = match text.char_indices().nth(SHOWN) {
                    Some((cut, _)) => format!("{}...", &text[..cut]),
                    None => text.into_owned(),
                };
                Self::UnexpectedStatus { status, body }
            }
        }
    }

    /// The error for a WebSocket `error` frame.
    pub(crate) fn from_frame(frame: FrameError) -> Self {
        Self::Api {
            status: frame.code.http_status(),
            code: frame.code,
            message: frame.message,
            retry_after_ms: frame.retry_after_ms,
        }
    }

    /// The error for close code 4001, or a 401 on the upgrade.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::Api {
            status: ErrorCode::Unauthorized.http_status(),
            code: ErrorCode::Unauthorized,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match e {
            // The contract authenticates in `hello`, but a proxy or a future server may
            // refuse the upgrade itself; that is as final as close code 4001.
            WsError::Http(resp) if resp.status().as_u16() == 401 => {
                Self::unauthorized("the WebSocket upgrade was refused with 401")
            }
            WsError::Http(resp) => {
                let status = resp.status().as_u16();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after_secs);
                let body = resp.body().as_deref().unwrap_or_default();
                Self::from_http(status, body, retry)
            }
            other => Self::WebSocket(Box::new(other)),
        }
    }
}

/// A `Retry-After` header in delta-seconds, as milliseconds. HTTP dates are ignored: the
/// contract's servers send `retry_after_ms` in the body.
pub(crate) fn parse_retry_after_secs(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_error_body_becomes_api() {
        let body =
            br#"{"error":{"code":"rate_limited","message":"slow down","retry_after_ms":250}}"#;
        let e = Error::from_http(429, body, None);
        assert_eq!(e.code(), Some(ErrorCode::RateLimited));
        assert_eq!(e.status(), Some(429));
        assert_eq!(e.retry_after(), Some(Duration::from_millis(250)));
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "rate_limited (status 429): slow down");
    }

    #[test]
    fn retry_after_header_fills_a_missing_field() {
        let body = br#"{"error":{"code":"overloaded","message":"busy"}}"#;
        let e = Error::from_http(503, body, parse_retry_after_secs(" 2 "));
        assert_eq!(e.code(), Some(ErrorCode::Overloaded));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"),
            None
        );
    }

    #[test]
    fn client_mistakes_are_not_retryable() {
        let body = br#"{"error":{"code":"forbidden","message":"not a member"}}"#;
        let e = Error::from_http(403, body, None);
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
        assert!(!e.is_retryable());
    }

    #[test]
    fn other_bodies_are_unexpected_statuses_and_cut() {
        let e = Error::from_http(502, b"<html>bad gateway</html>", None);
        assert!(matches!(e, Error::UnexpectedStatus { status: 502, .. }));
        assert_eq!(e.code(), None);
        assert!(e.is_retryable());

        let long = "é".repeat(2000);
        match Error::from_http(500, long.as_bytes(), None) {
            Error::UnexpectedStatus { body, .. } => assert_eq!(body.chars().count(), 515),
            other => panic!("unexpected {other:?}"),
        }
        // An unknown code is not the contract either.
        let e = Error::from_http(418, br#"{"error":{"code":"teapot","message":"x"}}"#, None);
        assert!(matches!(e, Error::UnexpectedStatus { status: 418, .. }));
    }

    #[test]
    fn frame_errors_carry_the_matching_status() {
        let e = Error::from_frame(FrameError {
            req: Some("1".into()),
            code: ErrorCode::MessageTooLong,
            message: "too long".into(),
            retry_after_ms: None,
        });
        assert_eq!(e.status(), Some(413));
        assert_eq!(e.code(), Some(ErrorCode::MessageTooLong));
    }

    #[test]
    fn local_body_checks_map_to_contract_codes() {
        assert_eq!(
            Error::from(BodyError::TooLong).code(),
            Some(ErrorCode::MessageTooLong)
        );
        assert_eq!(
            Error::from(BodyError::Empty).code(),
            Some(ErrorCode::InvalidRequest)
        );
    }
}
