//! `nmp bench relay`: measures the relay against the real PostgreSQL and NATS.
//!
//! Throughput: N events are appended straight into `events` in large multi-row INSERTs and
//! committed before the relay starts; the clock runs from the relay's start to the last
//! acknowledgement. Latency: with the relay caught up and idle, writers commit one event per
//! transaction at a fixed rate; each event's commit-to-ack time is the moment the relay saw its
//! batch acknowledged (its `AckObserver`) minus the moment the writer's COMMIT returned.
//!
//! Everything runs in a fresh database (`nmp_bench_<random>`, dropped afterwards) and on a
//! fresh stream (deleted afterwards), unless `--database-url` names a database to use.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use clap::{Args, Subcommand};
use relay::{AckObserver, Relay, RelaySettings, StreamSettings};
use serde_json::json;
use sqlx::PgPool;
use tokio::task::{JoinHandle, JoinSet};

/// The goals, against which the report says "met" or "MISSED".
const GOAL_EVENTS_PER_SEC: f64 = 20_000.0;
const GOAL_P99_MS: f64 = 50.0;
/// Rows per INSERT when loading the throughput phase's events.
const LOAD_CHUNK: usize = 5_000;
/// The relay's largest batch (async-nats lets a JetStream context have 5,000 acks pending).
const MAX_ACKS_IN_FLIGHT: i64 = relay::MAX_BATCH;
const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

#[derive(Subcommand)]
pub enum Bench {
    /// Relay publish throughput and commit-to-ack latency (fresh database and stream).
    Relay(RelayArgs),
}

#[derive(Args)]
pub struct RelayArgs {
    /// Events appended before the relay starts (throughput phase).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second committed during the latency phase.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Length of the latency phase in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Database to use, created and migrated if missing; synthetic events are appended to it
    /// and left there. Default: a fresh `nmp_bench_<random>` on the local server, dropped
    /// afterwards.
    #[arg(long)]
    database_url: Option<String>,
    /// NATS server with JetStream; the bench creates a fresh stream and deletes it afterwards.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Concurrent writer connections in the latency phase (each event is its own transaction).
    #[arg(long, default_value_t = 8)]
    writers: u64,
    /// Override the relay's batch size, at most 4000 (default: the relay's own default).
    #[arg(long)]
    batch_size: Option<i64>,
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match bench {
        Bench::Relay(args) => relay_bench(args).await,
    }
}

async fn relay_bench(args: RelayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        args.rate > 0 && args.seconds > 0,
        "--rate and --seconds must be positive"
    );
    anyhow::ensure!(args.writers > 0, "--writers must be at least 1");
    // async-nats lets a JetStream context have 5,000 publishes awaiting their acks; the relay
    // sends a whole batch before awaiting any ack, so a larger batch waits forever.
    anyhow::ensure!(
        args.batch_size
            .is_none_or(|size| (1..=MAX_ACKS_IN_FLIGHT).contains(&size)),
        "--batch-size must be 1 to {MAX_ACKS_IN_FLIGHT}"
    );
    let run_id = random_u64();
    let prefix = format!("bench_{:08x}", run_id as u32);
    let (database_url, fresh_database) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let name = format!("nmp_bench_{:08x}", run_id as u32);
            (format!("{LOCAL_SERVER}/{name}"), Some(name))
        }
    };
    let client = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", args.nats_url))?;
    let jetstream = jetstream::new(client);
    let stream = StreamSettings::new(&prefix)?;

    let outcome = tokio::select! {
        outcome = measure(&args, &database_url, &jetstream, &stream, run_id) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };

    // Clean up whatever happened above.
    if let Err(error) = jetstream.delete_stream(stream.stream_name()).await {
        eprintln!(
            "warning: cannot delete stream {}: {error}",
            stream.stream_name()
        );
    }
    match &fresh_database {
        Some(name) => {
            if let Err(error) = drop_database(name).await {
                eprintln!("warning: cannot drop database {name}: {error}");
            }
        }
        None => {
            if let Err(error) = forget_checkpoint(&database_url, &prefix).await {
                eprintln!("warning: cannot remove the bench relay's checkpoint: {error}");
            }
        }
    }
    let report = outcome?;
    report.print(&args, &database_url, &stream);
    Ok(())
}

/// What the observer saw: every acknowledged position with the moment its batch's last ack
/// arrived, and the batches' sizes.
#[derive(Default)]
struct Acks {
    count: AtomicU64,
    log: Mutex<Vec<(i64, Instant)>>,
    batches: Mutex<Vec<(Instant, usize)>>,
}

impl Acks {
    fn observer(self: &Arc<Self>) -> AckObserver {
        let acks = self.clone();
        Arc::new(move |positions: &[i64], at: Instant| {
            acks.log
                .lock()
                .unwrap()
                .extend(positions.iter().map(|&p| (p, at)));
            acks.batches.lock().unwrap().push((at, positions.len()));
            acks.count
                .fetch_add(positions.len() as u64, Ordering::Release);
        })
    }

    fn batches_between(&self, from: Instant, to: Instant) -> (usize, usize) {
        let batches = self.batches.lock().unwrap();
        let within = batches.iter().filter(|(at, _)| *at >= from && *at <= to);
        within.fold((0, 0), |(n, events), (_, size)| (n + 1, events + size))
    }
}

/// Aborts the task when dropped, so an interrupted or failed bench leaves no relay running.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Report {
    loaded: u64,
    load_time: Duration,
    payload_bytes: usize,
    metadata_bytes: usize,
    published: u64,
    publish_time: Duration,
    first_ack: Duration,
    publish_batches: usize,
    stream_messages: u64,
    latency: Latency,
}

struct Latency {
    committed: usize,
    acked: usize,
    achieved_rate: f64,
    /// Commit-to-ack in milliseconds, sorted.
    millis: Vec<f64>,
    /// Scheduled-to-committed in milliseconds, sorted: how late the writers were.
    commit_millis: Vec<f64>,
    batches: usize,
    batch_events: usize,
}

async fn measure(
    args: &RelayArgs,
    database_url: &str,
    jetstream: &jetstream::Context,
    stream: &StreamSettings,
    run_id: u64,
) -> anyhow::Result<Report> {
    let connections = u32::try_from(args.writers)
        .unwrap_or(u32::MAX)
        .saturating_add(4);
    let pool = store::connect(database_url, connections)
        .await
        .context("cannot open the bench database")?;
    let mut factory = EventFactory::new(&pool, run_id).await?;

    // Throughput phase: load, commit, then let the relay publish it all.
    let started = Instant::now();
    let (payload_bytes, metadata_bytes) = load(&pool, &mut factory, args.events).await?;
    let load_time = started.elapsed();
    // The statistics autovacuum would have gathered on a table of this size.
    sqlx::query("ANALYZE events").execute(&pool).await?;
    let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    let backlog = backlog as u64;

    relay::ensure_stream(jetstream, stream).await?;
    let mut settings = RelaySettings::new(stream.clone());
    if let Some(batch_size) = args.batch_size {
        settings.batch_size = batch_size;
    }
    let acks = Arc::new(Acks::default());
    let relay =
        Relay::new(pool.clone(), jetstream.clone(), settings).with_ack_observer(acks.observer());
    let relay_started = Instant::now();
    let _relay = AbortOnDrop(tokio::spawn(relay.run()));
    wait_for_acks(&acks, backlog, Duration::from_secs(60)).await?;
    let (last_ack, first_ack) = {
        let log = acks.log.lock().unwrap();
        let last = log.iter().map(|(_, at)| *at).max().unwrap_or(relay_started);
        let first = log.iter().map(|(_, at)| *at).min().unwrap_or(relay_started);
        (last, first)
    };
    let publish_time = last_ack - relay_started;
    let (publish_batches, _) = acks.batches_between(relay_started, last_ack);
    let stream_messages = jetstream
        .get_stream(stream.stream_name())
        .await?
        .info()
        .await?
        .state
        .messages;

    // Latency phase: the relay is caught up; let it settle into waiting for notifications.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let latency = latency_phase(args, &pool, &mut factory, &acks).await?;
    Ok(Report {
        loaded: args.events,
        load_time,
        payload_bytes,
        metadata_bytes,
        published: backlog,
        publish_time,
        first_ack: first_ack - relay_started,
        publish_batches,
        stream_messages,
        latency,
    })
}

/// Appends `count` events in multi-row INSERTs of `LOAD_CHUNK` rows, one transaction each.
/// Returns the average payload and metadata sizes.
async fn load(
    pool: &PgPool,
    factory: &mut EventFactory,
    count: u64,
) -> anyhow::Result<(usize, usize)> {
    let (mut payload_total, mut metadata_total) = (0usize, 0usize);
    let mut next = 0u64;
    while next < count {
        let end = (next + LOAD_CHUNK as u64).min(count);
        let mut ids = Vec::with_capacity(LOAD_CHUNK);
        let mut payloads = Vec::with_capacity(LOAD_CHUNK);
        let mut metadata = Vec::with_capacity(LOAD_CHUNK);
        for index in next..end {
            let event = factory.number_added(index);
            payload_total += event.payload.len();
            metadata_total += event.metadata.len();
            ids.push(event.id);
            payloads.push(event.payload);
            metadata.push(event.metadata);
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             SELECT 'number', id, 1, 'NumberAdded', '1.0', payload::jsonb, metadata::jsonb \
               FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(id, payload, metadata)",
        )
        .bind(&ids)
        .bind(&payloads)
        .bind(&metadata)
        .execute(pool)
        .await
        .context("cannot load the throughput phase's events")?;
        next = end;
    }
    let count = count as usize;
    Ok((payload_total / count, metadata_total / count))
}

async fn wait_for_acks(acks: &Acks, target: u64, stall: Duration) -> anyhow::Result<()> {
    let mut last = (acks.count.load(Ordering::Acquire), Instant::now());
    loop {
        let count = acks.count.load(Ordering::Acquire);
        if count >= target {
            return Ok(());
        }
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() > stall {
            anyhow::bail!(
                "the relay acknowledged {count} of {target} events and then nothing for {stall:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Committed by a writer: the event's position, when its transaction was due, and when its
/// COMMIT returned.
struct Commit {
    position: i64,
    due: Instant,
    committed: Instant,
}

async fn latency_phase(
    args: &RelayArgs,
    pool: &PgPool,
    factory: &mut EventFactory,
    acks: &Acks,
) -> anyhow::Result<Latency> {
    let total = args.rate * args.seconds;
    let first_index = args.events;
    // Events are prepared up front so that writers only talk to the database.
    let mut plans: Vec<Vec<(u64, Event)>> = (0..args.writers).map(|_| Vec::new()).collect();
    for n in 0..total {
        plans[(n % args.writers) as usize].push((n, factory.number_added(first_index + n)));
    }
    let start = Instant::now() + Duration::from_millis(100);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut writers = JoinSet::new();
    for plan in plans {
        let pool = pool.clone();
        writers.spawn(async move {
            let mut commits = Vec::with_capacity(plan.len());
            for (n, event) in plan {
                let due = start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(due.into()).await;
                let mut transaction = pool.begin().await?;
                let position: i64 = sqlx::query_scalar(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                         event_version, payload, metadata) \
                     VALUES ('number', $1, 1, 'NumberAdded', '1.0', $2::jsonb, $3::jsonb) \
                     RETURNING global_position",
                )
                .bind(&event.id)
                .bind(&event.payload)
                .bind(&event.metadata)
                .fetch_one(&mut *transaction)
                .await?;
                transaction.commit().await?;
                commits.push(Commit {
                    position,
                    due,
                    committed: Instant::now(),
                });
            }
            Ok::<_, sqlx::Error>(commits)
        });
    }
    let mut commits = Vec::with_capacity(total as usize);
    while let Some(joined) = writers.join_next().await {
        commits.extend(joined?.context("a latency-phase writer failed")?);
    }
    let last_commit = commits.iter().map(|c| c.committed).max().unwrap_or(start);
    let achieved_rate = commits.len() as f64 / (last_commit - start).as_secs_f64();

    // Wait (a while) for the last acks, then match commits with acks by position.
    let mut wanted: Vec<i64> = commits.iter().map(|c| c.position).collect();
    wanted.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(30);
    let acked: HashMap<i64, Instant> = loop {
        let acked: HashMap<i64, Instant> = {
            let log = acks.log.lock().unwrap();
            let mut acked = HashMap::with_capacity(wanted.len());
            for &(position, at) in log.iter() {
                if wanted.binary_search(&position).is_ok() {
                    acked.entry(position).or_insert(at);
                }
            }
            acked
        };
        if acked.len() == wanted.len() || Instant::now() > deadline {
            break acked;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let last_ack = acked.values().max().copied().unwrap_or(last_commit);
    let (batches, batch_events) = acks.batches_between(start, last_ack);
    let mut millis: Vec<f64> = commits
        .iter()
        .filter_map(|c| {
            acked
                .get(&c.position)
                .map(|at| ms_between(*at, c.committed))
        })
        .collect();
    millis.sort_by(f64::total_cmp);
    let mut commit_millis: Vec<f64> = commits
        .iter()
        .map(|c| ms_between(c.committed, c.due))
        .collect();
    commit_millis.sort_by(f64::total_cmp);
    Ok(Latency {
        committed: commits.len(),
        acked: acked.len(),
        achieved_rate,
        millis,
        commit_millis,
        batches,
        batch_events,
    })
}

fn ms_between(later: Instant, earlier: Instant) -> f64 {
    later.saturating_duration_since(earlier).as_secs_f64() * 1_000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

impl Report {
    fn publish_rate(&self) -> f64 {
        self.published as f64 / self.publish_time.as_secs_f64()
    }

    fn print(&self, args: &RelayArgs, database_url: &str, stream: &StreamSettings) {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let latency = &self.latency;
        let (p50, p90, p99, max) = (
            percentile(&latency.millis, 50.0),
            percentile(&latency.millis, 90.0),
            percentile(&latency.millis, 99.0),
            latency.millis.last().copied().unwrap_or(f64::NAN),
        );
        let rate = self.publish_rate();
        let database = database_url.rsplit('/').next().unwrap_or(database_url);
        println!(
            "nmp bench relay: {cpus} CPUs, database {database}, stream {}",
            stream.stream_name()
        );
        println!(
            "load        {} NumberAdded events on as many aggregates (payload ~{} B, metadata ~{} B), \
             {LOAD_CHUNK} rows per INSERT: {:.2} s ({:.0} events/s)",
            self.loaded,
            self.payload_bytes,
            self.metadata_bytes,
            self.load_time.as_secs_f64(),
            self.loaded as f64 / self.load_time.as_secs_f64()
        );
        println!(
            "throughput  {} events acknowledged {:.2} s after the relay started: {rate:.0} events/s \
             (goal >= {GOAL_EVENTS_PER_SEC:.0}: {})",
            self.published,
            self.publish_time.as_secs_f64(),
            verdict(rate >= GOAL_EVENTS_PER_SEC)
        );
        println!(
            "            first ack after {:.0} ms; {} batches of ~{} events; stream holds {} messages",
            self.first_ack.as_secs_f64() * 1_000.0,
            self.publish_batches,
            self.published as usize / self.publish_batches.max(1),
            self.stream_messages
        );
        println!(
            "latency     {} events committed over {} s by {} writers, one transaction per event: \
             {:.1} events/s (target {})",
            latency.committed, args.seconds, args.writers, latency.achieved_rate, args.rate
        );
        println!(
            "            commit-to-ack p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms \
             (goal p99 <= {GOAL_P99_MS:.0} ms: {})",
            verdict(p99 <= GOAL_P99_MS && latency.acked == latency.committed)
        );
        println!(
            "            {} of {} acknowledged; {} relay batches of ~{:.1} events; writers' commits \
             p99 {:.1} ms after due",
            latency.acked,
            latency.committed,
            latency.batches,
            latency.batch_events as f64 / latency.batches.max(1) as f64,
            percentile(&latency.commit_millis, 99.0)
        );
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let summary = json!({
            "bench": "relay",
            "cpus": cpus,
            "events": self.published,
            "publish_seconds": round(self.publish_time.as_secs_f64()),
            "publish_events_per_s": rate.round(),
            "publish_batches": self.publish_batches,
            "stream_messages": self.stream_messages,
            "latency_target_rate": args.rate,
            "latency_achieved_rate": round(latency.achieved_rate),
            "latency_events": latency.committed,
            "latency_acked": latency.acked,
            "latency_writers": args.writers,
            "commit_to_ack_ms": {
                "p50": round(p50), "p90": round(p90), "p99": round(p99), "max": round(max),
            },
            "goal_publish_met": rate >= GOAL_EVENTS_PER_SEC,
            "goal_p99_met": p99 <= GOAL_P99_MS && latency.acked == latency.committed,
        });
        println!("{summary}");
    }
}

/// One synthetic event, shaped like what `nmp` stores for a number added through the API.
struct Event {
    id: String,
    payload: String,
    metadata: String,
}

struct EventFactory {
    run: u64,
    time: String,
    random: SplitMix64,
}

impl EventFactory {
    async fn new(pool: &PgPool, run_id: u64) -> anyhow::Result<Self> {
        let time: String = sqlx::query_scalar(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        )
        .fetch_one(pool)
        .await?;
        Ok(EventFactory {
            run: run_id % 10_000,
            time,
            random: SplitMix64(run_id),
        })
    }

    /// A NumberAdded of number `index` (`+99<run><index>`: country code 99 is unassigned), on
    /// one of 100 accounts, with request metadata as the API records it.
    fn number_added(&mut self, index: u64) -> Event {
        let id = format!("+99{:04}{:08}", self.run, index);
        let account = format!("bench-account-{:02}", index % 100);
        let payload = json!({"NumberAdded": {
            "telephone_number": id,
            "account": account,
            "details": {
                "custom_sip_header": format!("{account}-commsgw"),
                "teams_phone_mobile": null,
                "teams_direct_routing": null,
                "teams_operator_connect": {
                    "enabled": true,
                    "configuration": {
                        "usage": "CallingUserAssignment",
                        "location_id": null,
                        "civic_address_id": null,
                        "additional_usages": [],
                        "choosable_capabilities": ["InboundCalling"],
                        "displayed_country_code": null,
                        "allow_tenant_address_update": false,
                    },
                    "assignment_status": "assigned",
                },
                "zoom_phone_cloud_peering": null,
                "azure_operator_call_protection": null,
            },
            "sync_required": true,
        }});
        let r = &mut self.random;
        let correlation_id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r.next() as u32,
            r.next() as u16,
            r.next() & 0xfff,
            r.next() & 0xfff,
            r.next() & 0xffff_ffff_ffff
        );
        let traceparent = format!("00-{:016x}{:016x}-{:016x}-01", r.next(), r.next(), r.next());
        let metadata = json!({
            "subject": "nmp-bench",
            "roles": ["ProvisioningAPI.Admin"],
            "time": self.time,
            "correlation_id": correlation_id,
            "traceparent": traceparent,
        });
        Event {
            id,
            payload: payload.to_string(),
            metadata: metadata.to_string(),
        }
    }
}

/// A small, fast generator for ids in the synthetic events (not for anything secret).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A random number from the standard library's per-process hash keys, mixed with the clock.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    let mut connection: sqlx::PgConnection =
        sqlx::Connection::connect(&format!("{LOCAL_SERVER}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut connection)
        .await?;
    Ok(())
}

async fn forget_checkpoint(database_url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut connection: sqlx::PgConnection = sqlx::Connection::connect(database_url).await?;
    sqlx::query("DELETE FROM relay_checkpoints WHERE relay_name = $1")
        .bind(prefix)
        .execute(&mut connection)
        .await?;
    Ok(())
}
