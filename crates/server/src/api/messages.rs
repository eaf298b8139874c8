//! History, sending over HTTP, read watermarks, and inbox sync for HTTP-only devices.

use super::extract::{Authed, Json, Path, Query};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use confab_proto::limits::{PAGE_DEFAULT, PAGE_MAX, SEQ_MAX};
use confab_proto::{
    ConversationId, MessageResponse, MessagesResponse, ReadRequest, SendRequest, SyncResponse,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct HistoryQuery {
    before_seq: Option<u64>,
    after_seq: Option<u64>,
    limit: Option<usize>,
}

fn page_limit(limit: Option<usize>) -> ApiResult<usize> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(0) => Err(ApiError::invalid("limit must be 1 to 200")),
        Some(n) => Ok(n.min(PAGE_MAX)),
    }
}

/// A sequence number from a query: past [`SEQ_MAX`] no entry can exist, so it is the
/// client's mistake, not something to look up.
fn seq_param(name: &str, value: Option<u64>) -> ApiResult<Option<u64>> {
    match value {
        Some(v) if v > SEQ_MAX => Err(ApiError::invalid(format!(
            "{name} must be at most {SEQ_MAX}"
        ))),
        v => Ok(v),
    }
}

/// A page of history, ascending by seq: the newest page, the page before `before_seq`, or
/// the page after `after_seq`. A member sees only the messages from when they joined until
/// they left.
pub async fn history(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<MessagesResponse>> {
    let limit = page_limit(q.limit)?;
    let after = seq_param("after_seq", q.after_seq)?;
    let before = seq_param("before_seq", q.before_seq)?;
    let messages = app
        .conversations
        .history(me.user_id, id, after, before, limit)
        .await?;
    Ok(axum::Json(MessagesResponse { messages }))
}

/// One message as it stands now (what a reply quotes), if the caller may see it.
pub async fn message(
    State(app): State<AppState>,
    me: Authed,
    Path((id, seq)): Path<(ConversationId, u64)>,
) -> ApiResult<axum::Json<MessageResponse>> {
    let seq = seq_param("seq", Some(seq))?.unwrap_or(0);
    let message = app
        .conversations
        .history(
            me.user_id,
            id,
            Some(seq.saturating_sub(1)),
            Some(seq + 1),
            1,
        )
        .await?
        .pop()
        .filter(|m| m.seq == seq)
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok(axum::Json(MessageResponse { message }))
}

/// Sends a message, or a change to one: 201 when stored now, 200 with the original for a retried client_msg_id.
pub async fn send(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Json(req): Json<SendRequest>,
) -> ApiResult<(StatusCode, axum::Json<MessageResponse>)> {
    let sent = app.messaging.send(me.user_id, id, req).await?;
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(MessageResponse {
            message: sent.message,
        }),
    ))
}

pub async fn read(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<ConversationId>,
    Json(req): Json<ReadRequest>,
) -> ApiResult<StatusCode> {
    app.receipts.read(me.user_id, id, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct SyncQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Inbox entries after `after` for devices without a WebSocket. Asking from `after` also
/// acknowledges everything up to it, moving the device's cursor.
pub async fn sync(
    State(app): State<AppState>,
    me: Authed,
    Query(q): Query<SyncQuery>,
) -> ApiResult<axum::Json<SyncResponse>> {
    let after = seq_param("after", q.after)?.unwrap_or(0);
    let limit = page_limit(q.limit.or(Some(PAGE_MAX)))?;
    let head = app.store.inbox_head(me.user_id).await?;
    let entries = app.store.inbox_after(me.user_id, after, limit).await?;
    if after > 0 {
        app.cursors.note(me.device_id, after.min(head));
    }
    Ok(axum::Json(SyncResponse {
        entries,
        inbox_seq: head,
    }))
}
