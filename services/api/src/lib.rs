//! nmp's HTTP API: the Provisioning API's write side and single-resource reads, wire-compatible
//! with api-version 2024-02-29-preview, plus `/healthz` and `/openapi.json`.
//!
//! Handlers are a few lines each: extract, convert the wire body into domain values, call the
//! command service, map the outcome. Every failure leaves through `error::ApiError`.

pub mod context;
pub mod error;
pub mod middleware;
pub mod openapi;
pub mod operations;
pub mod routes;
pub mod wire;

use std::future::Future;

pub use axum::http::StatusCode;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use commands::CommandService;
use store::repeatability::RepeatabilityStore;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::routes::dashboard::{FeedEvent, FeedItem};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub commands: CommandService,
    pub verifier: auth::Verifier,
    pub repeatability: RepeatabilityStore,
    /// Whether the Provisioning API's routes are served (the `api` component); `/healthz`,
    /// `/metrics` and `/openapi.json` always are.
    pub serve_api: bool,
    /// Components that report metrics, rendered in order by `GET /metrics`.
    pub metrics: Vec<MetricsRenderer>,
    /// Where `GET /dashboard/feed` takes live events from; `None` answers 503.
    pub feed: Option<tokio::sync::broadcast::Sender<FeedItem>>,
    /// The CloudEvents `source` of this installation's events (`urn:nmp:<NATS prefix>`), as
    /// the relay publishes them and the audit export writes them.
    pub event_source: String,
    /// The Teams backend, asked for capability plans and available capabilities; `None` (no
    /// `NMP_BACKEND_URL`) answers those 503 `BackendNotConfigured`.
    pub backend: Option<std::sync::Arc<dyn backend::Backend>>,
}

/// Appends a component's metrics, in the Prometheus text format, to the page.
pub type MetricsRenderer = std::sync::Arc<dyn Fn(&mut String) + Send + Sync>;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::accounts::router())
        .merge(routes::numbers::router())
        .merge(routes::consents::router())
        .merge(routes::failures::router())
        .merge(routes::lists::router())
        .merge(routes::dashboard::router())
        .merge(routes::audit::router())
        // Innermost first: repeatability needs the caller, so authentication runs before it;
        // api-version is checked once the caller is known.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::repeatability,
        ))
        .layer(axum::middleware::from_fn(middleware::require_api_version))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    let api = if state.serve_api { api } else { Router::new() };
    Router::new()
        .merge(routes::system::router())
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(context::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(
            middleware::echo_client_request_id,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the request could not be completed; it is safe to retry",
            )
            .into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such resource or operation",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the resource does not support this method",
    )
    .into_response()
}

/// Serves the API on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Open live feeds end when shutdown starts; the server waits for open responses.
    let feed = state.feed.clone();
    let shutdown = async move {
        shutdown.await;
        if let Some(feed) = feed {
            let _ = feed.send(FeedItem::ShuttingDown);
        }
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
