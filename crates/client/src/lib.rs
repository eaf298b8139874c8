//! Async Rust SDK for Confab, a chat server speaking wire contract v1.
//!
//! Two pieces, usable apart:
//!
//! - [`Client`]: the HTTP API, one method per route (accounts, conversations, history,
//!   sync, presence). Cheap to clone.
//! - [`Connection`]: the WebSocket, a cheap-clone handle over one background task that
//!   keeps the connection up, heartbeats, reconnects with backoff, resumes from its
//!   cursor, acknowledges what the app got, and retries sends without duplicating them.
//!   What arrives comes out of [`Events`] as [`Event`]s.
//!
//! Both report failures as one [`Error`]; [`Error::code`] gives the contract's
//! [`ErrorCode`] whichever transport it came from. The wire types come from
//! [`confab_proto`], re-exported as [`proto`] (the common ones also at the top level).
//!
//! What lives where: `http` (the [`Client`]), `connection` (the handle, events),
//! `builder` (connection settings and the first connect), `worker` (the connection task),
//! `backoff`, `endpoint` (URLs, ids), `error`.
//!
//! ```no_run
//! use confab_client::{Client, Connection, Event};
//!
//! # async fn demo() -> confab_client::Result<()> {
//! let anon = Client::new("http://127.0.0.1:8080")?;
//! let login = anon.login("ada", "correct horse", Some("laptop")).await?;
//! let ada = anon.with_token(login.token.clone());
//!
//! let bob = ada.user_by_username("bob").await?;
//! let chat = ada.direct(bob.id).await?;
//!
//! let (connection, mut events) = Connection::connect(ada.base_url(), login.token).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         if let Event::Message { message, .. } = event {
//!             println!("{}: {}", message.sender_id, message.body);
//!         }
//!     }
//! });
//! let sent = connection.send(chat.id, None, "hi Bob").await?;
//! println!("stored as seq {}", sent.seq);
//! connection.close().await;
//! # Ok(())
//! # }
//! ```

// The workspace warns on unwrap/expect outside tests; tests may use them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod account;
mod backoff;
mod builder;
mod connection;
mod endpoint;
mod error;
mod http;
mod nodes;
mod search;
mod worker;

pub use builder::{
    ConnectionBuilder, DEFAULT_COMMAND_CAPACITY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELIVERED_DELAY,
    DEFAULT_DELIVERED_EVERY, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_IN_FLIGHT_SENDS,
    DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, DEFAULT_SEND_MAX_ATTEMPTS, DEFAULT_SEND_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
};
pub use connection::{Connection, DisconnectReason, Event, Events};
pub use error::{Error, Result};
pub use http::{
    Client, DEFAULT_HTTP_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, MessagesQuery, Sent,
};
pub use search::SearchQuery;

/// The wire contract crate, for the types not re-exported here.
pub use confab_proto as proto;
pub use confab_proto::{
    AccountExport, Action, BlockedUser, Body, Conversation, ConversationId, ConversationKind,
    ConversationSettings, Device, DeviceId, Emoji, ErrorCode, ExportedConversation, FrameError,
    LoginResponse, Member, Message, MessageId, MessageKind, NotifyLevel, Presence, PresenceStatus,
    Privacy, PrivacyChange, Reaction, ReceiptKind, Role, SearchResponse, SearchResult, ServerInfo,
    SettingsChange, SnippetPart, SyncEntry, SyncResponse, Timestamp, User, UserId,
};
