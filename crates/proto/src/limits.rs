//! Limits of contract v1. Clients check them before sending; the server enforces them.

/// A message body holds at least this many Unicode scalar values.
pub const BODY_MIN_CHARS: usize = 1;
/// A message body holds at most this many Unicode scalar values.
pub const BODY_MAX_CHARS: usize = 99_999;
/// The most UTF-8 bytes a body can take: four per character. There is no byte limit of
/// its own (every legal text fits); what bounds a user's disk use is the server's
/// storage quota (`quota_exceeded`).
pub const BODY_MAX_BYTES: usize = 4 * BODY_MAX_CHARS;
/// A group holds at most this many members, its creator included.
pub const GROUP_MAX_MEMBERS: usize = 100;
/// Usernames are 3 to 32 characters of `a-z 0-9 _ . -`.
pub const USERNAME_MIN: usize = 3;
/// See [`USERNAME_MIN`].
pub const USERNAME_MAX: usize = 32;
/// Passwords are at least this many characters.
pub const PASSWORD_MIN: usize = 8;
/// Passwords longer than this are refused, so hashing stays bounded.
pub const PASSWORD_MAX: usize = 1024;
/// Display names, group titles and device names are at most this many characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// A message mentions at most this many users; further `@names` are plain text.
pub const MENTIONS_MAX: usize = 50;
/// One user may put at most this many different reactions on one message.
pub const REACTIONS_PER_USER_MAX: usize = 20;
/// A `client_msg_id` is 1 to 64 characters.
pub const CLIENT_MSG_ID_MAX: usize = 64;
/// A `req` tag on a frame is at most this many bytes.
pub const REQ_MAX: usize = 64;
/// A WebSocket frame (one JSON object), and an HTTP request body, is at most 1,250,000
/// bytes: room for the longest legal message in any JSON encoding. Written with `\uXXXX`
/// escapes (what many JSON libraries do by default), a character outside the Basic
/// Multilingual Plane takes 12 bytes (a surrogate pair), so 99,999 of them take 1,199,988;
/// the rest of the frame fits in what is left.
pub const FRAME_MAX_BYTES: usize = 1_250_000;

// The longest body, every character escaped as a surrogate pair, and 16 KiB for the rest.
const _: () = assert!(FRAME_MAX_BYTES >= 12 * BODY_MAX_CHARS + 16 * 1024);
/// History pages hold 50 messages unless asked otherwise.
pub const PAGE_DEFAULT: usize = 50;
/// History and sync pages hold at most 200 entries.
pub const PAGE_MAX: usize = 200;
/// Search results per page when the client does not say.
pub const SEARCH_PAGE_DEFAULT: usize = 20;
/// Search results per page, at most.
pub const SEARCH_PAGE_MAX: usize = 50;
/// Results a search by relevance pages through, at most (deeper pages cost every match's
/// score again; newest-first pages have no such end).
pub const SEARCH_RELEVANCE_MAX: usize = 500;
/// Conversation list pages hold 100 conversations unless asked otherwise (at most
/// [`PAGE_MAX`]).
pub const CONVERSATIONS_PAGE_DEFAULT: usize = 100;
/// `GET /v1/presence` answers for at most this many users.
pub const PRESENCE_QUERY_MAX: usize = 200;
/// A user has at most this many logged-in devices; a login past it logs out the device
/// that has been idle the longest.
pub const DEVICES_PER_USER: usize = 32;
/// One device may hold at most this many WebSocket sessions at once (on one node); one more
/// is closed with [`close::TOO_MANY_SESSIONS`].
pub const SESSIONS_PER_DEVICE: usize = 8;
/// A device holds at most this many push subscriptions; subscribing once more drops its
/// oldest.
pub const PUSH_SUBSCRIPTIONS_PER_DEVICE: usize = 10;
/// Sequence numbers (`seq`, `inbox_seq`, cursors) are at most 2^63 - 1, what a signed
/// 64-bit database integer holds; a query past it is `invalid_request`.
pub const SEQ_MAX: u64 = i64::MAX as u64;
/// The first frame must be `hello`, within this many milliseconds (the server's default).
pub const HELLO_TIMEOUT_MS: u64 = 10_000;

/// WebSocket close codes.
pub mod close {
    /// The session ended normally (the client said goodbye, or was idle past the timeout).
    pub const NORMAL: u16 = 1000;
    /// Going away: the node is draining; connect elsewhere.
    pub const GOING_AWAY: u16 = 1001;
    /// The WebSocket protocol itself was broken (a bad frame at the transport level).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame was larger than [`super::FRAME_MAX_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// Bad or missing token, or the device was logged out.
    pub const UNAUTHORIZED: u16 = 4001;
    /// No `hello` in time.
    pub const NO_HELLO: u16 = 4002;
    /// The client did not keep up; reconnect and resync from the cursor.
    pub const TOO_SLOW: u16 = 4008;
    /// A frame was not JSON, or not an object.
    pub const NOT_JSON: u16 = 4009;
    /// The device already has [`super::SESSIONS_PER_DEVICE`] sessions open; close one.
    pub const TOO_MANY_SESSIONS: u16 = 4010;
    /// The server could not go on (its store failed); reconnect, to this node or another.
    pub const INTERNAL: u16 = 1011;

    /// The reason sent with `code`: what happened and what to do.
    pub fn reason(code: u16) -> &'static str {
        match code {
            NORMAL => "",
            GOING_AWAY => "server draining; reconnect",
            PROTOCOL_ERROR => "WebSocket protocol error",
            TOO_BIG => "frame larger than 1,250,000 bytes",
            INTERNAL => "server error; reconnect",
            UNAUTHORIZED => "bad or revoked token; log in again",
            NO_HELLO => "no hello in time",
            TOO_SLOW => "too slow to keep up; reconnect and resync from your cursor",
            NOT_JSON => "frames must be JSON objects",
            TOO_MANY_SESSIONS => "this device has too many sessions open; close one",
            _ => "",
        }
    }
}

/// True when `name` is a valid username.
pub fn valid_username(name: &str) -> bool {
    (USERNAME_MIN..=USERNAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// True when `id` is a valid `client_msg_id`: 1 to 64 printable ASCII characters.
pub fn valid_client_msg_id(id: &str) -> bool {
    (1..=CLIENT_MSG_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("ada"));
        assert!(valid_username("a.b-c_9"));
        assert!(!valid_username("ab"));
        assert!(!valid_username("Ada"));
        assert!(!valid_username("a b c"));
        assert!(!valid_username(&"a".repeat(33)));
        assert!(valid_username(&"a".repeat(32)));
    }

    #[test]
    fn client_msg_ids() {
        assert!(valid_client_msg_id("c-1"));
        assert!(!valid_client_msg_id(""));
        assert!(!valid_client_msg_id("has space"));
        assert!(!valid_client_msg_id(&"x".repeat(65)));
    }
}
