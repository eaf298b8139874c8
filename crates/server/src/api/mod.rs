//! The HTTP API under `/v1`, plus `/healthz` and `/metrics`. One file per resource; each
//! handler checks its input, calls a service, and answers with the contract's bodies.

mod accounts;
mod blocks;
mod conversations;
mod extract;
mod messages;
mod ops;
mod push;
mod search;

use crate::error::ApiError;
use crate::gateway;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use confab_proto::limits::FRAME_MAX_BYTES;
use std::time::Duration;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

/// The routes of `metrics_listen`: `/metrics` and `/healthz`.
pub fn metrics_routes(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics_only))
        .route("/healthz", get(ops::healthz))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(app)
}

/// Every route.
pub fn routes(app: AppState) -> Router {
    Router::new()
        .route("/v1/auth/signup", post(accounts::signup))
        .route("/v1/auth/login", post(accounts::login))
        .route("/v1/auth/logout", post(accounts::logout))
        .route(
            "/v1/me",
            get(accounts::me)
                .patch(accounts::update_me)
                .delete(accounts::delete_me),
        )
        .route("/v1/me/export", get(accounts::export))
        .route("/v1/me/password", post(accounts::change_password))
        .route(
            "/v1/me/privacy",
            get(accounts::privacy).patch(accounts::change_privacy),
        )
        .route("/v1/users", get(accounts::user_by_username))
        .route("/v1/users/{id}", get(accounts::user))
        .route("/v1/devices", get(accounts::devices))
        .route("/v1/devices/{id}", delete(accounts::remove_device))
        .route("/v1/blocks", get(blocks::list))
        .route(
            "/v1/blocks/{user_id}",
            put(blocks::block).delete(blocks::unblock),
        )
        .route("/v1/conversations", get(conversations::list))
        .route("/v1/conversations/direct", post(conversations::direct))
        .route("/v1/conversations/{id}", get(conversations::get))
        .route(
            "/v1/conversations/{id}/settings",
            patch(conversations::change_settings),
        )
        .route("/v1/groups", post(conversations::create_group))
        .route("/v1/groups/{id}", patch(conversations::rename_group))
        .route("/v1/groups/{id}/members", post(conversations::add_member))
        .route(
            "/v1/groups/{id}/members/{user_id}",
            delete(conversations::remove_member),
        )
        .route(
            "/v1/conversations/{id}/messages",
            get(messages::history).post(messages::send),
        )
        .route(
            "/v1/conversations/{id}/messages/{seq}",
            get(messages::message),
        )
        .route("/v1/conversations/{id}/read", post(messages::read))
        .route("/v1/sync", get(messages::sync))
        .route("/v1/search", get(search::search))
        .route("/v1/presence", get(ops::presence))
        .route("/v1/discovery", get(ops::discovery))
        .route("/v1/push/vapid-public-key", get(push::vapid_public_key))
        .route("/v1/push/subscriptions", post(push::subscribe))
        .route("/v1/push/subscriptions/{id}", delete(push::unsubscribe))
        .route("/v1/ws", get(gateway::upgrade))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        // The web client's files, each at its own path, and `/`; nothing else, so unknown
        // paths (under /v1 too) still get the JSON 404 below.
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            // 405 keeps its HTTP meaning; the body is the usual error shape.
            let mut answer =
                ApiError::invalid("this route does not take that method; see docs/openapi.yaml")
                    .into_response();
            *answer.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            answer
        })
        // A request body holds at most one 99,999-character message, like a frame.
        .layer(DefaultBodyLimit::max(FRAME_MAX_BYTES))
        // A body that trickles in is cut off (the handler answers 400); headers and idle
        // connections are bounded where connections are accepted (`connections.rs`).
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            app.config.http_body_timeout_ms,
        )))
        // Faults are logged at ERROR where they happen; routine 5xx answers are not.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(app)
}
