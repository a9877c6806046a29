//! The projector: a durable JetStream pull consumer shared by every projector instance of an
//! installation. Each message names an aggregate; the projector brings that aggregate's row up
//! to date and only then acknowledges, so a crash means a redelivery, which changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use futures::StreamExt;
use store::EventStore;

use crate::ProjectionError;
use crate::write::{Kind, project};

/// The durable consumer's name; instances of one installation share it.
pub const CONSUMER: &str = "projector";

#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// Stream of the installation's events (`<PREFIX>_EVENTS`).
    pub stream: String,
    /// Messages handled at once by this instance.
    pub concurrency: usize,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
}

impl ProjectorSettings {
    pub fn new(stream: &str) -> Self {
        ProjectorSettings {
            stream: stream.to_string(),
            concurrency: 8,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What the projector reports about itself; shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct ProjectorStatus {
    running: AtomicBool,
    /// Messages of the stream not yet acknowledged by the projectors; -1 until measured.
    lag: AtomicI64,
}

impl ProjectorStatus {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    pub fn render_metrics(&self, out: &mut String) {
        out.push_str(
            "# HELP nmp_projector_lag_events Events in the stream not yet projected (pending or unacknowledged).\n",
        );
        out.push_str("# TYPE nmp_projector_lag_events gauge\n");
        if let Some(lag) = self.lag() {
            out.push_str(&format!("nmp_projector_lag_events {lag}\n"));
        }
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
            .max_messages_per_batch(512)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        self.status.running.store(true, Ordering::Relaxed);
        let status = self.status.clone();
        // Measure the lag on the side; a failure here only leaves the last figure standing.
        let measure = tokio::spawn(async move {
            loop {
                if let Ok(info) = consumer.info().await {
                    let lag = info.num_pending as i64 + info.num_ack_pending as i64;
                    status.lag.store(lag, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<ProjectionError>(1);
        let handled = messages.for_each_concurrent(self.settings.concurrency, |message| {
            let failed = failed_tx.clone();
            async move {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        let _ = failed.try_send(ProjectionError::Nats(error.to_string()));
                        return;
                    }
                };
                match self.handle(&message).await {
                    Ok(()) => {
                        if let Err(error) = message.ack().await {
                            tracing::warn!(%error, "cannot acknowledge a projected event");
                        }
                    }
                    // Not acknowledged: JetStream redelivers it after `ack_wait`; ask sooner.
                    Err(error) => {
                        tracing::warn!(%error, subject = %message.subject, "cannot project an event; it will be redelivered");
                        let _ = message
                            .ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(500))))
                            .await;
                    }
                }
            }
        });
        let result = tokio::select! {
            () = handled => Ok(()),
            Some(error) = failed_rx.recv() => Err(error),
        };
        measure.abort();
        result
    }

    async fn handle(&self, message: &jetstream::Message) -> Result<(), ProjectionError> {
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
            return Ok(());
        };
        let Some(kind) = Kind::parse(&aggregate_type) else {
            // An aggregate type this version does not project (a newer nmp's): nothing to do.
            return Ok(());
        };
        let (table, _) = kind.table();
        project(&self.store, kind, &aggregate_id, table).await?;
        Ok(())
    }
}
