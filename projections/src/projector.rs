//! The projector: a durable JetStream pull consumer shared by every projector instance of an
//! installation. Each message names an aggregate; the projector takes the messages it has at
//! hand as a batch (up to `batch_size`), brings the rows of the batch's aggregates up to date in
//! one transaction (`write::project_batch`: each aggregate once, however many of its events the
//! batch holds) and only then acknowledges them, so a crash means a redelivery, which changes
//! nothing. While one batch is written the next is gathered and written alongside
//! (`concurrency` batches at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use futures::StreamExt;
use store::EventStore;

use crate::ProjectionError;
use crate::write::{Kind, project_batch};

/// The durable consumer's name; instances of one installation share it.
pub const CONSUMER: &str = "projector";

#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// Stream of the installation's events (`<PREFIX>_EVENTS`).
    pub stream: String,
    /// Batches written at once by this instance.
    pub concurrency: usize,
    /// Most messages in one batch (one transaction).
    pub batch_size: usize,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// The first retry of an event that cannot be projected waits this long; each further one
    /// twice as long, up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// After this many deliveries an event that still cannot be projected (for anything but
    /// an unreachable database) is parked in `projection_dead_letters` and acknowledged.
    pub max_deliveries: i64,
}

impl ProjectorSettings {
    pub fn new(stream: &str) -> Self {
        ProjectorSettings {
            stream: stream.to_string(),
            concurrency: 2,
            batch_size: 500,
            ack_wait: Duration::from_secs(30),
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(60),
            max_deliveries: 10,
        }
    }
}

/// What the projector reports about itself (its metrics are recorded as they change, in
/// `nmp_metrics`).
#[derive(Debug, Default)]
pub struct ProjectorStatus {
    running: AtomicBool,
    /// Messages of the stream not yet acknowledged by the projectors; -1 until measured.
    lag: AtomicI64,
    /// Events this instance parked as unprojectable.
    parked: std::sync::atomic::AtomicU64,
}

impl ProjectorStatus {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    /// Events this instance parked as unprojectable.
    pub fn parked(&self) -> u64 {
        self.parked.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Projector {
    store: EventStore,
    jetstream: jetstream::Context,
    settings: ProjectorSettings,
    status: Arc<ProjectorStatus>,
}

impl Projector {
    pub fn new(
        store: EventStore,
        jetstream: jetstream::Context,
        settings: ProjectorSettings,
    ) -> Self {
        nmp_metrics::install();
        Projector {
            store,
            jetstream,
            settings,
            status: Arc::new(ProjectorStatus {
                lag: AtomicI64::new(-1),
                ..Default::default()
            }),
        }
    }

    pub fn status(&self) -> Arc<ProjectorStatus> {
        self.status.clone()
    }

    /// Runs until the future is dropped; after a failure (NATS down, consumer gone) it starts
    /// over, recreating the consumer if the server lost it.
    pub async fn run(self) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.consume().await {
                Ok(()) => pause = Duration::from_millis(200),
                Err(error) => {
                    self.status.running.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in = ?pause, "projector stopped; starting over");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consumer(
        &self,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, ProjectionError> {
        let stream = self
            .jetstream
            .get_stream(&self.settings.stream)
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_string()),
                    description: Some("nmp read models".to_string()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.settings.ack_wait,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))
    }

    async fn consume(&self) -> Result<(), ProjectionError> {
        let mut consumer = self.consumer().await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.settings.batch_size.max(1))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        self.status.running.store(true, Ordering::Relaxed);
        let status = self.status.clone();
        let stream = self.settings.stream.clone();
        // Measure the lag on the side; a failure here only leaves the last figure standing.
        let _measure = AbortOnDrop(tokio::spawn(async move {
            loop {
                if let Ok(info) = consumer.info().await {
                    let lag = info.num_pending as i64 + info.num_ack_pending as i64;
                    status.lag.store(lag, Ordering::Relaxed);
                    nmp_metrics::projector_lag(&stream, CONSUMER, lag as u64);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
        // The first failure of the subscription ends the stream; the batches in hand are
        // still written (or given back) before `consume` reports it.
        let failure: Mutex<Option<ProjectionError>> = Mutex::new(None);
        messages
            .scan((), |(), message| {
                futures::future::ready(match message {
                    Ok(message) => Some(message),
                    Err(error) => {
                        *failure.lock().expect("not poisoned") =
                            Some(ProjectionError::Nats(error.to_string()));
                        None
                    }
                })
            })
            .ready_chunks(self.settings.batch_size.max(1))
            .for_each_concurrent(self.settings.concurrency.max(1), |batch| {
                self.handle_batch(batch)
            })
            .await;
        match failure.into_inner().expect("not poisoned") {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Projects the aggregates of a batch of messages, then acknowledges every message. If that
    /// fails, the database being out of reach gives every message back for a redelivery soon;
    /// anything else, each aggregate is tried on its own, so that one that cannot be projected
    /// only holds back its own messages.
    async fn handle_batch(&self, batch: Vec<jetstream::Message>) {
        let mut aggregates = Vec::with_capacity(batch.len());
        let mut projected = Vec::with_capacity(batch.len());
        let mut skipped = Vec::new();
        for message in batch {
            match aggregate_of(&message) {
                Some(aggregate) => {
                    aggregates.push(aggregate);
                    projected.push(message);
                }
                None => skipped.push(message),
            }
        }
        // Nothing to project for these: acknowledged at once.
        acknowledge(&skipped, jetstream::AckKind::Ack).await;
        if projected.is_empty() {
            return;
        }
        let error = match project_batch(&self.store, &aggregates).await {
            Ok(_) => return acknowledge(&projected, jetstream::AckKind::Ack).await,
            Err(error) => error,
        };
        let mut by_aggregate: HashMap<(Kind, String), Vec<jetstream::Message>> = HashMap::new();
        for (aggregate, message) in aggregates.into_iter().zip(projected) {
            by_aggregate.entry(aggregate).or_default().push(message);
        }
        if unreachable(&error) {
            // Not acknowledged: JetStream would redeliver them after `ack_wait`; ask sooner.
            tracing::warn!(%error, aggregates = by_aggregate.len(), "cannot reach the database to project a batch of events; they will be redelivered");
            for messages in by_aggregate.values() {
                self.retry_later(messages).await;
            }
            return;
        }
        if by_aggregate.len() == 1 {
            for (aggregate, messages) in &by_aggregate {
                self.failed(aggregate, messages, &error).await;
            }
            return;
        }
        // One aggregate that cannot be projected (an event this version cannot read, a row the
        // database refuses) must not hold back the others: each on its own, then.
        tracing::warn!(%error, aggregates = by_aggregate.len(), "cannot project a batch of events; projecting its aggregates one by one");
        for (aggregate, messages) in by_aggregate {
            match project_batch(&self.store, std::slice::from_ref(&aggregate)).await {
                Ok(_) => acknowledge(&messages, jetstream::AckKind::Ack).await,
                Err(error) if unreachable(&error) => self.retry_later(&messages).await,
                Err(error) => self.failed(&aggregate, &messages, &error).await,
            }
        }
    }

    /// An aggregate's messages failed for `error`: they are retried later, each after a longer
    /// wait the more often it was delivered; one delivered `max_deliveries` times is parked
    /// instead (recorded, counted, acknowledged), so that it is not redelivered for ever.
    async fn failed(
        &self,
        aggregate: &(Kind, String),
        messages: &[jetstream::Message],
        error: &ProjectionError,
    ) {
        let mut retry = Vec::new();
        for message in messages {
            let deliveries = message.info().map_or(1, |info| info.delivered);
            if deliveries < self.settings.max_deliveries {
                retry.push(message);
                continue;
            }
            match park(&self.store, aggregate, message, deliveries, error).await {
                Ok(()) => {
                    self.status.parked.fetch_add(1, Ordering::Relaxed);
                    nmp_metrics::projector_parked(&self.settings.stream, CONSUMER);
                    tracing::error!(%error, deliveries, aggregate_type = aggregate.0.aggregate_type(), aggregate_id = %aggregate.1, subject = %message.subject, "an event could not be projected after every retry; parked in projection_dead_letters");
                    acknowledge(std::slice::from_ref(message), jetstream::AckKind::Ack).await;
                }
                Err(park_error) => {
                    tracing::warn!(error = %park_error, "cannot park an unprojectable event; it will be redelivered");
                    retry.push(message);
                }
            }
        }
        if !retry.is_empty() {
            tracing::warn!(%error, aggregate_type = aggregate.0.aggregate_type(), aggregate_id = %aggregate.1, "cannot project an aggregate; its events will be redelivered");
            for message in retry {
                acknowledge(std::slice::from_ref(message), self.backoff(message)).await;
            }
        }
    }

    /// Gives messages back for a redelivery soon: the database was out of reach, which says
    /// nothing about the events (they are neither backed off nor counted towards parking).
    async fn retry_later(&self, messages: &[jetstream::Message]) {
        let soon = jetstream::AckKind::Nak(Some(self.settings.retry_delay));
        acknowledge(messages, soon).await;
    }

    /// Redelivery after `retry_delay`, doubled for each delivery so far, at most
    /// `max_retry_delay`.
    fn backoff(&self, message: &jetstream::Message) -> jetstream::AckKind {
        let deliveries = message.info().map_or(1, |info| info.delivered).max(1);
        let factor = 1u32 << (deliveries - 1).clamp(0, 16) as u32;
        let delay = self
            .settings
            .retry_delay
            .saturating_mul(factor)
            .min(self.settings.max_retry_delay);
        jetstream::AckKind::Nak(Some(delay))
    }
}

/// Records an event that cannot be projected.
async fn park(
    store: &EventStore,
    aggregate: &(Kind, String),
    message: &jetstream::Message,
    deliveries: i64,
    error: &ProjectionError,
) -> Result<(), sqlx::Error> {
    let sequence = message.info().map_or(0, |info| info.stream_sequence as i64);
    sqlx::query(
        "INSERT INTO projection_dead_letters \
           (aggregate_type, aggregate_id, subject, stream_sequence, deliveries, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(aggregate.0.aggregate_type())
    .bind(&aggregate.1)
    .bind(message.subject.as_str())
    .bind(sequence)
    .bind(deliveries)
    .bind(error.to_string())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Whether `error` says the database cannot be reached or refused for the moment (rather than
/// that something in the batch cannot be projected).
fn unreachable(error: &ProjectionError) -> bool {
    let database = match error {
        ProjectionError::Database(error) => error,
        ProjectionError::Store(store::StoreError::Database(error)) => error,
        _ => return false,
    };
    let transient_state = database
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| {
            // A deadlock or serialization failure with another writer, a lock not had, a
            // statement cancelled, the server out of resources or its connection lost: the
            // same events go through on a later try.
            matches!(code.as_ref(), "40001" | "40P01" | "55P03" | "57014")
                || code.starts_with("53")
                || code.starts_with("08")
        });
    transient_state
        || matches!(
            database,
            sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed
        )
}

/// The aggregate a message is about, if this version projects it.
fn aggregate_of(message: &jetstream::Message) -> Option<(Kind, String)> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let (Some(aggregate_type), Some(aggregate_id)) =
        (header("nmp-aggregate-type"), header("nmp-aggregate-id"))
    else {
        tracing::warn!(subject = %message.subject, "an event without nmp headers is skipped");
        return None;
    };
    // An aggregate type this version does not project (a newer nmp's): nothing to do.
    Some((Kind::parse(&aggregate_type)?, aggregate_id))
}

/// Sends `kind` for each message. An acknowledgement is a plain publish (no round trip), so
/// they go one after the other; one that is lost only means a redelivery, which changes
/// nothing.
async fn acknowledge(messages: &[jetstream::Message], kind: jetstream::AckKind) {
    for message in messages {
        if let Err(error) = message.ack_with(kind).await {
            tracing::warn!(%error, subject = %message.subject, "cannot acknowledge an event");
        }
    }
}

/// Aborts the task when dropped, so that the side task ends with the consumer it measures.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
