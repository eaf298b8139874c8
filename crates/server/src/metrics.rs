//! Prometheus metrics of one node. Each server owns its registry: no globals, so tests can
//! run many servers in one process.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The store's metrics, handed to the writer thread.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Writes per committed transaction.
    pub commit_batch_size: Histogram,
    /// Seconds per commit, fsync included.
    pub commit_seconds: Histogram,
}

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    /// The store's.
    pub store: StoreMetrics,
    /// Open WebSocket sessions.
    pub connections: Gauge,
    /// Messages stored (retries not counted).
    pub messages_sent: Counter,
    /// Message events queued to sessions.
    pub deliveries: Counter,
    /// Sessions closed with 4008 because their queue was full.
    pub queue_full_closes: Counter,
    /// Inbox pages read because a live entry arrived ahead of one not yet sent.
    pub inbox_gap_fills: Counter,
    /// Sessions refused because the node was at `max_sessions`.
    pub sessions_refused: Counter,
    /// Connections closed at accept because their address held `max_connections_per_ip`.
    pub connections_refused: Counter,
    /// WebSocket upgrades refused because their address had `hello_pending_per_ip`
    /// connections waiting to say hello.
    pub hellos_refused: Counter,
    /// Requests and frames refused with `rate_limited`.
    pub rate_limited: Counter,
    /// Sends refused with `overloaded`: their commit would have waited past the budget.
    pub sends_overloaded: Counter,
    /// Seconds from admitting a send to its answer (stored, or refused by the store).
    pub send_seconds: Histogram,
    /// Users with a live presence lease on this node.
    pub online_users: Gauge,
    /// Presence events handed to contacts.
    pub presence_events: Counter,
    /// Receipt events handed to members.
    pub receipts: Counter,
    /// Committed messages that queued a push.
    pub push_queued: Counter,
    /// Pushes a provider accepted.
    pub push_sent: Counter,
    /// Pushes refused for good or given up after retries.
    pub push_failed: Counter,
    /// Push jobs scheduled for another attempt.
    pub push_retries: Counter,
    /// Push jobs not needed: the user came online or already had the message.
    pub push_skipped: Counter,
    /// Subscriptions deleted because the provider said they were gone.
    pub push_subscriptions_dropped: Counter,
    /// Seconds per request to a push provider.
    pub push_send_seconds: Histogram,
    /// Messages this node's indexer took into the search index.
    pub search_indexed: Counter,
    /// Seconds from sending to indexing, of the oldest message of each indexing round.
    pub search_lag_seconds: Histogram,
    /// Events written to the cluster bus.
    pub bus_published: Counter,
    /// Events received from the cluster bus.
    pub bus_received: Counter,
    /// Events the bus could not carry (queue full, too large, unreadable); sync repairs them.
    pub bus_dropped: Counter,
    /// Connections made to the cluster bus, reconnects included.
    pub bus_connects: Counter,
    /// 1 while connected to the cluster bus.
    pub bus_connected: Gauge,
    /// Users whose events this node subscribes to on the cluster bus.
    pub bus_subscriptions: Gauge,
    resident_memory: Gauge,
    /// Opened at start, so the gauge stays readable when the process is out of descriptors.
    statm: std::sync::Mutex<Option<std::fs::File>>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            store: StoreMetrics {
                commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
                commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            },
            connections: Gauge::default(),
            messages_sent: Counter::default(),
            deliveries: Counter::default(),
            queue_full_closes: Counter::default(),
            inbox_gap_fills: Counter::default(),
            sessions_refused: Counter::default(),
            connections_refused: Counter::default(),
            hellos_refused: Counter::default(),
            rate_limited: Counter::default(),
            sends_overloaded: Counter::default(),
            send_seconds: Histogram::new(exponential_buckets(0.0005, 1.5, 24)),
            online_users: Gauge::default(),
            presence_events: Counter::default(),
            receipts: Counter::default(),
            push_queued: Counter::default(),
            push_sent: Counter::default(),
            push_failed: Counter::default(),
            push_retries: Counter::default(),
            push_skipped: Counter::default(),
            push_subscriptions_dropped: Counter::default(),
            push_send_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            search_indexed: Counter::default(),
            search_lag_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            bus_published: Counter::default(),
            bus_received: Counter::default(),
            bus_dropped: Counter::default(),
            bus_connects: Counter::default(),
            bus_connected: Gauge::default(),
            bus_subscriptions: Gauge::default(),
            resident_memory: Gauge::default(),
            statm: std::sync::Mutex::new(std::fs::File::open("/proc/self/statm").ok()),
        };
        let mut registry = Registry::default();
        // Process metrics keep their standard, unprefixed names.
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory in bytes",
            metrics.resident_memory.clone(),
        );
        let confab = registry.sub_registry_with_prefix("confab");
        let m = &metrics;
        confab.register(
            "commit_batch_size",
            "Writes per committed store transaction",
            m.store.commit_batch_size.clone(),
        );
        confab.register(
            "commit_seconds",
            "Seconds per store commit, fsync included",
            m.store.commit_seconds.clone(),
        );
        confab.register(
            "connections",
            "Open WebSocket sessions",
            m.connections.clone(),
        );
        confab.register("messages_sent", "Messages stored", m.messages_sent.clone());
        confab.register(
            "deliveries",
            "Message events queued to sessions",
            m.deliveries.clone(),
        );
        confab.register(
            "queue_full_closes",
            "Sessions closed with 4008 because they could not keep up",
            m.queue_full_closes.clone(),
        );
        confab.register(
            "inbox_gap_fills",
            "Inbox reads a session made because a live entry arrived ahead of its turn",
            m.inbox_gap_fills.clone(),
        );
        confab.register(
            "sessions_refused",
            "Sessions refused at max_sessions",
            m.sessions_refused.clone(),
        );
        confab.register(
            "connections_refused",
            "Connections closed at accept: their address held max_connections_per_ip",
            m.connections_refused.clone(),
        );
        confab.register(
            "hellos_refused",
            "WebSocket upgrades refused: their address had hello_pending_per_ip waiting",
            m.hellos_refused.clone(),
        );
        confab.register(
            "rate_limited",
            "Requests and frames refused as rate limited",
            m.rate_limited.clone(),
        );
        confab.register(
            "sends_overloaded",
            "Sends refused as overloaded: their commit would have waited past commit_wait_budget_ms",
            m.sends_overloaded.clone(),
        );
        confab.register(
            "send_seconds",
            "Seconds from admitting a send to its answer: the wait for its commit",
            m.send_seconds.clone(),
        );
        confab.register(
            "online_users",
            "Users with a live presence lease on this node",
            m.online_users.clone(),
        );
        confab.register(
            "presence_events",
            "Presence events handed to contacts",
            m.presence_events.clone(),
        );
        confab.register(
            "receipts",
            "Receipt events handed to members",
            m.receipts.clone(),
        );
        confab.register(
            "push_queued",
            "Committed messages that queued a push",
            m.push_queued.clone(),
        );
        confab.register(
            "push_sent",
            "Pushes a provider accepted",
            m.push_sent.clone(),
        );
        confab.register(
            "push_failed",
            "Pushes refused for good or given up after retries",
            m.push_failed.clone(),
        );
        confab.register(
            "push_retries",
            "Push jobs scheduled for another attempt",
            m.push_retries.clone(),
        );
        confab.register(
            "push_skipped",
            "Push jobs not needed: the user came online or had the message",
            m.push_skipped.clone(),
        );
        confab.register(
            "push_subscriptions_dropped",
            "Push subscriptions deleted because the provider said they were gone",
            m.push_subscriptions_dropped.clone(),
        );
        confab.register(
            "push_send_seconds",
            "Seconds per request to a push provider",
            m.push_send_seconds.clone(),
        );
        confab.register(
            "search_indexed",
            "Messages this node took into the search index",
            m.search_indexed.clone(),
        );
        confab.register(
            "search_lag_seconds",
            "Seconds from sending to indexing, of the oldest message of each indexing round",
            m.search_lag_seconds.clone(),
        );
        confab.register(
            "bus_published",
            "Events written to the cluster bus",
            m.bus_published.clone(),
        );
        confab.register(
            "bus_received",
            "Events received from the cluster bus",
            m.bus_received.clone(),
        );
        confab.register(
            "bus_dropped",
            "Events the cluster bus could not carry (sync repairs them)",
            m.bus_dropped.clone(),
        );
        confab.register(
            "bus_connects",
            "Connections made to the cluster bus, reconnects included",
            m.bus_connects.clone(),
        );
        confab.register(
            "bus_connected",
            "1 while connected to the cluster bus",
            m.bus_connected.clone(),
        );
        confab.register(
            "bus_subscriptions",
            "Users whose events this node subscribes to on the cluster bus",
            m.bus_subscriptions.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(rss) = self.read_statm() {
            self.resident_memory.set(rss);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
    fn read_statm(&self) -> Option<i64> {
        use std::io::{Read, Seek};
        let mut file = self.statm.lock().ok()?;
        let file = file.as_mut()?;
        let mut statm = String::new();
        file.rewind().ok()?;
        file.read_to_string(&mut statm).ok()?;
        let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
}
