//! [`ConnectionBuilder`]: every capacity, timeout and retry bound of a
//! [`Connection`], with its default, and the first connect. The connection's behaviour
//! lives in [`crate::connection`] (the handle) and `worker` (the task).

use crate::connection::{Connection, Events};
use crate::endpoint::ws_url;
use crate::error::{Error, Result};
use crate::nodes::Nodes;
use crate::worker::{self, SharedCursor, Worker};
use confab_proto::ErrorCode;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Default [`ConnectionBuilder::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Default [`ConnectionBuilder::command_capacity`].
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;
/// Default [`ConnectionBuilder::max_in_flight_sends`].
pub const DEFAULT_MAX_IN_FLIGHT_SENDS: usize = 256;
/// Default lower bound of [`ConnectionBuilder::reconnect_backoff`].
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(250);
/// Default upper bound of [`ConnectionBuilder::reconnect_backoff`].
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Default [`ConnectionBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionBuilder::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionBuilder::send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ConnectionBuilder::send_max_attempts`].
pub const DEFAULT_SEND_MAX_ATTEMPTS: u32 = 5;
/// Default count of [`ConnectionBuilder::delivered_batch`].
pub const DEFAULT_DELIVERED_EVERY: u64 = 100;
/// Default delay of [`ConnectionBuilder::delivered_batch`].
pub const DEFAULT_DELIVERED_DELAY: Duration = Duration::from_millis(200);

/// The settings a connection task runs with; see the builder's methods for each.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) event_capacity: usize,
    pub(crate) command_capacity: usize,
    pub(crate) max_in_flight_sends: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) max_reconnect_attempts: Option<u32>,
    pub(crate) initial_cursor: Option<u64>,
    pub(crate) discovery: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) send_max_attempts: u32,
    pub(crate) delivered_every: u64,
    pub(crate) delivered_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            command_capacity: DEFAULT_COMMAND_CAPACITY,
            max_in_flight_sends: DEFAULT_MAX_IN_FLIGHT_SENDS,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            discovery: true,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            max_reconnect_attempts: None,
            initial_cursor: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            send_max_attempts: DEFAULT_SEND_MAX_ATTEMPTS,
            delivered_every: DEFAULT_DELIVERED_EVERY,
            delivered_delay: DEFAULT_DELIVERED_DELAY,
        }
    }
}

/// Settings for a [`Connection`], then [`ConnectionBuilder::connect`]. Every queue and
/// every retry is bounded; the defaults suit an interactive client.
///
/// ```no_run
/// # async fn demo(token: String) -> confab_client::Result<()> {
/// use std::time::Duration;
/// use confab_client::Connection;
///
/// let (connection, mut events) = Connection::builder("http://127.0.0.1:8080", token)
///     .event_capacity(4096)
///     .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .cursor(1234) // resume after inbox entry 1234, saved by the app last time
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ConnectionBuilder {
    base_url: String,
    token: String,
    config: Config,
}

impl fmt::Debug for ConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in logs.
        f.debug_struct("ConnectionBuilder")
            .field("base_url", &self.base_url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ConnectionBuilder {
    /// See [`Connection::builder`].
    pub(crate) fn new(base_url: &str, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token: token.into(),
            config: Config::default(),
        }
    }

    /// How many events wait for the app before the connection task stops reading the
    /// socket ([`DEFAULT_EVENT_CAPACITY`]; at least 1). While it waits, the server queues
    /// for this device; if the app stays behind long enough, the server closes with 4008
    /// and the task reconnects and resumes from its cursor, so nothing is lost, only late.
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t").event_capacity(64);
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity.max(1);
        self
    }

    /// How many calls ([`Connection::send`], `read`, `typing`) queue for the task before
    /// callers wait ([`DEFAULT_COMMAND_CAPACITY`]; at least 1).
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t").command_capacity(16);
    /// ```
    pub fn command_capacity(mut self, capacity: usize) -> Self {
        self.config.command_capacity = capacity.max(1);
        self
    }

    /// How many sends may await their `ack` at once ([`DEFAULT_MAX_IN_FLIGHT_SENDS`]; at
    /// least 1). Beyond it the task takes no new commands until acks arrive, so callers
    /// wait in the command queue.
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t").max_in_flight_sends(1000);
    /// ```
    pub fn max_in_flight_sends(mut self, max: usize) -> Self {
        self.config.max_in_flight_sends = max.max(1);
        self
    }

    /// The delay before reconnect attempts: doubling from `min` up to `max`, each drawn
    /// with jitter from the upper half of its bound ([`DEFAULT_RECONNECT_MIN`],
    /// [`DEFAULT_RECONNECT_MAX`]). It starts over after a connection that lasted 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
    /// ```
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.reconnect_min = min;
        self.config.reconnect_max = max.max(min);
        self
    }

    /// Gives up after this many failed reconnect attempts in a row, ending the connection
    /// with [`Event::Terminated`](crate::Event::Terminated). `None` (the default) retries
    /// for as long as the connection is open, at most one attempt per backoff delay.
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .max_reconnect_attempts(Some(10));
    /// ```
    pub fn max_reconnect_attempts(mut self, max: Option<u32>) -> Self {
        self.config.max_reconnect_attempts = max;
        self
    }

    /// The inbox position to resume after: the highest `inbox_seq` this device has already
    /// processed (0 for everything). Without it, the first `hello` sends no cursor and the
    /// server resumes from the position it stored for the device (the last `delivered`).
    /// The app can save [`Connection::cursor`] to pass here next time.
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t").cursor(0);
    /// ```
    pub fn cursor(mut self, inbox_seq: u64) -> Self {
        self.config.initial_cursor = Some(inbox_seq);
        self
    }

    /// How long one connect attempt may take, from TCP to `welcome`
    /// ([`DEFAULT_CONNECT_TIMEOUT`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .connect_timeout(Duration::from_secs(3));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one frame may take to write; a slower socket is taken for dead and
    /// replaced ([`DEFAULT_WRITE_TIMEOUT`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .write_timeout(Duration::from_secs(5));
    /// ```
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How long [`Connection::send`] waits for its `ack`, across reconnects and retries,
    /// before answering [`Error::Unconfirmed`](crate::Error::Unconfirmed)
    /// ([`DEFAULT_SEND_TIMEOUT`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .send_timeout(Duration::from_secs(10));
    /// ```
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// How many times one send frame may be written (the first try included): after a
    /// reconnect, or after `rate_limited`/`overloaded` ([`DEFAULT_SEND_MAX_ATTEMPTS`]; at
    /// least 1).
    ///
    /// ```
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t").send_max_attempts(3);
    /// ```
    pub fn send_max_attempts(mut self, attempts: u32) -> Self {
        self.config.send_max_attempts = attempts.max(1);
        self
    }

    /// When to tell the server what this device has: a cumulative `delivered` goes out
    /// once `every` messages have reached the app since the last one, or `delay` after the
    /// first of them, whichever comes first ([`DEFAULT_DELIVERED_EVERY`],
    /// [`DEFAULT_DELIVERED_DELAY`]). It also goes out before a requested close.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .delivered_batch(1, Duration::ZERO); // one `delivered` per message
    /// ```
    pub fn delivered_batch(mut self, every: u64, delay: Duration) -> Self {
        self.config.delivered_every = every.max(1);
        self.config.delivered_delay = delay;
        self
    }

    /// Whether to ask `GET /v1/discovery` where to connect (on): at the start, the node
    /// it offers first (with the given URL as the fallback), and after a failed reconnect,
    /// the live nodes of the cluster, asked of any node heard of. A single node's answer is
    /// not used as an address: the URL given stays. Off: only the given URL and the nodes
    /// a draining server names.
    ///
    /// ```
    /// let builder = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .discovery(false);
    /// ```
    pub fn discovery(mut self, on: bool) -> Self {
        self.config.discovery = on;
        self
    }

    /// Connects, sends `hello`, waits for `welcome`, and starts the connection task. The
    /// first event is [`Event::Connected`](crate::Event::Connected). A failure of this
    /// first attempt is returned here (bad URL, refused, 4001, timeout); later ones are
    /// retried by the task.
    ///
    /// ```no_run
    /// # async fn demo() -> confab_client::Result<()> {
    /// let (connection, events) = confab_client::Connection::builder("http://127.0.0.1:8080", "t")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self) -> Result<(Connection, Events)> {
        // A bad URL is an error now, whatever discovery says.
        ws_url(&self.base_url)?;
        let config = self.config;
        let mut nodes = Nodes::new(&self.base_url);
        let mut candidates = vec![self.base_url.clone()];
        if config.discovery
            && let Some(mut offered) = nodes.discover(None).await
        {
            offered.push(self.base_url.clone());
            candidates = offered;
        }
        let mut session = None;
        let mut last = None;
        for url in &candidates {
            match worker::establish(url, &self.token, config.initial_cursor, &config).await {
                Ok(started) => {
                    session = Some(started);
                    break;
                }
                Err(e) if e.code() == Some(ErrorCode::Unauthorized) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        let Some(session) = session else {
            return Err(last.unwrap_or_else(|| Error::ClosedByServer {
                code: 1006,
                reason: "no node to connect to".into(),
            }));
        };
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity);
        let (commands_tx, commands_rx) = mpsc::channel(config.command_capacity);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let cursor = Arc::new(SharedCursor::new(config.initial_cursor));
        // The channel is new and holds at least one event, so this cannot be full.
        let _ = events_tx.try_send(session.connected_event());
        let connection = Connection::from_parts(
            commands_tx,
            shutdown_tx,
            cursor.clone(),
            config.send_timeout,
        );
        let worker = Worker::new(
            config,
            nodes,
            self.token,
            cursor,
            events_tx,
            commands_rx,
            shutdown_rx,
        );
        tokio::spawn(worker.run(session));
        Ok((connection, Events::new(events_rx)))
    }
}
