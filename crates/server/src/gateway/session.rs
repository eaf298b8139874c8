//! One WebSocket session: `hello`, then a reader (this task) and a writer (its own task)
//! joined by one bounded outbound queue. The writer owns the socket's sink; producers
//! only `try_send` (see `hub.rs`).
//!
//! Sync: the writer streams the inbox after the device's cursor, registers with the hub,
//! streams once more to catch what was committed meanwhile, then goes live. Any live entry
//! already sent is skipped; one that jumps ahead waits a moment for the entries before it
//! (`ahead.rs`), then fills the gap from the store. So the device sees every entry once, in
//! order, across the switch.

use super::ahead::Ahead;
use super::hub::{Control, Outbound, Registration, offer};
use crate::addresses::{ClientIp, Held};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as Ws, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use confab_proto::limits::{FRAME_MAX_BYTES, PAGE_MAX, REQ_MAX, close};
use confab_proto::{ClientFrame, DeviceId, ErrorCode, ServerFrame, UserId};
use flume::{Receiver, Sender};
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Sends of one session being stored at once; more wait, which slows the reader.
const SENDS_IN_FLIGHT: usize = 16;
/// A write that takes longer than this ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// Small socket buffers keep idle sessions cheap; they grow for large frames as needed.
const READ_BUFFER: usize = 512;
/// Queued frames are gathered up to this many bytes per socket write, so a busy session
/// pays one syscall per batch rather than one per frame; an idle one never fills it.
const WRITE_BUFFER: usize = 8 * 1024;

/// A heartbeat as clients usually write it.
const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

static HEARTBEAT_ACK: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| frame_json(&ServerFrame::HeartbeatAck).into());

type Sink = SplitSink<WebSocket, Ws>;
type Stream = SplitStream<WebSocket>;

/// `GET /v1/ws`: upgrades, unless the node is at `max_sessions`.
pub async fn upgrade(
    State(app): State<AppState>,
    ClientIp(client): ClientIp,
    connection: Option<Extension<Arc<Held>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::invalid(format!(
                "this route takes a WebSocket upgrade: {}",
                e.body_text()
            ))
            .into_response();
        }
    };
    if app.hub.sockets() >= app.config.max_sessions {
        app.metrics.sessions_refused.inc();
        return ApiError::new(
            ErrorCode::Overloaded,
            "this node is full; ask /v1/discovery for another",
        )
        .into_response();
    }
    // Until hello, a connection is anyone's; one address may hold only a few such. A
    // trusted proxy with no forwarded address is a local tool (a load test), not a crowd.
    let hello = if app.proxies.trusts(client) {
        None
    } else {
        match app.hellos_pending.take(client) {
            Some(held) => Some(held),
            None => {
                app.metrics.hellos_refused.inc();
                return ApiError::rate_limited_for(
                    1000,
                    "too many connections from your address are waiting to say hello",
                )
                .into_response();
            }
        }
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(2 * FRAME_MAX_BYTES)
        .max_message_size(FRAME_MAX_BYTES)
        .max_frame_size(FRAME_MAX_BYTES)
        .on_upgrade(move |socket| async move {
            // Counted from here, so sessions that have not said hello count against the limit.
            let _admitted = app.hub.admit();
            // The connection's place in `max_connections_per_ip`, kept while the session lasts.
            let _connection = connection;
            run(socket, app.clone(), hello).await
        })
}

/// Not `async fn`: the socket is split before the future exists, so the future does not
/// keep a moved-from copy of it for the whole session.
fn run(socket: WebSocket, app: AppState, hello: Option<Held>) -> impl Future<Output = ()> {
    let (sink, stream) = socket.split();
    session(sink, stream, app, hello)
}

async fn session(mut sink: Sink, mut stream: Stream, app: AppState, hello: Option<Held>) {
    let started = start(&mut sink, &mut stream, &app).await;
    drop(hello); // said hello, or gone
    let Some(Started {
        user,
        device: device_id,
        cursor,
        token,
    }) = started
    else {
        return;
    };
    let control = Arc::new(Control::default());
    control.set_sent(cursor);
    // flume's queue allocates as it fills (tokio's holds a 32-slot block per channel
    // from the start), which matters for idle sessions.
    let (tx, rx) = flume::bounded(app.config.session_queue);
    // Registered before anything else, so a logout reaches this session even while its
    // catch-up is stuck on a slow reader.
    let Some(registration) = app
        .hub
        .register(user, device_id, tx.clone(), control.clone())
    else {
        close_now(&mut sink, close::TOO_MANY_SESSIONS).await;
        return;
    };
    still_authorized(&app, &token, &control).await;
    drop(token);
    let writer = WriterTask {
        sink,
        rx,
        registration,
        control: control.clone(),
        app: app.clone(),
        user,
        cursor,
    }
    .spawn();
    app.presence.connect(user, device_id);
    let said_goodbye = read_loop(stream, &tx, &control, &app, user, device_id).await;
    control.close(1000);
    // A close frame or a logout ends presence now; a dropped connection lapses on its own,
    // so a quick reconnect does not flicker.
    let clean = said_goodbye || control.code() == Some(close::UNAUTHORIZED);
    app.presence.disconnect(user, device_id, clean);
    let _ = writer.await;
}

/// Who a session is, once it has said hello and been welcomed.
struct Started {
    user: UserId,
    device: DeviceId,
    /// The inbox entry the device has; the writer sends what comes after.
    cursor: u64,
    /// Checked once more after the session registers (see [`still_authorized`]).
    token: String,
}

/// A logout that landed between the handshake's check and the hub registration reached no
/// session; a second look at the token, now that revocations reach this one, closes that gap.
fn still_authorized<'a>(
    app: &'a AppState,
    token: &'a str,
    control: &'a Control,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        match app.accounts.authenticate(token).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Unauthorized => control.close(close::UNAUTHORIZED),
            Err(_) => control.close(1011),
        }
    })
}

/// `hello`, authentication and `welcome`; closes the socket itself when one fails.
/// Boxed: the handshake's state is freed once it is done instead of living in the session's
/// future for the whole session, which keeps idle sessions small.
fn start<'a>(
    sink: &'a mut Sink,
    stream: &'a mut Stream,
    app: &'a AppState,
) -> BoxFuture<'a, Option<Started>> {
    Box::pin(async move {
        match handshake(sink, stream, app).await {
            Ok(started) => Some(started),
            Err(code) => {
                close_now(sink, code).await;
                None
            }
        }
    })
}

/// The close code to end with when the session cannot start.
async fn handshake(sink: &mut Sink, stream: &mut Stream, app: &AppState) -> Result<Started, u16> {
    let hello_timeout = Duration::from_millis(app.config.hello_timeout_ms);
    let (token, cursor) = hello(stream, hello_timeout).await?;
    let device = app.accounts.authenticate(&token).await.map_err(|e| {
        if e.code == ErrorCode::Unauthorized {
            close::UNAUTHORIZED
        } else {
            1011
        }
    })?;
    let (user, device_id) = (device.user_id, device.id);
    app.cursors.touch(&device);
    let head = app.store.inbox_head(user).await.map_err(|_| 1011_u16)?;
    let welcome = ServerFrame::Welcome {
        user_id: user,
        device_id,
        inbox_seq: head,
        heartbeat_interval_ms: app.config.heartbeat_interval_ms,
    };
    // A socket that fails here is gone; the close that follows is best effort.
    sink.send(Ws::Text(frame_json(&welcome).into()))
        .await
        .map_err(|_| 1011_u16)?;
    // A cursor past the head (a device that synced with another server's data) restarts at
    // the head rather than waiting for entries that may never come.
    Ok(Started {
        user,
        device: device_id,
        cursor: cursor.unwrap_or(device.cursor).min(head),
        token,
    })
}

/// Waits for `hello`; the close code to use when it does not come.
async fn hello(stream: &mut Stream, wait: Duration) -> Result<(String, Option<u64>), u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => return Err(close::NO_HELLO),
            Ok(Some(Err(e))) => return Err(read_error_code(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Ws::Text(text) => text,
            Ws::Ping(_) | Ws::Pong(_) => continue,
            Ws::Binary(_) => return Err(close::NOT_JSON),
            Ws::Close(_) => return Err(close::NO_HELLO),
        };
        return match serde_json::from_str::<ClientFrame>(&text) {
            Ok(ClientFrame::Hello { token, cursor }) => Ok((token, cursor)),
            Ok(_) => Err(close::NO_HELLO),
            Err(_)
                if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                    .is_err() =>
            {
                Err(close::NOT_JSON)
            }
            // A hello with bad fields (no token) cannot authenticate.
            Err(_) => Err(close::UNAUTHORIZED),
        };
    }
}

/// What the writer task owns.
struct WriterTask {
    sink: Sink,
    rx: Receiver<Outbound>,
    registration: Registration,
    control: Arc<Control>,
    app: AppState,
    user: UserId,
    cursor: u64,
}

impl WriterTask {
    /// Not `async`: the writer's future goes straight to its task and takes no room in the
    /// session's own.
    fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(write_loop(self))
    }
}

async fn write_loop(
    WriterTask {
        mut sink,
        rx,
        registration,
        control,
        app,
        user,
        cursor,
    }: WriterTask,
) {
    let mut writer = Writer {
        sink: &mut sink,
        app: &app,
        user,
        last: cursor,
        control: &control,
        ahead: Ahead::default(),
    };
    let live = async {
        writer.backlog().await?;
        registration.go_live();
        writer.backlog().await?;
        // Registered now, so later changes arrive live; these are the ones from before.
        writer.presence().await?;
        loop {
            let held = writer.ahead.deadline();
            let first = tokio::select! {
                biased;
                _ = control.closed() => return Ok(()),
                item = rx.recv_async() => item.ok(),
                () = until(held) => {
                    writer.fill_ahead().await?;
                    writer.flush().await?;
                    continue;
                }
            };
            let Some(first) = first else { return Ok(()) };
            writer.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(item) => writer.feed(item).await?,
                    Err(_) => break,
                }
            }
            writer.flush().await?;
        }
    };
    // Whatever the writer is waiting on (a slow reader, the store), a close (a revocation,
    // a drain, a full queue) ends it at once.
    let result: Result<(), ()> = tokio::select! {
        biased;
        _ = control.closed() => Ok(()),
        result = live => result,
    };
    drop(registration);
    let code = control.code().unwrap_or(1000);
    if result.is_ok() && (code == close::GOING_AWAY || code == 1000) {
        // Finished frames queued before the close (a drain's `reconnect`) still go out, best
        // effort. Messages do not: the device gets them from its cursor next time. And a
        // revoked or lagging session gets nothing more at all.
        while let Ok(item) = rx.try_recv() {
            if let Outbound::Frame(_) = item
                && writer.feed(item).await.is_err()
            {
                break;
            }
        }
        let _ = writer.flush().await;
    }

    if result.is_ok() {
        close_now(&mut sink, code).await;
    }
}

/// The writing half's state: the socket and the last inbox entry sent.
struct Writer<'a> {
    sink: &'a mut Sink,
    app: &'a AppState,
    user: UserId,
    last: u64,
    /// Where the reader learns how far this session has been sent (see `Control::sent`).
    control: &'a Control,
    /// Live entries waiting for the ones before them.
    ahead: Ahead,
}

/// Resolves at `at`, or never. The timer is boxed: a session waits on it rarely, and an idle
/// one should not carry its room.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => Box::pin(tokio::time::sleep_until(at)).await,
        None => std::future::pending().await,
    }
}

// The catch-up steps and gap fills are boxed, so their state takes no room in a live
// session's future. (Not `Box::pin` at the call site: the compiler may still reserve room
// for the unboxed future in the caller's.)
impl Writer<'_> {
    /// The presence of the user's contacts as it was before the session registered.
    fn presence(&mut self) -> BoxFuture<'_, Result<(), ()>> {
        Box::pin(self.presence_frames())
    }

    /// Sends inbox entries after `last` until the store has no more.
    fn backlog(&mut self) -> BoxFuture<'_, Result<(), ()>> {
        Box::pin(self.backlog_pages())
    }

    /// Sends up to one page of entries after `last` and before `before`; how many it sent.
    fn fill(&mut self, before: u64) -> BoxFuture<'_, Result<usize, ()>> {
        Box::pin(self.fill_page(before))
    }

    async fn presence_frames(&mut self) -> Result<(), ()> {
        for frame in self.app.presence.snapshot(self.user).await {
            self.write(Utf8Bytes::from(frame.as_ref())).await?;
        }
        Ok(())
    }

    async fn backlog_pages(&mut self) -> Result<(), ()> {
        loop {
            let sent = self.fill(u64::MAX).await?;
            if sent < PAGE_MAX {
                return Ok(());
            }
        }
    }

    async fn fill_page(&mut self, before: u64) -> Result<usize, ()> {
        let want = usize::try_from(before.saturating_sub(self.last + 1))
            .unwrap_or(usize::MAX)
            .min(PAGE_MAX);
        if want == 0 {
            return Ok(0);
        }
        let entries = self.app.store.inbox_after(self.user, self.last, want).await.map_err(|e| {
            tracing::warn!(user = %self.user, error = %e, "could not read the inbox; closing the session");
        })?;
        let count = entries.len();
        for entry in entries {
            let json = serde_json::to_string(&entry.message).unwrap_or_default();
            self.write(message_frame(entry.inbox_seq, &json)).await?;
            self.sent(entry.inbox_seq);
        }
        self.flush().await?;
        Ok(count)
    }

    /// Queues one item on the socket, in inbox order.
    async fn feed(&mut self, item: Outbound) -> Result<(), ()> {
        match item {
            Outbound::Frame(frame) => self.write(Utf8Bytes::from(frame.as_ref())).await,
            Outbound::Message { inbox_seq, message } => {
                if inbox_seq <= self.last {
                    return Ok(()); // already sent by the backlog or a gap fill
                }
                if inbox_seq > self.last + 1 {
                    // Ahead of its turn: wait a moment for the ones before it.
                    if self.ahead.hold(inbox_seq, message) {
                        return Ok(());
                    }
                    return self.fill_ahead().await;
                }
                self.write(message_frame(inbox_seq, &message.json)).await?;
                self.sent(inbox_seq);
                // Held entries whose turn this was.
                while let Some((inbox_seq, message)) = self.ahead.next_after(self.last) {
                    self.write(message_frame(inbox_seq, &message.json)).await?;
                    self.sent(inbox_seq);
                }
                Ok(())
            }
        }
    }

    /// The wait for entries before the held ones is over (or the hold is full): what is still
    /// missing comes from the store, then the held entries follow, in order.
    async fn fill_ahead(&mut self) -> Result<(), ()> {
        // Gap by gap: the held entries may have gaps between them too.
        while let Some(first) = self.ahead.first() {
            while self.last + 1 < first {
                self.app.metrics.inbox_gap_fills.inc();
                if self.fill(first).await? == 0 {
                    tracing::warn!(user = %self.user, from = self.last, to = first, "inbox gap not in the store");
                    break;
                }
            }
            let mut released = false;
            while let Some((inbox_seq, message)) = self.ahead.next_after(self.last) {
                self.write(message_frame(inbox_seq, &message.json)).await?;
                self.sent(inbox_seq);
                released = true;
            }
            if !released && self.ahead.first() == Some(first) {
                // Not in the store either: send it rather than hold it forever.
                if let Some((inbox_seq, message)) = self.ahead.pop_first() {
                    self.write(message_frame(inbox_seq, &message.json)).await?;
                    self.sent(inbox_seq);
                }
            }
        }
        Ok(())
    }

    /// Notes that the entry `inbox_seq` is on its way to the device.
    fn sent(&mut self, inbox_seq: u64) {
        self.last = inbox_seq;
        self.control.set_sent(inbox_seq);
    }

    async fn write(&mut self, text: Utf8Bytes) -> Result<(), ()> {
        match timeout(WRITE_TIMEOUT, self.sink.feed(Ws::Text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn flush(&mut self) -> Result<(), ()> {
        match timeout(WRITE_TIMEOUT, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

fn message_frame(inbox_seq: u64, message_json: &str) -> Utf8Bytes {
    format!(r#"{{"type":"message","inbox_seq":{inbox_seq},"message":{message_json}}}"#).into()
}

async fn read_loop(
    mut stream: Stream,
    tx: &Sender<Outbound>,
    control: &Arc<Control>,
    app: &AppState,
    user: UserId,
    device: DeviceId,
) -> bool {
    let sends = Arc::new(Semaphore::new(SENDS_IN_FLIGHT));
    // A client that sends nothing, not even pings, for this long is gone.
    let idle =
        Duration::from_millis(app.config.presence_timeout_ms + app.config.heartbeat_interval_ms);
    let session = Session {
        tx,
        control,
        app,
        user,
        device,
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = control.closed() => return false,
            next = timeout(idle, stream.next()) => next,
        };
        let frame = match next {
            Err(_) => {
                control.close(1000);
                return false;
            }
            Ok(None) => return false,
            Ok(Some(Err(e))) => {
                control.close(read_error_code(e));
                return false;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Any frame, a ping included, is a sign of life.
        app.presence.beat(user, device);
        match frame {
            // The most frequent frame of all, in the form clients send it, skips the parser.
            Ws::Text(text) if text.as_str() == HEARTBEAT => session.heartbeat(),
            Ws::Text(text) => session.frame(&text, &sends).await,
            Ws::Binary(_) => session.reply(&ServerFrame::Error(
                ApiError::invalid("frames are JSON text; binary frames are not accepted")
                    .into_frame(None),
            )),
            Ws::Ping(_) | Ws::Pong(_) => {}
            // A goodbye only when the client started the close; otherwise it is the echo of
            // ours (a drain, a revocation).
            Ws::Close(_) => return !control.is_closed(),
        }
    }
}

/// What the reader needs to answer frames.
struct Session<'a> {
    tx: &'a Sender<Outbound>,
    control: &'a Arc<Control>,
    app: &'a AppState,
    user: UserId,
    device: DeviceId,
}

impl Session<'_> {
    /// Boxed, so a frame's state lives only while it is handled, not in every idle session.
    fn frame<'b>(&'b self, text: &'b str, sends: &'b Arc<Semaphore>) -> BoxFuture<'b, ()> {
        Box::pin(self.answer(text, sends))
    }

    async fn answer(&self, text: &str, sends: &Arc<Semaphore>) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(e) => return self.bad_frame(text, e),
        };
        match frame {
            ClientFrame::Hello { .. } => self.reply(&ServerFrame::Error(
                ApiError::invalid("this session has already said hello").into_frame(None),
            )),
            ClientFrame::Send {
                req,
                conversation_id,
                client_msg_id,
                body,
            } => {
                if req.as_ref().is_some_and(|r| r.len() > REQ_MAX) {
                    return self.reply(&error_frame(
                        ApiError::invalid("req is at most 64 bytes"),
                        None,
                    ));
                }
                let Ok(permit) = sends.clone().acquire_owned().await else {
                    return;
                };
                if self.control.is_closed() {
                    return; // revoked (or closed) while this send waited for its turn
                }
                let (app, tx, control, user) = (
                    self.app.clone(),
                    self.tx.clone(),
                    self.control.clone(),
                    self.user,
                );
                tokio::spawn(async move {
                    let frame = match app
                        .messaging
                        .send(user, conversation_id, client_msg_id, body)
                        .await
                    {
                        Ok(sent) => ServerFrame::Ack {
                            req,
                            message: sent.message,
                        },
                        Err(e) => error_frame(e, req),
                    };
                    offer(
                        &tx,
                        &control,
                        Outbound::Frame(frame_json(&frame).into()),
                        &app.metrics,
                    );
                    drop(permit);
                });
            }
            ClientFrame::Delivered { inbox_seq } => {
                // A device can only have what it was sent; a cursor past that would skip
                // entries still to come (and one past i64 cannot be stored).
                let sent = self.control.sent();
                if inbox_seq > sent {
                    return self.reply(&error_frame(
                        ApiError::invalid(format!(
                            "delivered inbox_seq {inbox_seq} is past the newest entry this session was sent ({sent})"
                        )),
                        None,
                    ));
                }
                self.app.cursors.note(self.device, inbox_seq)
            }
            ClientFrame::Read {
                req,
                conversation_id,
                seq,
            } => {
                if req.as_ref().is_some_and(|r| r.len() > REQ_MAX) {
                    return self.reply(&error_frame(
                        ApiError::invalid("req is at most 64 bytes"),
                        None,
                    ));
                }
                let (app, tx, control, user) = (
                    self.app.clone(),
                    self.tx.clone(),
                    self.control.clone(),
                    self.user,
                );
                tokio::spawn(async move {
                    if let Err(e) = app.receipts.read(user, conversation_id, seq).await {
                        offer(
                            &tx,
                            &control,
                            Outbound::Frame(frame_json(&error_frame(e, req)).into()),
                            &app.metrics,
                        );
                    }
                });
            }
            ClientFrame::Typing { conversation_id } => {
                if let Err(e) = self.app.typing.typing(self.user, conversation_id).await {
                    self.reply(&error_frame(e, None));
                }
            }
            ClientFrame::Heartbeat => self.heartbeat(),
        }
    }

    /// The most frequent frame of an idle session: answered with a shared constant.
    fn heartbeat(&self) {
        offer(
            self.tx,
            self.control,
            Outbound::Frame(HEARTBEAT_ACK.clone()),
            &self.app.metrics,
        );
    }

    /// A frame that did not parse: not JSON closes the session (4009); anything else is
    /// answered with `invalid_request`, echoing its `req`, and the session goes on.
    fn bad_frame(&self, text: &str, e: serde_json::Error) {
        let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        else {
            return self.control.close(close::NOT_JSON);
        };
        let req = object
            .get("req")
            .and_then(|r| r.as_str())
            .filter(|r| r.len() <= REQ_MAX)
            .map(str::to_owned);
        self.reply(&error_frame(
            ApiError::invalid(format!("bad frame: {e}")),
            req,
        ));
    }

    fn reply(&self, frame: &ServerFrame) {
        offer(
            self.tx,
            self.control,
            Outbound::Frame(frame_json(frame).into()),
            &self.app.metrics,
        );
    }
}

fn error_frame(e: ApiError, req: Option<String>) -> ServerFrame {
    ServerFrame::Error(e.into_frame(req))
}

/// A frame as JSON text.
pub fn frame_json(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The close code for a failed read: 1009 for a frame over the limit.
fn read_error_code(e: axum::Error) -> u16 {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => close::TOO_BIG,
        _ => 1002,
    }
}

/// Sends a close frame with `code` and its reason. Boxed, like the handshake: it runs once,
/// at the end.
fn close_now(sink: &mut Sink, code: u16) -> BoxFuture<'_, ()> {
    Box::pin(send_close(sink, code))
}

async fn send_close(sink: &mut Sink, code: u16) {
    let reason = match code {
        close::UNAUTHORIZED => "bad or revoked token; log in again",
        close::NO_HELLO => "no hello in time",
        close::TOO_SLOW => "too slow to keep up; reconnect and resync from your cursor",
        close::NOT_JSON => "frames must be JSON objects",
        close::TOO_BIG => "frame larger than 1 MiB",
        close::GOING_AWAY => "server draining; reconnect",
        close::TOO_MANY_SESSIONS => "this device has too many sessions open; close one",
        _ => "",
    };
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = timeout(Duration::from_secs(1), sink.send(Ws::Close(Some(frame)))).await;
}
