//! Health, metrics, discovery and presence lookups.

use super::extract::{Authed, Query};
use crate::addresses::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use confab_proto::limits::PRESENCE_QUERY_MAX;
use confab_proto::{DiscoveryResponse, PresenceResponse, UserId};
use serde::Deserialize;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `/metrics` on the main listener: only for clients on a trusted (local) address, and not
/// at all when `metrics_listen` gives it a listener of its own. Strangers get the usual 404.
pub async fn metrics(State(app): State<AppState>, ClientIp(client): ClientIp) -> Response {
    if app.config.metrics_listen.is_some() || !app.proxies.trusts(client) {
        return ApiError::not_found("route").into_response();
    }
    metrics_text(&app).into_response()
}

/// `/metrics` on `metrics_listen`, for whoever can reach that address.
pub async fn metrics_only(State(app): State<AppState>) -> Response {
    metrics_text(&app).into_response()
}

fn metrics_text(app: &AppState) -> impl IntoResponse + use<> {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
}

#[derive(Deserialize)]
pub struct DiscoveryQuery {
    region: Option<String>,
}

/// Nodes to open a WebSocket on, best first: live and not draining, those in the client's
/// region first (named in the query, or found from its address by `client_regions`), then
/// the least loaded.
pub async fn discovery(
    State(app): State<AppState>,
    ClientIp(client): ClientIp,
    Query(q): Query<DiscoveryQuery>,
) -> axum::Json<DiscoveryResponse> {
    let region = q
        .region
        .as_deref()
        .or_else(|| app.config.client_region(client));
    axum::Json(DiscoveryResponse {
        servers: app.registry.servers(region),
    })
}

#[derive(Deserialize)]
pub struct PresenceQuery {
    user_ids: String,
}

/// Presence of up to 200 users: online while any of their devices has a session.
pub async fn presence(
    State(app): State<AppState>,
    me: Authed,
    Query(q): Query<PresenceQuery>,
) -> ApiResult<axum::Json<PresenceResponse>> {
    let ids = q
        .user_ids
        .split(',')
        .map(str::parse::<UserId>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            ApiError::invalid("user_ids is 1 to 200 user ids separated by commas, none empty")
        })?;
    if ids.len() > PRESENCE_QUERY_MAX {
        return Err(ApiError::invalid("ask for at most 200 users at once"));
    }
    // Only users who share a conversation with the caller, and no blocked pair; others are
    // left out.
    let mut visible = app.store.peers_among(me.user_id, &ids).await?;
    let blocked = app.store.blocked_among(me.user_id, &visible).await?;
    visible.retain(|u| !blocked.contains(u));
    let presence = app.presence.lookup(me.user_id, &visible).await?;
    Ok(axum::Json(PresenceResponse { presence }))
}
