//! Which processes hold which users online (see `Online`). One process uses an embedded
//! store, but the rows work as on PostgreSQL: after a crash, the next run's reaper finds the
//! dead run's users and takes them offline.

use super::SqliteStore;
use crate::store::{Online, StoreResult};
use async_trait::async_trait;
use confab_proto::{Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Connection, OptionalExtension, params};

/// Is `user` held by a live process other than `holder`?
fn held_elsewhere(
    c: &Connection,
    user: UserId,
    holder: &str,
    live_after: Timestamp,
) -> deadpool_sqlite::rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM presence p JOIN nodes n ON n.holder = p.holder
         WHERE p.user_id = ?1 AND p.holder <> ?2 AND n.renewed_at > ?3 LIMIT 1",
    )?
    .query_row(params![user.0, holder, live_after.0], |_| Ok(()))
    .optional()?
    .is_some())
}

#[async_trait]
impl Online for SqliteStore {
    async fn set_online(
        &self,
        holder: &str,
        up: &[UserId],
        down: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<(Vec<UserId>, Vec<UserId>)> {
        let (holder, up, down) = (holder.to_owned(), up.to_vec(), down.to_vec());
        self.writer
            .write(move |tx| {
                let mut online = Vec::new();
                for &user in &up {
                    tx.conn
                        .prepare_cached(
                            "INSERT INTO presence (user_id, holder) VALUES (?1, ?2)
                             ON CONFLICT DO NOTHING",
                        )?
                        .execute(params![user.0, holder])?;
                    if !held_elsewhere(tx.conn, user, &holder, live_after)? {
                        online.push(user);
                    }
                }
                let mut offline = Vec::new();
                for &user in &down {
                    tx.conn
                        .prepare_cached("DELETE FROM presence WHERE user_id = ?1 AND holder = ?2")?
                        .execute(params![user.0, holder])?;
                    if !held_elsewhere(tx.conn, user, &holder, live_after)? {
                        offline.push(user);
                    }
                }
                Ok((online, offline))
            })
            .await
    }

    async fn online_among(
        &self,
        users: &[UserId],
        live_after: Timestamp,
    ) -> StoreResult<Vec<UserId>> {
        let users = users.to_vec();
        self.read(move |c| {
            let mut held = c.prepare_cached(
                "SELECT 1 FROM presence p JOIN nodes n ON n.holder = p.holder
                 WHERE p.user_id = ?1 AND n.renewed_at > ?2 LIMIT 1",
            )?;
            let mut out = Vec::new();
            for user in users {
                if held
                    .query_row(params![user.0, live_after.0], |_| Ok(()))
                    .optional()?
                    .is_some()
                {
                    out.push(user);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn reap_online(&self, live_after: Timestamp) -> StoreResult<Vec<(UserId, Timestamp)>> {
        self.writer
            .write(move |tx| {
                let gone: Vec<(i64, i64)> = tx
                    .conn
                    .prepare_cached(
                        "DELETE FROM presence WHERE rowid IN (
                           SELECT p.rowid FROM presence p LEFT JOIN nodes n ON n.holder = p.holder
                           WHERE n.holder IS NULL OR n.renewed_at <= ?1 LIMIT 500)
                         RETURNING user_id,
                           coalesce((SELECT renewed_at FROM nodes n WHERE n.holder = presence.holder), ?1)",
                    )?
                    .query_map([live_after.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut offline: Vec<(UserId, Timestamp)> = Vec::new();
                for (user, seen) in gone {
                    if held_elsewhere(tx.conn, UserId(user), "", live_after)? {
                        continue;
                    }
                    match offline.iter_mut().find(|(u, _)| u.0 == user) {
                        Some((_, at)) => at.0 = at.0.max(seen),
                        None => offline.push((UserId(user), Timestamp(seen))),
                    }
                }
                Ok(offline)
            })
            .await
    }
}
