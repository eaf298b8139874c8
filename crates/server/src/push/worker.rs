//! The worker that drains the push outbox. Jobs run side by side, up to `push_concurrency`,
//! and none waits for another: a new job starts as soon as a slot is free, not when a whole
//! batch is done. A job sends to all of its user's subscriptions at once under one deadline
//! (`push_timeout_ms`); what misses it is retried with backoff.

use super::Pusher;
use super::notification::Notification;
use super::providers::{Delivery, Outcome};
use crate::presence::Presence;
use crate::store::{PushJob, Shown, StoreResult};
use confab_proto::{Timestamp, UserId};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::Rng;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Outbox rows claimed at a time, at most.
const BATCH: usize = 256;
/// How often the worker looks for due rows (held bursts, retries) without being woken.
const POLL: Duration = Duration::from_millis(250);
/// Added to twice the push deadline for a claim's lease: the store calls around the sends.
/// A job that outlasts its lease may be pushed once more by another node, never lost.
const CLAIM_SLACK: Duration = Duration::from_secs(10);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Pusher {
    /// Drains the outbox until `shutdown`; rows left then are pushed after the restart.
    pub async fn run(&self, presence: &Presence, shutdown: CancellationToken) {
        let mut running = FuturesUnordered::new();
        // Users being pushed to: one job per user at a time, so however many conversations
        // one user keeps busy (or however slow their push hosts), they hold one slot.
        let mut busy: HashSet<UserId> = HashSet::new();
        let mut queued: VecDeque<PushJob> = VecDeque::new();
        // Claimed jobs of busy users, run when that user's job is done (claims are leased,
        // so dropping one would delay it by the lease).
        let mut deferred: Vec<PushJob> = Vec::new();
        let mut look = true;
        loop {
            if look && queued.is_empty() && running.len() < self.concurrency {
                // No more than can start now: a claim's lease runs from the claim.
                let room = (self.concurrency - running.len()).min(BATCH);
                queued = self.due(&busy, room).await;
                // A full read means more may be due right now.
                look = queued.len() == room;
            }
            while running.len() < self.concurrency {
                let Some(job) = queued.pop_front() else { break };
                if !busy.insert(job.user_id) {
                    deferred.push(job);
                    continue;
                }
                running.push(async move {
                    self.handle(job, presence).await;
                    job.user_id
                });
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(done) = running.next(), if !running.is_empty() => {
                    busy.remove(&done);
                    if let Some(i) = deferred.iter().position(|job| job.user_id == done) {
                        queued.push_front(deferred.swap_remove(i));
                    }
                }
                _ = self.wake.notified() => look = true,
                _ = tokio::time::sleep(POLL) => look = true,
            }
        }
    }

    /// Claims due rows of users not being pushed to already, the longest waiting first.
    /// Each is this node's until it is handled or the lease runs out: longer than a job can
    /// take (its deadline, and the store calls around it), so a live node never loses one.
    async fn due(&self, busy: &HashSet<UserId>, limit: usize) -> VecDeque<PushJob> {
        let skip: Vec<UserId> = busy.iter().copied().collect();
        let lease = later(self.timeout * 2 + CLAIM_SLACK);
        match self
            .store
            .claim_pushes(Timestamp::now(), lease, limit, &skip)
            .await
        {
            Ok(jobs) => jobs.into(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the push outbox; will retry");
                VecDeque::new()
            }
        }
    }

    async fn handle(&self, job: PushJob, presence: &Presence) {
        if let Err(e) = self.try_handle(job, presence).await {
            tracing::warn!(user = %job.user_id, error = %e, "push job failed; will retry");
            let _ = self
                .store
                .push_retry(
                    &job,
                    later(self.backoff(job.attempts, None)),
                    Shown::Unchanged,
                )
                .await;
        }
    }

    async fn try_handle(&self, job: PushJob, presence: &Presence) -> StoreResult<()> {
        if !job.has_news() && !job.refreshes_shown() {
            // The hold is over and nothing came: the row is done.
            return self.store.push_forget(&job).await;
        }
        // A notification shown on a device (a phone in a pocket) must follow an edit or a
        // delete even while another device is online; news alone waits for no device to be.
        let quiet = presence.is_online(job.user_id).await? || self.delivered(&job).await?;
        if quiet && !job.refreshes_shown() {
            self.metrics.push_skipped.inc();
            return self
                .store
                .push_done(&job, Timestamp::now(), Shown::Unchanged)
                .await;
        }
        let subscriptions = self.store.subscriptions(job.user_id).await?;
        if subscriptions.is_empty() {
            return self.store.push_forget(&job).await;
        }
        let Some(notification) =
            Notification::build(&*self.store, &job, quiet, self.preview).await?
        else {
            return self.store.push_forget(&job).await;
        };
        let topic = format!("c{}", job.conversation_id);
        let payload = notification.payload();
        let (title, body) = notification
            .content
            .as_ref()
            .map_or(("", ""), |c| (c.title.as_str(), c.body.as_str()));
        let delivery = Delivery {
            payload: &payload,
            topic: &topic,
            kind: notification.kind,
            title,
            body,
            badge: notification.badge,
        };
        let deadline = Instant::now() + self.timeout;
        let outcomes = futures_util::future::join_all(subscriptions.iter().map(|subscription| {
            let delivery = &delivery;
            async move {
                let started = Instant::now();
                let outcome = self.providers.send(subscription, delivery, deadline).await;
                self.metrics
                    .push_send_seconds
                    .observe(started.elapsed().as_secs_f64());
                outcome
            }
        }))
        .await;
        let mut retry: Option<Option<Duration>> = None;
        let mut sent = false;
        for (subscription, outcome) in subscriptions.iter().zip(outcomes) {
            match outcome {
                Outcome::Sent => {
                    sent = true;
                    self.metrics.push_sent.inc();
                }
                Outcome::Gone => {
                    self.metrics.push_subscriptions_dropped.inc();
                    tracing::info!(user = %job.user_id, subscription = %subscription.id, "the provider says this push subscription is gone; deleting it");
                    self.store.drop_subscription(subscription.id).await?;
                }
                Outcome::Retry(after) => retry = Some(retry.flatten().max(after)),
                Outcome::Unreachable => retry = Some(retry.flatten()),
                Outcome::Rejected(why) => {
                    self.metrics.push_failed.inc();
                    tracing::warn!(user = %job.user_id, subscription = %subscription.id, %why, "push refused by the provider");
                }
            }
        }
        let shown = if sent {
            notification.shown()
        } else {
            Shown::Unchanged
        };
        match retry {
            Some(after) if job.attempts + 1 < self.max_attempts => {
                self.metrics.push_retries.inc();
                self.store
                    .push_retry(&job, later(self.backoff(job.attempts, after)), shown)
                    .await
            }
            Some(_) => {
                self.metrics.push_failed.inc();
                tracing::warn!(user = %job.user_id, attempts = job.attempts + 1, "push given up");
                self.store
                    .push_done(&job, later(self.collapse), shown)
                    .await
            }
            None => {
                self.store
                    .push_done(&job, later(self.collapse), shown)
                    .await
            }
        }
    }

    /// Has any device of the user already received this entry?
    async fn delivered(&self, job: &PushJob) -> StoreResult<bool> {
        Ok(self
            .store
            .devices(job.user_id)
            .await?
            .iter()
            .any(|d| d.cursor >= job.inbox_seq))
    }

    /// Exponential backoff with full jitter, at least what the provider asked for.
    fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .retry_base
            .saturating_mul(1 << attempts.min(20))
            .min(MAX_BACKOFF);
        let jittered = rand::rng().random_range(ceiling / 2..=ceiling);
        retry_after.map_or(jittered, |after| after.min(MAX_BACKOFF).max(jittered))
    }
}

fn later(after: Duration) -> Timestamp {
    Timestamp(Timestamp::now().millis() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}
