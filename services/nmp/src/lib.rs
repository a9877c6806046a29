//! Start-up of nmp as a library, so tests start it exactly as `nmp serve` does: settings in,
//! running components out. [`Runtime`] puts the parts below together and supervises them.

pub mod feed;
pub mod runtime;
pub mod settings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::AppState;
use commands::CommandService;
use relay::{Relay, RelaySettings, RelayStatus, StreamError, StreamSettings};
use store::EventStore;
use store::repeatability::RepeatabilityStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use runtime::{Runtime, Stopper};
pub use settings::{KeySource, LogFormat, NatsSettings, Settings};

/// The components `nmp serve` can run in this build. `api` serves the Provisioning API over
/// HTTP and NATS; `saga` provisions the Teams backend at `backend_url`, `sync` records its
/// consents and civic addresses.
pub const COMPONENTS: &[&str] = &["api", "relay", "projector", "saga", "sync", "portal"];

/// Which components to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    pub api: bool,
    pub relay: bool,
    pub projector: bool,
    pub saga: bool,
    pub sync: bool,
    /// The web portal for operator staff, under `/portal` on the API's port.
    pub portal: bool,
}

impl Components {
    pub const ALL: Components = Components {
        api: true,
        relay: true,
        projector: true,
        saga: true,
        sync: true,
        portal: true,
    };

    pub const NONE: Components = Components {
        api: false,
        relay: false,
        projector: false,
        saga: false,
        sync: false,
        portal: false,
    };

    /// Parses `--components`; an empty list means all of them.
    pub fn parse(names: &[String]) -> anyhow::Result<Components> {
        if names.is_empty() {
            return Ok(Components::ALL);
        }
        let mut components = Components::NONE;
        for name in names {
            match name.trim() {
                "api" => components.api = true,
                "relay" => components.relay = true,
                "projector" => components.projector = true,
                "saga" => components.saga = true,
                "sync" => components.sync = true,
                "portal" => components.portal = true,
                other => anyhow::bail!(
                    "unknown component '{other}'; this build runs: {}",
                    COMPONENTS.join(", ")
                ),
            }
        }
        Ok(components)
    }
}

/// The longest an audit export may run.
const EXPORT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Connects to the database (creating and migrating it) and builds the HTTP state.
pub async fn build_state(
    settings: &Settings,
    components: Components,
) -> anyhow::Result<(AppState, KeySource)> {
    let (verifier, key_source) = settings
        .jwt
        .verifier(&settings.http_addr, &settings.nats.url)?;
    let pool = store::connect(&settings.database_url, settings.database_max_connections)
        .await
        .context("cannot open the event store")?;
    let exports = store::connect_reader(
        &settings.database_url,
        api::Exports::CONCURRENT as u32,
        EXPORT_STATEMENT_TIMEOUT,
    )
    .context("cannot set up the audit export's connections")?;
    let state = AppState {
        exports: api::Exports::new(exports),
        feeds: std::sync::Arc::new(tokio::sync::Semaphore::new(api::MAX_FEEDS)),
        public_url: settings.public_url.clone(),
        repeatability_lease: api::middleware::REPEATABILITY_LEASE,
        feed_history: None,
        serve_portal: components.portal,
        development_secret: (key_source == KeySource::Development)
            .then(|| auth::DEVELOPMENT_SECRET.to_string()),
        commands: CommandService::new(EventStore::new(pool.clone())),
        verifier,
        repeatability: RepeatabilityStore::new(pool),
        serve_api: components.api,
        feed: None,
        event_source: format!("urn:nmp:{}", settings.nats.prefix),
        backend: backend_client(settings)?,
        oidc: oidc_client(settings, &key_source)?,
        number_figures: api::portal::NumberFigures::default(),
        readiness: None,
    };
    Ok((state, key_source))
}

/// The portal's OpenID Connect client, when an issuer is set. Its access tokens are verified
/// with `[jwt]`'s keys, so those must be the provider's.
pub fn oidc_client(
    settings: &Settings,
    key_source: &KeySource,
) -> anyhow::Result<Option<std::sync::Arc<api::portal::OidcClient>>> {
    let oidc = &settings.oidc;
    let (Some(issuer), Some(client_id)) = (&oidc.issuer, &oidc.client_id) else {
        return Ok(None);
    };
    if *key_source != KeySource::Jwks {
        anyhow::bail!(
            "NMP_OIDC_ISSUER is set but tokens are not verified with that provider's keys: set \
             NMP_JWT_JWKS_URL (its jwks_uri), NMP_JWT_ISSUER and NMP_JWT_AUDIENCE to the issuer \
             and audience of the access tokens it gives nmp"
        );
    }
    let client = api::portal::OidcClient::new(api::portal::OidcConfig {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret: oidc.client_secret.clone(),
        scopes: oidc.scopes.clone(),
        name: oidc.name.clone(),
    })
    .context("cannot set up the portal's OpenID Connect client")?;
    Ok(Some(std::sync::Arc::new(client)))
}

/// The client of the Teams backend at `backend_url`, when one is set.
pub fn backend_client(
    settings: &Settings,
) -> anyhow::Result<Option<std::sync::Arc<dyn backend::Backend>>> {
    let Some(url) = &settings.backend_url else {
        return Ok(None);
    };
    let client = backend::client::HttpBackend::new(url, backend::client::Timeouts::default())
        .with_context(|| {
            format!(
                "invalid NMP_BACKEND_URL (backend_url) {}",
                settings::redact_url(url)
            )
        })?;
    Ok(Some(std::sync::Arc::new(client)))
}

/// The event stream's settings from nmp's.
pub fn stream_settings(nats: &NatsSettings) -> anyhow::Result<StreamSettings> {
    let mut stream = StreamSettings::new(&nats.prefix)?;
    stream.replicas = nats.replicas;
    stream.duplicate_window = Duration::from_secs(nats.duplicate_window_secs);
    Ok(stream)
}

/// One NATS connection for the relay and the NATS API. It keeps trying in the background, so
/// nmp starts (and takes commands over HTTP) while NATS is down.
pub async fn connect_nats(nats: &NatsSettings) -> anyhow::Result<async_nats::Client> {
    relay::connect_nats(&nats.url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", settings::redact_url(&nats.url)))
}

/// Starts the NATS API in the background once NATS answers.
pub fn start_nats_api(
    nats: &NatsSettings,
    client: async_nats::Client,
    state: AppState,
) -> anyhow::Result<JoinHandle<()>> {
    relay::stream::validate_prefix(&nats.prefix)?;
    let settings = nats_api::NatsApiSettings::new(&nats.prefix);
    Ok(tokio::spawn(async move {
        let mut pause = Duration::from_millis(500);
        loop {
            match nats_api::start(client.clone(), state.clone(), settings.clone()).await {
                Ok(task) => {
                    tracing::info!(prefix = %settings.prefix, "serving the NATS API");
                    if let Err(error) = task.await {
                        tracing::error!(%error, "the NATS API stopped");
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot start the NATS API yet"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }))
}

/// Starts the relay in the background: it sets up the stream once NATS answers (nmp keeps
/// accepting commands meanwhile), then publishes for as long as the task runs. Commits through
/// `store` (and its clones) wake it at once; other writers' events are polled for.
pub async fn start_relay(
    nats: &NatsSettings,
    client: async_nats::Client,
    store: &EventStore,
) -> anyhow::Result<(JoinHandle<()>, Arc<RelayStatus>)> {
    let stream = stream_settings(nats)?;
    let jetstream = async_nats::jetstream::new(client);
    let relay = Relay::new(
        store.pool().clone(),
        jetstream.clone(),
        RelaySettings::new(stream.clone()),
    )
    .with_wake(store.appended_signal());
    let status = relay.status();
    let task = tokio::spawn(async move {
        let mut pause = Duration::from_millis(500);
        loop {
            match relay::ensure_stream(&jetstream, &stream).await {
                Ok(_) => break,
                Err(error @ (StreamError::StorageMismatch { .. } | StreamError::Update { .. })) => {
                    tracing::error!(%error, "the event stream does not match the settings; nothing is published until it does");
                    pause = Duration::from_secs(30);
                }
                Err(error) => tracing::warn!(%error, "NATS is not ready; events wait in the store"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
        relay.run().await;
    });
    Ok((task, status))
}

/// Starts the projector in the background: it builds the read tables from the installation's
/// stream, waiting for the stream if the relay has not created it yet.
pub fn start_projector(
    nats: &NatsSettings,
    client: async_nats::Client,
    store: EventStore,
) -> anyhow::Result<(JoinHandle<()>, Arc<projections::ProjectorStatus>)> {
    let stream = stream_settings(nats)?;
    let settings = projections::ProjectorSettings::new(&stream.stream_name());
    let projector =
        projections::Projector::new(store, async_nats::jetstream::new(client), settings);
    let status = projector.status();
    Ok((tokio::spawn(projector.run()), status))
}

/// The backend as the saga and the sync call it: the client of `backend_url` behind one
/// budget of `saga.calls_per_minute` calls, shared by both.
pub struct ProvisioningBackend {
    pub backend: Arc<dyn backend::Backend>,
    /// The budget's counters are the backend calls' metrics.
    pub budget: Arc<saga::CallBudget>,
}

/// The [`ProvisioningBackend`] of the settings; `None` without a `backend_url`.
pub fn provisioning_backend(settings: &Settings) -> anyhow::Result<Option<ProvisioningBackend>> {
    let Some(client) = backend_client(settings)? else {
        return Ok(None);
    };
    let budget = Arc::new(saga::CallBudget::per_minute(settings.saga.calls_per_minute));
    let backend: Arc<dyn backend::Backend> =
        Arc::new(saga::LimitedBackend::new(client, budget.clone()));
    Ok(Some(ProvisioningBackend { backend, budget }))
}

/// The saga's settings from nmp's.
pub fn saga_settings(
    nats: &NatsSettings,
    saga: &settings::SagaSettings,
) -> anyhow::Result<saga::SagaSettings> {
    let stream = stream_settings(nats)?;
    let mut settings = saga::SagaSettings::new(&stream.stream_name());
    settings.workers = saga.workers.max(1);
    settings.order_poll = Duration::from_millis(saga.order_poll_ms);
    settings.lease = Duration::from_secs(saga.lease_secs.max(1));
    Ok(settings)
}

/// Starts the provisioning saga in the background: it follows the installation's stream
/// (waiting for it if the relay has not created it yet) and provisions `backend`.
pub fn start_saga(
    settings: saga::SagaSettings,
    client: async_nats::Client,
    commands: CommandService,
    backend: Arc<dyn backend::Backend>,
) -> (JoinHandle<()>, Arc<saga::SagaStatus>) {
    let saga = saga::Saga::new(
        commands,
        backend,
        async_nats::jetstream::new(client),
        settings,
    );
    let status = saga.status();
    (tokio::spawn(saga.run()), status)
}

/// Starts the backend sync in the background: a pass over the backend's consents and civic
/// addresses every `interval`.
pub fn start_sync(
    interval: Duration,
    commands: CommandService,
    backend: Arc<dyn backend::Backend>,
) -> (JoinHandle<()>, Arc<saga::SyncStatus>) {
    let sync = saga::BackendSync::new(commands, backend, interval);
    let status = sync.status();
    (tokio::spawn(sync.run()), status)
}

/// `nmp projections rebuild`: rebuilds the named read tables (all when none is named) and
/// prints what each took.
pub async fn rebuild_projections(settings: &Settings, names: &[String]) -> anyhow::Result<()> {
    let targets = if names.is_empty() {
        projections::Target::ALL.to_vec()
    } else {
        names
            .iter()
            .map(|name| {
                projections::Target::parse(name).with_context(|| {
                    format!(
                        "unknown read model '{name}'; choose accounts, numbers, consents or audit"
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let pool = store::connect(&settings.database_url, 4)
        .await
        .context("cannot open the event store")?;
    let store = EventStore::new(pool);
    for target in targets {
        let report = projections::rebuild(&store, target)
            .await
            .with_context(|| format!("rebuilding {}", target.name()))?;
        let seconds = report.elapsed.as_secs_f64();
        println!(
            "{}: {} events replayed, {} rows, {} caught up during the swap, {:.2} s ({:.0} events/s)",
            target.name(),
            report.events,
            report.rows,
            report.caught_up,
            seconds,
            report.events as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

/// Serves HTTP on `listener` until `shutdown` resolves, expiring old repeatability answers on
/// the side.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let repeatability = state.repeatability.clone();
    let janitor = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
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
