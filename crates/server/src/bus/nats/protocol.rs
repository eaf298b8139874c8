//! The NATS client protocol, the part a bus needs: the server's operations parsed from a
//! byte buffer, the client's written into one. Text lines ending in CRLF; `MSG` carries a
//! payload of the length it names (<https://docs.nats.io/reference/reference-protocols/nats-protocol>).

use bytes::{Buf, BytesMut};
use std::fmt::Write as _;

/// A server operation line longer than this is a broken or hostile server.
const LINE_MAX: usize = 64 * 1024;

/// What the server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerOp {
    /// Server facts; `connect_urls` names the cluster's other servers.
    Info(Info),
    /// A message on a subscription.
    Msg {
        /// Its subject.
        subject: String,
        /// The payload.
        payload: BytesMut,
    },
    /// The server checks that we are alive: answer `PONG`.
    Ping,
    /// The answer to our `PING`: everything we sent before it has been processed.
    Pong,
    /// An acknowledgement (only in verbose mode, which we do not ask for).
    Ok,
    /// An error; the server closes the connection after most of them.
    Err(String),
}

/// The fields of `INFO` the bus uses.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Info {
    /// The largest payload the server takes.
    #[serde(default)]
    pub max_payload: usize,
    /// Other servers of the cluster, as `host:port`.
    #[serde(default)]
    pub connect_urls: Vec<String>,
    /// Lame duck mode: the server is shutting down; clients should move to another.
    #[serde(default)]
    pub ldm: bool,
}

/// Why the stream from the server cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the NATS server sent something unexpected: {0}")]
pub struct ProtocolError(String);

/// Takes the next whole operation from `buf`, or `None` if more bytes are needed.
pub fn parse(buf: &mut BytesMut, payload_max: usize) -> Result<Option<ServerOp>, ProtocolError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > LINE_MAX {
            return Err(ProtocolError("a line without an end".into()));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end])
        .map_err(|_| ProtocolError("a line that is not UTF-8".into()))?;
    let (op, args) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let op = op.to_ascii_uppercase();
    let parsed = match op.as_str() {
        "MSG" => {
            let fields: Vec<&str> = args.split_ascii_whitespace().collect();
            // MSG <subject> <sid> [reply-to] <#bytes>
            let (subject, len) = match fields.as_slice() {
                [subject, _sid, len] | [subject, _sid, _, len] => (*subject, *len),
                _ => return Err(ProtocolError(format!("MSG {args}"))),
            };
            let len: usize = len
                .parse()
                .map_err(|_| ProtocolError(format!("MSG {args}")))?;
            if len > payload_max {
                return Err(ProtocolError(format!("a payload of {len} bytes")));
            }
            let subject = subject.to_owned();
            let whole = end + 2 + len + 2;
            if buf.len() < whole {
                return Ok(None);
            }
            buf.advance(end + 2);
            let payload = buf.split_to(len);
            if &buf[..2] != b"\r\n" {
                return Err(ProtocolError("a payload longer than it said".into()));
            }
            buf.advance(2);
            return Ok(Some(ServerOp::Msg { subject, payload }));
        }
        "PING" => ServerOp::Ping,
        "PONG" => ServerOp::Pong,
        "+OK" => ServerOp::Ok,
        "-ERR" => ServerOp::Err(args.trim().trim_matches('\'').to_owned()),
        "INFO" => ServerOp::Info(
            serde_json::from_str(args).map_err(|e| ProtocolError(format!("INFO: {e}")))?,
        ),
        _ => return Err(ProtocolError(format!("the operation {op}"))),
    };
    buf.advance(end + 2);
    Ok(Some(parsed))
}

/// `CONNECT`: no echo (this node already delivered what it publishes to its own sessions),
/// no acknowledgements, credentials if the URL had them.
pub fn connect(out: &mut Vec<u8>, name: &str, auth: &Auth) {
    let mut options = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "echo": false,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "name": name,
    });
    match auth {
        Auth::None => {}
        Auth::Token(token) => options["auth_token"] = token.clone().into(),
        Auth::User { user, pass } => {
            options["user"] = user.clone().into();
            options["pass"] = pass.clone().into();
        }
    }
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(options.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Credentials from a server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:pass@host`.
    User {
        /// The user.
        user: String,
        /// The password.
        pass: String,
    },
}

/// `SUB <subject> <sid>`.
pub fn sub(out: &mut Vec<u8>, subject: &str, sid: u64) {
    let _ = write!(Line(out), "SUB {subject} {sid}\r\n");
}

/// `UNSUB <sid>`.
pub fn unsub(out: &mut Vec<u8>, sid: u64) {
    let _ = write!(Line(out), "UNSUB {sid}\r\n");
}

/// `PUB <subject> <#bytes>` and the payload.
pub fn publish(out: &mut Vec<u8>, subject: &str, payload: &[u8]) {
    let _ = write!(Line(out), "PUB {subject} {}\r\n", payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// `PING`.
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// `PONG`.
pub fn pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

/// `fmt::Write` into a byte buffer.
struct Line<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Line<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Result<Vec<ServerOp>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut ops = Vec::new();
        while let Some(op) = parse(&mut buf, 1 << 20)? {
            ops.push(op);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(ops)
    }

    #[test]
    fn parses_what_a_server_sends() {
        let ops = all(
            b"INFO {\"max_payload\":1048576,\"connect_urls\":[\"10.0.0.2:4222\"],\"x\":1}\r\n\
              PING\r\npong\r\n+OK\r\n-ERR 'Stale Connection'\r\n\
              MSG confab.u.7 12 5\r\nhello\r\nMSG a.b 1 reply.to 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                ServerOp::Info(Info {
                    max_payload: 1 << 20,
                    connect_urls: vec!["10.0.0.2:4222".into()],
                    ldm: false,
                }),
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Ok,
                ServerOp::Err("Stale Connection".into()),
                ServerOp::Msg {
                    subject: "confab.u.7".into(),
                    payload: BytesMut::from(&b"hello"[..]),
                },
                ServerOp::Msg {
                    subject: "a.b".into(),
                    payload: BytesMut::new(),
                },
            ]
        );
    }

    #[test]
    fn a_server_going_away_says_so() {
        let ops = all(b"INFO {\"ldm\":true,\"connect_urls\":[]}\r\n").unwrap();
        assert!(matches!(&ops[..], [ServerOp::Info(Info { ldm: true, .. })]));
    }

    #[test]
    fn waits_for_the_rest_of_a_message() {
        let whole = b"MSG s 1 12\r\nhello\r\nworld\r\n";
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(parse(&mut buf, 1 << 20).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing taken at {cut}");
        }
        let mut buf = BytesMut::from(&whole[..]);
        let Some(ServerOp::Msg { payload, .. }) = parse(&mut buf, 1 << 20).unwrap() else {
            panic!("no message")
        };
        assert_eq!(&payload[..], b"hello\r\nworld");
    }

    #[test]
    fn refuses_what_no_server_sends() {
        assert!(all(b"HELLO\r\n").is_err());
        assert!(all(b"MSG s 1\r\n").is_err());
        assert!(all(b"MSG s 1 x\r\n").is_err());
        assert!(all(b"MSG s 1 3\r\nabcd\r\n").is_err());
        // Bigger than the limit: refused before waiting for it.
        let mut buf = BytesMut::from(&b"MSG s 1 2000000\r\n"[..]);
        assert!(parse(&mut buf, 1 << 20).is_err());
        let mut buf = BytesMut::from(&vec![b'a'; LINE_MAX + 1][..]);
        assert!(parse(&mut buf, 1 << 20).is_err());
    }

    #[test]
    fn writes_what_a_server_reads() {
        let mut out = Vec::new();
        sub(&mut out, "confab.u.7", 3);
        unsub(&mut out, 3);
        publish(&mut out, "confab.u.9", b"hi there");
        ping(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SUB confab.u.7 3\r\nUNSUB 3\r\nPUB confab.u.9 8\r\nhi there\r\nPING\r\n"
        );
        let mut out = Vec::new();
        connect(
            &mut out,
            "node-1",
            &Auth::User {
                user: "u".into(),
                pass: "p".into(),
            },
        );
        let line = String::from_utf8(out).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("CONNECT ").unwrap().trim_end()).unwrap();
        assert_eq!(json["echo"], false);
        assert_eq!(json["user"], "u");
        assert_eq!(json["pass"], "p");
    }
}
