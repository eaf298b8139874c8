//! Messages: the append transaction (sequence, insert, fan-out to inboxes) and history.

use super::SqliteStore;
use super::rows::{self, MESSAGE_COLS};
use super::writer::Tx;
use crate::store::{Appended, Messages, NewMessage, Refusal, SeqWindow, StoreError, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, Message, MessageId, MessageKind, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

#[async_trait]
impl Messages for SqliteStore {
    async fn append(&self, new: NewMessage) -> StoreResult<Appended> {
        self.writer
            .write(move |tx| {
                if let Some(original) = by_client_id(tx, new.sender_id, &new.client_msg_id)? {
                    if original.conversation_id != new.conversation_id {
                        return Err(Refusal::ClientMsgIdUsedElsewhere.into());
                    }
                    return Ok(Appended {
                        message: original,
                        recipients: Vec::new(),
                        duplicate: true,
                        push_queued: false,
                    });
                }
                let active = tx.hot.members(tx.conn, new.conversation_id.0)?;
                if !active.contains(&new.sender_id.0) {
                    return Err(not_a_member(tx, new.conversation_id, new.sender_id)?);
                }
                let counted = tx
                    .conn
                    .prepare_cached(
                        "UPDATE users SET stored_bytes = stored_bytes + ?2
                         WHERE id = ?1 AND stored_bytes + ?2 <= ?3",
                    )?
                    .execute(params![
                        new.sender_id.0,
                        new.body.as_str().len(),
                        i64::try_from(new.quota_bytes).unwrap_or(i64::MAX)
                    ])?;
                if counted == 0 {
                    return Err(Refusal::QuotaExceeded.into());
                }
                let appended = append(
                    tx,
                    new.conversation_id,
                    new.sender_id,
                    &new.client_msg_id,
                    MessageKind::Text,
                    new.body.as_str(),
                )?;
                Ok(appended)
            })
            .await
    }

    async fn messages(&self, id: ConversationId, w: SeqWindow) -> StoreResult<Vec<Message>> {
        self.read(move |c| {
            let order = if w.newest { "DESC" } else { "ASC" };
            let sql = format!(
                "SELECT {MESSAGE_COLS} FROM messages m
                 WHERE m.conversation_id = ?1 AND m.seq > ?2 AND m.seq < ?3
                 ORDER BY m.seq {order} LIMIT ?4"
            );
            let before = i64::try_from(w.before).unwrap_or(i64::MAX);
            let mut out = c
                .prepare_cached(&sql)?
                .query_map(params![id.0, w.after, before, w.limit], rows::message)?
                .collect::<Result<Vec<_>, _>>()?;
            if w.newest {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }
}

/// Why `user` may not send here: they left, were never a member, or there is no such
/// conversation.
fn not_a_member(tx: &Tx<'_>, id: ConversationId, user: UserId) -> StoreResult<StoreError> {
    let member = tx
        .conn
        .prepare_cached("SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2")?
        .query_row(params![id.0, user.0], |_| Ok(()))
        .optional()?;
    Ok(if member.is_some() {
        Refusal::NoLongerMember.into()
    } else if conversation_exists(tx, id)? {
        Refusal::NotMember.into()
    } else {
        StoreError::NotFound
    })
}

fn conversation_exists(tx: &Tx<'_>, id: ConversationId) -> StoreResult<bool> {
    Ok(tx
        .conn
        .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1")?
        .query_row([id.0], |_| Ok(()))
        .optional()?
        .is_some())
}

fn by_client_id(tx: &Tx<'_>, sender: UserId, client_msg_id: &str) -> StoreResult<Option<Message>> {
    Ok(tx
        .conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM messages m WHERE m.sender_id = ?1 AND m.client_msg_id = ?2"
        ))?
        .query_row(params![sender.0, client_msg_id], rows::message)
        .optional()?)
}

/// Appends to a conversation's log inside the current batch: takes the next seq, inserts
/// the message, and gives every active member an inbox entry. Callers have checked rights.
pub(super) fn append(
    tx: &Tx<'_>,
    conversation_id: ConversationId,
    sender_id: UserId,
    client_msg_id: &str,
    kind: MessageKind,
    body: &str,
) -> StoreResult<Appended> {
    let now = Timestamp::now();
    let seq: u64 = tx
        .conn
        .prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = ?2
             WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row(params![conversation_id.0, now.0], |r| r.get(0))?;
    let id = MessageId(tx.ids.next());
    tx.conn
        .prepare_cached(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            id.0,
            conversation_id.0,
            seq,
            sender_id.0,
            client_msg_id,
            if kind == MessageKind::System { "system" } else { "text" },
            body,
            now.0
        ])
        .map_err(|e| match e.sqlite_error_code() {
            Some(deadpool_sqlite::rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::from(Refusal::ClientMsgIdUsedElsewhere)
            }
            _ => e.into(),
        })?;
    let members = tx.hot.members(tx.conn, conversation_id.0)?;
    let mut recipients = Vec::with_capacity(members.len());
    for &user in members.iter() {
        recipients.push((UserId(user), tx.hot.next_inbox_seq(tx.conn, user)?));
    }
    insert_inbox(tx, &recipients, conversation_id, seq)?;
    let mut push_queued = false;
    if kind == MessageKind::Text {
        for &(user, inbox_seq) in &recipients {
            if user != sender_id && tx.hot.has_push(tx.conn, user.0)? {
                super::push::enqueue(tx, user, conversation_id, inbox_seq, seq, sender_id)?;
                push_queued = true;
            }
        }
    }
    // Sending implies having read everything before, so what a member sends or causes
    // never counts as unread for them.
    tx.conn
        .prepare_cached(
            "UPDATE members SET read_seq = ?3 WHERE conversation_id = ?1 AND user_id = ?2 AND read_seq < ?3",
        )?
        .execute(params![conversation_id.0, sender_id.0, seq])?;
    let message = Message {
        id,
        conversation_id,
        seq,
        sender_id,
        client_msg_id: client_msg_id.to_owned(),
        kind,
        body: body.to_owned(),
        created_at: now,
    };
    Ok(Appended {
        message,
        recipients,
        duplicate: false,
        push_queued,
    })
}

/// Inbox rows go in with multi-row INSERTs in power-of-two chunks (at most this many rows),
/// so a group message costs a few statements, not one per member, and the few statement
/// shapes stay in the prepared-statement cache.
const INBOX_CHUNK: usize = 64;

fn insert_inbox(
    tx: &Tx<'_>,
    recipients: &[(UserId, u64)],
    conversation_id: ConversationId,
    seq: u64,
) -> StoreResult<()> {
    let mut rest = recipients;
    while !rest.is_empty() {
        let n = prev_power_of_two(rest.len().min(INBOX_CHUNK));
        let (chunk, tail) = rest.split_at(n);
        let rows = vec!["(?, ?, ?, ?)"; n].join(", ");
        let mut insert = tx.conn.prepare_cached(&format!(
            "INSERT INTO inbox (user_id, inbox_seq, conversation_id, seq) VALUES {rows}"
        ))?;
        for (i, &(user, inbox_seq)) in chunk.iter().enumerate() {
            insert.raw_bind_parameter(4 * i + 1, user.0)?;
            insert.raw_bind_parameter(4 * i + 2, inbox_seq)?;
            insert.raw_bind_parameter(4 * i + 3, conversation_id.0)?;
            insert.raw_bind_parameter(4 * i + 4, seq)?;
        }
        insert.raw_execute()?;
        rest = tail;
    }
    Ok(())
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// A system message recording a membership or title change; its body is a JSON object.
pub(super) fn append_system(
    tx: &Tx<'_>,
    conversation_id: ConversationId,
    by: UserId,
    event: serde_json::Value,
) -> StoreResult<Appended> {
    let client_msg_id = format!("system-{}", tx.ids.next());
    append(
        tx,
        conversation_id,
        by,
        &client_msg_id,
        MessageKind::System,
        &event.to_string(),
    )
}
