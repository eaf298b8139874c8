//! Devices and their token hashes.

use super::SqliteStore;
use super::rows::{self, DEVICE_COLS};
use crate::store::{CursorMove, DeviceRecord, Devices, NewDevice, StoreError, StoreResult};
use async_trait::async_trait;
use confab_proto::{DeviceId, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{OptionalExtension, params};

#[async_trait]
impl Devices for SqliteStore {
    async fn create_device(&self, new: NewDevice) -> StoreResult<DeviceRecord> {
        self.writer
            .write(move |tx| {
                let now = Timestamp::now();
                // A new device starts at the inbox head: it pages older history over HTTP.
                Ok(tx
                    .conn
                    .prepare_cached(&format!(
                        "INSERT INTO devices (user_id, name, token_hash, created_at, last_active_at, cursor)
                         VALUES (?1, ?2, ?3, ?4, ?4, (SELECT coalesce(max(inbox_seq), 0) FROM inbox WHERE user_id = ?1))
                         RETURNING {DEVICE_COLS}"
                    ))?
                    .query_row(params![new.user_id.0, new.name, new.token_hash, now.0], rows::device)?)
            })
            .await
    }

    async fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceRecord>> {
        let token_hash = token_hash.to_vec();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?1"
            ))?
            .query_row([token_hash], rows::device)
            .optional()?)
        })
        .await
    }

    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE user_id = ?1 ORDER BY id"
            ))?
            .query_map([user.0], rows::device)?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn save_cursors(&self, cursors: &[(DeviceId, u64)]) -> StoreResult<Vec<CursorMove>> {
        let cursors = cursors.to_vec();
        self.writer
            .write(move |tx| {
                let now = Timestamp::now();
                let mut before = tx
                    .conn
                    .prepare_cached("SELECT user_id, cursor FROM devices WHERE id = ?1")?;
                let mut after = tx
                    .conn
                    .prepare_cached("SELECT cursor FROM devices WHERE id = ?1")?;
                let mut moved = Vec::new();
                let mut update = tx.conn.prepare_cached(
                    // Never past the inbox head: a cursor there would skip entries yet to come.
                    "UPDATE devices SET last_active_at = ?3, cursor = max(cursor,
                       min(?2, (SELECT coalesce(max(inbox_seq), 0) FROM inbox WHERE inbox.user_id = devices.user_id)))
                     WHERE id = ?1",
                )?;
                for (device, cursor) in cursors {
                    // One device's row must not cost every other device its save: a row that
                    // fails is logged and skipped (a failed statement leaves the transaction
                    // usable in SQLite).
                    let saved = (|| {
                        let Some((user, from)) = before
                            .query_row([device.0], |r| Ok((UserId(r.get(0)?), r.get::<_, u64>(1)?)))
                            .optional()?
                        else {
                            return Ok(None); // removed meanwhile
                        };
                        // Past the inbox head anyway, so no cursor is lost by the clamp.
                        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
                        update.execute(params![device.0, cursor, now.0])?;
                        let to: u64 = after.query_row([device.0], |r| r.get(0))?;
                        Ok::<_, StoreError>((to > from).then_some(CursorMove {
                            device,
                            user,
                            from,
                            to,
                        }))
                    })();
                    match saved {
                        Ok(Some(mv)) => moved.push(mv),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(%device, error = %e, "could not save a device cursor"),
                    }
                }
                Ok(moved)
            })
            .await
    }

    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: DeviceId,
    ) -> StoreResult<Vec<DeviceId>> {
        self.writer
            .write(move |tx| {
                let deleted = tx
                    .conn
                    .prepare_cached(
                        "DELETE FROM devices WHERE user_id = ?1 AND id != ?2 RETURNING id",
                    )?
                    .query_map(params![user.0, keep.0], |r| Ok(DeviceId(r.get(0)?)))?
                    .collect::<Result<_, _>>()?;
                tx.hot.forget_push_user(user.0);
                Ok(deleted)
            })
            .await
    }

    async fn evict_idle_devices(&self, user: UserId, at_most: usize) -> StoreResult<Vec<DeviceId>> {
        self.writer
            .write(move |tx| {
                let deleted = tx
                    .conn
                    .prepare_cached(
                        "DELETE FROM devices WHERE user_id = ?1 AND id NOT IN (
                           SELECT id FROM devices WHERE user_id = ?1
                           ORDER BY last_active_at DESC, id DESC LIMIT ?2)
                         RETURNING id",
                    )?
                    .query_map(params![user.0, at_most], |r| Ok(DeviceId(r.get(0)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                if !deleted.is_empty() {
                    tx.hot.forget_push_user(user.0);
                }
                Ok(deleted)
            })
            .await
    }

    async fn delete_device(&self, user: UserId, device: DeviceId) -> StoreResult<bool> {
        self.writer
            .write(move |tx| {
                // Its push subscriptions go with it (ON DELETE CASCADE).
                let deleted = tx
                    .conn
                    .prepare_cached("DELETE FROM devices WHERE id = ?1 AND user_id = ?2")?
                    .execute(params![device.0, user.0])?;
                tx.hot.forget_push_user(user.0);
                Ok(deleted > 0)
            })
            .await
    }
}
