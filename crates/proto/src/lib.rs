//! The Confab wire contract, v1: the types every client and the server agree on.
//!
//! This crate does no I/O. It holds ids, limits, the error vocabulary, the WebSocket
//! frames ([`ClientFrame`], [`ServerFrame`]) and the HTTP request and response bodies.
//! `docs/protocol.md` in the repository is the prose version of the same contract.

mod action;
mod body;
mod error;
mod frames;
mod http;
mod ids;
pub mod limits;
mod time;

pub use action::{Action, ActionError, Emoji, EmojiError, mentioned_usernames};
pub use body::{Body, BodyError};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use frames::{ClientFrame, FrameError, ReceiptKind, ServerFrame};
pub use http::*;
pub use ids::{ConversationId, DeviceId, IdError, MessageId, PushSubscriptionId, UserId};
pub use time::Timestamp;

/// The WebSocket path, relative to the server's base URL.
pub const WS_PATH: &str = "/v1/ws";
