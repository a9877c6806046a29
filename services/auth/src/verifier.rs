//! Turns a bearer token into a [`Principal`], or says precisely why it cannot.
//!
//! The header is read by hand before `jsonwebtoken` sees the token, for two reasons: to refuse
//! `alg: none` and algorithm confusion explicitly rather than through a JSON error, and to pick
//! the key by `kid` without trusting anything else in the header (`jwk` and `jku` are ignored:
//! a token must never bring its own key).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::jwks::{DEFAULT_MAX_KEY_AGE, DEFAULT_MIN_REFRESH_INTERVAL, JWKS_ALGORITHMS, JwksKeys};
use crate::{AuthError, Principal, Role};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Real tokens are a few kilobytes; the cap bounds the work an anonymous caller can cause.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Subject of a token that names nobody; such tokens are valid, they just cannot be traced.
const UNKNOWN_SUBJECT: &str = "unknown";

/// Verifies bearer tokens against one key source. Clones share the key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeySource,
    /// Claim checks common to every token; the algorithm is filled in per token.
    validation: Validation,
}

enum KeySource {
    SharedSecret(DecodingKey),
    Jwks(JwksKeys),
}

impl Verifier {
    /// Accepts HS256 tokens signed with `secret`, and nothing else.
    pub fn hs256(secret: &[u8], issuer: Option<String>, audience: Option<String>) -> Self {
        if secret.len() < 32 {
            tracing::warn!(
                bytes = secret.len(),
                "the HS256 secret is shorter than 32 bytes, which makes tokens easier to forge",
            );
        }
        Self::new(
            KeySource::SharedSecret(DecodingKey::from_secret(secret)),
            issuer,
            audience,
        )
    }

    /// Accepts RS256/RS384/RS512/PS256/ES256/ES384 tokens signed by a key published at `url`
    /// (for Entra ID: `https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys`).
    /// Nothing is fetched until the first token arrives.
    pub fn jwks(url: String, issuer: Option<String>, audience: Option<String>) -> Self {
        let keys = JwksKeys::new(url, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_MAX_KEY_AGE);
        Self::new(KeySource::Jwks(keys), issuer, audience)
    }

    /// How long to wait after one JWKS fetch before a token with an unknown `kid` may cause
    /// another (default 30 s). The result starts with an empty key cache, so call this while
    /// building the verifier. Has no effect on an HS256 verifier.
    pub fn with_min_refresh_interval(self, interval: Duration) -> Self {
        match &self.inner.keys {
            KeySource::Jwks(keys) => {
                let keys = keys.reconfigured(interval, keys.max_key_age());
                self.with_keys(KeySource::Jwks(keys))
            }
            KeySource::SharedSecret(_) => self,
        }
    }

    /// How old cached keys may get before the next token refreshes them (default one hour), so
    /// that a key the provider withdrew stops being accepted. If that refresh fails, the old
    /// keys stay in use. The result starts with an empty key cache. No effect on HS256.
    pub fn with_max_key_age(self, age: Duration) -> Self {
        match &self.inner.keys {
            KeySource::Jwks(keys) => {
                let keys = keys.reconfigured(keys.min_refresh_interval(), age);
                self.with_keys(KeySource::Jwks(keys))
            }
            KeySource::SharedSecret(_) => self,
        }
    }

    /// Checks the token's signature, algorithm, `exp`, `nbf` and, when configured, `iss` and
    /// `aud`, and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = TokenHeader::parse(token)?;
        let mut validation = self.inner.validation.clone();
        validation.algorithms = vec![header.algorithm];
        let claims = match &self.inner.keys {
            KeySource::SharedSecret(secret) => {
                if header.algorithm != Algorithm::HS256 {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                decode(token, secret, &validation)?
            }
            KeySource::Jwks(keys) => {
                if !JWKS_ALGORITHMS.contains(&header.algorithm) {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                let key = keys.key_for(header.kid.as_deref()).await?;
                if !key.accepts(header.algorithm) {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                decode(token, &key.decoding_key, &validation)?
            }
        };
        Ok(claims.into_principal())
    }

    fn new(keys: KeySource, issuer: Option<String>, audience: Option<String>) -> Self {
        // The algorithm is replaced per token; HS256 is only a placeholder.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // Unconfigured means "any audience", which jsonwebtoken only allows with the check off.
        validation.validate_aud = audience.is_some();
        if let Some(audience) = &audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Verifier {
            inner: Arc::new(Inner { keys, validation }),
        }
    }

    fn with_keys(self, keys: KeySource) -> Self {
        let validation = self.inner.validation.clone();
        Verifier {
            inner: Arc::new(Inner { keys, validation }),
        }
    }
}

/// Shows the configuration only: never the secret.
impl fmt::Debug for Verifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = formatter.debug_struct("Verifier");
        match &self.inner.keys {
            KeySource::SharedSecret(_) => debug.field("keys", &"HS256 shared secret"),
            KeySource::Jwks(keys) => debug
                .field("jwks_url", &keys.url())
                .field("min_refresh_interval", &keys.min_refresh_interval())
                .field("max_key_age", &keys.max_key_age()),
        };
        debug
            .field("issuer", &self.inner.validation.iss)
            .field("audience", &self.inner.validation.aud)
            .finish()
    }
}

/// The two header fields nmp acts on.
struct TokenHeader {
    algorithm: Algorithm,
    kid: Option<String>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<TokenHeader, AuthError> {
        #[derive(Deserialize)]
        struct RawHeader {
            alg: String,
            kid: Option<String>,
            crit: Option<serde_json::Value>,
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        // Checked up front so that undecodable garbage reads as malformed rather than as a
        // forgery, whichever part it is in.
        if !is_base64url(payload) || !is_base64url(signature) {
            return Err(AuthError::Malformed);
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed)?;
        let header: RawHeader =
            serde_json::from_slice(&header).map_err(|_| AuthError::Malformed)?;
        // RFC 7515 §4.1.11: extensions listed as critical must be understood, and nmp
        // understands none of them.
        if header.crit.is_some() {
            return Err(AuthError::Malformed);
        }
        // "none" (in any spelling) is not an Algorithm, so it fails here.
        let algorithm =
            Algorithm::from_str(&header.alg).map_err(|_| AuthError::UnsupportedAlgorithm)?;
        Ok(TokenHeader {
            algorithm,
            kid: header.kid,
        })
    }
}

fn is_base64url(part: &str) -> bool {
    URL_SAFE_NO_PAD.decode(part).is_ok()
}

/// The claims nmp reads; every other claim is ignored.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    /// Entra ID's object id of the user or service principal.
    oid: Option<String>,
    azp: Option<String>,
    /// Entra ID v1 tokens name the client application here instead of `azp`.
    appid: Option<String>,
    /// Kept loose: a single string is accepted too, and non-strings are ignored like unknown
    /// roles, since a role we cannot read grants nothing anyway.
    #[serde(default)]
    roles: serde_json::Value,
    /// Checked by the validation; kept so that what outlives the request ends with the token.
    #[serde(default)]
    exp: Option<serde_json::Value>,
}

impl Claims {
    fn into_principal(self) -> Principal {
        let subject = [self.sub, self.oid, self.azp, self.appid]
            .into_iter()
            .flatten()
            .find(|candidate| !candidate.is_empty())
            .unwrap_or_else(|| UNKNOWN_SUBJECT.to_owned());
        let roles = match &self.roles {
            serde_json::Value::Array(values) => values
                .iter()
                .filter_map(serde_json::Value::as_str)
                .filter_map(Role::parse)
                .collect(),
            serde_json::Value::String(value) => Role::parse(value).into_iter().collect(),
            _ => Vec::new(),
        };
        let expires_at = self.exp.as_ref().and_then(|exp| {
            exp.as_u64()
                .or_else(|| exp.as_f64().filter(|e| *e >= 0.0).map(|e| e as u64))
        });
        Principal {
            subject,
            roles,
            expires_at,
        }
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, AuthError> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| auth_error(error.kind()))
}

fn auth_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => AuthError::UnsupportedAlgorithm,
        // A published key that cannot check the signature: from the caller's side the token
        // is not provably signed by the provider.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::InvalidSignature,
        // InvalidToken, Base64, Json, Utf8, InvalidClaimFormat, MissingRequiredClaim("exp") and
        // whatever later versions add.
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_part(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token_with_header(header: &str) -> String {
        format!(
            "{}.{}.sig",
            encode_part(header),
            encode_part(r#"{"exp":4102444800}"#)
        )
    }

    #[test]
    fn none_in_any_spelling_is_an_unsupported_algorithm() {
        for alg in ["none", "None", "NONE", "", "HS1", "RSA-OAEP"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            assert_eq!(
                TokenHeader::parse(&token_with_header(&header)).err(),
                Some(AuthError::UnsupportedAlgorithm),
                "{alg:?}",
            );
        }
    }

    #[test]
    fn headers_that_are_not_json_objects_with_alg_are_malformed() {
        for header in [r#"{"typ":"JWT"}"#, "[]", "not json", r#"{"alg":5}"#] {
            assert_eq!(
                TokenHeader::parse(&token_with_header(header)).err(),
                Some(AuthError::Malformed),
                "{header:?}",
            );
        }
    }

    #[test]
    fn critical_extensions_are_refused() {
        let header = r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#;
        assert_eq!(
            TokenHeader::parse(&token_with_header(header)).err(),
            Some(AuthError::Malformed)
        );
    }

    #[test]
    fn oversized_tokens_are_malformed_before_any_decoding() {
        let token = format!(
            "{}.{}.sig",
            encode_part(r#"{"alg":"HS256"}"#),
            "a".repeat(20_000)
        );
        assert_eq!(TokenHeader::parse(&token).err(), Some(AuthError::Malformed));
    }

    #[test]
    fn the_subject_falls_back_from_sub_to_oid_to_azp_to_appid() {
        fn subject(json: serde_json::Value) -> String {
            serde_json::from_value::<Claims>(json)
                .unwrap()
                .into_principal()
                .subject
        }
        assert_eq!(
            subject(serde_json::json!({"sub": "s", "oid": "o", "azp": "z", "appid": "a"})),
            "s"
        );
        assert_eq!(
            subject(serde_json::json!({"oid": "o", "azp": "z", "appid": "a"})),
            "o"
        );
        assert_eq!(subject(serde_json::json!({"azp": "z", "appid": "a"})), "z");
        assert_eq!(subject(serde_json::json!({"appid": "a"})), "a");
        assert_eq!(subject(serde_json::json!({"sub": "", "oid": "o"})), "o");
        assert_eq!(subject(serde_json::json!({})), "unknown");
    }

    #[test]
    fn a_single_string_roles_claim_is_read_and_odd_shapes_grant_nothing() {
        fn roles(json: serde_json::Value) -> Vec<Role> {
            serde_json::from_value::<Claims>(json)
                .unwrap()
                .into_principal()
                .roles
        }
        assert_eq!(
            roles(serde_json::json!({"roles": "ProvisioningAPI.Read"})),
            [Role::Read]
        );
        assert_eq!(
            roles(serde_json::json!({"roles": [1, null, "ProvisioningAPI.Write"]})),
            [Role::Write]
        );
        assert_eq!(roles(serde_json::json!({"roles": {"a": 1}})), []);
        assert_eq!(roles(serde_json::json!({})), []);
    }

    #[test]
    fn a_verifier_and_its_verification_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        fn assert_send<T: Send>(_: T) {}
        let verifier = Verifier::jwks("https://idp.example/keys".to_owned(), None, None);
        assert_send_sync(&verifier);
        // axum handlers and NATS subscribers need a Send future.
        assert_send(verifier.verify("token"));
    }

    #[test]
    fn the_debug_output_names_no_secret() {
        let verifier = Verifier::hs256(b"a-secret-that-is-long-enough-for-hs256!!", None, None);
        let debug = format!("{verifier:?}");
        assert!(!debug.contains("a-secret"), "{debug}");
    }
}
