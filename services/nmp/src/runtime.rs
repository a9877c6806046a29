//! The composition root. [`Runtime`] builds nmp from [`Settings`] and a set of [`Components`],
//! runs every component as a supervised task, answers `/readyz` from what it supervises, and
//! stops everything gracefully. `nmp serve` and the tests start nmp through it.
//!
//! Supervision: each component is a task whose end is awaited. Components retry what an outage
//! of PostgreSQL or NATS makes fail on their own (the relay, projector, saga, sync and NATS API
//! start over with a back-off), so a component's task ending, by error or panic, is a fault nmp
//! cannot mend in place. There is no restart policy inside the process: the fault is logged
//! with its error, `/readyz` names the component as failed, the other components are stopped
//! gracefully, and [`Runtime::wait`] returns the error, so `nmp serve` exits non-zero and the
//! orchestrator restarts it.
//!
//! Graceful stop (on [`Stopper::stop`], which `nmp serve` calls on SIGTERM or Ctrl-C, or after a
//! fault), within `shutdown_secs`:
//! 1. `/readyz` answers 503 (`shutdown`), so load balancers stop sending work.
//! 2. The HTTP server stops accepting connections and finishes the requests it holds (a write is
//!    answered 2xx only after its events are committed); the NATS API stops taking requests. The
//!    relay, projector and saga keep running meanwhile, publishing what those requests commit.
//! 3. The other components are cancelled. Each is written so that cancelling it loses nothing:
//!    the relay moves its checkpoint only after JetStream acknowledged a batch (the next relay
//!    publishes the rest, deduplicated by message id); the projector and the saga acknowledge a
//!    message only after its effect is committed (JetStream redelivers the rest), and the
//!    saga's claims on work run out after their lease.
//! 4. The database pool is closed and NATS flushed.
//!
//! Open requests still running when the time is up are cut off: their clients got no answer,
//! so nothing they sent was acknowledged.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use api::AppState;
use api::routes::system::{Readiness, ReadinessReport};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Components, KeySource, Settings};

/// The schema's migrations as this build knows them: `/readyz` checks they are applied.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../store/migrations");

/// How long `/readyz` waits for PostgreSQL.
const READY_DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// The HTTP server's name among the components.
const HTTP: &str = "http";

/// A component's work: runs until cancelled (dropped); ending at all, `Ok` or `Err`, is a fault.
pub type ComponentTask = BoxFuture<'static, anyhow::Result<()>>;

/// What a component says about how far behind it is.
type LagProbe = Box<dyn Fn() -> Lag + Send + Sync>;

/// How far behind a component is.
pub enum Lag {
    /// Items waiting (events not yet published or projected, work not yet done).
    Behind { count: u64, unit: &'static str },
    /// This process's component stands by while another one is active.
    Standby,
    /// Not measured (yet).
    Unknown,
}

/// A component's state as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    Running,
    /// Ended by error or panic, with the error.
    Failed(String),
    /// Stopped by a graceful stop.
    Stopped,
}

struct ComponentHealth {
    name: String,
    state: ComponentState,
    lag: Option<LagProbe>,
}

/// What the runtime knows of itself: the components' states and how to reach PostgreSQL and
/// NATS. It answers `/readyz`.
pub struct Health {
    components: Mutex<Vec<ComponentHealth>>,
    stopping: AtomicBool,
    pool: sqlx::PgPool,
    nats: Option<async_nats::Client>,
}

impl Health {
    fn new(pool: sqlx::PgPool, nats: Option<async_nats::Client>) -> Self {
        Health {
            components: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            pool,
            nats,
        }
    }

    fn add(&self, name: &str, lag: Option<LagProbe>) {
        self.lock().push(ComponentHealth {
            name: name.to_string(),
            state: ComponentState::Running,
            lag,
        });
    }

    fn set(&self, name: &str, state: ComponentState) {
        if let Some(component) = self.lock().iter_mut().find(|c| c.name == name) {
            // A failure stays reported through the stop that follows it.
            if !matches!(component.state, ComponentState::Failed(_)) {
                component.state = state;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ComponentHealth>> {
        self.components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state of the component `name`, if the runtime runs one.
    pub fn component(&self, name: &str) -> Option<ComponentState> {
        self.lock()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.state.clone())
    }

    /// PostgreSQL, NATS, the migrations and every component, checked now.
    pub async fn report(&self) -> ReadinessReport {
        let mut not_ready: Vec<String> = Vec::new();
        let applied = tokio::time::timeout(
            READY_DATABASE_TIMEOUT,
            sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool),
        )
        .await;
        let expected: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let (postgres, migrations) = match applied {
            Ok(Ok(applied)) => {
                let missing: Vec<i64> = expected
                    .iter()
                    .filter(|v| !applied.contains(v))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    not_ready.push("migrations".into());
                }
                (
                    json!({"ready": true}),
                    json!({
                        "ready": missing.is_empty(),
                        "applied": applied.len(),
                        "expected": expected.len(),
                        "missing": missing,
                    }),
                )
            }
            Ok(Err(error)) if is_undefined_table(&error) => {
                not_ready.push("migrations".into());
                (
                    json!({"ready": true}),
                    json!({"ready": false, "applied": 0, "expected": expected.len()}),
                )
            }
            Ok(Err(error)) => {
                not_ready.push("postgres".into());
                not_ready.push("migrations".into());
                (
                    json!({"ready": false, "error": error.to_string()}),
                    json!({"ready": false, "error": "unknown: PostgreSQL is unreachable"}),
                )
            }
            Err(_) => {
                not_ready.push("postgres".into());
                not_ready.push("migrations".into());
                let error = format!("no answer within {} s", READY_DATABASE_TIMEOUT.as_secs());
                (
                    json!({"ready": false, "error": error}),
                    json!({"ready": false, "error": "unknown: PostgreSQL is unreachable"}),
                )
            }
        };
        let nats = match &self.nats {
            None => json!({"ready": true, "used": false}),
            Some(client) => {
                let state = client.connection_state();
                let connected = state == async_nats::connection::State::Connected;
                if !connected {
                    not_ready.push("nats".into());
                }
                json!({"ready": connected, "state": state.to_string()})
            }
        };
        let mut components = serde_json::Map::new();
        for component in self.lock().iter() {
            let (state, error) = match &component.state {
                ComponentState::Running => ("running", None),
                ComponentState::Failed(error) => ("failed", Some(error.clone())),
                ComponentState::Stopped => ("stopped", None),
            };
            let running = component.state == ComponentState::Running;
            if !running {
                not_ready.push(component.name.clone());
            }
            let mut entry = json!({"ready": running, "state": state});
            if let Some(error) = error {
                entry["error"] = Value::String(error);
            }
            if let Some(lag) = &component.lag {
                match lag() {
                    Lag::Behind { count, unit } => {
                        entry["behind"] = json!(count);
                        entry["unit"] = json!(unit);
                    }
                    Lag::Standby => entry["behind"] = json!("standby"),
                    Lag::Unknown => entry["behind"] = json!("unknown"),
                }
            }
            components.insert(component.name.clone(), entry);
        }
        if self.stopping.load(Ordering::Relaxed) {
            not_ready.push("shutdown".into());
        }
        let ready = not_ready.is_empty();
        ReadinessReport {
            ready,
            body: json!({
                "ready": ready,
                "notReady": not_ready,
                "shuttingDown": self.stopping.load(Ordering::Relaxed),
                "checks": {
                    "postgres": postgres,
                    "migrations": migrations,
                    "nats": nats,
                    "components": components,
                },
            }),
        }
    }
}

fn is_undefined_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01")
}

impl Readiness for Health {
    fn check(&self) -> BoxFuture<'_, ReadinessReport> {
        Box::pin(self.report())
    }
}

/// Asks a running [`Runtime`] to stop gracefully; cheap to clone.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Starts the graceful stop (again: no effect).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// nmp running: its HTTP server and supervised components.
pub struct Runtime {
    address: SocketAddr,
    state: AppState,
    health: Arc<Health>,
    stop: Stopper,
    supervisor: JoinHandle<anyhow::Result<()>>,
}

/// What a [`Runtime`] is built from; see [`Runtime::builder`].
pub struct RuntimeBuilder {
    settings: Settings,
    components: Components,
    require_backend: bool,
    nats: bool,
    listener: Option<TcpListener>,
    extra: Vec<(String, ComponentTask)>,
}

impl Runtime {
    /// nmp with `components`, as `settings` say.
    pub fn builder(settings: Settings, components: Components) -> RuntimeBuilder {
        RuntimeBuilder {
            settings,
            components,
            require_backend: false,
            nats: true,
            listener: None,
            extra: Vec::new(),
        }
    }

    /// Where the HTTP server listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The HTTP API's state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What answers `/readyz`.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Waits until nmp has stopped: `Ok` after a graceful stop asked for with
    /// [`Stopper::stop`], the component's error when one failed (the others stopped).
    pub async fn wait(self) -> anyhow::Result<()> {
        match self.supervisor.await {
            Ok(result) => result,
            Err(error) => Err(anyhow::anyhow!("nmp's supervisor failed: {error}")),
        }
    }
}

impl RuntimeBuilder {
    /// The components were chosen by name (`--components`): the saga or the sync without a
    /// backend URL is an error, not a warning.
    pub fn require_backend(mut self) -> Self {
        self.require_backend = true;
        self
    }

    /// Connects to no NATS: `api` serves HTTP only (no NATS API, no live feed), and the relay,
    /// projector and saga cannot run.
    pub fn without_nats(mut self) -> Self {
        self.nats = false;
        self
    }

    /// Serves HTTP on `listener` instead of binding `http_addr`.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// One more supervised component, named `name`: it runs until the runtime stops (it is
    /// then dropped), and its end, with an error or not, is a fault that stops nmp.
    pub fn component<E>(
        mut self,
        name: &str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        use futures::TryFutureExt;
        self.extra.push((
            name.to_string(),
            Box::pin(task.map_err(anyhow::Error::from)),
        ));
        self
    }

    /// Builds and starts nmp.
    pub async fn start(self) -> anyhow::Result<Runtime> {
        self.start_with(|_| {}).await
    }

    /// Builds nmp, lets `configure` change the HTTP state once the components are wired, then
    /// starts it.
    pub async fn start_with(
        self,
        configure: impl FnOnce(&mut AppState),
    ) -> anyhow::Result<Runtime> {
        let RuntimeBuilder {
            settings,
            components,
            require_backend,
            nats,
            listener,
            extra,
        } = self;
        if !nats && (components.relay || components.projector || components.saga) {
            anyhow::bail!("the relay, projector and saga need NATS");
        }
        let (mut state, key_source) = crate::build_state(&settings, components).await?;
        let nats = match nats {
            true => Some(crate::connect_nats(&settings.nats).await?),
            false => None,
        };
        let health = Arc::new(Health::new(
            state.commands.store().pool().clone(),
            nats.clone(),
        ));
        let mut tasks: Vec<(String, ComponentTask)> = Vec::new();
        let mut add = |name: &str, handle: JoinHandle<()>, lag: Option<LagProbe>| {
            health.add(name, lag);
            tasks.push((name.to_string(), supervised(name.to_string(), handle)));
        };
        if let Some(nats) = &nats {
            if components.relay {
                let (task, status) =
                    crate::start_relay(&settings.nats, nats.clone(), state.commands.store())
                        .await?;
                let lag = status.clone();
                add(
                    "relay",
                    task,
                    Some(Box::new(move || {
                        if !lag.is_leader() {
                            return Lag::Standby;
                        }
                        lag.lag().map_or(Lag::Unknown, |count| Lag::Behind {
                            count,
                            unit: "events not yet published",
                        })
                    })),
                );
            }
            if components.projector {
                let store = state.commands.store().clone();
                let (task, status) = crate::start_projector(&settings.nats, nats.clone(), store)?;
                let lag = status.clone();
                add(
                    "projector",
                    task,
                    Some(Box::new(move || {
                        lag.lag().map_or(Lag::Unknown, |count| Lag::Behind {
                            count,
                            unit: "events not yet projected",
                        })
                    })),
                );
            }
        }
        if components.saga || components.sync {
            match crate::provisioning_backend(&settings)? {
                Some(crate::ProvisioningBackend { backend, .. }) => {
                    if let (true, Some(nats)) = (components.saga, &nats) {
                        let saga_settings = crate::saga_settings(&settings.nats, &settings.saga)?;
                        let (task, status) = crate::start_saga(
                            saga_settings,
                            nats.clone(),
                            state.commands.clone(),
                            backend.clone(),
                        );
                        let lag = status.clone();
                        add(
                            "saga",
                            task,
                            Some(Box::new(move || {
                                lag.work_items().map_or(Lag::Unknown, |count| Lag::Behind {
                                    count,
                                    unit: "work items waiting",
                                })
                            })),
                        );
                    }
                    if components.sync {
                        let interval = Duration::from_secs(settings.sync.interval_secs.max(1));
                        let (task, _status) =
                            crate::start_sync(interval, state.commands.clone(), backend);
                        add("sync", task, None);
                    }
                }
                None if require_backend => anyhow::bail!(
                    "the saga and the sync need the backend's URL: set NMP_BACKEND_URL (or \
                     backend_url), or leave them out of --components"
                ),
                None => tracing::warn!(
                    "no backend configured (NMP_BACKEND_URL): the saga and the sync do not run, \
                     and changes that flow through stay pending"
                ),
            }
        }
        if let Some(nats) = &nats {
            // The dashboard's feed (api) and the portal's live sync states (portal) follow the
            // same JetStream consumer.
            if components.api || components.portal {
                let feed = crate::feed::channel();
                add(
                    "feed",
                    crate::feed::start(&settings.nats, nats.clone(), feed.clone()).await?,
                    None,
                );
                state.feed = Some(feed);
                let stream = crate::stream_settings(&settings.nats)?;
                state.feed_history = Some(Arc::new(crate::feed::JetStreamHistory {
                    jetstream: async_nats::jetstream::new(nats.clone()),
                    stream: stream.stream_name(),
                    subjects: stream.subjects(),
                }));
            }
            if components.api {
                add(
                    "nats-api",
                    crate::start_nats_api(&settings.nats, nats.clone(), state.clone())?,
                    None,
                );
            }
        }
        for (name, task) in extra {
            health.add(&name, None);
            tasks.push((name, task));
        }
        if key_source == KeySource::Development {
            tracing::warn!(
                "no token keys configured: using the DEVELOPMENT secret (loopback only); \
                 mint a token with `nmp token --role ProvisioningAPI.Admin`"
            );
        }
        state.readiness = Some(health.clone());
        configure(&mut state);
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(settings.http_addr)
                .await
                .with_context(|| format!("cannot listen on {}", settings.http_addr))?,
        };
        let address = listener.local_addr()?;
        tracing::info!(addr = %address, "serving HTTP");
        let (stop, stopped) = watch::channel(false);
        let stop = Stopper(Arc::new(stop));
        health.add(HTTP, None);
        let mut http_stopped = stopped.clone();
        tasks.push((
            HTTP.to_string(),
            Box::pin(crate::serve(state.clone(), listener, async move {
                let _ = http_stopped.wait_for(|stop| *stop).await;
            })),
        ));
        let supervisor = tokio::spawn(supervise(Supervision {
            tasks,
            health: health.clone(),
            stop: stop.clone(),
            stopped,
            shutdown: Duration::from_secs(settings.shutdown_secs),
            pool: state.commands.store().pool().clone(),
            nats,
        }));
        Ok(Runtime {
            address,
            state,
            health,
            stop,
            supervisor,
        })
    }
}

/// A task started elsewhere, as a component: cancelled when dropped, and its end a fault.
fn supervised(name: String, handle: JoinHandle<()>) -> ComponentTask {
    struct AbortOnDrop(JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut guard = AbortOnDrop(handle);
    Box::pin(async move {
        match (&mut guard.0).await {
            Ok(()) => Err(anyhow::anyhow!("{name} stopped by itself")),
            Err(error) => Err(anyhow::anyhow!("{name}: {}", describe_join_error(error))),
        }
    })
}

fn describe_join_error(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let panic = error.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("panicked: {message}")
}

struct Supervision {
    tasks: Vec<(String, ComponentTask)>,
    health: Arc<Health>,
    stop: Stopper,
    stopped: watch::Receiver<bool>,
    shutdown: Duration,
    pool: sqlx::PgPool,
    nats: Option<async_nats::Client>,
}

/// Runs the components until a stop is asked for or one of them ends, then stops the rest
/// (see the module's documentation).
async fn supervise(supervision: Supervision) -> anyhow::Result<()> {
    let Supervision {
        tasks,
        health,
        stop,
        stopped,
        shutdown,
        pool,
        nats,
    } = supervision;
    let mut aborts = Vec::new();
    let mut running = FuturesUnordered::new();
    for (name, task) in tasks {
        let handle = tokio::spawn(task);
        aborts.push((name.clone(), handle.abort_handle()));
        running.push(async move {
            let outcome = match handle.await {
                Ok(result) => result,
                Err(error) if error.is_cancelled() => Ok(()),
                Err(error) => Err(anyhow::anyhow!("{}", describe_join_error(error))),
            };
            (name, outcome)
        });
    }
    let mut failure: Option<anyhow::Error> = None;
    let mut asked = stopped.clone();
    tokio::select! {
        biased;
        () = async { let _ = asked.wait_for(|stop| *stop).await; } => tracing::info!("stopping nmp"),
        // The HTTP server ends once a stop is asked for: that is the stop, not a fault.
        Some((name, outcome)) = running.next(), if !*stopped.borrow() => {
            if name == HTTP && outcome.is_ok() && *stopped.borrow() {
                health.set(HTTP, ComponentState::Stopped);
            } else {
                let error = match outcome {
                    Ok(()) => anyhow::anyhow!("{name} stopped by itself"),
                    Err(error) => error,
                };
                let error = error.context(format!("component {name} failed"));
                tracing::error!(component = %name, error = format!("{error:#}"), "a component failed; stopping nmp");
                health.set(&name, ComponentState::Failed(format!("{error:#}")));
                failure = Some(error);
            }
        }
    }
    stop.stop();
    health.stopping.store(true, Ordering::Relaxed);
    let started = Instant::now();
    // A little before the time is up, so that `nmp serve`'s backstop (exit at `shutdown`) never
    // cuts off a stop that keeps to it.
    let deadline = started + shutdown - (shutdown / 10).min(Duration::from_millis(500));
    // Time kept for cancelling the rest and closing connections.
    let reserve = (shutdown / 4).min(Duration::from_secs(1));
    // 1. No new work: the HTTP server (told by `stop`) finishes its open requests; the NATS API
    //    takes no more.
    for (name, abort) in &aborts {
        if name == "nats-api" {
            abort.abort();
        }
    }
    let http_deadline = deadline - reserve;
    let mut http_running = aborts.iter().any(|(name, _)| name == HTTP)
        && health.component(HTTP) == Some(ComponentState::Running);
    while http_running {
        match tokio::time::timeout_at(http_deadline, running.next()).await {
            Ok(Some((name, outcome))) => {
                if name == HTTP {
                    http_running = false;
                }
                record_stop(&health, &name, outcome, &mut failure);
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    secs = shutdown.as_secs(),
                    "open HTTP requests did not finish in time; cutting them off"
                );
                break;
            }
        }
    }
    // 2. The rest is cancelled; none holds anything that cancelling loses.
    for (_, abort) in &aborts {
        abort.abort();
    }
    while let Ok(Some((name, outcome))) = tokio::time::timeout_at(deadline, running.next()).await {
        record_stop(&health, &name, outcome, &mut failure);
    }
    // 3. Connections.
    let _ = tokio::time::timeout_at(deadline, pool.close()).await;
    if let Some(nats) = nats
        && nats.connection_state() == async_nats::connection::State::Connected
    {
        let _ = tokio::time::timeout_at(deadline, nats.flush()).await;
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "nmp stopped"
    );
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Notes how a component ended during a stop: stopped, or failed (the first fault is kept).
fn record_stop(
    health: &Health,
    name: &str,
    outcome: anyhow::Result<()>,
    failure: &mut Option<anyhow::Error>,
) {
    match outcome {
        Ok(()) => health.set(name, ComponentState::Stopped),
        Err(error) => {
            let error = error.context(format!("component {name} failed while stopping"));
            tracing::error!(component = %name, error = format!("{error:#}"), "a component failed while stopping");
            health.set(name, ComponentState::Failed(format!("{error:#}")));
            failure.get_or_insert(error);
        }
    }
}
