//! `nmp config`: the effective settings as `nmp serve` loads them, secrets redacted, and an
//! invalid setting refused by name.

use std::process::{Command, Output};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");

/// Runs `nmp config` with `vars` set and every other NMP_* variable of the test's environment
/// removed, so only the given settings count.
fn config(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(NMP);
    for (name, _) in std::env::vars() {
        if name.starts_with("NMP_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .args(args)
        .arg("config")
        .envs(vars.iter().copied());
    command.output().expect("nmp runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8")
}

#[test]
fn config_prints_the_effective_settings_with_secrets_redacted() {
    let dir = std::env::temp_dir().join(format!("nmp-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nmp.toml");
    std::fs::write(
        &file,
        "http_addr = \"127.0.0.1:9000\"\n[saga]\nworkers = 4\ncalls_per_minute = 600\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let secrets = [
        "hs256-secret-value-0123456789abcdef",
        "dbpassword42",
        "natspassword43",
        "natstoken44",
        "oidcclientsecret45",
        "backendpassword46",
    ];
    let output = config(
        &["--config", file],
        &[
            ("NMP_SAGA_WORKERS", "7"),
            ("NMP_NATS_PREFIX", "configtest"),
            ("NMP_JWT_HS256_SECRET", secrets[0]),
            (
                "NMP_DATABASE_URL",
                "postgres://nmp:dbpassword42@db.example/nmp?sslmode=require",
            ),
            (
                "NMP_NATS_URL",
                "nats://nmp:natspassword43@127.0.0.1:4222,nats://natstoken44@localhost:4223",
            ),
            (
                "NMP_BACKEND_URL",
                "https://op:backendpassword46@backend.example",
            ),
        ],
    );
    let printed = stdout(&output);
    assert!(output.status.success(), "{output:?}");
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} shown: {printed}");
        assert!(!stderr(&output).contains(secret), "{output:?}");
    }
    let settings: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    // From the environment, over the file.
    assert_eq!(settings["saga"]["workers"], 7, "{printed}");
    assert_eq!(settings["nats"]["prefix"], "configtest", "{printed}");
    // From the file.
    assert_eq!(settings["http_addr"], "127.0.0.1:9000", "{printed}");
    assert_eq!(settings["saga"]["calls_per_minute"], 600, "{printed}");
    // Defaults.
    assert_eq!(settings["sync"]["interval_secs"], 30, "{printed}");
    assert_eq!(settings["log_format"], "text", "{printed}");
    assert_eq!(settings["oidc"]["scopes"], "openid profile", "{printed}");
    // Secrets: set, but not what they are.
    assert_eq!(settings["jwt"]["hs256_secret"], "<redacted>", "{printed}");
    assert_eq!(
        settings["database_url"],
        "postgres://nmp:<redacted>@db.example/nmp?sslmode=require"
    );
    assert_eq!(
        settings["nats"]["url"],
        "nats://nmp:<redacted>@127.0.0.1:4222,nats://<redacted>@localhost:4223"
    );
    assert_eq!(
        settings["backend_url"],
        "https://op:<redacted>@backend.example"
    );
    // The portal's sign-in, with the provider's keys.
    let output = config(
        &[],
        &[
            (
                "NMP_JWT_JWKS_URL",
                "https://login.example/keys?token=jwkstoken47",
            ),
            ("NMP_JWT_ISSUER", "https://login.example/tenant"),
            ("NMP_JWT_AUDIENCE", "api://nmp"),
            ("NMP_OIDC_ISSUER", "https://login.example/tenant"),
            ("NMP_OIDC_CLIENT_ID", "nmp-portal"),
            ("NMP_OIDC_CLIENT_SECRET", secrets[4]),
        ],
    );
    let printed = stdout(&output);
    assert!(output.status.success(), "{output:?}");
    for secret in [secrets[4], "jwkstoken47"] {
        assert!(!printed.contains(secret), "{secret} shown: {printed}");
    }
    let settings: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(settings["oidc"]["client_id"], "nmp-portal", "{printed}");
    assert_eq!(settings["oidc"]["client_secret"], "<redacted>", "{printed}");
    assert_eq!(
        settings["jwt"]["jwks_url"],
        "https://login.example/keys?token=<redacted>"
    );
    // Unset secrets show as unset.
    let output = config(&[], &[]);
    assert!(output.status.success(), "{output:?}");
    let settings: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert!(settings["jwt"]["hs256_secret"].is_null(), "{settings}");
    assert!(settings["oidc"]["client_secret"].is_null(), "{settings}");
}

#[test]
fn config_refuses_an_invalid_setting_by_name() {
    for (name, value) in [
        ("NMP_HTTP_ADDR", "nonsense"),
        ("NMP_LOG_FORMAT", "xml"),
        ("NMP_DATABASE_MAX_CONNECTIONS", "lots"),
        ("NMP_NATS_REPLICAS", "-1"),
        ("NMP_SAGA_WORKERS", "many"),
        ("NMP_PUBLIC_URL", "nmp.example.com"),
        ("NMP_OIDC_ISSUER", "https://login.example"),
        ("NMP_NATS_PREFIX", "a b"),
    ] {
        let output = config(&[], &[(name, value)]);
        assert!(!output.status.success(), "{name}={value}: {output:?}");
        assert!(output.stdout.is_empty(), "{name}={value}: {output:?}");
        assert!(stderr(&output).contains(name), "{name}={value}: {output:?}");
    }
    // What `nmp serve` refuses before it connects, `nmp config` refuses too.
    let output = config(&[], &[("NMP_HTTP_ADDR", "0.0.0.0:8080")]);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr(&output).contains("NMP_JWT_HS256_SECRET"),
        "{output:?}"
    );
    let output = config(
        &[],
        &[
            ("NMP_OIDC_ISSUER", "https://login.example"),
            ("NMP_OIDC_CLIENT_ID", "nmp-portal"),
        ],
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr(&output).contains("NMP_JWT_JWKS_URL"), "{output:?}");
}

#[test]
fn config_refuses_an_invalid_config_file_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("nmp-config-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, key) in [
        ("htp_addr = \"127.0.0.1:8080\"\n", "htp_addr"),
        ("log_format = \"xml\"\n", "log_format"),
        ("[saga]\nworkers = \"many\"\n", "workers"),
    ] {
        let file = dir.join("nmp.toml");
        std::fs::write(&file, text).unwrap();
        let output = config(&["--config", file.to_str().unwrap()], &[]);
        assert!(!output.status.success(), "{text}: {output:?}");
        assert!(stderr(&output).contains(key), "{text}: {output:?}");
    }
}
