//! Why a request could not be authenticated, with stable wire codes for API error bodies.
//!
//! Messages are written for the caller and the operator alike, so they never echo the token, a
//! claim value, or key material: a bearer token in a log line is a credential leak.

/// A bearer token was absent or could not be accepted.
///
/// All variants except [`AuthError::KeysUnavailable`] are the caller's problem (HTTP 401);
/// `KeysUnavailable` means that nmp could not reach its identity provider (HTTP 503 is fitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one that does not use the Bearer scheme.
    #[error("a bearer token is required in the Authorization header")]
    MissingToken,
    /// Not a compact JWS, undecodable base64 or JSON, or a required claim (`exp`) is missing.
    #[error("the bearer token is malformed or lacks a required claim")]
    Malformed,
    /// `exp` lies in the past, beyond the allowed clock skew.
    #[error("the bearer token has expired")]
    Expired,
    /// `nbf` lies in the future, beyond the allowed clock skew.
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    /// The signature does not match the token's header and payload.
    #[error("the bearer token's signature is invalid")]
    InvalidSignature,
    /// `alg` is `none`, unknown, or not allowed for the configured key.
    #[error("the bearer token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// `iss` is missing or differs from the configured issuer.
    #[error("the bearer token was issued by an issuer this service does not trust")]
    WrongIssuer,
    /// `aud` is missing or does not name this service.
    #[error("the bearer token was issued for a different audience")]
    WrongAudience,
    /// The token names a key id that the identity provider does not publish.
    #[error("the bearer token was signed with a key the identity provider does not publish")]
    UnknownKey,
    /// The identity provider's key set could not be fetched or read.
    #[error("the signing keys needed to check the bearer token are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// A stable PascalCase code for error bodies; clients may match on it, so never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "MissingToken",
            AuthError::Malformed => "MalformedToken",
            AuthError::Expired => "TokenExpired",
            AuthError::NotYetValid => "TokenNotYetValid",
            AuthError::InvalidSignature => "InvalidTokenSignature",
            AuthError::UnsupportedAlgorithm => "UnsupportedTokenAlgorithm",
            AuthError::WrongIssuer => "WrongTokenIssuer",
            AuthError::WrongAudience => "WrongTokenAudience",
            AuthError::UnknownKey => "UnknownSigningKey",
            AuthError::KeysUnavailable => "SigningKeysUnavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::AuthError;

    const ALL: [AuthError; 10] = [
        AuthError::MissingToken,
        AuthError::Malformed,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::InvalidSignature,
        AuthError::UnsupportedAlgorithm,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::UnknownKey,
        AuthError::KeysUnavailable,
    ];

    #[test]
    fn codes_are_unique_and_pascal_case() {
        let codes: HashSet<&str> = ALL.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), ALL.len());
        for code in codes {
            assert!(code.starts_with(|c: char| c.is_ascii_uppercase()), "{code}");
            assert!(code.chars().all(|c| c.is_ascii_alphanumeric()), "{code}");
        }
    }

    #[test]
    fn the_wire_codes_are_the_documented_ones() {
        assert_eq!(AuthError::MissingToken.code(), "MissingToken");
        assert_eq!(AuthError::Expired.code(), "TokenExpired");
        assert_eq!(AuthError::InvalidSignature.code(), "InvalidTokenSignature");
    }

    #[test]
    fn every_error_has_a_message() {
        for error in ALL {
            assert!(!error.to_string().is_empty(), "{error:?}");
        }
    }
}
