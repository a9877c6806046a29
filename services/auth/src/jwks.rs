//! The identity provider's public signing keys, read from its JWKS URL.
//!
//! Keys are fetched on first use rather than at startup, so that nmp starts (and serves health
//! checks) while the identity provider is unreachable. They are cached and refetched when a
//! token names a key id we have not seen, which is how providers announce a key rotation; that
//! refetch is rate-limited because the key id comes from an unauthenticated caller. Keys older
//! than the maximum age are refreshed too, so that a key the provider withdrew stops working.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::AuthError;

/// Algorithms accepted from a JWKS; HMAC is absent on purpose (a public key must never be usable
/// as a shared secret), and so is `none`, which `jsonwebtoken` cannot even represent.
pub(crate) const JWKS_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

pub(crate) const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);

/// Key sets are a few kilobytes; the cap only keeps a misbehaving endpoint from filling memory.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One published verification key, with what it may verify.
#[derive(Debug)]
pub(crate) struct SigningKey {
    kid: Option<String>,
    shape: KeyShape,
    /// The JWK's own `alg`, if it declares one: then only that algorithm may use the key.
    declared_algorithm: Option<Algorithm>,
    pub(crate) decoding_key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShape {
    Rsa,
    EcP256,
    EcP384,
}

impl SigningKey {
    /// Whether a token signed with `algorithm` may be checked with this key. Matching the
    /// algorithm to the key's type is what defeats algorithm-confusion attacks.
    pub(crate) fn accepts(&self, algorithm: Algorithm) -> bool {
        let fits_shape = match self.shape {
            KeyShape::Rsa => matches!(
                algorithm,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256
            ),
            KeyShape::EcP256 => algorithm == Algorithm::ES256,
            KeyShape::EcP384 => algorithm == Algorithm::ES384,
        };
        fits_shape
            && self
                .declared_algorithm
                .is_none_or(|declared| declared == algorithm)
    }

    /// Reads one JWK, or `None` for keys nmp cannot or must not verify with.
    fn from_jwk(jwk: &Jwk) -> Option<SigningKey> {
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|usage| *usage != PublicKeyUse::Signature)
        {
            return None;
        }
        if let Some(operations) = &jwk.common.key_operations
            && !operations.contains(&KeyOperations::Verify)
        {
            return None;
        }
        let declared_algorithm = match jwk.common.key_algorithm {
            Some(declared) => Some(Algorithm::try_from(declared).ok()?),
            None => None,
        };
        let (shape, decoding_key) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => (
                KeyShape::Rsa,
                DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?,
            ),
            AlgorithmParameters::EllipticCurve(ec) => {
                let (shape, coordinate_bytes) = match ec.curve {
                    EllipticCurve::P256 => (KeyShape::EcP256, 32),
                    EllipticCurve::P384 => (KeyShape::EcP384, 48),
                    _ => return None,
                };
                // jsonwebtoken only checks the point when a token arrives; checking here
                // means a broken key is skipped instead of failing tokens as forged.
                let x = URL_SAFE_NO_PAD.decode(&ec.x).ok()?;
                let y = URL_SAFE_NO_PAD.decode(&ec.y).ok()?;
                if x.len() != coordinate_bytes || y.len() != coordinate_bytes {
                    return None;
                }
                (shape, DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?)
            }
            // Symmetric keys from a URL would be a shared secret everybody can read; EdDSA and
            // anything newer are simply not offered by the providers nmp targets.
            _ => return None,
        };
        let signing_key = SigningKey {
            kid: jwk.common.key_id.clone(),
            shape,
            declared_algorithm,
            decoding_key,
        };
        if !JWKS_ALGORITHMS
            .iter()
            .any(|algorithm| signing_key.accepts(*algorithm))
        {
            return None;
        }
        Some(signing_key)
    }
}

/// The keys of one successful fetch.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    fn parse(body: &[u8]) -> Result<KeySet, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct RawKeySet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawKeySet = serde_json::from_slice(body)?;
        // Keys are read one by one so that a single exotic key (providers publish encryption
        // and certificate-only keys too) does not hide the usable ones.
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| SigningKey::from_jwk(&jwk))
            .map(Arc::new)
            .collect();
        Ok(KeySet { keys })
    }

    /// A token without `kid` is only unambiguous when the provider publishes a single key.
    fn find(&self, kid: Option<&str>) -> Option<Arc<SigningKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .cloned(),
            None if self.keys.len() == 1 => self.keys.first().cloned(),
            None => None,
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    keys: Arc<KeySet>,
    fetched_at: Option<Instant>,
}

/// State of the fetching side, guarded by one mutex so that at most one fetch runs at a time.
#[derive(Debug, Default)]
struct Fetcher {
    /// Built on first fetch, because building it can fail and constructors here cannot.
    client: Option<reqwest::Client>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the key set is not a JWKS document")]
    NotJwks(#[source] serde_json::Error),
}

/// The cached key set of one JWKS URL; shared by all clones of a verifier.
#[derive(Debug)]
pub(crate) struct JwksKeys {
    url: String,
    min_refresh_interval: Duration,
    max_key_age: Duration,
    cache: RwLock<Cache>,
    fetcher: Mutex<Fetcher>,
}

impl JwksKeys {
    pub(crate) fn new(url: String, min_refresh_interval: Duration, max_key_age: Duration) -> Self {
        warn_if_url_is_unsafe(&url);
        JwksKeys {
            url,
            min_refresh_interval,
            max_key_age,
            cache: RwLock::default(),
            fetcher: Mutex::default(),
        }
    }

    /// The same URL with other timings and an empty cache.
    pub(crate) fn reconfigured(
        &self,
        min_refresh_interval: Duration,
        max_key_age: Duration,
    ) -> Self {
        JwksKeys {
            url: self.url.clone(),
            min_refresh_interval,
            max_key_age,
            cache: RwLock::default(),
            fetcher: Mutex::default(),
        }
    }

    pub(crate) fn min_refresh_interval(&self) -> Duration {
        self.min_refresh_interval
    }

    pub(crate) fn max_key_age(&self) -> Duration {
        self.max_key_age
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key a token with this `kid` must be verified with.
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Arc<SigningKey>, AuthError> {
        let (cached, fresh) = self.lookup(kid).await;
        if let Some(key) = cached {
            if fresh {
                return Ok(key);
            }
            return self.refresh_known_key(kid, key).await;
        }
        self.refresh_for_unknown_key(kid).await
    }

    /// The key is ours but old: refresh if nobody else is, and never make the caller wait for
    /// another caller's refresh when we hold a key that was valid a moment ago.
    async fn refresh_known_key(
        &self,
        kid: Option<&str>,
        stale: Arc<SigningKey>,
    ) -> Result<Arc<SigningKey>, AuthError> {
        let Ok(mut fetcher) = self.fetcher.try_lock() else {
            return Ok(stale);
        };
        if self.attempted_recently(&fetcher) {
            return Ok(stale);
        }
        if self.refresh(&mut fetcher).await {
            // The provider may have withdrawn the key, and then the token must fail.
            self.lookup(kid).await.0.ok_or(AuthError::UnknownKey)
        } else {
            // An outage at the provider should not lock everybody out.
            Ok(stale)
        }
    }

    /// The token names a key we do not have: the provider may have rotated its keys.
    async fn refresh_for_unknown_key(
        &self,
        kid: Option<&str>,
    ) -> Result<Arc<SigningKey>, AuthError> {
        let mut fetcher = self.fetcher.lock().await;
        // Another caller may have refreshed while we waited for the lock.
        if let (Some(key), _) = self.lookup(kid).await {
            return Ok(key);
        }
        if self.attempted_recently(&fetcher) {
            let loaded = self.cache.read().await.fetched_at.is_some();
            return Err(if loaded && !fetcher.last_attempt_failed {
                AuthError::UnknownKey
            } else {
                AuthError::KeysUnavailable
            });
        }
        if !self.refresh(&mut fetcher).await {
            return Err(AuthError::KeysUnavailable);
        }
        self.lookup(kid).await.0.ok_or(AuthError::UnknownKey)
    }

    async fn lookup(&self, kid: Option<&str>) -> (Option<Arc<SigningKey>>, bool) {
        let cache = self.cache.read().await;
        let fresh = cache
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.max_key_age);
        (cache.keys.find(kid), fresh)
    }

    fn attempted_recently(&self, fetcher: &Fetcher) -> bool {
        fetcher
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refresh_interval)
    }

    /// Fetches the key set and replaces the cache; false if the fetch failed. The cause of a
    /// failure is logged here because [`AuthError::KeysUnavailable`] deliberately carries no
    /// detail to the caller.
    async fn refresh(&self, fetcher: &mut Fetcher) -> bool {
        fetcher.last_attempt = Some(Instant::now());
        match fetch(&mut fetcher.client, &self.url).await {
            Ok(keys) => {
                fetcher.last_attempt_failed = false;
                if keys.keys.is_empty() {
                    tracing::warn!(url = %self.url, "the JWKS holds no usable signing key");
                } else {
                    tracing::debug!(url = %self.url, keys = keys.keys.len(), "fetched JWKS");
                }
                let mut cache = self.cache.write().await;
                cache.keys = Arc::new(keys);
                cache.fetched_at = Some(Instant::now());
                true
            }
            Err(error) => {
                fetcher.last_attempt_failed = true;
                tracing::warn!(
                    url = %self.url,
                    error = &error as &dyn std::error::Error,
                    "could not fetch the JWKS",
                );
                false
            }
        }
    }
}

async fn fetch(client: &mut Option<reqwest::Client>, url: &str) -> Result<KeySet, FetchError> {
    let client = match client {
        Some(client) => client,
        None => client.insert(
            reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("nmp-auth/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(FetchError::Client)?,
        ),
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(FetchError::Request)?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    KeySet::parse(&body).map_err(FetchError::NotJwks)
}

/// Keys fetched over plain HTTP from another machine can be swapped in transit, which would let
/// anybody on the path mint accepted tokens; loopback is fine for tests and sidecars.
fn warn_if_url_is_unsafe(url: &str) {
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(url, %error, "the JWKS URL is not a valid URL; no token will verify");
            return;
        }
    };
    if parsed.scheme() == "https" {
        return;
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        tracing::warn!(
            url,
            "the JWKS URL does not use https; signing keys could be tampered with"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> KeySet {
        KeySet::parse(json.to_string().as_bytes()).unwrap()
    }

    /// A real modulus, so that parsing exercises the same path as a provider's key.
    fn modulus() -> String {
        let jwk: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/rsa-1.jwk.json")).unwrap();
        jwk["n"].as_str().unwrap().to_owned()
    }

    #[test]
    fn unusable_keys_are_skipped_and_usable_ones_kept() {
        let n = modulus();
        let keys = parse(serde_json::json!({ "keys": [
            { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "encryption", "use": "enc", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": n, "e": "AQAB" },
            { "kty": "EC", "kid": "short", "crv": "P-256", "x": "AQAB", "y": "AQAB" },
            { "kty": "something-new", "kid": "future" },
            { "kty": "RSA", "kid": "good", "use": "sig", "n": n, "e": "AQAB" },
        ]}));
        let kids: Vec<_> = keys.keys.iter().map(|key| key.kid.as_deref()).collect();
        assert_eq!(kids, [Some("good")]);
    }

    #[test]
    fn a_declared_algorithm_restricts_the_key() {
        let n = modulus();
        let keys = parse(serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "rs384", "alg": "RS384", "n": n, "e": "AQAB" },
        ]}));
        let key = keys.find(Some("rs384")).unwrap();
        assert!(key.accepts(Algorithm::RS384));
        assert!(!key.accepts(Algorithm::RS256));
        assert!(!key.accepts(Algorithm::ES256));
        assert!(!key.accepts(Algorithm::HS256));
    }

    #[test]
    fn an_rsa_key_accepts_only_rsa_algorithms() {
        let n = modulus();
        let keys = parse(serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "rsa", "n": n, "e": "AQAB" },
        ]}));
        let key = keys.find(Some("rsa")).unwrap();
        for algorithm in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
        ] {
            assert!(key.accepts(algorithm), "{algorithm:?}");
        }
        for algorithm in [
            Algorithm::HS256,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(!key.accepts(algorithm), "{algorithm:?}");
        }
    }

    #[test]
    fn a_token_without_kid_finds_the_only_key_but_not_one_of_several() {
        let n = modulus();
        let one = parse(serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "a", "n": n, "e": "AQAB" },
        ]}));
        assert!(one.find(None).is_some());
        let two = parse(serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "a", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "b", "n": n, "e": "AQAB" },
        ]}));
        assert!(two.find(None).is_none());
        assert!(two.find(Some("b")).is_some());
        assert!(two.find(Some("c")).is_none());
    }

    #[test]
    fn a_document_without_keys_is_not_a_jwks() {
        assert!(KeySet::parse(b"{}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }
}
