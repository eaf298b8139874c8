//! The one error vocabulary of both transports.

use serde::{Deserialize, Serialize};

/// What went wrong, as a `snake_case` code. HTTP answers carry it with
/// [`ErrorCode::http_status`]; WebSocket `error` frames carry it as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid. Fix the request.
    InvalidRequest,
    /// No valid token. Log in again.
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// No such thing, or not visible to the caller.
    NotFound,
    /// The request conflicts with current state (a username that is taken).
    Conflict,
    /// A message body over 99,999 characters.
    MessageTooLong,
    /// A group would exceed 100 members.
    GroupFull,
    /// The sender's messages fill their storage quota; nothing more is stored for them.
    QuotaExceeded,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The server is busy; retry later.
    Overloaded,
    /// A server fault; it was logged. Retry later.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::QuotaExceeded => 403,
            Self::NotFound => 404,
            Self::Conflict | Self::GroupFull => 409,
            Self::MessageTooLong => 413,
            Self::RateLimited => 429,
            Self::Overloaded => 503,
            Self::Internal => 500,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::MessageTooLong => "message_too_long",
            Self::GroupFull => "group_full",
            Self::QuotaExceeded => "quota_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
        }
    }
}

/// The body of every HTTP error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong.
    pub code: ErrorCode,
    /// A sentence for people: what happened and what to do.
    pub message: String,
    /// With `rate_limited`: how long to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::MessageTooLong,
            ErrorCode::GroupFull,
            ErrorCode::RateLimited,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::GroupFull.http_status(), 409);
        assert_eq!(ErrorCode::MessageTooLong.http_status(), 413);
    }

    #[test]
    fn http_error_shape() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after_ms: Some(250),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "rate_limited", "message": "slow down", "retry_after_ms": 250}})
        );
    }
}
