//! Wrong passwords per username (see `Logins`). One statement counts the attempt and, past
//! the free ones, takes the hold, under the row's lock: attempts sent together are counted
//! one after the other, and only one gets past the free ones at a time.

use super::{PostgresStore, pg};
use crate::store::{Logins, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;

#[async_trait]
impl Logins for PostgresStore {
    async fn begin_login(
        &self,
        username: &str,
        now: Timestamp,
        free: u32,
        hold: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<Result<u32, Timestamp>> {
        let free = i32::try_from(free).unwrap_or(i32::MAX);
        self.with_client(|client| async move {
            client
                .execute(
                    "DELETE FROM login_failures WHERE until < $1",
                    &[&forget_before.0],
                )
                .await
                .map_err(pg)?;
            let counted = client
                .query_opt(
                    "INSERT INTO login_failures (username, failures, until) VALUES ($1, 1, $2)
                     ON CONFLICT (username) DO UPDATE SET
                       failures = login_failures.failures + 1,
                       until = CASE WHEN login_failures.failures + 1 > $3 THEN $4
                                    ELSE login_failures.until END
                     WHERE login_failures.until <= $2
                     RETURNING failures",
                    &[&username, &now.0, &free, &hold.0],
                )
                .await
                .map_err(pg)?;
            if let Some(row) = counted {
                return Ok(Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX)));
            }
            let until = client
                .query_opt(
                    "SELECT until FROM login_failures WHERE username = $1",
                    &[&username],
                )
                .await
                .map_err(pg)?
                .map_or(now.0, |r| r.get(0));
            Ok(Err(Timestamp(until)))
        })
        .await
    }

    async fn login_wait(&self, username: &str, until: Timestamp) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute(
                    "UPDATE login_failures SET until = $2 WHERE username = $1",
                    &[&username, &until.0],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn login_succeeded(&self, username: &str) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute(
                    "DELETE FROM login_failures WHERE username = $1",
                    &[&username],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }
}
