//! `nmp serve` stopped by SIGTERM under writes: it exits 0 within NMP_SHUTDOWN_SECS and every
//! write it acknowledged is in the event store.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");
const SHUTDOWN_SECS: u64 = 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

fn database_url(name: &str) -> String {
    let server = std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let slash = server.rfind('/').expect("a database URL");
    format!("{}/{name}", &server[..slash])
}

/// Kills the server when the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn account_body(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "correlationId": "c7aa0070-3956-11eb-8d59-4d9d2e7a4a8d",
        "serviceDetails": {
            "teamsTenantId": "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a",
            "teamsOperatorConnect": {"enabled": true, "syncEnabled": true}
        }
    })
}

#[tokio::test]
async fn sigterm_under_writes_exits_cleanly_in_time_and_keeps_every_acknowledged_write() {
    let port = free_port();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("nmp_sigterm_{}", &tag[..12]);
    let prefix = format!("tsig{}", &tag[..12]);
    let secret = format!("sigterm-{tag}");
    let child = Command::new(NMP)
        .args(["serve", "--components", "api,relay,projector"])
        .env("NMP_NATS_PREFIX", &prefix)
        .env("NMP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("NMP_DATABASE_URL", database_url(&database))
        .env("NMP_JWT_HS256_SECRET", &secret)
        .env("NMP_SHUTDOWN_SECS", SHUTDOWN_SECS.to_string())
        .env_remove("NMP_JWT_JWKS_URL")
        .env_remove("NMP_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nmp starts");
    let mut server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await
            && answer.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "nmp did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = Command::new(NMP)
        .args(["token", "--role", "ProvisioningAPI.Admin"])
        .env("NMP_JWT_HS256_SECRET", &secret)
        .output()
        .expect("token");
    let token = String::from_utf8(token.stdout)
        .expect("utf-8")
        .trim()
        .to_string();

    let mut writers = Vec::new();
    for writer in 0..6 {
        let client = client.clone();
        let base = base.clone();
        let token = token.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..5_000 {
                let name = format!("s{writer}n{n}");
                let sent = client
                    .put(format!(
                        "{base}/accounts/{name}?api-version=2024-02-29-preview"
                    ))
                    .bearer_auth(&token)
                    .json(&account_body(&name))
                    .send()
                    .await;
                match sent {
                    Ok(answer) if answer.status().is_success() => acknowledged.push(name),
                    Ok(answer) => assert!(
                        answer.status().is_server_error(),
                        "refused: {}",
                        answer.status()
                    ),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let terminated = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(SHUTDOWN_SECS + 1),
            "nmp did not exit within NMP_SHUTDOWN_SECS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a graceful stop exits 0: {status}");

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 20,
        "writes went through: {}",
        acknowledged.len()
    );
    let pool = sqlx::PgPool::connect(&database_url(&database))
        .await
        .expect("database");
    let stored: std::collections::HashSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = 'account'",
    )
    .fetch_all(&pool)
    .await
    .expect("events")
    .into_iter()
    .collect();
    pool.close().await;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );

    drop(server);
    if let Ok(pool) = sqlx::PgPool::connect(&database_url("postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&pool)
            .await;
    }
    let url = std::env::var("NMP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Ok(client) = async_nats::connect(url).await {
        let name = format!("{}_EVENTS", prefix.to_uppercase());
        let _ = async_nats::jetstream::new(client).delete_stream(name).await;
    }
}
