//! Push subscriptions and the push outbox. The outbox row of a message is written in the
//! message's transaction (`commit.rs`).

use super::rows::{n, u};
use super::{PostgresStore, pg};
use crate::store::{
    NewSubscription, Push, PushJob, PushTarget, Shown, StoreResult, SubscriptionRecord,
};
use async_trait::async_trait;
use confab_proto::limits::PUSH_SUBSCRIPTIONS_PER_DEVICE;
use confab_proto::{ConversationId, DeviceId, PushSubscriptionId, Timestamp, UserId};
use tokio_postgres::{Row, Transaction};

const SUBSCRIPTION_COLS: &str = "id, user_id, device_id, kind, address, p256dh, auth";

#[async_trait]
impl Push for PostgresStore {
    async fn add_subscription(&self, new: NewSubscription) -> StoreResult<SubscriptionRecord> {
        let (kind, address, p256dh, auth) = match &new.target {
            PushTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => (
                "webpush",
                endpoint.clone(),
                Some(p256dh.clone()),
                Some(auth.clone()),
            ),
            PushTarget::Fcm(token) => ("fcm", token.clone(), None, None),
            PushTarget::Apns(token) => ("apns", token.clone(), None, None),
        };
        self.write(move |tx| {
            let (address, p256dh, auth) = (address.clone(), p256dh.clone(), auth.clone());
            Box::pin(async move {
                let row = tx
                    .query_one(
                        &format!(
                            "INSERT INTO push_subscriptions (user_id, device_id, kind, address, p256dh, auth, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)
                             ON CONFLICT (kind, address) DO UPDATE SET
                               user_id = excluded.user_id, device_id = excluded.device_id,
                               p256dh = excluded.p256dh, auth = excluded.auth
                             RETURNING {SUBSCRIPTION_COLS}"
                        ),
                        &[
                            &new.user_id.0,
                            &new.device_id.0,
                            &kind,
                            &address,
                            &p256dh,
                            &auth,
                            &Timestamp::now().0,
                        ],
                    )
                    .await
                    .map_err(pg)?;
                // The newest subscriptions of a device are the ones its browser still uses.
                tx.execute(
                    "DELETE FROM push_subscriptions WHERE device_id = $1 AND id NOT IN (
                       SELECT id FROM push_subscriptions WHERE device_id = $1 ORDER BY id DESC LIMIT $2)",
                    &[&new.device_id.0, &(PUSH_SUBSCRIPTIONS_PER_DEVICE as i64)],
                )
                .await
                .map_err(pg)?;
                Ok(subscription(&row))
            })
        })
        .await
    }

    async fn delete_subscription(&self, user: UserId, id: PushSubscriptionId) -> StoreResult<bool> {
        self.with_client(|client| async move {
            Ok(client
                .execute(
                    "DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2",
                    &[&id.0, &user.0],
                )
                .await
                .map_err(pg)?
                > 0)
        })
        .await
    }

    async fn drop_subscription(&self, id: PushSubscriptionId) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute("DELETE FROM push_subscriptions WHERE id = $1", &[&id.0])
                .await
                .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self, user: UserId) -> StoreResult<Vec<SubscriptionRecord>> {
        self.with_client(|client| async move {
        Ok(client
            .query(
                &format!(
                    "SELECT {SUBSCRIPTION_COLS} FROM push_subscriptions WHERE user_id = $1 ORDER BY id"
                ),
                &[&user.0],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(subscription)
            .collect())
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
        let skip: Vec<i64> = skip.iter().map(|u| u.0).collect();
        self.with_client(|client| async move {
            // Rows another node is claiming at this moment are skipped, not waited for.
            Ok(client
                .query(
                    "UPDATE push_outbox o SET next_attempt_at = $2 FROM (
                   SELECT user_id, conversation_id FROM push_outbox
                   WHERE next_attempt_at <= $1 AND NOT (user_id = ANY($4))
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
                 WHERE o.user_id = due.user_id AND o.conversation_id = due.conversation_id
                 RETURNING o.user_id, o.conversation_id, o.inbox_seq, o.seq, o.sender_id,
                           o.pushed_inbox_seq, o.attempts, o.refresh,
                           (SELECT upto_seq FROM push_shown s
                            WHERE s.user_id = o.user_id AND s.conversation_id = o.conversation_id)",
                    &[&now.0, &lease_until.0, &(limit as i64), &skip],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(job)
                .collect())
        })
        .await
    }

    async fn push_done(
        &self,
        job: &PushJob,
        hold_until: Timestamp,
        shown: Shown,
    ) -> StoreResult<()> {
        let (user, conversation, pushed) = (job.user_id.0, job.conversation_id.0, n(job.inbox_seq));
        self.write(move |tx| {
            Box::pin(async move {
                // A refresh asked for during the push (the row has a newer entry) stays.
                tx.execute(
                    "UPDATE push_outbox SET pushed_inbox_seq = $3, attempts = 0, next_attempt_at = $4,
                       refresh = refresh AND inbox_seq <> $3
                     WHERE user_id = $1 AND conversation_id = $2",
                    &[&user, &conversation, &pushed, &hold_until.0],
                )
                .await
                .map_err(pg)?;
                write_shown(tx, user, conversation, shown).await?;
                Ok(())
            })
        })
        .await
    }

    async fn push_retry(&self, job: &PushJob, at: Timestamp, shown: Shown) -> StoreResult<()> {
        let (user, conversation) = (job.user_id.0, job.conversation_id.0);
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE push_outbox SET attempts = attempts + 1, next_attempt_at = $3
                     WHERE user_id = $1 AND conversation_id = $2",
                    &[&user, &conversation, &at.0],
                )
                .await
                .map_err(pg)?;
                write_shown(tx, user, conversation, shown).await
            })
        })
        .await
    }

    async fn push_forget(&self, job: &PushJob) -> StoreResult<()> {
        self.with_client(|client| async move {
        client
            .execute(
                "DELETE FROM push_outbox WHERE user_id = $1 AND conversation_id = $2 AND inbox_seq = $3",
                &[&job.user_id.0, &job.conversation_id.0, &n(job.inbox_seq)],
            )
            .await
            .map_err(pg)?;
        Ok(())
        })
        .await
    }
}

fn subscription(r: &Row) -> SubscriptionRecord {
    let kind: &str = r.get(3);
    let address: String = r.get(4);
    let target = match kind {
        "fcm" => PushTarget::Fcm(address),
        "apns" => PushTarget::Apns(address),
        _ => PushTarget::WebPush {
            endpoint: address,
            p256dh: r.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
            auth: r.get::<_, Option<Vec<u8>>>(6).unwrap_or_default(),
        },
    };
    SubscriptionRecord {
        id: PushSubscriptionId(r.get(0)),
        user_id: UserId(r.get(1)),
        device_id: DeviceId(r.get(2)),
        target,
    }
}

fn job(r: &Row) -> PushJob {
    PushJob {
        user_id: UserId(r.get(0)),
        conversation_id: ConversationId(r.get(1)),
        inbox_seq: u(r.get(2)),
        seq: u(r.get(3)),
        sender_id: UserId(r.get(4)),
        pushed_inbox_seq: u(r.get(5)),
        attempts: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        refresh: r.get(7),
        shown_upto: r.get::<_, Option<i64>>(8).map(u),
    }
}

/// Records what a push left on the user's devices (`Shown`).
async fn write_shown(
    tx: &Transaction<'_>,
    user: i64,
    conversation: i64,
    shown: Shown,
) -> StoreResult<()> {
    match shown {
        Shown::Unchanged => {}
        Shown::Notification {
            after_seq,
            upto_seq,
        } => {
            tx.execute(
                "INSERT INTO push_shown (user_id, conversation_id, after_seq, upto_seq)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, conversation_id) DO UPDATE SET
                   after_seq = excluded.after_seq, upto_seq = excluded.upto_seq",
                &[&user, &conversation, &n(after_seq), &n(upto_seq)],
            )
            .await
            .map_err(pg)?;
        }
        Shown::Closed => {
            tx.execute(
                "DELETE FROM push_shown WHERE user_id = $1 AND conversation_id = $2",
                &[&user, &conversation],
            )
            .await
            .map_err(pg)?;
        }
    }
    Ok(())
}

/// Inside the transaction of an edit or delete of the message at `seq`: for each recipient
/// (user, inbox entry) whose devices show a notification covering it, or who has a push
/// that may show it pending or being sent, the outbox row asks for a refresh (replace or
/// close). True if any does.
/// After read watermarks moved (columns: conversation, user, seq), by a read on some device
/// or by messages the users sent: where the notification their devices show covers a
/// message now read, the outbox row asks for a refresh, which updates it with what is left
/// unread or closes it.
pub(super) const REFRESH_ON_READ: &str = "INSERT INTO push_outbox
       (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at, refresh)
     SELECT s.user_id, s.conversation_id, 0, s.upto_seq, s.user_id, $4, true
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(conversation_id, user_id, seq)
     JOIN push_shown s ON s.user_id = r.user_id AND s.conversation_id = r.conversation_id
       AND s.after_seq < r.seq
     ON CONFLICT (user_id, conversation_id) DO UPDATE SET refresh = true";

pub(super) async fn refresh(
    tx: &Transaction<'_>,
    recipients: &[(UserId, u64)],
    conversation_id: ConversationId,
    seq: u64,
    actor: UserId,
) -> StoreResult<bool> {
    let users: Vec<i64> = recipients.iter().map(|(user, _)| user.0).collect();
    let entries: Vec<i64> = recipients.iter().map(|&(_, entry)| n(entry)).collect();
    let queued = tx
        .execute(
            "INSERT INTO push_outbox
               (user_id, conversation_id, inbox_seq, seq, sender_id, next_attempt_at, refresh)
             SELECT r.user_id, $3, r.inbox_seq, coalesce(s.upto_seq, $4), $5, $6, true
             FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, inbox_seq)
             LEFT JOIN push_shown s ON s.user_id = r.user_id AND s.conversation_id = $3
             WHERE (s.after_seq < $4 AND $4 <= s.upto_seq)
                OR EXISTS (SELECT 1 FROM push_outbox o
                           WHERE o.user_id = r.user_id AND o.conversation_id = $3 AND o.seq >= $4)
             ON CONFLICT (user_id, conversation_id) DO UPDATE SET
               inbox_seq = excluded.inbox_seq, refresh = true",
            &[
                &users,
                &entries,
                &conversation_id.0,
                &n(seq),
                &actor.0,
                &Timestamp::now().0,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(queued > 0)
}
