//! Each member's own settings for a conversation: a `conversation_settings` row once they
//! change one, the defaults before.

use super::{PostgresStore, pg};
use crate::store::{MemberSettings, SettingsRecord, StoreResult};
use async_trait::async_trait;
use confab_proto::{ConversationId, NotifyLevel, SettingsChange, Timestamp, UserId};
use tokio_postgres::Row;

const COLS: &str = "notify, notify_until, notify_since, archived_upto, pinned";

fn record(r: &Row) -> SettingsRecord {
    SettingsRecord {
        notify: NotifyLevel::named(r.get(0)).unwrap_or_default(),
        notify_until: r.get::<_, Option<i64>>(1).map(Timestamp),
        notify_since: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        archived_upto: r
            .get::<_, Option<i64>>(3)
            .map(|s| u64::try_from(s).unwrap_or(0)),
        pinned: r.get(4),
    }
}

#[async_trait]
impl MemberSettings for PostgresStore {
    async fn settings(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> StoreResult<SettingsRecord> {
        self.with_client(|client| async move {
            Ok(client
                .query_opt(
                    &format!(
                        "SELECT {COLS} FROM conversation_settings
                         WHERE user_id = $1 AND conversation_id = $2"
                    ),
                    &[&user.0, &conversation.0],
                )
                .await
                .map_err(pg)?
                .map_or_else(SettingsRecord::default, |r| record(&r)))
        })
        .await
    }

    async fn change_settings(
        &self,
        conversation: ConversationId,
        user: UserId,
        change: SettingsChange,
    ) -> StoreResult<SettingsRecord> {
        let notify = change.notify.map(NotifyLevel::as_str);
        let until = change.notify_until.map(|t| t.0);
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO conversation_settings AS s (user_id, conversation_id,
                               notify, notify_until, notify_since, archived_upto, pinned)
                             VALUES ($1, $2, coalesce($3::text, 'all'), $4::bigint,
                               (SELECT last_seq FROM conversations WHERE id = $2),
                               CASE WHEN $5::boolean THEN (SELECT last_message_seq
                                 FROM conversations WHERE id = $2) END,
                               coalesce($6::boolean, FALSE))
                             ON CONFLICT (user_id, conversation_id) DO UPDATE SET
                               notify = coalesce($3::text, s.notify),
                               notify_until = CASE WHEN $3::text IS NULL THEN s.notify_until
                                              ELSE $4::bigint END,
                               notify_since = CASE WHEN $3::text IS NULL THEN s.notify_since
                                 ELSE (SELECT last_seq FROM conversations WHERE id = $2) END,
                               archived_upto = CASE $5::boolean
                                 WHEN TRUE THEN (SELECT last_message_seq FROM conversations
                                                 WHERE id = $2)
                                 WHEN FALSE THEN NULL ELSE s.archived_upto END,
                               pinned = coalesce($6::boolean, s.pinned)
                             RETURNING {COLS}"
                        ),
                        &[
                            &user.0,
                            &conversation.0,
                            &notify,
                            &until,
                            &change.archived,
                            &change.pinned,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                Ok(record(&row))
            })
        })
        .await
    }
}
