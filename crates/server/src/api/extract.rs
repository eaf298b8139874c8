//! Extractors that answer bad input in the contract's error shape, and `Authed`, the
//! caller behind a bearer token.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use confab_proto::{DeviceId, UserId};
use serde::de::DeserializeOwned;

/// A JSON body; a bad one is `invalid_request` (too large: also `invalid_request`, 400).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::invalid(
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}

/// Path parameters; a bad one (an id that is not a number) is `invalid_request`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| ApiError::invalid(e.body_text()))
    }
}

/// Query parameters; bad ones are `invalid_request`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| ApiError::invalid(e.body_text()))
    }
}

/// The user and device behind the request's `Authorization: Bearer` token.
#[derive(Debug, Clone, Copy)]
pub struct Authed {
    /// Who.
    pub user_id: UserId,
    /// Which device.
    pub device_id: DeviceId,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(ApiError::unauthorized)?;
        let device = app.accounts.authenticate(token.trim()).await?;
        app.cursors.touch(&device);
        Ok(Authed {
            user_id: device.user_id,
            device_id: device.id,
        })
    }
}
