//! Push notifications for users with no device online. The outbox row of a message is
//! written in the message's own transaction (see `store::Push`), so a crash between the
//! commit and the push still pushes after restart.
//!
//! A row is pushed at once, then held for `push_collapse_ms`: messages arriving meanwhile
//! become one more notification with the unread count, replacing the first one (Web Push
//! `Topic`, FCM collapse key, `apns-collapse-id` and the web client's notification tag).
//! The store remembers what the last push showed; an edit or delete of a message in it
//! marks the row for a refresh, which replaces the notification quietly or closes it.
//!
//! Files: `subscriptions.rs` (what clients register), `worker.rs` (draining the outbox),
//! `notification.rs` (what a notification says), `providers/` (Web Push, FCM, APNs, their
//! HTTP clients and host backoff), `safety.rs` (which addresses may be called).

mod notification;
mod providers;
pub(crate) use providers::vapid_pem;
mod safety;
mod subscriptions;
mod worker;

pub use safety::check_endpoint;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use providers::Providers;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The push service of a node.
pub struct Pusher {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    providers: Providers,
    wake: Notify,
    preview: bool,
    allow_http: bool,
    concurrency: usize,
    timeout: Duration,
    collapse: Duration,
    retry_base: Duration,
    max_attempts: u32,
}

impl Pusher {
    /// Builds the service: loads or makes the VAPID key, reads FCM and APNs credentials.
    pub fn new(
        config: &Config,
        vapid_pem: &str,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            store,
            metrics,
            providers: Providers::new(config, vapid_pem)?,
            wake: Notify::new(),
            preview: config.push_preview,
            allow_http: config.push_allow_http_endpoints,
            concurrency: config.push_concurrency,
            timeout: Duration::from_millis(config.push_timeout_ms),
            collapse: Duration::from_millis(config.push_collapse_ms),
            retry_base: Duration::from_millis(config.push_retry_base_ms),
            max_attempts: config.push_max_attempts,
        })
    }

    /// The VAPID public key, base64url.
    pub fn vapid_public_key(&self) -> &str {
        self.providers.vapid_public_key()
    }

    /// A message with pushes to make was committed.
    pub fn wake(&self) {
        self.metrics.push_queued.inc();
        self.wake.notify_one();
    }
}
