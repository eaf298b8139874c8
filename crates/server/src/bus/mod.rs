//! The `Bus` seam: carries events addressed to users to whichever node holds their
//! sessions. It is a hint, never the truth: an event lost here is repaired by sync from the
//! store (a session fills inbox gaps before going on). The in-process bus (`local.rs`) is
//! the default; a cluster bus subscribes once per node and hands events to the same hub.

pub mod local;

use confab_proto::{DeviceId, Message, UserId};
use std::sync::Arc;

/// A message serialised once, shared by every session that delivers it.
#[derive(Debug)]
pub struct PreparedMessage {
    /// The message.
    pub message: Message,
    /// Its JSON, spliced into each session's `message` frame.
    pub json: String,
}

impl PreparedMessage {
    /// Serialises `message`.
    pub fn new(message: Message) -> Self {
        let json = serde_json::to_string(&message).unwrap_or_default();
        Self { message, json }
    }
}

/// Something for the sessions of one user.
#[derive(Debug, Clone)]
pub enum UserEvent {
    /// A new inbox entry.
    Message {
        /// Its place in the user's inbox.
        inbox_seq: u64,
        /// The message.
        message: Arc<PreparedMessage>,
    },
    /// A finished server frame (receipt, typing, presence), sent as is.
    Frame(Arc<str>),
    /// The device logged out or was removed: close its sessions with 4001.
    Revoked(DeviceId),
}

/// Publishes user-addressed events. Publishing never waits: a bus that cannot take an event
/// drops it and counts it, and sync repairs the loss.
pub trait Bus: Send + Sync {
    /// Sends `event` to every session of `user`, on whatever node.
    fn publish(&self, user: UserId, event: UserEvent);
}
