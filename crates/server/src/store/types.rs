//! Records that cross the store seam.

use confab_proto::{
    Action, ConversationId, ConversationKind, Device, DeviceId, Message, MessageId, MessageKind,
    NotifyLevel, PushSubscriptionId, Reaction, Role, Timestamp, User, UserId,
};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Valid username.
    pub username: String,
    /// Valid display name.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A user with the secret the API needs to log them in.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The public part.
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A device to create at login.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Whose.
    pub user_id: UserId,
    /// Shown in the devices list.
    pub name: String,
    /// SHA-256 of the bearer token.
    pub token_hash: Vec<u8>,
}

/// A stored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its id.
    pub id: DeviceId,
    /// Whose.
    pub user_id: UserId,
    /// Its name.
    pub name: String,
    /// When it logged in.
    pub created_at: Timestamp,
    /// When it last synced.
    pub last_active_at: Timestamp,
    /// The highest inbox_seq it acknowledged.
    pub cursor: u64,
}

impl DeviceRecord {
    /// The device as its user sees it, from the device `asking`.
    pub fn shown_to(self, asking: DeviceId) -> Device {
        Device {
            current: self.id == asking,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
            last_active_at: self.last_active_at,
            cursor: self.cursor,
        }
    }
}

/// A device cursor that moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorMove {
    /// The device.
    pub device: DeviceId,
    /// Its user.
    pub user: UserId,
    /// The cursor before.
    pub from: u64,
    /// The cursor now.
    pub to: u64,
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Who creates it (becomes admin).
    pub creator: UserId,
    /// Valid title.
    pub title: String,
    /// Other members, without duplicates and without the creator.
    pub members: Vec<UserId>,
    /// The most groups the creator may have made in the last 24 hours, this one included.
    pub groups_per_day: u32,
}

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Its id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Title of a group.
    pub title: Option<String>,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
    /// The newest seq.
    pub last_seq: u64,
    /// The newest seq of a message (text, system), not a change.
    pub last_message_seq: u64,
}

/// What is unread in a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unread {
    /// Messages.
    pub messages: u64,
    /// Of those, the ones that mention the user.
    pub mentions: u64,
}

/// A member row. A member sees the messages with `joined_seq <= seq <= left_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Who.
    pub user_id: UserId,
    /// Admin or member.
    pub role: Role,
    /// The first seq this member may see.
    pub joined_seq: u64,
    /// The last seq this member may see, once they left or were removed.
    pub left_seq: Option<u64>,
    /// Read watermark.
    pub read_seq: u64,
    /// Delivered watermark.
    pub delivered_seq: u64,
}

impl MemberRecord {
    /// Still a member.
    pub fn is_active(&self) -> bool {
        self.left_seq.is_none()
    }

    /// May this member see the message with `seq`?
    pub fn sees(&self, seq: u64) -> bool {
        seq >= self.joined_seq && self.left_seq.is_none_or(|left| seq <= left)
    }
}

/// One conversation of a user, with the user's own member row.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The conversation.
    pub conversation: ConversationRecord,
    /// The user's row in it.
    pub member: MemberRecord,
    /// Where it sorts in the list: its last activity, then its id.
    pub position: ListPosition,
}

/// A place in a user's conversation list, which runs from the most recent activity back
/// (ties by id, highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPosition {
    /// When something last happened in the conversation.
    pub activity: Timestamp,
    /// The conversation.
    pub id: ConversationId,
}

/// Which page of a conversation list.
#[derive(Debug, Clone, Copy)]
pub struct ListPage {
    /// Start after this position; from the top when `None`.
    pub after: Option<ListPosition>,
    /// At most this many.
    pub limit: usize,
}

/// A message, or a change to one, to append to a conversation's log.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Where.
    pub conversation_id: ConversationId,
    /// Who.
    pub sender_id: UserId,
    /// The sender's id for it, valid per the contract.
    pub client_msg_id: String,
    /// What: a text message (its `reply_to` checked by the caller), or a change, whose
    /// rules the store checks.
    pub action: Action,
    /// The members a text or an edit mentions, as the caller resolved them.
    pub mentions: Vec<UserId>,
    /// The most bytes of message text the sender may have stored, this text included.
    pub quota_bytes: u64,
}

/// Counts `user`'s reaction with `emoji` into a message's list of reactions as `viewer`
/// sees it. The list keeps the order the emoji first came in.
pub fn count_reaction(list: &mut Vec<Reaction>, emoji: String, user: UserId, viewer: UserId) {
    let at = match list.iter().position(|r| r.emoji == emoji) {
        Some(at) => at,
        None => {
            list.push(Reaction {
                emoji,
                count: 0,
                me: false,
                user_ids: Vec::new(),
            });
            list.len() - 1
        }
    };
    let reaction = &mut list[at];
    reaction.count += 1;
    reaction.me |= user == viewer;
    reaction.user_ids.push(user);
}

/// A stored message and who must hear of it.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The message as stored (the original, for a retry).
    pub message: Message,
    /// One inbox entry per member that got it: (user, inbox_seq). Empty for a retry.
    pub recipients: Vec<(UserId, u64)>,
    /// True when this was a retry of a stored message.
    pub duplicate: bool,
    /// True when a recipient got a row in the push outbox: the push worker has work.
    pub push_queued: bool,
}

impl Appended {
    /// Is it a system message?
    pub fn is_system(&self) -> bool {
        self.message.kind == MessageKind::System
    }
}

/// Which messages of a conversation to read: those with `after < seq < before`, at most
/// `limit`, taken from the newest end when `newest` is set (else from the oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWindow {
    /// Exclusive lower bound.
    pub after: u64,
    /// Exclusive upper bound.
    pub before: u64,
    /// At most this many.
    pub limit: usize,
    /// Take the newest `limit` of the window rather than the oldest.
    pub newest: bool,
}

/// Where a push goes: the provider and what it needs to reach one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// Web Push: the endpoint URL and the browser's keys (raw bytes, validated).
    WebPush {
        /// The push service URL.
        endpoint: String,
        /// The browser's 65-byte P-256 public key.
        p256dh: Vec<u8>,
        /// The 16-byte authentication secret.
        auth: Vec<u8>,
    },
    /// An FCM registration token.
    Fcm(String),
    /// An APNs device token.
    Apns(String),
}

/// A push subscription to store for a device.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// Whose.
    pub user_id: UserId,
    /// Which device; removing it removes the subscription.
    pub device_id: DeviceId,
    /// Where pushes go.
    pub target: PushTarget,
}

/// A stored push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Its id.
    pub id: PushSubscriptionId,
    /// Whose.
    pub user_id: UserId,
    /// Which device.
    pub device_id: DeviceId,
    /// Where pushes go.
    pub target: PushTarget,
}

/// One row of the push outbox: a conversation of a user that has something to push. A burst
/// of messages updates the same row, so it becomes one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushJob {
    /// To whom.
    pub user_id: UserId,
    /// About which conversation.
    pub conversation_id: ConversationId,
    /// The newest message's entry in the user's inbox.
    pub inbox_seq: u64,
    /// The newest message's seq in the conversation.
    pub seq: u64,
    /// Who sent the newest message.
    pub sender_id: UserId,
    /// Everything up to here was pushed (or needed no push).
    pub pushed_inbox_seq: u64,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// A message the notification shown covers was edited or deleted since: the
    /// notification must be replaced or closed, whether or not a device is online.
    pub refresh: bool,
    /// The newest seq the notification shown on the user's devices covers, if one is.
    pub shown_upto: Option<u64>,
}

impl PushJob {
    /// Is there something newer than what was pushed?
    pub fn has_news(&self) -> bool {
        self.inbox_seq > self.pushed_inbox_seq
    }

    /// Must a notification shown on the user's devices be replaced or closed?
    pub fn refreshes_shown(&self) -> bool {
        self.refresh && self.shown_upto.is_some()
    }
}

/// What a push left on a user's devices for one conversation, so that an edit or a delete
/// of a message it shows can replace or close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Nothing was sent (skipped, or every provider failed): as before.
    Unchanged,
    /// A notification covering the messages after `after_seq` (the read watermark then)
    /// up to `upto_seq`.
    Notification {
        /// The user's read watermark when it was built.
        after_seq: u64,
        /// The newest message it covers.
        upto_seq: u64,
    },
    /// The notification was closed: nothing is shown.
    Closed,
}

/// A node's entry in the registry: what discovery offers clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The process's lease holder name, unique per run.
    pub holder: String,
    /// Its node id.
    pub node_id: u16,
    /// Where clients reach it (`public_url`).
    pub url: String,
    /// Its `region` setting (empty: none).
    pub region: String,
    /// Sessions per mille of `max_sessions`.
    pub load: u32,
    /// Shutting down: not offered to new clients.
    pub draining: bool,
    /// When the node last renewed the entry.
    pub renewed_at: Timestamp,
}

/// A search: what to find, for whom (only what they may see), where, and which page.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Whose search: only messages inside their membership windows, not hidden by them.
    pub user: UserId,
    /// What to find.
    pub query: super::search::Query,
    /// Within one conversation only.
    pub conversation: Option<ConversationId>,
    /// Which page, in which order.
    pub order: SearchOrder,
    /// Results per page, at most.
    pub limit: usize,
}

/// A member's settings for a conversation, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingsRecord {
    /// The level they chose.
    pub notify: NotifyLevel,
    /// When it goes back to `all`.
    pub notify_until: Option<Timestamp>,
    /// The conversation's newest seq when the level was set: at `mentions`, only mentions
    /// after it push (earlier ones were for the level before).
    pub notify_since: u64,
    /// Archived when the conversation's newest message was this seq: what comes after may
    /// bring it back (`settings.rs`).
    pub archived_upto: Option<u64>,
    /// Pinned.
    pub pinned: bool,
}

impl SettingsRecord {
    /// The level in force at `now`.
    pub fn level_at(&self, now: Timestamp) -> NotifyLevel {
        match self.notify_until {
            Some(until) if until <= now => NotifyLevel::All,
            _ => self.notify,
        }
    }
}

/// What one round of indexing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Indexed {
    /// Text messages taken into the index (unless changed meanwhile).
    pub messages: usize,
    /// When the oldest of them was sent: how far behind the index was.
    pub oldest: Option<Timestamp>,
    /// Whether the round was full: more may be waiting right now.
    pub more: bool,
}

/// The order of search results, and where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOrder {
    /// Newest first, older than the message with this id.
    Newest {
        /// The last message of the page before; `None` for the first page.
        before: Option<MessageId>,
    },
    /// Best match first, skipping this many.
    Relevance {
        /// Results of earlier pages.
        offset: usize,
    },
}

/// The display name of a deleted account.
pub const DELETED_DISPLAY_NAME: &str = "Deleted user";

/// The username a deleted account keeps: outside what signup allows (`~`), so no one can
/// take it, while the old username is free again.
pub fn tombstone_username(id: UserId) -> String {
    format!("~deleted-{}", id.0)
}
