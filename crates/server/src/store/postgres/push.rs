//! Push subscriptions and the push outbox. The outbox row of a message is written in the
//! message's transaction (`commit.rs`).

use super::rows::{n, u};
use super::{PostgresStore, pg};
use crate::store::{NewSubscription, Push, PushJob, PushTarget, StoreResult, SubscriptionRecord};
use async_trait::async_trait;
use confab_proto::limits::PUSH_SUBSCRIPTIONS_PER_DEVICE;
use confab_proto::{ConversationId, DeviceId, PushSubscriptionId, Timestamp, UserId};
use tokio_postgres::Row;

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
                           o.pushed_inbox_seq, o.attempts",
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

    async fn push_done(&self, job: &PushJob, hold_until: Timestamp) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
            .execute(
                "UPDATE push_outbox SET pushed_inbox_seq = $3, attempts = 0, next_attempt_at = $4
                 WHERE user_id = $1 AND conversation_id = $2",
                &[
                    &job.user_id.0,
                    &job.conversation_id.0,
                    &n(job.inbox_seq),
                    &hold_until.0,
                ],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
        .await
    }

    async fn push_retry(&self, job: &PushJob, at: Timestamp) -> StoreResult<()> {
        self.with_client(|client| async move {
            client
                .execute(
                    "UPDATE push_outbox SET attempts = attempts + 1, next_attempt_at = $3
                 WHERE user_id = $1 AND conversation_id = $2",
                    &[&job.user_id.0, &job.conversation_id.0, &at.0],
                )
                .await
                .map_err(pg)?;
            Ok(())
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
    }
}
