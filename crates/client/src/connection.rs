//! The WebSocket side of the SDK as the app sees it: the [`Connection`] handle, the
//! [`Events`] stream and the [`Event`]s on it. The task that does the work (reading,
//! writing, heartbeats, reconnects) is in `worker`; its settings in [`crate::builder`].

use crate::builder::ConnectionBuilder;
use crate::error::{Error, Result};
use crate::worker::{Command, SharedCursor};
use confab_proto::{
    Action, Body, ConversationId, ConversationSettings, DeviceId, FrameError, Message, Presence,
    ReceiptKind, UserId,
};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A handle on one WebSocket connection to a Confab server, kept up by a background task.
/// Cloning is cheap; every clone talks to the same task. The task ends when
/// [`Connection::close`] is called, when every handle is dropped, or on a final error
/// (close code 4001: the token no longer works).
///
/// What the task does:
/// - sends `hello` with the cursor, waits for `welcome`, then heartbeats at the interval
///   the server asked for, and takes a server silent for three intervals for dead;
/// - hands messages, receipts, typing and presence to [`Events`], dropping any message at
///   or below its cursor, so the app never sees one twice;
/// - moves the cursor (the highest `inbox_seq` handed to the app) and tells the server
///   with a cumulative `delivered`, batched (see
///   [`ConnectionBuilder::delivered_batch`]);
/// - on a lost connection, reconnects with exponential backoff and jitter and resumes
///   from the cursor: first to the same node, then to the live nodes discovery offers
///   (asked of any node of the cluster it has heard of); a node that drains (`reconnect`
///   frame) is left for the first node it names;
/// - retries unacknowledged sends on the next connection with the same `client_msg_id`,
///   which the server deduplicates.
///
/// Backpressure: the task reads the socket only as fast as the app takes events. A slow
/// app makes the server queue, and then close with 4008; the task reconnects and resyncs
/// from its cursor, so a slow app loses nothing. Heartbeats and sends go on meanwhile,
/// but an `ack` waits behind the events read before it: consume [`Events`] in a task of
/// its own, not in the task that awaits [`Connection::send`] (or spawn the sends).
///
/// ```no_run
/// # async fn demo(token: String) -> confab_client::Result<()> {
/// use confab_client::{Connection, Event};
///
/// let (connection, mut events) = Connection::connect("http://127.0.0.1:8080", token).await?;
/// let replier = connection.clone();
/// tokio::spawn(async move {
///     while let Some(event) = events.recv().await {
///         if let Event::Message { message, .. } = event {
///             let conversation = message.conversation_id;
///             let replier = replier.clone();
///             tokio::spawn(async move { replier.send(conversation, None, "got it").await });
///         }
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Connection {
    commands: mpsc::Sender<Command>,
    shutdown: Arc<watch::Sender<bool>>,
    cursor: Arc<SharedCursor>,
    send_timeout: Duration,
}

impl Connection {
    /// A [`ConnectionBuilder`] for the server at `base_url` (the HTTP base, like
    /// `http://127.0.0.1:8080`; the WebSocket is `ws://.../v1/ws`) with a login `token`.
    ///
    /// ```
    /// let builder = confab_client::Connection::builder("http://127.0.0.1:8080", "t0k3n");
    /// ```
    pub fn builder(base_url: &str, token: impl Into<String>) -> ConnectionBuilder {
        ConnectionBuilder::new(base_url, token)
    }

    /// Connects with the default settings; see [`ConnectionBuilder::connect`].
    ///
    /// ```no_run
    /// # async fn demo() -> confab_client::Result<()> {
    /// let (connection, events) =
    ///     confab_client::Connection::connect("http://127.0.0.1:8080", "t0k3n").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(base_url: &str, token: impl Into<String>) -> Result<(Self, Events)> {
        Self::builder(base_url, token).connect().await
    }

    pub(crate) fn from_parts(
        commands: mpsc::Sender<Command>,
        shutdown: watch::Sender<bool>,
        cursor: Arc<SharedCursor>,
        send_timeout: Duration,
    ) -> Self {
        Self {
            commands,
            shutdown: Arc::new(shutdown),
            cursor,
            send_timeout,
        }
    }

    /// Sends a text message and waits for the server to store it; answers the stored
    /// message (`id`, `seq`, `created_at`).
    ///
    /// Without a `client_msg_id` a random one is made. The body is checked against the
    /// contract's limits first. If the connection drops before the `ack`, the send is
    /// written again on the next connection with the same `client_msg_id` (the server
    /// stores it once); `rate_limited` and `overloaded` are retried after the wait the
    /// server asks for, doubled for each refusal before. Both are bounded by
    /// [`send_max_attempts`](ConnectionBuilder::send_max_attempts) and
    /// [`send_timeout`](ConnectionBuilder::send_timeout); past them the answer is
    /// [`Error::Unconfirmed`] (with the id to retry with) or the last error. Other server
    /// errors (`forbidden`, `message_too_long`, ...) come back at once as [`Error::Api`].
    ///
    /// Concurrent sends are written in call order, but a retry can overtake: await each
    /// send before the next when their order matters.
    ///
    /// The server also delivers the message back to this device as an
    /// [`Event::Message`], like any other; that is expected.
    ///
    /// ```no_run
    /// # async fn demo(connection: confab_client::Connection, conversation: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// let message = connection.send(conversation, None, "hello").await?;
    /// println!("stored as seq {}", message.seq);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(
        &self,
        conversation_id: ConversationId,
        client_msg_id: Option<String>,
        body: impl Into<String>,
    ) -> Result<Message> {
        let body = Body::new(body.into())?;
        let text = Action::Text {
            body,
            reply_to: None,
        };
        self.write(conversation_id, client_msg_id, text).await
    }

    /// Writes a message or a change to one ([`Action`]: a reply, an edit, a delete for
    /// everyone or for this user, a reaction added or taken back), with everything
    /// [`send`](Self::send) does: a retry after a drop or a refusal keeps the
    /// `client_msg_id`, so the server applies it once. Answers with the stored entry (for a
    /// change, the change; its `target_seq` names the message it changed).
    ///
    /// ```no_run
    /// # async fn demo(connection: confab_client::Connection, message: confab_client::Message)
    /// # -> confab_client::Result<()> {
    /// use confab_client::{Action, Emoji};
    /// let thumbs_up = Emoji::new("👍".into())?;
    /// let react = Action::React { target: message.seq, emoji: thumbs_up };
    /// connection.write(message.conversation_id, None, react).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(
        &self,
        conversation_id: ConversationId,
        client_msg_id: Option<String>,
        action: Action,
    ) -> Result<Message> {
        let client_msg_id = crate::endpoint::client_msg_id(client_msg_id)?;
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            conversation_id,
            client_msg_id: client_msg_id.clone(),
            action,
            reply,
        };
        // The deadline covers the wait for room in the queue too.
        let sent = tokio::time::timeout(self.send_timeout, async {
            self.commands
                .send(command)
                .await
                .map_err(|_| Error::Closed)?;
            answer.await.map_err(|_| Error::Closed)?
        })
        .await;
        sent.unwrap_or(Err(Error::Unconfirmed { client_msg_id }))
    }

    /// Tells the server the user has read `conversation_id` up to `seq`. Returns once the
    /// frame is queued; while disconnected, the latest seq per conversation is kept and
    /// sent after the next `welcome`. A refusal arrives as [`Event::Error`].
    ///
    /// ```no_run
    /// # async fn demo(connection: confab_client::Connection, message: confab_client::Message)
    /// # -> confab_client::Result<()> {
    /// connection.read(message.conversation_id, message.seq).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&self, conversation_id: ConversationId, seq: u64) -> Result<()> {
        self.commands
            .send(Command::Read {
                conversation_id,
                seq,
            })
            .await
            .map_err(|_| Error::Closed)
    }

    /// Tells the conversation the user is typing. Best effort and never waits: dropped
    /// when the command queue is full or the connection is down, since a late typing
    /// notice is worse than none.
    ///
    /// ```no_run
    /// # fn demo(connection: confab_client::Connection, conversation: confab_client::ConversationId)
    /// # -> confab_client::Result<()> {
    /// connection.typing(conversation)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn typing(&self, conversation_id: ConversationId) -> Result<()> {
        match self.commands.try_send(Command::Typing { conversation_id }) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
        }
    }

    /// The highest `inbox_seq` handed to the app so far, or the cursor the connection was
    /// built with; `None` when neither is known yet. Save it to resume from next time with
    /// [`ConnectionBuilder::cursor`].
    ///
    /// ```no_run
    /// # fn demo(connection: confab_client::Connection) {
    /// if let Some(cursor) = connection.cursor() {
    ///     println!("resume after {cursor} next time");
    /// }
    /// # }
    /// ```
    pub fn cursor(&self) -> Option<u64> {
        self.cursor.get()
    }

    /// Ends the connection for every handle: flushes `delivered`, sends a close frame,
    /// fails pending sends with [`Error::Closed`], and waits for the task to finish
    /// (bounded by the write timeout and a short grace for the server's close reply).
    ///
    /// ```no_run
    /// # async fn demo(connection: confab_client::Connection) {
    /// connection.close().await;
    /// assert!(connection.is_closed());
    /// # }
    /// ```
    pub async fn close(&self) {
        self.shutdown.send_replace(true);
        self.closed().await;
    }

    /// Waits until the connection task has ended, for whatever reason.
    ///
    /// ```no_run
    /// # async fn demo(connection: confab_client::Connection) {
    /// connection.closed().await;
    /// # }
    /// ```
    pub async fn closed(&self) {
        self.commands.closed().await;
    }

    /// True once the connection task has ended.
    ///
    /// ```no_run
    /// # fn demo(connection: confab_client::Connection) {
    /// if connection.is_closed() {
    ///     println!("log in again");
    /// }
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

/// What happens on a [`Connection`], in order. Get them from [`Events::recv`] or use
/// [`Events`] as a `Stream`.
///
/// A session is framed by [`Event::Connected`] and [`Event::Disconnected`]; the last event
/// of all is [`Event::Terminated`], after which the stream ends.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A connection was established (first or after a reconnect). Messages with an
    /// `inbox_seq` up to this `inbox_seq` are the backlog the server replays; the app has
    /// caught up once it has seen that one.
    Connected {
        /// The base URL of the node connected to (the one given, or one discovery or a
        /// draining node offered).
        url: String,
        /// Who the token belongs to.
        user_id: UserId,
        /// This device.
        device_id: DeviceId,
        /// The user's inbox head when the connection started.
        inbox_seq: u64,
        /// The cursor sent in `hello`: the backlog starts after it. `None` when the
        /// server's stored cursor was used.
        cursor: Option<u64>,
    },
    /// A message for this user, in strictly increasing `inbox_seq`, each once.
    Message {
        /// Its position in the user's inbox; the connection's cursor moves to it.
        inbox_seq: u64,
        /// The message.
        message: Message,
    },
    /// Another member's delivered or read watermark moved.
    Receipt {
        /// The conversation.
        conversation_id: ConversationId,
        /// Whose watermark.
        user_id: UserId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// Its new value.
        seq: u64,
    },
    /// Someone is typing.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// The user blocked or unblocked someone, on this device or another.
    Block {
        /// Whom.
        user_id: UserId,
        /// Blocked now, or no longer.
        blocked: bool,
    },
    /// The user changed their settings for a conversation, on this device or another.
    Settings {
        /// The conversation.
        conversation_id: ConversationId,
        /// Its settings now.
        settings: ConversationSettings,
    },
    /// A contact's status changed.
    Presence(Presence),
    /// The server refused a frame that is not a send (sends answer their caller), for
    /// instance a [`Connection::read`] in a conversation the user is not in.
    Error(FrameError),
    /// The connection was lost or closed. Unless [`Event::Terminated`] follows, the task
    /// is reconnecting.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The connection task has ended; no event follows. `error` is `None` after
    /// [`Connection::close`] or when every handle was dropped, else why it gave up: an
    /// [`Error::Api`] with `unauthorized` (close code 4001: log in again), or the last
    /// error once [`max_reconnect_attempts`](ConnectionBuilder::max_reconnect_attempts)
    /// ran out.
    Terminated {
        /// Why, when it was not asked for.
        error: Option<Error>,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server closed with this code (see `confab_proto::limits::close`): 1001 the node
    /// drains, 4001 the token is no longer valid, 4008 the app fell behind.
    Closed {
        /// The close code; 1005 when the close frame had none.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The socket failed: reset, read error, write timeout, end without a close frame.
    Transport(String),
    /// Nothing came from the server for three heartbeat intervals.
    TimedOut,
    /// [`Connection::close`] was called, or every handle was dropped.
    Requested,
}

impl DisconnectReason {
    /// The close code the server sent, if it sent one.
    ///
    /// ```
    /// use confab_client::DisconnectReason;
    /// let r = DisconnectReason::Closed { code: 4008, reason: "too slow".into() };
    /// assert_eq!(r.close_code(), Some(4008));
    /// assert_eq!(DisconnectReason::TimedOut.close_code(), None);
    /// ```
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The events of one [`Connection`], oldest first; a bounded queue of
/// [`event_capacity`](ConnectionBuilder::event_capacity). Also a
/// `futures_util::Stream<Item = Event>`.
///
/// Dropping it discards later events without moving the cursor: a send-only app may drop
/// it, and the server keeps its inbox for the next connection of this device.
///
/// ```no_run
/// # async fn demo(mut events: confab_client::Events) {
/// use confab_client::Event;
///
/// while let Some(event) = events.recv().await {
///     match event {
///         Event::Message { message, .. } => println!("{}: {}", message.sender_id, message.body),
///         Event::Terminated { error } => eprintln!("connection ended: {error:?}"),
///         _ => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the connection task has ended and every event was taken.
    ///
    /// ```no_run
    /// # async fn demo(mut events: confab_client::Events) {
    /// let first = events.recv().await; // Some(Event::Connected { .. })
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without waiting.
    ///
    /// ```no_run
    /// # fn demo(mut events: confab_client::Events) {
    /// while let Some(event) = events.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
