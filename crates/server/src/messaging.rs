//! The messaging core: the send path (validate, rate limit, store durably, then fan out)
//! and read watermarks. Stateless: everything it knows is in the store.

use crate::admission::Admission;
use crate::bus::{Bus, PreparedMessage, UserEvent};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::ratelimit::RateLimiter;
use crate::store::{Appended, NewMessage, Store};
use confab_proto::limits::valid_client_msg_id;
use confab_proto::{Body, ConversationId, Message, UserId};
use std::sync::Arc;

/// A stored message, and whether it was stored before (a retry).
#[derive(Debug)]
pub struct Sent {
    /// The message as stored.
    pub message: Message,
    /// True for a retry of a `client_msg_id` that was already stored.
    pub duplicate: bool,
}

/// The send path.
pub struct Messaging {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    sends: RateLimiter<UserId>,
    push: Arc<Pusher>,
    quota_bytes: u64,
    admission: Admission,
}

impl Messaging {
    /// Builds the service; `sends` limits each user's send rate, `admission` the wait for
    /// a commit.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        sends: RateLimiter<UserId>,
        push: Arc<Pusher>,
        quota_bytes: u64,
        admission: Admission,
    ) -> Self {
        Self {
            store,
            bus,
            metrics,
            sends,
            push,
            quota_bytes,
            admission,
        }
    }

    /// Validates and stores a message, then delivers it to every member's online devices.
    /// Returns only once the message is durable.
    pub async fn send(
        &self,
        sender: UserId,
        conversation_id: ConversationId,
        client_msg_id: String,
        body: String,
    ) -> ApiResult<Sent> {
        if !valid_client_msg_id(&client_msg_id) {
            return Err(ApiError::invalid(
                "client_msg_id is 1-64 printable ASCII characters",
            ));
        }
        let body = Body::new(body)?;
        // Refused before the rate limit, so a send the node could not take costs no token.
        let _waiting = self.admission.enter().map_err(|retry_ms| {
            self.metrics.sends_overloaded.inc();
            ApiError::overloaded(retry_ms)
        })?;
        self.admit(sender)?;
        let admitted = std::time::Instant::now();
        let appended = self
            .store
            .append(NewMessage {
                conversation_id,
                sender_id: sender,
                client_msg_id,
                body,
                quota_bytes: self.quota_bytes,
            })
            .await;
        self.metrics
            .send_seconds
            .observe(admitted.elapsed().as_secs_f64());
        let appended = appended?;
        if !appended.duplicate {
            self.metrics.messages_sent.inc();
            self.fan_out(&appended);
            if appended.push_queued {
                self.push.wake();
            }
        }
        Ok(Sent {
            message: appended.message,
            duplicate: appended.duplicate,
        })
    }

    /// How long a session whose sends are all in flight may wait for a turn: the commit
    /// budget while sends are admitted, `None` (not at all) while they are refused.
    pub fn turn_wait(&self) -> Option<std::time::Duration> {
        self.admission.accepting().then(|| self.admission.budget())
    }

    /// `overloaded` for a send refused before it reached the store (the node refuses sends,
    /// or the session has too many waiting), with when to retry as the store's queue suggests.
    pub fn overloaded(&self) -> ApiError {
        self.metrics.sends_overloaded.inc();
        ApiError::overloaded(self.admission.refuse())
    }

    /// Counts one write to a conversation's log (a message, or a group created, renamed or
    /// changed) against `user`'s send rate; `rate_limited` past it.
    pub fn admit(&self, user: UserId) -> ApiResult<()> {
        self.sends.check(user).map_err(|wait_ms| {
            self.metrics.rate_limited.inc();
            ApiError::rate_limited(wait_ms)
        })
    }

    /// Delivers a stored message to the online devices of everyone who got an inbox entry.
    pub fn fan_out(&self, appended: &Appended) {
        let message = Arc::new(PreparedMessage::new(&appended.message));
        for &(user, inbox_seq) in &appended.recipients {
            self.bus.publish(
                user,
                UserEvent::Message {
                    inbox_seq,
                    message: message.clone(),
                },
            );
        }
    }
}
