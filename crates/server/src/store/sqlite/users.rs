//! Users.

use super::SqliteStore;
use super::rows::{self, USER_COLS};
use crate::store::{
    DELETED_DISPLAY_NAME, NewUser, Refusal, StoreError, StoreResult, UserRecord, Users,
    tombstone_username,
};
use async_trait::async_trait;
use confab_proto::{DeviceId, Privacy, PrivacyChange, Timestamp, User, UserId};
use deadpool_sqlite::rusqlite::{ErrorCode, OptionalExtension, params};

#[async_trait]
impl Users for SqliteStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.writer
            .write(move |tx| {
                let now = Timestamp::now();
                tx.conn
                    .prepare_cached(&format!(
                        "INSERT INTO users (username, display_name, password_hash, created_at)
                         VALUES (?1, ?2, ?3, ?4) RETURNING {USER_COLS}"
                    ))?
                    .query_row(
                        params![new.username, new.display_name, new.password_hash, now.0],
                        rows::user,
                    )
                    .map_err(|e| match e.sqlite_error_code() {
                        Some(ErrorCode::ConstraintViolation) => Refusal::UsernameTaken.into(),
                        _ => e.into(),
                    })
            })
            .await
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
                    .query_row([id.0], rows::user)
                    .optional()?,
            )
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {USER_COLS}, password_hash FROM users
                 WHERE username = ?1 AND deleted_at IS NULL"
            ))?
            .query_row([username], |r| {
                Ok(UserRecord {
                    user: rows::user(r)?,
                    password_hash: r.get(5)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn update_display_name(&self, id: UserId, display_name: &str) -> StoreResult<User> {
        let display_name = display_name.to_owned();
        self.writer
            .write(move |tx| {
                Ok(tx
                    .conn
                    .prepare_cached(&format!(
                        "UPDATE users SET display_name = ?2 WHERE id = ?1 RETURNING {USER_COLS}"
                    ))?
                    .query_row(params![id.0, display_name], rows::user)?)
            })
            .await
    }

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let password_hash = password_hash.to_owned();
        self.writer
            .write(move |tx| {
                let changed = tx
                    .conn
                    .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                    .execute(params![id.0, password_hash])?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn set_last_seen(&self, seen: &[(UserId, Timestamp)]) -> StoreResult<()> {
        let seen = seen.to_vec();
        self.writer
            .write(move |tx| {
                let mut update = tx.conn.prepare_cached(
                    "UPDATE users SET last_seen_at = max(coalesce(last_seen_at, 0), ?2) WHERE id = ?1",
                )?;
                for (user, at) in seen {
                    update.execute(params![user.0, at.0])?;
                }
                Ok(())
            })
            .await
    }

    async fn last_seen(&self, ids: &[UserId]) -> StoreResult<Vec<(UserId, Option<Timestamp>)>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut select = c.prepare_cached("SELECT last_seen_at FROM users WHERE id = ?1")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(at) = select
                    .query_row([id.0], |r| r.get::<_, Option<i64>>(0))
                    .optional()?
                {
                    out.push((id, at.map(Timestamp)));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn privacy(&self, ids: &[UserId]) -> StoreResult<Vec<Privacy>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut select = c.prepare_cached(
                "SELECT share_last_seen, share_read_receipts FROM users WHERE id = ?1",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(
                    select
                        .query_row([id.0], |r| {
                            Ok(Privacy {
                                last_seen: r.get(0)?,
                                read_receipts: r.get(1)?,
                            })
                        })
                        .optional()?
                        .unwrap_or_default(),
                );
            }
            Ok(out)
        })
        .await
    }

    async fn change_privacy(&self, id: UserId, change: PrivacyChange) -> StoreResult<Privacy> {
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached(
                        "UPDATE users SET share_last_seen = coalesce(?2, share_last_seen),
                           share_read_receipts = coalesce(?3, share_read_receipts)
                         WHERE id = ?1 RETURNING share_last_seen, share_read_receipts",
                    )?
                    .query_row(params![id.0, change.last_seen, change.read_receipts], |r| {
                        Ok(Privacy {
                            last_seen: r.get(0)?,
                            read_receipts: r.get(1)?,
                        })
                    })
                    .optional()?
                    .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn delete_account(&self, id: UserId) -> StoreResult<Vec<DeviceId>> {
        self.writer
            .write(move |tx| {
                let c = tx.conn;
                let changed = c
                    .prepare_cached(
                        "UPDATE users SET username = ?2, display_name = ?3, password_hash = '',
                           deleted_at = ?4, last_seen_at = NULL, share_last_seen = 0,
                           share_read_receipts = 0
                         WHERE id = ?1 AND deleted_at IS NULL",
                    )?
                    .execute(params![
                        id.0,
                        tombstone_username(id),
                        DELETED_DISPLAY_NAME,
                        Timestamp::now().0
                    ])?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                // Push subscriptions go with the devices (ON DELETE CASCADE).
                let devices = c
                    .prepare_cached("DELETE FROM devices WHERE user_id = ?1 RETURNING id")?
                    .query_map([id.0], |r| Ok(DeviceId(r.get(0)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                tx.hot.forget_push_user(id.0);
                c.prepare_cached("DELETE FROM blocks WHERE blocker_id = ?1 OR blocked_id = ?1")?
                    .execute([id.0])?;
                for table in ["conversation_settings", "push_outbox", "push_shown"] {
                    c.execute(&format!("DELETE FROM {table} WHERE user_id = ?1"), [id.0])?;
                }
                // Closed for good: `blocked` is recomputed from blocks and deleted accounts.
                c.prepare_cached(
                    "UPDATE conversations SET blocked = 1 WHERE id IN (
                       SELECT conversation_id FROM direct_pairs WHERE user_lo = ?1
                       UNION SELECT conversation_id FROM direct_pairs WHERE user_hi = ?1)",
                )?
                .execute([id.0])?;
                Ok(devices)
            })
            .await
    }
}
