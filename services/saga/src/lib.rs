//! The provisioning saga (component `saga`) and the backend sync (component `sync`).
//!
//! The saga follows the event stream and makes the Teams backend agree with nmp: for numbers
//! whose Teams service flows through (`syncEnabled`) it uploads, updates, and releases them
//! (on deletion, or when their Teams service is switched off, or before a move to another
//! tenant), and it pushes consents' customer relationship. The backend's answers come back as
//! commands (`CommandService::record_number_outcomes`, `record_consent_outcome`,
//! `record_account_outcome`), so `serviceProvisioningStatus` moves `pending → synced | failed`
//! in events like any other change. The saga changes state only through commands.
//!
//! # Design
//!
//! **Intake** (`intake.rs`). A durable JetStream pull consumer, `saga`, on `<PREFIX>_EVENTS`
//! (NATS 2.9 allows one filter subject, so it takes the whole stream and ignores the rest).
//! For each batch it upserts one row per aggregate into `saga_work` with the greatest sequence
//! seen, and only then acknowledges. The work is state-based: nothing is taken from the event
//! itself, so a redelivered, duplicated or out-of-order message changes nothing. The backend's
//! own answers (`*Provisioned`, `*ProvisioningFailed`) are not work.
//!
//! **Worker** (`worker.rs`; `workers` of them per process, any number of processes). One step
//! (`Saga::try_process_next`) first moves due orders on, then claims due work items (`FOR
//! UPDATE SKIP LOCKED`, then a lease), rebuilds their aggregates from the event store (batch
//! loads, through the store's cache) and decides from their current state (`plan.rs`):
//! a number whose sync is `pending` is uploaded when the backend does not hold it, updated
//! when its tenant does, released when it is being deleted or no longer uses a Teams service;
//! a number whose service does not flow through, or that is deleted and not held, is answered
//! at once without a call. What the backend holds is the saga's table `saga_held`, written in
//! the transaction that marks a completed order done and cleared when a release is confirmed
//! (an update the backend rejects as `NumberNotFound` clears it too, and the number is
//! uploaded instead). Calls go by tenant, at most 100 numbers each. A consent whose
//! relationship is pending is pushed with `update_relationship`. An account has no resource in
//! the backend (its numbers carry the flow-through), so its pending change is answered as
//! synced at once.
//!
//! **Orders are durable before they are placed** (`orders.rs`). The uploads of one step are
//! written as `saga_orders` rows (a UUID each: the order id the backend sees) with one
//! `saga_order_items` row per number and version, in one transaction that also parks the
//! numbers' work items until their order is done. Unique keys make it impossible for a change
//! to be in two orders, or for a number to be in two unfinished orders. An order is then placed
//! (the backend places an id once) and polled with `order(id)` until completed; its outcomes
//! are recorded as one command, and only then is it marked done — results saved, the numbers it
//! uploaded marked held, its work items finished — in one transaction. A crash anywhere resumes
//! the order where it stood (`new`: placed again under the same id; `placed`: polled; completed
//! but not done: its results read again and its repeated outcomes ignored); it is never
//! re-batched, so one change is never in two orders.
//!
//! **Batching.** Calls carry at most 100 numbers of one tenant. A short last call of a step
//! waits for more numbers (its items go back to the queue) while the step's claim was full, or
//! for `batch_linger` after its oldest item arrived, but never beyond `max_batch_hold`: under a
//! rate limit a call is worth filling.
//!
//! **Rate limit** (`budget.rs`). Every backend call of the process — orders, polls, updates,
//! releases, relationship pushes and the sync's reads — takes a slot of one `CallBudget`,
//! spaced evenly at `calls_per_minute` (default 100; 0: unlimited). A 429 holds all calls for
//! its `Retry-After`. With 100 numbers a call the ceiling is 100 × the limit numbers a minute,
//! minus the order polls (placing an order the backend completes at once costs one call).
//!
//! **Retries** (`backoff.rs`). A transient failure (429, 5xx, timeout, dropped connection)
//! leaves the item (or the order) where it is, to be tried again after an exponential backoff
//! with jitter, never sooner than `Retry-After`. A permanent one — the call refused as a whole,
//! or a number rejected — is recorded `failed` with the backend's code and message, and never
//! retried automatically: the operator's retry action puts the change back to pending at a new
//! version, which is new work.
//!
//! **Leases.** A claimed item or order is leased for `lease`; a process that dies holds its
//! claims until the lease runs out, then another takes them over. Every call is safe to repeat,
//! so work done twice after a lease ran out changes nothing.
//!
//! The backend sync (`sync.rs`) polls the backend's consents and each tenant's civic addresses
//! and records what changed as commands.

mod backoff;
mod budget;
mod intake;
mod orders;
mod plan;
mod status;
pub mod sync;
mod work;
mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream;
use backend::Backend;
use commands::{CommandError, CommandService};
use store::StoreError;
use tokio::sync::Notify;

pub use backoff::Backoff;
pub use budget::{CallBudget, LimitedBackend, is_rate_limited};
pub use intake::CONSUMER;
pub use plan::{AfterRelease, Need, need};
pub use status::SagaStatus;
pub use sync::{BackendSync, SyncReport, SyncStatus};
pub use worker::Step;

/// How the saga runs.
#[derive(Debug, Clone)]
pub struct SagaSettings {
    /// Stream of the installation's events (`<PREFIX>_EVENTS`).
    pub stream: String,
    /// Worker loops in this process.
    pub workers: usize,
    /// Most numbers one step claims (and as many other work items).
    pub claim_size: usize,
    /// A call that would carry fewer than 100 numbers waits this long from its oldest item's
    /// arrival for more to fill it.
    pub batch_linger: Duration,
    /// ... but a number never waits longer than this for its call to fill.
    pub max_batch_hold: Duration,
    /// Most orders one step moves on.
    pub orders_per_step: usize,
    /// Backend calls one step makes at once (they still queue for the rate limit).
    pub call_concurrency: usize,
    /// How long a claim holds; a process that dies holds its claims this long.
    pub lease: Duration,
    /// The first poll of a placed order comes this long after placing it; later polls back off
    /// (doubling) up to `max_order_poll`.
    pub order_poll: Duration,
    pub max_order_poll: Duration,
    /// Backoff after transient failures.
    pub retry: Backoff,
    /// How often an idle worker looks for due work (the intake wakes it at once for new work).
    pub idle_poll: Duration,
    /// Most messages the intake records at once.
    pub intake_batch: usize,
    /// How long JetStream waits for the intake's ack before redelivering.
    pub ack_wait: Duration,
}

impl SagaSettings {
    pub fn new(stream: &str) -> SagaSettings {
        SagaSettings {
            stream: stream.to_string(),
            workers: 2,
            claim_size: 500,
            batch_linger: Duration::from_millis(100),
            max_batch_hold: Duration::from_secs(10),
            orders_per_step: 20,
            call_concurrency: 4,
            lease: Duration::from_secs(60),
            order_poll: Duration::from_secs(1),
            max_order_poll: Duration::from_secs(60),
            retry: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            idle_poll: Duration::from_millis(250),
            intake_batch: 500,
            ack_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot record the backend's answer: {0}")]
    Command(#[from] CommandError),
    #[error("NATS error: {0}")]
    Nats(String),
}

/// The provisioning saga. Cheap to clone; clones share their status.
#[derive(Clone)]
pub struct Saga {
    commands: CommandService,
    backend: Arc<dyn Backend>,
    jetstream: jetstream::Context,
    settings: SagaSettings,
    status: Arc<SagaStatus>,
    wake: Arc<Notify>,
}

impl Saga {
    /// A saga recording outcomes through `commands` and calling `backend` (give it a
    /// [`LimitedBackend`] to keep to a rate limit).
    pub fn new(
        commands: CommandService,
        backend: Arc<dyn Backend>,
        jetstream: jetstream::Context,
        settings: SagaSettings,
    ) -> Saga {
        nmp_metrics::install();
        Saga {
            commands,
            backend,
            jetstream,
            settings,
            status: Arc::new(SagaStatus::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn status(&self) -> Arc<SagaStatus> {
        self.status.clone()
    }

    fn pool(&self) -> &sqlx::PgPool {
        self.commands.store().pool()
    }

    /// Runs the intake, the workers and the metrics' measurements until the future is
    /// dropped. Everything runs inside this one future, so aborting its task stops it all.
    pub async fn run(self) {
        let intake = intake::Intake {
            pool: self.pool().clone(),
            jetstream: self.jetstream.clone(),
            stream: self.settings.stream.clone(),
            batch_size: self.settings.intake_batch,
            ack_wait: self.settings.ack_wait,
            wake: self.wake.clone(),
            status: self.status.clone(),
        };
        let workers =
            futures::future::join_all((0..self.settings.workers.max(1)).map(|_| self.work_loop()));
        tokio::join!(intake.run(), workers, self.measure());
    }

    /// One worker: steps while there is work, waits for the intake's wake-up (or the next
    /// look) when there is none, backs off after a failure.
    async fn work_loop(&self) {
        let mut failures = 0;
        loop {
            match self.try_process_next().await {
                Ok(Step::Processed) => failures = 0,
                Ok(Step::Idle) => {
                    failures = 0;
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.settings.idle_poll) => {}
                    }
                }
                Err(error) => {
                    let pause = self.settings.retry.delay(failures, None);
                    failures = (failures + 1).min(10);
                    tracing::warn!(%error, retry_in = ?pause, "saga step failed");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Keeps the backlog gauges up to date.
    async fn measure(&self) {
        loop {
            if let Ok((work_items, open_orders)) = work::backlog(self.pool()).await {
                nmp_metrics::saga_backlog(
                    &self.settings.stream,
                    work_items.max(0) as u64,
                    open_orders.max(0) as u64,
                );
                self.status.work_items.store(work_items, Ordering::Relaxed);
                self.status
                    .open_orders
                    .store(open_orders, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
