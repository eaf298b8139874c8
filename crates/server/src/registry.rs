//! The node registry, the seeds' ZooKeeper role: every node puts its entry (node id, public
//! URL, region, load, draining) in the store every few seconds and reads everyone's back.
//! Discovery answers from that copy: the live nodes that are not draining, those in the
//! client's region first, then the least loaded. A node that stops renewing is left out
//! once its entry is `FRESH` old, on every node.
//!
//! In the store rather than NATS: node ids are leased there already, nothing new must be
//! running for a node to be found, and a registry write every few seconds per node is
//! nothing to PostgreSQL.

use crate::store::{NodeRecord, Store};
use confab_proto::{ServerInfo, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a node renews its entry and rereads the others, unless presence needs it
/// more often (see [`Registry::new`]).
const RENEW_EVERY: Duration = Duration::from_secs(4);
/// An entry older than this is a node that stopped: two renewals missed, and within the 15
/// seconds discovery promises.
const FRESH: Duration = Duration::from_secs(12);
/// Entries older than this are deleted.
const FORGET: Duration = Duration::from_secs(24 * 60 * 60);

/// This node's entry and its copy of everyone's.
pub struct Registry {
    store: Arc<dyn Store>,
    me: Mutex<NodeRecord>,
    load: Box<dyn Fn() -> u32 + Send + Sync>,
    draining: AtomicBool,
    nodes: RwLock<Vec<NodeRecord>>,
    renew_every: Duration,
    presence_timeout: Duration,
    liveness: Arc<Liveness>,
    /// One renewal at a time, so a slow one cannot undo a later drain.
    renewing: tokio::sync::Mutex<()>,
}

/// How current this node's own registry entry is, for presence: a node whose entry went
/// stale may have been taken for dead by the others.
#[derive(Default)]
pub struct Liveness {
    /// When the entry was last renewed.
    renewed: Mutex<Option<std::time::Instant>>,
    /// Set when a renewal comes after a gap of a presence timeout or more.
    lapsed: AtomicBool,
}

impl Liveness {
    /// Was the entry renewed within `within`? (Only then may this node judge others dead:
    /// if it is the one cut off, they are not.)
    pub fn fresh(&self, within: Duration) -> bool {
        self.renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < within)
    }

    /// Takes the flag set when the entry was renewed after being stale.
    pub fn take_lapsed(&self) -> bool {
        self.lapsed.swap(false, Ordering::Relaxed)
    }

    /// Sets the flag again (what it called for could not be done).
    pub fn set_lapsed(&self) {
        self.lapsed.store(true, Ordering::Relaxed);
    }

    fn renewed(&self, timeout: Duration) {
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        if renewed.is_some_and(|at| at.elapsed() >= timeout) {
            tracing::warn!(
                "this node's registry entry was stale for a presence timeout; its users may have been taken offline, recording them again"
            );
            self.lapsed.store(true, Ordering::Relaxed);
        }
        *renewed = Some(std::time::Instant::now());
    }
}

impl Registry {
    /// The registry of the node `me` (its load read by `load` at each renewal, in
    /// thousandths of capacity). Other nodes take this one's users offline once its entry
    /// is `presence_timeout` old, so it renews at least three times per timeout.
    pub fn new(
        store: Arc<dyn Store>,
        me: NodeRecord,
        presence_timeout: Duration,
        load: impl Fn() -> u32 + Send + Sync + 'static,
    ) -> Self {
        Self {
            renew_every: RENEW_EVERY.min(presence_timeout / 3),
            presence_timeout,
            liveness: Arc::new(Liveness::default()),
            renewing: tokio::sync::Mutex::new(()),
            store,
            nodes: RwLock::new(vec![me.clone()]),
            me: Mutex::new(me),
            load: Box::new(load),
            draining: AtomicBool::new(false),
        }
    }

    /// Renews this node's entry and rereads the others' until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            // A failure is logged; the next round tries again.
            let _ = self.renew().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.renew_every) => {}
            }
        }
    }

    /// From now on this node is not offered to clients: it is shutting down.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let _ = self.renew().await;
    }

    /// How current this node's entry is, shared with presence.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// Is this node shutting down?
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Puts this node's entry and rereads everyone's: at start, before the node serves
    /// (presence rows name a node other nodes must see as live), then every few seconds.
    pub async fn renew(&self) -> Result<(), crate::store::StoreError> {
        let _one = self.renewing.lock().await;
        let now = Timestamp::now();
        let me = {
            let mut me = self.me.lock().unwrap_or_else(|p| p.into_inner());
            me.load = (self.load)();
            me.draining = self.is_draining();
            me.renewed_at = now;
            me.clone()
        };
        let put = self.store.put_node(&me, ago(now, FORGET)).await;
        match &put {
            Ok(()) => self.liveness.renewed(self.presence_timeout),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew this node's registry entry; other nodes stop offering it after 12 s");
            }
        }
        match self.store.nodes(ago(now, FRESH)).await {
            Ok(mut nodes) => {
                // This node as it is now, whatever the store said.
                nodes.retain(|n| n.holder != me.holder);
                nodes.push(me);
                *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the node registry; discovery answers from its last copy")
            }
        }
        put
    }

    /// The nodes to offer a client in `region` (or none named), best first: live and not
    /// draining; in the region first; then the least loaded.
    pub fn servers(&self, region: Option<&str>) -> Vec<ServerInfo> {
        self.offer(region, false)
    }

    /// Where this node's sessions should go when it drains: the others, best first.
    pub fn others(&self) -> Vec<ServerInfo> {
        let region = self
            .me
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .region
            .clone();
        self.offer(Some(&region), true)
    }

    fn offer(&self, region: Option<&str>, others_only: bool) -> Vec<ServerInfo> {
        let holder = self
            .me
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .holder
            .clone();
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        rank(
            &nodes,
            region,
            others_only.then_some(holder.as_str()),
            ago(Timestamp::now(), FRESH),
        )
    }
}

/// `nodes` renewed after `fresh_after`, not draining and not `except`, best first for a
/// client in `region`.
fn rank(
    nodes: &[NodeRecord],
    region: Option<&str>,
    except: Option<&str>,
    fresh_after: Timestamp,
) -> Vec<ServerInfo> {
    let mut live: Vec<&NodeRecord> = nodes
        .iter()
        .filter(|n| !n.draining && n.renewed_at > fresh_after)
        .filter(|n| except != Some(n.holder.as_str()))
        .collect();
    live.sort_by_key(|n| {
        let elsewhere = region.is_some_and(|r| !r.is_empty() && n.region != r);
        (elsewhere, n.load, n.node_id)
    });
    live.into_iter()
        .map(|n| ServerInfo {
            url: n.url.clone(),
            node_id: n.node_id,
            load: n.load,
            region: n.region.clone(),
        })
        .collect()
}

fn ago(now: Timestamp, before: Duration) -> Timestamp {
    Timestamp(now.0 - i64::try_from(before.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(holder: &str, node_id: u16, region: &str, load: u32, age_ms: i64) -> NodeRecord {
        NodeRecord {
            holder: holder.into(),
            node_id,
            url: format!("http://{holder}"),
            region: region.into(),
            load,
            draining: false,
            renewed_at: Timestamp(Timestamp::now().0 - age_ms),
        }
    }

    #[test]
    fn region_first_then_least_loaded_never_stale_or_draining() {
        let mut draining = node("d", 5, "eu", 0, 0);
        draining.draining = true;
        let nodes = vec![
            node("a", 1, "eu", 500, 0),
            node("b", 2, "us", 100, 0),
            node("c", 3, "eu", 200, 0),
            node("stale", 4, "eu", 0, 13_000),
            draining,
        ];
        let fresh_after = ago(Timestamp::now(), FRESH);
        let urls = |region, except| -> Vec<String> {
            rank(&nodes, region, except, fresh_after)
                .into_iter()
                .map(|s| s.url)
                .collect()
        };
        assert_eq!(urls(Some("eu"), None), ["http://c", "http://a", "http://b"]);
        assert_eq!(urls(None, None), ["http://b", "http://c", "http://a"]);
        assert_eq!(urls(Some(""), None), ["http://b", "http://c", "http://a"]);
        assert_eq!(urls(Some("eu"), Some("a")), ["http://c", "http://b"]);
    }
}
