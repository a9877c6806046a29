//! nmp's HTTP API: the Provisioning API's write side and single-resource reads, wire-compatible
//! with api-version 2024-02-29-preview, plus `/healthz` and `/openapi.json`.
//!
//! Handlers are a few lines each: extract, convert the wire body into domain values, call the
//! command service, map the outcome. Every failure leaves through `error::ApiError`.

pub mod context;
pub mod error;
pub mod import;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod operations;
pub mod portal;
pub mod routes;
pub mod wire;

use std::future::Future;

pub use axum::http::StatusCode;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use commands::CommandService;
use store::repeatability::RepeatabilityStore;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::routes::dashboard::{FeedEvent, FeedHistory, FeedItem};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub commands: CommandService,
    pub verifier: auth::Verifier,
    pub repeatability: RepeatabilityStore,
    /// Whether the Provisioning API's routes are served (the `api` component); `/healthz`,
    /// `/metrics` and `/openapi.json` always are.
    pub serve_api: bool,
    /// Where `GET /dashboard/feed` takes live events from; `None` answers 503.
    pub feed: Option<tokio::sync::broadcast::Sender<FeedItem>>,
    /// The CloudEvents `source` of this installation's events (`urn:nmp:<NATS prefix>`), as
    /// the relay publishes them and the audit export writes them.
    pub event_source: String,
    /// The Teams backend, asked for capability plans and available capabilities; `None` (no
    /// `NMP_BACKEND_URL`) answers those 503 `BackendNotConfigured`.
    pub backend: Option<std::sync::Arc<dyn backend::Backend>>,
    /// What audit exports run on: connections of their own and a cap on how many run at once.
    pub exports: Exports,
    /// One slot per open live feed (`GET /dashboard/feed`), at most [`MAX_FEEDS`].
    pub feeds: std::sync::Arc<tokio::sync::Semaphore>,
    /// Where clients reach nmp (`NMP_PUBLIC_URL`, `https://nmp.example.com`): links in answers
    /// (`nextLink`) start with it. `None`: from the request's `Host` and `X-Forwarded-Proto`.
    pub public_url: Option<String>,
    /// How long a repeatable request's reservation lasts without a heartbeat
    /// (`middleware::REPEATABILITY_LEASE`).
    pub repeatability_lease: std::time::Duration,
    /// Where a reconnecting live feed reads the events it missed (`Last-Event-ID`); `None`:
    /// the feed only goes on live.
    pub feed_history: Option<std::sync::Arc<dyn routes::dashboard::FeedHistory>>,
    /// Whether the portal (`/portal`) is served (the `portal` component).
    pub serve_portal: bool,
    /// The development secret, when tokens are verified with it (loopback only): the portal
    /// then offers a development sign-in.
    pub development_secret: Option<String>,
    /// The OpenID Connect provider the portal signs in with (`NMP_OIDC_ISSUER`); `None`: the
    /// portal offers no such sign-in.
    pub oidc: Option<std::sync::Arc<portal::OidcClient>>,
    /// The portal home page's counts of numbers, kept while nothing changes.
    pub number_figures: portal::NumberFigures,
    /// What `GET /readyz` asks (nmp's runtime: database, NATS, migrations, components);
    /// `None`: only the database is checked.
    pub readiness: Option<std::sync::Arc<dyn routes::system::Readiness>>,
}

/// Live feeds open at once on one instance.
pub const MAX_FEEDS: usize = 256;

/// Audit exports copy every event, so they run apart from everything else: on a small pool of
/// their own (with a statement timeout), at most `permits` at once, each ended when its client
/// stops reading for `idle` — so exports cannot starve the API, projector and saga of
/// connections, nor hold a cursor open for a client that went away.
#[derive(Clone)]
pub struct Exports {
    pub pool: sqlx::PgPool,
    pub permits: std::sync::Arc<tokio::sync::Semaphore>,
    pub idle: std::time::Duration,
}

impl Exports {
    /// At most this many exports at once (and as many connections).
    pub const CONCURRENT: usize = 2;
    /// An export ends when its client has taken nothing for this long.
    pub const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

    /// Exports on `pool`, which should hold `CONCURRENT` connections of their own.
    pub fn new(pool: sqlx::PgPool) -> Self {
        Exports {
            pool,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::CONCURRENT)),
            idle: Self::IDLE,
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    nmp_metrics::install();
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
    let portal = if state.serve_portal {
        portal::router(&state)
    } else {
        Router::new()
    };
    Router::new()
        .merge(routes::system::router())
        .merge(api)
        .merge(portal)
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
                "the request could not be completed; its changes may or may not have been made",
            )
            .with_outcome_unknown()
            .into_response()
        }))
        // Outside the panic catcher, so that requests answered 500 for a panic are counted.
        .layer(axum::middleware::from_fn(metrics::track_requests))
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
    serve_with(listener, state, ServerLimits::default(), shutdown).await
}

/// What one client may hold of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (a connection that sends nothing, or
    /// dribbles, is closed).
    pub header_read: std::time::Duration,
    /// Time a client may leave between parts of a request's body.
    pub body_read: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read: std::time::Duration::from_secs(10),
            body_read: std::time::Duration::from_secs(30),
        }
    }
}

/// Serves HTTP/1.1 on `listener` within `limits` until `shutdown`, then waits for the open
/// connections to finish their requests.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let feed = state.feed.clone();
    let app = app(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read,
    ));
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
        });
    }
    // Open live feeds end when shutdown starts; open requests are waited for.
    if let Some(feed) = feed {
        let _ = feed.send(FeedItem::ShuttingDown);
    }
    graceful.shutdown().await;
    Ok(())
}
