//! Signup, login, logout, profiles, user lookup and devices.

use super::extract::{Authed, Json, Path, Query};
use crate::addresses::{ClientIp, limit_key};
use crate::error::{ApiError, ApiResult};
use crate::names::Name;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_proto::{
    ChangePasswordRequest, DeleteAccountRequest, DeviceId, DevicesResponse, LoginRequest,
    LoginResponse, PrivacyChange, PrivacyResponse, SignupRequest, UpdateMeRequest, UserId,
    UserResponse,
};
use serde::Deserialize;

fn limit_auth(app: &AppState, client: ClientIp) -> ApiResult<()> {
    app.auth_limiter.check(limit_key(client.0)).map_err(|ms| {
        app.metrics.rate_limited.inc();
        ApiError::rate_limited(ms)
    })
}

pub async fn signup(
    State(app): State<AppState>,
    client: ClientIp,
    Json(req): Json<SignupRequest>,
) -> ApiResult<(StatusCode, axum::Json<UserResponse>)> {
    limit_auth(&app, client)?;
    let user = app
        .accounts
        .signup(&req.username, &req.password, req.display_name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserResponse { user })))
}

pub async fn login(
    State(app): State<AppState>,
    client: ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<axum::Json<LoginResponse>> {
    limit_auth(&app, client)?;
    Ok(axum::Json(
        app.accounts
            .login(&req.username, &req.password, req.device_name.as_deref())
            .await?,
    ))
}

pub async fn logout(State(app): State<AppState>, me: Authed) -> ApiResult<StatusCode> {
    app.accounts.revoke(me.user_id, me.device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(app): State<AppState>, me: Authed) -> ApiResult<axum::Json<UserResponse>> {
    let user = app
        .store
        .user(me.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok(axum::Json(UserResponse { user }))
}

pub async fn update_me(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<UpdateMeRequest>,
) -> ApiResult<axum::Json<UserResponse>> {
    let name = Name::Display.check(&req.display_name)?;
    let user = app.store.update_display_name(me.user_id, &name).await?;
    Ok(axum::Json(UserResponse { user }))
}

/// What the caller shares: last seen, read receipts.
pub async fn privacy(
    State(app): State<AppState>,
    me: Authed,
) -> ApiResult<axum::Json<PrivacyResponse>> {
    let privacy = app.store.privacy(&[me.user_id]).await?;
    Ok(axum::Json(PrivacyResponse {
        privacy: privacy.first().copied().unwrap_or_default(),
    }))
}

/// Changes what the caller shares; the fields given only.
pub async fn change_privacy(
    State(app): State<AppState>,
    me: Authed,
    Json(change): Json<PrivacyChange>,
) -> ApiResult<axum::Json<PrivacyResponse>> {
    if change == PrivacyChange::default() {
        return Err(ApiError::invalid(
            "nothing to change: give last_seen or read_receipts",
        ));
    }
    app.messaging.admit(me.user_id)?;
    let privacy = app.store.change_privacy(me.user_id, change).await?;
    Ok(axum::Json(PrivacyResponse { privacy }))
}

/// Changes the password; every other device of the caller is logged out.
pub async fn change_password(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    app.accounts
        .change_password(
            me.user_id,
            me.device_id,
            &req.current_password,
            &req.new_password,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the caller's account, given its password: first it leaves every group (with the
/// usual system message), then the account is anonymised and every device logged out.
pub async fn delete_me(
    State(app): State<AppState>,
    me: Authed,
    Json(req): Json<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    app.accounts.confirm(me.user_id, &req.password).await?;
    app.conversations.leave_all(me.user_id).await?;
    app.accounts.delete(me.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything the caller can see, as one JSON file (`AccountExport`), streamed.
pub async fn export(State(app): State<AppState>, me: Authed) -> ApiResult<Response> {
    let chunks = app.exports.start(app.clone(), me.user_id, me.device_id)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"confab-export.json\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// A user the caller shares or shared a conversation with (or the caller): ids cannot be
/// walked to list every account.
pub async fn user(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<UserId>,
) -> ApiResult<axum::Json<UserResponse>> {
    if id != me.user_id && !app.store.ever_shared(me.user_id, id).await? {
        return Err(ApiError::not_found("user"));
    }
    let user = app
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(UserResponse { user }))
}

/// Counts a lookup of someone new against the caller's `lookup_rate_per_min`.
pub(super) fn limit_lookups(app: &AppState, me: UserId) -> ApiResult<()> {
    app.lookups.check(me).map_err(|ms| {
        app.metrics.rate_limited.inc();
        ApiError::rate_limited_for(ms, "too many user lookups; retry after retry_after_ms")
    })
}

#[derive(Deserialize)]
pub struct ByUsername {
    username: String,
}

pub async fn user_by_username(
    State(app): State<AppState>,
    me: Authed,
    Query(q): Query<ByUsername>,
) -> ApiResult<axum::Json<UserResponse>> {
    limit_lookups(&app, me.user_id)?;
    let record = app
        .store
        .user_by_username(&q.username)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(UserResponse { user: record.user }))
}

pub async fn devices(
    State(app): State<AppState>,
    me: Authed,
) -> ApiResult<axum::Json<DevicesResponse>> {
    let devices = app
        .store
        .devices(me.user_id)
        .await?
        .into_iter()
        .map(|d| d.shown_to(me.device_id))
        .collect();
    Ok(axum::Json(DevicesResponse { devices }))
}

pub async fn remove_device(
    State(app): State<AppState>,
    me: Authed,
    Path(id): Path<DeviceId>,
) -> ApiResult<StatusCode> {
    app.accounts.revoke(me.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
