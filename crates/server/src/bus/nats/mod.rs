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
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events waiting to be written to NATS; past this a publish is dropped and counted.
const OUTBOX: usize = 65_536;
/// Bytes of events waiting to be written; past this too.
const OUTBOX_BYTES: usize = 64 << 20;
/// Users whose events were lost, remembered one by one up to this many (then: all).
const LOST_MAX: usize = 65_536;
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
    /// Approximate bytes in the outbox.
    queued: AtomicUsize,
    /// Connected to a NATS server: publishes are written, subscriptions confirmed.
    connected: AtomicBool,
    /// Users whose events did not make it to NATS: once it is back, their sessions on
    /// other nodes are told to catch up.
    lost: Mutex<Lost>,
    metrics: Arc<Metrics>,
}

/// Whose events were lost.
#[derive(Default)]
struct Lost {
    users: HashSet<UserId>,
    /// More than `LOST_MAX`: every session of every node catches up.
    everyone: bool,
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
            queued: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            lost: Mutex::new(Lost::default()),
            metrics,
        })
    }

    /// `user`'s event did not make it to NATS.
    fn lose(&self, user: UserId) {
        self.lose_all([user]);
    }

    fn lose_all(&self, users: impl IntoIterator<Item = UserId>) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        for user in users {
            self.metrics.bus_dropped.inc();
            if lost.users.len() < LOST_MAX {
                lost.users.insert(user);
            } else {
                lost.everyone = true;
            }
        }
    }

    /// `event` left the outbox.
    fn dequeued(&self, event: &UserEvent) {
        self.queued.fetch_sub(size(event), Ordering::Relaxed);
    }

    /// The users lost so far, and whether everyone was.
    fn take_lost(&self) -> Lost {
        std::mem::take(&mut *self.lost.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Roughly what an event costs in the outbox.
fn size(event: &UserEvent) -> usize {
    64 + match event {
        UserEvent::Message { message, .. } => message.json.len(),
        UserEvent::Frame(frame) => frame.len(),
        UserEvent::Revoked(_) | UserEvent::CatchUp => 0,
    }
}

impl Bus for NatsBus {
    fn publish(&self, user: UserId, event: UserEvent) {
        self.hub.deliver(user, &event);
        if !self.connected.load(Ordering::Relaxed) {
            return self.lose(user);
        }
        let size = size(&event);
        if self.queued.fetch_add(size, Ordering::Relaxed) + size > OUTBOX_BYTES {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            return self.lose(user);
        }
        match self.outbox.try_send((user, event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(size, Ordering::Relaxed);
                self.lose(user);
            }
        }
    }

    fn listen(&self, user: UserId) -> BoxFuture<'static, ()> {
        if !self.connected.load(Ordering::Relaxed) {
            // Nothing to wait for: the subscription is made, and the session caught up,
            // once NATS is back.
            return Box::pin(std::future::ready(()));
        }
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

/// Every node listens here for what concerns all of them.
const EVERYONE: &str = "confab.all";

/// The user whose subject `subject` is.
fn subject_user(subject: &str) -> Option<UserId> {
    subject.strip_prefix("confab.u.")?.parse().ok()
}
