//! Each member's own settings for a conversation: what notifies them, archived, pinned.
//! The server keeps them, so every device shows the same: a change is stored, then sent as
//! a `settings` frame to each of the user's sessions; a device that was away reads them in
//! the conversation list. The push worker obeys the level (`push/notification.rs`).

use crate::bus::{Bus, UserEvent};
use crate::conversations::Conversations;
use crate::error::{ApiError, ApiResult};
use crate::store::{ConversationRecord, MemberRecord, SettingsRecord, Store, StoreResult};
use confab_proto::{
    ConversationId, ConversationSettings, NotifyLevel, ServerFrame, SettingsChange, Timestamp,
    UserId,
};
use std::sync::Arc;

/// The furthest a level may be set to end: beyond it, "until I change it" is meant.
const UNTIL_MAX_MS: i64 = 366 * 24 * 3600 * 1000;

/// The settings service.
pub struct Settings {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

impl Settings {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self { store, bus }
    }

    /// Applies `change` to `me`'s settings for `id` (a conversation they are or were in)
    /// and tells each of their sessions.
    pub async fn change(
        &self,
        me: UserId,
        id: ConversationId,
        change: SettingsChange,
        conversations: &Conversations,
    ) -> ApiResult<ConversationSettings> {
        check(&change, Timestamp::now())?;
        let member = conversations.membership(me, id).await?;
        let conversation = self
            .store
            .conversation(id)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        let mut change = change;
        if change.notify.is_some() && change.archived.is_none() {
            // Archived stays archived across a new level: what came while it was quieter
            // must not bring it back now.
            let before = self.store.settings(id, me).await?;
            if view(&*self.store, &conversation, &member, before)
                .await?
                .archived
            {
                change.archived = Some(true);
            }
        }
        let record = self.store.change_settings(id, me, change).await?;
        let settings = view(&*self.store, &conversation, &member, record).await?;
        let frame = ServerFrame::Settings {
            conversation_id: id,
            settings,
        };
        self.bus
            .publish(me, UserEvent::Frame(frame.to_json().into()));
        Ok(settings)
    }
}

/// What `member`'s settings for `conversation` are now: a level past its end is `all`
/// again; archived until a message arrives that would notify at the level (any message
/// at `all`, a mention of them at `mentions`, none at `none`), their own included.
pub async fn view(
    store: &dyn Store,
    conversation: &ConversationRecord,
    member: &MemberRecord,
    record: SettingsRecord,
) -> StoreResult<ConversationSettings> {
    let notify = record.level_at(Timestamp::now());
    let archived = match record.archived_upto {
        None => false,
        Some(upto) => {
            // A former member: nothing after they left is theirs.
            let newest = member
                .left_seq
                .map_or(conversation.last_message_seq, |left| {
                    left.min(conversation.last_message_seq)
                });
            match notify {
                _ if newest <= upto => true,
                NotifyLevel::None => true,
                NotifyLevel::All => false,
                NotifyLevel::Mentions => {
                    store
                        .unread(conversation.id, member.user_id, upto, newest)
                        .await?
                        .mentions
                        == 0
                }
            }
        }
    };
    Ok(ConversationSettings {
        notify,
        notify_until: record.notify_until.filter(|_| notify != NotifyLevel::All),
        archived,
        pinned: record.pinned,
    })
}

/// Refuses a change that means nothing or cannot be kept.
fn check(change: &SettingsChange, now: Timestamp) -> ApiResult<()> {
    if *change == SettingsChange::default() {
        return Err(ApiError::invalid(
            "nothing to change: give notify, archived or pinned",
        ));
    }
    if let Some(until) = change.notify_until {
        match change.notify {
            None => {
                return Err(ApiError::invalid(
                    "notify_until comes with notify: the level it ends",
                ));
            }
            Some(NotifyLevel::All) => {
                return Err(ApiError::invalid(
                    "notify_until ends a lower level; \"all\" needs no end",
                ));
            }
            Some(_) => {}
        }
        if until <= now {
            return Err(ApiError::invalid("notify_until must be in the future"));
        }
        if until.0 - now.0 > UNTIL_MAX_MS {
            return Err(ApiError::invalid(
                "notify_until must be within a year; leave it out for \"until I change it\"",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_that_mean_nothing_or_cannot_be_kept_are_refused() {
        let now = Timestamp(1_000_000);
        let hour = Timestamp(now.0 + 3_600_000);
        let ok = |change: SettingsChange| check(&change, now).is_ok();
        assert!(!ok(SettingsChange::default()));
        assert!(ok(SettingsChange {
            archived: Some(true),
            ..Default::default()
        }));
        let muted = |level, until| SettingsChange {
            notify: level,
            notify_until: until,
            ..Default::default()
        };
        assert!(ok(muted(Some(NotifyLevel::None), Some(hour))));
        assert!(ok(muted(Some(NotifyLevel::Mentions), None)));
        assert!(!ok(muted(None, Some(hour))), "an end without a level");
        assert!(!ok(muted(Some(NotifyLevel::All), Some(hour))));
        assert!(
            !ok(muted(Some(NotifyLevel::None), Some(now))),
            "not in the future"
        );
        let later = Timestamp(now.0 + UNTIL_MAX_MS + 1);
        assert!(!ok(muted(Some(NotifyLevel::None), Some(later))));
    }

    #[test]
    fn a_level_past_its_end_is_all_again() {
        let record = SettingsRecord {
            notify: NotifyLevel::None,
            notify_until: Some(Timestamp(10)),
            ..Default::default()
        };
        assert_eq!(record.level_at(Timestamp(9)), NotifyLevel::None);
        assert_eq!(record.level_at(Timestamp(10)), NotifyLevel::All);
    }
}
