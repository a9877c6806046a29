//! The relay: publishes every committed event to NATS JetStream, in commit order, exactly once
//! in effect.
//!
//! It reads the `events` table past its checkpoint, but only below the commit-safe watermark
//! (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`, ordered by `(tx_id, global_position)`), so
//! an event whose transaction commits late is never skipped. It publishes a batch with
//! pipelined acks and moves its checkpoint only once every ack has arrived. A crash in between
//! re-publishes; `Nats-Msg-Id` lets JetStream drop the repeats inside its duplicate window.
//! One relay per installation is active at a time, holding a Postgres advisory lock on a
//! dedicated connection; others wait and take over when it dies.
//!
//! Once caught up it polls every few milliseconds (an index lookup past the checkpoint), and
//! a commit through an event store in the same process wakes it at once. It used to sleep on
//! a `LISTEN` fed by a trigger, but `NOTIFY` makes PostgreSQL hold one lock from each
//! notifying transaction's commit until that commit is on disk, which serialised every
//! writer of events.

pub mod message;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;

pub use message::StoredEvent;
pub use stream::{StreamError, StreamSettings, ensure_stream};

/// The most events published before their acks are awaited: async-nats lets one JetStream
/// context have 5,000 publishes unacknowledged, and a larger batch would wait forever.
pub const MAX_BATCH: i64 = 4_000;

/// How often the relay measures its lag while it has nothing to publish.
const IDLE_MEASURE_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub stream: StreamSettings,
    /// Most events read and published per round; at most `MAX_BATCH`.
    pub batch_size: i64,
    /// Wait between reads once caught up, unless a commit in this process wakes the relay
    /// sooner (see [`Relay::with_wake`]). Bounds the latency of events written by other
    /// processes, and of events waiting behind a slow transaction (the watermark).
    pub poll_interval: Duration,
    /// How often a standby relay tries to take over.
    pub standby_interval: Duration,
}

impl RelaySettings {
    pub fn new(stream: StreamSettings) -> Self {
        RelaySettings {
            stream,
            batch_size: 2_000,
            poll_interval: Duration::from_millis(5),
            standby_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publishing to NATS: {0}")]
    Publish(String),
}

/// What the relay reports about itself (its metrics are recorded as they change, in
/// `nmp_metrics`).
#[derive(Debug, Default)]
pub struct RelayStatus {
    leader: AtomicBool,
    /// Events committed but not yet acknowledged by NATS; -1 until first measured.
    lag: AtomicI64,
    published: AtomicU64,
    /// Last moment the lag was measured, as milliseconds since the relay started.
    measured_at_ms: AtomicU64,
}

impl RelayStatus {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Events committed but not yet acknowledged by NATS, when measured (the active relay
    /// measures it whenever it has caught up, and at least every second under load).
    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    /// Events this process has published (and had acknowledged) since it started.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

/// Position in commit order: `(tx_id, global_position)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub tx_id: String,
    pub global_position: i64,
}

impl Checkpoint {
    fn start() -> Self {
        Checkpoint {
            tx_id: "0".to_string(),
            global_position: 0,
        }
    }
}

/// Observes acknowledgements, for benchmarks: called with each acknowledged batch's global
/// positions and the moment the last ack arrived.
pub type AckObserver = Arc<dyn Fn(&[i64], Instant) + Send + Sync>;

#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    jetstream: jetstream::Context,
    settings: RelaySettings,
    status: Arc<RelayStatus>,
    started: Instant,
    observer: Option<AckObserver>,
    wake: Arc<Notify>,
    /// The stream's name, the `stream` label of the relay's metrics.
    stream_name: String,
}

impl Relay {
    pub fn new(pool: PgPool, jetstream: jetstream::Context, settings: RelaySettings) -> Self {
        nmp_metrics::install();
        let stream_name = settings.stream.stream_name();
        Relay {
            pool,
            jetstream,
            settings,
            status: Arc::new(RelayStatus {
                lag: AtomicI64::new(-1),
                ..Default::default()
            }),
            started: Instant::now(),
            observer: None,
            wake: Arc::new(Notify::new()),
            stream_name,
        }
    }

    /// Wakes the relay whenever `signal` is notified — the event store's `appended_signal` in
    /// the same process — so events committed here are published without waiting for the
    /// next poll.
    pub fn with_wake(mut self, signal: Arc<Notify>) -> Self {
        self.wake = signal;
        self
    }

    pub fn with_ack_observer(mut self, observer: AckObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn status(&self) -> Arc<RelayStatus> {
        self.status.clone()
    }

    fn relay_name(&self) -> &str {
        &self.settings.stream.prefix
    }

    /// The advisory lock key of this installation's relay: a stable 64-bit hash of its name.
    fn lock_key(&self) -> i64 {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("nmp-relay/{}", self.relay_name()).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash as i64
    }

    fn set_leader(&self, leader: bool) {
        self.status.leader.store(leader, Ordering::Relaxed);
        nmp_metrics::relay_leader(&self.stream_name, leader);
    }

    /// Runs until the future is dropped: waits for the lock, then publishes; after any failure
    /// (database or NATS down, lock lost) starts over after a pause.
    pub async fn run(self) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.lead().await {
                Ok(()) => pause = Duration::from_millis(200),
                Err(error) => {
                    self.set_leader(false);
                    tracing::warn!(%error, retry_in = ?pause, "relay stopped; starting over");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Takes the lock (waiting as a standby while another relay holds it), then publishes
    /// until something fails.
    async fn lead(&self) -> Result<(), RelayError> {
        // A connection of its own, closed (and the lock released) when this function ends,
        // whether by error or by the task being aborted: never returned to the pool with the
        // lock still held.
        let mut connection = self.pool.acquire().await?.detach();
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.lock_key())
                .fetch_one(&mut connection)
                .await?;
            if locked {
                break;
            }
            self.set_leader(false);
            tokio::time::sleep(self.settings.standby_interval).await;
        }
        // The checkpoint waits for the disk: a PostgreSQL crash must not take it back to where
        // re-published events would be older than JetStream's duplicate window (measured: at
        // most 5% of the relay's throughput, no change to its latency; README). And a plan
        // cached while a backlog was large must not outlive it.
        sqlx::query("SET synchronous_commit = on")
            .execute(&mut connection)
            .await?;
        sqlx::query("SET plan_cache_mode = force_custom_plan")
            .execute(&mut connection)
            .await?;
        self.set_leader(true);
        tracing::info!(relay = self.relay_name(), "this relay is now active");
        let result = self.publish_loop(&mut connection).await;
        self.set_leader(false);
        let _ = connection.close().await;
        result
    }

    async fn publish_loop(&self, connection: &mut PgConnection) -> Result<(), RelayError> {
        let mut checkpoint = self.load_checkpoint(connection).await?;
        let mut last_measure = Instant::now() - Duration::from_secs(10);
        loop {
            let batch = self.read_batch(connection, &checkpoint).await?;
            if let Some(last) = batch.last() {
                let next = Checkpoint {
                    tx_id: last.tx_id.clone(),
                    global_position: last.global_position,
                };
                self.publish(&batch).await?;
                self.save_checkpoint(connection, &next).await?;
                checkpoint = next;
                self.status
                    .published
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                nmp_metrics::relay_published(&self.stream_name, batch.len() as u64);
                if last_measure.elapsed() >= Duration::from_secs(1) {
                    self.measure_lag(connection, &checkpoint).await?;
                    last_measure = Instant::now();
                }
                continue;
            }
            // Caught up with what is visible below the watermark. Events may still wait behind
            // an open transaction, or be committed by another process: look again after the
            // poll interval, or at once when a commit in this process signals.
            if last_measure.elapsed() >= IDLE_MEASURE_INTERVAL {
                self.measure_lag(connection, &checkpoint).await?;
                last_measure = Instant::now();
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    async fn load_checkpoint(
        &self,
        connection: &mut PgConnection,
    ) -> Result<Checkpoint, RelayError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT tx_id::text, global_position FROM relay_checkpoints WHERE relay_name = $1",
        )
        .bind(self.relay_name())
        .fetch_optional(&mut *connection)
        .await?;
        Ok(row
            .map(|(tx_id, global_position)| Checkpoint {
                tx_id,
                global_position,
            })
            .unwrap_or_else(Checkpoint::start))
    }

    async fn save_checkpoint(
        &self,
        connection: &mut PgConnection,
        checkpoint: &Checkpoint,
    ) -> Result<(), RelayError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (relay_name, tx_id, global_position) \
             VALUES ($1, $2::text::xid8, $3) \
             ON CONFLICT (relay_name) DO UPDATE \
               SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, \
                   updated_at = now()",
        )
        .bind(self.relay_name())
        .bind(&checkpoint.tx_id)
        .bind(checkpoint.global_position)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// The next events after `checkpoint` whose transactions are certainly finished.
    async fn read_batch(
        &self,
        connection: &mut PgConnection,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<StoredEvent>, RelayError> {
        let rows = sqlx::query_as::<_, StoredEvent>(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                    payload::text AS payload, metadata->>'time' AS time, \
                    metadata->>'traceparent' AS traceparent, tx_id::text AS tx_id, global_position \
               FROM events \
              WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
                AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
              ORDER BY events.tx_id, events.global_position \
              LIMIT $3",
        )
        .bind(&checkpoint.tx_id)
        .bind(checkpoint.global_position)
        .bind(self.settings.batch_size.clamp(1, MAX_BATCH))
        .fetch_all(&mut *connection)
        .await?;
        Ok(rows)
    }

    /// Counts events committed after the checkpoint (published or not yet visible below the
    /// watermark) and records it as the lag.
    async fn measure_lag(
        &self,
        connection: &mut PgConnection,
        checkpoint: &Checkpoint,
    ) -> Result<i64, RelayError> {
        let lag: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(&checkpoint.tx_id)
        .bind(checkpoint.global_position)
        .fetch_one(&mut *connection)
        .await?;
        self.status.lag.store(lag, Ordering::Relaxed);
        nmp_metrics::relay_lag(&self.stream_name, lag.max(0) as u64);
        self.status
            .measured_at_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(lag)
    }

    /// Publishes a batch with every publish in flight at once, then waits for all acks.
    async fn publish(&self, batch: &[StoredEvent]) -> Result<(), RelayError> {
        let prefix = &self.settings.stream.prefix;
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let publish = PublishMessage::build()
                .payload(event.payload.clone().into_bytes().into())
                .headers(message::headers(prefix, event));
            let ack = self
                .jetstream
                .send_publish(message::subject(prefix, event), publish)
                .await
                .map_err(|e| RelayError::Publish(e.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            // A duplicate (already stored) counts as success.
            ack.await.map_err(|e| RelayError::Publish(e.to_string()))?;
        }
        if let Some(observer) = &self.observer {
            let positions: Vec<i64> = batch.iter().map(|e| e.global_position).collect();
            observer(&positions, Instant::now());
        }
        Ok(())
    }
}

/// Connects to NATS for the relay and the NATS API: retries in the background, so nmp starts
/// (and accepts commands) while NATS is down.
pub async fn connect_nats(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .name("nmp")
        .connect(url)
        .await
}
