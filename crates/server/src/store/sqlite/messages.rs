//! Messages: the append transaction (sequence, insert, fan-out to inboxes) and history.

use super::SqliteStore;
use super::rows::{self, MESSAGE_COLS};
use super::writer::Tx;
use crate::store::{Appended, Messages, NewMessage, SeqWindow, StoreError, StoreResult};
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
                        return Err(StoreError::Conflict(
                            "this client_msg_id was already used for a message in another conversation",
                        ));
                    }
                    return Ok(Appended { message: original, recipients: Vec::new(), duplicate: true });
                }
                let member = tx
                    .conn
                    .prepare_cached(
                        "SELECT left_seq IS NULL FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                    )?
                    .query_row(params![new.conversation_id.0, new.sender_id.0], |r| r.get::<_, bool>(0))
                    .optional()?;
                match member {
                    Some(true) => {}
                    Some(false) => return Err(StoreError::Forbidden("you are no longer a member of this conversation")),
                    None if conversation_exists(tx, new.conversation_id)? => {
                        return Err(StoreError::Forbidden("you are not a member of this conversation"));
                    }
                    None => return Err(StoreError::NotFound),
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
                StoreError::Conflict("this client_msg_id was already used")
            }
            _ => e.into(),
        })?;
    let members: Vec<i64> = tx
        .conn
        .prepare_cached(
            "SELECT user_id FROM members WHERE conversation_id = ?1 AND left_seq IS NULL",
        )?
        .query_map([conversation_id.0], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut bump = tx.conn.prepare_cached(
        "UPDATE users SET inbox_head = inbox_head + 1 WHERE id = ?1 RETURNING inbox_head",
    )?;
    let mut insert = tx.conn.prepare_cached(
        "INSERT INTO inbox (user_id, inbox_seq, conversation_id, seq) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut recipients = Vec::with_capacity(members.len());
    for user in members {
        let inbox_seq: u64 = bump.query_row([user], |r| r.get(0))?;
        insert.execute(params![user, inbox_seq, conversation_id.0, seq])?;
        recipients.push((UserId(user), inbox_seq));
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
    })
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
