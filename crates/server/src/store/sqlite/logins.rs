//! Wrong passwords per username (see `Logins`).

use super::SqliteStore;
use crate::store::{Logins, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

#[async_trait]
impl Logins for SqliteStore {
    async fn begin_login(
        &self,
        username: &str,
        now: Timestamp,
        free: u32,
        hold: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<Result<u32, Timestamp>> {
        let username = username.to_owned();
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached("DELETE FROM login_failures WHERE until < ?1")?
                    .execute([forget_before.0])?;
                let counted: Option<u32> = tx
                    .conn
                    .prepare_cached(
                        "INSERT INTO login_failures (username, failures, until) VALUES (?1, 1, ?2)
                         ON CONFLICT (username) DO UPDATE SET
                           failures = failures + 1,
                           until = CASE WHEN failures + 1 > ?3 THEN ?4 ELSE until END
                         WHERE until <= ?2
                         RETURNING failures",
                    )?
                    .query_row(params![username, now.0, free, hold.0], |r| r.get(0))
                    .optional()?;
                if let Some(failures) = counted {
                    return Ok(Ok(failures));
                }
                let until: Option<i64> = tx
                    .conn
                    .prepare_cached("SELECT until FROM login_failures WHERE username = ?1")?
                    .query_row([username], |r| r.get(0))
                    .optional()?;
                Ok(Err(Timestamp(until.unwrap_or(now.0))))
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
