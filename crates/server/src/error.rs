//! `ApiError`: the one error type handlers and the gateway return. It maps to the contract's
//! HTTP answer or WebSocket `error` frame; internal faults are logged in full and reach the
//! client only as a generic message.

use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_proto::{ActionError, BodyError, ErrorBody, ErrorCode, ErrorDetail, FrameError};

/// An error to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people: what happened and what to do.
    pub message: String,
    /// With `rate_limited`, and `overloaded` when the node knows when to come back.
    pub retry_after_ms: Option<u64>,
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing, invalid or revoked token; log in again",
        )
    }

    /// `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    /// `rate_limited`, to retry after `ms`.
    pub fn rate_limited(ms: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: "too many requests; retry after retry_after_ms".into(),
            retry_after_ms: Some(ms.max(1)),
        }
    }

    /// `overloaded`, to retry after `ms`: the node cannot store more right now.
    pub fn overloaded(ms: u64) -> Self {
        Self {
            code: ErrorCode::Overloaded,
            message: "the server is busy; retry after retry_after_ms with the same client_msg_id"
                .into(),
            retry_after_ms: Some(ms.max(1)),
        }
    }

    /// `rate_limited` with a message saying which limit.
    pub fn rate_limited_for(ms: u64, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::rate_limited(ms)
        }
    }

    /// A server fault: logged here with its detail, shown to the client as a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorCode::Internal,
            "internal error; it was logged, please retry later",
        )
    }

    /// The error as a WebSocket `error` frame answering `req`.
    pub fn into_frame(self, req: Option<String>) -> FrameError {
        FrameError {
            req,
            code: self.code,
            message: self.message,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(ErrorCode::NotFound, "not found"),
            StoreError::Refused(why) => match why.retry_after_ms() {
                Some(ms) => Self::rate_limited_for(ms, why.to_string()),
                None => Self::new(why.code(), why.to_string()),
            },
            StoreError::Closed => Self::new(
                ErrorCode::Overloaded,
                "the server is shutting down; retry on another node",
            ),
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "the store is unavailable; answering overloaded");
                Self {
                    code: ErrorCode::Overloaded,
                    message: "storage is unavailable for a moment; retry after retry_after_ms"
                        .into(),
                    retry_after_ms: Some(1000),
                }
            }
            StoreError::Backend(detail) | StoreError::Contended(detail) => Self::internal(detail),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Body(e) => e.into(),
            e => Self::invalid(e.to_string()),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Empty => Self::invalid("the message body is empty"),
            BodyError::Nul => Self::invalid("the message body contains U+0000 (NUL); leave it out"),
            BodyError::TooLong => Self::new(
                ErrorCode::MessageTooLong,
                "a message holds at most 99999 characters; split it",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_ms;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                retry_after_ms: retry_after,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(ms) = retry_after {
            let secs = ms.div_ceil(1000).to_string();
            if let Ok(value) = secs.parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}
