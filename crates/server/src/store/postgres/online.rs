//! Which processes hold which users online (see `Online`). Each user's transitions are
//! serialised by a transaction advisory lock on the user (taken in key order, so batches
//! cannot deadlock), not the users row, which the committers lock at high rates.

use super::{PostgresStore, pg};
use crate::store::{Online, StoreResult};
use async_trait::async_trait;
use confab_proto::{Timestamp, UserId};
use tokio_postgres::Transaction;

/// Advisory lock keys of presence: the user id in a space of its own.
const PRESENCE_LOCKS: i64 = 1 << 61;

async fn lock_users(tx: &Transaction<'_>, users: &[i64]) -> StoreResult<()> {
    let mut keys: Vec<i64> = users.iter().map(|u| PRESENCE_LOCKS ^ u).collect();
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        &[&keys],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Those of `users` a live process other than `holder` holds.
async fn held_elsewhere(
    tx: &Transaction<'_>,
    users: &[i64],
    holder: &str,
    live_after: Timestamp,
) -> StoreResult<Vec<i64>> {
    let rows = tx
        .query(
            "SELECT DISTINCT p.user_id FROM presence p JOIN nodes n ON n.holder = p.holder
             WHERE p.user_id = ANY($1) AND p.holder <> $2 AND n.renewed_at > $3",
            &[&users, &holder, &live_after.0],
        )
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[async_trait]
impl Online for PostgresStore {
    async fn set_online(
        &self,
        holder: &str,
        up: &[UserId],
        down: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<(Vec<UserId>, Vec<UserId>)> {
        let up: Vec<i64> = up.iter().map(|u| u.0).collect();
        let down: Vec<i64> = down.iter().map(|u| u.0).collect();
        self.write(move |tx| {
            let (up, down, holder) = (up.clone(), down.clone(), holder.to_owned());
            Box::pin(async move {
                let all: Vec<i64> = up.iter().chain(&down).copied().collect();
                lock_users(tx, &all).await?;
                tx.execute(
                    "INSERT INTO presence (user_id, holder) SELECT u, $2 FROM unnest($1::bigint[]) AS u
                     ON CONFLICT DO NOTHING",
                    &[&up, &holder],
                )
                .await
                .map_err(pg)?;
                tx.execute(
                    "DELETE FROM presence WHERE holder = $2 AND user_id = ANY($1)",
                    &[&down, &holder],
                )
                .await
                .map_err(pg)?;
                let elsewhere = held_elsewhere(tx, &all, &holder, live_after).await?;
                let new = |users: &[i64]| -> Vec<UserId> {
                    users
                        .iter()
                        .filter(|u| !elsewhere.contains(u))
                        .map(|&u| UserId(u))
                        .collect()
                };
                Ok((new(&up), new(&down)))
            })
        })
        .await
    }

    async fn online_among(
        &self,
        users: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<Vec<UserId>> {
        let users: Vec<i64> = users.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            let rows = client
                .query(
                    "SELECT DISTINCT p.user_id FROM presence p JOIN nodes n ON n.holder = p.holder
                     WHERE p.user_id = ANY($1) AND n.renewed_at > $2",
                    &[&users, &live_after.0],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| UserId(r.get(0))).collect())
        })
        .await
    }

    async fn reap_online(&self, live_after: Timestamp) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.write(move |tx| {
            Box::pin(async move {
                let dead = tx
                    .query(
                        "SELECT p.user_id, coalesce(n.renewed_at, $1) FROM presence p
                         LEFT JOIN nodes n ON n.holder = p.holder
                         WHERE n.holder IS NULL OR n.renewed_at <= $1
                         LIMIT 500",
                        &[&live_after.0],
                    )
                    .await
                    .map_err(pg)?;
                if dead.is_empty() {
                    return Ok(Vec::new());
                }
                let users: Vec<i64> = dead.iter().map(|r| r.get(0)).collect();
                lock_users(tx, &users).await?;
                // Under the locks: what is still dead (another node may have reaped it).
                let gone = tx
                    .query(
                        "WITH gone AS (
                           DELETE FROM presence p WHERE p.user_id = ANY($1) AND NOT EXISTS
                             (SELECT 1 FROM nodes n WHERE n.holder = p.holder AND n.renewed_at > $2)
                           RETURNING p.user_id, p.holder)
                         SELECT g.user_id, coalesce(n.renewed_at, $2) FROM gone g
                         LEFT JOIN nodes n ON n.holder = g.holder",
                        &[&users, &live_after.0],
                    )
                    .await
                    .map_err(pg)?;
                let gone_users: Vec<i64> = gone.iter().map(|r| r.get(0)).collect();
                // Held by a live process still (the dead one's rows are gone).
                let still = held_elsewhere(tx, &gone_users, "", live_after).await?;
                let mut offline: Vec<(UserId, Timestamp)> = Vec::new();
                for row in &gone {
                    let (user, seen): (i64, i64) = (row.get(0), row.get(1));
                    if still.contains(&user) {
                        continue;
                    }
                    match offline.iter_mut().find(|(u, _)| u.0 == user) {
                        Some((_, at)) => at.0 = at.0.max(seen),
                        None => offline.push((UserId(user), Timestamp(seen))),
                    }
                }
                Ok(offline)
            })
        })
        .await
    }
}
