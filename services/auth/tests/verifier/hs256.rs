//! A verifier configured with a shared HS256 secret.

use std::time::Duration;

use auth::{AuthError, DEVELOPMENT_SECRET, Permission, Role, Verifier, mint_token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

fn verifier() -> Verifier {
    Verifier::hs256(SECRET, None, None)
}

#[tokio::test]
async fn a_minted_token_yields_its_subject_and_roles() {
    let token = mint_token(
        SECRET,
        "alice",
        &[Role::ReadUser, Role::Write],
        Duration::from_secs(60),
    );
    let principal = assert_accepted(&verifier(), &token).await;
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.roles, [Role::ReadUser, Role::Write]);
}

#[tokio::test]
async fn a_token_minted_with_the_development_secret_verifies_only_under_it() {
    let token = mint_token(
        DEVELOPMENT_SECRET.as_bytes(),
        "dev",
        &[Role::Admin],
        Duration::from_secs(60),
    );
    let development = Verifier::hs256(DEVELOPMENT_SECRET.as_bytes(), None, None);
    assert_eq!(
        assert_accepted(&development, &token).await.roles,
        [Role::Admin]
    );
    assert_rejected(&verifier(), &token, AuthError::InvalidSignature).await;
}

#[tokio::test]
async fn the_permission_matrix_holds_for_a_token_with_each_role() {
    let expected: [(Role, [bool; 3]); 8] = [
        (Role::Admin, [true, true, true]),
        (Role::Read, [true, false, false]),
        (Role::Write, [false, true, false]),
        (Role::Delete, [false, false, true]),
        (Role::AdminUser, [true, true, true]),
        (Role::ReadUser, [true, false, false]),
        (Role::WriteUser, [false, true, false]),
        (Role::DeleteUser, [false, false, true]),
    ];
    for (role, allowed) in expected {
        let token = mint_token(SECRET, "matrix", &[role], Duration::from_secs(60));
        let principal = assert_accepted(&verifier(), &token).await;
        for (permission, allowed) in Permission::ALL.into_iter().zip(allowed) {
            assert_eq!(
                principal.allows(permission),
                allowed,
                "{role} / {permission}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_roles_are_ignored() {
    let token = hs256_token(
        SECRET,
        &claims(
            json!({ "roles": ["Other.Admin", "ProvisioningAPI.Delete", "provisioningapi.admin"] }),
        ),
    );
    let principal = assert_accepted(&verifier(), &token).await;
    assert_eq!(principal.roles, [Role::Delete]);
    assert!(!principal.allows(Permission::Read));
}

#[tokio::test]
async fn a_token_without_roles_is_valid_but_allowed_nothing() {
    let principal = assert_accepted(&verifier(), &hs256_token(SECRET, &claims(json!({})))).await;
    assert!(principal.roles.is_empty());
    assert!(
        Permission::ALL
            .into_iter()
            .all(|permission| !principal.allows(permission))
    );
}

#[tokio::test]
async fn the_subject_falls_back_to_oid_then_azp_then_appid_then_unknown() {
    let cases = [
        (
            json!({ "sub": null, "oid": "object-id", "azp": "client" }),
            "object-id",
        ),
        (
            json!({ "sub": null, "azp": "client", "appid": "app" }),
            "client",
        ),
        (json!({ "sub": null, "appid": "app" }), "app"),
        (json!({ "sub": null }), "unknown"),
    ];
    for (extra, subject) in cases {
        let principal = assert_accepted(&verifier(), &hs256_token(SECRET, &claims(extra))).await;
        assert_eq!(principal.subject, subject);
    }
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let token = hs256_token(SECRET, &claims(json!({ "exp": now() - 120 })));
    assert_rejected(&verifier(), &token, AuthError::Expired).await;
}

#[tokio::test]
async fn a_token_expired_within_the_clock_skew_leeway_is_accepted() {
    let token = hs256_token(SECRET, &claims(json!({ "exp": now() - 10 })));
    assert_accepted(&verifier(), &token).await;
}

#[tokio::test]
async fn a_token_that_is_not_yet_valid_is_rejected() {
    let token = hs256_token(SECRET, &claims(json!({ "nbf": now() + 120 })));
    assert_rejected(&verifier(), &token, AuthError::NotYetValid).await;
}

#[tokio::test]
async fn a_token_valid_from_the_past_is_accepted() {
    let token = hs256_token(SECRET, &claims(json!({ "nbf": now() - 60 })));
    assert_accepted(&verifier(), &token).await;
}

#[tokio::test]
async fn a_token_without_exp_is_malformed() {
    let token = hs256_token(SECRET, &claims(json!({ "exp": null })));
    assert_rejected(&verifier(), &token, AuthError::Malformed).await;
}

#[tokio::test]
async fn a_token_with_a_textual_exp_is_malformed() {
    let token = hs256_token(SECRET, &claims(json!({ "exp": "tomorrow" })));
    assert_rejected(&verifier(), &token, AuthError::Malformed).await;
}

#[tokio::test]
async fn a_token_signed_with_another_secret_has_an_invalid_signature() {
    let token = hs256_token(
        b"another-secret-that-is-also-32-bytes-long",
        &claims(json!({})),
    );
    assert_rejected(&verifier(), &token, AuthError::InvalidSignature).await;
}

#[tokio::test]
async fn a_tampered_payload_has_an_invalid_signature() {
    let token = mint_token(SECRET, "mallory", &[Role::Read], Duration::from_secs(60));
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = encode_part(&claims(
        json!({ "sub": "mallory", "roles": ["ProvisioningAPI.Admin"] }),
    ));
    parts[1] = &forged;
    assert_rejected(&verifier(), &parts.join("."), AuthError::InvalidSignature).await;
}

#[tokio::test]
async fn a_hand_crafted_alg_none_token_is_refused() {
    let payload = claims(json!({ "roles": ["ProvisioningAPI.Admin"] }));
    for alg in ["none", "None", "NONE"] {
        assert_rejected(
            &verifier(),
            &unsigned_token(alg, &payload),
            AuthError::UnsupportedAlgorithm,
        )
        .await;
    }
}

#[tokio::test]
async fn other_hmac_algorithms_are_refused() {
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(
            Header::new(algorithm),
            &EncodingKey::from_secret(SECRET),
            &claims(json!({})),
        );
        assert_rejected(&verifier(), &token, AuthError::UnsupportedAlgorithm).await;
    }
}

#[tokio::test]
async fn an_rs256_token_is_refused_by_a_shared_secret_verifier() {
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &claims(json!({})),
    );
    assert_rejected(&verifier(), &token, AuthError::UnsupportedAlgorithm).await;
}

#[tokio::test]
async fn garbage_is_malformed() {
    let header = encode_part(&json!({ "alg": "HS256", "typ": "JWT" }));
    let payload = encode_part(&claims(json!({})));
    for token in [
        "x".to_owned(),
        "not-a-jwt".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "!!!.@@@.###".to_owned(),
        format!("{header}.{payload}.sig.extra"),
        format!("{payload}.{payload}.c2ln"),
        format!("{header}.!!!.c2ln"),
        format!("{header}.{payload}.!!!"),
    ] {
        assert_rejected(&verifier(), &token, AuthError::Malformed).await;
    }
}

#[tokio::test]
async fn a_correctly_signed_payload_that_is_not_json_is_malformed() {
    let header = encode_part(&json!({ "alg": "HS256", "typ": "JWT" }));
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "not json",
    );
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    assert_rejected(
        &verifier(),
        &format!("{message}.{signature}"),
        AuthError::Malformed,
    )
    .await;
}

#[tokio::test]
async fn the_configured_issuer_is_required() {
    let verifier = Verifier::hs256(SECRET, Some("https://issuer.example".to_owned()), None);
    let right = hs256_token(SECRET, &claims(json!({ "iss": "https://issuer.example" })));
    assert_accepted(&verifier, &right).await;
    let wrong = hs256_token(SECRET, &claims(json!({ "iss": "https://evil.example" })));
    assert_rejected(&verifier, &wrong, AuthError::WrongIssuer).await;
    let missing = hs256_token(SECRET, &claims(json!({})));
    assert_rejected(&verifier, &missing, AuthError::WrongIssuer).await;
}

#[tokio::test]
async fn the_issuer_is_not_checked_when_none_is_configured() {
    let token = hs256_token(SECRET, &claims(json!({ "iss": "https://anyone.example" })));
    assert_accepted(&verifier(), &token).await;
}

#[tokio::test]
async fn the_configured_audience_is_required() {
    let verifier = Verifier::hs256(SECRET, None, Some("api://nmp".to_owned()));
    let single = hs256_token(SECRET, &claims(json!({ "aud": "api://nmp" })));
    assert_accepted(&verifier, &single).await;
    let among_several = hs256_token(
        SECRET,
        &claims(json!({ "aud": ["api://other", "api://nmp"] })),
    );
    assert_accepted(&verifier, &among_several).await;
    let wrong = hs256_token(SECRET, &claims(json!({ "aud": "api://other" })));
    assert_rejected(&verifier, &wrong, AuthError::WrongAudience).await;
    let missing = hs256_token(SECRET, &claims(json!({})));
    assert_rejected(&verifier, &missing, AuthError::WrongAudience).await;
}

#[tokio::test]
async fn the_audience_is_not_checked_when_none_is_configured() {
    let token = hs256_token(SECRET, &claims(json!({ "aud": "api://anything" })));
    assert_accepted(&verifier(), &token).await;
}
