//! The hub: which sessions this node holds, by user. The bus hands it events; it puts them
//! on each session's bounded queue without waiting. A session whose queue is full is closed
//! with 4008 and counted: it reconnects and resyncs from its cursor, and nobody else waits
//! for it.

use crate::bus::{Interest, PreparedMessage, UserEvent};
use crate::metrics::Metrics;
use confab_proto::limits::{SESSIONS_PER_DEVICE, close};
use confab_proto::{DeviceId, UserId};
use flume::{Sender, TrySendError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a session's writer sends.
#[derive(Debug)]
pub enum Outbound {
    /// An inbox entry (the writer checks order and fills gaps).
    Message {
        /// Its place in the user's inbox.
        inbox_seq: u64,
        /// The message.
        message: Arc<PreparedMessage>,
    },
    /// A finished frame.
    Frame(Arc<str>),
    /// Read the inbox after the last entry sent: events may have been lost (the bus
    /// reconnected).
    CatchUp,
}

/// How a session is told to end, and with which close code.
#[derive(Debug, Default)]
pub struct Control {
    cancel: CancellationToken,
    code: AtomicU16,
    /// The newest inbox entry the writer has sent: how far a `delivered` may go.
    sent: AtomicU64,
    /// A catch-up is queued and not yet begun: another one would read the same.
    catch_up_queued: AtomicBool,
}

impl Control {
    /// Ends the session with close `code`; the first code given wins.
    pub fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        self.cancel.cancel();
    }

    /// The close code asked for, if any.
    pub fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Relaxed) {
            0 => None,
            code => Some(code),
        }
    }

    /// Resolves when the session should end.
    pub async fn closed(&self) {
        self.cancel.cancelled().await
    }

    /// Records that the writer has sent the inbox entry `inbox_seq`.
    pub fn set_sent(&self, inbox_seq: u64) {
        self.sent.fetch_max(inbox_seq, Ordering::Relaxed);
    }

    /// The newest inbox entry sent to this session.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The writer begins a queued catch-up: later ones are queued anew.
    pub fn begin_catch_up(&self) {
        self.catch_up_queued.store(false, Ordering::Relaxed);
    }

    /// Has the session been told to end?
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

struct Entry {
    id: u64,
    device: DeviceId,
    tx: Sender<Outbound>,
    control: Arc<Control>,
    /// Receives the user's events; until then only revocations and drains reach it.
    live: bool,
}

const SHARDS: usize = 64;

/// The node's sessions by user, sharded to keep lock holds short under fan-out.
pub struct Hub {
    shards: Vec<Mutex<HashMap<UserId, Vec<Entry>>>>,
    next_id: AtomicU64,
    /// Open sockets, from upgrade to close, whether or not they have said hello.
    sockets: Arc<AtomicUsize>,
    /// Registered (authenticated) sessions.
    count: AtomicUsize,
    metrics: Arc<Metrics>,
    /// Told when a user's last session here leaves, for a bus that subscribes per user.
    interest: OnceLock<Arc<Interest>>,
    /// The catch-up of every session still being spread out, if one is.
    catching_up: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Counts one open socket; uncounts on drop.
pub struct SocketGuard(Arc<AtomicUsize>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a session registered; unregisters on drop.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
}

impl Registration {
    /// From now on the session receives every event of its user, not just revocations.
    pub fn go_live(&self) {
        let mut shard = self.hub.shard(self.user);
        if let Some(entry) = shard
            .get_mut(&self.user)
            .and_then(|entries| entries.iter_mut().find(|e| e.id == self.id))
        {
            entry.live = true;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shard = self.hub.shard(self.user);
        if let Some(entries) = shard.get_mut(&self.user) {
            entries.retain(|e| e.id != self.id);
            if entries.is_empty() {
                shard.remove(&self.user);
                if let Some(interest) = self.hub.interest.get() {
                    interest.changed(self.user);
                }
            }
        }
        drop(shard);
        self.hub.count.fetch_sub(1, Ordering::Relaxed);
        self.hub.metrics.connections.dec();
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            sockets: Arc::new(AtomicUsize::new(0)),
            count: AtomicUsize::new(0),
            metrics,
            interest: OnceLock::new(),
            catching_up: Mutex::new(None),
        }
    }

    /// From now on, `interest` hears of every user whose last session here leaves (their
    /// first session tells the bus itself, see [`crate::bus::Bus::listen`]).
    pub fn report_departures(&self, interest: Arc<Interest>) {
        let _ = self.interest.set(interest);
    }

    /// The users with a session here.
    pub fn users(&self) -> Vec<UserId> {
        let mut users = Vec::with_capacity(self.count());
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            users.extend(shard.keys().copied());
        }
        users
    }

    /// Tells every live session to read its inbox from the store, spread evenly `over` this
    /// long so the store is not asked all at once. A call replaces one still spreading.
    pub fn catch_up_all(&self, over: Duration) {
        let sessions = self.all_sessions(|e| e.live);
        let metrics = self.metrics.clone();
        let task = tokio::spawn(async move {
            let step = over / u32::try_from(sessions.len().max(1)).unwrap_or(u32::MAX);
            let mut next = tokio::time::Instant::now();
            for (tx, control) in sessions {
                tokio::time::sleep_until(next).await;
                next += step;
                catch_up(&tx, &control, &metrics);
            }
        });
        let mut spreading = self
            .catching_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(earlier) = spreading.replace(task.abort_handle()) {
            earlier.abort();
        }
    }

    fn shard(&self, user: UserId) -> MutexGuard<'_, HashMap<UserId, Vec<Entry>>> {
        let shard = &self.shards[(user.0 as usize) % SHARDS];
        // A panic while holding a shard leaves plain data behind; keep serving.
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Authenticated sessions open on this node.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Open WebSocket connections, authenticated or not: what `max_sessions` bounds.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Counts a new socket until the returned guard drops.
    pub fn admit(&self) -> SocketGuard {
        self.sockets.fetch_add(1, Ordering::Relaxed);
        SocketGuard(self.sockets.clone())
    }

    /// Is any session of `user` open here?
    pub fn is_online(&self, user: UserId) -> bool {
        self.shard(user).contains_key(&user)
    }

    /// Registers a session as soon as it is authenticated, so a revocation or a drain reaches
    /// it whatever it is doing; it receives `user`'s other events once it goes live
    /// ([`Registration::go_live`]), after its first catch-up from the store.
    ///
    /// `None` when the device already has `SESSIONS_PER_DEVICE` sessions here.
    pub fn register(
        self: &Arc<Self>,
        user: UserId,
        device: DeviceId,
        tx: Sender<Outbound>,
        control: Arc<Control>,
    ) -> Option<Registration> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(user);
        let entries = shard.entry(user).or_default();
        if entries.iter().filter(|e| e.device == device).count() >= SESSIONS_PER_DEVICE {
            return None;
        }
        entries.push(Entry {
            id,
            device,
            tx,
            control,
            live: false,
        });
        drop(shard);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections.inc();
        Some(Registration {
            hub: self.clone(),
            user,
            id,
        })
    }

    /// Hands `event` to every session of `user` on this node, never waiting.
    pub fn deliver(&self, user: UserId, event: &UserEvent) {
        let shard = self.shard(user);
        let Some(entries) = shard.get(&user) else {
            return;
        };
        for entry in entries {
            if !matches!(event, UserEvent::Revoked(_)) && (!entry.live || entry.control.is_closed())
            {
                // Catching up from the store (which has this event too), or ending.
                continue;
            }
            let outbound = match event {
                UserEvent::Message { inbox_seq, message } => {
                    self.metrics.deliveries.inc();
                    Outbound::Message {
                        inbox_seq: *inbox_seq,
                        message: message.clone(),
                    }
                }
                UserEvent::Frame(frame) => Outbound::Frame(frame.clone()),
                UserEvent::CatchUp => {
                    catch_up(&entry.tx, &entry.control, &self.metrics);
                    continue;
                }
                UserEvent::Revoked(device) => {
                    if *device == entry.device {
                        entry.control.close(close::UNAUTHORIZED);
                    }
                    continue;
                }
            };
            offer(&entry.tx, &entry.control, outbound, &self.metrics);
        }
    }

    /// Tells every session to go elsewhere (`reconnect`, then close 1001), spread evenly
    /// `over` this long so the other nodes are not flooded at once; session `i` gets
    /// `frames[i % len]`, so that they do not all go to the same node.
    pub fn drain(&self, frames: Vec<Arc<str>>, over: Duration) {
        let sessions = self.all_sessions(|_| true);
        tokio::spawn(async move {
            let step = over / u32::try_from(sessions.len().max(1)).unwrap_or(u32::MAX);
            let mut next = tokio::time::Instant::now();
            for (i, (tx, control)) in sessions.into_iter().enumerate() {
                tokio::time::sleep_until(next).await;
                next += step;
                if let Some(frame) = frames.get(i % frames.len().max(1)) {
                    let _ = tx.try_send(Outbound::Frame(frame.clone()));
                }
                control.close(close::GOING_AWAY);
            }
        });
    }

    /// The queue and control of every session `which` picks.
    fn all_sessions(
        &self,
        which: impl Fn(&Entry) -> bool,
    ) -> Vec<(Sender<Outbound>, Arc<Control>)> {
        let mut sessions = Vec::with_capacity(self.count());
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            sessions.extend(
                shard
                    .values()
                    .flatten()
                    .filter(|e| which(e))
                    .map(|e| (e.tx.clone(), e.control.clone())),
            );
        }
        sessions
    }
}

/// Queues a catch-up unless one is queued already.
fn catch_up(tx: &Sender<Outbound>, control: &Control, metrics: &Metrics) {
    if !control.catch_up_queued.swap(true, Ordering::Relaxed) {
        offer(tx, control, Outbound::CatchUp, metrics);
    }
}

/// Puts `outbound` on a session's queue; a full queue closes the session with 4008.
pub fn offer(tx: &Sender<Outbound>, control: &Control, outbound: Outbound, metrics: &Metrics) {
    match tx.try_send(outbound) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            if !control.is_closed() {
                metrics.queue_full_closes.inc();
            }
            control.close(close::TOO_SLOW);
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}
