//! Direct conversations, groups and the conversation list.

use super::extract::{Authed, Json, Path};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use confab_proto::{
    AddMemberRequest, ConversationId, ConversationResponse, ConversationsResponse,
    CreateGroupRequest, DirectRequest, RenameGroupRequest, UserId,
};

type Answer = ApiResult<axum::Json<ConversationResponse>>;

pub async fn direct(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<DirectRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConversationResponse>)> {
    let (conversation, created) = app.conversations.direct(me.user_id, req.user_id).await?;
    let status = if created {
        // New contacts: each side's open sessions learn the other's status now.
        app.presence.introduce(me.user_id, req.user_id);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(ConversationResponse { conversation })))
}

pub async fn create_group(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<CreateGroupRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConversationResponse>)> {
    let conversation = app
        .conversations
        .create_group(me.user_id, &req.title, &req.member_ids)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ConversationResponse { conversation }),
    ))
}

pub async fn rename_group(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Json(req): Json<RenameGroupRequest>,
) -> Answer {
    let conversation = app.conversations.rename(me.user_id, id, &req.title).await?;
    Ok(axum::Json(ConversationResponse { conversation }))
}

pub async fn add_member(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Json(req): Json<AddMemberRequest>,
) -> Answer {
    let conversation = app
        .conversations
        .add_member(me.user_id, id, req.user_id)
        .await?;
    Ok(axum::Json(ConversationResponse { conversation }))
}

pub async fn remove_member(
    State(app): State<AppState>,
    me: Authed,
    Path((id, user)): Path<(ConversationId, UserId)>,
) -> ApiResult<StatusCode> {
    app.conversations
        .remove_member(me.user_id, id, user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(app): State<AppState>,
    me: Authed,
) -> ApiResult<axum::Json<ConversationsResponse>> {
    let conversations = app.conversations.list(me.user_id).await?;
    Ok(axum::Json(ConversationsResponse { conversations }))
}

pub async fn get(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
) -> Answer {
    let conversation = app.conversations.get(me.user_id, id).await?;
    Ok(axum::Json(ConversationResponse { conversation }))
}
