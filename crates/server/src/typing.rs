//! Typing indicators: ephemeral, never stored, members only, at most one per second per
//! user and conversation (the excess is dropped: a typing hint is worth nothing late).

use crate::bus::{Bus, UserEvent};
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use confab_proto::{ConversationId, ErrorCode, ServerFrame, UserId};
use std::sync::Arc;

/// The typing service.
pub struct Typing {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    limiter: RateLimiter<(UserId, ConversationId)>,
}

impl Typing {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            limiter: RateLimiter::per_second(1, 1),
        }
    }

    /// `user` is typing in `conversation`: tells the other members' online devices.
    pub async fn typing(&self, user: UserId, conversation_id: ConversationId) -> ApiResult<()> {
        if self.limiter.check((user, conversation_id)).is_err() {
            return Ok(());
        }
        let members = self.store.members(conversation_id).await?;
        if !members.iter().any(|m| m.user_id == user && m.is_active()) {
            return Err(if members.is_empty() {
                ApiError::not_found("conversation")
            } else {
                ApiError::new(
                    ErrorCode::Forbidden,
                    "you are not a member of this conversation",
                )
            });
        }
        let frame: Arc<str> = ServerFrame::Typing {
            conversation_id,
            user_id: user,
        }
        .to_json()
        .into();
        let others: Vec<UserId> = members
            .iter()
            .filter(|m| m.is_active() && m.user_id != user)
            .map(|m| m.user_id)
            .collect();
        // A blocked pair sees no typing of each other, in groups too.
        let blocked = self.store.blocked_among(user, &others).await?;
        for member in others.into_iter().filter(|u| !blocked.contains(u)) {
            self.bus.publish(member, UserEvent::Frame(frame.clone()));
        }
        Ok(())
    }

    /// Forgets idle rate-limit buckets.
    pub fn forget_idle(&self) {
        self.limiter.forget_idle();
    }
}
