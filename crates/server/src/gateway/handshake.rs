//! A session's start: `hello` within the timeout, the token, and `welcome` with the inbox
//! head; a failure is a close code.

use super::hub::Control;
use super::session::{Sink, Stream, close_now, read_error_code};
use crate::state::AppState;
use axum::extract::ws::Message as Ws;
use confab_proto::limits::close;
use confab_proto::{ClientFrame, DeviceId, ErrorCode, ServerFrame, UserId};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;

/// Who a session is, once it has said hello and been welcomed.
pub(super) struct Started {
    pub user: UserId,
    pub device: DeviceId,
    /// The inbox entry the device has; the writer sends what comes after.
    pub cursor: u64,
    /// Checked once more after the session registers (see [`still_authorized`]).
    pub token: String,
}

/// A logout that landed between the handshake's check and the hub registration reached no
/// session; a second look at the token, now that revocations reach this one, closes that gap.
pub(super) fn still_authorized<'a>(
    app: &'a AppState,
    token: &'a str,
    control: &'a Control,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        match app.accounts.authenticate(token).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Unauthorized => control.close(close::UNAUTHORIZED),
            Err(_) => control.close(close::INTERNAL),
        }
    })
}

/// `hello`, authentication and `welcome`; closes the socket itself when one fails.
/// Boxed: the handshake's state is freed once it is done instead of living in the session's
/// future for the whole session, which keeps idle sessions small.
pub(super) fn start<'a>(
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
            close::INTERNAL
        }
    })?;
    let (user, device_id) = (device.user_id, device.id);
    app.cursors.touch(&device);
    let head = app
        .store
        .inbox_head(user)
        .await
        .map_err(|_| close::INTERNAL)?;
    let welcome = ServerFrame::Welcome {
        user_id: user,
        device_id,
        inbox_seq: head,
        heartbeat_interval_ms: app.config.heartbeat_interval_ms,
    };
    // A socket that fails here is gone; the close that follows is best effort.
    sink.send(Ws::Text(welcome.to_json().into()))
        .await
        .map_err(|_| close::INTERNAL)?;
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
