//! Blocking: a user blocks another, and from then on the blocked one cannot write in their
//! direct conversation (nor can the blocker, until they unblock), start one with the
//! blocker, or put the blocker in a group; the two see no presence, last seen or typing of
//! each other. In groups they share, both still see each other's messages. The block list
//! is the blocker's on all their devices: a `block` frame tells each session.

use crate::bus::{Bus, UserEvent};
use crate::error::{ApiError, ApiResult};
use crate::presence::Presence;
use crate::store::Store;
use confab_proto::{
    BlockedUser, ErrorCode, Presence as PresenceView, PresenceStatus, ServerFrame, Timestamp,
    UserId,
};
use std::sync::Arc;

/// The blocking service.
pub struct Blocking {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

impl Blocking {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self { store, bus }
    }

    /// `me` blocks `user` (again is harmless). Each of them stops seeing the other online.
    pub async fn block(&self, me: UserId, user: UserId) -> ApiResult<()> {
        if me == user {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "you cannot block yourself",
            ));
        }
        if self.store.user(user).await?.is_none_or(|u| u.deleted) {
            return Err(ApiError::not_found("user"));
        }
        if self.store.block(me, user, Timestamp::now()).await? {
            self.tell(me, user, true);
            // Presence stops both ways: each sees the other go offline, with no last seen.
            for (to, about) in [(me, user), (user, me)] {
                let frame = ServerFrame::Presence(PresenceView {
                    user_id: about,
                    status: PresenceStatus::Offline,
                    last_active_at: None,
                });
                self.bus
                    .publish(to, UserEvent::Frame(frame.to_json().into()));
            }
        }
        Ok(())
    }

    /// `me` unblocks `user` (not blocked is harmless); presence resumes unless `user`
    /// blocks `me` too.
    pub async fn unblock(&self, me: UserId, user: UserId, presence: &Presence) -> ApiResult<()> {
        if self.store.unblock(me, user).await? {
            self.tell(me, user, false);
            if !self.store.has_blocked(user, me).await? {
                presence.introduce(me, user).await;
            }
        }
        Ok(())
    }

    /// Whom `me` blocked, the newest first.
    pub async fn list(&self, me: UserId) -> ApiResult<Vec<BlockedUser>> {
        Ok(self
            .store
            .blocked_by(me)
            .await?
            .into_iter()
            .map(|(user_id, created_at)| BlockedUser {
                user_id,
                created_at,
            })
            .collect())
    }

    /// Tells `me`'s sessions that their block list changed.
    fn tell(&self, me: UserId, user: UserId, blocked: bool) {
        let frame = ServerFrame::Block {
            user_id: user,
            blocked,
        };
        self.bus
            .publish(me, UserEvent::Frame(frame.to_json().into()));
    }
}
