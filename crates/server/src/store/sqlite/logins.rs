//! Wrong passwords per username (see `Logins`).

use super::SqliteStore;
use crate::store::{Logins, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

#[async_trait]
impl Logins for SqliteStore {
    async fn login_failures(&self, username: &str) -> StoreResult<Option<(u32, Timestamp)>> {
        let username = username.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT failures, until FROM login_failures WHERE username = ?1")?
                    .query_row([username], |r| Ok((r.get(0)?, Timestamp(r.get(1)?))))
                    .optional()?,
            )
        })
        .await
    }

    async fn hold_login(
        &self,
        username: &str,
        now: Timestamp,
        hold: Timestamp,
    ) -> StoreResult<bool> {
        let username = username.to_owned();
        self.writer
            .write(move |tx| {
                Ok(tx
                    .conn
                    .prepare_cached(
                        "UPDATE login_failures SET until = ?3 WHERE username = ?1 AND until <= ?2",
                    )?
                    .execute(params![username, now.0, hold.0])?
                    > 0)
            })
            .await
    }

    async fn login_failed(&self, username: &str, forget_before: Timestamp) -> StoreResult<u32> {
        let username = username.to_owned();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached("DELETE FROM login_failures WHERE until < ?1")?
                    .execute([forget_before.0])?;
                Ok(tx
                    .conn
                    .prepare_cached(
                        "INSERT INTO login_failures (username, failures, until) VALUES (?1, 1, 0)
                         ON CONFLICT (username) DO UPDATE SET failures = failures + 1
                         RETURNING failures",
                    )?
                    .query_row([username], |r| r.get(0))?)
            })
            .await
    }

    async fn login_wait(&self, username: &str, until: Timestamp) -> StoreResult<()> {
        let username = username.to_owned();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached("UPDATE login_failures SET until = ?2 WHERE username = ?1")?
                    .execute(params![username, until.0])?;
                Ok(())
            })
            .await
    }

    async fn login_succeeded(&self, username: &str) -> StoreResult<()> {
        let username = username.to_owned();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached("DELETE FROM login_failures WHERE username = ?1")?
                    .execute([username])?;
                Ok(())
            })
            .await
    }
}
