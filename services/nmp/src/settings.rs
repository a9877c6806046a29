//! Typed settings, layered: built-in defaults, then a TOML file (`--config` or `NMP_CONFIG`),
//! then `NMP_*` environment variables. Secrets are never printed: `Debug` and `Serialize` (the
//! JSON `nmp config` prints) show them as `<redacted>`.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize, Serializer};

/// Everything `nmp serve` needs. Serialized (as `nmp config` prints it) with the config file's
/// keys, and with every secret shown as `<redacted>`: the result is for people, not for loading.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Postgres URL; the database is created if it does not exist.
    #[serde(serialize_with = "redacted_url")]
    pub database_url: String,
    /// Most connections the pool opens.
    pub database_max_connections: u32,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where clients reach nmp (`https://nmp.example.com`), which links in answers start with;
    /// without it, from the request's `Host` and `X-Forwarded-Proto` headers.
    pub public_url: Option<String>,
    /// How bearer tokens are verified.
    pub jwt: JwtSettings,
    /// Where events are published and the NATS API listens.
    pub nats: NatsSettings,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Base URL of the Teams backend's HTTP API (the simulator, `nmp sim`, or a connector to
    /// the real backend). Without it nothing is provisioned and the capability actions answer
    /// 503 `BackendNotConfigured`.
    #[serde(serialize_with = "redacted_optional_url")]
    pub backend_url: Option<String>,
    /// Where the backend simulator (`nmp sim`) listens.
    pub sim_addr: SocketAddr,
    /// The provisioning saga (component `saga`).
    pub saga: SagaSettings,
    /// The consent and civic-address sync (component `sync`).
    pub sync: SyncSettings,
    /// The portal's sign-in with an OpenID Connect provider.
    pub oidc: OidcSettings,
    /// Seconds `nmp serve` takes to stop after SIGTERM or Ctrl-C: open requests finish within
    /// them, then whatever still runs is cut off and the process exits.
    pub shutdown_secs: u64,
}

/// Sign-in to the portal with an OpenID Connect provider (Entra ID, Keycloak, …): the
/// authorization code flow with PKCE. The access tokens it hands out are verified like any
/// other, so `[jwt]` must name the same provider's keys.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer URL; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`. Unset: no such sign-in.
    #[serde(serialize_with = "redacted_optional_url")]
    pub issuer: Option<String>,
    /// nmp's client id at the provider.
    pub client_id: Option<String>,
    /// nmp's client secret at the provider, for a confidential client.
    #[serde(serialize_with = "redacted_secret")]
    pub client_secret: Option<String>,
    /// Scopes asked for, space-separated; must get an access token for nmp with its roles.
    pub scopes: String,
    /// The provider's name on the sign-in button; the issuer's host without it.
    pub name: Option<String>,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            issuer: None,
            client_id: None,
            client_secret: None,
            scopes: "openid profile".to_string(),
            name: None,
        }
    }
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scopes", &self.scopes)
            .field("name", &self.name)
            .finish()
    }
}

/// The provisioning saga's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SagaSettings {
    /// Most backend calls a minute, shared by the saga and the sync of this process (every
    /// call counts: orders, order polls, updates, releases, relationship pushes, the sync's
    /// reads); 0 for no limit.
    pub calls_per_minute: u32,
    /// Worker loops in this process.
    pub workers: usize,
    /// Milliseconds from placing an order to its first poll (later polls back off).
    pub order_poll_ms: u64,
    /// Seconds a claim holds: after a crash, its work waits this long for another worker.
    pub lease_secs: u64,
}

impl Default for SagaSettings {
    fn default() -> Self {
        SagaSettings {
            calls_per_minute: 100,
            workers: 2,
            order_poll_ms: 1_000,
            lease_secs: 60,
        }
    }
}

/// The backend sync's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Seconds between two passes over the backend's consents and civic addresses.
    pub interval_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings { interval_secs: 30 }
    }
}

#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Shared HS256 secret (local and small installations).
    #[serde(serialize_with = "redacted_secret")]
    pub hs256_secret: Option<String>,
    /// JWKS URL of an OpenID provider (Entra ID or any other).
    #[serde(serialize_with = "redacted_optional_url")]
    pub jwks_url: Option<String>,
    /// Required `iss`, checked when set.
    pub issuer: Option<String>,
    /// Required `aud`, checked when set.
    pub audience: Option<String>,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// NATS server URL; a password or token in it is a secret.
    #[serde(serialize_with = "redacted_url")]
    pub url: String,
    /// Subject prefix and stream name stem, so installations (and tests) share a server.
    pub prefix: String,
    /// Replicas of the event stream: 1 on one server, 3 in a production cluster.
    pub replicas: usize,
    /// Seconds JetStream remembers message ids to drop re-published events.
    pub duplicate_window_secs: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: "nats://127.0.0.1:4222".to_string(),
            prefix: "nmp".to_string(),
            replicas: 1,
            duplicate_window_secs: 120,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/nmp".to_string(),
            database_max_connections: 20,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            jwt: JwtSettings::default(),
            nats: NatsSettings::default(),
            log_format: LogFormat::Text,
            backend_url: None,
            sim_addr: SocketAddr::from(([127, 0, 0, 1], 8090)),
            saga: SagaSettings::default(),
            sync: SyncSettings::default(),
            oidc: OidcSettings::default(),
            shutdown_secs: 20,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("http_addr", &self.http_addr)
            .field("public_url", &self.public_url)
            .field("jwt", &self.jwt)
            .field("nats", &self.nats)
            .field("log_format", &self.log_format)
            .field("backend_url", &self.backend_url.as_deref().map(redact_url))
            .field("sim_addr", &self.sim_addr)
            .field("saga", &self.saga)
            .field("sync", &self.sync)
            .field("oidc", &self.oidc)
            .field("shutdown_secs", &self.shutdown_secs)
            .finish()
    }
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .finish()
    }
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks_url", &self.jwks_url.as_deref().map(redact_url))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

fn redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

fn redacted_optional_url<S: Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact_url).serialize(serializer)
}

/// A secret as it may be printed: whether it is set, never what it is.
fn redacted_secret<S: Serializer>(
    secret: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|_| "<redacted>").serialize(serializer)
}

/// A URL (or a comma-separated list of them, as NATS takes) as it may be printed: a password in
/// its user info, a user info without one where the scheme uses it as a token (`nats://TOKEN@`),
/// and the values of query parameters that carry credentials (`?password=`, `sslpassword`,
/// `token`, `secret`, `key`…) are replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    const HIDDEN: &str = "<redacted>";
    let (scheme, rest) = match url.find("://") {
        Some(end) => (&url[..end + 3], &url[end + 3..]),
        None => ("", url),
    };
    let (before_query, query) = match rest.find('?') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (user_info, host) = authority.split_at(at);
            let user_info = match user_info.split_once(':') {
                Some((user, _)) => format!("{user}:{HIDDEN}"),
                // A lone user name is a token for NATS; for a database it is only a name.
                None if scheme.starts_with("nats") || scheme.starts_with("tls") => {
                    HIDDEN.to_string()
                }
                None => user_info.to_string(),
            };
            format!("{user_info}{host}")
        }
        None => authority.to_string(),
    };
    let query = query.map(|query| {
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_credential(name) => format!("{name}={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) => format!("{scheme}{authority}{path}?{query}"),
        None => format!("{scheme}{authority}{path}"),
    }
}

fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pass",
        "token",
        "secret",
        "key",
        "credentials",
        "nkey",
        "jwt",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Whether every server of a URL (or comma-separated list) is on this host.
pub fn is_loopback_url(url: &str) -> bool {
    url.split(',').all(|one| {
        let rest = one.trim().split_once("://").map_or(one.trim(), |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host_port.split(':').next().unwrap_or(""),
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

impl Settings {
    /// Loads the layers. `file` wins over `NMP_CONFIG`; a named file must exist.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// As `load`, reading variables through `env` (so tests need not touch the process's).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env("NMP_CONFIG").map(Into::into));
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(url) = env("NMP_DATABASE_URL") {
            settings.database_url = url;
        }
        if let Some(max) = env("NMP_DATABASE_MAX_CONNECTIONS") {
            settings.database_max_connections = max
                .parse()
                .context("NMP_DATABASE_MAX_CONNECTIONS must be a whole number")?;
        }
        if let Some(addr) = env("NMP_HTTP_ADDR") {
            settings.http_addr = addr.parse().with_context(|| {
                format!("NMP_HTTP_ADDR '{addr}' is not an address such as 127.0.0.1:8080")
            })?;
        }
        let set = |slot: &mut Option<String>, name: &str| {
            if let Some(value) = env(name).filter(|v| !v.is_empty()) {
                *slot = Some(value);
            }
        };
        set(&mut settings.public_url, "NMP_PUBLIC_URL");
        if let Some(url) = &settings.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let valid = rest.is_some_and(|rest| {
                let host = rest.trim_end_matches('/');
                !host.is_empty()
                    && !host.contains(['/', '?', '#', '@', ' '])
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
            });
            if !valid {
                anyhow::bail!(
                    "NMP_PUBLIC_URL '{url}' must be http(s)://host[:port] with no path, such as \
                     https://nmp.example.com"
                );
            }
        }
        set(&mut settings.jwt.hs256_secret, "NMP_JWT_HS256_SECRET");
        set(&mut settings.jwt.jwks_url, "NMP_JWT_JWKS_URL");
        set(&mut settings.jwt.issuer, "NMP_JWT_ISSUER");
        set(&mut settings.jwt.audience, "NMP_JWT_AUDIENCE");
        if let Some(url) = env("NMP_NATS_URL") {
            settings.nats.url = url;
        }
        if let Some(prefix) = env("NMP_NATS_PREFIX") {
            settings.nats.prefix = prefix;
        }
        relay::StreamSettings::new(&settings.nats.prefix).context("invalid NMP_NATS_PREFIX")?;
        if let Some(replicas) = env("NMP_NATS_REPLICAS") {
            settings.nats.replicas = replicas
                .parse()
                .context("NMP_NATS_REPLICAS must be a whole number")?;
        }
        if let Some(window) = env("NMP_NATS_DUPLICATE_WINDOW_SECS") {
            settings.nats.duplicate_window_secs = window
                .parse()
                .context("NMP_NATS_DUPLICATE_WINDOW_SECS must be a whole number of seconds")?;
        }
        if let Some(url) = env("NMP_BACKEND_URL").filter(|v| !v.is_empty()) {
            settings.backend_url = Some(url);
        }
        if let Some(addr) = env("NMP_SIM_ADDR") {
            settings.sim_addr = addr.parse().with_context(|| {
                format!("NMP_SIM_ADDR '{addr}' is not an address such as 127.0.0.1:8090")
            })?;
        }
        let whole = |name: &str| -> anyhow::Result<Option<u64>> {
            env(name)
                .map(|value| {
                    value
                        .parse::<u64>()
                        .with_context(|| format!("{name} must be a whole number, not '{value}'"))
                })
                .transpose()
        };
        if let Some(calls) = whole("NMP_SAGA_CALLS_PER_MINUTE")? {
            settings.saga.calls_per_minute =
                u32::try_from(calls).context("NMP_SAGA_CALLS_PER_MINUTE is too large")?;
        }
        if let Some(workers) = whole("NMP_SAGA_WORKERS")? {
            settings.saga.workers = workers as usize;
        }
        if let Some(ms) = whole("NMP_SAGA_ORDER_POLL_MS")? {
            settings.saga.order_poll_ms = ms;
        }
        if let Some(secs) = whole("NMP_SAGA_LEASE_SECS")? {
            settings.saga.lease_secs = secs;
        }
        if let Some(secs) = whole("NMP_SYNC_INTERVAL_SECS")? {
            settings.sync.interval_secs = secs;
        }
        if let Some(secs) = whole("NMP_SHUTDOWN_SECS")? {
            settings.shutdown_secs = secs;
        }
        set(&mut settings.oidc.issuer, "NMP_OIDC_ISSUER");
        set(&mut settings.oidc.client_id, "NMP_OIDC_CLIENT_ID");
        set(&mut settings.oidc.client_secret, "NMP_OIDC_CLIENT_SECRET");
        set(&mut settings.oidc.name, "NMP_OIDC_NAME");
        if let Some(scopes) = env("NMP_OIDC_SCOPES").filter(|v| !v.trim().is_empty()) {
            settings.oidc.scopes = scopes;
        }
        settings.oidc.check()?;
        if let Some(format) = env("NMP_LOG_FORMAT") {
            settings.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => anyhow::bail!("NMP_LOG_FORMAT must be text or json, not '{other}'"),
            };
        }
        Ok(settings)
    }
}

impl OidcSettings {
    /// Refuses an issuer without a client id, one reached in the clear (but on this host), and
    /// scopes without `openid`.
    fn check(&self) -> anyhow::Result<()> {
        let Some(issuer) = &self.issuer else {
            return Ok(());
        };
        if self.client_id.as_deref().is_none_or(str::is_empty) {
            anyhow::bail!(
                "NMP_OIDC_ISSUER is set without NMP_OIDC_CLIENT_ID, nmp's client id there"
            );
        }
        if !issuer.starts_with("https://") && !is_loopback_url(issuer) {
            anyhow::bail!(
                "NMP_OIDC_ISSUER '{}' must use https (plain http only to this host)",
                redact_url(issuer)
            );
        }
        if !self
            .scopes
            .split_whitespace()
            .any(|scope| scope == "openid")
        {
            anyhow::bail!("NMP_OIDC_SCOPES '{}' must include openid", self.scopes);
        }
        Ok(())
    }
}

/// How tokens will be verified, decided from the settings and the listening address.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Hs256,
    Jwks,
    /// No keys configured, on a loopback address: the development secret.
    Development,
}

impl JwtSettings {
    /// Which keys verify tokens, refusing settings that would let strangers in:
    /// - keys from a JWKS URL only with both `NMP_JWT_ISSUER` and `NMP_JWT_AUDIENCE` (Entra ID
    ///   signs every tenant's tokens with the same keys: without them, anyone's app with a
    ///   `ProvisioningAPI.Admin` role would be Admin here), and over https unless the URL is on
    ///   this host;
    /// - no keys (the development secret) only when the HTTP address and every NATS server are
    ///   on this host (the NATS API takes the same tokens from whoever can publish on it).
    pub fn key_source(&self, addr: &SocketAddr, nats_url: &str) -> anyhow::Result<KeySource> {
        match (&self.hs256_secret, &self.jwks_url) {
            (Some(_), Some(_)) => {
                anyhow::bail!("both NMP_JWT_HS256_SECRET and NMP_JWT_JWKS_URL are set; choose one")
            }
            (Some(_), None) => Ok(KeySource::Hs256),
            (None, Some(url)) => {
                let missing: Vec<&str> = [
                    ("NMP_JWT_ISSUER", &self.issuer),
                    ("NMP_JWT_AUDIENCE", &self.audience),
                ]
                .into_iter()
                .filter(|(_, value)| value.as_deref().is_none_or(str::is_empty))
                .map(|(name, _)| name)
                .collect();
                if !missing.is_empty() {
                    anyhow::bail!(
                        "NMP_JWT_JWKS_URL is set without {}: an identity provider signs the \
                         tokens of every application and tenant with the same keys, so nmp \
                         must check that a token was issued by your issuer for nmp",
                        missing.join(" and ")
                    );
                }
                if !url.starts_with("https://") && !is_loopback_url(url) {
                    anyhow::bail!(
                        "NMP_JWT_JWKS_URL '{}' must use https (plain http only to this host): \
                         keys fetched in the clear can be replaced on the way",
                        redact_url(url)
                    );
                }
                Ok(KeySource::Jwks)
            }
            (None, None) if !addr.ip().is_loopback() => anyhow::bail!(
                "refusing to serve on {addr} without token keys: set NMP_JWT_HS256_SECRET or \
                 NMP_JWT_JWKS_URL (only a loopback address may use the development secret)"
            ),
            (None, None) if !is_loopback_url(nats_url) => anyhow::bail!(
                "refusing to use the development secret with NATS at {}: the NATS API would \
                 take tokens signed with it from anyone who can publish there; set \
                 NMP_JWT_HS256_SECRET or NMP_JWT_JWKS_URL, or use a NATS server on this host",
                redact_url(nats_url)
            ),
            (None, None) => Ok(KeySource::Development),
        }
    }

    pub fn verifier(
        &self,
        addr: &SocketAddr,
        nats_url: &str,
    ) -> anyhow::Result<(auth::Verifier, KeySource)> {
        let source = self.key_source(addr, nats_url)?;
        let verifier = match source {
            KeySource::Hs256 => auth::Verifier::hs256(
                self.hs256_secret.as_deref().unwrap_or_default().as_bytes(),
                self.issuer.clone(),
                self.audience.clone(),
            ),
            KeySource::Jwks => auth::Verifier::jwks(
                self.jwks_url.clone().unwrap_or_default(),
                self.issuer.clone(),
                self.audience.clone(),
            ),
            KeySource::Development => {
                auth::Verifier::hs256(auth::DEVELOPMENT_SECRET.as_bytes(), None, None)
            }
        };
        Ok((verifier, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let settings = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            settings.database_url,
            "postgres://postgres@127.0.0.1:5432/nmp"
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("nmp-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nmp.toml");
        std::fs::write(
            &file,
            "http_addr = \"127.0.0.1:9000\"\ndatabase_url = \"postgres://file/db\"\n[jwt]\nissuer = \"https://issuer\"\n",
        )
        .unwrap();
        let settings =
            Settings::load_from(Some(&file), env_of(&[("NMP_HTTP_ADDR", "127.0.0.1:9100")]))
                .unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:9100");
        assert_eq!(settings.database_url, "postgres://file/db");
        assert_eq!(settings.jwt.issuer.as_deref(), Some("https://issuer"));
    }

    #[test]
    fn the_backend_url_comes_from_the_file_or_the_environment() {
        assert_eq!(
            Settings::load_from(None, env_of(&[])).unwrap().backend_url,
            None
        );
        let dir = std::env::temp_dir().join(format!("nmp-settings-backend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nmp.toml");
        std::fs::write(&file, "backend_url = \"http://file:9000\"\n").unwrap();
        let from_file = Settings::load_from(Some(&file), env_of(&[])).unwrap();
        assert_eq!(from_file.backend_url.as_deref(), Some("http://file:9000"));
        let from_env = Settings::load_from(
            Some(&file),
            env_of(&[("NMP_BACKEND_URL", "http://sim:7000")]),
        )
        .unwrap();
        assert_eq!(from_env.backend_url.as_deref(), Some("http://sim:7000"));
    }

    #[test]
    fn saga_and_sync_settings_have_defaults_a_file_and_variables() {
        let defaults = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(defaults.saga.calls_per_minute, 100);
        assert_eq!(defaults.sync.interval_secs, 30);
        let dir = std::env::temp_dir().join(format!("nmp-settings-saga-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nmp.toml");
        std::fs::write(
            &file,
            "[saga]\ncalls_per_minute = 600\nworkers = 4\n[sync]\ninterval_secs = 5\n",
        )
        .unwrap();
        let settings = Settings::load_from(
            Some(&file),
            env_of(&[
                ("NMP_SAGA_CALLS_PER_MINUTE", "0"),
                ("NMP_SYNC_INTERVAL_SECS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.saga.calls_per_minute, 0);
        assert_eq!(settings.saga.workers, 4);
        assert_eq!(settings.sync.interval_secs, 2);
        let error = Settings::load_from(None, env_of(&[("NMP_SAGA_WORKERS", "many")])).unwrap_err();
        assert!(error.to_string().contains("NMP_SAGA_WORKERS"));
    }

    #[test]
    fn unknown_settings_in_the_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("nmp-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nmp.toml");
        std::fs::write(&file, "htp_addr = \"x\"\n").unwrap();
        let error = Settings::load_from(Some(&file), env_of(&[])).unwrap_err();
        assert!(format!("{error:#}").contains("htp_addr"), "{error:#}");
    }

    #[test]
    fn a_bad_address_is_reported_by_name() {
        let error = Settings::load_from(None, env_of(&[("NMP_HTTP_ADDR", "nowhere")])).unwrap_err();
        assert!(error.to_string().contains("NMP_HTTP_ADDR"));
    }

    #[test]
    fn the_simulator_listens_on_8090_unless_told_otherwise() {
        let settings = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(settings.sim_addr.to_string(), "127.0.0.1:8090");
        let settings =
            Settings::load_from(None, env_of(&[("NMP_SIM_ADDR", "0.0.0.0:9090")])).unwrap();
        assert_eq!(settings.sim_addr.to_string(), "0.0.0.0:9090");
        let error = Settings::load_from(None, env_of(&[("NMP_SIM_ADDR", "x")])).unwrap_err();
        assert!(error.to_string().contains("NMP_SIM_ADDR"));
    }

    const LOCAL_NATS: &str = "nats://127.0.0.1:4222";

    #[test]
    fn without_keys_only_loopback_may_serve() {
        let jwt = JwtSettings::default();
        assert_eq!(
            jwt.key_source(&"127.0.0.1:8080".parse().unwrap(), LOCAL_NATS)
                .unwrap(),
            KeySource::Development
        );
        assert_eq!(
            jwt.key_source(&"[::1]:8080".parse().unwrap(), "nats://localhost:4222")
                .unwrap(),
            KeySource::Development
        );
        assert!(
            jwt.key_source(&"0.0.0.0:8080".parse().unwrap(), LOCAL_NATS)
                .is_err()
        );
        let jwt = JwtSettings {
            hs256_secret: Some("s".repeat(32)),
            ..Default::default()
        };
        assert_eq!(
            jwt.key_source(&"0.0.0.0:8080".parse().unwrap(), "nats://nats.example:4222")
                .unwrap(),
            KeySource::Hs256
        );
    }

    #[test]
    fn the_development_secret_needs_nats_on_this_host_too() {
        let jwt = JwtSettings::default();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for remote in [
            "nats://nats.example:4222",
            "nats://10.0.0.5:4222",
            "nats://user:pw@nats.example:4222",
            "nats://127.0.0.1:4222,nats://nats.example:4222",
            "nats.example:4222",
        ] {
            let error = jwt.key_source(&local, remote).unwrap_err().to_string();
            assert!(error.contains("development secret"), "{remote}: {error}");
            assert!(!error.contains("pw@"), "{error}");
        }
        for here in [
            "nats://127.0.0.1:4222",
            "nats://[::1]:4222",
            "localhost:4222",
            "nats://a:b@127.0.0.1:4222,nats://localhost:4223",
        ] {
            assert_eq!(
                jwt.key_source(&local, here).unwrap(),
                KeySource::Development,
                "{here}"
            );
        }
    }

    #[test]
    fn keys_from_a_jwks_url_need_issuer_audience_and_https() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let jwks = |url: &str, issuer: Option<&str>, audience: Option<&str>| JwtSettings {
            jwks_url: Some(url.to_string()),
            issuer: issuer.map(str::to_string),
            audience: audience.map(str::to_string),
            ..Default::default()
        };
        let https = "https://login.example/keys";
        let error = jwks(https, None, None)
            .key_source(&addr, LOCAL_NATS)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("NMP_JWT_ISSUER and NMP_JWT_AUDIENCE"),
            "{error}"
        );
        let error = jwks(https, Some("https://issuer"), None)
            .key_source(&addr, LOCAL_NATS)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("NMP_JWT_AUDIENCE") && !error.contains("NMP_JWT_ISSUER"),
            "{error}"
        );
        let error = jwks(https, Some(""), Some("api://nmp"))
            .key_source(&addr, LOCAL_NATS)
            .unwrap_err()
            .to_string();
        assert!(error.contains("NMP_JWT_ISSUER"), "{error}");
        let error = jwks("http://login.example/keys", Some("i"), Some("a"))
            .key_source(&addr, LOCAL_NATS)
            .unwrap_err()
            .to_string();
        assert!(error.contains("https"), "{error}");
        for good in [https, "http://127.0.0.1:9999/keys", "http://localhost/keys"] {
            assert_eq!(
                jwks(good, Some("i"), Some("a"))
                    .key_source(&addr, LOCAL_NATS)
                    .unwrap(),
                KeySource::Jwks,
                "{good}"
            );
        }
    }

    #[test]
    fn the_portal_signs_in_with_an_oidc_provider_when_told_which() {
        let settings = Settings::load_from(None, env_of(&[])).unwrap();
        assert_eq!(settings.oidc.issuer, None);
        assert_eq!(settings.oidc.scopes, "openid profile");
        let settings = Settings::load_from(
            None,
            env_of(&[
                ("NMP_OIDC_ISSUER", "https://login.example/tenant/v2.0"),
                ("NMP_OIDC_CLIENT_ID", "nmp-portal"),
                ("NMP_OIDC_CLIENT_SECRET", "hunter6"),
                ("NMP_OIDC_SCOPES", "openid api://nmp/.default"),
            ]),
        )
        .unwrap();
        assert_eq!(
            settings.oidc.issuer.as_deref(),
            Some("https://login.example/tenant/v2.0")
        );
        assert_eq!(settings.oidc.client_id.as_deref(), Some("nmp-portal"));
        assert_eq!(settings.oidc.scopes, "openid api://nmp/.default");
        assert!(!format!("{settings:?}").contains("hunter6"));
        for (pairs, complaint) in [
            (
                vec![("NMP_OIDC_ISSUER", "https://login.example")],
                "NMP_OIDC_CLIENT_ID",
            ),
            (
                vec![
                    ("NMP_OIDC_ISSUER", "http://login.example"),
                    ("NMP_OIDC_CLIENT_ID", "nmp"),
                ],
                "https",
            ),
            (
                vec![
                    ("NMP_OIDC_ISSUER", "https://login.example"),
                    ("NMP_OIDC_CLIENT_ID", "nmp"),
                    ("NMP_OIDC_SCOPES", "profile"),
                ],
                "openid",
            ),
        ] {
            let error = Settings::load_from(None, env_of(&pairs))
                .unwrap_err()
                .to_string();
            assert!(error.contains(complaint), "{error}");
        }
        let local = Settings::load_from(
            None,
            env_of(&[
                ("NMP_OIDC_ISSUER", "http://127.0.0.1:9000/realms/nmp"),
                ("NMP_OIDC_CLIENT_ID", "nmp"),
            ]),
        );
        assert!(local.is_ok());
    }

    #[test]
    fn the_public_url_is_a_scheme_and_a_host() {
        let settings = Settings::load_from(
            None,
            env_of(&[("NMP_PUBLIC_URL", "https://nmp.example.com:8443")]),
        )
        .unwrap();
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://nmp.example.com:8443")
        );
        for bad in [
            "nmp.example.com",
            "ftp://nmp.example.com",
            "https://nmp.example.com/api",
            "https://user@nmp.example.com",
            "https://",
        ] {
            let error = Settings::load_from(None, env_of(&[("NMP_PUBLIC_URL", bad)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains("NMP_PUBLIC_URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        for (url, secret) in [
            ("postgres://nmp:hunter2@db/nmp", "hunter2"),
            ("postgres://db/nmp?user=nmp&password=hunter2", "hunter2"),
            (
                "postgres://db/nmp?sslpassword=hunter2&sslmode=require",
                "hunter2",
            ),
            ("nats://user:hunter2@nats:4222", "hunter2"),
            ("nats://s3cr3tt0ken@nats:4222", "s3cr3tt0ken"),
            (
                "nats://a:hunter2@n1:4222,nats://b:hunter3@n2:4222",
                "hunter",
            ),
            ("https://keys.example/jwks?token=hunter2", "hunter2"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} shows as {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/nmp?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432/nmp?sslmode=disable"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let settings = Settings {
            database_url: "postgres://nmp:hunter2@db/nmp?password=hunter3".to_string(),
            jwt: JwtSettings {
                hs256_secret: Some("topsecret".to_string()),
                ..Default::default()
            },
            nats: NatsSettings {
                url: "nats://nmp:hunter4@nats:4222".to_string(),
                ..Default::default()
            },
            backend_url: Some("https://u:hunter5@backend".to_string()),
            ..Default::default()
        };
        let printed = format!("{settings:?}");
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5", "topsecret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let serialized = serde_json::to_string(&settings).unwrap();
        for secret in ["hunter2", "hunter3", "hunter4", "hunter5", "topsecret"] {
            assert!(!serialized.contains(secret), "{serialized}");
        }
    }
}
