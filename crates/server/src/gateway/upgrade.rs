//! `GET /v1/ws`: who may open a WebSocket here (the node's session limit, the per-address
//! limit on sessions that have not said hello yet) and the socket's buffer sizes.

use super::session;
use crate::addresses::{ClientIp, Held};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use confab_proto::ErrorCode;
use confab_proto::limits::FRAME_MAX_BYTES;
use std::sync::Arc;

/// Small socket buffers keep idle sessions cheap; they grow for large frames as needed.
const READ_BUFFER: usize = 512;
/// Queued frames are gathered up to this many bytes per socket write, so a busy session
/// pays one syscall per batch rather than one per frame; an idle one never fills it.
const WRITE_BUFFER: usize = 8 * 1024;

/// `GET /v1/ws`: upgrades, unless the node is at `max_sessions`.
pub async fn upgrade(
    State(app): State<AppState>,
    ClientIp(client): ClientIp,
    connection: Option<Extension<Arc<Held>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::invalid(format!(
                "this route takes a WebSocket upgrade: {}",
                e.body_text()
            ))
            .into_response();
        }
    };
    if app.registry.is_draining() {
        return ApiError::new(
            ErrorCode::Overloaded,
            "this node is shutting down; ask /v1/discovery for another",
        )
        .into_response();
    }
    if app.hub.sockets() >= app.config.max_sessions {
        app.metrics.sessions_refused.inc();
        return ApiError::new(
            ErrorCode::Overloaded,
            "this node is full; ask /v1/discovery for another",
        )
        .into_response();
    }
    // Until hello, a connection is anyone's; one address may hold only a few such. A
    // trusted proxy with no forwarded address is a local tool (a load test), not a crowd.
    let hello = if app.proxies.trusts(client) {
        None
    } else {
        match app.hellos_pending.take(client) {
            Some(held) => Some(held),
            None => {
                app.metrics.hellos_refused.inc();
                return ApiError::rate_limited_for(
                    1000,
                    "too many connections from your address are waiting to say hello",
                )
                .into_response();
            }
        }
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(2 * FRAME_MAX_BYTES)
        .max_message_size(FRAME_MAX_BYTES)
        .max_frame_size(FRAME_MAX_BYTES)
        .on_upgrade(move |socket| async move {
            // Counted from here, so sessions that have not said hello count against the limit.
            let _admitted = app.hub.admit();
            // The connection's place in `max_connections_per_ip`, kept while the session lasts.
            let _connection = connection;
            session::run(socket, app.clone(), hello).await
        })
}
