//! Users and devices.

use super::rows::{self, DEVICE_COLS, USER_COLS, n, u};
use super::{PostgresStore, is_unique_violation, pg};
use crate::store::{
    CursorMove, DELETED_DISPLAY_NAME, DeviceRecord, Devices, NewDevice, NewUser, Refusal,
    StoreError, StoreResult, UserRecord, Users, tombstone_username,
};
use async_trait::async_trait;
use confab_proto::{DeviceId, Privacy, PrivacyChange, Timestamp, User, UserId};
use std::collections::BTreeMap;

#[async_trait]
impl Users for PostgresStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.with_client(|client| async move {
            let row = client
                .query_one(
                    &format!(
                        "INSERT INTO users (username, display_name, password_hash, created_at)
                     VALUES ($1, $2, $3, $4) RETURNING {USER_COLS}"
                    ),
                    &[
                        &new.username,
                        &new.display_name,
                        &new.password_hash,
                        &Timestamp::now().0,
                    ],
                )
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Refusal::UsernameTaken.into()
                    } else {
                        pg(e)
                    }
                })?;
            Ok(rows::user(&row))
        })
        .await
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
                    &[&id.0],
                )
                .await
                .map_err(pg)?
                .map(|r| rows::user(&r)))
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    &format!(
                        "SELECT {USER_COLS}, password_hash FROM users
                         WHERE username = $1 AND deleted_at IS NULL"
                    ),
                    &[&username],
                )
                .await
                .map_err(pg)?
                .map(|r| UserRecord {
                    user: rows::user(&r),
                    password_hash: r.get(5),
                }))
        })
        .await
    }

    async fn update_display_name(&self, id: UserId, display_name: &str) -> StoreResult<User> {
        self.with_client(|client| async move {
            let row = client
                .query_opt(
                    &format!(
                        "UPDATE users SET display_name = $2 WHERE id = $1 RETURNING {USER_COLS}"
                    ),
                    &[&id.0, &display_name],
                )
                .await
                .map_err(pg)?
                .ok_or(StoreError::NotFound)?;
            Ok(rows::user(&row))
        })
        .await
    }

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        self.with_client(|client| async move {
            let changed = client
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1",
                    &[&id.0, &password_hash],
                )
                .await
                .map_err(pg)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn set_last_seen(&self, seen: &[(UserId, Timestamp)]) -> StoreResult<()> {
        let ids: Vec<i64> = seen.iter().map(|(u, _)| u.0).collect();
        let at: Vec<i64> = seen.iter().map(|(_, t)| t.0).collect();
        self.write(move |tx| {
            let (ids, at) = (ids.clone(), at.clone());
            Box::pin(async move {
                lazy_commit(tx).await?;
                // In id order, as every writer of users rows locks them.
                tx.execute(
                    "SELECT 1 FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
                    &[&ids],
                )
                .await
                .map_err(pg)?;
                tx.execute(
                    "UPDATE users SET last_seen_at = greatest(coalesce(users.last_seen_at, 0), s.at)
                     FROM unnest($1::bigint[], $2::bigint[]) AS s(id, at) WHERE users.id = s.id",
                    &[&ids, &at],
                )
                .await
                .map_err(pg)?;
                Ok(())
            })
        })
        .await
    }

    async fn last_seen(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Option<Timestamp>)>> {
        let wanted: Vec<i64> = ids.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            let found = client
                .query(
                    "SELECT id, last_seen_at FROM users WHERE id = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(pg)?;
            Ok(ids
                .iter()
                .filter_map(|id| {
                    found
                        .iter()
                        .find(|r| r.get::<_, i64>(0) == id.0)
                        .map(|r| (*id, r.get::<_, Option<i64>>(1).map(Timestamp)))
                })
                .collect())
        })
        .await
    }

    async fn privacy(&self, ids: &[UserId]) -> StoreResult<Vec<Privacy>> {
        let wanted: Vec<i64> = ids.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            let found = client
                .query(
                    "SELECT id, share_last_seen, share_read_receipts FROM users WHERE id = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(pg)?;
            Ok(ids
                .iter()
                .map(|id| {
                    found
                        .iter()
                        .find(|r| r.get::<_, i64>(0) == id.0)
                        .map_or_else(Privacy::default, |r| Privacy {
                            last_seen: r.get(1),
                            read_receipts: r.get(2),
                        })
                })
                .collect())
        })
        .await
    }

    async fn change_privacy(&self, id: UserId, change: PrivacyChange) -> StoreResult<Privacy> {
        self.with_client(|client| async move {
            let row = client
                .query_opt(
                    "UPDATE users SET share_last_seen = coalesce($2, share_last_seen),
                       share_read_receipts = coalesce($3, share_read_receipts)
                     WHERE id = $1 RETURNING share_last_seen, share_read_receipts",
                    &[&id.0, &change.last_seen, &change.read_receipts],
                )
                .await
                .map_err(pg)?
                .ok_or(StoreError::NotFound)?;
            Ok(Privacy {
                last_seen: row.get(0),
                read_receipts: row.get(1),
            })
        })
        .await
    }

    async fn delete_account(&self, id: UserId) -> StoreResult<Vec<DeviceId>> {
        self.write(move |tx| {
            Box::pin(async move {
                // The store's lock order: conversations by id, then users rows.
                tx.execute(
                    "SELECT 1 FROM conversations WHERE id IN (
                       SELECT conversation_id FROM direct_pairs WHERE user_lo = $1
                       UNION SELECT conversation_id FROM direct_pairs WHERE user_hi = $1)
                     ORDER BY id FOR NO KEY UPDATE",
                    &[&id.0],
                )
                .await
                .map_err(pg)?;
                let changed = tx
                    .execute(
                        "UPDATE users SET username = $2, display_name = $3, password_hash = '',
                           deleted_at = $4, last_seen_at = NULL, share_last_seen = FALSE,
                           share_read_receipts = FALSE
                         WHERE id = $1 AND deleted_at IS NULL",
                        &[
                            &id.0,
                            &tombstone_username(id),
                            &DELETED_DISPLAY_NAME,
                            &Timestamp::now().0,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                // Closed for good: `blocked` is recomputed from blocks and deleted accounts.
                tx.execute(
                    "UPDATE conversations SET blocked = TRUE WHERE id IN (
                       SELECT conversation_id FROM direct_pairs WHERE user_lo = $1
                       UNION SELECT conversation_id FROM direct_pairs WHERE user_hi = $1)",
                    &[&id.0],
                )
                .await
                .map_err(pg)?;
                // Push subscriptions go with the devices (ON DELETE CASCADE).
                let devices = tx
                    .query(
                        "DELETE FROM devices WHERE user_id = $1 RETURNING id",
                        &[&id.0],
                    )
                    .await
                    .map_err(pg)?
                    .iter()
                    .map(|r| DeviceId(r.get(0)))
                    .collect();
                tx.execute(
                    "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
                    &[&id.0],
                )
                .await
                .map_err(pg)?;
                for table in ["conversation_settings", "push_outbox", "push_shown"] {
                    tx.execute(&format!("DELETE FROM {table} WHERE user_id = $1"), &[&id.0])
                        .await
                        .map_err(pg)?;
                }
                Ok(devices)
            })
        })
        .await
    }
}

#[async_trait]
impl Devices for PostgresStore {
    async fn create_device(&self, new: NewDevice) -> StoreResult<DeviceRecord> {
        self.with_client(|client| async move {
        // A new device starts at the inbox head: it pages older history over HTTP.
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO devices (user_id, name, token_hash, created_at, last_active_at, cursor)
                     VALUES ($1, $2, $3, $4::bigint, $4::bigint,
                       (SELECT inbox_head FROM users WHERE id = $1))
                     RETURNING {DEVICE_COLS}"
                ),
                &[&new.user_id.0, &new.name, &new.token_hash, &Timestamp::now().0],
            )
            .await
            .map_err(pg)?;
        Ok(rows::device(&row))
        })
        .await
    }

    async fn device_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<DeviceRecord>> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = $1"),
                    &[&token_hash],
                )
                .await
                .map_err(pg)?
                .map(|r| rows::device(&r)))
        })
        .await
    }

    async fn devices(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    &format!("SELECT {DEVICE_COLS} FROM devices WHERE user_id = $1 ORDER BY id"),
                    &[&user.0],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(rows::device)
                .collect())
        })
        .await
    }

    async fn save_cursors(&self, cursors: &[(DeviceId, u64)]) -> StoreResult<Vec<CursorMove>> {
        // One row per device (its furthest cursor): an UPDATE meets each row once.
        let mut furthest: BTreeMap<i64, i64> = BTreeMap::new();
        for &(device, cursor) in cursors {
            let c = furthest.entry(device.0).or_default();
            *c = (*c).max(n(cursor));
        }
        let (devices, at): (Vec<i64>, Vec<i64>) = furthest.into_iter().unzip();
        let now = Timestamp::now().0;
        self.write(move |tx| {
            let (devices, at) = (devices.clone(), at.clone());
            Box::pin(async move {
                lazy_commit(tx).await?;
                // Never back, never past the inbox head. Devices removed meanwhile match
                // nothing.
                let rows = tx
                    .query(
                        "UPDATE devices d SET last_active_at = $3,
                           cursor = greatest(d.cursor, least(c.cursor, u.inbox_head))
                         FROM unnest($1::bigint[], $2::bigint[]) AS c(id, cursor),
                              devices before, users u
                         WHERE d.id = c.id AND before.id = c.id AND u.id = d.user_id
                         RETURNING d.id, d.user_id, before.cursor, d.cursor",
                        &[&devices, &at, &now],
                    )
                    .await
                    .map_err(pg)?;
                Ok(rows
                    .iter()
                    .filter_map(|r| {
                        let (from, to) = (u(r.get(2)), u(r.get(3)));
                        (to > from).then(|| CursorMove {
                            device: DeviceId(r.get(0)),
                            user: UserId(r.get(1)),
                            from,
                            to,
                        })
                    })
                    .collect())
            })
        })
        .await
    }

    async fn delete_device(&self, user: UserId, device: DeviceId) -> StoreResult<bool> {
        self.with_client(|client| async move {
            // Its push subscriptions go with it (ON DELETE CASCADE).
            Ok(client
                .execute(
                    "DELETE FROM devices WHERE id = $1 AND user_id = $2",
                    &[&device.0, &user.0],
                )
                .await
                .map_err(pg)?
                > 0)
        })
        .await
    }

    async fn delete_other_devices(
        &self,
        user: UserId,
        keep: DeviceId,
    ) -> StoreResult<Vec<DeviceId>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "DELETE FROM devices WHERE user_id = $1 AND id != $2 RETURNING id",
                    &[&user.0, &keep.0],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| DeviceId(r.get(0)))
                .collect())
        })
        .await
    }

    async fn evict_idle_devices(&self, user: UserId, at_most: usize) -> StoreResult<Vec<DeviceId>> {
        self.with_client(|client| async move {
            Ok(client
                .query(
                    "DELETE FROM devices WHERE user_id = $1 AND id NOT IN (
                   SELECT id FROM devices WHERE user_id = $1
                   ORDER BY last_active_at DESC, id DESC LIMIT $2)
                 RETURNING id",
                    &[&user.0, &(at_most as i64)],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|r| DeviceId(r.get(0)))
                .collect())
        })
        .await
    }
}

/// Cursors and last-seen times are soft state: a commit of them need not wait for the WAL
/// flush. A database crash may forget the last moments of them (a device then gets a few
/// entries again, by its own cursor; a last seen is a little older), never a message.
async fn lazy_commit(tx: &tokio_postgres::Transaction<'_>) -> StoreResult<()> {
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(pg)
}
