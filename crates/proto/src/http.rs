//! HTTP request and response bodies of the API under `/v1`.

use crate::{ConversationId, DeviceId, MessageId, PushSubscriptionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// Unique, 3-32 characters of `a-z 0-9 _ . -`.
    pub username: String,
    /// Shown to others; at most 64 characters.
    pub display_name: String,
    /// When the account was made.
    pub created_at: Timestamp,
    /// The account was deleted: its messages stay, from "Deleted user", and nobody can
    /// write to it, add it to a group or find it by username.
    #[serde(default)]
    pub deleted: bool,
}

/// `POST /v1/auth/signup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignupRequest {
    /// The wanted username.
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    /// Defaults to the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// A name for the device this login creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// The answer to a login: a new device and its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The bearer token of the new device. Shown once; the server keeps only its hash.
    pub token: String,
    /// The new device.
    pub device_id: DeviceId,
    /// The user.
    pub user: User,
}

/// `{user}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserResponse {
    /// The user.
    pub user: User,
}

/// `PATCH /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateMeRequest {
    /// The new display name.
    pub display_name: String,
}

/// `POST /v1/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangePasswordRequest {
    /// The password now.
    pub current_password: String,
    /// The password from now on (8-1024 characters).
    pub new_password: String,
}

/// `DELETE /v1/me`: the password again, so a device left unlocked cannot do it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The password now.
    pub password: String,
}

/// `GET /v1/me/export`: everything the caller can see, as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountExport {
    /// `confab-export-1`; a new shape gets a new name.
    pub format: String,
    /// When the export was made.
    pub exported_at: Timestamp,
    /// The caller's profile.
    pub user: User,
    /// What the caller shares.
    pub privacy: Privacy,
    /// The caller's logged-in devices.
    pub devices: Vec<Device>,
    /// Whom the caller blocked.
    pub blocks: Vec<BlockedUser>,
    /// Every conversation the caller is or was in, most recent activity first.
    pub conversations: Vec<ExportedConversation>,
}

/// One conversation of an export, with every message the caller may see in it, oldest
/// first, as `GET .../messages` shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedConversation {
    /// The conversation as `GET /v1/conversations/{id}` shows it.
    pub conversation: Conversation,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
}

/// One logged-in device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The device's id.
    pub id: DeviceId,
    /// The name given at login.
    pub name: String,
    /// When it logged in.
    pub created_at: Timestamp,
    /// When it was last seen.
    pub last_active_at: Timestamp,
    /// The highest inbox entry it has acknowledged.
    pub cursor: u64,
    /// True for the device making the request.
    #[serde(default)]
    pub current: bool,
}

/// `{devices: [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevicesResponse {
    /// The user's devices.
    pub devices: Vec<Device>,
}

/// Direct chat or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two users; one per pair.
    Direct,
    /// Up to 100 members with an admin.
    Group,
}

/// A member's role in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May rename the group and add or remove members.
    Admin,
    /// May read and post.
    Member,
}

/// A current member of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Who.
    pub user_id: UserId,
    /// Admin or member.
    pub role: Role,
    /// The highest seq any of this user's devices has.
    #[serde(default)]
    pub delivered_seq: u64,
    /// The highest seq this user has read.
    #[serde(default)]
    pub read_seq: u64,
}

/// A conversation as its caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation's id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// The group's title; null for direct conversations.
    pub title: Option<String>,
    /// The current members.
    pub members: Vec<Member>,
    /// The newest seq the caller can see.
    pub last_seq: u64,
    /// The caller's read watermark.
    pub read_seq: u64,
    /// Messages after the read watermark that the caller can see.
    pub unread: u64,
    /// Of those, the ones that mention the caller (and are not deleted).
    #[serde(default)]
    pub unread_mentions: u64,
    /// The newest message the caller can see.
    pub last_message: Option<Message>,
    /// False once the caller has left or was removed; the history up to then stays readable.
    #[serde(default = "yes")]
    pub active: bool,
    /// The caller's own settings for it, the same on each of their devices.
    #[serde(default)]
    pub settings: ConversationSettings,
}

/// How much a conversation notifies a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyLevel {
    /// Every message.
    #[default]
    All,
    /// Only messages that mention the member.
    Mentions,
    /// Nothing, mentions included.
    None,
}

impl NotifyLevel {
    /// The level as it appears on the wire (and in the stores).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Mentions => "mentions",
            Self::None => "none",
        }
    }

    /// The level spelled `name` on the wire.
    pub fn named(name: &str) -> Option<Self> {
        [Self::All, Self::Mentions, Self::None]
            .into_iter()
            .find(|l| l.as_str() == name)
    }
}

/// A member's settings for a conversation, kept by the server for all their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConversationSettings {
    /// What notifies them.
    pub notify: NotifyLevel,
    /// When `notify` goes back to `all` by itself; absent: when they change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_until: Option<Timestamp>,
    /// Out of the main list. It comes back by itself when a message arrives that would
    /// notify at `notify` (any message at `all`, a mention at `mentions`, never at `none`).
    pub archived: bool,
    /// Shown at the top of their list.
    pub pinned: bool,
}

/// `PATCH /v1/conversations/{id}/settings`: what to change; absent fields stay (`null` is
/// refused rather than read as either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// The new level, until `notify_until` if given.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub notify: Option<NotifyLevel>,
    /// With `notify` only: when it goes back to `all`; in the future, within a year.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub notify_until: Option<Timestamp>,
    /// Archive or bring back.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub archived: Option<bool>,
    /// Pin or unpin.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pinned: Option<bool>,
}

/// A field that may be absent but not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// What a user shares with others. Hiding one hides the others' from them too: a user who
/// does not show their last seen sees nobody's; one who sends no read receipts gets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    /// Others see when they were last active (`last_active_at` in presence).
    pub last_seen: bool,
    /// Others see how far they have read (`read` receipts, `members[].read_seq`).
    pub read_receipts: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            last_seen: true,
            read_receipts: true,
        }
    }
}

/// `PATCH /v1/me/privacy`: what to change; absent fields stay (`null` is refused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyChange {
    /// Share the last seen time.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_seen: Option<bool>,
    /// Send read receipts.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_receipts: Option<bool>,
}

/// `{privacy}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivacyResponse {
    /// The caller's privacy settings.
    pub privacy: Privacy,
}

/// Someone the caller blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedUser {
    /// Who.
    pub user_id: UserId,
    /// Since when.
    pub created_at: Timestamp,
}

/// `{blocks: [...]}`, the newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlocksResponse {
    /// Whom the caller blocked.
    pub blocks: Vec<BlockedUser>,
}

/// `{settings}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsResponse {
    /// The conversation's settings after the change.
    pub settings: ConversationSettings,
}

fn yes() -> bool {
    true
}

/// `{conversation}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationResponse {
    /// The conversation.
    pub conversation: Conversation,
}

/// `{conversations: [...]}`, most recent activity first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationsResponse {
    /// The conversations.
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `POST /v1/conversations/direct`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectRequest {
    /// The other user.
    pub user_id: UserId,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateGroupRequest {
    /// 1-64 characters.
    pub title: String,
    /// The other members; the caller is added as admin.
    #[serde(default)]
    pub member_ids: Vec<UserId>,
}

/// `PATCH /v1/groups/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameGroupRequest {
    /// 1-64 characters.
    pub title: String,
}

/// `POST /v1/groups/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMemberRequest {
    /// Who to add.
    pub user_id: UserId,
}

/// What a log entry is: a message people read (text, system), or a change to an earlier
/// message (`target_seq`), which clients apply to it and never show on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Written by a user.
    #[default]
    Text,
    /// Written by the server: a group was made, renamed, joined or left. The body is JSON.
    System,
    /// New text for the target (`body`); only its sender edits.
    Edit,
    /// The target deleted for everyone: its text is gone, a tombstone keeps its seq.
    Delete,
    /// The target hidden from every device of this entry's sender; no one else gets it.
    DeleteForMe,
    /// The sender reacted to the target with the emoji in `body`.
    React,
    /// The sender took back the reaction in `body`.
    Unreact,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 7] = [
        Self::Text,
        Self::System,
        Self::Edit,
        Self::Delete,
        Self::DeleteForMe,
        Self::React,
        Self::Unreact,
    ];

    /// A change to an earlier message rather than a message: not in history, never unread,
    /// never moves a conversation up the list.
    pub fn is_change(self) -> bool {
        !matches!(self, Self::Text | Self::System)
    }

    /// The kind as it appears on the wire (and in the stores).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::System => "system",
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::DeleteForMe => "delete_for_me",
            Self::React => "react",
            Self::Unreact => "unreact",
        }
    }

    /// The kind spelled `name` on the wire.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One emoji on a message, with who put it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: u32,
    /// Whether the caller is one of them.
    pub me: bool,
    /// Who, in the order they reacted.
    pub user_ids: Vec<UserId>,
}

/// A stored message, or a change to one. History and `last_message` give messages as they
/// stand now (edited text, tombstones, reactions); inbox entries give each change as it
/// happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Globally unique and time-sortable.
    pub id: MessageId,
    /// Where it was sent.
    pub conversation_id: ConversationId,
    /// Its place in the conversation: gap-free from 1.
    pub seq: u64,
    /// Who sent it (for system messages, who caused it).
    pub sender_id: UserId,
    /// The sender's id for it.
    pub client_msg_id: String,
    /// Text, system, or a change.
    pub kind: MessageKind,
    /// The text (a change: the new text, the emoji, or empty).
    pub body: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// A change: the seq of the message it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seq: Option<u64>,
    /// A reply: the seq of the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// The members it mentions (`@username`), as the server found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// When its text was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// When it was deleted for everyone: a tombstone, with no text, mentions or reactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Its reactions (history and `last_message` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The seq of the newest change this state includes (history only): a client applies a
    /// change to it only when the change's seq is higher.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changed_seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Message {
    /// A message as just stored: no change applied yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: MessageId,
        conversation_id: ConversationId,
        seq: u64,
        sender_id: UserId,
        client_msg_id: String,
        kind: MessageKind,
        body: String,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            conversation_id,
            seq,
            sender_id,
            client_msg_id,
            kind,
            body,
            created_at,
            target_seq: None,
            reply_to: None,
            mentions: Vec::new(),
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
            changed_seq: 0,
        }
    }
}

/// `POST /v1/conversations/{id}/messages`: a message, or a change to one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// The client's id; a retry with the same id returns the original.
    pub client_msg_id: String,
    /// `text` unless a change.
    #[serde(default)]
    pub kind: MessageKind,
    /// Text: 1 to 99,999 characters (also an edit's); a reaction: the emoji; deletes: none.
    #[serde(default)]
    pub body: String,
    /// A change: the seq of the message it changes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_whole_number"
    )]
    pub target_seq: Option<u64>,
    /// A text message: the seq of the message it answers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_whole_number"
    )]
    pub reply_to: Option<u64>,
}

/// `{message}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageResponse {
    /// The message.
    pub message: Message,
}

/// `{messages: [...]}`, ascending by seq.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// The page.
    pub messages: Vec<Message>,
}

/// `GET /v1/search`: messages the caller may see that match, with where they matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResponse {
    /// The page, in the order asked for.
    pub results: Vec<SearchResult>,
    /// Pass as `cursor` for the next page; absent after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The message as it stands now (its conversation is `message.conversation_id`).
    pub message: Message,
    /// A passage around the first match, cut into plain and matched parts.
    pub snippet: Vec<SnippetPart>,
}

/// A piece of a snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    /// The text, as written (`…` where the passage was cut).
    pub text: String,
    /// Whether it matched the query (to highlight).
    #[serde(rename = "match", default, skip_serializing_if = "std::ops::Not::not")]
    pub matched: bool,
}

/// `POST /v1/conversations/{id}/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The highest seq read.
    #[serde(deserialize_with = "whole_number")]
    pub seq: u64,
}

/// A JSON integer, written any way JSON Schema counts as one (`4`, `4.0`, `1e3`), of 0 or
/// more; past `u64::MAX` it is `u64::MAX`.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Float(f64),
    }
    match Number::deserialize(d)? {
        Number::Int(n) => Ok(n),
        // `as` saturates: a seq past every message reads them all, as the server clamps it.
        Number::Float(f) if f.fract() == 0.0 && f >= 0.0 => Ok(f as u64),
        Number::Float(_) => Err(serde::de::Error::custom(
            "expected a whole number of 0 or more",
        )),
    }
}

/// An optional [`whole_number`]; `null` is none.
pub(crate) fn some_whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

/// One entry of a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEntry {
    /// Its position in the inbox.
    pub inbox_seq: u64,
    /// The message.
    pub message: Message,
}

/// `GET /v1/sync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Entries after the asked position, ascending.
    pub entries: Vec<SyncEntry>,
    /// The inbox head.
    pub inbox_seq: u64,
}

/// Online or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// A device heartbeats.
    Online,
    /// No device heartbeats.
    Offline,
}

/// A user's presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Whose.
    pub user_id: UserId,
    /// Online or offline.
    pub status: PresenceStatus,
    /// When the user was last active; null if never.
    pub last_active_at: Option<Timestamp>,
}

/// `{presence: [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceResponse {
    /// One per asked user that exists.
    pub presence: Vec<Presence>,
}

/// A node to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its base URL (HTTP; the WebSocket is at `/v1/ws` under it).
    pub url: String,
    /// Its node id.
    pub node_id: u16,
    /// Open sessions divided by capacity, 0.0 to 1.0 (as thousandths, to stay an integer).
    pub load: u32,
    /// The node's region (its `region` setting; empty when it has none).
    #[serde(default)]
    pub region: String,
}

/// `GET /v1/discovery`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveryResponse {
    /// Best first.
    pub servers: Vec<ServerInfo>,
}

/// `{id}` of a new push subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushSubscriptionResponse {
    /// The subscription.
    pub id: PushSubscriptionId,
}

/// `POST /v1/push/subscriptions`: where to wake this device when it is offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PushSubscriptionRequest {
    /// A browser's Web Push subscription (`PushSubscription.toJSON()`).
    Webpush {
        /// The push service URL (absolute, https).
        endpoint: String,
        /// The browser's keys.
        keys: WebPushKeys,
    },
    /// A Firebase Cloud Messaging registration token.
    Fcm {
        /// The registration token.
        token: String,
    },
    /// An Apple Push Notification service device token (hex).
    Apns {
        /// The device token.
        token: String,
    },
}

/// The keys of a Web Push subscription, base64url (RFC 8291).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    /// The browser's P-256 public key: 65 bytes, uncompressed.
    pub p256dh: String,
    /// The authentication secret: 16 bytes.
    pub auth: String,
}

/// `GET /v1/push/vapid-public-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VapidKeyResponse {
    /// The server's VAPID public key, base64url of the 65-byte uncompressed P-256 point: the
    /// `applicationServerKey` of `pushManager.subscribe`.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_seq_is_any_json_integer() {
        let seq = |json: &str| serde_json::from_str::<ReadRequest>(json).map(|r| r.seq);
        assert_eq!(seq(r#"{"seq": 4}"#).unwrap(), 4);
        assert_eq!(seq(r#"{"seq": 5898.0}"#).unwrap(), 5898);
        assert_eq!(seq(r#"{"seq": 1e3}"#).unwrap(), 1000);
        assert_eq!(seq(r#"{"seq": 72222309481156132864}"#).unwrap(), u64::MAX);
        assert!(seq(r#"{"seq": 4.5}"#).is_err());
        assert!(seq(r#"{"seq": -1}"#).is_err());
        assert!(seq(r#"{"seq": "4"}"#).is_err());
    }

    #[test]
    fn a_settings_change_names_only_what_it_changes() {
        let change = |json: &str| serde_json::from_str::<SettingsChange>(json);
        assert_eq!(
            change(r#"{"pinned": true}"#).unwrap(),
            SettingsChange {
                pinned: Some(true),
                ..Default::default()
            }
        );
        assert_eq!(change("{}").unwrap(), SettingsChange::default());
        assert!(change(r#"{"pinned": null}"#).is_err(), "null is neither");
        assert!(change(r#"{"archive": true}"#).is_err(), "a misspelt field");
        assert!(change(r#"{"notify": "muted"}"#).is_err());
    }
}
