//! The intake: a durable JetStream pull consumer ("saga") on the installation's event stream.
//! For each batch of messages it records one work item per aggregate (the greatest sequence
//! wins) and only then acknowledges them; a failure means a redelivery, which changes nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::SagaError;
use crate::status::SagaStatus;
use crate::work::{self, Key};

/// The durable consumer's name; the saga instances of an installation share it.
pub const CONSUMER: &str = "saga";

/// The aggregate types whose changes may need the backend.
const TYPES: [&str; 3] = ["number", "consent", "account"];

pub(crate) struct Intake {
    pub pool: PgPool,
    pub jetstream: jetstream::Context,
    pub stream: String,
    pub batch_size: usize,
    pub ack_wait: Duration,
    pub wake: Arc<Notify>,
    pub status: Arc<SagaStatus>,
}

impl Intake {
    /// Follows the stream until dropped; starts over after a failure.
    pub async fn run(&self) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.consume().await {
                Ok(()) => pause = Duration::from_millis(200),
                Err(error) => {
                    self.status.intake_running.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in = ?pause, "saga intake stopped; starting over");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consume(&self) -> Result<(), SagaError> {
        let nats = |e: &dyn std::fmt::Display| SagaError::Nats(e.to_string());
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| nats(&e))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_string()),
                    description: Some("nmp provisioning saga".to_string()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats(&e))?;
        let mut batches = consumer
            .stream()
            .max_messages_per_batch(self.batch_size.max(1))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| nats(&e))?
            .ready_chunks(self.batch_size.max(1));
        self.status.intake_running.store(true, Ordering::Relaxed);
        while let Some(batch) = batches.next().await {
            let mut messages = Vec::with_capacity(batch.len());
            let mut failure = None;
            for message in batch {
                match message {
                    Ok(message) => messages.push(message),
                    Err(error) => failure = Some(nats(&error)),
                }
            }
            self.handle(messages).await;
            if let Some(error) = failure {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Records the work the messages name, then acknowledges them; if that fails, asks for
    /// them again shortly.
    async fn handle(&self, messages: Vec<jetstream::Message>) {
        if messages.is_empty() {
            return;
        }
        let seen: Vec<(Key, i64)> = messages.iter().filter_map(work_of).collect();
        let kind = match work::record(&self.pool, &seen).await {
            Ok(()) => {
                if !seen.is_empty() {
                    self.wake.notify_waiters();
                }
                jetstream::AckKind::Ack
            }
            Err(error) => {
                tracing::warn!(%error, messages = messages.len(), "cannot record the saga's work; the events will be redelivered");
                jetstream::AckKind::Nak(Some(Duration::from_millis(500)))
            }
        };
        for message in &messages {
            if let Err(error) = message.ack_with(kind).await {
                tracing::warn!(%error, subject = %message.subject, "cannot acknowledge an event");
            }
        }
    }
}

/// The work an event asks for: its aggregate, at its sequence. None for the backend's own
/// answers (recorded by the saga: they need nothing more) and for aggregates the backend does
/// not know.
fn work_of(message: &jetstream::Message) -> Option<(Key, i64)> {
    let headers = message.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str());
    let aggregate_type = header("nmp-aggregate-type")?;
    if !TYPES.contains(&aggregate_type) {
        return None;
    }
    let event_type = header("ce-type").unwrap_or_default();
    if event_type.ends_with("Provisioned") || event_type.ends_with("ProvisioningFailed") {
        return None;
    }
    let aggregate_id = header("nmp-aggregate-id")?;
    let sequence: i64 = header("nmp-sequence")?.parse().ok()?;
    Some((
        Key {
            aggregate_type: aggregate_type.to_string(),
            aggregate_id: aggregate_id.to_string(),
        },
        sequence,
    ))
}
