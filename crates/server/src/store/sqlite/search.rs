//! Full-text search on FTS5. `message_search` keeps the words it indexed (FTS5 needs them
//! to take a message's entries out of the index; a contentless table can only mark them
//! deleted, leaving the words on disk) with secure delete (a message's old words leave the
//! index's pages when it is edited or deleted), keyed by the message id, which sorts by
//! time. It holds the words `store::search` makes and, in a column of its own, the
//! conversation as a token `c<id>`, so a search over a user's conversations is an
//! intersection in the index, not a scan of everyone's matches. Visibility (membership
//! windows, hidden, deleted) is checked per hit.
//!
//! The send path writes nothing for the index: the indexer follows the messages by id
//! (ids grow in commit order: one writer assigns them), remembering in `search_progress`
//! the last one it read, and indexes a round's text messages in batches behind it.

use super::SqliteStore;
use super::rows::{self, MESSAGE_COLS};
use super::writer::Tx;
use crate::store::search::{self, Query};
use crate::store::{Indexed, Search, SearchOrder, SearchRequest, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, Message, MessageId, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Connection, Transaction, params};

/// Messages indexed per write.
const WRITE_CHUNK: usize = 50;
/// Conversations a search names in its index query, at most; a user in more is searched
/// across all conversations, their own picked out per hit.
const NAMED_CONVERSATIONS_MAX: usize = 500;

/// Takes the message at `seq` out of the index (edited: `then` its new text goes in). An
/// edited or deleted message is the change's to index: the indexer passes over it, so it
/// cannot put back words read before the change.
pub(super) fn reindex(
    tx: &Tx<'_>,
    conversation: ConversationId,
    seq: u64,
    then: Option<&str>,
) -> StoreResult<()> {
    let id: i64 = tx
        .conn
        .prepare_cached("SELECT id FROM messages WHERE conversation_id = ?1 AND seq = ?2")?
        .query_row(params![conversation.0, seq], |r| r.get(0))?;
    tx.conn
        .prepare_cached("DELETE FROM message_search WHERE rowid = ?1")?
        .execute([id])?;
    if let Some(body) = then {
        insert(tx.conn, MessageId(id), conversation, body)?;
    }
    Ok(())
}

fn insert(
    conn: &Connection,
    id: MessageId,
    conversation: ConversationId,
    body: &str,
) -> StoreResult<()> {
    insert_words(conn, id, conversation, &words(body))
}

fn insert_words(
    conn: &Connection,
    id: MessageId,
    conversation: ConversationId,
    words: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO message_search (rowid, conversation, words) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id.0, format!("c{}", conversation.0), words])?;
    Ok(())
}

fn words(body: &str) -> String {
    search::document(body).join(" ")
}

/// An entry of the log read for the index: a text message's words, or nothing to index
/// (a change, a system message, an edited or deleted message).
struct Read {
    id: MessageId,
    conversation: ConversationId,
    words: Option<String>,
    created_at: Timestamp,
}

/// Indexes the text messages among the next `max` entries after the last one read. The
/// words are cut on a reader, off the writer; the writer then indexes each message not
/// edited or deleted meanwhile (the change saw to the index itself) and moves the progress.
async fn index_next(store: &SqliteStore, max: usize) -> StoreResult<Indexed> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let (from, batch): (i64, Vec<Read>) = store
        .read(move |c| {
            let from = progress(c)?;
            let mut read = c.prepare_cached(
                "SELECT id, conversation_id, created_at,
                   CASE WHEN kind = 'text' AND edited_at IS NULL AND deleted_at IS NULL
                        THEN body END
                 FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = read.query_map([from, limit], |r| {
                let body: Option<String> = r.get(3)?;
                Ok(Read {
                    id: MessageId(r.get(0)?),
                    conversation: ConversationId(r.get(1)?),
                    created_at: Timestamp(r.get(2)?),
                    words: body.as_deref().map(words),
                })
            })?;
            Ok((from, rows.collect::<Result<_, _>>()?))
        })
        .await?;
    let texts = batch.iter().filter(|r| r.words.is_some());
    let indexed = Indexed {
        messages: texts.clone().count(),
        oldest: texts.map(|r| r.created_at).min(),
        more: batch.len() == max,
    };
    // A few entries per write: the writer commits sends between them, so indexing never
    // holds the sends up for long (nor looks like a stalled store to admission).
    let mut after = from;
    let mut batch = batch.into_iter().peekable();
    while batch.peek().is_some() {
        let chunk: Vec<Read> = batch.by_ref().take(WRITE_CHUNK).collect();
        let (from, to) = (after, chunk.last().map_or(after, |r| r.id.0));
        after = to;
        store
            .writer
            .write(move |tx| {
                if progress(tx.conn)? != from {
                    return Ok(()); // another round got here first
                }
                let mut unchanged = tx.conn.prepare_cached(
                    "SELECT edited_at IS NULL AND deleted_at IS NULL FROM messages WHERE id = ?1",
                )?;
                for read in &chunk {
                    let Some(words) = &read.words else { continue };
                    if unchanged.query_row([read.id.0], |r| r.get::<_, bool>(0))? {
                        insert_words(tx.conn, read.id, read.conversation, words)?;
                    }
                }
                tx.conn
                    .prepare_cached("UPDATE search_progress SET after_id = ?1")?
                    .execute([to])?;
                Ok(())
            })
            .await?;
    }
    Ok(indexed)
}

/// The id of the last entry the indexer read: every text message after it is still to index.
fn progress(c: &Connection) -> StoreResult<i64> {
    Ok(c.prepare_cached("SELECT after_id FROM search_progress")?
        .query_row([], |r| r.get(0))?)
}

/// Indexes every text message there is (the migration that adds search).
pub(super) fn backfill(tx: &Transaction<'_>) -> StoreResult<()> {
    index_all(
        tx,
        "SELECT id, conversation_id, body FROM messages
         WHERE kind = 'text' AND deleted_at IS NULL",
    )
}

/// Moves the index from a queue row per message to following the messages by id (the
/// migration that does it): what was queued is indexed now, and the indexer starts after
/// the newest message. A queued message was never edited or deleted (a change took its
/// message off the queue).
pub(super) fn follow(tx: &Transaction<'_>) -> StoreResult<()> {
    index_all(
        tx,
        "SELECT m.id, m.conversation_id, m.body FROM search_queue q JOIN messages m ON m.id = q.id",
    )?;
    tx.execute_batch(
        "INSERT INTO search_progress (after_id) SELECT coalesce(max(id), 0) FROM messages;
         DROP TABLE search_queue;",
    )?;
    Ok(())
}

/// Indexes the messages `select` gives as (id, conversation id, body).
fn index_all(tx: &Transaction<'_>, select: &str) -> StoreResult<()> {
    let mut read = tx.prepare(select)?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let body: String = row.get(2)?;
        insert(
            tx,
            MessageId(row.get(0)?),
            ConversationId(row.get(1)?),
            &body,
        )?;
    }
    Ok(())
}

/// The FTS5 query for `query`, within `conversations` if given. Words are letters and
/// digits only, so quoting them is all the escaping there is.
fn fts_query(query: &Query, conversations: Option<&[i64]>) -> String {
    let terms: Vec<String> = query
        .terms
        .iter()
        .map(|t| {
            let star = if t.prefix { "*" } else { "" };
            format!("\"{}\"{star}", t.words.join(" "))
        })
        .collect();
    let mut fts = format!("words : ({})", terms.join(" AND "));
    if let Some(ids) = conversations {
        let named: Vec<String> = ids.iter().map(|id| format!("\"c{id}\"")).collect();
        fts.push_str(&format!(" AND conversation : ({})", named.join(" OR ")));
    }
    fts
}

#[async_trait]
impl Search for SqliteStore {
    async fn index_next(&self, max: usize) -> StoreResult<Indexed> {
        index_next(self, max).await
    }

    async fn search(&self, request: SearchRequest) -> StoreResult<Vec<Message>> {
        self.read(move |c| {
            let user = request.user;
            let conversations: Vec<i64> = match request.conversation {
                Some(id) => vec![id.0],
                None => theirs(c, user)?,
            };
            if conversations.is_empty() {
                return Ok(Vec::new());
            }
            let named =
                (conversations.len() <= NAMED_CONVERSATIONS_MAX).then_some(&conversations[..]);
            let fts = fts_query(&request.query, named);
            let (order, before, offset) = match request.order {
                SearchOrder::Newest { before } => {
                    ("s.rowid DESC", before.map_or(i64::MAX, |id| id.0), 0)
                }
                SearchOrder::Relevance { offset } => ("s.rank", i64::MAX, offset),
            };
            let sql = format!(
                "SELECT {MESSAGE_COLS} FROM message_search s JOIN messages m ON m.id = s.rowid
                 WHERE message_search MATCH ?1 AND s.rowid < ?2
                   AND m.kind = 'text' AND m.deleted_at IS NULL
                   AND (EXISTS (SELECT 1 FROM members w WHERE w.conversation_id = m.conversation_id
                                  AND w.user_id = ?3 AND w.joined_seq <= m.seq
                                  AND (w.left_seq IS NULL OR w.left_seq >= m.seq))
                        OR EXISTS (SELECT 1 FROM member_periods w
                                   WHERE w.conversation_id = m.conversation_id AND w.user_id = ?3
                                     AND w.joined_seq <= m.seq AND w.left_seq >= m.seq))
                   AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = ?3
                                   AND h.conversation_id = m.conversation_id AND h.seq = m.seq)
                 ORDER BY {order} LIMIT ?4 OFFSET ?5"
            );
            Ok(c.prepare_cached(&sql)?
                .query_map(
                    params![fts, before, user.0, request.limit, offset],
                    rows::message,
                )?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// The conversations `user` is or was in.
fn theirs(c: &Connection, user: UserId) -> StoreResult<Vec<i64>> {
    Ok(c.prepare_cached(
        "SELECT conversation_id FROM members WHERE user_id = ?1
         UNION SELECT conversation_id FROM member_periods WHERE user_id = ?1",
    )?
    .query_map([user.0], |r| r.get(0))?
    .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_every_word_and_name_conversations_in_their_column() {
        let query = search::parse(r#"meet "north gate" cha*"#).unwrap();
        assert_eq!(
            fts_query(&query, Some(&[3, 42])),
            r#"words : ("meet" AND "north gate" AND "cha"*) AND conversation : ("c3" OR "c42")"#
        );
        assert_eq!(
            fts_query(&query, None),
            r#"words : ("meet" AND "north gate" AND "cha"*)"#
        );
    }
}
