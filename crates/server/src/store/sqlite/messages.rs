//! Messages: the append transaction (sequence, insert, fan-out to inboxes) and history.
//! Changes to earlier messages are appended the same way; their rules are in `changes.rs`.

use super::SqliteStore;
use super::changes;
use super::rows::{self, MESSAGE_COLS};
use super::writer::Tx;
use crate::store::{
    Appended, Messages, NewMessage, Refusal, SeqWindow, StoreError, StoreResult, Unread,
    count_reaction,
};
use async_trait::async_trait;
use confab_proto::{Action, ConversationId, Message, MessageId, MessageKind, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

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
                let Action::Text { body, reply_to } = &new.action else {
                    return changes::apply(tx, &new);
                };
                count_bytes(tx, new.sender_id, body.as_str().len(), new.quota_bytes)?;
                append(
                    tx,
                    Entry {
                        conversation_id: new.conversation_id,
                        sender_id: new.sender_id,
                        client_msg_id: &new.client_msg_id,
                        kind: MessageKind::Text,
                        body: body.as_str(),
                        target_seq: None,
                        reply_to: *reply_to,
                        mentions: &new.mentions,
                    },
                )
            })
            .await
    }

    async fn messages(
        &self,
        id: ConversationId,
        w: SeqWindow,
        viewer: UserId,
    ) -> StoreResult<Vec<Message>> {
        self.read(move |c| {
            let order = if w.newest { "DESC" } else { "ASC" };
            let sql = format!(
                "SELECT {MESSAGE_COLS} FROM messages m
                 WHERE m.conversation_id = ?1 AND m.seq > ?2 AND m.seq < ?3
                   AND m.kind IN ('text', 'system')
                   AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = ?5
                                   AND h.conversation_id = ?1 AND h.seq = m.seq)
                 ORDER BY m.seq {order} LIMIT ?4"
            );
            let before = i64::try_from(w.before).unwrap_or(i64::MAX);
            let mut out = c
                .prepare_cached(&sql)?
                .query_map(
                    params![id.0, w.after, before, w.limit, viewer.0],
                    rows::message,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            if w.newest {
                out.reverse();
            }
            add_reactions(c, id, viewer, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn unread(
        &self,
        id: ConversationId,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Unread> {
        if upto <= after {
            return Ok(Unread::default());
        }
        self.read(move |c| {
            // `nth` counts the messages up to each entry: the difference skips changes.
            Ok(c.prepare_cached(
                "SELECT
                   coalesce((SELECT nth FROM messages WHERE conversation_id = ?1 AND seq = ?3), 0)
                   - coalesce((SELECT nth FROM messages WHERE conversation_id = ?1 AND seq = ?2), 0),
                   (SELECT count(*) FROM mentions
                    WHERE user_id = ?4 AND conversation_id = ?1 AND seq > ?2 AND seq <= ?3)",
            )?
            .query_row(params![id.0, after, upto, user.0], |r| {
                Ok(Unread {
                    messages: r.get(0)?,
                    mentions: r.get(1)?,
                })
            })?)
        })
        .await
    }

    async fn unread_total(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |c| {
            // Each membership as `unread` counts it: from the read watermark (or just before
            // joining) to the newest seq the member can see, by `nth`.
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(max(0,
                   coalesce((SELECT nth FROM messages x WHERE x.conversation_id = m.conversation_id
                             AND x.seq = min(coalesce(m.left_seq, c.last_seq), c.last_seq)), 0)
                   - coalesce((SELECT nth FROM messages x WHERE x.conversation_id = m.conversation_id
                               AND x.seq = max(m.read_seq, m.joined_seq - 1)), 0))), 0)
                 FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = ?1",
            )?
            .query_row([user.0], |r| r.get(0))?)
        })
        .await
    }
}

/// Fills in the reactions of `messages` (ascending by seq), as `viewer` sees them.
fn add_reactions(
    c: &Connection,
    id: ConversationId,
    viewer: UserId,
    messages: &mut [Message],
) -> StoreResult<()> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(());
    };
    let mut statement = c.prepare_cached(
        "SELECT seq, emoji, user_id FROM reactions
         WHERE conversation_id = ?1 AND seq BETWEEN ?2 AND ?3
         ORDER BY seq, added_seq",
    )?;
    let mut rows = statement.query(params![id.0, first.seq, last.seq])?;
    let mut at = 0;
    while let Some(row) = rows.next()? {
        let (seq, emoji, user): (u64, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        while messages.get(at).is_some_and(|m| m.seq < seq) {
            at += 1;
        }
        let Some(message) = messages.get_mut(at).filter(|m| m.seq == seq) else {
            continue; // hidden from the viewer
        };
        count_reaction(&mut message.reactions, emoji, UserId(user), viewer);
    }
    Ok(())
}

/// Counts `bytes` of text against `sender`'s quota; `QuotaExceeded` past it.
pub(super) fn count_bytes(
    tx: &Tx<'_>,
    sender: UserId,
    bytes: usize,
    quota: u64,
) -> StoreResult<()> {
    let counted = tx
        .conn
        .prepare_cached(
            "UPDATE users SET stored_bytes = stored_bytes + ?2
             WHERE id = ?1 AND stored_bytes + ?2 <= ?3",
        )?
        .execute(params![
            sender.0,
            bytes,
            i64::try_from(quota).unwrap_or(i64::MAX)
        ])?;
    if counted == 0 {
        return Err(Refusal::QuotaExceeded.into());
    }
    Ok(())
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

/// One entry of a conversation's log, to append.
pub(super) struct Entry<'a> {
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub client_msg_id: &'a str,
    pub kind: MessageKind,
    pub body: &'a str,
    pub target_seq: Option<u64>,
    pub reply_to: Option<u64>,
    pub mentions: &'a [UserId],
}

/// Appends to a conversation's log inside the current batch: takes the next seq, inserts
/// the entry, and gives every active member an inbox entry (a delete for me: only its
/// sender). A message (text, system) also counts as activity and moves the sender's read
/// watermark; a change does neither. Callers have checked rights.
pub(super) fn append(tx: &Tx<'_>, entry: Entry<'_>) -> StoreResult<Appended> {
    let now = Timestamp::now();
    let Entry {
        conversation_id,
        sender_id,
        kind,
        ..
    } = entry;
    let is_message = !kind.is_change();
    let (seq, nth, blocked): (u64, u64, bool) = tx
        .conn
        .prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + 1,
               message_count = message_count + ?3,
               last_message_seq = CASE WHEN ?3 THEN last_seq + 1 ELSE last_message_seq END,
               last_activity_at = CASE WHEN ?3 THEN ?2 ELSE last_activity_at END
             WHERE id = ?1 RETURNING last_seq, message_count, blocked",
        )?
        .query_row(params![conversation_id.0, now.0, is_message], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, bool>(2)?))
        })?;
    if blocked {
        // The savepoint undoes the bump.
        return Err(Refusal::Blocked.into());
    }
    let id = MessageId(tx.ids.next());
    tx.conn
        .prepare_cached(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_msg_id, kind, body,
               created_at, nth, target_seq, reply_to, mentions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            id.0,
            conversation_id.0,
            seq,
            sender_id.0,
            entry.client_msg_id,
            kind.as_str(),
            entry.body,
            now.0,
            nth,
            entry.target_seq,
            entry.reply_to,
            rows::mentions_column(entry.mentions),
        ])
        .map_err(|e| match e.sqlite_error_code() {
            Some(deadpool_sqlite::rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::from(Refusal::ClientMsgIdUsedElsewhere)
            }
            _ => e.into(),
        })?;
    let recipients = if kind == MessageKind::DeleteForMe {
        vec![(sender_id, tx.hot.next_inbox_seq(tx.conn, sender_id.0)?)]
    } else {
        let members = tx.hot.members(tx.conn, conversation_id.0)?;
        let mut recipients = Vec::with_capacity(members.len());
        for &user in members.iter() {
            recipients.push((UserId(user), tx.hot.next_inbox_seq(tx.conn, user)?));
        }
        recipients
    };
    insert_inbox(tx, &recipients, conversation_id, seq)?;
    let mut push_queued = false;
    if kind == MessageKind::Text {
        insert_mentions(tx, conversation_id, seq, entry.mentions)?;
        for &(user, inbox_seq) in &recipients {
            if user != sender_id && tx.hot.has_push(tx.conn, user.0)? {
                super::push::enqueue(tx, user, conversation_id, inbox_seq, seq, sender_id)?;
                push_queued = true;
            }
        }
    }
    if is_message {
        // Sending implies having read everything before, so what a member sends or causes
        // never counts as unread for them.
        tx.conn
            .prepare_cached(
                "UPDATE members SET read_seq = ?3 WHERE conversation_id = ?1 AND user_id = ?2 AND read_seq < ?3",
            )?
            .execute(params![conversation_id.0, sender_id.0, seq])?;
        // Only a user with push subscriptions can have a notification shown (cached).
        if tx.hot.has_push(tx.conn, sender_id.0)? {
            super::push::refresh_on_read(tx, sender_id, conversation_id, seq)?;
        }
    }
    let mut message = Message::new(
        id,
        conversation_id,
        seq,
        sender_id,
        entry.client_msg_id.to_owned(),
        kind,
        entry.body.to_owned(),
        now,
    );
    message.target_seq = entry.target_seq;
    message.reply_to = entry.reply_to;
    message.mentions = entry.mentions.to_vec();
    Ok(Appended {
        message,
        recipients,
        duplicate: false,
        push_queued,
    })
}

/// Records that the message at `seq` mentions `users`, for their unread mention counts.
pub(super) fn insert_mentions(
    tx: &Tx<'_>,
    conversation_id: ConversationId,
    seq: u64,
    users: &[UserId],
) -> StoreResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut insert = tx.conn.prepare_cached(
        "INSERT OR IGNORE INTO mentions (user_id, conversation_id, seq) VALUES (?1, ?2, ?3)",
    )?;
    for user in users {
        insert.execute(params![user.0, conversation_id.0, seq])?;
    }
    Ok(())
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
        Entry {
            conversation_id,
            sender_id: by,
            client_msg_id: &client_msg_id,
            kind: MessageKind::System,
            body: &event.to_string(),
            target_seq: None,
            reply_to: None,
            mentions: &[],
        },
    )
}
