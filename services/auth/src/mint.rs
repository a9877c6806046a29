//! Issues HS256 tokens for local use: the `nmp token` command and tests.
//!
//! Production tokens come from the operator's identity provider; nmp only mints tokens for a
//! shared secret that the operator configured, or for [`DEVELOPMENT_SECRET`] on loopback.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::Role;

/// The HS256 secret `nmp serve` falls back to when no keys are configured and it listens on
/// loopback only. It is public (it is in the source), so tokens signed with it prove nothing:
/// never accept it on a reachable address.
pub const DEVELOPMENT_SECRET: &str = "nmp-development-only-secret-never-use-in-production";

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    roles: Vec<&'static str>,
    iat: u64,
    exp: u64,
}

/// Signs an HS256 token for `subject` with `roles`, valid from now for `ttl`.
pub fn mint_token(secret: &[u8], subject: &str, roles: &[Role], ttl: Duration) -> String {
    let issued_at = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let claims = MintedClaims {
        sub: subject,
        roles: roles.iter().map(|role| role.as_str()).collect(),
        iat: issued_at,
        exp: issued_at.saturating_add(ttl.as_secs()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    // HMAC takes keys of any length and the claims are strings and integers, so encoding
    // has no failure mode; reaching this would be a bug in jsonwebtoken, not bad input.
    .expect("HS256 encoding of plain claims cannot fail")
}
