//! Blocks: who blocked whom, and the `blocked` mark on a blocked pair's direct conversation.

use super::{PostgresStore, pg};
use crate::store::{Blocks, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, Timestamp, UserId};
use tokio_postgres::Transaction;

/// Marks the direct conversation of `a` and `b`, if they have one, blocked while a block
/// stands between them either way, or for good once either account is deleted.
pub(super) async fn mark_direct(tx: &Transaction<'_>, a: UserId, b: UserId) -> StoreResult<()> {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    tx.execute(
        "UPDATE conversations SET blocked = EXISTS (SELECT 1 FROM blocks
           WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))
           OR EXISTS (SELECT 1 FROM users WHERE id IN ($1, $2) AND deleted_at IS NOT NULL)
         WHERE id = (SELECT conversation_id FROM direct_pairs WHERE user_lo = $1 AND user_hi = $2)",
        &[&lo.0, &hi.0],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Is conversation `id` a direct one between a blocked pair?
pub(super) async fn is_blocked(tx: &Transaction<'_>, id: ConversationId) -> StoreResult<bool> {
    Ok(tx
        .query_opt("SELECT blocked FROM conversations WHERE id = $1", &[&id.0])
        .await
        .map_err(pg)?
        .is_some_and(|r| r.get(0)))
}

#[async_trait]
impl Blocks for PostgresStore {
    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> StoreResult<bool> {
        self.write(move |tx| {
            Box::pin(async move {
                let added = tx
                    .execute(
                        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[&blocker.0, &blocked.0, &at.0],
                    )
                    .await
                    .map_err(pg)?;
                mark_direct(tx, blocker, blocked).await?;
                Ok(added > 0)
            })
        })
        .await
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        self.write(move |tx| {
            Box::pin(async move {
                let removed = tx
                    .execute(
                        "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                        &[&blocker.0, &blocked.0],
                    )
                    .await
                    .map_err(pg)?;
                mark_direct(tx, blocker, blocked).await?;
                Ok(removed > 0)
            })
        })
        .await
    }

    async fn blocked_by(&self, user: UserId) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "SELECT blocked_id, created_at FROM blocks WHERE blocker_id = $1
                     ORDER BY created_at DESC, blocked_id",
                    &[&user.0],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| (UserId(r.get(0)), Timestamp(r.get(1))))
                .collect())
        })
        .await
    }

    async fn has_blocked(&self, blocker: UserId, blocked: UserId) -> StoreResult<bool> {
        self.with_client(|client| async move {
            Ok(client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)",
                    &[&blocker.0, &blocked.0],
                )
                .await
                .map_err(pg)?
                .get(0))
        })
        .await
    }

    async fn blocked_among(&self, user: UserId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "SELECT u FROM unnest($2::bigint[]) AS u WHERE u IN (
                       SELECT blocked_id FROM blocks WHERE blocker_id = $1
                       UNION SELECT blocker_id FROM blocks WHERE blocked_id = $1)",
                    &[&user.0, &ids],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| UserId(r.get(0)))
                .collect())
        })
        .await
    }
}
