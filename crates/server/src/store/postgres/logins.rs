//! Wrong passwords per username (see `Logins`).

use super::{PostgresStore, pg};
use crate::store::{Logins, StoreResult};
use async_trait::async_trait;
use confab_proto::Timestamp;

#[async_trait]
impl Logins for PostgresStore {
    async fn login_failures(&self, username: &str) -> StoreResult<Option<(u32, Timestamp)>> {
        self.with_client(|client| async move {
            let row = client
                .query_opt(
                    "SELECT failures, until FROM login_failures WHERE username = $1",
                    &[&username],
                )
                .await
                .map_err(pg)?;
            Ok(row.map(|r| {
                (
                    u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                    Timestamp(r.get(1)),
                )
            }))
        })
        .await
    }

    async fn hold_login(
        &self,
        username: &str,
        now: Timestamp,
        hold: Timestamp,
    ) -> StoreResult<bool> {
        self.with_client(|client| async move {
            Ok(client
                .execute(
                    "UPDATE login_failures SET until = $3 WHERE username = $1 AND until <= $2",
                    &[&username, &now.0, &hold.0],
                )
                .await
                .map_err(pg)?
                > 0)
        })
        .await
    }

    async fn login_failed(&self, username: &str, forget_before: Timestamp) -> StoreResult<u32> {
        self.with_client(|client| async move {
            client
                .execute(
                    "DELETE FROM login_failures WHERE until < $1",
                    &[&forget_before.0],
                )
                .await
                .map_err(pg)?;
            let row = client
                .query_one(
                    "INSERT INTO login_failures (username, failures, until) VALUES ($1, 1, 0)
                     ON CONFLICT (username) DO UPDATE
                       SET failures = login_failures.failures + 1
                     RETURNING failures",
                    &[&username],
                )
                .await
                .map_err(pg)?;
            Ok(u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX))
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
