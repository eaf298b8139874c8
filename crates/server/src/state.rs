//! `App`: everything a node runs on, built once at start and shared by handlers, sessions
//! and workers. No globals: tests build as many as they like.

use crate::accounts::Accounts;
use crate::addresses::{PerAddress, TrustedProxies};
use crate::admission::Admission;
use crate::blocks::Blocking;
use crate::bus::Bus;
use crate::bus::local::LocalBus;
use crate::bus::nats::NatsBus;
use crate::config::Config;
use crate::conversations::Conversations;
use crate::export::Exports;
use crate::gateway::{CursorBook, Hub};
use crate::ids::Snowflake;
use crate::messaging::Messaging;
use crate::metrics::Metrics;
use crate::nodes::NodeLease;
use crate::presence::Presence;
use crate::push::Pusher;
use crate::push::vapid_pem;
use crate::ratelimit::RateLimiter;
use crate::receipts::Receipts;
use crate::registry::Registry;
use crate::search::Searching;
use crate::settings::Settings;
use crate::store::NodeRecord;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::typing::Typing;
use confab_proto::UserId;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Shared handle to the node.
pub type AppState = Arc<App>;

/// The node's parts.
pub struct App {
    /// Settings.
    pub config: Config,
    /// The truth.
    pub store: Arc<dyn Store>,
    /// User-addressed events.
    pub bus: Arc<dyn Bus>,
    /// This node's sessions.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Signup, login, tokens.
    pub accounts: Accounts,
    /// The send path.
    pub messaging: Arc<Messaging>,
    /// Conversations and groups.
    pub conversations: Conversations,
    /// Who is online.
    pub presence: Presence,
    /// Delivered and read watermarks.
    pub receipts: Receipts,
    /// Typing indicators.
    pub typing: Typing,
    /// Push notifications.
    pub push: Arc<Pusher>,
    /// Device cursors waiting to be saved.
    pub cursors: CursorBook,
    /// Signup and login attempts per IP.
    pub auth_limiter: RateLimiter<IpAddr>,
    /// User lookups by username and new direct conversations, per user.
    pub lookups: RateLimiter<UserId>,
    /// Full-text search.
    pub search: Searching,
    /// Each member's settings for their conversations.
    pub settings: Settings,
    /// Who blocked whom.
    pub blocks: Blocking,
    /// Searches, per user.
    pub searches: RateLimiter<UserId>,
    /// Account exports running.
    pub exports: Exports,
    /// This node's id, leased in the store.
    pub node: NodeLease,
    /// The nodes discovery offers, this one among them.
    pub registry: Registry,
    /// Whose `X-Forwarded-For` to believe.
    pub proxies: TrustedProxies,
    /// WebSocket connections per client address that have not said hello yet.
    pub hellos_pending: Arc<PerAddress>,
    sends: RateLimiter<UserId>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// A setting could not be applied.
    #[error("{0}")]
    Setting(String),
}

impl App {
    /// Opens the store `config.store` names (the embedded one under `data_dir` unless it
    /// is a PostgreSQL URL) and builds the node's parts.
    pub async fn open(config: Config) -> Result<AppState, StartError> {
        let metrics = Arc::new(Metrics::new());
        // Ids carry the node id claimed below, before the store hands out any.
        let ids = Arc::new(Snowflake::new(0));
        tracing::info!(store = %config.store_for_logs(), "opening the store");
        let store: Arc<dyn Store> = match config.postgres_url() {
            Some(url) => Arc::new(
                PostgresStore::connect(
                    url,
                    config.store_connections,
                    config.commit_batch_max,
                    ids.clone(),
                    metrics.store.clone(),
                )
                .await?,
            ),
            None => Arc::new(
                SqliteStore::open(
                    &config.data_dir,
                    config.read_connections,
                    config.commit_batch_max,
                    ids.clone(),
                    metrics.store.clone(),
                )
                .await?,
            ),
        };
        let node = NodeLease::claim(store.clone(), config.node_id)
            .await
            .map_err(StartError::Setting)?;
        ids.set_node(node.id());
        Self::build(config, store, metrics, node).await
    }

    /// Builds the node's parts on a store the caller opened (with `metrics.store` as its
    /// metrics, and `node` claimed in it): how tests and the binary choose a backend.
    pub async fn build(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        node: NodeLease,
    ) -> Result<AppState, StartError> {
        let vapid_pem = vapid_pem(&config, &*store)
            .await
            .map_err(StartError::Setting)?;
        let hub = Arc::new(Hub::new(metrics.clone()));
        let bus: Arc<dyn Bus> = if config.bus.is_empty() {
            Arc::new(LocalBus::new(hub.clone()))
        } else {
            Arc::new(
                NatsBus::new(
                    &config.bus,
                    format!("confab-node-{}", node.id()),
                    hub.clone(),
                    metrics.clone(),
                )
                .map_err(StartError::Setting)?,
            )
        };
        let sends = RateLimiter::per_second(config.send_rate_per_sec, config.send_burst);
        let push = Arc::new(
            Pusher::new(&config, &vapid_pem, store.clone(), metrics.clone())
                .map_err(StartError::Setting)?,
        );
        let messaging = Arc::new(Messaging::new(
            store.clone(),
            bus.clone(),
            metrics.clone(),
            sends.clone(),
            push.clone(),
            config.user_quota_mb.saturating_mul(1 << 20),
            Admission::new(Duration::from_millis(config.commit_wait_budget_ms)),
        ));
        let registry = Registry::new(
            store.clone(),
            NodeRecord {
                holder: node.holder().to_owned(),
                node_id: node.id(),
                url: config.public_url(),
                region: config.region.clone(),
                load: 0,
                draining: false,
                renewed_at: confab_proto::Timestamp::now(),
            },
            Duration::from_millis(config.presence_timeout_ms),
            {
                let hub = hub.clone();
                let max = config.max_sessions.max(1);
                move || {
                    u32::try_from((hub.count().saturating_mul(1000) / max).min(1000))
                        .unwrap_or(1000)
                }
            },
        );
        // Presence rows name this node: the others must see it live before it serves.
        registry.renew().await.map_err(|e| {
            StartError::Setting(format!("cannot register this node in the store: {e}"))
        })?;
        let liveness = registry.liveness();
        Ok(Arc::new(App {
            registry,
            accounts: Accounts::new(&config, store.clone(), bus.clone())
                .map_err(StartError::Setting)?,
            conversations: Conversations::new(
                store.clone(),
                messaging.clone(),
                config.groups_per_day,
            ),
            auth_limiter: RateLimiter::per_minute(config.auth_rate_per_min),
            lookups: RateLimiter::per_minute(config.lookup_rate_per_min),
            search: Searching::new(store.clone()),
            settings: Settings::new(store.clone(), bus.clone()),
            blocks: Blocking::new(store.clone(), bus.clone()),
            searches: RateLimiter::per_minute(config.search_rate_per_min),
            exports: Exports::default(),
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            hellos_pending: PerAddress::new(config.hello_pending_per_ip),
            cursors: CursorBook::default(),
            presence: Presence::new(
                Duration::from_millis(config.presence_timeout_ms),
                (node.holder().to_owned(), liveness),
                store.clone(),
                bus.clone(),
                metrics.clone(),
            ),
            receipts: Receipts::new(store.clone(), bus.clone(), metrics.clone()),
            typing: Typing::new(store.clone(), bus.clone()),
            push,
            node,
            config,
            store,
            bus,
            hub,
            metrics,
            messaging,
            sends,
        }))
    }

    /// Periodic upkeep: saves cursors (moving delivered watermarks) and forgets idle
    /// rate-limit buckets.
    pub(crate) async fn tick(&self) {
        self.flush_cursors().await;
        self.typing.forget_idle();
        self.sends.forget_idle();
        self.auth_limiter.forget_idle();
        self.lookups.forget_idle();
        self.searches.forget_idle();
    }

    /// Saves pending device cursors and sends the delivered receipts they imply.
    pub(crate) async fn flush_cursors(&self) {
        let moved = self.cursors.flush(self.store.as_ref()).await;
        self.receipts.delivered(&moved).await;
    }
}
