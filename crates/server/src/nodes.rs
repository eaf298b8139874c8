//! This node's Snowflake node id, leased in the store so that no two live nodes share one:
//! claimed at start (the configured id, or the lowest free one), renewed while the node
//! runs, given back at a clean stop. A node that finds its lease lost (it could not reach
//! the store for longer than the lease, and another node took the id) stops: the ids it
//! would assign could collide.

use crate::store::Store;
use confab_proto::Timestamp;
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a claim holds without renewal: a node that dies frees its id after this.
const LEASE: Duration = Duration::from_secs(30);
/// How often a live node renews: several tries fit in one lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The node id this process holds.
pub struct NodeLease {
    id: u16,
    holder: String,
    store: Arc<dyn Store>,
}

impl NodeLease {
    /// Claims `wanted`, or the lowest free id; an error says why none could be had.
    pub async fn claim(store: Arc<dyn Store>, wanted: Option<u16>) -> Result<Self, String> {
        let mut nonce = [0u8; 8];
        rand::rng().fill_bytes(&mut nonce);
        let holder = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            u64::from_le_bytes(nonce)
        );
        let now = Timestamp::now();
        let claimed = store
            .claim_node_id(&holder, wanted, now, later(now, LEASE))
            .await
            .map_err(|e| format!("cannot claim a node id in the store: {e}"))?;
        match (claimed, wanted) {
            (Some(id), _) => Ok(Self { id, holder, store }),
            (None, Some(id)) => Err(format!(
                "node_id {id} is held by another live node sharing this store; give each node \
                 its own node_id, or leave it unset to take a free one (a node that stopped \
                 without a clean shutdown frees its id within {} s)",
                LEASE.as_secs()
            )),
            (None, None) => Err("all 1024 node ids are held by live nodes".into()),
        }
    }

    /// The id, 0-1023.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// This process's name in the store's leases and registry, unique per run.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Renews the lease until `shutdown`. A lease found lost, or about to run out without
    /// a renewal (the store unreachable for most of a lease), cancels `shutdown`, stopping
    /// the node before another may take its id.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(RENEW_EVERY);
        every.tick().await;
        let mut held_until = later(Timestamp::now(), LEASE);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let until = later(Timestamp::now(), LEASE);
            match self.store.renew_node_id(self.id, &self.holder, until).await {
                Ok(true) => held_until = until,
                Ok(false) => {
                    tracing::error!(
                        node_id = self.id,
                        "this node's id was claimed by another node while this one could not \
                         renew it; stopping, so that no two nodes assign the same message ids"
                    );
                    shutdown.cancel();
                    return;
                }
                Err(e) if later(Timestamp::now(), RENEW_EVERY * 2) >= held_until => {
                    tracing::error!(
                        node_id = self.id,
                        error = %e,
                        "cannot renew the node id lease, and it runs out in seconds; \
                         stopping, so that no other node takes the id while this one uses it"
                    );
                    shutdown.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(node_id = self.id, error = %e, "cannot renew the node id lease; will retry")
                }
            }
        }
    }

    /// Gives the id back (a clean stop, once the node assigns no more ids), so a restart can
    /// take it at once.
    pub async fn release(&self) {
        if let Err(e) = self.store.release_node_id(self.id, &self.holder).await {
            tracing::warn!(node_id = self.id, error = %e, "cannot give the node id back; it frees itself when the lease runs out");
        }
    }
}

fn later(now: Timestamp, after: Duration) -> Timestamp {
    Timestamp(now.0 + i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".into())
}
