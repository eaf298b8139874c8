//! One WebSocket session's life: the handshake (`handshake.rs`), then a reader (this task,
//! `reader.rs`) and a writer (its own task, `writer.rs`) joined by one bounded outbound
//! queue, then the close. The writer owns the socket's sink; producers only `try_send` (see
//! `hub.rs`).

use super::handshake::{Started, start, still_authorized};
use super::hub::Control;
use super::reader::read_loop;
use super::writer::WriterTask;
use crate::addresses::Held;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message as Ws, WebSocket};
use confab_proto::limits::close;
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// How long a new session waits for the bus to confirm it listens for its user.
const LISTEN_WAIT: Duration = Duration::from_secs(2);

/// The socket's writing half.
pub(super) type Sink = SplitSink<WebSocket, Ws>;
/// The socket's reading half.
pub(super) type Stream = SplitStream<WebSocket>;

/// Not `async fn`: the socket is split before the future exists, so the future does not
/// keep a moved-from copy of it for the whole session.
pub(super) fn run(
    socket: WebSocket,
    app: AppState,
    hello: Option<Held>,
) -> impl Future<Output = ()> {
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
    // Events for the user reach this node from now on (a bus that is down or slow to
    // confirm does not hold the session back: the catch-up after it reconnects covers it);
    // a logout on any node after the look at the token below reaches this session.
    let _ = timeout(LISTEN_WAIT, app.bus.listen(user)).await;
    still_authorized(&app, &token, &control).await;
    drop(token);
    let writer = WriterTask {
        sink,
        rx,
        registration,
        control: control.clone(),
        app: app.clone(),
        user,
        device: device_id,
        cursor,
    }
    .spawn();
    app.presence.connect(user, device_id);
    let said_goodbye = read_loop(stream, &tx, &control, &app, user, device_id).await;
    control.close(close::NORMAL);
    // A close frame or a logout ends presence now; a dropped connection lapses on its own,
    // so a quick reconnect does not flicker.
    let clean = said_goodbye || control.code() == Some(close::UNAUTHORIZED);
    app.presence.disconnect(user, device_id, clean);
    let _ = writer.await;
}

/// The close code for a failed read: 1009 for a frame over the limit.
pub(super) fn read_error_code(e: axum::Error) -> u16 {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => close::TOO_BIG,
        _ => close::PROTOCOL_ERROR,
    }
}

/// Sends a close frame with `code` and its reason. Boxed, like the handshake: it runs once,
/// at the end.
pub(super) fn close_now(sink: &mut Sink, code: u16) -> BoxFuture<'_, ()> {
    Box::pin(send_close(sink, code))
}

async fn send_close(sink: &mut Sink, code: u16) {
    let frame = CloseFrame {
        code,
        reason: close::reason(code).into(),
    };
    let _ = timeout(Duration::from_secs(1), sink.send(Ws::Close(Some(frame)))).await;
}
