//! WebSocket frames: one JSON object per text frame, tagged by `type`.

use crate::{
    ConversationId, DeviceId, ErrorCode, Message, MessageKind, Presence, ServerInfo, UserId,
};
use serde::{Deserialize, Serialize};

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame, within 10 s: authenticates and says where the device's inbox stands.
    Hello {
        /// The token from login.
        token: String,
        /// The device's highest `inbox_seq` (0 for none). When absent, the server uses the
        /// cursor it stored for the device.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<u64>,
    },
    /// Send a message, or a change to one (the same fields as `POST .../messages`).
    Send {
        /// Echoed on the `ack` or `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
        /// Where to send it.
        conversation_id: ConversationId,
        /// The client's id for this message; a retry with the same id is not stored twice.
        client_msg_id: String,
        /// `text` unless a change.
        #[serde(default, skip_serializing_if = "is_text")]
        kind: MessageKind,
        /// The text, the emoji of a reaction, or nothing (checked by the server).
        #[serde(default)]
        body: String,
        /// A change: the seq of the message it changes.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::http::some_whole_number"
        )]
        target_seq: Option<u64>,
        /// A text message: the seq of the message it answers.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::http::some_whole_number"
        )]
        reply_to: Option<u64>,
    },
    /// Cumulative: this device has everything up to `inbox_seq`.
    Delivered {
        /// The highest inbox entry the device has.
        inbox_seq: u64,
    },
    /// The user has read the conversation up to `seq`.
    Read {
        /// Echoed on an `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
        /// The conversation.
        conversation_id: ConversationId,
        /// The highest seq read.
        seq: u64,
    },
    /// The user is typing in a conversation.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
    },
    /// Keeps the device online.
    Heartbeat,
}

/// A frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to `hello`.
    Welcome {
        /// Who the token belongs to.
        user_id: UserId,
        /// Which device.
        device_id: DeviceId,
        /// The user's inbox head when the session started.
        inbox_seq: u64,
        /// How often to send `heartbeat`.
        heartbeat_interval_ms: u64,
    },
    /// A message for this user: backlog after the cursor first, then live, in strictly
    /// increasing `inbox_seq` with no gaps and no repeats.
    Message {
        /// The position in the user's inbox.
        inbox_seq: u64,
        /// The message.
        message: Message,
    },
    /// The message of a `send` is durably stored.
    Ack {
        /// The `req` of the `send`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
        /// The stored message, with its id, seq and created_at.
        message: Message,
    },
    /// Another member's delivered or read watermark moved.
    Receipt {
        /// The conversation.
        conversation_id: ConversationId,
        /// Whose watermark.
        user_id: UserId,
        /// Which watermark.
        kind: ReceiptKind,
        /// Its new value.
        seq: u64,
    },
    /// The user changed their settings for a conversation (on any of their devices).
    Settings {
        /// The conversation.
        conversation_id: ConversationId,
        /// Its settings now.
        settings: crate::ConversationSettings,
    },
    /// The user blocked or unblocked someone (on any of their devices).
    Block {
        /// Whom.
        user_id: UserId,
        /// Blocked now, or no longer.
        blocked: bool,
    },
    /// Someone is typing.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
    },
    /// A contact's status changed.
    Presence(Presence),
    /// The answer to `heartbeat`.
    HeartbeatAck,
    /// This node is draining: connect to one of these.
    Reconnect {
        /// Where to go, best first.
        servers: Vec<ServerInfo>,
    },
    /// The frame with this `req` failed; the connection stays open.
    Error(FrameError),
}

fn is_text(kind: &MessageKind) -> bool {
    *kind == MessageKind::Text
}

impl ServerFrame {
    /// The frame as the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        // Plain enums of strings and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The payload of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameError {
    /// The `req` of the failed frame, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<String>,
    /// What went wrong.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// With `rate_limited`: how long to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Which watermark a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// A device of the user has the message.
    Delivered,
    /// The user has read it.
    Read,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use serde_json::json;

    #[test]
    fn client_frames_parse_from_the_contract() {
        let f: ClientFrame =
            serde_json::from_value(json!({"type": "hello", "token": "t", "cursor": 7})).unwrap();
        assert_eq!(
            f,
            ClientFrame::Hello {
                token: "t".into(),
                cursor: Some(7)
            }
        );
        let f: ClientFrame = serde_json::from_value(json!({
            "type": "send", "req": "r1", "conversation_id": "12", "client_msg_id": "c1", "body": "hi"
        }))
        .unwrap();
        assert!(matches!(
            f,
            ClientFrame::Send {
                conversation_id: ConversationId(12),
                ..
            }
        ));
        let f: ClientFrame = serde_json::from_value(json!({"type": "heartbeat"})).unwrap();
        assert_eq!(f, ClientFrame::Heartbeat);
        assert!(serde_json::from_value::<ClientFrame>(json!({"type": "nope"})).is_err());
    }

    #[test]
    fn server_frames_have_the_contract_shape() {
        let f = ServerFrame::Error(FrameError {
            req: Some("r1".into()),
            code: ErrorCode::Forbidden,
            message: "not a member".into(),
            retry_after_ms: None,
        });
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type": "error", "req": "r1", "code": "forbidden", "message": "not a member"})
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::HeartbeatAck).unwrap(),
            json!({"type": "heartbeat_ack"})
        );
        let p = ServerFrame::Presence(Presence {
            user_id: UserId(3),
            status: crate::PresenceStatus::Online,
            last_active_at: Some(Timestamp(0)),
        });
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "presence", "user_id": "3", "status": "online", "last_active_at": "1970-01-01T00:00:00.000Z"})
        );
    }
}
