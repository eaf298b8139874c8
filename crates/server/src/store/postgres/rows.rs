//! Reading rows into the store's records. Sequence numbers are `BIGINT` here and `u64`
//! above; they never pass 2^63 (`limits::SEQ_MAX`), so the casts are exact.

use crate::store::{ConversationRecord, DeviceRecord, MemberRecord};
use confab_proto::{
    ConversationId, ConversationKind, DeviceId, Message, MessageId, MessageKind, Role, Timestamp,
    User, UserId,
};
use tokio_postgres::Row;

/// A `u64` sequence number as PostgreSQL stores it.
pub fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored `BIGINT` as the `u64` it stands for.
pub fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub const USER_COLS: &str = "id, username, display_name, created_at, deleted_at IS NOT NULL";

pub fn user(r: &Row) -> User {
    User {
        id: UserId(r.get(0)),
        username: r.get(1),
        display_name: r.get(2),
        created_at: Timestamp(r.get(3)),
        deleted: r.get(4),
    }
}

pub const DEVICE_COLS: &str = "id, user_id, name, created_at, last_active_at, cursor";

pub fn device(r: &Row) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId(r.get(0)),
        user_id: UserId(r.get(1)),
        name: r.get(2),
        created_at: Timestamp(r.get(3)),
        last_active_at: Timestamp(r.get(4)),
        cursor: u(r.get(5)),
    }
}

pub const CONVERSATION_COLS: &str =
    "c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq, c.last_message_seq";

pub fn conversation(r: &Row) -> ConversationRecord {
    ConversationRecord {
        id: ConversationId(r.get(0)),
        kind: if r.get::<_, &str>(1) == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        },
        title: r.get(2),
        created_by: UserId(r.get(3)),
        created_at: Timestamp(r.get(4)),
        last_seq: u(r.get(5)),
        last_message_seq: u(r.get(6)),
    }
}

pub const MEMBER_COLS: &str =
    "m.user_id, m.role, m.joined_seq, m.left_seq, m.read_seq, m.delivered_seq";

pub fn member_at(r: &Row, at: usize) -> MemberRecord {
    MemberRecord {
        user_id: UserId(r.get(at)),
        role: if r.get::<_, &str>(at + 1) == "admin" {
            Role::Admin
        } else {
            Role::Member
        },
        joined_seq: u(r.get(at + 2)),
        left_seq: r.get::<_, Option<i64>>(at + 3).map(u),
        read_seq: u(r.get(at + 4)),
        delivered_seq: u(r.get(at + 5)),
    }
}

pub const MESSAGE_COLS: &str = "x.id, x.conversation_id, x.seq, x.sender_id, x.client_msg_id, \
     x.kind, x.body, x.created_at, x.target_seq, x.reply_to, x.mentions, x.edited_at, \
     x.deleted_at, x.changed_seq";

/// Reads a message row starting at column `at` (reactions are read apart).
pub fn message_at(r: &Row, at: usize) -> Message {
    Message {
        id: MessageId(r.get(at)),
        conversation_id: ConversationId(r.get(at + 1)),
        seq: u(r.get(at + 2)),
        sender_id: UserId(r.get(at + 3)),
        client_msg_id: r.get(at + 4),
        kind: MessageKind::named(r.get(at + 5)).unwrap_or_default(),
        body: r.get(at + 6),
        created_at: Timestamp(r.get(at + 7)),
        target_seq: r.get::<_, Option<i64>>(at + 8).map(u),
        reply_to: r.get::<_, Option<i64>>(at + 9).map(u),
        mentions: r
            .get::<_, Option<Vec<i64>>>(at + 10)
            .unwrap_or_default()
            .into_iter()
            .map(UserId)
            .collect(),
        edited_at: r.get::<_, Option<i64>>(at + 11).map(Timestamp),
        deleted_at: r.get::<_, Option<i64>>(at + 12).map(Timestamp),
        reactions: Vec::new(),
        changed_seq: u(r.get(at + 13)),
    }
}
