//! Health and self-description: `/healthz` and `/openapi.json`, open to all.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
}

/// 200 once nmp serves and reaches its database; 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1")
        .execute(state.commands.store().pool())
        .await
    {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check cannot reach the database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::ApiDoc::openapi()).into_response()
}
