//! The messaging core: the send path (validate, rate limit, store durably, then fan out)
//! and read watermarks. Stateless: everything it knows is in the store.

use crate::admission::Admission;
use crate::bus::{Bus, PreparedMessage, UserEvent};
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::ratelimit::RateLimiter;
use crate::store::{Appended, NewMessage, Refusal, SeqWindow, Store, StoreError};
use confab_proto::limits::valid_client_msg_id;
use confab_proto::{Action, ConversationId, Message, SendRequest, UserId, mentioned_usernames};
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

    /// Validates and stores a message, or a change to one, then delivers it to every
    /// member's online devices (a delete for me: the sender's). Returns only once it is
    /// durable.
    pub async fn send(
        &self,
        sender: UserId,
        conversation_id: ConversationId,
        request: SendRequest,
    ) -> ApiResult<Sent> {
        let SendRequest {
            client_msg_id,
            kind,
            body,
            target_seq,
            reply_to,
        } = request;
        if !valid_client_msg_id(&client_msg_id) {
            return Err(ApiError::invalid(
                "client_msg_id is 1-64 printable ASCII characters",
            ));
        }
        let action = Action::parse(kind, body, target_seq, reply_to)?;
        // Refused before the rate limit, so a send the node could not take costs no token.
        let _waiting = self.admission.enter().map_err(|retry_ms| {
            self.metrics.sends_overloaded.inc();
            ApiError::overloaded(retry_ms)
        })?;
        self.admit(sender)?;
        let admitted = std::time::Instant::now();
        let mentions = self.mentions(conversation_id, sender, &action).await?;
        if let Action::Text {
            reply_to: Some(seq),
            ..
        } = action
        {
            self.check_reply(conversation_id, sender, seq).await?;
        }
        let appended = self
            .store
            .append(NewMessage {
                conversation_id,
                sender_id: sender,
                client_msg_id,
                action,
                mentions,
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

    /// The members a text or an edit mentions by `@username`, the sender left out.
    async fn mentions(
        &self,
        conversation_id: ConversationId,
        sender: UserId,
        action: &Action,
    ) -> ApiResult<Vec<UserId>> {
        let (Action::Text { body, .. } | Action::Edit { body, .. }) = action else {
            return Ok(Vec::new());
        };
        let names = mentioned_usernames(body.as_str());
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self.store.members_named(conversation_id, &names).await?;
        found.retain(|&user| user != sender);
        Ok(found)
    }

    /// A reply answers a message its sender can see (`not_found` otherwise, as for the
    /// target of a change). A sender who is no member at all is refused by the store, as any
    /// send of theirs is.
    async fn check_reply(
        &self,
        conversation_id: ConversationId,
        sender: UserId,
        seq: u64,
    ) -> ApiResult<()> {
        let ranges = self.store.visible_ranges(conversation_id, sender).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        let window = SeqWindow {
            after: seq - 1,
            before: seq + 1,
            limit: 1,
            newest: false,
        };
        let visible = ranges
            .iter()
            .any(|&(first, last)| (first..=last).contains(&seq))
            && !self
                .store
                .messages(conversation_id, window, sender)
                .await?
                .is_empty();
        if visible {
            Ok(())
        } else {
            Err(StoreError::from(Refusal::NoSuchMessage).into())
        }
    }

    /// How long a session whose sends are all in flight may wait for a turn: the commit
    /// budget while sends are admitted, `None` (not at all) while they are refused.
    pub fn turn_wait(&self) -> Option<std::time::Duration> {
        self.admission.accepting().then(|| self.admission.budget())
    }

    /// Sends admitted and waiting for their commit: background writes (the search indexer)
    /// hold back while there are many.
    pub fn sends_waiting(&self) -> u64 {
        self.admission.waiting()
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
