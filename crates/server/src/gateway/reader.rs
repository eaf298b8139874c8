//! A session's reading half: each client frame answered (sends stored concurrently, up to a
//! bound), heartbeats, and the idle timeout.

use super::hub::{Control, Outbound, offer};
use super::session::{Stream, read_error_code};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::Message as Ws;
use confab_proto::limits::{REQ_MAX, close};
use confab_proto::{ClientFrame, ConversationId, DeviceId, SendRequest, ServerFrame, UserId};
use flume::Sender;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Sends of one session being stored at once. More wait for a turn (which stops the reader,
/// so the client is slowed by TCP) for at most the commit budget, and not at all while the
/// node refuses sends: those are answered `overloaded`.
const SENDS_IN_FLIGHT: usize = 16;
/// How often a reader whose session's queue is half full looks whether it drained.
const DRAIN_POLL: Duration = Duration::from_millis(2);

/// A heartbeat as clients usually write it.
const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

static HEARTBEAT_ACK: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| ServerFrame::HeartbeatAck.to_json().into());

/// Reads frames until the session ends; true when the client said goodbye (a close frame
/// it started).
pub(super) async fn read_loop(
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
        // Backpressure: while its queue is half full the session reads nothing more, so its
        // own answers cannot overflow the queue; 4008 stays for clients that do not read.
        while tx.len() * 2 > tx.capacity().unwrap_or(usize::MAX) {
            tokio::select! {
                biased;
                _ = control.closed() => return false,
                _ = tokio::time::sleep(DRAIN_POLL) => {}
            }
        }
        let frame = match next {
            Err(_) => {
                control.close(close::NORMAL);
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
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Send {
                req,
                conversation_id,
                client_msg_id,
                kind,
                body,
                target_seq,
                reply_to,
            }) => {
                let request = SendRequest {
                    client_msg_id,
                    kind,
                    body,
                    target_seq,
                    reply_to,
                };
                self.send(req, conversation_id, request, sends).await;
            }
            Ok(frame) => self.other(frame).await,
            Err(e) => self.bad_frame(text, e),
        }
    }

    /// Stores a message, at most [`SENDS_IN_FLIGHT`] at once; refused at once (no task, no
    /// wait for a turn) while the node refuses sends.
    async fn send(
        &self,
        req: Option<String>,
        conversation_id: ConversationId,
        request: SendRequest,
        sends: &Arc<Semaphore>,
    ) {
        if !self.req_fits(req.as_deref()) {
            return;
        }
        let Some(wait) = self.app.messaging.turn_wait() else {
            return self.reply(&error_frame(self.app.messaging.overloaded(), req));
        };
        let permit = match sends.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match timeout(wait, sends.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return self.reply(&error_frame(self.app.messaging.overloaded(), req)),
            },
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
            let frame = match app.messaging.send(user, conversation_id, request).await {
                Ok(sent) => ServerFrame::Ack {
                    req,
                    message: sent.message,
                },
                Err(e) => error_frame(e, req),
            };
            offer(
                &tx,
                &control,
                Outbound::Frame(frame.to_json().into()),
                &app.metrics,
            );
            drop(permit);
        });
    }

    /// Every frame but `send`.
    async fn other(&self, frame: ClientFrame) {
        match frame {
            ClientFrame::Hello { .. } => self.reply(&ServerFrame::Error(
                ApiError::invalid("this session has already said hello").into_frame(None),
            )),
            ClientFrame::Send { .. } => {}
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
                if !self.req_fits(req.as_deref()) {
                    return;
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
                            Outbound::Frame(error_frame(e, req).to_json().into()),
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

    /// Whether `req` is within its limit; if not, the frame is answered with
    /// `invalid_request` (without the `req`, which cannot be echoed).
    fn req_fits(&self, req: Option<&str>) -> bool {
        let fits = req.is_none_or(|r| r.len() <= REQ_MAX);
        if !fits {
            self.reply(&error_frame(
                ApiError::invalid("req is at most 64 bytes"),
                None,
            ));
        }
        fits
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
            Outbound::Frame(frame.to_json().into()),
            &self.app.metrics,
        );
    }
}

fn error_frame(e: ApiError, req: Option<String>) -> ServerFrame {
    ServerFrame::Error(e.into_frame(req))
}
