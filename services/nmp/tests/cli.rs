//! The `nmp` binary as a newcomer runs it: `nmp serve` and `nmp token`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// Kills the server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn database_url(name: &str) -> String {
    let server = std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let slash = server.rfind('/').expect("a database URL");
    format!("{}/{name}", &server[..slash])
}

/// Runs `nmp token` with `args`, with `secret` as NMP_JWT_HS256_SECRET (none: unset), and returns
/// the printed token.
fn mint(args: &[&str], secret: Option<&str>) -> String {
    let mut command = Command::new(NMP);
    command.arg("token").args(args).env_remove("NMP_CONFIG");
    match secret {
        Some(secret) => command.env("NMP_JWT_HS256_SECRET", secret),
        None => command.env_remove("NMP_JWT_HS256_SECRET"),
    };
    let output = command.output().expect("nmp runs");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    assert!(token.ends_with('\n'), "one line: {token:?}");
    token.trim_end().to_string()
}

/// Verifies `token` as HS256 with `secret` (signature and expiry), and returns its claims.
fn decode(token: &str, secret: &str) -> jsonwebtoken::errors::Result<serde_json::Value> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Asserts that `claims` were issued around now and expire `ttl_secs` later.
#[track_caller]
fn assert_lifetime(claims: &serde_json::Value, before: i64, after: i64, ttl_secs: i64) {
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} in {before}..={after}"
    );
    assert_eq!(exp - iat, ttl_secs, "{claims}");
}

#[test]
fn token_prints_a_jwt() {
    let before = now();
    let token = mint(&["--role", "ProvisioningAPI.Admin"], None);
    let after = now();
    // Without a configured secret, the token is signed with the development secret, and valid
    // for the default hour, for the default subject, with the role asked for.
    let claims = decode(&token, auth::DEVELOPMENT_SECRET)
        .unwrap_or_else(|e| panic!("signed with the development secret: {e}: {token}"));
    assert_eq!(
        claims["roles"],
        serde_json::json!(["ProvisioningAPI.Admin"])
    );
    assert_eq!(claims["sub"], "nmp-cli");
    assert_lifetime(&claims, before, after, 3600);
    let header = jsonwebtoken::decode_header(&token).expect("a header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    // The signature covers the claims: another secret does not verify it.
    let error = decode(&token, "another-secret-of-a-decent-length-0123456789").unwrap_err();
    assert_eq!(
        *error.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[test]
fn token_is_signed_with_the_configured_secret_for_the_subject_roles_and_lifetime_asked() {
    let secret = "a-configured-secret-of-at-least-32-bytes";
    let before = now();
    let token = mint(
        &[
            "--role",
            "ProvisioningAPI.ReadUser",
            "--role",
            "ProvisioningAPI.Delete",
            "--subject",
            "alice",
            "--ttl-minutes",
            "5",
        ],
        Some(secret),
    );
    let after = now();
    let claims = decode(&token, secret)
        .unwrap_or_else(|e| panic!("signed with the configured secret: {e}: {token}"));
    assert_eq!(
        claims["roles"],
        serde_json::json!(["ProvisioningAPI.ReadUser", "ProvisioningAPI.Delete"])
    );
    assert_eq!(claims["sub"], "alice");
    assert_lifetime(&claims, before, after, 300);
    assert!(
        decode(&token, auth::DEVELOPMENT_SECRET).is_err(),
        "not the development secret once one is configured"
    );
}

#[test]
fn token_refuses_an_unknown_role() {
    let output = Command::new(NMP)
        .args(["token", "--role", "ProvisioningAPI.Root"])
        .output()
        .expect("nmp runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ProvisioningAPI.Root"));
}

#[test]
fn serve_refuses_a_public_address_without_token_keys() {
    let output = Command::new(NMP)
        .args(["serve"])
        .env("NMP_HTTP_ADDR", "0.0.0.0:0")
        .env_remove("NMP_JWT_HS256_SECRET")
        .env_remove("NMP_JWT_JWKS_URL")
        .env_remove("NMP_CONFIG")
        .output()
        .expect("nmp runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve"), "{stderr}");
}

#[tokio::test]
async fn serve_on_loopback_uses_the_development_secret_and_answers_its_tokens() {
    let port = free_port();
    let database = format!("nmp_cli_{}", std::process::id());
    let prefix = format!("tcli{}", std::process::id());
    let child = Command::new(NMP)
        .args(["serve"])
        .env("NMP_NATS_PREFIX", &prefix)
        .env("NMP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("NMP_DATABASE_URL", database_url(&database))
        .env_remove("NMP_JWT_HS256_SECRET")
        .env_remove("NMP_JWT_JWKS_URL")
        .env_remove("NMP_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nmp starts");
    let mut server = Server(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = client.get(format!("{base}/healthz")).send().await
            && answer.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "nmp did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let openapi: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        openapi["paths"]["/accounts/{accountName}"]["put"].is_object(),
        "{openapi}"
    );

    // The relay and the projector run too, and report themselves once they have taken the
    // relay lock and measured their lag.
    let stream = format!("{}_EVENTS", prefix.to_ascii_uppercase());
    loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics.contains(&format!("nmp_relay_leader{{stream=\"{stream}\"}} 1"))
            && metrics.contains(&format!(
                "nmp_projector_lag_events{{stream=\"{stream}\",projector=\"projector\"}}"
            ))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let token = Command::new(NMP)
        .args(["token", "--role", "ProvisioningAPI.Read"])
        .env_remove("NMP_JWT_HS256_SECRET")
        .output()
        .expect("token");
    let token = String::from_utf8(token.stdout).expect("utf-8");
    let answer = client
        .get(format!(
            "{base}/accounts/nobody?api-version=2024-02-29-preview"
        ))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("request");
    assert_eq!(
        answer.status(),
        404,
        "the token is accepted; the account does not exist"
    );

    let _ = server.0.kill();
    let output = server.0.wait_with_output_lossy();
    assert!(
        output.contains("DEVELOPMENT secret"),
        "the log says so: {output}"
    );
    drop_database(&database).await;
    delete_stream(&format!("{}_EVENTS", prefix.to_uppercase())).await;
}

async fn delete_stream(name: &str) {
    let url = std::env::var("NMP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(name).await;
    }
}

trait WaitLossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl WaitLossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut text = String::new();
        if let Some(stdout) = self.stdout.as_mut() {
            let _ = stdout.read_to_string(&mut text);
        }
        text
    }
}

async fn drop_database(name: &str) {
    let Ok(pool) = sqlx::PgPool::connect(&database_url("postgres")).await else {
        return;
    };
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&pool)
        .await;
}
