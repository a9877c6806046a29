//! nmp as `nmp serve` runs it (`nmp::Runtime`): liveness without the database, readiness that
//! follows PostgreSQL and NATS, a failing component stopping the rest, and a graceful stop under
//! writes that loses no acknowledged write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auth::Role;
use reqwest::StatusCode;
use serde_json::Value;
use tests::nats::{OwnNatsServer, TestStream, nats_url};
use tests::{API_VERSION, account_body, drop_database, spawn_app, test_settings};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn get(address: &str, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{address}{path}"))
        .send()
        .await
        .expect("nmp answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn not_ready(body: &Value) -> Vec<String> {
    body["notReady"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `/readyz` until `done` holds for its answer, or fails the test after `limit`.
async fn readyz_until(
    address: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(address, "/readyz").await;
        if done(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never showed {what}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn healthz_answers_without_the_database_while_readyz_names_it() {
    let app = spawn_app().await;
    let (status, body) = get(&app.address, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["postgres"]["ready"], true, "{body}");
    assert_eq!(body["checks"]["migrations"]["ready"], true, "{body}");
    assert_eq!(body["checks"]["nats"]["used"], false, "{body}");
    assert_eq!(body["checks"]["components"]["http"]["state"], "running");

    drop_database(&app.database).await;

    let health = client()
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("nmp answers");
    assert_eq!(health.status(), StatusCode::OK);
    let body = readyz_until(&app.address, Duration::from_secs(15), "postgres", |s, b| {
        s == StatusCode::SERVICE_UNAVAILABLE && not_ready(b).contains(&"postgres".to_string())
    })
    .await;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["checks"]["postgres"]["ready"], false, "{body}");
}

#[tokio::test]
async fn readyz_fails_while_nats_is_down_and_recovers_after() {
    let mut nats = OwnNatsServer::start();
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let mut settings = test_settings(&database, "runtime-secret");
    settings.nats.url = nats.url();
    settings.nats.prefix = tests::nats::test_prefix();
    let runtime = nmp::Runtime::builder(
        settings,
        nmp::Components {
            api: true,
            relay: true,
            projector: true,
            ..nmp::Components::NONE
        },
    )
    .start()
    .await
    .expect("nmp starts");
    let address = format!("http://{}", runtime.address());

    let body = readyz_until(&address, Duration::from_secs(20), "ready", |s, _| {
        s == StatusCode::OK
    })
    .await;
    for component in ["http", "relay", "projector", "feed", "nats-api"] {
        assert_eq!(
            body["checks"]["components"][component]["state"], "running",
            "{component}: {body}"
        );
    }
    let relay_behind = &body["checks"]["components"]["relay"]["behind"];
    assert!(
        relay_behind.is_u64() || relay_behind == "unknown" || relay_behind == "standby",
        "{body}"
    );
    assert!(
        !body["checks"]["components"]["projector"]["behind"].is_null(),
        "{body}"
    );

    nats.stop();
    let body = readyz_until(&address, Duration::from_secs(20), "NATS down", |s, b| {
        s == StatusCode::SERVICE_UNAVAILABLE && not_ready(b).contains(&"nats".to_string())
    })
    .await;
    assert_eq!(body["checks"]["nats"]["ready"], false, "{body}");
    assert_eq!(body["checks"]["postgres"]["ready"], true, "{body}");
    // Liveness does not follow NATS: restarting nmp would not bring NATS back.
    let (health, _) = get(&address, "/healthz").await;
    assert_eq!(health, StatusCode::OK);

    nats.restart();
    readyz_until(&address, Duration::from_secs(30), "recovery", |s, _| {
        s == StatusCode::OK
    })
    .await;

    let stopper = runtime.stopper();
    stopper.stop();
    runtime.wait().await.expect("a graceful stop");
    drop_database(&database).await;
}

#[tokio::test]
async fn readyz_names_nats_when_it_refuses_connections() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port();
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let mut settings = test_settings(&database, "runtime-secret");
    settings.nats.url = format!("nats://127.0.0.1:{refused}");
    settings.nats.prefix = tests::nats::test_prefix();
    let runtime = nmp::Runtime::builder(
        settings,
        nmp::Components {
            api: true,
            relay: true,
            ..nmp::Components::NONE
        },
    )
    .start()
    .await
    .expect("nmp starts while NATS is unreachable");
    let address = format!("http://{}", runtime.address());
    let (status, body) = get(&address, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(not_ready(&body), vec!["nats".to_string()], "{body}");
    runtime.stopper().stop();
    runtime.wait().await.expect("a graceful stop");
    drop_database(&database).await;
}

/// Sets its flag when dropped: shows a component was stopped.
struct StoppedFlag(Arc<AtomicBool>);

impl Drop for StoppedFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn runtime_with_failing(
    database: &str,
    failing: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
) -> (nmp::Runtime, Arc<AtomicBool>) {
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = StoppedFlag(stopped.clone());
    let runtime = nmp::Runtime::builder(
        test_settings(database, "runtime-secret"),
        nmp::Components {
            api: true,
            ..nmp::Components::NONE
        },
    )
    .without_nats()
    .component("witness", async move {
        let _flag = flag;
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    })
    .component("doomed", failing)
    .start()
    .await
    .expect("nmp starts");
    (runtime, stopped)
}

#[tokio::test]
async fn a_failing_component_is_reported_and_stops_the_others() {
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let (runtime, witness_stopped) = runtime_with_failing(&database, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Err(std::io::Error::other("the doomed component gave up"))
    })
    .await;
    let address = format!("http://{}", runtime.address());
    let health = runtime.health();
    let (status, body) = get(&address, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["components"]["doomed"]["state"], "running");

    let error = tokio::time::timeout(Duration::from_secs(25), runtime.wait())
        .await
        .expect("nmp stops by itself")
        .expect_err("nmp ends with the component's error");
    let message = format!("{error:#}");
    assert!(message.contains("doomed"), "{message}");
    assert!(
        message.contains("the doomed component gave up"),
        "{message}"
    );

    assert!(
        witness_stopped.load(Ordering::SeqCst),
        "the other component stopped"
    );
    assert!(
        client()
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_err(),
        "the HTTP server stopped"
    );
    let report = health.report().await;
    assert!(!report.ready);
    let body = report.body;
    assert!(not_ready(&body).contains(&"doomed".to_string()), "{body}");
    assert_eq!(body["checks"]["components"]["doomed"]["state"], "failed");
    assert!(
        body["checks"]["components"]["doomed"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("gave up")),
        "{body}"
    );
    assert_eq!(body["checks"]["components"]["witness"]["state"], "stopped");
    assert_eq!(body["checks"]["components"]["http"]["state"], "stopped");
    assert_eq!(body["shuttingDown"], true);
    drop_database(&database).await;
}

fn explode() -> std::io::Result<()> {
    panic!("the doomed component panicked on purpose")
}

#[tokio::test]
async fn a_panicking_component_is_reported_with_its_panic() {
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let (runtime, witness_stopped) = runtime_with_failing(&database, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        explode()
    })
    .await;
    let health = runtime.health();
    let error = tokio::time::timeout(Duration::from_secs(25), runtime.wait())
        .await
        .expect("nmp stops by itself")
        .expect_err("nmp ends with the panic");
    let message = format!("{error:#}");
    assert!(message.contains("doomed"), "{message}");
    assert!(message.contains("panicked on purpose"), "{message}");
    assert!(witness_stopped.load(Ordering::SeqCst));
    assert!(matches!(
        health.component("doomed"),
        Some(nmp::runtime::ComponentState::Failed(_))
    ));
    drop_database(&database).await;
}

#[tokio::test]
async fn a_graceful_stop_under_writes_loses_no_acknowledged_write() {
    let stream = TestStream::new(&nats_url()).await;
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let secret = format!("test-secret-{}", uuid::Uuid::new_v4());
    let mut settings = test_settings(&database, &secret);
    settings.nats.url = nats_url();
    settings.nats.prefix = stream.settings.prefix.clone();
    settings.shutdown_secs = 10;
    let components = nmp::Components {
        api: true,
        relay: true,
        projector: true,
        ..nmp::Components::NONE
    };
    let runtime = nmp::Runtime::builder(settings.clone(), components)
        .start()
        .await
        .expect("nmp starts");
    let address = format!("http://{}", runtime.address());
    let token = auth::mint_token(
        secret.as_bytes(),
        "runtime-test",
        &[Role::Admin],
        Duration::from_secs(600),
    );

    // Writers put accounts until nmp stops answering; each keeps the names answered 2xx.
    let mut writers = Vec::new();
    for writer in 0..8 {
        let address = address.clone();
        let token = token.clone();
        writers.push(tokio::spawn(async move {
            let client = client();
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            for n in 0..2_000 {
                let name = format!("w{writer}n{n}");
                let sent = client
                    .put(format!(
                        "{address}/accounts/{name}?api-version={API_VERSION}"
                    ))
                    .bearer_auth(&token)
                    .json(&account_body(&name))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => acknowledged.push(name),
                    // No answer, or not a success: not acknowledged.
                    Ok(_) => refused += 1,
                    Err(_) => break,
                }
                if refused > 50 {
                    break;
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    runtime.stopper().stop();
    runtime.wait().await.expect("a graceful stop");
    assert!(
        stopping.elapsed() < Duration::from_secs(settings.shutdown_secs),
        "stopped within shutdown_secs: {:?}",
        stopping.elapsed()
    );
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 20,
        "writes went through before the stop: {}",
        acknowledged.len()
    );

    let pool = sqlx::PgPool::connect(&settings.database_url)
        .await
        .expect("database");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = 'account'",
    )
    .fetch_all(&pool)
    .await
    .expect("events");
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );

    // After a restart every stored event reaches NATS and the read side.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let runtime = nmp::Runtime::builder(settings.clone(), components)
        .start()
        .await
        .expect("nmp starts again");
    stream
        .wait_for(events as u64, Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let projected: Vec<String> = sqlx::query_scalar("SELECT name FROM read_accounts")
            .fetch_all(&pool)
            .await
            .expect("read accounts");
        let unprojected = acknowledged
            .iter()
            .filter(|name| !projected.contains(name))
            .count();
        if unprojected == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unprojected} acknowledged accounts never projected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runtime.stopper().stop();
    runtime.wait().await.expect("a graceful stop");
    pool.close().await;
    drop_database(&database).await;
}
