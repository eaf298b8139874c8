//! The node's NATS connection: connect to one of the servers (the next on failure, with a
//! growing, jittered pause), subscribe to every user the hub holds, then write publishes,
//! subscription changes and pings while a reader task hands incoming events to the hub.
//! Any failure ends the connection and starts over; after a reconnect every session
//! catches up from the store.

use super::protocol::{self, Info, ServerOp};
use super::servers::Server;
use super::{EVERYONE, NatsBus, RECHECK, subject, subject_user};
use crate::bus::{UserEvent, wire};
use crate::gateway::Hub;
use crate::metrics::Metrics;
use bytes::BytesMut;
use confab_proto::UserId;
use rand::Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;

/// Time to connect and finish the handshake with one server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A write to the server that takes longer than this ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the connection is checked with a `PING`.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Ping intervals without an answer after which the connection is taken for dead.
const PINGS_OUT_MAX: u32 = 2;
/// Pause after a round of failed connects, doubling up to the last.
const BACKOFF: [u64; 6] = [50, 100, 250, 500, 1_000, 2_000];
/// Publishes written per turn of the loop, so pings and subscriptions are not starved.
const PUBLISH_BATCH: usize = 256;
/// The payload limit until the server says its own.
const PAYLOAD_MAX_DEFAULT: usize = 1 << 20;

/// Connects and serves until `shutdown`, reconnecting whenever the connection ends.
pub(super) async fn run(bus: &NatsBus, shutdown: CancellationToken) {
    let mut servers = bus.servers.clone();
    let mut failures = 0_usize;
    while !shutdown.is_cancelled() {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = connect_any(&servers, &bus.name) => connected,
        };
        let (conn, server) = match connected {
            Ok(connected) => connected,
            Err(e) => {
                if failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, "cannot reach any NATS server; events reach this node's sessions only until one answers");
                }
                let pause = BACKOFF[failures.min(BACKOFF.len() - 1)];
                failures += 1;
                let jittered = rand::rng().random_range(pause / 2..=pause);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(jittered)) => continue,
                }
            }
        };
        failures = 0;
        learn(&mut servers, &conn.info, &bus.servers);
        tracing::info!(server = %server, "connected to NATS");
        bus.metrics.bus_connects.inc();
        bus.metrics.bus_connected.set(1);
        bus.connected.store(true, Ordering::Relaxed);
        let ended = serve(bus, conn, &shutdown).await;
        bus.connected.store(false, Ordering::Relaxed);
        // What was waiting to go out will not: those users' sessions elsewhere catch up.
        let mut waiting = Vec::new();
        while let Ok((user, event)) = bus.pending.try_recv() {
            bus.dequeued(&event);
            waiting.push(user);
        }
        bus.lose_all(waiting);
        bus.metrics.bus_connected.set(0);
        bus.metrics.bus_subscriptions.set(0);
        if shutdown.is_cancelled() {
            return;
        }
        let error = ended;
        tracing::warn!(server = %server, %error, "lost the NATS connection; reconnecting, then every session catches up from the store");
    }
}

/// A connection past its handshake.
struct Conn {
    stream: TcpStream,
    /// Bytes read after the handshake's `PONG`.
    buf: BytesMut,
    info: Info,
}

/// Tries each server once, starting at a random one so nodes spread over the cluster.
async fn connect_any(servers: &[Server], name: &str) -> Result<(Conn, String), String> {
    let start = rand::rng().random_range(0..servers.len());
    let mut errors = Vec::new();
    for server in servers.iter().cycle().skip(start).take(servers.len()) {
        match timeout(CONNECT_TIMEOUT, connect(server, name)).await {
            Ok(Ok(conn)) => return Ok((conn, server.addr.clone())),
            Ok(Err(e)) => errors.push(format!("{}: {e}", server.addr)),
            Err(_) => errors.push(format!("{}: no answer in time", server.addr)),
        }
    }
    Err(errors.join("; "))
}

/// `INFO` from the server, our `CONNECT` and a `PING`, and its `PONG`: the server took us.
async fn connect(server: &Server, name: &str) -> Result<Conn, String> {
    let mut stream = TcpStream::connect(&server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    let info = match next_op(&mut stream, &mut buf).await? {
        ServerOp::Info(info) => info,
        other => return Err(format!("expected INFO, got {other:?}")),
    };
    let mut out = Vec::new();
    protocol::connect(&mut out, name, &server.auth);
    protocol::ping(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    loop {
        match next_op(&mut stream, &mut buf).await? {
            ServerOp::Pong => return Ok(Conn { stream, buf, info }),
            ServerOp::Err(e) => return Err(format!("refused: {e}")),
            ServerOp::Ping => stream
                .write_all(b"PONG\r\n")
                .await
                .map_err(|e| e.to_string())?,
            _ => {}
        }
    }
}

async fn next_op(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<ServerOp, String> {
    loop {
        if let Some(op) =
            protocol::parse(buf, PAYLOAD_MAX_DEFAULT * 64).map_err(|e| e.to_string())?
        {
            return Ok(op);
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during the handshake".into());
        }
    }
}

/// Adds the servers the cluster named, with the credentials of the configured ones.
fn learn(servers: &mut Vec<Server>, info: &Info, configured: &[Server]) {
    let auth = configured[0].auth.clone();
    for addr in &info.connect_urls {
        if !servers.iter().any(|s| &s.addr == addr) {
            servers.push(Server {
                addr: addr.clone(),
                auth: auth.clone(),
            });
        }
    }
}

/// What the reader tells the writer.
enum FromReader {
    /// The server pinged: answer.
    Ping,
    /// The server answered our oldest outstanding ping.
    Pong,
    /// The connection ended, and why.
    Closed(String),
}

/// Waiting for the answer to one `PING`: what it confirms.
struct Confirm {
    /// When the ping went out.
    sent_at: Instant,
    /// Sessions waiting for the subscriptions written before the ping.
    waiters: Vec<oneshot::Sender<()>>,
    /// Users whose events were written before the ping: lost if no answer comes.
    published: Vec<UserId>,
}

/// Runs one connection until it fails; the reason.
async fn serve(bus: &NatsBus, conn: Conn, shutdown: &CancellationToken) -> String {
    let payload_max = match conn.info.max_payload {
        0 => PAYLOAD_MAX_DEFAULT,
        n => n,
    };
    let (read, mut write) = conn.stream.into_split();
    let (from_reader, mut events) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_loop(
        read,
        conn.buf,
        payload_max,
        bus.hub.clone(),
        bus.metrics.clone(),
        from_reader,
    ));
    let _reader = AbortOnDrop(reader);
    let mut writer = Writer {
        out: Vec::with_capacity(64 * 1024),
        scratch: Vec::new(),
        subs: HashMap::new(),
        next_sid: 2,
        payload_max,
        published: Vec::new(),
        confirms: VecDeque::new(),
        bus,
    };
    let error = writer.serve(&mut write, &mut events, shutdown).await;
    // Written but not confirmed: perhaps never read by the server.
    let unconfirmed = writer
        .confirms
        .drain(..)
        .flat_map(|c| c.published)
        .chain(writer.published.drain(..));
    bus.lose_all(unconfirmed.collect::<HashSet<_>>());
    error
}

/// The writing side's state.
struct Writer<'a> {
    /// Bytes to write, gathered over one turn of the loop.
    out: Vec<u8>,
    /// One event's payload.
    scratch: Vec<u8>,
    /// Subscription ids by user, on this connection.
    subs: HashMap<UserId, u64>,
    next_sid: u64,
    payload_max: usize,
    /// Users whose events were written since the last ping.
    published: Vec<UserId>,
    /// Pings not answered yet, oldest first.
    confirms: VecDeque<Confirm>,
    bus: &'a NatsBus,
}

impl Writer<'_> {
    async fn serve(
        &mut self,
        write: &mut OwnedWriteHalf,
        events: &mut mpsc::UnboundedReceiver<FromReader>,
        shutdown: &CancellationToken,
    ) -> String {
        let bus = self.bus;
        // A fresh connection holds no subscriptions: every user here, again, and the
        // subject every node shares.
        protocol::sub(&mut self.out, EVERYONE, 1);
        for user in bus.hub.users() {
            self.reconcile(user);
            if self.out.len() >= 64 * 1024
                && let Err(e) = self.flush(write).await
            {
                return e;
            }
        }
        self.ping(Vec::new());
        // Once the server has the subscriptions (and the cluster has had a moment to
        // spread them), everything that may have been missed is read from the store.
        let mut first = true;
        let mut catch_up_at = None;
        let mut pinger = tokio::time::interval(PING_EVERY);
        pinger.set_missed_tick_behavior(MissedTickBehavior::Delay);
        pinger.reset();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // What the node published last (its users' offline at a stop) goes out.
                    while let Ok(next) = bus.pending.try_recv() {
                        self.publish_queued(next);
                    }
                    let _ = self.flush(write).await;
                    return "stopped".into();
                }
                () = until(catch_up_at) => {
                    catch_up_at = None;
                    self.catch_up();
                }
                event = events.recv() => match event {
                    Some(FromReader::Ping) => protocol::pong(&mut self.out),
                    Some(FromReader::Pong) => {
                        let Some(confirm) = self.confirms.pop_front() else {
                            return "a PONG for no PING".into();
                        };
                        for waiter in confirm.waiters {
                            let _ = waiter.send(());
                        }
                        if std::mem::take(&mut first) {
                            catch_up_at = Some(Instant::now() + RECHECK);
                        }
                    }
                    Some(FromReader::Closed(error)) => return error,
                    None => return "the reader stopped".into(),
                },
                _ = pinger.tick() => {
                    if let Some(oldest) = self.confirms.front()
                        && oldest.sent_at.elapsed() > PING_EVERY * PINGS_OUT_MAX
                    {
                        return format!("no answer to a PING in {:?}", oldest.sent_at.elapsed());
                    }
                    self.ping(Vec::new());
                }
                changes = bus.interest.next() => {
                    for user in changes.users {
                        self.reconcile(user);
                    }
                    self.ping(changes.waiters);
                }
                first = bus.pending.recv_async() => {
                    let Ok(first) = first else { return "the bus was dropped".into() };
                    self.publish_queued(first);
                    for _ in 1..PUBLISH_BATCH {
                        match bus.pending.try_recv() {
                            Ok(next) => self.publish_queued(next),
                            Err(_) => break,
                        }
                    }
                }
            }
            if let Err(e) = self.flush(write).await {
                return e;
            }
        }
    }

    /// Every local session reads its inbox, and the sessions elsewhere of users whose
    /// events were lost are told to.
    fn catch_up(&mut self) {
        let bus = self.bus;
        let sessions = u64::try_from(bus.hub.count()).unwrap_or(u64::MAX);
        // About 4,000 catch-ups a second, between 0.1 and 30 seconds.
        bus.hub
            .catch_up_all(Duration::from_millis((sessions / 4).clamp(100, 30_000)));
        let lost = bus.take_lost();
        if lost.everyone {
            self.scratch.clear();
            wire::encode(&UserEvent::CatchUp, &mut self.scratch);
            protocol::publish(&mut self.out, EVERYONE, &self.scratch);
        } else {
            for user in lost.users {
                self.publish((user, UserEvent::CatchUp));
            }
        }
    }

    /// A `PING`, and what its answer will confirm.
    fn ping(&mut self, waiters: Vec<oneshot::Sender<()>>) {
        protocol::ping(&mut self.out);
        self.confirms.push_back(Confirm {
            sent_at: Instant::now(),
            waiters,
            published: std::mem::take(&mut self.published),
        });
    }

    /// Subscribes to `user` if the hub holds a session of theirs, unsubscribes if not.
    fn reconcile(&mut self, user: UserId) {
        let wanted = self.bus.hub.is_online(user);
        match (wanted, self.subs.get(&user)) {
            (true, None) => {
                let sid = self.next_sid;
                self.next_sid += 1;
                protocol::sub(&mut self.out, &subject(user), sid);
                self.subs.insert(user, sid);
            }
            (false, Some(&sid)) => {
                protocol::unsub(&mut self.out, sid);
                self.subs.remove(&user);
            }
            _ => {}
        }
        self.bus
            .metrics
            .bus_subscriptions
            .set(i64::try_from(self.subs.len()).unwrap_or(i64::MAX));
    }

    /// Writes an event taken from the outbox.
    fn publish_queued(&mut self, (user, event): (UserId, UserEvent)) {
        self.bus.dequeued(&event);
        self.publish((user, event));
    }

    fn publish(&mut self, (user, event): (UserId, UserEvent)) {
        self.scratch.clear();
        wire::encode(&event, &mut self.scratch);
        if self.scratch.len() > self.payload_max {
            // The server would close the connection over it; the session reads the store.
            self.bus.lose(user);
            return;
        }
        protocol::publish(&mut self.out, &subject(user), &self.scratch);
        self.published.push(user);
        self.bus.metrics.bus_published.inc();
    }

    async fn flush(&mut self, write: &mut OwnedWriteHalf) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        match timeout(WRITE_TIMEOUT, write.write_all(&self.out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("a write to the server timed out".into()),
        }
        self.out.clear();
        // A burst's buffer is not kept for the quiet after it.
        self.out.shrink_to(1 << 20);
        self.scratch.shrink_to(1 << 20);
        Ok(())
    }
}

/// Resolves at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    payload_max: usize,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    to_writer: mpsc::UnboundedSender<FromReader>,
) {
    let error = 'read: loop {
        loop {
            match protocol::parse(&mut buf, payload_max) {
                Ok(Some(ServerOp::Msg { subject, payload })) => {
                    metrics.bus_received.inc();
                    match (subject.as_str(), wire::decode(&payload)) {
                        (EVERYONE, Some(UserEvent::CatchUp)) => {
                            let sessions = u64::try_from(hub.count()).unwrap_or(u64::MAX);
                            hub.catch_up_all(Duration::from_millis(
                                (sessions / 4).clamp(100, 30_000),
                            ));
                        }
                        (subject, Some(event)) => match subject_user(subject) {
                            Some(user) => hub.deliver(user, &event),
                            None => {
                                metrics.bus_dropped.inc();
                            }
                        },
                        (_, None) => {
                            metrics.bus_dropped.inc();
                        }
                    }
                }
                Ok(Some(ServerOp::Ping)) => {
                    let _ = to_writer.send(FromReader::Ping);
                }
                Ok(Some(ServerOp::Pong)) => {
                    let _ = to_writer.send(FromReader::Pong);
                }
                // Some errors leave the connection open with a subscription or publish
                // refused (a permission, a limit): start over rather than go on without it.
                Ok(Some(ServerOp::Err(e))) => break 'read format!("the server said: {e}"),
                // A server about to shut down says so: move to another now, before it goes.
                Ok(Some(ServerOp::Info(info))) if info.ldm => {
                    break 'read "the server is shutting down (lame duck mode)".into();
                }
                Ok(Some(ServerOp::Ok | ServerOp::Info(_))) => {}
                Ok(None) => break,
                Err(e) => break 'read e.to_string(),
            }
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(64 * 1024);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => break "the server closed the connection".into(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
        // A large message's room is not kept.
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            buf = BytesMut::with_capacity(64 * 1024);
        }
    };
    let _ = to_writer.send(FromReader::Closed(error));
}

/// Stops the reader when the connection is given up.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
