//! Each member's own settings for a conversation: a `conversation_settings` row once they
//! change one, the defaults before.

use super::SqliteStore;
use crate::store::{MemberSettings, SettingsRecord, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, NotifyLevel, SettingsChange, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{OptionalExtension, Row, params};

const COLS: &str = "notify, notify_until, notify_since, archived_upto, pinned";

fn record(r: &Row<'_>) -> deadpool_sqlite::rusqlite::Result<SettingsRecord> {
    Ok(SettingsRecord {
        notify: NotifyLevel::named(r.get_ref(0)?.as_str().unwrap_or("")).unwrap_or_default(),
        notify_until: r.get::<_, Option<i64>>(1)?.map(Timestamp),
        notify_since: r.get(2)?,
        archived_upto: r.get(3)?,
        pinned: r.get(4)?,
    })
}

#[async_trait]
impl MemberSettings for SqliteStore {
    async fn settings(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> StoreResult<SettingsRecord> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {COLS} FROM conversation_settings
                 WHERE user_id = ?1 AND conversation_id = ?2"
            ))?
            .query_row(params![user.0, conversation.0], record)
            .optional()?
            .unwrap_or_default())
        })
        .await
    }

    async fn change_settings(
        &self,
        conversation: ConversationId,
        user: UserId,
        change: SettingsChange,
    ) -> StoreResult<SettingsRecord> {
        self.writer
            .write(move |tx| {
                Ok(tx
                    .conn
                    .prepare_cached(&format!(
                        "INSERT INTO conversation_settings (user_id, conversation_id, notify,
                           notify_until, notify_since, archived_upto, pinned)
                         VALUES (?1, ?2, coalesce(?3, 'all'), ?4,
                           (SELECT last_seq FROM conversations WHERE id = ?2),
                           CASE ?5 WHEN 1 THEN (SELECT last_message_seq FROM conversations
                                                WHERE id = ?2) END,
                           coalesce(?6, 0))
                         ON CONFLICT (user_id, conversation_id) DO UPDATE SET
                           notify = coalesce(?3, notify),
                           notify_until = CASE WHEN ?3 IS NULL THEN notify_until ELSE ?4 END,
                           notify_since = CASE WHEN ?3 IS NULL THEN notify_since
                             ELSE (SELECT last_seq FROM conversations WHERE id = ?2) END,
                           archived_upto = CASE ?5
                             WHEN 1 THEN (SELECT last_message_seq FROM conversations WHERE id = ?2)
                             WHEN 0 THEN NULL ELSE archived_upto END,
                           pinned = coalesce(?6, pinned)
                         RETURNING {COLS}"
                    ))?
                    .query_row(
                        params![
                            user.0,
                            conversation.0,
                            change.notify.map(NotifyLevel::as_str),
                            change.notify_until.map(|t| t.0),
                            change.archived,
                            change.pinned,
                        ],
                        record,
                    )?)
            })
            .await
    }
}
