//! Messages: sends (group committed, `commit.rs`), system messages and changes appended in
//! a transaction of their own (`changes.rs` has the rules), history; inboxes.

use super::changes;
use super::rows::{self, MESSAGE_COLS, n, u};
use super::{PostgresStore, pg, pg_raced};
use crate::ids::Snowflake;
use crate::store::{
    Appended, Inbox, Messages, NewMessage, SeqWindow, StoreResult, Unread, count_reaction,
};
use async_trait::async_trait;
use confab_proto::{
    Action, ConversationId, Message, MessageId, MessageKind, SyncEntry, Timestamp, UserId,
};
use tokio_postgres::Transaction;

#[async_trait]
impl Messages for PostgresStore {
    async fn append(&self, new: NewMessage) -> StoreResult<Appended> {
        if matches!(new.action, Action::Text { .. }) {
            return self.sends.append(new).await;
        }
        let ids = self.ids.clone();
        self.write(move |tx| Box::pin(changes::apply(tx, ids.clone(), new.clone())))
            .await
    }

    async fn messages(
        &self,
        id: ConversationId,
        w: SeqWindow,
        viewer: UserId,
    ) -> StoreResult<Vec<Message>> {
        self.with_client(|client| async move {
            let order = if w.newest { "DESC" } else { "ASC" };
            let mut out: Vec<Message> = client
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLS} FROM messages x
                     WHERE x.conversation_id = $1 AND x.seq > $2 AND x.seq < $3
                       AND x.kind IN ('text', 'system')
                       AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = $5
                                       AND h.conversation_id = $1 AND h.seq = x.seq)
                     ORDER BY x.seq {order} LIMIT $4"
                    ),
                    &[
                        &id.0,
                        &n(w.after),
                        &n(w.before),
                        &(w.limit as i64),
                        &viewer.0,
                    ],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| rows::message_at(r, 0))
                .collect();
            if w.newest {
                out.reverse();
            }
            let (Some(first), Some(last)) = (out.first(), out.last()) else {
                return Ok(out);
            };
            let reactions = client
                .query(
                    "SELECT seq, emoji, user_id FROM reactions
                     WHERE conversation_id = $1 AND seq BETWEEN $2 AND $3
                     ORDER BY seq, added_seq",
                    &[&id.0, &n(first.seq), &n(last.seq)],
                )
                .await
                .map_err(pg)?;
            let mut at = 0;
            for r in &reactions {
                let seq = u(r.get(0));
                while out.get(at).is_some_and(|m| m.seq < seq) {
                    at += 1;
                }
                if let Some(message) = out.get_mut(at).filter(|m| m.seq == seq) {
                    count_reaction(&mut message.reactions, r.get(1), UserId(r.get(2)), viewer);
                }
            }
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
        self.with_client(|client| async move {
            // `nth` counts the messages up to each entry (NULL: an entry from before it was
            // kept, when every entry was a message), so the difference skips changes.
            let row = client
                .query_one(
                    "SELECT
                       coalesce((SELECT coalesce(nth, seq) FROM messages
                                 WHERE conversation_id = $1 AND seq = $3), 0)
                       - coalesce((SELECT coalesce(nth, seq) FROM messages
                                   WHERE conversation_id = $1 AND seq = $2), 0),
                       (SELECT count(*) FROM mentions
                        WHERE user_id = $4 AND conversation_id = $1 AND seq > $2 AND seq <= $3)",
                    &[&id.0, &n(after), &n(upto), &user.0],
                )
                .await
                .map_err(pg)?;
            Ok(Unread {
                messages: u(row.get(0)),
                mentions: u(row.get(1)),
            })
        })
        .await
    }

    async fn unread_total(&self, user: UserId) -> StoreResult<u64> {
        self.with_client(|client| async move {
            // Each membership as `unread` counts it: from the read watermark (or just before
            // joining) to the newest seq the member can see, by `nth`.
            let row = client
                .query_one(
                    "SELECT coalesce(sum(greatest(0,
                       coalesce(coalesce(upto.nth, upto.seq), 0)
                       - coalesce(coalesce(seen.nth, seen.seq), 0))), 0)::bigint
                     FROM members m JOIN conversations c ON c.id = m.conversation_id
                     LEFT JOIN messages upto ON upto.conversation_id = m.conversation_id
                       AND upto.seq = least(coalesce(m.left_seq, c.last_seq), c.last_seq)
                     LEFT JOIN messages seen ON seen.conversation_id = m.conversation_id
                       AND seen.seq = greatest(m.read_seq, m.joined_seq - 1)
                     WHERE m.user_id = $1",
                    &[&user.0],
                )
                .await
                .map_err(pg)?;
            Ok(u(row.get(0)))
        })
        .await
    }
}

/// Appends a system message recording a membership or title change to a conversation's
/// log inside `tx`, which holds the conversation's lock. Callers have checked rights.
pub(super) async fn append_system(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    conversation_id: ConversationId,
    by: UserId,
    event: serde_json::Value,
) -> StoreResult<Appended> {
    let client_msg_id = format!("system-{}", ids.next());
    append_entry(
        tx,
        ids,
        Entry {
            conversation_id,
            sender_id: by,
            client_msg_id: &client_msg_id,
            kind: MessageKind::System,
            body: &event.to_string(),
            target_seq: None,
            mentions: &[],
        },
    )
    .await
}

/// One entry of a conversation's log, appended outside group commit: a system message or a
/// change to an earlier message.
pub(super) struct Entry<'a> {
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub client_msg_id: &'a str,
    pub kind: MessageKind,
    pub body: &'a str,
    pub target_seq: Option<u64>,
    pub mentions: &'a [UserId],
}

/// Appends `entry` inside `tx`, which holds the conversation's lock: locks the members'
/// users rows (by id: the fixed order), takes the next seq, and gives every active member
/// the next entry of their inbox (a delete for me: only its sender). A system message
/// counts as activity and moves its sender's read watermark; a change does neither.
pub(super) async fn append_entry(
    tx: &Transaction<'_>,
    ids: &Snowflake,
    entry: Entry<'_>,
) -> StoreResult<Appended> {
    let now = Timestamp::now();
    let Entry {
        conversation_id,
        sender_id,
        kind,
        ..
    } = entry;
    let is_message = !kind.is_change();
    let members: Vec<i64> = if kind == MessageKind::DeleteForMe {
        vec![sender_id.0]
    } else {
        tx.query(
            "SELECT user_id FROM members WHERE conversation_id = $1 AND left_seq IS NULL",
            &[&conversation_id.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    // Each member's next inbox entry; their rows are locked, so nobody else's can interleave.
    tx.query(
        "SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[&members],
    )
    .await
    .map_err(pg)?;
    let heads = tx
        .query(
            "UPDATE users SET inbox_head = inbox_head + 1 WHERE id = ANY($1) RETURNING id, inbox_head",
            &[&members],
        )
        .await
        .map_err(pg)?;
    let row = tx
        .query_one(
            "UPDATE conversations SET last_seq = last_seq + 1,
               message_count = message_count + $4,
               last_message_seq = CASE WHEN $3 THEN last_seq + 1 ELSE last_message_seq END,
               last_activity_at = CASE WHEN $3 THEN $2 ELSE last_activity_at END
             WHERE id = $1 RETURNING last_seq, message_count",
            &[
                &conversation_id.0,
                &now.0,
                &is_message,
                &i64::from(is_message),
            ],
        )
        .await
        .map_err(pg)?;
    let (seq, nth): (i64, i64) = (row.get(0), row.get(1));
    let id = MessageId(ids.next());
    let mentions: Option<Vec<i64>> =
        (!entry.mentions.is_empty()).then(|| entry.mentions.iter().map(|u| u.0).collect());
    tx.execute(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, client_msg_id, kind, body,
           created_at, nth, target_seq, mentions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &id.0,
            &conversation_id.0,
            &seq,
            &sender_id.0,
            &entry.client_msg_id,
            &kind.as_str(),
            &entry.body,
            &now.0,
            &nth,
            &entry.target_seq.map(n),
            &mentions,
        ],
    )
    .await
    .map_err(pg_raced)?;
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
    if is_message {
        // Acting in a conversation implies having read everything before.
        tx.execute(
            "UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3",
            &[&conversation_id.0, &sender_id.0, &seq],
        )
        .await
        .map_err(pg)?;
    }
    let mut message = Message::new(
        id,
        conversation_id,
        u(seq),
        sender_id,
        entry.client_msg_id.to_owned(),
        kind,
        entry.body.to_owned(),
        now,
    );
    message.target_seq = entry.target_seq;
    message.mentions = entry.mentions.to_vec();
    Ok(Appended {
        message,
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
                .map(|r| {
                    let mut message = rows::message_at(r, 1);
                    // An entry carries no reactions: the changes after it in the inbox bring
                    // them, so none of them is to be skipped as already included.
                    message.changed_seq = 0;
                    SyncEntry {
                        inbox_seq: u(r.get(0)),
                        message,
                    }
                })
                .collect())
        })
        .await
    }
}
