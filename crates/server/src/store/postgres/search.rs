//! Full-text search on PostgreSQL: `message_search` holds a `tsvector` per text message,
//! under a GIN index. The vector is built here from the words `store::search` makes (a
//! literal, not `to_tsvector`), so no text search configuration or dictionary is involved:
//! the same words as the embedded store, in any language. It also holds the conversation
//! as the lexeme `#<id>` (no word has a `#`), so a search over a user's conversations is
//! an intersection in the index, not a scan of everyone's matches. Visibility (membership
//! windows, hidden, deleted) is checked per hit.
//!
//! A text message is only queued in its own transaction (`search_queue`); an indexer on
//! each node takes batches off the queue, so the send path pays for one row, not for the
//! index.

use super::rows::{self, MESSAGE_COLS, n};
use super::{PostgresStore, pg};
use crate::store::search::{self, Query};
use crate::store::{Indexed, Search, SearchOrder, SearchRequest, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, Message, Timestamp, UserId};
use std::fmt::Write as _;
use tokio_postgres::{Client, Row, Transaction};

/// Conversations a search names in its index query, at most; a user in more is searched
/// across all conversations, their own picked out per hit.
const NAMED_CONVERSATIONS_MAX: usize = 500;
/// The highest word position a `tsvector` keeps; later words share it.
const POSITION_MAX: usize = 16_383;
/// Messages indexed per statement when indexing history.
const BACKFILL_BATCH: i64 = 5_000;

/// Queues new text messages for the index (columns: id, conversation, seq); group commit
/// runs it with the batch's messages.
pub(super) const QUEUE: &str = "INSERT INTO search_queue (id, conversation_id, seq)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])";

/// Indexes messages (columns: conversation, seq, id, `tsvector` literal).
const INSERT: &str = "INSERT INTO message_search (conversation_id, seq, id, doc)
     SELECT c, s, i, d::tsvector FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
       AS r(c, s, i, d)";

/// The `tsvector` literal of a message: its conversation, then each word at its place.
pub(super) fn document(conversation: i64, body: &str) -> String {
    let mut doc = format!("'#{conversation}'");
    for (i, word) in search::document(body).iter().enumerate() {
        // Words are letters and digits: nothing in them needs escaping.
        let _ = write!(doc, " '{word}':{}", (i + 1).min(POSITION_MAX));
    }
    doc
}

/// The `tsquery` literal of `query`, within `conversations` if given.
fn tsquery(query: &Query, conversations: Option<&[i64]>) -> String {
    let terms: Vec<String> = query
        .terms
        .iter()
        .map(|t| {
            let last = t.words.len() - 1;
            let words: Vec<String> = t
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let star = if t.prefix && i == last { ":*" } else { "" };
                    format!("'{w}'{star}")
                })
                .collect();
            format!("( {} )", words.join(" <-> "))
        })
        .collect();
    let mut q = terms.join(" & ");
    if let Some(ids) = conversations {
        let named: Vec<String> = ids.iter().map(|id| format!("'#{id}'")).collect();
        let _ = write!(q, " & ( {} )", named.join(" | "));
    }
    q
}

/// Takes the message at `seq` off the queue and out of the index, or (edited) gives it
/// `then`'s words. Taking it off the queue first waits for an indexer holding it, so no
/// indexer can put back words it read before the change.
pub(super) async fn reindex(
    tx: &Transaction<'_>,
    conversation: ConversationId,
    seq: u64,
    then: Option<&str>,
) -> StoreResult<()> {
    let (c, s) = (conversation.0, n(seq));
    tx.execute(
        "DELETE FROM search_queue WHERE conversation_id = $1 AND seq = $2",
        &[&c, &s],
    )
    .await
    .map_err(pg)?;
    match then {
        Some(body) => {
            let doc = document(c, body);
            tx.execute(
                "INSERT INTO message_search (conversation_id, seq, id, doc)
                 SELECT conversation_id, seq, id, $3::text::tsvector FROM messages
                 WHERE conversation_id = $1 AND seq = $2
                 ON CONFLICT (conversation_id, seq) DO UPDATE SET doc = excluded.doc",
                &[&c, &s, &doc],
            )
            .await
        }
        None => {
            tx.execute(
                "DELETE FROM message_search WHERE conversation_id = $1 AND seq = $2",
                &[&c, &s],
            )
            .await
        }
    }
    .map_err(pg)?;
    Ok(())
}

/// Indexes every text message not indexed yet, a batch at a time (the migration that adds
/// search, and `copy-store`).
pub(crate) async fn backfill(tx: &Transaction<'_>) -> StoreResult<()> {
    let (mut conversation, mut seq) = (0_i64, 0_i64);
    loop {
        let rows = tx
            .query(
                "SELECT conversation_id, seq, id, body FROM messages
                 WHERE (conversation_id, seq) > ($1, $2) AND kind = 'text' AND deleted_at IS NULL
                 ORDER BY conversation_id, seq LIMIT $3",
                &[&conversation, &seq, &BACKFILL_BATCH],
            )
            .await
            .map_err(pg)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        (conversation, seq) = (last.get(0), last.get(1));
        insert(tx, &rows).await?;
    }
}

/// Indexes `rows` (conversation, seq, id, body), unless indexed already; their ids.
async fn insert(tx: &Transaction<'_>, rows: &[Row]) -> StoreResult<Vec<i64>> {
    let mut columns: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<String>) = Default::default();
    for row in rows {
        let c: i64 = row.get(0);
        columns.0.push(c);
        columns.1.push(row.get(1));
        columns.2.push(row.get(2));
        columns.3.push(document(c, row.get(3)));
    }
    tx.execute(
        &format!("{INSERT} ON CONFLICT DO NOTHING"),
        &[&columns.0, &columns.1, &columns.2, &columns.3],
    )
    .await
    .map_err(pg)?;
    Ok(columns.2)
}

/// Indexes up to `max` queued messages, oldest first. The rows are locked, skipping those
/// another node's indexer holds; an edit or delete waits for them (see `reindex`).
async fn index_next(tx: &Transaction<'_>, max: i64) -> StoreResult<Indexed> {
    let rows = tx
        .query(
            "SELECT q.conversation_id, q.seq, q.id, m.body, m.created_at
             FROM search_queue q JOIN messages m ON m.conversation_id = q.conversation_id
               AND m.seq = q.seq
             ORDER BY q.id LIMIT $1 FOR UPDATE OF q SKIP LOCKED",
            &[&max],
        )
        .await
        .map_err(pg)?;
    if rows.is_empty() {
        return Ok(Indexed::default());
    }
    let ids = insert(tx, &rows).await?;
    tx.execute("DELETE FROM search_queue WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(pg)?;
    Ok(Indexed {
        messages: rows.len(),
        oldest: rows.iter().map(|r| Timestamp(r.get(4))).min(),
        more: rows.len() as i64 == max,
    })
}

#[async_trait]
impl Search for PostgresStore {
    async fn index_next(&self, max: usize) -> StoreResult<Indexed> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.write(move |tx| Box::pin(index_next(tx, max))).await
    }

    async fn search(&self, request: SearchRequest) -> StoreResult<Vec<Message>> {
        self.with_client(|client| async move {
            let user = request.user;
            let conversations: Vec<i64> = match request.conversation {
                Some(id) => vec![id.0],
                None => theirs(&client, user).await?,
            };
            if conversations.is_empty() {
                return Ok(Vec::new());
            }
            let named =
                (conversations.len() <= NAMED_CONVERSATIONS_MAX).then_some(&conversations[..]);
            let q = tsquery(&request.query, named);
            let (order, before, offset) = match request.order {
                SearchOrder::Newest { before } => {
                    ("s.id DESC", before.map_or(i64::MAX, |id| id.0), 0)
                }
                SearchOrder::Relevance { offset } => (
                    "ts_rank_cd(s.doc, $1::text::tsquery) DESC, s.id DESC",
                    i64::MAX,
                    offset,
                ),
            };
            let sql = format!(
                "SELECT {MESSAGE_COLS} FROM message_search s
                 JOIN messages x ON x.conversation_id = s.conversation_id AND x.seq = s.seq
                 WHERE s.doc @@ $1::text::tsquery AND s.id < $2
                   AND x.kind = 'text' AND x.deleted_at IS NULL
                   AND (EXISTS (SELECT 1 FROM members w WHERE w.conversation_id = x.conversation_id
                                  AND w.user_id = $3 AND w.joined_seq <= x.seq
                                  AND (w.left_seq IS NULL OR w.left_seq >= x.seq))
                        OR EXISTS (SELECT 1 FROM member_periods w
                                   WHERE w.conversation_id = x.conversation_id AND w.user_id = $3
                                     AND w.joined_seq <= x.seq AND w.left_seq >= x.seq))
                   AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = $3
                                   AND h.conversation_id = x.conversation_id AND h.seq = x.seq)
                 ORDER BY {order} LIMIT $4 OFFSET $5"
            );
            let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            Ok(client
                .query(&sql, &[&q, &before, &user.0, &limit, &offset])
                .await
                .map_err(pg)?
                .iter()
                .map(|r| rows::message_at(r, 0))
                .collect())
        })
        .await
    }
}

/// The conversations `user` is or was in.
async fn theirs(client: &Client, user: UserId) -> StoreResult<Vec<i64>> {
    Ok(client
        .query(
            "SELECT conversation_id FROM members WHERE user_id = $1
             UNION SELECT conversation_id FROM member_periods WHERE user_id = $1",
            &[&user.0],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_queries_are_literals_of_our_own_words() {
        assert_eq!(
            document(42, "Meet at the GATE, meet!"),
            "'#42' 'meet':1 'at':2 'the':3 'gate':4 'meet':5"
        );
        let query = search::parse(r#"meet "north gate" cha*"#).unwrap();
        assert_eq!(
            tsquery(&query, Some(&[3, 42])),
            "( 'meet' ) & ( 'north' <-> 'gate' ) & ( 'cha':* ) & ( '#3' | '#42' )"
        );
        assert_eq!(
            tsquery(&query, None),
            "( 'meet' ) & ( 'north' <-> 'gate' ) & ( 'cha':* )"
        );
    }
}
