//! The task behind a [`Connection`](crate::Connection): one loop that owns the socket,
//! reads frames into the event queue, writes commands, heartbeats and `delivered`, and
//! reconnects. Nothing else touches the socket, so there is no lock on it.
//!
//! The handle and the event types are in [`crate::connection`]; settings in
//! [`crate::builder`].

use crate::backoff::Backoff;
use crate::builder::Config;
use crate::connection::{DisconnectReason, Event};
use crate::endpoint::ws_url;
use crate::error::{Error, Result};
use crate::nodes::Nodes;
use confab_proto::limits::{FRAME_MAX_BYTES, close};
use confab_proto::{
    Action, ClientFrame, ConversationId, DeviceId, ErrorCode, FrameError, Message, ServerFrame,
    UserId,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connection that lasted this long was healthy: the next reconnect starts the backoff
/// over instead of continuing to grow it.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// How long a close handshake may take before the socket is just dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The server is taken for dead after this many heartbeat intervals of silence.
const SILENT_INTERVALS: u32 = 3;
/// Heartbeat intervals from `welcome` are kept within these bounds.
const HEARTBEAT_MIN: Duration = Duration::from_millis(100);
const HEARTBEAT_MAX: Duration = Duration::from_secs(300);
/// The wait after `overloaded` without `retry_after_ms`, and the cap on any such wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Conversations whose read watermark is kept while disconnected.
const MAX_OFFLINE_READS: usize = 1024;
/// Incoming frames may exceed the contract's limit by this factor before the socket is
/// dropped: refusing a frame would only loop (reconnect, same backlog, same frame).
const FRAME_SLACK: usize = 2;

/// What the handles ask the task to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a message, or a change to one; answer on `reply` with the ack or the error.
    Send {
        conversation_id: ConversationId,
        client_msg_id: String,
        action: Action,
        reply: oneshot::Sender<Result<Message>>,
    },
    /// The user read up to `seq`.
    Read {
        conversation_id: ConversationId,
        seq: u64,
    },
    /// The user is typing.
    Typing { conversation_id: ConversationId },
}

/// The cursor, written by the task and read by the handles. `u64::MAX` stands for "none
/// yet" (no inbox gets that far).
#[derive(Debug)]
pub(crate) struct SharedCursor(AtomicU64);

impl SharedCursor {
    const NONE: u64 = u64::MAX;

    pub(crate) fn new(cursor: Option<u64>) -> Self {
        Self(AtomicU64::new(cursor.unwrap_or(Self::NONE)))
    }

    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&c| c != Self::NONE)
    }

    fn set(&self, cursor: u64) {
        self.0.store(cursor, Ordering::Relaxed);
    }
}

/// A socket past `welcome`.
pub(crate) struct Session {
    ws: Ws,
    /// The node's base URL.
    url: String,
    user_id: UserId,
    device_id: DeviceId,
    inbox_seq: u64,
    heartbeat_interval: Duration,
    cursor: Option<u64>,
    started: Instant,
}

impl Session {
    /// The [`Event::Connected`] announcing this session.
    pub(crate) fn connected_event(&self) -> Event {
        Event::Connected {
            url: self.url.clone(),
            user_id: self.user_id,
            device_id: self.device_id,
            inbox_seq: self.inbox_seq,
            cursor: self.cursor,
        }
    }
}

/// One connect attempt to the node at `base` (its HTTP base URL): TCP, upgrade, `hello`,
/// `welcome`, all within the connect timeout.
pub(crate) async fn establish(
    base: &str,
    token: &str,
    cursor: Option<u64>,
    config: &Config,
) -> Result<Session> {
    let url = &ws_url(base)?;
    let attempt = async {
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(FRAME_MAX_BYTES * FRAME_SLACK))
            .max_frame_size(Some(FRAME_MAX_BYTES * FRAME_SLACK));
        let (mut ws, _) = connect_async_with_config(url, Some(ws_config), true).await?;
        let hello = ClientFrame::Hello {
            token: token.to_owned(),
            cursor,
        };
        ws.send(WsMessage::text(serde_json::to_string(&hello)?))
            .await?;
        loop {
            let Some(msg) = ws.next().await else {
                return Err(Error::ClosedByServer {
                    code: 1006,
                    reason: "the connection ended before welcome".into(),
                });
            };
            match msg? {
                WsMessage::Text(text) => match serde_json::from_str::<ServerFrame>(&text) {
                    Ok(ServerFrame::Welcome {
                        user_id,
                        device_id,
                        inbox_seq,
                        heartbeat_interval_ms,
                    }) => {
                        let heartbeat_interval = Duration::from_millis(heartbeat_interval_ms)
                            .clamp(HEARTBEAT_MIN, HEARTBEAT_MAX);
                        return Ok(Session {
                            ws,
                            url: base.trim_end_matches('/').to_owned(),
                            user_id,
                            device_id,
                            inbox_seq,
                            heartbeat_interval,
                            cursor,
                            started: Instant::now(),
                        });
                    }
                    Ok(ServerFrame::Error(e)) => return Err(Error::from_frame(e)),
                    // Nothing else belongs before welcome; ignore it rather than fail.
                    Ok(_) | Err(_) => {}
                },
                WsMessage::Close(frame) => {
                    let (code, reason) = close_parts(frame);
                    return Err(if code == close::UNAUTHORIZED {
                        Error::unauthorized(reason)
                    } else {
                        Error::ClosedByServer { code, reason }
                    });
                }
                _ => {}
            }
        }
    };
    timeout(config.connect_timeout, attempt)
        .await
        .unwrap_or(Err(Error::Timeout("connecting")))
}

/// How a session ended, and what comes next.
enum End {
    /// Reconnect.
    Lost(DisconnectReason),
    /// Close code 4001: the token is dead; stop with this message.
    Unauthorized(DisconnectReason, String),
    /// `close()` or every handle dropped: stop.
    Shutdown,
}

/// What woke the session loop.
enum Step {
    Shutdown,
    /// An event reached the queue; `Some(inbox_seq)` for a message.
    Delivered(Option<u64>),
    EventsDropped,
    Frame(Option<std::result::Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Command(Option<Command>),
    Heartbeat,
    FlushDelivered,
    RetrySends,
}

/// A send awaiting its ack.
struct PendingSend {
    conversation_id: ConversationId,
    client_msg_id: String,
    action: Action,
    reply: oneshot::Sender<Result<Message>>,
    /// Times the frame was written.
    attempts: u32,
    deadline: Instant,
    /// Set after `rate_limited`/`overloaded`: not before then.
    retry_at: Option<Instant>,
}

impl PendingSend {
    fn fail(self, error: Error) {
        // The caller may have given up already; then nobody is listening.
        let _ = self.reply.send(Err(error));
    }

    fn unconfirmed(self) {
        let client_msg_id = self.client_msg_id.clone();
        self.fail(Error::Unconfirmed { client_msg_id });
    }
}

/// The connection task's state across sessions.
pub(crate) struct Worker {
    config: Config,
    /// The base URL of the node in use (or last used).
    current: String,
    /// The cluster's nodes as far as known, to ask where to go when `current` is gone.
    nodes: Nodes,
    token: String,
    /// Where the next attempt goes instead of `current`, after a `reconnect` frame.
    redirect: Option<String>,
    /// The highest `inbox_seq` handed to the app (or the one we started from).
    cursor: Option<u64>,
    shared_cursor: Arc<SharedCursor>,
    /// The last `delivered` written.
    delivered_sent: u64,
    /// When a `delivered` is due for messages handed over since the last one.
    delivered_due: Option<Instant>,
    events: mpsc::Sender<Event>,
    events_open: bool,
    commands: mpsc::Receiver<Command>,
    shutdown: watch::Receiver<bool>,
    /// Sends awaiting their ack, by req (numbers in call order, so resends keep it).
    sends: BTreeMap<u64, PendingSend>,
    next_req: u64,
    /// The earliest `retry_at` among `sends`.
    retry_wakeup: Option<Instant>,
    /// Read watermarks waiting for a connection.
    offline_reads: BTreeMap<ConversationId, u64>,
    backoff: Backoff,
}

impl Worker {
    pub(crate) fn new(
        config: Config,
        nodes: Nodes,
        token: String,
        shared_cursor: Arc<SharedCursor>,
        events: mpsc::Sender<Event>,
        commands: mpsc::Receiver<Command>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
        let cursor = config.initial_cursor;
        Self {
            config,
            current: String::new(),
            nodes,
            token,
            redirect: None,
            cursor,
            shared_cursor,
            delivered_sent: cursor.unwrap_or(0),
            delivered_due: None,
            events,
            events_open: true,
            commands,
            shutdown,
            sends: BTreeMap::new(),
            next_req: 1,
            retry_wakeup: None,
            offline_reads: BTreeMap::new(),
            backoff,
        }
    }

    /// Serves `session`, then reconnects and serves the next, until a final end.
    pub(crate) async fn run(mut self, session: Session) {
        self.current.clone_from(&session.url);
        let mut session = session;
        let error = loop {
            let started = session.started;
            let end = self.serve(session).await;
            let (reason, error) = match end {
                End::Shutdown => (DisconnectReason::Requested, Some(None)),
                End::Unauthorized(reason, message) => {
                    (reason, Some(Some(Error::unauthorized(message))))
                }
                End::Lost(reason) => (reason, None),
            };
            tracing::info!(?reason, "confab connection lost");
            self.emit(Event::Disconnected { reason }).await;
            if let Some(error) = error {
                break error;
            }
            if started.elapsed() >= STABLE_SESSION {
                self.backoff.reset();
            }
            match self.reconnect().await {
                Ok(next) => session = next,
                Err(error) => break error,
            }
        };
        self.finish(error).await;
    }

    // ---- one session -----------------------------------------------------------------

    async fn serve(&mut self, session: Session) -> End {
        let Session {
            mut ws,
            heartbeat_interval,
            ..
        } = session;
        let end = match self.resume(&mut ws).await {
            Ok(()) => self.serve_loop(&mut ws, heartbeat_interval).await,
            Err(end) => end,
        };
        match &end {
            End::Shutdown => {
                // Best effort: the server learns what we have, then a clean close.
                let _ = self.flush_delivered(&mut ws).await;
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "closed by the client".into(),
                };
                close_quietly(&mut ws, Some(frame)).await;
            }
            // Completes the close handshake the server started (or fails fast).
            End::Lost(_) | End::Unauthorized(..) => close_quietly(&mut ws, None).await,
        }
        end
    }

    /// After `welcome`: replays what waited for a connection.
    async fn resume(&mut self, ws: &mut Ws) -> Result<(), End> {
        self.sweep_sends();
        for (conversation_id, seq) in std::mem::take(&mut self.offline_reads) {
            let frame = ClientFrame::Read {
                req: None,
                conversation_id,
                seq,
            };
            self.write(ws, &frame).await?;
        }
        let now = Instant::now();
        let due: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, p)| p.retry_at.is_none_or(|at| at <= now))
            .map(|(&req, _)| req)
            .collect();
        for req in due {
            self.write_send(ws, req).await?;
        }
        self.recompute_retry_wakeup();
        if self.cursor.is_some_and(|c| c > self.delivered_sent) {
            self.flush_delivered(ws).await?;
        }
        Ok(())
    }

    async fn serve_loop(&mut self, ws: &mut Ws, heartbeat_interval: Duration) -> End {
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + heartbeat_interval, heartbeat_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let silence_limit = heartbeat_interval * SILENT_INTERVALS;
        let mut last_heard = Instant::now();
        // An event read from the socket that waits for room in the queue. While one
        // waits, the socket is not read: that is the backpressure on the server.
        let mut pending: Option<Event> = None;
        loop {
            let idle = Instant::now() + Duration::from_secs(3600);
            let step = tokio::select! {
                () = wait_shutdown(&mut self.shutdown) => Step::Shutdown,
                permit = self.events.reserve(), if pending.is_some() => match (permit, pending.take()) {
                    (Ok(permit), Some(event)) => {
                        let seq = match &event {
                            Event::Message { inbox_seq, .. } => Some(*inbox_seq),
                            _ => None,
                        };
                        permit.send(event);
                        Step::Delivered(seq)
                    }
                    (Ok(_), None) => Step::Delivered(None),
                    (Err(_), _) => Step::EventsDropped,
                },
                frame = ws.next(), if pending.is_none() => Step::Frame(frame),
                command = self.commands.recv(),
                    if self.sends.len() < self.config.max_in_flight_sends => Step::Command(command),
                _ = heartbeat.tick() => Step::Heartbeat,
                () = sleep_until(self.delivered_due.unwrap_or(idle)),
                    if self.delivered_due.is_some() => Step::FlushDelivered,
                () = sleep_until(self.retry_wakeup.unwrap_or(idle)),
                    if self.retry_wakeup.is_some() => Step::RetrySends,
            };
            let result = match step {
                Step::Shutdown | Step::Command(None) => return End::Shutdown,
                Step::Delivered(seq) => {
                    // The socket was paused while the event waited; that was not silence.
                    last_heard = Instant::now();
                    match seq {
                        Some(seq) => self.advance_cursor(ws, seq).await,
                        None => Ok(()),
                    }
                }
                Step::EventsDropped => {
                    tracing::debug!("events receiver dropped; discarding events from now on");
                    self.events_open = false;
                    last_heard = Instant::now();
                    Ok(())
                }
                Step::Frame(None) => {
                    return End::Lost(DisconnectReason::Transport(
                        "the connection ended without a close frame".into(),
                    ));
                }
                Step::Frame(Some(Err(e))) => {
                    return End::Lost(DisconnectReason::Transport(e.to_string()));
                }
                Step::Frame(Some(Ok(msg))) => {
                    last_heard = Instant::now();
                    match self.on_ws_message(msg) {
                        Ok(event) => {
                            pending = event.filter(|_| self.events_open);
                            Ok(())
                        }
                        Err(end) => return end,
                    }
                }
                Step::Command(Some(command)) => self.on_command(ws, command).await,
                Step::Heartbeat => {
                    if pending.is_none() && last_heard.elapsed() >= silence_limit {
                        return End::Lost(DisconnectReason::TimedOut);
                    }
                    self.sweep_sends();
                    self.write(ws, &ClientFrame::Heartbeat).await
                }
                Step::FlushDelivered => self.flush_delivered(ws).await,
                Step::RetrySends => self.retry_due_sends(ws).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Handles one WebSocket message; `Ok(Some)` is an event for the app.
    fn on_ws_message(&mut self, msg: WsMessage) -> Result<Option<Event>, End> {
        match msg {
            WsMessage::Text(text) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(frame) => Ok(self.on_frame(frame)),
                Err(e) => {
                    // A newer server may add frame types; skipping them keeps us working.
                    tracing::debug!(error = %e, "ignoring a frame this SDK does not know");
                    Ok(None)
                }
            },
            WsMessage::Close(frame) => {
                let (code, reason) = close_parts(frame);
                let disconnect = DisconnectReason::Closed {
                    code,
                    reason: reason.clone(),
                };
                if code == close::UNAUTHORIZED {
                    Err(End::Unauthorized(disconnect, reason))
                } else {
                    Err(End::Lost(disconnect))
                }
            }
            // Pings are answered by tungstenite itself; binary frames are not the contract.
            _ => Ok(None),
        }
    }

    fn on_frame(&mut self, frame: ServerFrame) -> Option<Event> {
        match frame {
            ServerFrame::Message { inbox_seq, message } => {
                if self.cursor.is_some_and(|c| inbox_seq <= c) {
                    tracing::trace!(inbox_seq, "dropping a message at or below the cursor");
                    return None;
                }
                Some(Event::Message { inbox_seq, message })
            }
            ServerFrame::Ack { req, message } => {
                if let Some(pending) = parse_req(req.as_deref()).and_then(|r| self.sends.remove(&r))
                {
                    let _ = pending.reply.send(Ok(message));
                }
                None
            }
            ServerFrame::Error(error) => match parse_req(error.req.as_deref()) {
                Some(req) if self.sends.contains_key(&req) => {
                    self.on_send_error(req, error);
                    None
                }
                _ => Some(Event::Error(error)),
            },
            ServerFrame::Receipt {
                conversation_id,
                user_id,
                kind,
                seq,
            } => Some(Event::Receipt {
                conversation_id,
                user_id,
                kind,
                seq,
            }),
            ServerFrame::Typing {
                conversation_id,
                user_id,
            } => Some(Event::Typing {
                conversation_id,
                user_id,
            }),
            ServerFrame::Block { user_id, blocked } => Some(Event::Block { user_id, blocked }),
            ServerFrame::Settings {
                conversation_id,
                settings,
            } => Some(Event::Settings {
                conversation_id,
                settings,
            }),
            ServerFrame::Presence(presence) => Some(Event::Presence(presence)),
            ServerFrame::Reconnect { servers } => {
                // The server closes with 1001 next; go to the best node it named.
                let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
                self.nodes.learn(&urls);
                self.redirect = urls.into_iter().next();
                tracing::info!(redirect = ?self.redirect, "confab node draining");
                None
            }
            ServerFrame::HeartbeatAck | ServerFrame::Welcome { .. } => None,
        }
    }

    /// A send was refused: retry `rate_limited`/`overloaded` later if allowed, else answer.
    fn on_send_error(&mut self, req: u64, error: FrameError) {
        let now = Instant::now();
        let attempts = self.sends.get(&req).map_or(1, |p| p.attempts.max(1));
        // The server's wait, doubled for each attempt before: a client that came back at
        // the hint every time would keep an overloaded node busy refusing it.
        let wait = error
            .retry_after_ms
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_millis)
            .saturating_mul(1 << (attempts - 1).min(5))
            .min(MAX_RETRY_AFTER);
        let retryable = matches!(error.code, ErrorCode::RateLimited | ErrorCode::Overloaded);
        let max_attempts = self.config.send_max_attempts;
        let retry = self
            .sends
            .get_mut(&req)
            .filter(|p| retryable && p.attempts < max_attempts && now + wait < p.deadline);
        if let Some(pending) = retry {
            let at = now + wait;
            pending.retry_at = Some(at);
            self.retry_wakeup = Some(self.retry_wakeup.map_or(at, |w| w.min(at)));
            return;
        }
        if let Some(pending) = self.sends.remove(&req) {
            pending.fail(Error::from_frame(error));
        }
    }

    async fn on_command(&mut self, ws: &mut Ws, command: Command) -> Result<(), End> {
        match command {
            Command::Send { .. } => {
                let req = self.queue_send(command);
                match req {
                    Some(req) => self.write_send(ws, req).await,
                    None => Ok(()),
                }
            }
            Command::Read {
                conversation_id,
                seq,
            } => {
                let frame = ClientFrame::Read {
                    req: None,
                    conversation_id,
                    seq,
                };
                self.write(ws, &frame).await
            }
            Command::Typing { conversation_id } => {
                self.write(ws, &ClientFrame::Typing { conversation_id })
                    .await
            }
        }
    }

    /// Records a send command as pending; returns its req.
    fn queue_send(&mut self, command: Command) -> Option<u64> {
        let Command::Send {
            conversation_id,
            client_msg_id,
            action,
            reply,
        } = command
        else {
            return None;
        };
        let req = self.next_req;
        self.next_req += 1;
        self.sends.insert(
            req,
            PendingSend {
                conversation_id,
                client_msg_id,
                action,
                reply,
                attempts: 0,
                deadline: Instant::now() + self.config.send_timeout,
                retry_at: None,
            },
        );
        Some(req)
    }

    /// Writes (or rewrites) the send frame of `req`, or fails it when out of tries.
    async fn write_send(&mut self, ws: &mut Ws, req: u64) -> Result<(), End> {
        let max_attempts = self.config.send_max_attempts;
        let Some(pending) = self.sends.get_mut(&req) else {
            return Ok(());
        };
        if pending.attempts >= max_attempts {
            if let Some(pending) = self.sends.remove(&req) {
                pending.unconfirmed();
            }
            return Ok(());
        }
        pending.attempts += 1;
        pending.retry_at = None;
        let frame = ClientFrame::Send {
            req: Some(req.to_string()),
            conversation_id: pending.conversation_id,
            client_msg_id: pending.client_msg_id.clone(),
            kind: pending.action.kind(),
            body: pending.action.body().to_owned(),
            target_seq: pending.action.target(),
            reply_to: pending.action.reply_to(),
        };
        self.write(ws, &frame).await
    }

    async fn retry_due_sends(&mut self, ws: &mut Ws) -> Result<(), End> {
        let now = Instant::now();
        let due: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, p)| p.retry_at.is_some_and(|at| at <= now))
            .map(|(&req, _)| req)
            .collect();
        for req in due {
            self.write_send(ws, req).await?;
        }
        self.recompute_retry_wakeup();
        Ok(())
    }

    fn recompute_retry_wakeup(&mut self) {
        self.retry_wakeup = self.sends.values().filter_map(|p| p.retry_at).min();
    }

    /// Drops sends whose caller gave up and fails those past their deadline.
    fn sweep_sends(&mut self) {
        let now = Instant::now();
        let done: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, p)| p.reply.is_closed() || p.deadline <= now)
            .map(|(&req, _)| req)
            .collect();
        for req in done {
            if let Some(pending) = self.sends.remove(&req) {
                pending.unconfirmed();
            }
        }
        self.recompute_retry_wakeup();
    }

    /// A message reached the app: move the cursor, and say `delivered` when a batch is full.
    async fn advance_cursor(&mut self, ws: &mut Ws, seq: u64) -> Result<(), End> {
        self.cursor = Some(seq);
        self.shared_cursor.set(seq);
        if seq.saturating_sub(self.delivered_sent) >= self.config.delivered_every {
            self.flush_delivered(ws).await
        } else {
            if self.delivered_due.is_none() {
                self.delivered_due = Some(Instant::now() + self.config.delivered_delay);
            }
            Ok(())
        }
    }

    async fn flush_delivered(&mut self, ws: &mut Ws) -> Result<(), End> {
        self.delivered_due = None;
        match self.cursor {
            Some(cursor) if cursor > self.delivered_sent => {
                self.write(ws, &ClientFrame::Delivered { inbox_seq: cursor })
                    .await?;
                self.delivered_sent = cursor;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes one frame within the write timeout; a failure ends the session.
    async fn write(&self, ws: &mut Ws, frame: &ClientFrame) -> Result<(), End> {
        let text = serde_json::to_string(frame)
            .map_err(|e| End::Lost(DisconnectReason::Transport(e.to_string())))?;
        match timeout(self.config.write_timeout, ws.send(WsMessage::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(DisconnectReason::Transport(e.to_string()))),
            Err(_) => Err(End::Lost(DisconnectReason::Transport(
                "writing a frame timed out".into(),
            ))),
        }
    }

    // ---- between sessions ------------------------------------------------------------

    /// Waits out the backoff and tries again until a session starts. `Err(None)` on
    /// shutdown, `Err(Some)` for a final error.
    async fn reconnect(&mut self) -> Result<Session, Option<Error>> {
        let mut failures: u32 = 0;
        loop {
            let delay = self.backoff.next_delay();
            tracing::debug!(?delay, failures, "reconnecting");
            if !self.wait_offline(Instant::now() + delay).await {
                return Err(None);
            }
            let mut shutdown = self.shutdown.clone();
            let attempt = tokio::select! {
                result = self.attempt(failures) => result,
                () = wait_shutdown(&mut shutdown) => return Err(None),
            };
            match attempt {
                Ok(session) => {
                    self.current.clone_from(&session.url);
                    tracing::info!(url = %session.url, cursor = ?self.cursor, "confab connection resumed");
                    if self.cursor.is_some_and(|c| c > session.inbox_seq) {
                        // Messages up to the cursor will be dropped as repeats; only a
                        // server that lost data (or another server's cursor) does this.
                        tracing::warn!(
                            cursor = ?self.cursor,
                            inbox_seq = session.inbox_seq,
                            "the server's inbox is behind this device's cursor"
                        );
                    }
                    self.emit(session.connected_event()).await;
                    return Ok(session);
                }
                Err(e) if e.code() == Some(ErrorCode::Unauthorized) => return Err(Some(e)),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::info!(error = %e, failures, "confab reconnect failed");
                    if self
                        .config
                        .max_reconnect_attempts
                        .is_some_and(|max| failures >= max)
                    {
                        return Err(Some(e));
                    }
                }
            }
        }
    }

    /// One reconnect attempt: the node a `reconnect` frame named, or the one in use; after
    /// a failure, the live nodes discovery offers (asked of any node known), in turn.
    async fn attempt(&mut self, failures: u32) -> Result<Session> {
        let first = self.redirect.take().unwrap_or_else(|| self.current.clone());
        let mut candidates = vec![first.clone()];
        if failures > 0
            && self.config.discovery
            && let Some(offered) = self.nodes.discover(Some(&first)).await
        {
            // The one that just failed last: discovery lists a dead node for a few seconds.
            candidates = offered.into_iter().filter(|u| *u != first).collect();
            candidates.push(first);
        }
        let mut last = None;
        for url in candidates {
            match establish(&url, &self.token, self.cursor, &self.config).await {
                Ok(session) => return Ok(session),
                Err(e) if e.code() == Some(ErrorCode::Unauthorized) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::ClosedByServer {
            code: 1006,
            reason: "no node to connect to".into(),
        }))
    }

    /// Sleeps until `deadline` while taking commands; false on shutdown.
    async fn wait_offline(&mut self, deadline: Instant) -> bool {
        self.sweep_sends();
        loop {
            let command = tokio::select! {
                () = sleep_until(deadline) => return true,
                () = wait_shutdown(&mut self.shutdown) => return false,
                command = self.commands.recv(),
                    if self.sends.len() < self.config.max_in_flight_sends => command,
            };
            match command {
                None => return false,
                Some(command @ Command::Send { .. }) => {
                    self.queue_send(command);
                }
                Some(Command::Read {
                    conversation_id,
                    seq,
                }) => {
                    if self.offline_reads.len() < MAX_OFFLINE_READS
                        || self.offline_reads.contains_key(&conversation_id)
                    {
                        let kept = self.offline_reads.entry(conversation_id).or_insert(seq);
                        *kept = (*kept).max(seq);
                    } else {
                        tracing::debug!(%conversation_id, "too many reads waiting; dropping one");
                    }
                }
                // Stale by the time a connection is back.
                Some(Command::Typing { .. }) => {}
            }
        }
    }

    /// Answers everything still waiting and says goodbye on the event queue.
    async fn finish(mut self, error: Option<Error>) {
        self.commands.close();
        let unauthorized = error
            .as_ref()
            .filter(|e| e.code() == Some(ErrorCode::Unauthorized))
            .map(ToString::to_string);
        let fail = |pending: PendingSend| match &unauthorized {
            Some(message) => pending.fail(Error::unauthorized(message.clone())),
            None => pending.fail(Error::Closed),
        };
        for pending in std::mem::take(&mut self.sends).into_values() {
            fail(pending);
        }
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Send { reply, .. } = command {
                let _ = reply.send(Err(Error::Closed));
            }
        }
        tracing::info!(error = ?error, "confab connection ended");
        self.emit(Event::Terminated { error }).await;
    }

    /// Queues an event for the app, waiting for room unless a shutdown was asked for.
    async fn emit(&mut self, event: Event) {
        if !self.events_open {
            return;
        }
        if *self.shutdown.borrow() || self.shutdown.has_changed().is_err() {
            // Closing (asked for, or every handle dropped) must not wait on an app that
            // stopped reading.
            let _ = self.events.try_send(event);
            return;
        }
        let sent = tokio::select! {
            sent = self.events.send(event) => sent.is_ok(),
            () = wait_shutdown(&mut self.shutdown) => true,
        };
        if !sent {
            self.events_open = false;
        }
    }
}

/// Resolves when a shutdown was asked for or every handle is gone.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // Err means the sender (held by the handles) is gone: as final as a close.
    let _ = shutdown.wait_for(|&closing| closing).await;
}

fn parse_req(req: Option<&str>) -> Option<u64> {
    req.and_then(|r| r.parse().ok())
}

fn close_parts(frame: Option<CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
        // 1005: "no status received", as the WebSocket RFC names a close without a code.
        None => (1005, String::new()),
    }
}

/// Sends a close frame (or finishes the one the server started) and waits briefly for the
/// handshake to end; errors mean the socket is gone already, which is the goal anyway.
async fn close_quietly(ws: &mut Ws, frame: Option<CloseFrame>) {
    let _ = timeout(CLOSE_GRACE, async {
        let _ = ws.close(frame).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
