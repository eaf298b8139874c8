//! The NATS bus: events cross to the nodes holding the user's sessions on NATS core
//! pub/sub, one subject per user (`confab.u.<user_id>`). A node subscribes to a user's
//! subject while it holds a session of theirs, so each event reaches only the nodes that
//! need it, and delivers to its own sessions directly (its connection asks NATS not to echo
//! its own publishes back).
//!
//! One connection per node, spoken by `connection.rs` in NATS's text protocol
//! (`protocol.rs`): a subscription costs this node a map entry (about 40 bytes) where a
//! general client's subscriber object and channel cost about 4.9 KiB (measured with
//! async-nats 0.51), which at 100,000 users is the difference between 4 MB and 470 MB.
//!
//! Core NATS is at most once. When the connection drops, every local session catches up
//! from the store once it is back; a live entry that overtook a lost one is filled from the
//! store by the session's gap fill.

mod connection;
mod protocol;
pub mod servers;

use super::{Bus, Interest, UserEvent};
use crate::gateway::Hub;
use crate::metrics::Metrics;
use confab_proto::UserId;
use flume::TrySendError;
use futures_util::future::BoxFuture;
use servers::Server;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events waiting to be written to NATS; past this a publish is dropped and counted.
const OUTBOX: usize = 65_536;
/// A NATS cluster tells its other servers of a new subscription a moment after confirming
/// it; a session reads the store once more this long after going live for what was
/// published meanwhile.
const RECHECK: Duration = Duration::from_millis(500);

/// The bus of a cluster node.
pub struct NatsBus {
    hub: Arc<Hub>,
    servers: Vec<Server>,
    /// Told to NATS, so the servers' monitoring shows which node a connection is.
    name: String,
    interest: Arc<Interest>,
    outbox: flume::Sender<(UserId, UserEvent)>,
    pending: flume::Receiver<(UserId, UserEvent)>,
    metrics: Arc<Metrics>,
}

impl NatsBus {
    /// A bus on the servers of `setting` (see [`servers::parse`]), delivering into `hub`.
    /// It connects in [`Bus::run`]; until then, and while disconnected, events reach this
    /// node's sessions only.
    pub fn new(
        setting: &str,
        name: String,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let servers = servers::parse(setting).map_err(|e| format!("bus: {e}"))?;
        let interest = Arc::new(Interest::default());
        hub.report_departures(interest.clone());
        let (outbox, pending) = flume::bounded(OUTBOX);
        Ok(Self {
            hub,
            servers,
            name,
            interest,
            outbox,
            pending,
            metrics,
        })
    }
}

impl Bus for NatsBus {
    fn publish(&self, user: UserId, event: UserEvent) {
        self.hub.deliver(user, &event);
        match self.outbox.try_send((user, event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.bus_dropped.inc();
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn listen(&self, user: UserId) -> BoxFuture<'static, ()> {
        let confirmed = self.interest.listen(user);
        Box::pin(async move {
            let _ = confirmed.await;
        })
    }

    fn recheck_after(&self) -> Option<Duration> {
        Some(RECHECK)
    }

    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'_, ()> {
        Box::pin(connection::run(self, shutdown))
    }
}

/// The subject of `user`'s events.
fn subject(user: UserId) -> String {
    format!("confab.u.{user}")
}

/// The user whose subject `subject` is.
fn subject_user(subject: &str) -> Option<UserId> {
    subject.strip_prefix("confab.u.")?.parse().ok()
}
