//! Direct conversations, groups and the conversation list.

use super::extract::{Authed, Json, Path, Query};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::ListPosition;
use axum::extract::State;
use axum::http::StatusCode;
use confab_proto::limits::{CONVERSATIONS_PAGE_DEFAULT, GROUP_MAX_MEMBERS, PAGE_MAX};
use confab_proto::{
    AddMemberRequest, ConversationId, ConversationResponse, ConversationsResponse,
    CreateGroupRequest, DirectRequest, RenameGroupRequest, SettingsChange, SettingsResponse,
    Timestamp, UserId,
};
use serde::Deserialize;

type Answer = ApiResult<axum::Json<ConversationResponse>>;

/// Adding someone to a group tells whether their id exists, makes them look-up-able and
/// shows their presence: for people the caller never shared a conversation with, it costs a
/// lookup each (`lookup_rate_per_min`), so ids cannot be walked through groups either.
async fn strangers_cost_lookups(app: &AppState, me: UserId, ids: &[UserId]) -> ApiResult<()> {
    let mut strangers = 0u32;
    for &id in ids.iter().take(GROUP_MAX_MEMBERS) {
        if id != me && !app.store.ever_shared(me, id).await? {
            strangers += 1;
        }
    }
    // A group of more strangers than a whole burst takes the whole burst.
    let cost = strangers.min(app.config.lookup_rate_per_min);
    app.lookups.check_n(me, cost).map_err(|ms| {
        app.metrics.rate_limited.inc();
        ApiError::rate_limited_for(
            ms,
            "too many people you have not talked with before; retry after retry_after_ms",
        )
    })
}

pub async fn direct(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<DirectRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConversationResponse>)> {
    // Opening a direct conversation reveals the user and makes you a contact who sees
    // their presence: counted like a lookup.
    super::accounts::limit_lookups(&app, me.user_id)?;
    let (conversation, created) = app.conversations.direct(me.user_id, req.user_id).await?;
    let status = if created {
        // New contacts: each side's open sessions learn the other's status now.
        app.presence.introduce(me.user_id, req.user_id).await;
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
    strangers_cost_lookups(&app, me.user_id, &req.member_ids).await?;
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
    strangers_cost_lookups(&app, me.user_id, &[req.user_id]).await?;
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

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// A page of the caller's conversations; `next_cursor` asks for the next one.
pub async fn list(
    State(app): State<AppState>,
    me: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<ConversationsResponse>> {
    let limit = match q.limit {
        None => CONVERSATIONS_PAGE_DEFAULT,
        Some(0) => return Err(ApiError::invalid("limit must be 1 to 200")),
        Some(n) => n.min(PAGE_MAX),
    };
    let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let (conversations, next) = app.conversations.list(me.user_id, after, limit).await?;
    Ok(axum::Json(ConversationsResponse {
        conversations,
        next_cursor: next.map(|p| format!("{}_{}", p.activity.0, p.id)),
    }))
}

/// A `next_cursor` as this node wrote it: `<activity ms>_<conversation id>`. Any pair of
/// digit runs is a place in the list; one past every 64-bit value is past the end.
fn parse_cursor(cursor: &str) -> ApiResult<ListPosition> {
    let bad = || ApiError::invalid("cursor is not one this server gave out; start without one");
    let part = |s: &str| match s.parse::<i64>() {
        Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        // Only too many digits make a run of digits fail to parse.
        Err(_) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(i64::MAX),
        _ => Err(bad()),
    };
    let (activity, id) = cursor.split_once('_').ok_or_else(bad)?;
    Ok(ListPosition {
        activity: Timestamp(part(activity)?),
        id: ConversationId(part(id)?),
    })
}

pub async fn change_settings(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Json(change): Json<SettingsChange>,
) -> ApiResult<axum::Json<SettingsResponse>> {
    app.messaging.admit(me.user_id)?;
    let settings = app
        .settings
        .change(me.user_id, id, change, &app.conversations)
        .await?;
    Ok(axum::Json(SettingsResponse { settings }))
}

pub async fn get(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
) -> Answer {
    let conversation = app.conversations.get(me.user_id, id).await?;
    Ok(axum::Json(ConversationResponse { conversation }))
}
