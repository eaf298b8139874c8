//! Messages: the append transaction (lock, number, insert, fan out to inboxes and the push
//! outbox) and history; inboxes.

use super::rows::{self, MESSAGE_COLS, n, u};
use super::{PostgresStore, pg, pg_raced};
use crate::ids::Snowflake;
use crate::store::{
    Appended, Inbox, Messages, NewMessage, Refusal, SeqWindow, StoreError, StoreResult,
};
use async_trait::async_trait;
use confab_proto::{ConversationId, Message, MessageId, MessageKind, SyncEntry, Timestamp, UserId};
use tokio_postgres::Transaction;

#[async_trait]
impl Messages for PostgresStore {
    async fn append(&self, new: NewMessage) -> StoreResult<Appended> {
        let ids = self.ids.clone();
        self.write(move |tx| {
            let (new, ids) = (new.clone(), ids.clone());
            Box::pin(async move {
                // The conversation's lock first: everything below is decided under it.
                let locked = tx
                    .query_opt(
                        "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE",
                        &[&new.conversation_id.0],
                    )
                    .await
                    .map_err(pg)?;
                if let Some(original) = by_client_id(tx, new.sender_id, &new.client_msg_id).await? {
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
                if locked.is_none() {
                    return Err(StoreError::NotFound);
                }
                let member = tx
                    .query_opt(
                        "SELECT left_seq FROM members WHERE conversation_id = $1 AND user_id = $2",
                        &[&new.conversation_id.0, &new.sender_id.0],
                    )
                    .await
                    .map_err(pg)?;
                match member {
                    None => return Err(Refusal::NotMember.into()),
                    Some(r) if r.get::<_, Option<i64>>(0).is_some() => {
                        return Err(Refusal::NoLongerMember.into());
                    }
                    Some(_) => {}
                }
                let body = new.body.as_str();
                append(
                    tx,
                    &ids,
                    new.conversation_id,
                    new.sender_id,
                    &new.client_msg_id,
                    MessageKind::Text,
                    body,
                    Some((body.len() as i64, n(new.quota_bytes))),
                )
                .await
            })
        })
        .await
    }

    async fn messages(&self, id: ConversationId, w: SeqWindow) -> StoreResult<Vec<Message>> {
        let client = self.client().await?;
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
    }
}

async fn by_client_id(
    tx: &Transaction<'_>,
    sender: UserId,
    client_msg_id: &str,
) -> StoreResult<Option<Message>> {
    Ok(tx
        .query_opt(
            &format!(
                "SELECT {MESSAGE_COLS} FROM messages x WHERE x.sender_id = $1 AND x.client_msg_id = $2"
            ),
            &[&sender.0, &client_msg_id],
        )
        .await
        .map_err(pg)?
        .map(|r| rows::message_at(&r, 0)))
}

/// Appends to a conversation's log inside `tx`, which holds the conversation's lock: locks
/// the members' users rows (by id: the fixed order), counts the sender's quota (`quota`:
/// this message's bytes and the most allowed), takes the next seq, inserts the message, and
/// gives every active member the next entry of their inbox. Callers have checked rights.
#[allow(clippy::too_many_arguments)]
pub(super) async fn append(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    conversation_id: ConversationId,
    sender_id: UserId,
    client_msg_id: &str,
    kind: MessageKind,
    body: &str,
    quota: Option<(i64, i64)>,
) -> StoreResult<Appended> {
    let now = Timestamp::now();
    let members: Vec<i64> = tx
        .query(
            "SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
             WHERE m.conversation_id = $1 AND m.left_seq IS NULL
             ORDER BY u.id FOR UPDATE OF u",
            &[&conversation_id.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some((bytes, most)) = quota {
        let counted = tx
            .execute(
                "UPDATE users SET stored_bytes = stored_bytes + $2
                 WHERE id = $1 AND stored_bytes + $2 <= $3",
                &[&sender_id.0, &bytes, &most],
            )
            .await
            .map_err(pg)?;
        if counted == 0 {
            return Err(Refusal::QuotaExceeded.into());
        }
    }
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
    let kind_text = if kind == MessageKind::System {
        "system"
    } else {
        "text"
    };
    tx.execute(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, client_msg_id, kind, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &id.0,
            &conversation_id.0,
            &seq,
            &sender_id.0,
            &client_msg_id,
            &kind_text,
            &body,
            &now.0,
        ],
    )
    .await
    // Another node stored this client_msg_id meanwhile: start over, and find it.
    .map_err(pg_raced)?;
    // The members' users rows are locked, so their heads cannot move under us.
    let heads = tx
        .query(
            "SELECT m.id, coalesce((SELECT max(inbox_seq) FROM inbox i WHERE i.user_id = m.id), 0)
             FROM unnest($1::bigint[]) AS m(id)",
            &[&members],
        )
        .await
        .map_err(pg)?;
    let mut recipients = Vec::with_capacity(members.len());
    let (mut users, mut inbox_seqs) = (Vec::new(), Vec::new());
    for row in &heads {
        let (user, head): (i64, i64) = (row.get(0), row.get(1));
        recipients.push((UserId(user), u(head + 1)));
        users.push(user);
        inbox_seqs.push(head + 1);
    }
    tx.execute(
        "INSERT INTO inbox (user_id, inbox_seq, conversation_id, seq)
         SELECT user_id, inbox_seq, $3, $4 FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, inbox_seq)",
        &[&users, &inbox_seqs, &conversation_id.0, &seq],
    )
    .await
    .map_err(pg)?;
    let mut push_queued = false;
    if kind == MessageKind::Text {
        push_queued =
            super::push::enqueue(tx, &recipients, sender_id, conversation_id, seq).await?;
    }
    // Sending implies having read everything before.
    tx.execute(
        "UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3",
        &[&conversation_id.0, &sender_id.0, &seq],
    )
    .await
    .map_err(pg)?;
    Ok(Appended {
        message: Message {
            id,
            conversation_id,
            seq: u(seq),
            sender_id,
            client_msg_id: client_msg_id.to_owned(),
            kind,
            body: body.to_owned(),
            created_at: now,
        },
        recipients,
        duplicate: false,
        push_queued,
    })
}

/// A system message recording a membership or title change (the conversation is locked).
pub(super) async fn append_system(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    conversation_id: ConversationId,
    by: UserId,
    event: serde_json::Value,
) -> StoreResult<Appended> {
    let client_msg_id = format!("system-{}", ids.next());
    append(
        tx,
        ids,
        conversation_id,
        by,
        &client_msg_id,
        MessageKind::System,
        &event.to_string(),
        None,
    )
    .await
}

#[async_trait]
impl Inbox for PostgresStore {
    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        let client = self.client().await?;
        let head: i64 = client
            .query_one(
                "SELECT coalesce(max(inbox_seq), 0) FROM inbox WHERE user_id = $1",
                &[&user.0],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(u(head))
    }

    async fn conversation_marks(
        &self,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<(ConversationId, u64)>> {
        let client = self.client().await?;
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
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<SyncEntry>> {
        let client = self.client().await?;
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
    }
}
