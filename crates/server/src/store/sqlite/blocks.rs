//! Blocks: who blocked whom, and the `blocked` mark on a blocked pair's direct conversation.

use super::SqliteStore;
use crate::store::{Blocks, StoreResult};
use async_trait::async_trait;
use confab_proto::{Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Connection, params};

/// Marks the direct conversation of `a` and `b`, if they have one, blocked while a block
/// stands between them either way, or for good once either account is deleted.
pub(super) fn mark_direct(conn: &Connection, a: UserId, b: UserId) -> StoreResult<()> {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    conn.prepare_cached(
        "UPDATE conversations SET blocked = EXISTS (SELECT 1 FROM blocks
           WHERE (blocker_id = ?1 AND blocked_id = ?2) OR (blocker_id = ?2 AND blocked_id = ?1))
           OR EXISTS (SELECT 1 FROM users WHERE id IN (?1, ?2) AND deleted_at IS NOT NULL)
         WHERE id = (SELECT conversation_id FROM direct_pairs WHERE user_lo = ?1 AND user_hi = ?2)",
    )?
    .execute(params![lo.0, hi.0])?;
    Ok(())
}

#[async_trait]
impl Blocks for SqliteStore {
    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> StoreResult<bool> {
        self.writer
            .write(move |tx| {
                let added = tx
                    .conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_at)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![blocker.0, blocked.0, at.0])?;
                mark_direct(tx.conn, blocker, blocked)?;
                Ok(added > 0)
            })
            .await
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        self.writer
            .write(move |tx| {
                let removed = tx
                    .conn
                    .prepare_cached("DELETE FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2")?
                    .execute(params![blocker.0, blocked.0])?;
                mark_direct(tx.conn, blocker, blocked)?;
                Ok(removed > 0)
            })
            .await
    }

    async fn blocked_by(&self, user: UserId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT blocked_id, created_at FROM blocks WHERE blocker_id = ?1
                 ORDER BY created_at DESC, blocked_id",
            )?
            .query_map([user.0], |r| Ok((UserId(r.get(0)?), Timestamp(r.get(1)?))))?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn has_blocked(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2)",
            )?
            .query_row(params![blocker.0, blocked.0], |r| r.get(0))?)
        })
        .await
    }

    async fn blocked_among(&self, user: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        let ids = serde_json::to_string(&users.iter().map(|u| u.0).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT value FROM json_each(?2) WHERE value IN (
                   SELECT blocked_id FROM blocks WHERE blocker_id = ?1
                   UNION SELECT blocker_id FROM blocks WHERE blocked_id = ?1)",
            )?
            .query_map(params![user.0, ids], |r| Ok(UserId(r.get(0)?)))?
            .collect::<Result<_, _>>()?)
        })
        .await
    }
}
