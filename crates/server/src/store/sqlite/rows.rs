//! Turning rows into records, and the SQL column lists that go with them.

use crate::store::{ConversationRecord, DeviceRecord, MemberRecord};
use confab_proto::{
    ConversationId, ConversationKind, DeviceId, Message, MessageId, MessageKind, Role, Timestamp,
    User, UserId,
};
use deadpool_sqlite::rusqlite::{Result, Row};

pub const USER_COLS: &str = "id, username, display_name, created_at, deleted_at IS NOT NULL";

pub fn user(r: &Row<'_>) -> Result<User> {
    Ok(User {
        id: UserId(r.get(0)?),
        username: r.get(1)?,
        display_name: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        deleted: r.get(4)?,
    })
}

pub const DEVICE_COLS: &str = "id, user_id, name, created_at, last_active_at, cursor";

pub fn device(r: &Row<'_>) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: DeviceId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        name: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        last_active_at: Timestamp(r.get(4)?),
        cursor: r.get(5)?,
    })
}

pub const CONVERSATION_COLS: &str =
    "id, kind, title, created_by, created_at, last_seq, last_message_seq";

pub fn conversation(r: &Row<'_>) -> Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: ConversationId(r.get(0)?),
        kind: if r.get_ref(1)?.as_str().unwrap_or("") == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        },
        title: r.get(2)?,
        created_by: UserId(r.get(3)?),
        created_at: Timestamp(r.get(4)?),
        last_seq: r.get(5)?,
        last_message_seq: r.get(6)?,
    })
}

pub const MEMBER_COLS: &str = "user_id, role, joined_seq, left_seq, read_seq, delivered_seq";

/// Reads a member row starting at column `at`.
pub fn member_at(r: &Row<'_>, at: usize) -> Result<MemberRecord> {
    Ok(MemberRecord {
        user_id: UserId(r.get(at)?),
        role: if r.get_ref(at + 1)?.as_str().unwrap_or("") == "admin" {
            Role::Admin
        } else {
            Role::Member
        },
        joined_seq: r.get(at + 2)?,
        left_seq: r.get(at + 3)?,
        read_seq: r.get(at + 4)?,
        delivered_seq: r.get(at + 5)?,
    })
}

pub fn member(r: &Row<'_>) -> Result<MemberRecord> {
    member_at(r, 0)
}

pub const MESSAGE_COLS: &str = "m.id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, \
     m.kind, m.body, m.created_at, m.target_seq, m.reply_to, m.mentions, m.edited_at, \
     m.deleted_at, m.changed_seq";

/// Reads a message row starting at column `at` (reactions are read apart).
pub fn message_at(r: &Row<'_>, at: usize) -> Result<Message> {
    let kind = r.get_ref(at + 5)?.as_str().unwrap_or("");
    Ok(Message {
        id: MessageId(r.get(at)?),
        conversation_id: ConversationId(r.get(at + 1)?),
        seq: r.get(at + 2)?,
        sender_id: UserId(r.get(at + 3)?),
        client_msg_id: r.get(at + 4)?,
        kind: MessageKind::named(kind).unwrap_or_default(),
        body: r.get(at + 6)?,
        created_at: Timestamp(r.get(at + 7)?),
        target_seq: r.get(at + 8)?,
        reply_to: r.get(at + 9)?,
        mentions: parse_mentions(r.get_ref(at + 10)?.as_str_or_null()?.unwrap_or("")),
        edited_at: r.get::<_, Option<i64>>(at + 11)?.map(Timestamp),
        deleted_at: r.get::<_, Option<i64>>(at + 12)?.map(Timestamp),
        reactions: Vec::new(),
        changed_seq: r.get(at + 13)?,
    })
}

/// The `mentions` column: user ids separated by commas.
pub fn parse_mentions(column: &str) -> Vec<UserId> {
    column
        .split(',')
        .filter_map(|id| id.parse().ok().map(UserId))
        .collect()
}

/// The `mentions` column for these users; `None` for none.
pub fn mentions_column(users: &[UserId]) -> Option<String> {
    (!users.is_empty()).then(|| {
        users
            .iter()
            .map(|u| u.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

pub fn message(r: &Row<'_>) -> Result<Message> {
    message_at(r, 0)
}
