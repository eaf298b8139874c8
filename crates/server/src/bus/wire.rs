//! A `UserEvent` as bytes between nodes. One version byte, a kind, a header line, then the
//! body as is (the message or frame JSON the sessions splice in), so a receiving node
//! forwards it without parsing it:
//!
//! - `1m<inbox_seq>\n<message JSON>`
//! - `1f\n<frame JSON>`
//! - `1r<device_id>`
//! - `1c` (catch up from the store)
//!
//! A node that does not know a version drops the event (the bus is a hint; sync repairs).

use super::{PreparedMessage, UserEvent};
use confab_proto::DeviceId;
use confab_proto::limits::SEQ_MAX;
use std::sync::Arc;

const VERSION: u8 = b'1';

/// Appends the wire form of `event` to `out`.
pub fn encode(event: &UserEvent, out: &mut Vec<u8>) {
    out.push(VERSION);
    match event {
        UserEvent::Message { inbox_seq, message } => {
            out.push(b'm');
            out.extend_from_slice(inbox_seq.to_string().as_bytes());
            out.push(b'\n');
            out.extend_from_slice(message.json.as_bytes());
        }
        UserEvent::Frame(frame) => {
            out.extend_from_slice(b"f\n");
            out.extend_from_slice(frame.as_bytes());
        }
        UserEvent::Revoked(device) => {
            out.push(b'r');
            out.extend_from_slice(device.0.to_string().as_bytes());
        }
        UserEvent::CatchUp => out.push(b'c'),
    }
}

/// The event in `bytes`, or `None` when they are not one this node understands.
pub fn decode(bytes: &[u8]) -> Option<UserEvent> {
    let (&version, rest) = bytes.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    if version != VERSION {
        return None;
    }
    let rest = std::str::from_utf8(rest).ok()?;
    match kind {
        b'm' => {
            let (seq, json) = rest.split_once('\n')?;
            let inbox_seq: u64 = seq.parse().ok()?;
            // What a store can number; anything past it is not a real entry.
            if inbox_seq > SEQ_MAX {
                return None;
            }
            Some(UserEvent::Message {
                inbox_seq,
                message: Arc::new(PreparedMessage {
                    json: json.to_owned(),
                }),
            })
        }
        b'f' => Some(UserEvent::Frame(rest.strip_prefix('\n')?.into())),
        b'r' => Some(UserEvent::Revoked(DeviceId(rest.parse().ok()?))),
        b'c' if rest.is_empty() => Some(UserEvent::CatchUp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(event: UserEvent) -> UserEvent {
        let mut out = Vec::new();
        encode(&event, &mut out);
        decode(&out).expect("decodes")
    }

    #[test]
    fn every_event_survives_the_trip() {
        let json = r#"{"id":"1","body":"line one\nline two é"}"#;
        let UserEvent::Message { inbox_seq, message } = round_trip(UserEvent::Message {
            inbox_seq: 42,
            message: Arc::new(PreparedMessage { json: json.into() }),
        }) else {
            panic!("not a message")
        };
        assert_eq!((inbox_seq, message.json.as_str()), (42, json));

        let UserEvent::Frame(frame) = round_trip(UserEvent::Frame(r#"{"type":"typing"}"#.into()))
        else {
            panic!("not a frame")
        };
        assert_eq!(&*frame, r#"{"type":"typing"}"#);

        let UserEvent::Revoked(device) = round_trip(UserEvent::Revoked(DeviceId(-7))) else {
            panic!("not a revocation")
        };
        assert_eq!(device, DeviceId(-7));
        assert!(matches!(round_trip(UserEvent::CatchUp), UserEvent::CatchUp));
    }

    #[test]
    fn what_it_does_not_know_is_dropped() {
        for bytes in [
            &b""[..],
            b"2f\n{}",
            b"1x",
            b"1m\n{}",
            b"1mten\n{}",
            b"1f{}",
            b"1r",
            b"1c!",
            "1é".as_bytes(),
            b"1m9223372036854775808\n{}",
            b"\xff",
        ] {
            assert!(decode(bytes).is_none(), "{bytes:?}");
        }
    }
}
