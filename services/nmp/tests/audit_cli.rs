//! `nmp audit verify` and `nmp audit export` as an auditor runs them, against a database of
//! their own.

use std::process::{Command, Output};

use serde_json::{Value, json};
use store::chain::{ChainLink, EventContent, event_hash};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");

fn server_url() -> String {
    std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn database_url(name: &str) -> String {
    let server = server_url();
    let slash = server.rfind('/').expect("a database URL");
    format!("{}/{name}", &server[..slash])
}

/// A migrated database of the test's own, dropped at the end.
struct Database {
    name: String,
    pool: sqlx::PgPool,
}

impl Database {
    async fn create(tag: &str) -> Database {
        let name = format!("nmp_audit_cli_{tag}_{}", std::process::id());
        let pool = store::connect(&database_url(&name), 2)
            .await
            .expect("database");
        Database { name, pool }
    }

    fn url(&self) -> String {
        database_url(&self.name)
    }

    /// Appends chained events to account `id`, as the event store would.
    async fn append(&self, id: &str, count: i64) {
        let mut previous: Option<String> = None;
        for sequence in 1..=count {
            let payload = json!({"AccountProvisioned": {"for_version": sequence}});
            let metadata = json!({"subject": "cli-test", "roles": [], "correlation_id": "c",
                                  "time": format!("2024-05-01T10:00:0{sequence}Z")});
            let hash = event_hash(
                previous.as_deref(),
                &EventContent {
                    aggregate_type: "account",
                    aggregate_id: id,
                    sequence,
                    event_type: "AccountProvisioned",
                    event_version: "1.0",
                    payload: &payload,
                    metadata: &metadata,
                },
            );
            let mut chained = metadata.clone();
            chained["chain"] = ChainLink {
                previous: previous.clone(),
                hash: hash.clone(),
            }
            .to_value();
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                     event_version, payload, metadata) \
                 VALUES ('account', $1, $2, 'AccountProvisioned', '1.0', $3, $4)",
            )
            .bind(id)
            .bind(sequence)
            .bind(&payload)
            .bind(&chained)
            .execute(&self.pool)
            .await
            .expect("inserted");
            previous = Some(hash);
        }
    }

    async fn remove(self) {
        self.pool.close().await;
        let server = sqlx::PgPool::connect(&server_url()).await.expect("server");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&server)
        .await
        .expect("dropped");
    }
}

fn audit(database_url: &str, args: &[&str]) -> Output {
    Command::new(NMP)
        .arg("audit")
        .args(args)
        .env("NMP_DATABASE_URL", database_url)
        .env_remove("NMP_CONFIG")
        .env_remove("NMP_NATS_PREFIX")
        .output()
        .expect("nmp runs")
}

#[tokio::test]
async fn verify_exits_0_on_intact_chains_and_1_with_a_report_on_tampering() {
    let database = Database::create("verify").await;
    database.append("contoso", 3).await;
    let clean = audit(&database.url(), &["verify"]);
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    assert!(stdout.contains("every chain is intact"), "{stdout}");

    sqlx::query(
        "UPDATE events SET payload = '{\"AccountProvisioned\": {\"for_version\": 9}}' \
          WHERE sequence = 2",
    )
    .execute(&database.pool)
    .await
    .expect("tampered");
    let tampered = audit(&database.url(), &["verify"]);
    let stdout = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{tampered:?}");
    assert!(stdout.contains("account/contoso #2: altered"), "{stdout}");
    assert!(stdout.contains("1 problem(s)"), "{stdout}");
    database.remove().await;
}

#[test]
fn verify_exits_2_when_it_cannot_check() {
    let output = audit("postgres://postgres@127.0.0.1:1/none", &["verify"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn export_writes_cloud_events_as_json_lines() {
    let database = Database::create("export").await;
    database.append("contoso", 4).await;
    let output = audit(
        &database.url(),
        &[
            "export",
            "--from",
            "2024-05-01T10:00:02Z",
            "--to",
            "2024-05-01T10:00:04Z",
            "--type",
            "account",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["account:contoso:2", "account:contoso:3"]);
    assert_eq!(lines[0]["specversion"], "1.0");
    assert_eq!(lines[0]["source"], "urn:nmp:nmp");
    assert_eq!(lines[0]["type"], "nmp.account.AccountProvisioned");
    assert!(String::from_utf8_lossy(&output.stderr).contains("exported 2 events"));

    let reversed = audit(
        &database.url(),
        &[
            "export",
            "--from",
            "2024-05-02T00:00:00Z",
            "--to",
            "2024-05-01T00:00:00Z",
        ],
    );
    assert!(!reversed.status.success());
    let wrong_type = audit(&database.url(), &["export", "--type", "accounts"]);
    assert!(!wrong_type.status.success());
    database.remove().await;
}
