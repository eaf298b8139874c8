//! Messages: sends (group committed, `commit.rs`), system messages appended inside another
//! write's transaction, history; inboxes.

use super::rows::{self, MESSAGE_COLS, n, u};
use super::{PostgresStore, pg};
use crate::ids::Snowflake;
use crate::store::{Appended, Inbox, Messages, NewMessage, SeqWindow, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, Message, MessageId, MessageKind, SyncEntry, Timestamp, UserId};
use tokio_postgres::Transaction;

#[async_trait]
impl Messages for PostgresStore {
    async fn append(&self, new: NewMessage) -> StoreResult<Appended> {
        self.sends.append(new).await
    }

    async fn messages(&self, id: ConversationId, w: SeqWindow) -> StoreResult<Vec<Message>> {
        self.with_client(|client| async move {
            let order = if w.newest { "DESC" } else { "ASC" };
            let mut out: Vec<Message> = client
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLS} FROM messages x
                     WHERE x.conversation_id = $1 AND x.seq > $2 AND x.seq < $3
                     ORDER BY x.seq {order} LIMIT $4"
                    ),
                    &[&id.0, &n(w.after), &n(w.before), &(w.limit as i64)],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| rows::message_at(r, 0))
                .collect();
            if w.newest {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }
}

/// Appends a system message recording a membership or title change to a conversation's
/// log inside `tx`, which holds the conversation's lock: locks the members' users rows (by
/// id: the fixed order), takes the next seq, and gives every active member the next entry
/// of their inbox. Callers have checked rights.
pub(super) async fn append_system(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    conversation_id: ConversationId,
    by: UserId,
    event: serde_json::Value,
) -> StoreResult<Appended> {
    let now = Timestamp::now();
    let client_msg_id = format!("system-{}", ids.next());
    let body = event.to_string();
    let members: Vec<i64> = tx
        .query(
            "SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
             WHERE m.conversation_id = $1 AND m.left_seq IS NULL
             ORDER BY u.id FOR NO KEY UPDATE OF u",
            &[&conversation_id.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Each member's next inbox entry; their rows are locked, so nobody else's can interleave.
    let heads = tx
        .query(
            "UPDATE users SET inbox_head = inbox_head + 1 WHERE id = ANY($1) RETURNING id, inbox_head",
            &[&members],
        )
        .await
        .map_err(pg)?;
    let seq: i64 = tx
        .query_one(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $2
             WHERE id = $1 RETURNING last_seq",
            &[&conversation_id.0, &now.0],
        )
        .await
        .map_err(pg)?
        .get(0);
    let id = MessageId(ids.next());
    tx.execute(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)
         VALUES ($1, $2, $3, $4, $5, 'system', $6, $7)",
        &[&id.0, &conversation_id.0, &seq, &by.0, &client_msg_id, &body, &now.0],
    )
    .await
    .map_err(pg)?;
    let mut recipients = Vec::with_capacity(heads.len());
    let (mut users, mut inbox_seqs) = (Vec::new(), Vec::new());
    for row in &heads {
        let (user, head): (i64, i64) = (row.get(0), row.get(1));
        recipients.push((UserId(user), u(head)));
        users.push(user);
        inbox_seqs.push(head);
    }
    recipients.sort_unstable();
    tx.execute(
        "INSERT INTO inbox (user_id, inbox_seq, conversation_id, seq)
         SELECT user_id, inbox_seq, $3, $4 FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, inbox_seq)",
        &[&users, &inbox_seqs, &conversation_id.0, &seq],
    )
    .await
    .map_err(pg)?;
    // Acting in a conversation implies having read everything before.
    tx.execute(
        "UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3",
        &[&conversation_id.0, &by.0, &seq],
    )
    .await
    .map_err(pg)?;
    Ok(Appended {
        message: Message {
            id,
            conversation_id,
            seq: u(seq),
            sender_id: by,
            client_msg_id,
            kind: MessageKind::System,
            body,
            created_at: now,
        },
        recipients,
        duplicate: false,
        push_queued: false,
    })
}

#[async_trait]
impl Inbox for PostgresStore {
    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        self.with_client(|client| async move {
            let head = client
                .query_opt("SELECT inbox_head FROM users WHERE id = $1", &[&user.0])
                .await
                .map_err(pg)?;
            Ok(head.map_or(0, |r| u(r.get(0))))
        })
        .await
    }

    async fn conversation_marks(
        &self,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<(ConversationId, u64)>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "SELECT i.conversation_id, max(i.seq) FROM inbox i
                 JOIN messages x ON x.conversation_id = i.conversation_id AND x.seq = i.seq
                 WHERE i.user_id = $1 AND i.inbox_seq > $2 AND i.inbox_seq <= $3
                   AND x.sender_id != $1
                 GROUP BY i.conversation_id",
                    &[&user.0, &n(after), &n(upto)],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| (ConversationId(r.get(0)), u(r.get(1))))
                .collect())
        })
        .await
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<SyncEntry>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    &format!(
                        "SELECT i.inbox_seq, {MESSAGE_COLS} FROM inbox i
                     JOIN messages x ON x.conversation_id = i.conversation_id AND x.seq = i.seq
                     WHERE i.user_id = $1 AND i.inbox_seq > $2
                     ORDER BY i.inbox_seq LIMIT $3"
                    ),
                    &[&user.0, &n(after), &(limit as i64)],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| SyncEntry {
                    inbox_seq: u(r.get(0)),
                    message: rows::message_at(r, 1),
                })
                .collect())
        })
        .await
    }
}
