//! Push notifications for users with no device online: subscriptions, the worker that
//! drains the durable push outbox, and the providers it sends through (Web Push, FCM,
//! APNs). The outbox row of a message is written in the message's own transaction (see
//! `store::Push`), so a crash between the commit and the push still pushes after restart.
//!
//! A row is pushed at once, then held for `push_collapse_ms`: messages arriving meanwhile
//! become one more notification with the unread count, replacing the first one (Web Push
//! `Topic`, FCM collapse key, `apns-collapse-id` and the web client's notification tag).

mod apns;
mod fcm;
mod keys;
mod safety;
mod webpush;

pub use safety::check_endpoint;
pub use webpush::encrypt;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::{NewSubscription, PushJob, PushTarget, SeqWindow, Store, SubscriptionRecord};
use apns::Apns;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_proto::{
    DeviceId, MessageKind, PushSubscriptionId, PushSubscriptionRequest, Timestamp, UserId,
};
use fcm::Fcm;
use futures_util::StreamExt;
use keys::JwtKey;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webpush::WebPush;

/// Outbox rows taken per round.
const BATCH: usize = 256;
/// How often the worker looks for due rows (held bursts, retries) without being woken.
const POLL: Duration = Duration::from_millis(250);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Characters of message text in a preview.
const PREVIEW_CHARS: usize = 200;
/// A provider's whole answer is not needed to classify it; at most this much is read.
const MAX_ANSWER: usize = 8 * 1024;

/// What one attempt to push to one subscription came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took it.
    Sent,
    /// The provider says the subscription no longer exists: delete it.
    Gone,
    /// Try again later: a 5xx, 429 or network error, with the provider's `Retry-After`.
    Retry(Option<Duration>),
    /// Refused for good (a bad request); logged, not retried.
    Rejected(String),
}

/// What every provider gets for one notification.
pub struct Delivery<'a> {
    /// The JSON payload (`Notification`), within every provider's size limit.
    pub payload: &'a [u8],
    /// The collapse key: one per conversation.
    pub topic: &'a str,
    /// The notification's title, for providers that show it themselves.
    pub title: &'a str,
    /// The notification's text.
    pub body: &'a str,
}

/// The payload every provider carries; the web client's service worker shows it.
#[derive(Debug, Serialize)]
struct Notification<'a> {
    conversation_id: String,
    seq: u64,
    inbox_seq: u64,
    sender_id: String,
    sender_name: &'a str,
    /// The group's title; absent for a direct conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_title: Option<&'a str>,
    /// Unread messages in the conversation.
    count: u64,
    title: &'a str,
    body: &'a str,
    /// The start of the newest message, only with `push_preview` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
}

/// The push service of a node.
pub struct Pusher {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    webpush: WebPush,
    fcm: Option<Fcm>,
    apns: Option<Apns>,
    http: reqwest::Client,
    http2: reqwest::Client,
    wake: Notify,
    preview: bool,
    allow_http: bool,
    concurrency: usize,
    collapse: Duration,
    retry_base: Duration,
    max_attempts: u32,
}

impl Pusher {
    /// Builds the service: loads or makes the VAPID key, reads FCM and APNs credentials.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let vapid = JwtKey::es256_from_pem(&vapid_pem(config)?)
            .map_err(|e| format!("push_vapid_private_key: {e}"))?;
        let webpush = WebPush::new(
            vapid,
            config.push_vapid_subject.clone(),
            config.push_ttl_secs,
        )?;
        let fcm = (!config.push_fcm_service_account.is_empty())
            .then(|| {
                Fcm::from_file(
                    &config.push_fcm_service_account,
                    &config.push_fcm_url,
                    config.push_ttl_secs,
                )
            })
            .transpose()?;
        let apns = (!config.push_apns_key_file.is_empty())
            .then(|| {
                Apns::from_file(
                    &config.push_apns_key_file,
                    config.push_apns_key_id.clone(),
                    config.push_apns_team_id.clone(),
                    config.push_apns_topic.clone(),
                    &config.push_apns_url,
                    config.push_ttl_secs,
                )
            })
            .transpose()?;
        let client = |http2: bool| {
            let mut builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("confab/", env!("CARGO_PKG_VERSION")));
            if !config.push_allow_http_endpoints {
                builder = builder.dns_resolver(Arc::new(safety::PublicOnly));
            }
            if http2 {
                builder = builder.http2_prior_knowledge();
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the push HTTP client: {e}"))
        };
        Ok(Self {
            store,
            metrics,
            webpush,
            fcm,
            apns,
            http: client(false)?,
            // APNs speaks only HTTP/2. FCM's and the push services' hosts are public, but
            // APNs's is configurable too, so it goes through the same resolver.
            http2: client(true)?,
            wake: Notify::new(),
            preview: config.push_preview,
            allow_http: config.push_allow_http_endpoints,
            concurrency: config.push_concurrency,
            collapse: Duration::from_millis(config.push_collapse_ms),
            retry_base: Duration::from_millis(config.push_retry_base_ms),
            max_attempts: config.push_max_attempts,
        })
    }

    /// The VAPID public key, base64url.
    pub fn vapid_public_key(&self) -> &str {
        self.webpush.public_key()
    }

    /// Validates and saves a subscription of a device.
    pub async fn subscribe(
        &self,
        user: UserId,
        device: DeviceId,
        request: PushSubscriptionRequest,
    ) -> ApiResult<SubscriptionRecord> {
        let target = match request {
            PushSubscriptionRequest::Webpush { endpoint, keys } => {
                if let Some(problem) = check_endpoint(&endpoint, self.allow_http) {
                    return Err(ApiError::invalid(problem));
                }
                let p256dh = decode_key(&keys.p256dh, 65, "keys.p256dh")?;
                if p256dh[0] != 4 {
                    return Err(ApiError::invalid(
                        "keys.p256dh must be an uncompressed P-256 point (0x04 first)",
                    ));
                }
                let auth = decode_key(&keys.auth, 16, "keys.auth")?;
                PushTarget::WebPush {
                    endpoint,
                    p256dh,
                    auth,
                }
            }
            PushSubscriptionRequest::Fcm { token } => {
                if self.fcm.is_none() {
                    return Err(ApiError::invalid(
                        "this server has no FCM credentials; use webpush",
                    ));
                }
                check_token(&token, |c| c.is_ascii_graphic())?;
                PushTarget::Fcm(token)
            }
            PushSubscriptionRequest::Apns { token } => {
                if self.apns.is_none() {
                    return Err(ApiError::invalid(
                        "this server has no APNs key; use webpush",
                    ));
                }
                check_token(&token, |c| c.is_ascii_hexdigit())?;
                PushTarget::Apns(token)
            }
        };
        Ok(self
            .store
            .add_subscription(NewSubscription {
                user_id: user,
                device_id: device,
                target,
            })
            .await?)
    }

    /// Deletes a subscription of `user`.
    pub async fn unsubscribe(&self, user: UserId, id: PushSubscriptionId) -> ApiResult<()> {
        if self.store.delete_subscription(user, id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("push subscription"))
        }
    }

    /// A message with pushes to make was committed.
    pub fn wake(&self) {
        self.metrics.push_queued.inc();
        self.wake.notify_one();
    }

    /// Drains the outbox until `shutdown`; rows left then are pushed after the restart.
    pub async fn run(&self, presence: &Presence, shutdown: CancellationToken) {
        loop {
            let jobs = match self.store.due_pushes(Timestamp::now(), BATCH).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the push outbox; will retry");
                    Vec::new()
                }
            };
            let full = jobs.len() == BATCH;
            futures_util::stream::iter(jobs)
                .for_each_concurrent(self.concurrency, |job| self.handle(job, presence))
                .await;
            if full {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn handle(&self, job: PushJob, presence: &Presence) {
        if let Err(e) = self.try_handle(job, presence).await {
            tracing::warn!(user = %job.user_id, error = %e, "push job failed; will retry");
            let _ = self
                .store
                .push_retry(&job, later(self.backoff(job.attempts, None)))
                .await;
        }
    }

    async fn try_handle(&self, job: PushJob, presence: &Presence) -> crate::store::StoreResult<()> {
        if !job.has_news() {
            // The hold is over and nothing came: the row is done.
            return self.store.push_forget(&job).await;
        }
        if presence.is_online(job.user_id) || self.delivered(&job).await? {
            self.metrics.push_skipped.inc();
            return self.store.push_done(&job, Timestamp::now()).await;
        }
        let subscriptions = self.store.subscriptions(job.user_id).await?;
        if subscriptions.is_empty() {
            return self.store.push_forget(&job).await;
        }
        let Some(notification) = self.notification(&job).await? else {
            return self.store.push_forget(&job).await;
        };
        let topic = format!("c{}", job.conversation_id);
        let payload = notification.to_json(self.preview);
        let delivery = Delivery {
            payload: &payload,
            topic: &topic,
            title: &notification.title,
            body: &notification.body,
        };
        let mut retry: Option<Option<Duration>> = None;
        for subscription in &subscriptions {
            let started = Instant::now();
            let outcome = self.send(subscription, &delivery).await;
            self.metrics
                .push_send_seconds
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Outcome::Sent => {
                    self.metrics.push_sent.inc();
                }
                Outcome::Gone => {
                    self.metrics.push_subscriptions_dropped.inc();
                    tracing::info!(user = %job.user_id, subscription = %subscription.id, "the provider says this push subscription is gone; deleting it");
                    self.store.drop_subscription(subscription.id).await?;
                }
                Outcome::Retry(after) => retry = Some(retry.flatten().max(after)),
                Outcome::Rejected(why) => {
                    self.metrics.push_failed.inc();
                    tracing::warn!(user = %job.user_id, subscription = %subscription.id, %why, "push refused by the provider");
                }
            }
        }
        match retry {
            Some(after) if job.attempts + 1 < self.max_attempts => {
                self.metrics.push_retries.inc();
                self.store
                    .push_retry(&job, later(self.backoff(job.attempts, after)))
                    .await
            }
            Some(_) => {
                self.metrics.push_failed.inc();
                tracing::warn!(user = %job.user_id, attempts = job.attempts + 1, "push given up");
                self.store.push_done(&job, later(self.collapse)).await
            }
            None => self.store.push_done(&job, later(self.collapse)).await,
        }
    }

    async fn send(&self, subscription: &SubscriptionRecord, delivery: &Delivery<'_>) -> Outcome {
        match &subscription.target {
            PushTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                // Checked again: a subscription saved under other settings must not slip by.
                if let Some(problem) = check_endpoint(endpoint, self.allow_http) {
                    return Outcome::Rejected(problem);
                }
                self.webpush
                    .send(&self.http, endpoint, p256dh, auth, delivery)
                    .await
            }
            PushTarget::Fcm(token) => match &self.fcm {
                Some(fcm) => fcm.send(&self.http, token, delivery).await,
                None => Outcome::Rejected("FCM is not configured any more".into()),
            },
            PushTarget::Apns(token) => match &self.apns {
                Some(apns) => apns.send(&self.http2, token, delivery).await,
                None => Outcome::Rejected("APNs is not configured any more".into()),
            },
        }
    }

    /// Has any device of the user already received this entry?
    async fn delivered(&self, job: &PushJob) -> crate::store::StoreResult<bool> {
        Ok(self
            .store
            .devices(job.user_id)
            .await?
            .iter()
            .any(|d| d.cursor >= job.inbox_seq))
    }

    async fn notification(&self, job: &PushJob) -> crate::store::StoreResult<Option<Built>> {
        let Some(conversation) = self.store.conversation(job.conversation_id).await? else {
            return Ok(None);
        };
        let Some(member) = self.store.member(job.conversation_id, job.user_id).await? else {
            return Ok(None);
        };
        let sender = self.store.user(job.sender_id).await?;
        let sender_name = sender.map_or_else(|| "Someone".to_owned(), |u| u.display_name);
        let message = self
            .store
            .messages(
                job.conversation_id,
                SeqWindow {
                    after: job.seq - 1,
                    before: job.seq + 1,
                    limit: 1,
                    newest: false,
                },
            )
            .await?
            .into_iter()
            .next()
            .filter(|m| m.kind == MessageKind::Text);
        let count = job.seq.saturating_sub(member.read_seq).max(1);
        let preview = message.map(|m| {
            m.body
                .as_str()
                .chars()
                .take(PREVIEW_CHARS)
                .collect::<String>()
        });
        let group_title = conversation.title.clone();
        let title = group_title.clone().unwrap_or_else(|| sender_name.clone());
        let body = match (&preview, self.preview) {
            (Some(text), true) if group_title.is_some() => format!("{sender_name}: {text}"),
            (Some(text), true) => text.clone(),
            _ if count == 1 => format!("New message from {sender_name}"),
            _ => format!("{count} new messages"),
        };
        Ok(Some(Built {
            job: *job,
            sender_name,
            group_title,
            count,
            title,
            body,
            preview,
        }))
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

/// A notification's parts, before they are serialised.
struct Built {
    job: PushJob,
    sender_name: String,
    group_title: Option<String>,
    count: u64,
    title: String,
    body: String,
    preview: Option<String>,
}

impl Built {
    fn to_json(&self, with_preview: bool) -> Vec<u8> {
        let notification = Notification {
            conversation_id: self.job.conversation_id.to_string(),
            seq: self.job.seq,
            inbox_seq: self.job.inbox_seq,
            sender_id: self.job.sender_id.to_string(),
            sender_name: &self.sender_name,
            group_title: self.group_title.as_deref(),
            count: self.count,
            title: &self.title,
            body: &self.body,
            preview: self.preview.as_deref().filter(|_| with_preview),
        };
        // Names and titles are short and the preview is capped, so this stays far under
        // the 4 KiB every provider takes.
        serde_json::to_vec(&notification).unwrap_or_default()
    }
}

fn later(after: Duration) -> Timestamp {
    Timestamp(Timestamp::now().millis() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

/// Classifies a provider's answer; `special` handles provider-specific statuses first.
async fn outcome_of(
    sent: reqwest::Result<reqwest::Response>,
    special: impl FnOnce(reqwest::StatusCode, &str) -> Option<Outcome>,
) -> Outcome {
    let mut response = match sent {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "push request failed");
            return Outcome::Retry(None);
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let after = retry_after(&response);
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.extend_from_slice(&chunk);
        if text.len() >= MAX_ANSWER {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    if let Some(outcome) = special(status, &text) {
        return outcome;
    }
    if status.as_u16() == 429 || status.is_server_error() {
        Outcome::Retry(after)
    } else {
        Outcome::Rejected(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from push services and ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

fn decode_key(value: &str, len: usize, field: &str) -> ApiResult<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| ApiError::invalid(format!("{field} must be base64url")))?;
    if bytes.len() != len {
        return Err(ApiError::invalid(format!(
            "{field} must be {len} bytes, not {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn check_token(token: &str, allowed: impl Fn(char) -> bool) -> ApiResult<()> {
    if token.is_empty() || token.len() > 4096 || !token.chars().all(allowed) {
        return Err(ApiError::invalid(
            "token must be 1-4096 characters of the provider's alphabet",
        ));
    }
    Ok(())
}

/// The VAPID key's PEM: from the config, else from `data_dir/vapid.pem`, made on first start.
fn vapid_pem(config: &Config) -> Result<String, String> {
    if !config.push_vapid_private_key.is_empty() {
        return Ok(config.push_vapid_private_key.clone());
    }
    let path = config.data_dir.join("vapid.pem");
    match std::fs::read_to_string(&path) {
        Ok(pem) => return Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let pem = keys::generate_p256_pem()?;
    std::fs::create_dir_all(&config.data_dir)
        .and_then(|()| write_private(&path, &pem))
        .map_err(|e| format!("cannot save the new VAPID key to {}: {e}", path.display()))?;
    Ok(pem)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
