//! Full-text search over what the caller may see.

use super::extract::{Authed, Query};
use crate::error::{ApiError, ApiResult};
use crate::search::Ask;
use crate::state::AppState;
use axum::extract::State;
use confab_proto::SearchResponse;

/// A page of messages matching `q`, newest first or by relevance, counted against the
/// caller's `search_rate_per_min`.
pub async fn search(
    State(app): State<AppState>,
    me: Authed,
    Query(ask): Query<Ask>,
) -> ApiResult<axum::Json<SearchResponse>> {
    app.searches.check(me.user_id).map_err(|ms| {
        ApiError::rate_limited_for(ms, "too many searches; retry after retry_after_ms")
    })?;
    let page = app
        .search
        .search(me.user_id, ask, &app.conversations)
        .await?;
    Ok(axum::Json(page))
}
