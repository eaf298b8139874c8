//! Inboxes: what each user's devices sync from.

use super::SqliteStore;
use super::hot::inbox_head;
use super::rows::{self, MESSAGE_COLS};
use crate::store::{Inbox, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, SyncEntry, UserId};
use deadpool_sqlite::rusqlite::params;

#[async_trait]
impl Inbox for SqliteStore {
    async fn inbox_head(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |c| Ok(inbox_head(c, user.0)?)).await
    }

    async fn conversation_marks(
        &self,
        user: UserId,
        after: u64,
        upto: u64,
    ) -> StoreResult<Vec<(ConversationId, u64)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT i.conversation_id, max(i.seq) FROM inbox i
                 JOIN messages m ON m.conversation_id = i.conversation_id AND m.seq = i.seq
                 WHERE i.user_id = ?1 AND i.inbox_seq > ?2 AND i.inbox_seq <= ?3
                   AND m.sender_id != ?1
                 GROUP BY i.conversation_id",
            )?
            .query_map(params![user.0, after, upto], |r| {
                Ok((ConversationId(r.get(0)?), r.get(1)?))
            })?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<SyncEntry>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT i.inbox_seq, {MESSAGE_COLS} FROM inbox i
                 JOIN messages m ON m.conversation_id = i.conversation_id AND m.seq = i.seq
                 WHERE i.user_id = ?1 AND i.inbox_seq > ?2
                 ORDER BY i.inbox_seq LIMIT ?3"
            ))?
            .query_map(params![user.0, after, limit], |r| {
                let mut message = rows::message_at(r, 1)?;
                // An entry carries no reactions: the changes after it in the inbox bring
                // them, so none of them is to be skipped as already included.
                message.changed_seq = 0;
                Ok(SyncEntry {
                    inbox_seq: r.get(0)?,
                    message,
                })
            })?
            .collect::<Result<_, _>>()?)
        })
        .await
    }
}
