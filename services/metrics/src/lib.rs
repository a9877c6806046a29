//! nmp's metrics, in one place: each metric's name, labels and meaning, and the functions the
//! components record them with.
//!
//! Recording goes through the [`metrics`] facade into one process-wide Prometheus recorder
//! (`metrics-exporter-prometheus`, without its HTTP listener: `GET /metrics` serves
//! [`render`]). The recorder is installed by the first component that starts ([`install`]),
//! so no entry point has to remember it; every nmp in a process (the tests run many) shares it,
//! which is why per-instance figures carry a `stream` label (the installation's JetStream
//! stream).

use std::fmt::{self, Debug, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

// ---- names -------------------------------------------------------------------------------

pub const HTTP_REQUESTS: &str = "nmp_http_requests_total";
pub const HTTP_DURATION: &str = "nmp_http_request_duration_seconds";
pub const COMMANDS: &str = "nmp_commands_total";
pub const COMMAND_CONFLICTS: &str = "nmp_command_conflicts_total";
pub const COMMAND_RETRIES: &str = "nmp_command_retries_total";
pub const RELAY_LEADER: &str = "nmp_relay_leader";
pub const RELAY_LAG: &str = "nmp_relay_lag_events";
pub const RELAY_PUBLISHED: &str = "nmp_relay_published_events_total";
pub const PROJECTOR_LAG: &str = "nmp_projector_lag_events";
pub const PROJECTOR_PARKED: &str = "nmp_projector_parked_events_total";
pub const SAGA_WORK_ITEMS: &str = "nmp_saga_work_items";
pub const SAGA_OPEN_ORDERS: &str = "nmp_saga_open_orders";
pub const SAGA_ORDERS_CREATED: &str = "nmp_saga_orders_created_total";
pub const SAGA_OUTCOMES: &str = "nmp_saga_outcomes_total";
pub const SAGA_RETRIES: &str = "nmp_saga_retries_total";
pub const BACKEND_CALLS: &str = "nmp_backend_calls_total";
pub const BACKEND_RATE_LIMIT_WAIT: &str = "nmp_backend_rate_limit_wait_seconds";
pub const SYNC_PASSES: &str = "nmp_sync_passes_total";
pub const SYNC_FAILURES: &str = "nmp_sync_failures_total";
pub const SYNC_LAST_SUCCESS: &str = "nmp_sync_last_success_timestamp_seconds";
pub const DB_POOL_IN_USE: &str = "nmp_db_pool_connections_in_use";
pub const DB_POOL_IDLE: &str = "nmp_db_pool_connections_idle";
pub const DB_POOL_MAX: &str = "nmp_db_pool_connections_max";

/// Buckets of the request latency histogram, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the waits for the backend's call budget, in seconds.
const WAIT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How often histograms' recent samples are folded in when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

// ---- the recorder ------------------------------------------------------------------------

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs nmp's recorder as the process's global one, once; later calls return the same
/// handle. `None` when another recorder was installed first (nothing nmp records is then
/// rendered by [`render`]).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), LATENCY_BUCKETS)
                .expect("the buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Full(BACKEND_RATE_LIMIT_WAIT.to_string()),
                    WAIT_BUCKETS,
                )
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
                return None;
            }
            describe();
            let upkeep = handle.clone();
            // Without a scrape, samples of histograms would pile up until the next render.
            let spawned = std::thread::Builder::new()
                .name("nmp-metrics-upkeep".to_string())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .as_ref()
}

/// Every metric recorded in this process, in the Prometheus text exposition format.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// The content type of [`render`]'s page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, matched route and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer HTTP requests (to the response's head), by method, matched route and status."
    );
    describe_counter!(
        COMMANDS,
        "Commands decided by the domain, by aggregate, command and outcome (accepted or refused)."
    );
    describe_counter!(
        COMMAND_CONFLICTS,
        "Writes that lost a race to a concurrent writer, by what became of them (retried, precondition_failed, gave_up)."
    );
    describe_counter!(
        COMMAND_RETRIES,
        "Commands tried again after losing a race to a concurrent writer."
    );
    describe_gauge!(
        RELAY_LEADER,
        "1 when this process holds the relay lock, by stream."
    );
    describe_gauge!(
        RELAY_LAG,
        "Events committed but not yet acknowledged by NATS, by stream."
    );
    describe_counter!(
        RELAY_PUBLISHED,
        "Events published by this process and acknowledged by NATS, by stream (rate() is the publish rate)."
    );
    describe_gauge!(
        PROJECTOR_LAG,
        "Events in the stream not yet projected (pending or unacknowledged), by stream and projector."
    );
    describe_counter!(
        PROJECTOR_PARKED,
        "Events that could not be projected after every retry, parked in projection_dead_letters, by stream and projector."
    );
    describe_gauge!(
        SAGA_WORK_ITEMS,
        "Changes waiting for the provisioning saga (including those in orders), by stream."
    );
    describe_gauge!(
        SAGA_OPEN_ORDERS,
        "Upload orders not finished yet, by stream."
    );
    describe_counter!(
        SAGA_ORDERS_CREATED,
        "Upload orders written by this process."
    );
    describe_counter!(
        SAGA_OUTCOMES,
        "Backend answers recorded for numbers, by result (synced or failed)."
    );
    describe_counter!(
        SAGA_RETRIES,
        "Saga work put back for a later try after a transient failure, by kind (work_item or order)."
    );
    describe_counter!(
        BACKEND_CALLS,
        "Calls made to the Teams backend by the saga and the sync, by outcome (ok, rate_limited, transient, permanent)."
    );
    describe_histogram!(
        BACKEND_RATE_LIMIT_WAIT,
        metrics::Unit::Seconds,
        "Time backend calls waited for the call budget (the rate limit, or a 429's Retry-After); _count is how many waited."
    );
    describe_counter!(SYNC_PASSES, "Completed passes of the backend sync.");
    describe_counter!(SYNC_FAILURES, "Passes of the backend sync that failed.");
    describe_gauge!(
        SYNC_LAST_SUCCESS,
        metrics::Unit::Seconds,
        "When the last pass of the backend sync completed (Unix time)."
    );
    describe_gauge!(
        DB_POOL_IN_USE,
        "PostgreSQL connections of a pool lent out, by pool (measured at each scrape)."
    );
    describe_gauge!(
        DB_POOL_IDLE,
        "PostgreSQL connections of a pool open and idle, by pool."
    );
    describe_gauge!(
        DB_POOL_MAX,
        "Most PostgreSQL connections a pool opens, by pool."
    );
}

// ---- recording ---------------------------------------------------------------------------

/// An HTTP request answered: `route` is the matched route's template (`/accounts/{name}`),
/// never the raw path, so that the label's values stay few.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// A command the domain decided: `aggregate` its type, `command` what [`variant_name`] makes
/// of it, `accepted` whether it produced events rather than a refusal.
pub fn command_decided(aggregate: &str, command: &str, accepted: bool) {
    let outcome = if accepted { "accepted" } else { "refused" };
    counter!(
        COMMANDS,
        "aggregate" => aggregate.to_string(),
        "command" => command.to_string(),
        "outcome" => outcome
    )
    .increment(1);
}

/// What became of a write that lost a race to a concurrent writer.
#[derive(Debug, Clone, Copy)]
pub enum Conflict {
    /// Tried again.
    Retried,
    /// The write was conditional (`If-Match`): answered 412.
    PreconditionFailed,
    /// Lost every try: answered as a conflict.
    GaveUp,
}

pub fn command_conflict(what: Conflict) {
    let resolution = match what {
        Conflict::Retried => "retried",
        Conflict::PreconditionFailed => "precondition_failed",
        Conflict::GaveUp => "gave_up",
    };
    counter!(COMMAND_CONFLICTS, "resolution" => resolution).increment(1);
    if let Conflict::Retried = what {
        counter!(COMMAND_RETRIES).increment(1);
    }
}

pub fn relay_leader(stream: &str, leader: bool) {
    gauge!(RELAY_LEADER, "stream" => stream.to_string()).set(f64::from(u8::from(leader)));
}

pub fn relay_lag(stream: &str, lag: u64) {
    gauge!(RELAY_LAG, "stream" => stream.to_string()).set(lag as f64);
}

pub fn relay_published(stream: &str, events: u64) {
    counter!(RELAY_PUBLISHED, "stream" => stream.to_string()).increment(events);
}

pub fn projector_lag(stream: &str, projector: &str, lag: u64) {
    gauge!(PROJECTOR_LAG, "stream" => stream.to_string(), "projector" => projector.to_string())
        .set(lag as f64);
}

pub fn projector_parked(stream: &str, projector: &str) {
    counter!(PROJECTOR_PARKED, "stream" => stream.to_string(), "projector" => projector.to_string())
        .increment(1);
}

pub fn saga_backlog(stream: &str, work_items: u64, open_orders: u64) {
    gauge!(SAGA_WORK_ITEMS, "stream" => stream.to_string()).set(work_items as f64);
    gauge!(SAGA_OPEN_ORDERS, "stream" => stream.to_string()).set(open_orders as f64);
}

pub fn saga_orders_created(orders: u64) {
    counter!(SAGA_ORDERS_CREATED).increment(orders);
}

pub fn saga_outcome(synced: bool) {
    let result = if synced { "synced" } else { "failed" };
    counter!(SAGA_OUTCOMES, "result" => result).increment(1);
}

/// Saga work put back for later after a transient failure.
#[derive(Debug, Clone, Copy)]
pub enum SagaRetry {
    WorkItem,
    Order,
}

pub fn saga_retries(kind: SagaRetry, count: u64) {
    let kind = match kind {
        SagaRetry::WorkItem => "work_item",
        SagaRetry::Order => "order",
    };
    counter!(SAGA_RETRIES, "kind" => kind).increment(count);
}

/// How a backend call ended.
#[derive(Debug, Clone, Copy)]
pub enum BackendOutcome {
    Ok,
    RateLimited,
    Transient,
    Permanent,
}

pub fn backend_call(outcome: BackendOutcome) {
    let outcome = match outcome {
        BackendOutcome::Ok => "ok",
        BackendOutcome::RateLimited => "rate_limited",
        BackendOutcome::Transient => "transient",
        BackendOutcome::Permanent => "permanent",
    };
    counter!(BACKEND_CALLS, "outcome" => outcome).increment(1);
}

/// A backend call waited `waited` for the call budget.
pub fn backend_rate_limit_wait(waited: Duration) {
    histogram!(BACKEND_RATE_LIMIT_WAIT).record(waited.as_secs_f64());
}

/// A pass of the backend sync completed, at `unix_seconds`.
pub fn sync_pass_completed(unix_seconds: i64) {
    counter!(SYNC_PASSES).increment(1);
    gauge!(SYNC_LAST_SUCCESS).set(unix_seconds as f64);
}

pub fn sync_pass_failed() {
    counter!(SYNC_FAILURES).increment(1);
}

/// A connection pool's figures, measured now. (sqlx does not tell how many tasks wait for a
/// connection: `in_use` reaching `max` is the sign that some do.)
pub fn db_pool(pool: &str, in_use: u64, idle: u64, max: u64) {
    gauge!(DB_POOL_IN_USE, "pool" => pool.to_string()).set(in_use as f64);
    gauge!(DB_POOL_IDLE, "pool" => pool.to_string()).set(idle as f64);
    gauge!(DB_POOL_MAX, "pool" => pool.to_string()).set(max as f64);
}

// ---- command names -----------------------------------------------------------------------

/// The name of an enum value's variant as its `Debug` output starts (`CreateOrReplace` of
/// `CreateOrReplace { .. }`), without formatting the rest: the writer stops at the first
/// character that cannot be part of a name.
pub fn variant_name(value: &impl Debug) -> String {
    struct Name(String, bool);
    impl fmt::Write for Name {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if c.is_alphanumeric() || c == '_' {
                    self.0.push(c);
                } else {
                    self.1 = true;
                }
                if self.1 {
                    return Err(fmt::Error);
                }
            }
            Ok(())
        }
    }
    let mut name = Name(String::new(), false);
    let _ = write!(name, "{value:?}");
    name.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Command {
        CreateOrReplace { name: String, numbers: Vec<u32> },
        Delete(u32),
        Release,
    }

    #[test]
    fn variant_names_stop_at_the_variant() {
        let long = Command::CreateOrReplace {
            name: "x".repeat(10_000),
            numbers: vec![1; 1000],
        };
        assert_eq!(variant_name(&long), "CreateOrReplace");
        assert_eq!(variant_name(&Command::Delete(3)), "Delete");
        assert_eq!(variant_name(&Command::Release), "Release");
    }

    #[test]
    fn recorded_figures_are_rendered() {
        install().expect("the first recorder of this test process");
        relay_published("TEST_EVENTS", 3);
        http_request("GET", "/accounts/{name}", 404, Duration::from_millis(3));
        let page = render();
        assert!(
            page.contains("nmp_relay_published_events_total{stream=\"TEST_EVENTS\"} 3"),
            "{page}"
        );
        assert!(
            page.contains(
                "nmp_http_request_duration_seconds_bucket{method=\"GET\",route=\"/accounts/{name}\",status=\"404\",le=\"0.005\"} 1"
            ),
            "{page}"
        );
        assert!(
            page.contains("# TYPE nmp_http_requests_total counter"),
            "{page}"
        );
    }
}
