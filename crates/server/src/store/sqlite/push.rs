//! Push subscriptions and the push outbox.

use super::SqliteStore;
use super::writer::Tx;
use crate::store::{
    NewSubscription, Push, PushJob, PushTarget, Shown, StoreResult, SubscriptionRecord,
};
use async_trait::async_trait;
use confab_proto::limits::PUSH_SUBSCRIPTIONS_PER_DEVICE;
use confab_proto::{ConversationId, DeviceId, PushSubscriptionId, Timestamp, UserId};
use deadpool_sqlite::rusqlite::{Row, params};

const SUBSCRIPTION_COLS: &str = "id, user_id, device_id, kind, address, p256dh, auth";
const JOB_COLS: &str = "user_id, conversation_id, inbox_seq, seq, sender_id, pushed_inbox_seq,
    attempts, refresh, (SELECT upto_seq FROM push_shown s
      WHERE s.user_id = push_outbox.user_id AND s.conversation_id = push_outbox.conversation_id)";

#[async_trait]
impl Push for SqliteStore {
    async fn add_subscription(&self, new: NewSubscription) -> StoreResult<SubscriptionRecord> {
        self.writer
            .write(move |tx| {
                let (kind, address, p256dh, auth) = match &new.target {
                    PushTarget::WebPush { endpoint, p256dh, auth } => {
                        ("webpush", endpoint.as_str(), Some(p256dh), Some(auth))
                    }
                    PushTarget::Fcm(token) => ("fcm", token.as_str(), None, None),
                    PushTarget::Apns(token) => ("apns", token.as_str(), None, None),
                };
                // The old owner (if another user) must stop getting this device's pushes.
                let previous: Vec<i64> = tx
                    .conn
                    .prepare_cached("SELECT user_id FROM push_subscriptions WHERE kind = ?1 AND address = ?2")?
                    .query_map(params![kind, address], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let record = tx
                    .conn
                    .prepare_cached(&format!(
                        "INSERT INTO push_subscriptions (user_id, device_id, kind, address, p256dh, auth, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (kind, address) DO UPDATE SET
                           user_id = excluded.user_id, device_id = excluded.device_id,
                           p256dh = excluded.p256dh, auth = excluded.auth
                         RETURNING {SUBSCRIPTION_COLS}"
                    ))?
                    .query_row(
                        params![new.user_id.0, new.device_id.0, kind, address, p256dh, auth, Timestamp::now().0],
                        subscription,
                    )?;
                // The newest subscriptions of a device are the ones its browser still uses.
                tx.conn
                    .prepare_cached(
                        "DELETE FROM push_subscriptions WHERE device_id = ?1 AND id NOT IN (
                           SELECT id FROM push_subscriptions WHERE device_id = ?1 ORDER BY id DESC LIMIT ?2)",
                    )?
                    .execute(params![new.device_id.0, PUSH_SUBSCRIPTIONS_PER_DEVICE])?;
                for user in previous {
                    tx.hot.forget_push_user(user);
                }
                tx.hot.forget_push_user(new.user_id.0);
                Ok(record)
            })
            .await
    }

    async fn delete_subscription(&self, user: UserId, id: PushSubscriptionId) -> StoreResult<bool> {
        self.writer
            .write(move |tx| {
                let deleted = tx
                    .conn
                    .prepare_cached(
                        "DELETE FROM push_subscriptions WHERE id = ?1 AND user_id = ?2",
                    )?
                    .execute(params![id.0, user.0])?;
                tx.hot.forget_push_user(user.0);
                Ok(deleted > 0)
            })
            .await
    }

    async fn drop_subscription(&self, id: PushSubscriptionId) -> StoreResult<()> {
        self.writer
            .write(move |tx| {
                let owner: Vec<i64> = tx
                    .conn
                    .prepare_cached(
                        "DELETE FROM push_subscriptions WHERE id = ?1 RETURNING user_id",
                    )?
                    .query_map([id.0], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for user in owner {
                    tx.hot.forget_push_user(user);
                }
                Ok(())
            })
            .await
    }

    async fn subscriptions(&self, user: UserId) -> StoreResult<Vec<SubscriptionRecord>> {
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLS} FROM push_subscriptions WHERE user_id = ?1 ORDER BY id"
            ))?
            .query_map([user.0], subscription)?
            .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn claim_pushes(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
        skip: &[UserId],
    ) -> StoreResult<Vec<PushJob>> {
        let skip = serde_json::to_string(&skip.iter().map(|u| u.0).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        self.writer
            .write(move |tx| {
                Ok(tx
                    .conn
                    .prepare_cached(&format!(
                        "UPDATE push_outbox SET next_attempt_at = ?4
                         WHERE (user_id, conversation_id) IN (
                           SELECT user_id, conversation_id FROM push_outbox
                           WHERE next_attempt_at <= ?1
                             AND user_id NOT IN (SELECT value FROM json_each(?3))
                           ORDER BY next_attempt_at LIMIT ?2)
                         RETURNING {JOB_COLS}"
                    ))?
                    .query_map(params![now.0, limit, skip, lease_until.0], job)?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn push_done(
        &self,
        job: &PushJob,
        hold_until: Timestamp,
        shown: Shown,
    ) -> StoreResult<()> {
        let job = *job;
        self.writer
            .write(move |tx| {
                // A refresh asked for during the push (the row has a newer entry) stays.
                tx.conn
                    .prepare_cached(
                        "UPDATE push_outbox SET pushed_inbox_seq = ?3, attempts = 0, next_attempt_at = ?4,
                           refresh = refresh AND inbox_seq <> ?3
                         WHERE user_id = ?1 AND conversation_id = ?2",
                    )?
                    .execute(params![job.user_id.0, job.conversation_id.0, job.inbox_seq, hold_until.0])?;
                write_shown(tx, &job, shown)?;
                Ok(())
            })
            .await
    }

    async fn push_retry(&self, job: &PushJob, at: Timestamp, shown: Shown) -> StoreResult<()> {
        let job = *job;
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached(
                        "UPDATE push_outbox SET attempts = attempts + 1, next_attempt_at = ?3
                         WHERE user_id = ?1 AND conversation_id = ?2",
                    )?
                    .execute(params![job.user_id.0, job.conversation_id.0, at.0])?;
                write_shown(tx, &job, shown)?;
                Ok(())
            })
            .await
    }

    async fn push_forget(&self, job: &PushJob) -> StoreResult<()> {
        let job = *job;
        self.writer
            .write(move |tx| {
                tx.conn
                    .prepare_cached(
                        "DELETE FROM push_outbox
                         WHERE user_id = ?1 AND conversation_id = ?2 AND inbox_seq = ?3",
                    )?
                    .execute(params![job.user_id.0, job.conversation_id.0, job.inbox_seq])?;
                Ok(())
            })
            .await
    }
}

/// Queues a push of a new message to `user`, inside the message's transaction. A row that
/// is already there (a burst, or a push being held) takes the newer message.
pub(super) fn enqueue(
    tx: &Tx<'_>,
    user: UserId,
    conversation_id: ConversationId,
    inbox_seq: u64,
    seq: u64,
    sender: UserId,
) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO push_outbox (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (user_id, conversation_id) DO UPDATE SET
               inbox_seq = excluded.inbox_seq, seq = excluded.seq, sender_id = excluded.sender_id",
        )?
        .execute(params![user.0, conversation_id.0, inbox_seq, seq, sender.0, Timestamp::now().0])?;
    Ok(())
}

/// Records what a push left on the user's devices (`Shown`).
fn write_shown(tx: &Tx<'_>, job: &PushJob, shown: Shown) -> StoreResult<()> {
    match shown {
        Shown::Unchanged => {}
        Shown::Notification {
            after_seq,
            upto_seq,
        } => {
            tx.conn
                .prepare_cached(
                    "INSERT INTO push_shown (user_id, conversation_id, after_seq, upto_seq)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (user_id, conversation_id) DO UPDATE SET
                       after_seq = excluded.after_seq, upto_seq = excluded.upto_seq",
                )?
                .execute(params![
                    job.user_id.0,
                    job.conversation_id.0,
                    after_seq,
                    upto_seq
                ])?;
        }
        Shown::Closed => {
            tx.conn
                .prepare_cached(
                    "DELETE FROM push_shown WHERE user_id = ?1 AND conversation_id = ?2",
                )?
                .execute(params![job.user_id.0, job.conversation_id.0])?;
        }
    }
    Ok(())
}

/// Inside the transaction of an edit or delete of the message at `seq`, entered in `user`'s
/// inbox at `inbox_seq`: if the notification their devices show covers it, or a push that
/// may show it is pending or being sent, the outbox row asks for a refresh (replace or
/// close). True if it does.
pub(super) fn refresh(
    tx: &Tx<'_>,
    user: UserId,
    conversation_id: ConversationId,
    inbox_seq: u64,
    seq: u64,
    actor: UserId,
) -> StoreResult<bool> {
    let queued = tx
        .conn
        .prepare_cached(
            "INSERT INTO push_outbox
               (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at, refresh)
             SELECT ?1, ?2, ?3, coalesce((SELECT upto_seq FROM push_shown
                                          WHERE user_id = ?1 AND conversation_id = ?2), ?4),
               ?5, ?6, 1
             WHERE EXISTS (SELECT 1 FROM push_shown WHERE user_id = ?1 AND conversation_id = ?2
                             AND after_seq < ?4 AND ?4 <= upto_seq)
                OR EXISTS (SELECT 1 FROM push_outbox WHERE user_id = ?1 AND conversation_id = ?2
                             AND seq >= ?4)
             ON CONFLICT (user_id, conversation_id) DO UPDATE SET
               inbox_seq = excluded.inbox_seq, refresh = 1",
        )?
        .execute(params![
            user.0,
            conversation_id.0,
            inbox_seq,
            seq,
            actor.0,
            Timestamp::now().0
        ])?;
    Ok(queued > 0)
}

/// Inside the transaction that moved `user`'s read watermark in `conversation_id` to
/// `read` (a read on some device, or a message they sent): if the notification their
/// devices show covers a message now read, the outbox row asks for a refresh, which
/// updates it with what is left unread or closes it.
pub(super) fn refresh_on_read(
    tx: &Tx<'_>,
    user: UserId,
    conversation_id: ConversationId,
    read: u64,
) -> StoreResult<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO push_outbox
               (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at, refresh)
             SELECT ?1, ?2, 0, upto_seq, ?1, ?4, 1 FROM push_shown
             WHERE user_id = ?1 AND conversation_id = ?2 AND after_seq < ?3
             ON CONFLICT (user_id, conversation_id) DO UPDATE SET refresh = 1",
        )?
        .execute(params![user.0, conversation_id.0, read, Timestamp::now().0])?;
    Ok(())
}

fn subscription(r: &Row<'_>) -> deadpool_sqlite::rusqlite::Result<SubscriptionRecord> {
    let kind: String = r.get(3)?;
    let address: String = r.get(4)?;
    let target = match kind.as_str() {
        "webpush" => PushTarget::WebPush {
            endpoint: address,
            p256dh: r.get(5)?,
            auth: r.get(6)?,
        },
        "fcm" => PushTarget::Fcm(address),
        _ => PushTarget::Apns(address),
    };
    Ok(SubscriptionRecord {
        id: PushSubscriptionId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        device_id: DeviceId(r.get(2)?),
        target,
    })
}

fn job(r: &Row<'_>) -> deadpool_sqlite::rusqlite::Result<PushJob> {
    Ok(PushJob {
        user_id: UserId(r.get(0)?),
        conversation_id: ConversationId(r.get(1)?),
        inbox_seq: r.get(2)?,
        seq: r.get(3)?,
        sender_id: UserId(r.get(4)?),
        pushed_inbox_seq: r.get(5)?,
        attempts: r.get(6)?,
        refresh: r.get(7)?,
        shown_upto: r.get(8)?,
    })
}
