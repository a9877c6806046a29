//! `nmp-bench relay`: measures the relay against the real PostgreSQL and NATS.
//! `nmp-bench projections`: measures the read side (see `projections_bench` below).
//!
//! Throughput: N events are committed through `EventStore::commit` (the command side's append,
//! with real sequences and chain links) in large commits before the relay starts; the clock runs from the relay's start to the last
//! acknowledgement. Latency: with the relay caught up and idle, writers commit one event per
//! `EventStore::commit` at a fixed rate; each event's commit-to-ack time is the moment the relay saw its
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
use domain::{
    Account, AccountEvent, AccountName, AccountServices, AssignmentStatus, Capability, E164,
    Identifier, Number, NumberDetails, NumberEvent, PlainService, ProvisioningError,
    SipHeaderValue, SyncableService, TeamsNumberConfiguration, TeamsNumberService, TenantId, Usage,
};
use projections::filter;
use projections::query::{self, ListQuery};
use relay::{AckObserver, Relay, RelaySettings, StreamSettings};
use serde_json::json;
use sqlx::PgPool;
use store::{Changes, EventMetadata, EventStore, TenantLink};
use tokio::task::{JoinHandle, JoinSet};

/// The performance goals, against which the report says "met" or "MISSED".
const GOAL_EVENTS_PER_SEC: f64 = 20_000.0;
const GOAL_P99_MS: f64 = 50.0;
/// Events per commit when loading the throughput phase's events.
const LOAD_CHUNK: usize = 5_000;
/// The relay's largest batch (async-nats lets a JetStream context have 5,000 acks pending).
const MAX_ACKS_IN_FLIGHT: i64 = relay::MAX_BATCH;
const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

#[derive(Subcommand)]
pub enum Bench {
    /// Relay publish throughput and commit-to-ack latency (fresh database and stream).
    Relay(RelayArgs),
    /// Read side: seed, rebuild, list and count queries, projection lag (fresh database and
    /// stream).
    Projections(ProjectionsArgs),
    /// Provisioning saga throughput against the backend simulator, without and with the rate
    /// limit (fresh database and stream per run).
    Saga(crate::bench_saga::SagaArgs),
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
    // The projections bench runs statements over 1 s on purpose (seed, rebuild): sqlx's
    // slow-statement warnings would drown its report.
    let default = match bench {
        Bench::Relay(_) => "warn",
        Bench::Projections(_) => "warn,sqlx::query=error,sqlx::postgres::notice=error",
        Bench::Saga(_) => "warn,sqlx::query=error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match bench {
        Bench::Relay(args) => relay_bench(args).await,
        Bench::Projections(args) => projections_bench(args).await,
        Bench::Saga(args) => crate::bench_saga::run(args).await,
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
    let store = EventStore::new(pool.clone());
    let mut factory = EventFactory::new(run_id);

    // Throughput phase: load, commit, then let the relay publish it all.
    let started = Instant::now();
    load(&store, &mut factory, args.events).await?;
    let load_time = started.elapsed();
    let (payload_bytes, metadata_bytes) = stored_sizes(&pool).await?;
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
    let latency = latency_phase(args, &store, &mut factory, &acks).await?;
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

/// Commits `count` events through the event store, `LOAD_CHUNK` to a commit (one request's
/// metadata each).
async fn load(store: &EventStore, factory: &mut EventFactory, count: u64) -> anyhow::Result<()> {
    let mut next = 0u64;
    while next < count {
        let end = (next + LOAD_CHUNK as u64).min(count);
        let mut changes = Changes::new();
        for index in next..end {
            let (id, event) = factory.number_added(index)?;
            changes.append::<Number>(id.as_str(), 0, &[event])?;
        }
        store
            .commit(changes, &factory.metadata())
            .await
            .context("cannot load the throughput phase's events")?;
        next = end;
    }
    Ok(())
}

/// The average sizes of the stored events' payload and metadata (with its chain link), in bytes.
async fn stored_sizes(pool: &PgPool) -> anyhow::Result<(usize, usize)> {
    let (payload, metadata): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(avg(octet_length(payload::text)), 0)::float8, \
                coalesce(avg(octet_length(metadata::text)), 0)::float8 FROM events",
    )
    .fetch_one(pool)
    .await?;
    Ok((payload as usize, metadata as usize))
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
    store: &EventStore,
    factory: &mut EventFactory,
    acks: &Acks,
) -> anyhow::Result<Latency> {
    let total = args.rate * args.seconds;
    let first_index = args.events;
    // Events are prepared up front so that writers only talk to the database.
    let mut plans: Vec<Vec<(u64, E164, NumberEvent, EventMetadata)>> =
        (0..args.writers).map(|_| Vec::new()).collect();
    for n in 0..total {
        let (id, event) = factory.number_added(first_index + n)?;
        plans[(n % args.writers) as usize].push((n, id, event, factory.metadata()));
    }
    let start = Instant::now() + Duration::from_millis(100);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut writers = JoinSet::new();
    for plan in plans {
        let store = store.clone();
        writers.spawn(async move {
            let mut commits = Vec::with_capacity(plan.len());
            for (n, id, event, metadata) in plan {
                let due = start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(due.into()).await;
                let mut changes = Changes::new();
                changes.append::<Number>(id.as_str(), 0, &[event])?;
                store.commit(changes, &metadata).await?;
                let committed = Instant::now();
                // Where the store put it, to match it with the relay's acknowledgement.
                let position: i64 = sqlx::query_scalar(
                    "SELECT global_position FROM events \
                      WHERE aggregate_type = 'number' AND aggregate_id = $1 AND sequence = 1",
                )
                .bind(id.as_str())
                .fetch_one(store.pool())
                .await?;
                commits.push(Commit {
                    position,
                    due,
                    committed,
                });
            }
            Ok::<_, anyhow::Error>(commits)
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
            "nmp-bench relay: {cpus} CPUs, database {database}, stream {}",
            stream.stream_name()
        );
        println!(
            "load        {} NumberAdded events on as many aggregates (payload ~{} B, metadata ~{} B), \
             {LOAD_CHUNK} events per commit: {:.2} s ({:.0} events/s)",
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
            "latency     {} events committed over {} s by {} writers, one commit per event: \
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

/// Synthetic events, shaped like what `nmp` stores for a number added through the API.
struct EventFactory {
    run: u64,
    random: SplitMix64,
}

impl EventFactory {
    fn new(run_id: u64) -> Self {
        EventFactory {
            run: run_id % 10_000,
            random: SplitMix64(run_id),
        }
    }

    /// A NumberAdded of number `index` (`+99<run><index>`: country code 99 is unassigned), on
    /// one of 100 accounts.
    fn number_added(&self, index: u64) -> anyhow::Result<(E164, NumberEvent)> {
        let id = E164::parse(format!("+99{:04}{:08}", self.run, index))?;
        let account = format!("bench-account-{:02}", index % 100);
        let details = NumberDetails {
            custom_sip_header: Some(SipHeaderValue::parse(format!("{account}-commsgw"))?),
            teams_operator_connect: Some(TeamsNumberService {
                enabled: true,
                assignment_status: Some(AssignmentStatus::Assigned),
                configuration: Some(TeamsNumberConfiguration {
                    usage: Usage::CallingUserAssignment,
                    choosable_capabilities: vec![Capability::InboundCalling],
                    additional_usages: Vec::new(),
                    civic_address_id: None,
                    location_id: None,
                    allow_tenant_address_update: false,
                    displayed_country_code: None,
                }),
            }),
            ..NumberDetails::default()
        };
        let event = NumberEvent::NumberAdded {
            telephone_number: id.clone(),
            account: AccountName::parse(account)?,
            details,
            sync_required: true,
        };
        Ok((id, event))
    }

    /// A request's metadata, as the API records it.
    fn metadata(&mut self) -> EventMetadata {
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
        EventMetadata {
            subject: "nmp-bench".to_string(),
            roles: vec!["ProvisioningAPI.Admin".to_string()],
            time: chrono::Utc::now(),
            client_request_id: None,
            ticket_id: None,
            correlation_id,
            traceparent: Some(traceparent),
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

// ==== nmp-bench projections ==================================================================
//
// Issue 4's goals for the read side: with 1,000,000 numbers across 1,000 accounts, a filtered,
// paged list p99 <= 20 ms and a count <= 100 ms; projection lag p99 <= 200 ms at 1,000 events/s;
// rebuild >= 20,000 events/s. Phases, in a fresh database and on a fresh stream (both removed
// afterwards):
//
// 1. Seed: the events the API and the backend's answers would have written for the accounts and
//    numbers, committed through `EventStore::commit` as the command side commits them (real
//    sequences and tamper-evidence chains, memberships, tenant links). Per account an
//    AccountCreated (Operator Connect on, some with Zoom or Call Protection) and mostly an
//    AccountProvisioned; per batch of 100 numbers one command of 100 NumberAdded with their
//    memberships, then one with, mostly, their NumberProvisioned or NumberProvisioningFailed.
// 2. Rebuild: `projections::rebuild` of numbers, accounts and the audit log on the seeded store;
//    events replayed per second of each. This fills the read tables for the next phases.
// 3. Lists and counts: `projections::query::{numbers, accounts}`, the functions the list
//    endpoints call, one at a time: pages of 200 at random skips within the result, and totals
//    (countRecords). A case whose p99 misses its goal gets an EXPLAIN (ANALYZE, BUFFERS).
// 4. Lag: a relay (starting where the seed ends) and a projector on the pool and event store the
//    command service uses, as `nmp serve` runs them; writers update existing numbers through
//    `CommandService::upsert_numbers` at a fixed rate. For one event in `rate / 100`, a
//    dedicated connection polls the number's read row every 1-2 ms; the lag is the time from the
//    command returning (its COMMIT done) to the poll that saw the row at that version.

/// The performance goals, against which the report says "met" or "MISSED".
const GOAL_LIST_P99_MS: f64 = 20.0;
const GOAL_COUNT_P99_MS: f64 = 100.0;
const GOAL_LAG_P99_MS: f64 = 200.0;
const GOAL_REBUILD_EVENTS_PER_SEC: f64 = 20_000.0;
/// Numbers per seeded upsert command (and per NumbersAdded), as a BSS would batch them.
const SEED_BATCH: u64 = 100;
/// Rows per page: the lists' default `maxpagesize`.
const PAGE_SIZE: u64 = 200;
/// The catch-up sub-phase commits `rate` × this many events, 100 per command.
const CATCH_UP_SECONDS: u64 = 10;
const CATCH_UP_BATCH: u64 = 100;
/// Catch-up commands are numbered from here on, past any lag-phase command.
const CATCH_UP_GROUPS_FROM: u64 = 1 << 40;
/// At most this many watched events are polled at once, the oldest first: the projector works
/// through the stream roughly in order, and a backlog must not make the poll itself heavy.
const LAG_POLL_WINDOW: usize = 64;
/// Events of the lag phase polled per second (one in `rate / LAG_SAMPLES_PER_SEC`).
const LAG_SAMPLES_PER_SEC: u64 = 100;
/// Pause between two polls of the read rows in the lag phase.
const LAG_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Connections of the pool shared by the command service, relay and projector: `nmp serve`'s
/// default `database_max_connections`.
const SERVE_POOL: u32 = 20;
/// Number ids are `+1<2 + a / 1000><a % 1000:03><k:06>`: at most 5,000 accounts (no toll-free
/// `+18…` prefix) and 1,000,000 numbers per account.
const MAX_ACCOUNTS: u64 = 5_000;
const MAX_NUMBERS_PER_ACCOUNT: u64 = 1_000_000;
const USAGES: [Usage; 3] = [
    Usage::CallingUserAssignment,
    Usage::FirstPartyAppAssignment,
    Usage::ConferenceAssignment,
];

#[derive(Args)]
pub struct ProjectionsArgs {
    /// Numbers seeded.
    #[arg(long, default_value_t = 1_000_000)]
    numbers: u64,
    /// Accounts the numbers are spread over, evenly (at most 5,000).
    #[arg(long, default_value_t = 1_000)]
    accounts: u64,
    /// Events per second committed through the command service in the lag phase.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Length of the lag phase in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// List queries timed, and as many counts.
    #[arg(long, default_value_t = 500)]
    queries: u64,
    /// Concurrent writers in the lag phase.
    #[arg(long, default_value_t = 8)]
    writers: u64,
    /// Numbers per upsert command in the lag phase (one NumberUpdated event each).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Writers committing the seed through the event store side by side, each taking every
    /// n-th account.
    #[arg(long, default_value_t = 2)]
    loaders: u64,
    /// NATS server with JetStream; the bench creates a fresh stream and deletes it afterwards.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

async fn projections_bench(args: ProjectionsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_ACCOUNTS).contains(&args.accounts),
        "--accounts must be 1 to {MAX_ACCOUNTS}"
    );
    anyhow::ensure!(
        args.numbers >= args.accounts
            && args.numbers.div_ceil(args.accounts) <= MAX_NUMBERS_PER_ACCOUNT,
        "--numbers must be at least --accounts and at most {MAX_NUMBERS_PER_ACCOUNT} per account"
    );
    anyhow::ensure!(
        args.rate > 0 && args.seconds > 0 && args.queries > 0,
        "--rate, --seconds and --queries must be positive"
    );
    anyhow::ensure!(
        args.writers > 0 && args.loaders > 0,
        "--writers and --loaders must be at least 1"
    );
    anyhow::ensure!(
        args.batch > 0 && args.batch <= args.numbers / args.accounts,
        "--batch must be 1 to the numbers of one account"
    );
    let run_id = random_u64();
    let prefix = format!("bench_{:08x}", run_id as u32);
    let database = format!("nmp_bench_{:08x}", run_id as u32);
    let database_url = format!("{LOCAL_SERVER}/{database}");
    let client = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", args.nats_url))?;
    let jetstream = jetstream::new(client);
    let stream = StreamSettings::new(&prefix)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "nmp-bench projections: {cpus} CPUs, database {database}, stream {}; {} numbers across {} accounts",
        stream.stream_name(),
        args.numbers,
        args.accounts
    );

    let outcome = tokio::select! {
        outcome = measure_projections(&args, &database_url, &jetstream, &stream, run_id) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };

    // Clean up whatever happened above; the stream exists only once the lag phase began.
    if jetstream.get_stream(stream.stream_name()).await.is_ok()
        && let Err(error) = jetstream.delete_stream(stream.stream_name()).await
    {
        eprintln!(
            "warning: cannot delete stream {}: {error}",
            stream.stream_name()
        );
    }
    if let Err(error) = drop_database(&database).await {
        eprintln!("warning: cannot drop database {database}: {error}");
    }
    let summary = outcome?;
    println!("{summary}");
    Ok(())
}

async fn measure_projections(
    args: &ProjectionsArgs,
    database_url: &str,
    jetstream: &jetstream::Context,
    stream: &StreamSettings,
    run_id: u64,
) -> anyhow::Result<serde_json::Value> {
    let pool = store::connect(database_url, SERVE_POOL)
        .await
        .context("cannot open the bench database")?;
    let result = projections_phases(args, &pool, database_url, jetstream, stream, run_id).await;
    // Closed before the database is dropped, so no connection is cut under a running task.
    pool.close().await;
    result
}

async fn projections_phases(
    args: &ProjectionsArgs,
    pool: &PgPool,
    database_url: &str,
    jetstream: &jetstream::Context,
    stream: &StreamSettings,
    run_id: u64,
) -> anyhow::Result<serde_json::Value> {
    let pool = pool.clone();
    let layout = Layout {
        numbers: args.numbers,
        accounts: args.accounts,
    };
    let round = |x: f64| (x * 100.0).round() / 100.0;

    let store = EventStore::new(pool.clone());
    let seeded = seed(&store, layout, args.loaders, run_id).await?;
    seeded.print(args.loaders);

    let rebuilt = rebuild_phase(&store, database_url).await?;
    // What autovacuum does to freshly filled tables within a minute or two: statistics for the
    // planner, and the visibility map that lets counts use index-only scans.
    let started = Instant::now();
    for table in ["read_numbers", "read_accounts", "audit_log"] {
        // Not a prepared statement: VACUUM cannot run inside a transaction block.
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
            .execute(&pool)
            .await?;
    }
    println!(
        "            then VACUUM (ANALYZE) of the three tables: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let queried = query_phase(&pool, layout, args.queries, run_id).await?;
    queried.print();
    queried.explain_misses(&pool, layout).await?;

    let lag = lag_phase(
        args,
        &store,
        layout,
        database_url,
        jetstream,
        stream,
        run_id,
    )
    .await?;
    lag.print(args);

    let rebuild_rate = |target: &str| {
        rebuilt
            .iter()
            .find(|r| r.name == target)
            .map_or(0.0, |r| r.rate())
    };
    let stats = |sorted: &[f64]| {
        json!({
            "p50": round(percentile(sorted, 50.0)),
            "p99": round(percentile(sorted, 99.0)),
            "max": round(sorted.last().copied().unwrap_or(f64::NAN)),
        })
    };
    let lists_p99 = percentile(&queried.all_lists, 99.0);
    let counts_p99 = percentile(&queried.all_counts, 99.0);
    let lag_p99 = percentile(&lag.millis, 99.0);
    let rebuild_met = rebuilt
        .iter()
        .all(|r| r.rate() >= GOAL_REBUILD_EVENTS_PER_SEC);
    Ok(json!({
        "bench": "projections",
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "numbers": args.numbers,
        "accounts": args.accounts,
        "seed_events": seeded.counts.events,
        "seed_seconds": round(seeded.load_time.as_secs_f64()),
        "rebuild_events_per_s": {
            "numbers": rebuild_rate("numbers").round(),
            "accounts": rebuild_rate("accounts").round(),
            "audit": rebuild_rate("audit").round(),
            "all": (rebuilt.iter().map(|r| r.events).sum::<u64>() as f64
                / rebuilt.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>())
            .round(),
        },
        "list_ms": stats(&queried.all_lists),
        "count_ms": stats(&queried.all_counts),
        "catch_up_events_per_s":
            (lag.catch_up.events as f64 / lag.catch_up.elapsed.as_secs_f64()).round(),
        "lag_target_rate": args.rate,
        "lag_achieved_rate": round(lag.achieved_rate),
        "lag_samples": lag.millis.len(),
        "lag_unseen": lag.unseen,
        "lag_ms": {
            "p50": round(percentile(&lag.millis, 50.0)),
            "p90": round(percentile(&lag.millis, 90.0)),
            "p99": round(lag_p99),
            "max": round(lag.millis.last().copied().unwrap_or(f64::NAN)),
        },
        "goal_list_met": lists_p99 <= GOAL_LIST_P99_MS,
        "goal_count_met": counts_p99 <= GOAL_COUNT_P99_MS,
        "goal_lag_met": lag_p99 <= GOAL_LAG_P99_MS && lag.unseen == 0,
        "goal_rebuild_met": rebuild_met,
    }))
}

// ---- the seeded population ------------------------------------------------------------------

/// Where the seeded numbers are: `numbers` spread evenly over `accounts`, account `a` holding
/// `+1<2 + a / 1000><a % 1000:03>000000` onwards.
#[derive(Debug, Clone, Copy)]
struct Layout {
    numbers: u64,
    accounts: u64,
}

impl Layout {
    fn numbers_of(&self, account: u64) -> u64 {
        self.numbers / self.accounts + u64::from(account < self.numbers % self.accounts)
    }

    fn account_name(account: u64) -> String {
        format!("bench-{account:04}")
    }

    /// The prefix every number of the account starts with.
    fn prefix(account: u64) -> String {
        format!("+1{}{:03}", 2 + account / 1000, account % 1000)
    }

    fn number(account: u64, index: u64) -> String {
        format!("{}{index:06}", Self::prefix(account))
    }

    /// A Teams tenant id (GUID) per account.
    fn tenant(account: u64) -> String {
        let r = mix(account ^ 0x7e4a_11d0_0000_0000);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r as u32,
            (r >> 32) as u16,
            (r >> 48) & 0xfff,
            account & 0xfff,
            account
        )
    }
}

fn mix(x: u64) -> u64 {
    SplitMix64(x).next()
}

/// What the backend last answered for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Synced,
    Failed,
}

struct AccountProfile {
    zoom: bool,
    call_protection: bool,
    outcome: Outcome,
}

/// Every account has Operator Connect (flowing through to the backend); one in four Zoom too,
/// one in five Azure Operator Call Protection. 90% are synced, 5% failed, 5% pending.
fn account_profile(account: u64) -> AccountProfile {
    AccountProfile {
        zoom: account.is_multiple_of(4),
        call_protection: account.is_multiple_of(5),
        outcome: match account % 20 {
            7 => Outcome::Failed,
            13 => Outcome::Pending,
            _ => Outcome::Synced,
        },
    }
}

struct NumberProfile {
    usage: Usage,
    outbound: bool,
    assignment: Option<AssignmentStatus>,
    sip_header: bool,
    zoom: bool,
    call_protection: bool,
    outcome: Outcome,
}

/// Operator Connect on every number: usage 70% CallingUserAssignment, 20% FirstPartyApp, 10%
/// Conference; assigned 60%, unassigned 30%, unknown 10%; a SIP header on half; Zoom on 20% of
/// the numbers of Zoom accounts, Call Protection on 10% of those of Call Protection accounts
/// (without a SIP header). Synced 80%, pending 15%, failed 5%.
fn number_profile(account: u64, index: u64) -> NumberProfile {
    let r = mix((account << 32) | index);
    let profile = account_profile(account);
    let call_protection = profile.call_protection && (r >> 20).is_multiple_of(10);
    NumberProfile {
        usage: match r % 10 {
            0..=6 => USAGES[0],
            7 | 8 => USAGES[1],
            _ => USAGES[2],
        },
        outbound: (r >> 40).is_multiple_of(2),
        assignment: match (r >> 8) % 10 {
            0..=5 => Some(AssignmentStatus::Assigned),
            6..=8 => Some(AssignmentStatus::Unassigned),
            _ => None,
        },
        sip_header: !call_protection && (r >> 24).is_multiple_of(2),
        zoom: profile.zoom && (r >> 16).is_multiple_of(5),
        call_protection,
        outcome: match (r >> 32) % 20 {
            0 => Outcome::Failed,
            1..=3 => Outcome::Pending,
            _ => Outcome::Synced,
        },
    }
}

/// A number's details. An update (`Some(n)`) sets a civic address and a location of its own, so
/// it always changes the number.
fn number_details(
    account: u64,
    profile: &NumberProfile,
    update: Option<u64>,
) -> anyhow::Result<NumberDetails> {
    let mut capabilities = vec![Capability::InboundCalling];
    if profile.outbound {
        capabilities.push(Capability::OutboundCalling);
    }
    let enabled = PlainService { enabled: true };
    Ok(NumberDetails {
        teams_operator_connect: Some(TeamsNumberService {
            enabled: true,
            assignment_status: profile.assignment,
            configuration: Some(TeamsNumberConfiguration {
                usage: profile.usage,
                choosable_capabilities: capabilities,
                additional_usages: Vec::new(),
                civic_address_id: update
                    .map(|_| Identifier::parse(format!("civic-{account:04}")))
                    .transpose()?,
                location_id: update
                    .map(|n| Identifier::parse(format!("location-{n}")))
                    .transpose()?,
                allow_tenant_address_update: false,
                displayed_country_code: None,
            }),
        }),
        zoom_phone_cloud_peering: profile.zoom.then_some(enabled),
        azure_operator_call_protection: profile.call_protection.then_some(enabled),
        custom_sip_header: profile
            .sip_header
            .then(|| SipHeaderValue::parse(format!("{}-commsgw", Layout::account_name(account))))
            .transpose()?,
        ..NumberDetails::default()
    })
}

// ---- phase 1: seed ---------------------------------------------------------------------------

/// Commits the events of a set of accounts through the event store, command by command in the
/// order the API and the backend's answers would commit them: real sequences, chain links,
/// memberships and tenant links, written by `EventStore::commit` as the command side writes them.
struct Seeder {
    store: EventStore,
    layout: Layout,
    random: SplitMix64,
}

impl Seeder {
    fn uuid(&mut self) -> String {
        let r = &mut self.random;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r.next() as u32,
            r.next() as u16,
            r.next() & 0xfff,
            r.next() & 0xfff,
            r.next() & 0xffff_ffff_ffff
        )
    }

    /// A request's metadata, as the API records it.
    fn api_metadata(&mut self) -> EventMetadata {
        let traceparent = format!(
            "00-{:016x}{:016x}-{:016x}-01",
            self.random.next(),
            self.random.next(),
            self.random.next()
        );
        EventMetadata {
            subject: "nmp-bench".to_string(),
            roles: vec!["ProvisioningAPI.Admin".to_string()],
            time: chrono::Utc::now(),
            client_request_id: Some(self.uuid()),
            ticket_id: None,
            correlation_id: self.uuid(),
            traceparent: Some(traceparent),
        }
    }

    /// Metadata of a backend answer, recorded by nmp on its own behalf.
    fn sync_metadata(&mut self) -> EventMetadata {
        EventMetadata {
            subject: "nmp-sync".to_string(),
            roles: Vec::new(),
            time: chrono::Utc::now(),
            client_request_id: None,
            ticket_id: None,
            correlation_id: self.uuid(),
            traceparent: None,
        }
    }

    /// All commands of account `account` and its numbers: the account's creation and the
    /// backend's answer, then per `SEED_BATCH` numbers one upsert (their NumberAdded and
    /// memberships) and one command with the backend's answers for them.
    async fn account(&mut self, account: u64) -> anyhow::Result<()> {
        let name = AccountName::parse(Layout::account_name(account))?;
        let tenant = TenantId::parse(Layout::tenant(account))?;
        let profile = account_profile(account);
        let flowing = SyncableService {
            enabled: true,
            sync_enabled: true,
        };
        let created = AccountEvent::AccountCreated {
            name: name.clone(),
            correlation_id: Some(Identifier::parse(self.uuid())?),
            services: AccountServices {
                teams_tenant_id: Some(tenant.clone()),
                teams_operator_connect: Some(flowing),
                zoom_phone_cloud_peering: profile.zoom.then_some(flowing),
                azure_operator_call_protection: profile
                    .call_protection
                    .then_some(PlainService { enabled: true }),
                ..AccountServices::default()
            },
            sync_required: true,
        };
        let mut changes = Changes::new();
        changes.append::<Account>(name.as_str(), 0, &[created])?;
        changes.link_tenant(TenantLink::Set {
            account: name.to_string(),
            tenant: tenant.to_string(),
        });
        let metadata = self.api_metadata();
        self.store.commit(changes, &metadata).await?;
        let mut version = 1;
        let answer = match profile.outcome {
            Outcome::Pending => None,
            Outcome::Synced => Some(AccountEvent::AccountProvisioned { for_version: 1 }),
            Outcome::Failed => Some(AccountEvent::AccountProvisioningFailed {
                for_version: 1,
                errors: vec![ProvisioningError {
                    code: "TenantConsentMissing".to_string(),
                    message: "The tenant has not consented to the operator.".to_string(),
                }],
            }),
        };
        if let Some(answer) = answer {
            let mut changes = Changes::new();
            changes.append::<Account>(name.as_str(), version, &[answer])?;
            let metadata = self.sync_metadata();
            self.store.commit(changes, &metadata).await?;
            version += 1;
        }
        let count = self.layout.numbers_of(account);
        let mut first = 0;
        while first < count {
            let end = (first + SEED_BATCH).min(count);
            let mut upsert = Changes::new();
            let mut answers = Changes::new();
            for index in first..end {
                let number = number_profile(account, index);
                let id = E164::parse(Layout::number(account, index))?;
                let details = number_details(account, &number, None)?;
                let services = details
                    .enabled_services()
                    .into_iter()
                    .map(|service| service.wire_name().to_string())
                    .collect();
                let added = NumberEvent::NumberAdded {
                    telephone_number: id.clone(),
                    account: name.clone(),
                    details,
                    sync_required: true,
                };
                upsert.append::<Number>(id.as_str(), 0, &[added])?;
                upsert.set_member(name.as_str(), id.as_str(), services);
                let answer = match number.outcome {
                    Outcome::Pending => None,
                    Outcome::Synced => Some(NumberEvent::NumberProvisioned { for_version: 1 }),
                    Outcome::Failed => Some(NumberEvent::NumberProvisioningFailed {
                        for_version: 1,
                        errors: vec![ProvisioningError {
                            code: "NumberNotInInventory".to_string(),
                            message: "The number is not in the operator's Teams inventory."
                                .to_string(),
                        }],
                    }),
                };
                if let Some(answer) = answer {
                    answers.append::<Number>(id.as_str(), 1, &[answer])?;
                }
            }
            // Decided on the account's services, as the command service's upsert is.
            upsert.share_account(name.as_str(), version);
            let metadata = self.api_metadata();
            self.store.commit(upsert, &metadata).await?;
            if !answers.is_empty() {
                let metadata = self.sync_metadata();
                self.store.commit(answers, &metadata).await?;
            }
            first = end;
        }
        Ok(())
    }
}

/// What the seed stored.
#[derive(Debug, Default, Clone, Copy)]
struct SeedCounts {
    events: u64,
    number_events: u64,
    account_events: u64,
    payload_bytes: u64,
    metadata_bytes: u64,
}

struct Seeded {
    counts: SeedCounts,
    load_time: Duration,
    analyze_time: Duration,
    numbers: u64,
    accounts: u64,
}

/// Commits the events of every account: `loaders` writers side by side, each taking every
/// `loaders`-th account (so one aggregate's commands are committed by one writer, in order).
async fn seed(
    store: &EventStore,
    layout: Layout,
    loaders: u64,
    run_id: u64,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..loaders {
        let mut seeder = Seeder {
            store: store.clone(),
            layout,
            random: SplitMix64(run_id ^ mix(worker)),
        };
        tasks.spawn(async move {
            for account in (worker..layout.accounts).step_by(loaders as usize) {
                seeder.account(account).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined?.context("cannot seed the events")?;
    }
    let load_time = started.elapsed();
    let pool = store.pool();
    let started = Instant::now();
    // The statistics autovacuum would have gathered on a table of this size.
    sqlx::query("ANALYZE events").execute(pool).await?;
    let analyze_time = started.elapsed();
    let (events, number_events, payload_bytes, metadata_bytes): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE aggregate_type = 'number'), \
                    coalesce(sum(octet_length(payload::text)), 0)::int8, \
                    coalesce(sum(octet_length(metadata::text)), 0)::int8 \
               FROM events",
        )
        .fetch_one(pool)
        .await?;
    Ok(Seeded {
        counts: SeedCounts {
            events: events as u64,
            number_events: number_events as u64,
            account_events: (events - number_events) as u64,
            payload_bytes: payload_bytes as u64,
            metadata_bytes: metadata_bytes as u64,
        },
        load_time,
        analyze_time,
        numbers: layout.numbers,
        accounts: layout.accounts,
    })
}

impl Seeded {
    fn print(&self, loaders: u64) {
        let counts = &self.counts;
        let seconds = self.load_time.as_secs_f64();
        println!(
            "seed        {} events ({} of numbers, {} of accounts; payload ~{} B, metadata ~{} B) \
             for {} numbers in {} accounts, committed through the event store by {loaders} \
             writers ({SEED_BATCH} numbers a command): {seconds:.1} s ({:.0} events/s), then \
             ANALYZE {:.1} s",
            counts.events,
            counts.number_events,
            counts.account_events,
            counts.payload_bytes / counts.events.max(1),
            counts.metadata_bytes / counts.events.max(1),
            self.numbers,
            self.accounts,
            counts.events as f64 / seconds,
            self.analyze_time.as_secs_f64()
        );
    }
}

// ---- phase 2: rebuild ------------------------------------------------------------------------

struct Rebuilt {
    name: &'static str,
    events: u64,
    rows: u64,
    elapsed: Duration,
}

impl Rebuilt {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

async fn rebuild_phase(store: &EventStore, database_url: &str) -> anyhow::Result<Vec<Rebuilt>> {
    let mut rebuilt = Vec::new();
    for target in [
        projections::Target::Table(projections::Kind::Number),
        projections::Target::Table(projections::Kind::Account),
        projections::Target::AuditLog,
    ] {
        // Where the time goes: CPU by process, and what PostgreSQL's sessions are doing.
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut connection: sqlx::PgConnection = sqlx::Connection::connect(database_url).await?;
        let sampler = {
            let finished = finished.clone();
            tokio::spawn(async move { sample_activity(&mut connection, &finished).await })
        };
        let cpu_before = CpuSnapshot::take();
        let report = projections::rebuild(store, target).await;
        finished.store(true, Ordering::Release);
        let activity = sampler.await??;
        let cpu = cpu_before
            .zip(CpuSnapshot::take())
            .map(|(before, after)| after.since(&before));
        let report = report.with_context(|| format!("rebuilding {}", target.name()))?;
        let done = Rebuilt {
            name: target.name(),
            events: report.events,
            rows: report.rows,
            elapsed: report.elapsed,
        };
        println!(
            "rebuild     {:<9}{} events replayed into {} rows in {:.1} s: {:.0} events/s \
             (goal >= {GOAL_REBUILD_EVENTS_PER_SEC:.0}: {})",
            done.name,
            done.events,
            done.rows,
            done.elapsed.as_secs_f64(),
            done.rate(),
            verdict(done.rate() >= GOAL_REBUILD_EVENTS_PER_SEC)
        );
        if let Some(cpu) = &cpu {
            cpu.print();
        }
        activity.print(3);
        rebuilt.push(done);
    }
    let events: u64 = rebuilt.iter().map(|r| r.events).sum();
    let seconds: f64 = rebuilt.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    println!(
        "rebuild     all three: {events} events replayed in {seconds:.1} s: {:.0} events/s",
        events as f64 / seconds
    );
    Ok(rebuilt)
}

// ---- phase 3: lists and counts ---------------------------------------------------------------

/// A kind of list request: what it lists and with which filter (`{prefix}` stands for the
/// chosen account's number prefix).
struct Case {
    /// `GET /accounts` rather than numbers.
    accounts: bool,
    /// `GET /accounts/{a}/numbers` of a random account rather than `GET /numbers`.
    per_account: bool,
    filter: Option<&'static str>,
}

impl Case {
    fn label(&self) -> String {
        let path = match (self.accounts, self.per_account) {
            (true, _) => "/accounts",
            (false, true) => "/accounts/{a}/numbers",
            (false, false) => "/numbers",
        };
        match self.filter {
            Some(filter) => format!("{path}?filter={filter}"),
            None => path.to_string(),
        }
    }

    fn resource(&self) -> filter::Resource {
        if self.accounts {
            filter::Resource::Accounts
        } else {
            filter::Resource::Numbers
        }
    }

    fn parsed(&self, account: Option<u64>) -> anyhow::Result<Option<filter::Filter>> {
        let Some(text) = self.filter else {
            return Ok(None);
        };
        let prefix = account.map(Layout::prefix).unwrap_or_default();
        Ok(Some(filter::parse(
            &text.replace("{prefix}", &prefix),
            self.resource(),
        )?))
    }

    /// Runs the list as the endpoint does; answers the items returned and the total.
    async fn run(
        &self,
        pool: &PgPool,
        account: Option<u64>,
        skip: u64,
        take: u64,
        count: bool,
    ) -> anyhow::Result<(usize, Option<u64>)> {
        let query = ListQuery {
            filter: self.parsed(account)?,
            after: None,
            skip,
            take,
            count,
        };
        if self.accounts {
            let listed = query::accounts(pool, &query).await?;
            Ok((listed.items.len(), listed.total))
        } else {
            let name = account.map(Layout::account_name);
            let listed = query::numbers(pool, name.as_deref(), &query).await?;
            Ok((listed.items.len(), listed.total))
        }
    }

    /// The statement `projections::query` runs for this request (a copy of its SQL, for
    /// EXPLAIN), with its parameters.
    fn sql(
        &self,
        account: Option<u64>,
        skip: u64,
        count: bool,
    ) -> anyhow::Result<(String, Vec<filter::Param>)> {
        let (from, select, key, live) = if self.accounts {
            ("read_accounts a", "a.state", "a.name", "NOT a.deleted")
        } else {
            (
                "read_numbers n",
                "n.state",
                "n.telephone_number",
                "NOT n.deleted",
            )
        };
        let mut sql = filter::Sql::default();
        let mut conditions = vec![live.to_string()];
        if let Some(account) = account.filter(|_| self.per_account) {
            let at = sql.bind(filter::Param::Text(Layout::account_name(account)));
            conditions.push(format!("n.account_name = {at}"));
        }
        if let Some(filter) = self.parsed(account)? {
            conditions.push(filter::compile(&filter.expr, &mut sql));
        }
        let condition = conditions.join(" AND ");
        let text = if count {
            format!("SELECT count(*) FROM {from} WHERE {condition}")
        } else {
            let limit = sql.bind(filter::Param::Int((PAGE_SIZE + 1) as i64));
            let offset = sql.bind(filter::Param::Int(skip as i64));
            format!(
                "WITH page AS (SELECT {key} AS page_key FROM {from} WHERE {condition} \
                 ORDER BY {key} LIMIT {limit} OFFSET {offset}) \
                 SELECT page.page_key, {select} \
                 FROM page JOIN {from} ON {key} = page.page_key ORDER BY page.page_key"
            )
        };
        Ok((text, sql.params))
    }
}

const LIST_CASES: [Case; 4] = [
    Case {
        accounts: false,
        per_account: true,
        filter: Some(
            "usage eq 'CallingUserAssignment' and startswith(telephoneNumber, '{prefix}')",
        ),
    },
    Case {
        accounts: false,
        per_account: false,
        filter: Some("serviceProvisioningStatus eq 'failed'"),
    },
    Case {
        accounts: false,
        per_account: false,
        filter: Some("serviceProvisioningStatus eq 'pending' and usage eq 'CallingUserAssignment'"),
    },
    Case {
        accounts: true,
        per_account: false,
        filter: Some("service eq 'zoomPhoneCloudPeering'"),
    },
];

const COUNT_CASES: [Case; 4] = [
    Case {
        accounts: false,
        per_account: false,
        filter: Some("usage eq 'CallingUserAssignment'"),
    },
    Case {
        accounts: false,
        per_account: true,
        filter: None,
    },
    Case {
        accounts: false,
        per_account: false,
        filter: Some("serviceProvisioningStatus eq 'failed'"),
    },
    Case {
        accounts: false,
        per_account: false,
        filter: Some("service eq 'zoomPhoneCloudPeering'"),
    },
];

/// The timings of one case, and its slowest request (account, skip) for EXPLAIN.
struct Timed {
    case: &'static Case,
    count: bool,
    /// Milliseconds, sorted.
    millis: Vec<f64>,
    slowest: (f64, Option<u64>, u64),
    /// Rows the requests matched, smallest and largest (the total for a count).
    matched: (u64, u64),
}

impl Timed {
    fn new(case: &'static Case, count: bool) -> Self {
        Timed {
            case,
            count,
            millis: Vec::new(),
            slowest: (0.0, None, 0),
            matched: (u64::MAX, 0),
        }
    }

    fn record(&mut self, millis: f64, account: Option<u64>, skip: u64, matched: u64) {
        self.millis.push(millis);
        if millis > self.slowest.0 {
            self.slowest = (millis, account, skip);
        }
        self.matched = (self.matched.0.min(matched), self.matched.1.max(matched));
    }

    fn goal(&self) -> f64 {
        if self.count {
            GOAL_COUNT_P99_MS
        } else {
            GOAL_LIST_P99_MS
        }
    }
}

struct Queried {
    lists: Vec<Timed>,
    counts: Vec<Timed>,
    all_lists: Vec<f64>,
    all_counts: Vec<f64>,
}

async fn query_phase(
    pool: &PgPool,
    layout: Layout,
    queries: u64,
    run_id: u64,
) -> anyhow::Result<Queried> {
    let mut random = SplitMix64(run_id ^ 0x5eed);
    // Totals per (case, account), asked untimed before paging (this also warms the caches).
    let mut totals: HashMap<(usize, Option<u64>), u64> = HashMap::new();
    let mut lists: Vec<Timed> = LIST_CASES.iter().map(|c| Timed::new(c, false)).collect();
    for n in 0..queries {
        let index = (n % LIST_CASES.len() as u64) as usize;
        let case = &LIST_CASES[index];
        let account = case.per_account.then(|| random.next() % layout.accounts);
        let total = match totals.get(&(index, account)) {
            Some(total) => *total,
            None => {
                let (_, total) = case.run(pool, account, 0, 1, true).await?;
                let total = total.unwrap_or(0);
                totals.insert((index, account), total);
                total
            }
        };
        let skip = random.next() % (total.saturating_sub(PAGE_SIZE) + 1);
        let started = Instant::now();
        let (items, _) = case.run(pool, account, skip, PAGE_SIZE, false).await?;
        let millis = started.elapsed().as_secs_f64() * 1_000.0;
        lists[index].record(millis, account, skip, total);
        anyhow::ensure!(
            items as u64 == PAGE_SIZE.min(total - skip),
            "{}: {items} items at skip {skip} of {total}",
            case.label()
        );
    }
    let mut counts: Vec<Timed> = COUNT_CASES.iter().map(|c| Timed::new(c, true)).collect();
    // One untimed round first: the first count of a case reads its index from disk.
    for case in &COUNT_CASES {
        case.run(pool, case.per_account.then_some(0), 0, 1, true)
            .await?;
    }
    for n in 0..queries {
        let index = (n % COUNT_CASES.len() as u64) as usize;
        let case = &COUNT_CASES[index];
        let account = case.per_account.then(|| random.next() % layout.accounts);
        let started = Instant::now();
        // countRecords=true&maxpagesize=1: the total, and a one-row page in the same snapshot.
        let (_, total) = case.run(pool, account, 0, 1, true).await?;
        let millis = started.elapsed().as_secs_f64() * 1_000.0;
        counts[index].record(millis, account, 0, total.unwrap_or(0));
    }
    let mut all_lists = Vec::new();
    let mut all_counts = Vec::new();
    for timed in lists.iter_mut().chain(counts.iter_mut()) {
        timed.millis.sort_by(f64::total_cmp);
        let all = if timed.count {
            &mut all_counts
        } else {
            &mut all_lists
        };
        all.extend_from_slice(&timed.millis);
    }
    all_lists.sort_by(f64::total_cmp);
    all_counts.sort_by(f64::total_cmp);
    Ok(Queried {
        lists,
        counts,
        all_lists,
        all_counts,
    })
}

impl Queried {
    fn print(&self) {
        let line = |what: &str, sorted: &[f64], goal: f64| {
            let p99 = percentile(sorted, 99.0);
            println!(
                "{what:<12}{} requests: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms \
                 (goal p99 <= {goal:.0} ms: {})",
                sorted.len(),
                percentile(sorted, 50.0),
                sorted.last().copied().unwrap_or(f64::NAN),
                verdict(p99 <= goal)
            );
        };
        line("lists", &self.all_lists, GOAL_LIST_P99_MS);
        self.print_cases(&self.lists, "page of 200 at a random skip");
        line("counts", &self.all_counts, GOAL_COUNT_P99_MS);
        self.print_cases(&self.counts, "countRecords=true&maxpagesize=1");
    }

    fn print_cases(&self, cases: &[Timed], what: &str) {
        for timed in cases {
            println!(
                "            {:<100} p50 {:>6.1}  p99 {:>6.1}  max {:>6.1} ms  ({}, {} requests, {} to {} rows matched)",
                timed.case.label(),
                percentile(&timed.millis, 50.0),
                percentile(&timed.millis, 99.0),
                timed.millis.last().copied().unwrap_or(f64::NAN),
                what,
                timed.millis.len(),
                timed.matched.0,
                timed.matched.1
            );
        }
    }

    /// EXPLAIN (ANALYZE, BUFFERS) of the slowest request of every case that misses its goal.
    async fn explain_misses(&self, pool: &PgPool, _layout: Layout) -> anyhow::Result<()> {
        for timed in self.lists.iter().chain(&self.counts) {
            if percentile(&timed.millis, 99.0) <= timed.goal() {
                continue;
            }
            let (millis, account, skip) = timed.slowest;
            let (text, params) = timed.case.sql(account, skip, timed.count)?;
            let statement = format!("EXPLAIN (ANALYZE, BUFFERS) {text}");
            let mut explain = sqlx::query_scalar::<_, String>(&statement);
            for param in &params {
                explain = match param {
                    filter::Param::Text(text) => explain.bind(text.clone()),
                    filter::Param::Bool(value) => explain.bind(*value),
                    filter::Param::Int(value) => explain.bind(*value),
                };
            }
            let plan = explain.fetch_all(pool).await?;
            let values: Vec<String> = params
                .iter()
                .map(|p| match p {
                    filter::Param::Text(text) => format!("'{text}'"),
                    filter::Param::Bool(value) => value.to_string(),
                    filter::Param::Int(value) => value.to_string(),
                })
                .collect();
            println!(
                "plan        {} missed its goal; its slowest request took {millis:.1} ms:\n            {text}\n            with {}",
                timed.case.label(),
                values.join(", ")
            );
            for line in plan {
                println!("              {line}");
            }
        }
        Ok(())
    }
}

// ---- phase 4: projection lag -----------------------------------------------------------------

/// A lag-phase event being watched: its number, the version its read row must reach, and when
/// the command that wrote it returned.
struct Watched {
    id: String,
    version: i64,
    committed: Instant,
}

struct LagReport {
    events: u64,
    commands: usize,
    achieved_rate: f64,
    /// Commit-to-read-row in milliseconds, sorted.
    millis: Vec<f64>,
    /// The same events' commit-to-ack (the relay's part) and ack-to-read-row (the projector's
    /// part, NATS delivery included) in milliseconds, sorted.
    relay_millis: Vec<f64>,
    projector_millis: Vec<f64>,
    unseen: usize,
    polls: u64,
    sample_every: u64,
    /// Command latency (call to return) in milliseconds, sorted.
    command_millis: Vec<f64>,
    /// How late commands started against their schedule, in milliseconds, sorted.
    late_millis: Vec<f64>,
    projector_lag: Option<u64>,
    cpu: Option<CpuUse>,
    activity: Activity,
    catch_up: CatchUp,
}

/// The numbers updated by the `group`-th command: `batch` numbers of one account, accounts
/// taken in a scrambled order (7,919 is a prime above `MAX_ACCOUNTS`), numbers in turn.
fn group_numbers(layout: Layout, group: u64, batch: u64) -> (u64, Vec<u64>) {
    let account = group.wrapping_mul(7_919) % layout.accounts;
    let held = layout.numbers_of(account);
    let round = group / layout.accounts;
    let numbers = (0..batch).map(|i| (round * batch + i) % held).collect();
    (account, numbers)
}

/// Updates the numbers of the `group`-th command through the command service, as
/// `PUT /accounts/{a}/numbers` does; answers their ids and new versions.
async fn upsert_group(
    commands: &commands::CommandService,
    layout: Layout,
    group: u64,
    batch: u64,
    random: &mut SplitMix64,
) -> anyhow::Result<(Vec<String>, Vec<i64>)> {
    let (account, numbers) = group_numbers(layout, group, batch);
    let ids: Vec<String> = numbers
        .iter()
        .map(|&k| Layout::number(account, k))
        .collect();
    let items = numbers
        .iter()
        .zip(&ids)
        .map(|(&k, id)| {
            let profile = number_profile(account, k);
            Ok((
                E164::parse(id.as_str())?,
                number_details(account, &profile, Some(group))?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let name = AccountName::parse(Layout::account_name(account))?;
    let metadata = EventMetadata {
        subject: "nmp-bench".to_string(),
        roles: vec!["ProvisioningAPI.Admin".to_string()],
        time: chrono::Utc::now(),
        client_request_id: None,
        ticket_id: None,
        correlation_id: format!("{:016x}{:016x}", random.next(), random.next()),
        traceparent: None,
    };
    let outcomes = commands.upsert_numbers(&name, items, &metadata).await?;
    let versions = outcomes
        .iter()
        .map(|outcome| outcome.number.version as i64)
        .collect();
    Ok((ids, versions))
}

/// The projector alone: `events` NumberUpdated are committed (100 per command) and published
/// while it is stopped; then it starts, and the clock runs until the audit log holds a row for
/// each (the projector writes those in the same transaction as the read rows).
struct CatchUp {
    events: u64,
    elapsed: Duration,
}

#[allow(clippy::too_many_arguments)]
async fn lag_phase(
    args: &ProjectionsArgs,
    store: &EventStore,
    layout: Layout,
    database_url: &str,
    jetstream: &jetstream::Context,
    stream: &StreamSettings,
    run_id: u64,
) -> anyhow::Result<LagReport> {
    let pool = store.pool().clone();
    // The relay starts where the seed ends, like an installation that has published it all.
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay_name, tx_id, global_position) \
         SELECT $1, tx_id, global_position FROM events \
          ORDER BY tx_id DESC, global_position DESC LIMIT 1",
    )
    .bind(&stream.prefix)
    .execute(&pool)
    .await?;
    relay::ensure_stream(jetstream, stream).await?;
    let acks = Arc::new(Acks::default());
    let relay = Relay::new(
        pool.clone(),
        jetstream.clone(),
        RelaySettings::new(stream.clone()),
    )
    .with_wake(store.appended_signal())
    .with_ack_observer(acks.observer());
    let relay_status = relay.status();
    let _relay = AbortOnDrop(tokio::spawn(relay.run()));
    let commands = commands::CommandService::new(store.clone());

    // Catch-up: commit and publish with the projector stopped, then time the projector alone.
    let seeded_end: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await?;
    let catch_up_events = args.rate * CATCH_UP_SECONDS;
    let catch_up_groups = catch_up_events.div_ceil(CATCH_UP_BATCH);
    {
        let mut random = SplitMix64(run_id ^ 0xca7c);
        let mut committing = JoinSet::new();
        for writer in 0..4u64 {
            let commands = commands.clone();
            let mut random = SplitMix64(random.next());
            committing.spawn(async move {
                // Group numbers past the lag phase's, so the two touch different numbers.
                for group in (writer..catch_up_groups).step_by(4) {
                    upsert_group(
                        &commands,
                        layout,
                        CATCH_UP_GROUPS_FROM + group,
                        CATCH_UP_BATCH,
                        &mut random,
                    )
                    .await?;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(joined) = committing.join_next().await {
            joined?.context("committing the catch-up events")?;
        }
    }
    let committed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > $1")
            .bind(seeded_end)
            .fetch_one(&pool)
            .await?;
    wait_for_acks(&acks, committed as u64, Duration::from_secs(60)).await?;
    let projector = projections::Projector::new(
        store.clone(),
        jetstream.clone(),
        projections::ProjectorSettings::new(&stream.stream_name()),
    );
    let projector_status = projector.status();
    let started = Instant::now();
    let _projector = AbortOnDrop(tokio::spawn(projector.run()));
    let mut last = (0i64, Instant::now());
    loop {
        let projected: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE global_position > $1")
                .bind(seeded_end)
                .fetch_one(&pool)
                .await?;
        if projected >= committed {
            break;
        }
        if projected != last.0 {
            last = (projected, Instant::now());
        }
        anyhow::ensure!(
            last.1.elapsed() < Duration::from_secs(60),
            "the projector projected {projected} of {committed} events and then nothing for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let catch_up = CatchUp {
        events: committed as u64,
        elapsed: started.elapsed(),
    };
    anyhow::ensure!(
        relay_status.is_leader() && projector_status.is_running(),
        "the relay or the projector is not running"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut poller_connection: sqlx::PgConnection = sqlx::Connection::connect(database_url).await?;
    let total = args.rate * args.seconds;
    let groups = total.div_ceil(args.batch);
    let interval = Duration::from_secs_f64(args.batch as f64 / args.rate as f64);
    let sample_every = (args.rate / LAG_SAMPLES_PER_SEC).max(1);
    let watched: Arc<Mutex<Vec<Watched>>> = Arc::default();
    let writing_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let watched = watched.clone();
        let writing_done = writing_done.clone();
        tokio::spawn(async move {
            poll_read_rows(&mut poller_connection, &watched, &writing_done).await
        })
    };

    let sampler = {
        let mut connection: sqlx::PgConnection = sqlx::Connection::connect(database_url).await?;
        let writing_done = writing_done.clone();
        tokio::spawn(async move { sample_activity(&mut connection, &writing_done).await })
    };
    let start = Instant::now() + Duration::from_millis(100);
    let cpu_before = CpuSnapshot::take();
    let mut writers = JoinSet::new();
    for writer in 0..args.writers {
        let commands = commands.clone();
        let watched = watched.clone();
        let (writers_count, batch) = (args.writers, args.batch);
        let mut random = SplitMix64(run_id ^ mix(writer + 1_000));
        writers.spawn(async move {
            // (due, called, returned, events)
            let mut done: Vec<(Instant, Instant, Instant, usize)> = Vec::new();
            for group in (writer..groups).step_by(writers_count as usize) {
                let due = start + interval.mul_f64(group as f64);
                tokio::time::sleep_until(due.into()).await;
                let called = Instant::now();
                let (ids, versions) =
                    upsert_group(&commands, layout, group, batch, &mut random).await?;
                let returned = Instant::now();
                let mut samples = Vec::new();
                for (i, (id, version)) in ids.iter().zip(&versions).enumerate() {
                    if (group * batch + i as u64).is_multiple_of(sample_every) {
                        samples.push(Watched {
                            id: id.clone(),
                            version: *version,
                            committed: returned,
                        });
                    }
                }
                watched.lock().unwrap().extend(samples);
                done.push((due, called, returned, ids.len()));
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    let mut done = Vec::new();
    let writers_result: anyhow::Result<()> = async {
        while let Some(joined) = writers.join_next().await {
            done.extend(joined?.context("a lag-phase writer failed")?);
        }
        Ok(())
    }
    .await;
    writing_done.store(true, Ordering::Release);
    if let Err(error) = writers_result {
        poller.abort();
        sampler.abort();
        return Err(error);
    }
    let (seen, unseen, polls) = poller.await??;
    let activity = sampler.await??;
    let cpu = cpu_before
        .zip(CpuSnapshot::take())
        .map(|(before, after)| after.since(&before));
    let projector_lag = projector_status.lag();

    // Split each watched event's lag at the moment the relay saw it acknowledged.
    let (ids, sequences): (Vec<String>, Vec<i64>) =
        seen.iter().map(|s| (s.id.clone(), s.version)).unzip();
    let positions: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT e.aggregate_id, e.sequence, e.global_position \
           FROM UNNEST($1::text[], $2::bigint[]) AS w(id, sequence) \
           JOIN events e ON e.aggregate_type = 'number' AND e.aggregate_id = w.id \
                        AND e.sequence = w.sequence",
    )
    .bind(&ids)
    .bind(&sequences)
    .fetch_all(&pool)
    .await?;
    let positions: HashMap<(String, i64), i64> = positions
        .into_iter()
        .map(|(id, sequence, position)| ((id, sequence), position))
        .collect();
    let acked: HashMap<i64, Instant> = acks.log.lock().unwrap().iter().copied().collect();
    let mut millis = Vec::with_capacity(seen.len());
    let mut relay_millis = Vec::with_capacity(seen.len());
    let mut projector_millis = Vec::with_capacity(seen.len());
    for s in &seen {
        millis.push(ms_between(s.seen, s.committed));
        let ack = positions
            .get(&(s.id.clone(), s.version))
            .and_then(|position| acked.get(position));
        if let Some(&ack) = ack {
            relay_millis.push(ms_between(ack, s.committed));
            projector_millis.push(ms_between(s.seen, ack));
        }
    }
    for sorted in [&mut millis, &mut relay_millis, &mut projector_millis] {
        sorted.sort_by(f64::total_cmp);
    }

    let last = done.iter().map(|d| d.2).max().unwrap_or(start);
    let events: u64 = done.iter().map(|d| d.3 as u64).sum();
    let mut command_millis: Vec<f64> = done.iter().map(|d| ms_between(d.2, d.1)).collect();
    command_millis.sort_by(f64::total_cmp);
    let mut late_millis: Vec<f64> = done.iter().map(|d| ms_between(d.1, d.0)).collect();
    late_millis.sort_by(f64::total_cmp);
    Ok(LagReport {
        events,
        commands: done.len(),
        achieved_rate: events as f64 / (last - start).as_secs_f64(),
        millis,
        relay_millis,
        projector_millis,
        unseen,
        polls,
        sample_every,
        command_millis,
        late_millis,
        projector_lag,
        cpu,
        activity,
        catch_up,
    })
}

/// A watched event whose read row was seen at its version.
struct Seen {
    id: String,
    version: i64,
    committed: Instant,
    seen: Instant,
}

/// Polls the watched numbers' read rows until every one has reached its version (or 30 s after
/// the writers finished); answers the events seen, how many were never seen, and how many polls
/// it took. An event counts as seen when the poll that found it returned: at most one poll
/// (1-2 ms) late.
async fn poll_read_rows(
    connection: &mut sqlx::PgConnection,
    watched: &Mutex<Vec<Watched>>,
    writing_done: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<(Vec<Seen>, usize, u64)> {
    let mut waiting: Vec<Watched> = Vec::new();
    let mut seen = Vec::new();
    let mut polls = 0u64;
    let mut finished_at: Option<Instant> = None;
    loop {
        let finished = writing_done.load(Ordering::Acquire);
        waiting.append(&mut watched.lock().unwrap());
        if finished {
            let at = *finished_at.get_or_insert_with(Instant::now);
            if waiting.is_empty() || at.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        if waiting.is_empty() {
            tokio::time::sleep(LAG_POLL_INTERVAL).await;
            continue;
        }
        let ids: Vec<&str> = waiting
            .iter()
            .take(LAG_POLL_WINDOW)
            .map(|w| w.id.as_str())
            .collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT telephone_number, version FROM read_numbers \
              WHERE telephone_number = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?;
        let seen_at = Instant::now();
        polls += 1;
        let versions: HashMap<String, i64> = rows.into_iter().collect();
        let mut still = Vec::with_capacity(waiting.len());
        for w in waiting.drain(..) {
            if versions.get(&w.id).is_some_and(|v| *v >= w.version) {
                seen.push(Seen {
                    id: w.id,
                    version: w.version,
                    committed: w.committed,
                    seen: seen_at,
                });
            } else {
                still.push(w);
            }
        }
        waiting = still;
        tokio::time::sleep(LAG_POLL_INTERVAL).await;
    }
    Ok((seen, waiting.len(), polls))
}

/// What PostgreSQL's sessions of the bench database were doing, sampled from
/// `pg_stat_activity` every `ACTIVITY_INTERVAL` during a phase.
#[derive(Default)]
struct Activity {
    samples: u64,
    /// Active sessions seen per statement (its first words) and per wait event ("CPU" when not
    /// waiting), and sessions idle inside a transaction (waiting for their client).
    statements: HashMap<String, u64>,
    waits: HashMap<String, u64>,
    idle_in_transaction: u64,
}

const ACTIVITY_INTERVAL: Duration = Duration::from_millis(10);

/// Samples until `finished`.
async fn sample_activity(
    connection: &mut sqlx::PgConnection,
    finished: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Activity> {
    let mut activity = Activity::default();
    while !finished.load(Ordering::Acquire) {
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT state, wait_event_type || ':' || wait_event, \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 72) \
               FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid() \
                AND state IN ('active', 'idle in transaction')",
        )
        .fetch_all(&mut *connection)
        .await?;
        activity.samples += 1;
        for (state, wait, query) in rows {
            if state == "active" {
                *activity.statements.entry(query).or_default() += 1;
                *activity
                    .waits
                    .entry(wait.unwrap_or_else(|| "CPU".to_string()))
                    .or_default() += 1;
            } else {
                activity.idle_in_transaction += 1;
            }
        }
        tokio::time::sleep(ACTIVITY_INTERVAL).await;
    }
    Ok(activity)
}

impl Activity {
    /// Average sessions active and idle in a transaction, the wait events, and the `n`
    /// statements seen most with their average sessions.
    fn print(&self, n: usize) {
        let samples = self.samples.max(1) as f64;
        let active: u64 = self.statements.values().sum();
        println!(
            "            PostgreSQL sessions ({} samples): {:.2} active and {:.2} idle in \
             transaction on average; waiting on: {}",
            self.samples,
            active as f64 / samples,
            self.idle_in_transaction as f64 / samples,
            self.top(&self.waits, 6)
                .iter()
                .map(|(wait, sessions)| format!("{wait} {sessions:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (statement, sessions) in self.top(&self.statements, n) {
            println!("              {sessions:5.2}  {statement}");
        }
    }

    /// The `n` keys seen most, with the average number of sessions in them.
    fn top(&self, counts: &HashMap<String, u64>, n: usize) -> Vec<(String, f64)> {
        let mut sorted: Vec<(&String, &u64)> = counts.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        sorted
            .into_iter()
            .take(n)
            .map(|(key, count)| (key.clone(), *count as f64 / self.samples.max(1) as f64))
            .collect()
    }
}

/// CPU time used on the machine over a phase, from /proc: by PostgreSQL (every `postgres`
/// process), NATS, this process, and everything else.
struct CpuUse {
    seconds: f64,
    cpus: usize,
    /// Busy share of all CPUs, 0 to 1.
    busy: f64,
    /// CPU seconds.
    postgres: f64,
    nats: f64,
    bench: f64,
    other: f64,
}

struct CpuSnapshot {
    at: Instant,
    /// Jiffies of all CPUs: busy, total.
    busy: u64,
    total: u64,
    /// Jiffies per process group: postgres, nats-server, this process.
    postgres: u64,
    nats: u64,
    bench: u64,
}

impl CpuUse {
    fn print(&self) {
        println!(
            "            CPU over {:.1} s: {:.0}% of {} CPUs busy; PostgreSQL {:.1} s, NATS {:.1} s, \
             this process {:.1} s, other processes {:.1} s",
            self.seconds,
            self.busy * 100.0,
            self.cpus,
            self.postgres,
            self.nats,
            self.bench,
            self.other
        );
    }
}

impl CpuSnapshot {
    /// None where /proc is not Linux's.
    fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        let me = std::process::id();
        let (mut postgres, mut nats, mut bench) = (0, 0, 0);
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ..." with utime and stime the 14th and 15th fields.
            let Some((head, rest)) = text.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let used: u64 = fields
                .get(11..13)
                .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
            if pid == me {
                bench += used;
            } else if comm == "postgres" {
                postgres += used;
            } else if comm == "nats-server" {
                nats += used;
            }
        }
        Some(CpuSnapshot {
            at: Instant::now(),
            busy: total - idle,
            total,
            postgres,
            nats,
            bench,
        })
    }

    /// Assumes 100 jiffies per second (Linux's USER_HZ).
    fn since(&self, before: &CpuSnapshot) -> CpuUse {
        let jiffies = |after: u64, before: u64| after.saturating_sub(before) as f64 / 100.0;
        let busy = jiffies(self.busy, before.busy);
        let (postgres, nats, bench) = (
            jiffies(self.postgres, before.postgres),
            jiffies(self.nats, before.nats),
            jiffies(self.bench, before.bench),
        );
        CpuUse {
            seconds: (self.at - before.at).as_secs_f64(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            busy: busy / jiffies(self.total, before.total).max(0.01),
            postgres,
            nats,
            bench,
            other: (busy - postgres - nats - bench).max(0.0),
        }
    }
}

impl LagReport {
    fn print(&self, args: &ProjectionsArgs) {
        println!(
            "catch-up    {} NumberUpdated events ({CATCH_UP_BATCH} per command) committed and published \
             before the projector started; projected in {:.1} s: {:.0} events/s (projector alone)",
            self.catch_up.events,
            self.catch_up.elapsed.as_secs_f64(),
            self.catch_up.events as f64 / self.catch_up.elapsed.as_secs_f64()
        );
        let (p50, p90, p99, max) = (
            percentile(&self.millis, 50.0),
            percentile(&self.millis, 90.0),
            percentile(&self.millis, 99.0),
            self.millis.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "lag         {} NumberUpdated events in {} upsert_numbers commands ({} per command) over \
             {} s by {} writers: {:.1} events/s (target {})",
            self.events,
            self.commands,
            args.batch,
            args.seconds,
            args.writers,
            self.achieved_rate,
            args.rate
        );
        println!(
            "            commit-to-read-row p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms \
             (goal p99 <= {GOAL_LAG_P99_MS:.0} ms: {})",
            verdict(p99 <= GOAL_LAG_P99_MS && self.unseen == 0)
        );
        println!(
            "            {} events watched (one in {}), {} never seen; {} polls; commands p50 {:.1} ms, \
             p99 {:.1} ms; started p99 {:.1} ms after due; projector lag at the end {}",
            self.millis.len() + self.unseen,
            self.sample_every,
            self.unseen,
            self.polls,
            percentile(&self.command_millis, 50.0),
            percentile(&self.command_millis, 99.0),
            percentile(&self.late_millis, 99.0),
            self.projector_lag
                .map_or("unknown".to_string(), |lag| format!("{lag} events"))
        );
        println!(
            "            split at the relay's ack: commit-to-ack p50 {:.1} / p99 {:.1} ms, \
             ack-to-read-row p50 {:.1} / p99 {:.1} ms ({} events)",
            percentile(&self.relay_millis, 50.0),
            percentile(&self.relay_millis, 99.0),
            percentile(&self.projector_millis, 50.0),
            percentile(&self.projector_millis, 99.0),
            self.relay_millis.len()
        );
        self.activity.print(8);
        if let Some(cpu) = &self.cpu {
            cpu.print();
        }
    }
}
