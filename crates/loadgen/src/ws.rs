//! A lean WebSocket session: TCP from a chosen source address, the upgrade, `hello` to
//! `welcome`, pre-built outgoing frames and a borrowing parser for the frames the
//! scenarios look at. Far cheaper per connection than the SDK's `Connection` (no
//! background task, no queues, no reconnects): the scenarios own the socket.

use anyhow::{Context, bail};
use confab_proto::limits::FRAME_MAX_BYTES;
use confab_proto::{ClientFrame, WS_PATH};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

/// An open WebSocket to the server.
pub type Ws = WebSocketStream<TcpStream>;

/// Sessions one source address is given before the next is used, by default.
pub const SESSIONS_PER_SOURCE_IP: usize = 20_000;

/// `{"type":"heartbeat"}`.
pub const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;

/// Where the server is: its base URL for HTTP and its socket address for WebSockets.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URL, without a trailing slash.
    pub base: String,
    /// `ws://HOST:PORT/v1/ws`.
    pub ws_url: String,
    /// The address connections go to, resolved once.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `http://HOST:PORT` and resolves the host once.
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let Some(authority) = base.strip_prefix("http://") else {
            bail!("--url must be http://HOST:PORT (got {url:?}); https is not supported");
        };
        if authority.is_empty() || authority.contains('/') {
            bail!("--url must be http://HOST:PORT with no path (got {url:?})");
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} resolves to no address"))?;
        Ok(Self {
            ws_url: format!("ws://{authority}{WS_PATH}"),
            base,
            addr,
        })
    }
}

/// Which local address each connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIps {
    count: u8,
}

impl SourceIps {
    /// `count` addresses 127.0.0.1 to 127.0.0.`count`; with more than one, the target must
    /// be an IPv4 loopback address.
    pub fn new(count: u8, target: &Target) -> anyhow::Result<Self> {
        if count > 1 && !matches!(target.addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
            bail!(
                "--source-ips above 1 needs a server on an IPv4 loopback address (127.x.x.x), not {}",
                target.addr
            );
        }
        Ok(Self {
            count: count.max(1),
        })
    }

    /// Enough addresses for `sessions` connections, or `requested`.
    pub fn for_sessions(
        requested: Option<u8>,
        sessions: usize,
        target: &Target,
    ) -> anyhow::Result<Self> {
        let auto = sessions.div_ceil(SESSIONS_PER_SOURCE_IP).clamp(1, 250);
        let count = requested.unwrap_or(u8::try_from(auto).unwrap_or(250));
        let ips = match Self::new(count, target) {
            Ok(ips) => ips,
            // The automatic choice falls back to one address for a remote server.
            Err(_) if requested.is_none() => Self { count: 1 },
            Err(e) => return Err(e),
        };
        Ok(ips)
    }

    /// How many addresses.
    pub fn count(self) -> u8 {
        self.count
    }

    /// The address for the session with this global index; `None` lets the kernel choose.
    pub fn for_index(self, index: usize) -> Option<Ipv4Addr> {
        if self.count <= 1 {
            return None;
        }
        let offset = u8::try_from(index % usize::from(self.count)).unwrap_or(0);
        Some(Ipv4Addr::new(127, 0, 0, 1 + offset))
    }
}

/// Socket buffer sizes: small for idle sessions, larger for busy ones.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// Sessions that mostly idle (`connections`).
    Idle,
    /// Sessions that receive many frames.
    Busy,
}

fn ws_config(profile: Profile) -> WebSocketConfig {
    let read = match profile {
        Profile::Idle => 4 * 1024,
        Profile::Busy => 64 * 1024,
    };
    WebSocketConfig::default()
        .read_buffer_size(read)
        .write_buffer_size(0)
        .max_message_size(Some(2 * FRAME_MAX_BYTES))
        .max_frame_size(Some(2 * FRAME_MAX_BYTES))
}

/// What `welcome` said.
#[derive(Debug, Clone, Copy)]
pub struct Welcome {
    /// The user's inbox head when the session started.
    pub inbox_seq: u64,
}

/// Opens a session: TCP (from `source`, if given), the upgrade, `hello` with `token` and
/// `cursor` (`None`: the device's stored cursor), then waits for `welcome`. The whole of it
/// is bounded by `timeout`.
pub async fn connect(
    target: &Target,
    source: Option<Ipv4Addr>,
    token: &str,
    cursor: Option<u64>,
    profile: Profile,
    timeout: Duration,
) -> Result<(Ws, Welcome), ConnectError> {
    match tokio::time::timeout(
        timeout,
        connect_inner(target, source, token, cursor, profile),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout),
    }
}

async fn connect_inner(
    target: &Target,
    source: Option<Ipv4Addr>,
    token: &str,
    cursor: Option<u64>,
    profile: Profile,
) -> Result<(Ws, Welcome), ConnectError> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(ConnectError::Io)?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::from((ip, 0)))
            .map_err(ConnectError::Io)?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(ConnectError::Io)?;
    stream.set_nodelay(true).map_err(ConnectError::Io)?;
    let (mut ws, _response) = tokio_tungstenite::client_async_with_config(
        target.ws_url.as_str(),
        stream,
        Some(ws_config(profile)),
    )
    .await
    .map_err(ConnectError::from_ws)?;
    let hello = serde_json::to_string(&ClientFrame::Hello {
        token: token.to_owned(),
        cursor,
    })
    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
    ws.send(WsMessage::text(hello))
        .await
        .map_err(ConnectError::from_ws)?;
    loop {
        let frame = match ws.next().await {
            None => return Err(ConnectError::Protocol("closed before welcome".into())),
            Some(Err(e)) => return Err(ConnectError::from_ws(e)),
            Some(Ok(frame)) => frame,
        };
        match frame {
            WsMessage::Text(text) => {
                let inbound = Inbound::parse(&text)
                    .map_err(|e| ConnectError::Protocol(format!("bad first frame: {e}")))?;
                if inbound.kind == "welcome" {
                    return Ok((
                        ws,
                        Welcome {
                            inbox_seq: inbound.inbox_seq.unwrap_or(0),
                        },
                    ));
                }
                return Err(ConnectError::Protocol(format!(
                    "expected welcome, got {}",
                    inbound.kind
                )));
            }
            WsMessage::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return Err(ConnectError::Closed { code, reason });
            }
            _ => continue,
        }
    }
}

/// Why a session could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// A socket error (connect, bind, read, write).
    Io(std::io::Error),
    /// The upgrade was answered with this HTTP status (503: the server is full).
    Status(u16),
    /// The server closed the socket before `welcome`, with this code.
    Closed {
        /// The close code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The whole connect took longer than allowed.
    Timeout,
    /// Anything else: a protocol violation or an unexpected frame.
    Protocol(String),
}

impl ConnectError {
    fn from_ws(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e) => Self::Io(e),
            tungstenite::Error::Http(response) => Self::Status(response.status().as_u16()),
            other => Self::Protocol(other.to_string()),
        }
    }

    /// A short, stable name for counting failures by cause.
    pub fn kind(&self) -> String {
        match self {
            Self::Io(e) => match e.raw_os_error() {
                Some(24) => "emfile".into(),
                Some(99) => "eaddrnotavail".into(),
                Some(111) => "refused".into(),
                Some(104) => "reset".into(),
                _ => format!("io:{:?}", e.kind()).to_lowercase(),
            },
            Self::Status(503) => "overloaded".into(),
            Self::Status(status) => format!("http_{status}"),
            Self::Closed { code, .. } => format!("closed_{code}"),
            Self::Timeout => "timeout".into(),
            Self::Protocol(_) => "protocol".into(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket: {e}"),
            Self::Status(503) => write!(f, "the server answered 503 overloaded"),
            Self::Status(status) => write!(f, "the upgrade was answered with HTTP {status}"),
            Self::Closed { code, reason } => write!(f, "closed by the server ({code}): {reason}"),
            Self::Timeout => write!(f, "timed out"),
            Self::Protocol(what) => write!(f, "{what}"),
        }
    }
}

/// What to raise, given failure kinds seen while connecting.
pub fn hints<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        if !out.iter().any(|h: &String| h == s) {
            out.push(s.to_owned());
        }
    };
    for kind in kinds {
        match kind {
            "emfile" => push(
                "the load generator ran out of file descriptors: use more --workers (each process may hold fewer than its `ulimit -n` sessions)",
            ),
            "eaddrnotavail" => push(
                "out of local ports: use more --source-ips (each 127.0.0.x address gives about 28,000 connections)",
            ),
            "overloaded" => push(
                "the server refused with 503 overloaded: raise its max_sessions (CONFAB_MAX_SESSIONS)",
            ),
            "timeout" | "reset" | "refused" => push(
                "connects timed out or were refused: the server may be out of file descriptors (raise its `ulimit -n`) or its accept backlog (net.core.somaxconn); check its log",
            ),
            "skipped" => push(
                "connecting stopped early after too many failures (--max-failures); the first failures say why",
            ),
            "closed_4001" => {
                push("the server refused the token (4001): were these users logged out?")
            }
            _ => {}
        }
    }
    out
}

/// The fields of a server frame the scenarios use; everything else is skipped unparsed.
#[derive(Debug, Deserialize)]
pub struct Inbound<'a> {
    /// `type`: welcome, message, ack, error, heartbeat_ack, ...
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The `req` of an `ack` or `error`.
    #[serde(default, borrow)]
    pub req: Option<Cow<'a, str>>,
    /// The inbox position of a `message` (or the head, in `welcome`).
    #[serde(default)]
    pub inbox_seq: Option<u64>,
    /// The message of a `message` or `ack` (an object), or the text of an `error` (a
    /// string): kept raw, see [`Inbound::message`].
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    /// The code of an `error`.
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    /// With `rate_limited` and `overloaded` errors: how long to wait before retrying.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// The fields of a message the scenarios use.
#[derive(Debug, Deserialize)]
pub struct InboundMessage<'a> {
    /// The sender's id for it; the scenarios put their message number in it.
    #[serde(borrow)]
    pub client_msg_id: Cow<'a, str>,
    /// Who sent it, as the decimal string of the wire.
    #[serde(borrow)]
    pub sender_id: Cow<'a, str>,
}

impl<'a> Inbound<'a> {
    /// Parses one text frame.
    pub fn parse(text: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The message of a `message` or `ack` frame; `None` for other frames.
    pub fn message(&self) -> Option<InboundMessage<'a>> {
        serde_json::from_str(self.message?.get()).ok()
    }
}

/// The `send` frame for message number `index` of run `tag`; `req` is the number too.
pub fn send_frame(tag: &str, index: u64, conversation_id: i64, body: &str) -> String {
    format!(
        r#"{{"type":"send","req":"{index}","conversation_id":"{conversation_id}","client_msg_id":"{}","body":"{body}"}}"#,
        client_msg_id(tag, index)
    )
}

/// The `client_msg_id` of message number `index` of run `tag`.
pub fn client_msg_id(tag: &str, index: u64) -> String {
    format!("{tag}-{index}")
}

/// The message number in a `client_msg_id` of run `tag`, if it is one of ours.
pub fn message_index(tag: &str, client_msg_id: &str) -> Option<u64> {
    client_msg_id
        .strip_prefix(tag)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// `{"type":"delivered","inbox_seq":N}`.
pub fn delivered_frame(inbox_seq: u64) -> String {
    format!(r#"{{"type":"delivered","inbox_seq":{inbox_seq}}}"#)
}

/// An ASCII body of `chars` characters.
pub fn body(chars: usize) -> String {
    const TEXT: &[u8] = b"the quick brown fox jumps over the lazy dog ";
    (0..chars)
        .map(|i| char::from(TEXT[i % TEXT.len()]))
        .collect()
}

/// The close code and reason of a close frame, 1005 when it had none.
pub fn close_code(frame: Option<&tungstenite::protocol::CloseFrame>) -> u16 {
    frame.map_or(1005, |f| u16::from(f.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_contract_types() {
        let text = send_frame("abc", 42, 7, &body(5));
        let parsed: ClientFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            ClientFrame::Send {
                req: Some("42".into()),
                conversation_id: confab_proto::ConversationId(7),
                client_msg_id: "abc-42".into(),
                kind: confab_proto::MessageKind::Text,
                body: "the q".into(),
                target_seq: None,
                reply_to: None,
            }
        );
        let parsed: ClientFrame = serde_json::from_str(&delivered_frame(9)).unwrap();
        assert_eq!(parsed, ClientFrame::Delivered { inbox_seq: 9 });
        let parsed: ClientFrame = serde_json::from_str(HEARTBEAT).unwrap();
        assert_eq!(parsed, ClientFrame::Heartbeat);
        assert!(confab_proto::limits::valid_client_msg_id(&client_msg_id(
            "abcdef",
            u64::MAX
        )));
    }

    #[test]
    fn message_numbers_come_back_only_for_our_tag() {
        assert_eq!(message_index("abc", "abc-17"), Some(17));
        assert_eq!(message_index("abc", "abd-17"), None);
        assert_eq!(message_index("abc", "abc17"), None);
        assert_eq!(message_index("abc", "abc-x"), None);
    }

    #[test]
    fn inbound_frames_parse_leanly() {
        let text = r#"{"type":"message","inbox_seq":3,"message":{"id":"1","conversation_id":"2","seq":1,"sender_id":"5","client_msg_id":"t-9","kind":"text","body":"hi \"there\"","created_at":"2026-01-01T00:00:00.000Z"}}"#;
        let f = Inbound::parse(text).unwrap();
        assert_eq!(f.kind, "message");
        assert_eq!(f.inbox_seq, Some(3));
        let m = f.message().unwrap();
        assert_eq!(m.client_msg_id, "t-9");
        assert_eq!(m.sender_id, "5");
        let f = Inbound::parse(r#"{"type":"error","req":"4","code":"rate_limited","message":"slow","retry_after_ms":5}"#).unwrap();
        assert_eq!(f.req.as_deref(), Some("4"));
        assert_eq!(f.code.as_deref(), Some("rate_limited"));
        assert!(f.message().is_none());
        let f = Inbound::parse(r#"{"type":"heartbeat_ack"}"#).unwrap();
        assert_eq!(f.kind, "heartbeat_ack");
    }

    #[tokio::test]
    async fn targets_and_source_addresses() {
        let t = Target::resolve("http://127.0.0.1:8080/").await.unwrap();
        assert_eq!(t.base, "http://127.0.0.1:8080");
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/v1/ws");
        assert!(Target::resolve("https://127.0.0.1:1").await.is_err());
        let one = SourceIps::for_sessions(None, 100, &t).unwrap();
        assert_eq!(one.for_index(5), None);
        let three = SourceIps::for_sessions(None, 45_000, &t).unwrap();
        assert_eq!(three.count(), 3);
        assert_eq!(three.for_index(4), Some(Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn failures_have_hints() {
        let emfile = ConnectError::Io(std::io::Error::from_raw_os_error(24));
        assert_eq!(emfile.kind(), "emfile");
        assert_eq!(ConnectError::Status(503).kind(), "overloaded");
        let h = hints(["emfile", "overloaded", "emfile"]);
        assert_eq!(h.len(), 2);
        assert!(h[1].contains("max_sessions"));
    }
}
