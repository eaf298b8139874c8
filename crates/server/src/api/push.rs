//! Push subscriptions of the calling device, and the VAPID key browsers subscribe with.

use super::extract::{Authed, Json, Path};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use confab_proto::{
    PushSubscriptionId, PushSubscriptionRequest, PushSubscriptionResponse, VapidKeyResponse,
};

pub async fn vapid_public_key(State(app): State<AppState>) -> axum::Json<VapidKeyResponse> {
    axum::Json(VapidKeyResponse {
        key: app.push.vapid_public_key().to_owned(),
    })
}

pub async fn subscribe(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<PushSubscriptionRequest>,
) -> ApiResult<(StatusCode, axum::Json<PushSubscriptionResponse>)> {
    let record = app.push.subscribe(me.user_id, me.device_id, req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(PushSubscriptionResponse { id: record.id }),
    ))
}

pub async fn unsubscribe(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<PushSubscriptionId>,
) -> ApiResult<StatusCode> {
    app.push.unsubscribe(me.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
