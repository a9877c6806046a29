//! Start-up of nmp as a library, so tests start it exactly as `nmp serve` does: settings in,
//! a running server out.

pub mod settings;

use std::future::Future;

use anyhow::Context;
use api::AppState;
use commands::CommandService;
use store::EventStore;
use store::repeatability::RepeatabilityStore;
use tokio::net::TcpListener;

pub use settings::{KeySource, LogFormat, Settings};

/// The components `nmp serve` can run in this build.
pub const COMPONENTS: &[&str] = &["api"];

/// Connects to the database (creating and migrating it) and builds the API's state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<(AppState, KeySource)> {
    let (verifier, key_source) = settings.jwt.verifier(&settings.http_addr)?;
    let pool = store::connect(&settings.database_url, settings.database_max_connections)
        .await
        .context("cannot open the event store")?;
    let state = AppState {
        commands: CommandService::new(EventStore::new(pool.clone())),
        verifier,
        repeatability: RepeatabilityStore::new(pool),
    };
    Ok((state, key_source))
}

/// Runs the API on `listener` until `shutdown` resolves, expiring old repeatability answers on
/// the side.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let repeatability = state.repeatability.clone();
    let janitor = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            match repeatability
                .expire(api::middleware::REPEATABILITY_RETENTION)
                .await
            {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "expired repeatable-request answers"),
                Err(error) => tracing::warn!(%error, "cannot expire repeatable-request answers"),
            }
        }
    });
    let served = api::serve(listener, state, shutdown).await;
    janitor.abort();
    served.context("HTTP server failed")
}
