//! Extracts the token from an `Authorization: Bearer …` header value.

use crate::AuthError;

/// Returns the token of a Bearer `Authorization` header.
///
/// The scheme is matched case-insensitively (RFC 9110 §11.1) and surrounding whitespace is
/// trimmed, because proxies and hand-written clients vary in both. Anything else, including an
/// empty token or a token with inner whitespace, is [`AuthError::MissingToken`]: the request did
/// not present a bearer credential at all.
pub fn bearer_token(authorization_header: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization_header.ok_or(AuthError::MissingToken)?.trim();
    let (scheme, token) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_yields_its_token() {
        assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_whitespace_is_trimmed() {
        assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("  Bearer \t abc  ")), Ok("abc"));
    }

    #[test]
    fn no_header_is_a_missing_token() {
        assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_missing_tokens() {
        for header in [
            "",
            "   ",
            "Bearer",
            "Bearer   ",
            "Basic dXNlcjpwYXNz",
            "Bearerabc",
            "Token abc",
            "Bearer abc def",
        ] {
            assert_eq!(
                bearer_token(Some(header)),
                Err(AuthError::MissingToken),
                "{header:?}"
            );
        }
    }
}
