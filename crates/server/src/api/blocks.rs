//! The caller's block list.

use super::extract::{Authed, Path};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use confab_proto::{BlocksResponse, UserId};

pub async fn list(
    State(app): State<AppState>,
    me: Authed,
) -> ApiResult<axum::Json<BlocksResponse>> {
    let blocks = app.blocks.list(me.user_id).await?;
    Ok(axum::Json(BlocksResponse { blocks }))
}

pub async fn block(
    State(app): State<AppState>,
    me: Authed,
    Path(user): Path<UserId>,
) -> ApiResult<StatusCode> {
    // Each block tells both people's sessions: counted as a write, so it cannot flood.
    app.messaging.admit(me.user_id)?;
    app.blocks.block(me.user_id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unblock(
    State(app): State<AppState>,
    me: Authed,
    Path(user): Path<UserId>,
) -> ApiResult<StatusCode> {
    app.messaging.admit(me.user_id)?;
    app.blocks.unblock(me.user_id, user, &app.presence).await?;
    Ok(StatusCode::NO_CONTENT)
}
