//! `nmp-bench saga`: the provisioning saga's throughput against the backend simulator.
//!
//! Two runs, each in a fresh database (`nmp_bench_saga_<random>` on the local server, dropped
//! afterwards), on a fresh stream (deleted afterwards), with the relay publishing, against a
//! simulator in this process on a free port (real HTTP):
//!
//! 1. **Unlimited**: no rate limit on either side, orders completed as they are placed
//!    (`--order-delay-ms`, 0 by default). `--numbers` numbers of one tenant are written through
//!    the command side first and published; the clock runs from the saga's start until the
//!    backend's answer for the last of them is recorded. Goal: at least 2,000 numbers a second.
//! 2. **Limited**: the saga at `--calls-per-minute` (100, the default setting), and the
//!    simulator refusing (429) any call beyond as many in a sliding minute. `--limited-numbers`
//!    numbers. Goal: the ceiling of `calls per minute × 100` numbers a minute, without a 429.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backend::client::{HttpBackend, Timeouts};
use clap::Args;
use commands::{CommandService, Preconditions};
use domain::{
    AccountName, AccountServices, AssignmentStatus, Capability, CountryCode, E164, NumberDetails,
    SyncableService, TeamsNumberConfiguration, TeamsNumberService, TenantId, Usage,
};
use store::{EventMetadata, EventStore};

const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const TENANT: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const GOAL_NUMBERS_PER_SECOND: f64 = 2_000.0;
/// Numbers written by one command (one transaction), as a BSS batch would.
const SEED_BATCH: usize = 100;

#[derive(Args)]
pub struct SagaArgs {
    /// Numbers synced in the unlimited run.
    #[arg(long, default_value_t = 20_000)]
    numbers: u64,
    /// Numbers synced in the rate-limited run (0 skips it). At 100 calls a minute, 10,000
    /// numbers take a minute.
    #[arg(long, default_value_t = 10_000)]
    limited_numbers: u64,
    /// The rate limit of the limited run, on the saga and on the simulator.
    #[arg(long, default_value_t = 100)]
    calls_per_minute: u32,
    /// How long the simulator keeps an order in progress (each poll is a call too).
    #[arg(long, default_value_t = 0)]
    order_delay_ms: u64,
    /// The saga's worker loops.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// NATS server with JetStream; each run creates a fresh stream and deletes it afterwards.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

pub async fn run(args: SagaArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.numbers > 0, "--numbers must be at least 1");
    let unlimited = measure(&args, args.numbers, None).await?;
    unlimited.print();
    if args.limited_numbers > 0 {
        anyhow::ensure!(
            args.calls_per_minute > 0,
            "--calls-per-minute must be at least 1"
        );
        let limited = measure(&args, args.limited_numbers, Some(args.calls_per_minute)).await?;
        limited.print();
    }
    Ok(())
}

/// What one run measured.
struct Run {
    numbers: u64,
    calls_per_minute: Option<u32>,
    order_delay_ms: u64,
    elapsed: Duration,
    synced: u64,
    failed: u64,
    orders: i64,
    calls: u64,
    order_placements: u64,
    saga_rate_limited: u64,
    sim_rate_limited: u64,
    largest_batch: usize,
    seed_time: Duration,
}

impl Run {
    fn print(&self) {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let per_second = self.numbers as f64 / seconds;
        let per_call = self.numbers as f64 / self.calls.max(1) as f64;
        let per_order = self.numbers as f64 / self.orders.max(1) as f64;
        match self.calls_per_minute {
            None => {
                println!(
                    "saga, no rate limit, order delay {} ms: {} numbers ({} synced, {} failed) in \
                     {:.2} s = {:.0} numbers/s (goal >= {:.0}: {})",
                    self.order_delay_ms,
                    self.numbers,
                    self.synced,
                    self.failed,
                    seconds,
                    per_second,
                    GOAL_NUMBERS_PER_SECOND,
                    verdict(per_second >= GOAL_NUMBERS_PER_SECOND)
                );
            }
            Some(limit) => {
                let per_minute = per_second * 60.0;
                let ceiling = f64::from(limit) * backend::MAX_NUMBERS_PER_CALL as f64;
                println!(
                    "saga, {limit} calls/min, order delay {} ms: {} numbers ({} synced, {} failed) \
                     in {:.1} s = {:.0} numbers/min, {:.1}% of the ceiling of {:.0} \
                     (calls at {:.1}/min); 429s: {} seen by the saga, {} dealt by the simulator \
                     ({})",
                    self.order_delay_ms,
                    self.numbers,
                    self.synced,
                    self.failed,
                    seconds,
                    per_minute,
                    100.0 * per_minute / ceiling,
                    ceiling,
                    self.calls as f64 / seconds * 60.0,
                    self.saga_rate_limited,
                    self.sim_rate_limited,
                    verdict(self.sim_rate_limited == 0 && self.saga_rate_limited == 0)
                );
            }
        }
        println!(
            "  {} orders ({:.1} numbers each), {} backend calls ({:.1} numbers a call; {} \
             placements), largest batch {}; seeding took {:.1} s",
            self.orders,
            per_order,
            self.calls,
            per_call,
            self.order_placements,
            self.largest_batch,
            self.seed_time.as_secs_f64()
        );
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// One run in a fresh database and on a fresh stream, removed afterwards.
async fn measure(args: &SagaArgs, numbers: u64, limit: Option<u32>) -> anyhow::Result<Run> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("nmp_bench_saga_{}", &run_id[..8]);
    let nats = nmp::NatsSettings {
        url: args.nats_url.clone(),
        prefix: format!("bsaga{}", &run_id[..8]),
        ..nmp::NatsSettings::default()
    };
    let outcome = run_in(args, numbers, limit, &database, &nats).await;
    if let Err(error) = drop_database(&database).await {
        eprintln!("cannot drop database {database}: {error:#}");
    }
    if let Ok(client) = async_nats::connect(&nats.url).await {
        let stream = nmp::stream_settings(&nats)?.stream_name();
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
    outcome
}

async fn run_in(
    args: &SagaArgs,
    numbers: u64,
    limit: Option<u32>,
    database: &str,
    nats: &nmp::NatsSettings,
) -> anyhow::Result<Run> {
    let pool = store::connect(&format!("{LOCAL_SERVER}/{database}"), 30)
        .await
        .context("cannot open the benchmark's database")?;
    let store = EventStore::new(pool.clone());
    let commands = CommandService::new(store.clone());
    let client = nmp::connect_nats(nats).await?;
    let (relay, _) = nmp::start_relay(nats, client.clone(), &store).await?;
    let _relay = AbortOnDrop(relay);

    let simulator = sim::spawn(sim::SimSettings {
        order_delay: Duration::from_millis(args.order_delay_ms),
    })
    .await
    .context("cannot start the simulator")?;
    let tenant = TenantId::parse(TENANT).expect("a tenant id");
    simulator.simulator.put_consent(sim::ConsentInput {
        tenant_id: tenant.clone(),
        countries: vec![CountryCode::parse("US").expect("a country")],
        contacts: Vec::new(),
    });
    if let Some(limit) = limit {
        simulator
            .simulator
            .set_faults(sim::Faults {
                rate_limit: Some(sim::RateLimit {
                    limit,
                    window_seconds: 60,
                }),
                ..sim::Faults::default()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }

    let seeding = Instant::now();
    seed(&commands, &tenant, numbers).await?;
    wait_until_published(&pool, nats).await?;
    let seed_time = seeding.elapsed();

    let http = HttpBackend::new(&simulator.url(), Timeouts::default())?;
    let budget = Arc::new(saga::CallBudget::per_minute(limit.unwrap_or(0)));
    let backend: Arc<dyn backend::Backend> =
        Arc::new(saga::LimitedBackend::new(Arc::new(http), budget.clone()));
    let settings = nmp::settings::SagaSettings {
        calls_per_minute: limit.unwrap_or(0),
        workers: args.workers,
        order_poll_ms: args.order_delay_ms.max(20),
        lease_secs: 60,
    };
    let saga_settings = nmp::saga_settings(nats, &settings)?;
    let started = Instant::now();
    let (task, status) = nmp::start_saga(saga_settings, client, commands.clone(), backend);
    let _saga = AbortOnDrop(task);
    let mut last_report = Instant::now();
    let elapsed = loop {
        let (synced, failed) = status.outcomes();
        if synced + failed >= numbers {
            break started.elapsed();
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  ... {} of {numbers} answered after {:.0} s ({} calls)",
                synced + failed,
                started.elapsed().as_secs_f64(),
                budget.calls()
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the saga did not finish within an hour"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (synced, failed) = status.outcomes();
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_orders")
        .fetch_one(&pool)
        .await?;
    let stats = simulator.simulator.stats();
    Ok(Run {
        numbers,
        calls_per_minute: limit,
        order_delay_ms: args.order_delay_ms,
        elapsed,
        synced,
        failed,
        orders,
        calls: budget.calls(),
        order_placements: stats
            .by_route
            .get("PUT /orders/{order_id}")
            .copied()
            .unwrap_or(0),
        saga_rate_limited: budget.rate_limited(),
        sim_rate_limited: stats.rate_limited,
        largest_batch: stats.largest_batch,
        seed_time,
    })
}

/// Writes `numbers` Operator Connect numbers of `tenant` through the command side, 100 a
/// command, over one account per 1,000 numbers, four accounts at a time.
async fn seed(commands: &CommandService, tenant: &TenantId, numbers: u64) -> anyhow::Result<()> {
    let metadata = EventMetadata::system("nmp-bench");
    let accounts = numbers.div_ceil(1_000);
    let services = AccountServices {
        teams_tenant_id: Some(tenant.clone()),
        teams_operator_connect: Some(SyncableService {
            enabled: true,
            sync_enabled: true,
        }),
        ..AccountServices::default()
    };
    let details = NumberDetails {
        teams_operator_connect: Some(TeamsNumberService {
            enabled: true,
            assignment_status: Some(AssignmentStatus::Assigned),
            configuration: Some(TeamsNumberConfiguration {
                usage: Usage::CallingUserAssignment,
                choosable_capabilities: vec![Capability::InboundCalling],
                additional_usages: Vec::new(),
                civic_address_id: None,
                location_id: None,
                allow_tenant_address_update: true,
                displayed_country_code: None,
            }),
        }),
        ..NumberDetails::default()
    };
    let jobs = (0..accounts).map(|account| {
        let services = services.clone();
        let details = details.clone();
        let metadata = metadata.clone();
        async move {
            let name = AccountName::parse(format!("bench{account:04}"))?;
            commands
                .create_or_replace_account(&name, None, services, &Preconditions::none(), &metadata)
                .await?;
            let first = account * 1_000;
            let last = (first + 1_000).min(numbers);
            let all: Vec<u64> = (first..last).collect();
            for batch in all.chunks(SEED_BATCH) {
                let items = batch
                    .iter()
                    .map(|i| Ok((E164::parse(format!("+1510{i:07}"))?, details.clone())))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                commands.upsert_numbers(&name, items, &metadata).await?;
            }
            anyhow::Ok(())
        }
    });
    let results: Vec<anyhow::Result<()>> = futures::StreamExt::collect(
        futures::StreamExt::buffer_unordered(futures::stream::iter(jobs), 4),
    )
    .await;
    results.into_iter().collect()
}

/// Waits until the stream holds every event of the database.
async fn wait_until_published(pool: &sqlx::PgPool, nats: &nmp::NatsSettings) -> anyhow::Result<()> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let client = async_nats::connect(&nats.url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let name = nmp::stream_settings(nats)?.stream_name();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(mut stream) = jetstream.get_stream(&name).await
            && let Ok(info) = stream.info().await
            && info.state.messages >= events as u64
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the relay did not publish the seeded events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    let mut connection: sqlx::PgConnection =
        sqlx::Connection::connect(&format!("{LOCAL_SERVER}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut connection)
        .await?;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
