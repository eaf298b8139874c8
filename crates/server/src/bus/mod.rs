//! The `Bus` seam: carries events addressed to users to whichever node holds their
//! sessions. It is a hint, never the truth: an event lost here is repaired by sync from the
//! store (a session fills inbox gaps before going on). The in-process bus (`local.rs`) is
//! the default; the NATS bus (`nats/`) subscribes to a user's subject while this node holds
//! a session of theirs and hands what arrives to the same hub.

mod interest;
pub mod local;
pub mod nats;
mod wire;

pub use interest::Interest;

use confab_proto::{DeviceId, Message, UserId};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A message serialised once, shared by every session that delivers it.
#[derive(Debug)]
pub struct PreparedMessage {
    /// Its JSON, spliced into each session's `message` frame.
    pub json: String,
}

impl PreparedMessage {
    /// Serialises `message`.
    pub fn new(message: &Message) -> Self {
        Self {
            json: serde_json::to_string(message).unwrap_or_default(),
        }
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
    /// Events for this user may have been lost on the way: read the inbox from the store
    /// (and check the device still exists).
    CatchUp,
}

/// Publishes user-addressed events. Publishing never waits: a bus that cannot take an event
/// drops it and counts it, and sync repairs the loss.
pub trait Bus: Send + Sync {
    /// Sends `event` to every session of `user`, on whatever node.
    fn publish(&self, user: UserId, event: UserEvent);

    /// Resolves once events for `user` published from now on reach this node's hub. A
    /// session awaits it (bounded) after going live and before its last read of the store,
    /// so nothing committed in between is missed. The in-process bus is always listening.
    fn listen(&self, _user: UserId) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// How long after going live a session reads the store once more, for a bus whose
    /// subscriptions reach other publishers only after a delay (a NATS cluster spreads a
    /// new subscription to its other servers asynchronously).
    fn recheck_after(&self) -> Option<Duration> {
        None
    }

    /// Keeps the bus connected until `shutdown`. The in-process bus has nothing to run.
    fn run(&self, _shutdown: CancellationToken) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}
