//! A verifier configured with a JWKS URL, against a local server playing the identity provider.

use std::time::Duration;

use auth::{AuthError, Role, Verifier};
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::json;

use crate::helpers::*;

fn admin_claims() -> serde_json::Value {
    claims(json!({ "sub": "machine", "roles": ["ProvisioningAPI.Admin", "Unknown.Role"] }))
}

#[tokio::test]
async fn a_valid_rs256_token_is_accepted_and_the_keys_are_fetched_once() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier();
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );

    let principal = assert_accepted(&verifier, &token).await;
    assert_eq!(principal.subject, "machine");
    assert_eq!(principal.roles, [Role::Admin]);

    assert_accepted(&verifier.clone(), &token).await;
    assert_eq!(server.fetches(), 1, "clones share the cache");
}

#[tokio::test]
async fn nothing_is_fetched_before_the_first_token() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let _verifier = server.verifier();
    tokio::task::yield_now().await;
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn the_other_rsa_algorithms_are_accepted() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier();
    for algorithm in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = asymmetric_token(algorithm, RSA_1_PEM, Some(RSA_1_KID), &admin_claims());
        assert_accepted(&verifier, &token).await;
    }
}

#[tokio::test]
async fn an_es256_token_is_accepted() {
    let server = JwksServer::start(vec![jwk("rsa-1"), jwk("ec-p256")]).await;
    let token = asymmetric_token(Algorithm::ES256, EC_PEM, Some(EC_KID), &admin_claims());
    assert_eq!(
        assert_accepted(&server.verifier(), &token).await.roles,
        [Role::Admin]
    );
}

#[tokio::test]
async fn the_algorithm_must_match_the_key_type() {
    let server = JwksServer::start(vec![jwk("rsa-1"), jwk("ec-p256")]).await;
    let verifier = server.verifier();
    let ec_token_naming_rsa_key =
        asymmetric_token(Algorithm::ES256, EC_PEM, Some(RSA_1_KID), &admin_claims());
    assert_rejected(
        &verifier,
        &ec_token_naming_rsa_key,
        AuthError::UnsupportedAlgorithm,
    )
    .await;
    let rsa_token_naming_ec_key =
        asymmetric_token(Algorithm::RS256, RSA_1_PEM, Some(EC_KID), &admin_claims());
    assert_rejected(
        &verifier,
        &rsa_token_naming_ec_key,
        AuthError::UnsupportedAlgorithm,
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_has_an_invalid_signature() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_2_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );
    assert_rejected(&server.verifier(), &token, AuthError::InvalidSignature).await;
}

#[tokio::test]
async fn a_token_without_kid_uses_the_only_published_key() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let token = asymmetric_token(Algorithm::RS256, RSA_1_PEM, None, &admin_claims());
    assert_accepted(&server.verifier(), &token).await;
}

#[tokio::test]
async fn an_expired_rs256_token_is_rejected() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let expired = claims(json!({ "exp": now() - 120 }));
    let token = asymmetric_token(Algorithm::RS256, RSA_1_PEM, Some(RSA_1_KID), &expired);
    assert_rejected(&server.verifier(), &token, AuthError::Expired).await;
}

#[tokio::test]
async fn issuer_and_audience_are_checked_under_jwks_too() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = Verifier::jwks(
        server.url.clone(),
        Some("https://issuer.example".to_owned()),
        Some("api://nmp".to_owned()),
    );
    let sign =
        |extra| asymmetric_token(Algorithm::RS256, RSA_1_PEM, Some(RSA_1_KID), &claims(extra));
    assert_accepted(
        &verifier,
        &sign(json!({ "iss": "https://issuer.example", "aud": "api://nmp" })),
    )
    .await;
    assert_rejected(
        &verifier,
        &sign(json!({ "iss": "https://evil.example", "aud": "api://nmp" })),
        AuthError::WrongIssuer,
    )
    .await;
    assert_rejected(
        &verifier,
        &sign(json!({ "iss": "https://issuer.example", "aud": "api://other" })),
        AuthError::WrongAudience,
    )
    .await;
}

#[tokio::test]
async fn unknown_kids_cause_no_fetch_within_the_minimum_interval() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier();
    let known = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );
    let unknown = asymmetric_token(
        Algorithm::RS256,
        RSA_2_PEM,
        Some(RSA_2_KID),
        &admin_claims(),
    );

    assert_accepted(&verifier, &known).await;
    // The provider rotates now, but the default 30 s since the last fetch have not passed.
    server.publish(Published::Keys(vec![jwk("rsa-1"), jwk("rsa-2")]));
    for _ in 0..5 {
        assert_rejected(&verifier, &unknown, AuthError::UnknownKey).await;
    }
    assert_eq!(
        server.fetches(),
        1,
        "unknown kids must not hammer the identity provider"
    );
    assert_accepted(&verifier, &known).await;
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_refetching() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier().with_min_refresh_interval(Duration::ZERO);
    let rotated = asymmetric_token(
        Algorithm::RS256,
        RSA_2_PEM,
        Some(RSA_2_KID),
        &admin_claims(),
    );

    assert_rejected(&verifier, &rotated, AuthError::UnknownKey).await;
    server.publish(Published::Keys(vec![jwk("rsa-1"), jwk("rsa-2")]));
    assert_eq!(
        assert_accepted(&verifier, &rotated).await.roles,
        [Role::Admin]
    );
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_once_the_minimum_interval_has_passed() {
    let interval = Duration::from_millis(500);
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier().with_min_refresh_interval(interval);
    let rotated = asymmetric_token(
        Algorithm::RS256,
        RSA_2_PEM,
        Some(RSA_2_KID),
        &admin_claims(),
    );

    assert_rejected(&verifier, &rotated, AuthError::UnknownKey).await;
    server.publish(Published::Keys(vec![jwk("rsa-2")]));
    assert_rejected(&verifier, &rotated, AuthError::UnknownKey).await;
    assert_eq!(server.fetches(), 1);

    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_accepted(&verifier, &rotated).await;
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_withdrawn_key_stops_working_once_the_cache_is_old() {
    let server = JwksServer::start(vec![jwk("rsa-1"), jwk("rsa-2")]).await;
    let verifier = server
        .verifier()
        .with_min_refresh_interval(Duration::ZERO)
        .with_max_key_age(Duration::ZERO);
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );

    assert_accepted(&verifier, &token).await;
    server.publish(Published::Keys(vec![jwk("rsa-2")]));
    assert_rejected(&verifier, &token, AuthError::UnknownKey).await;
}

#[tokio::test]
async fn cached_keys_outlive_an_identity_provider_outage() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server
        .verifier()
        .with_min_refresh_interval(Duration::ZERO)
        .with_max_key_age(Duration::ZERO);
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );

    assert_accepted(&verifier, &token).await;
    server.publish(Published::Body(
        StatusCode::SERVICE_UNAVAILABLE,
        "down for maintenance",
    ));
    assert_accepted(&verifier, &token).await;
    assert_eq!(
        server.fetches(),
        2,
        "the stale cache was refreshed, and the failure tolerated"
    );
}

#[tokio::test]
async fn an_hs256_token_is_refused_without_fetching_keys() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let token = hs256_token(SECRET, &admin_claims());
    assert_rejected(&server.verifier(), &token, AuthError::UnsupportedAlgorithm).await;
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    // The classic algorithm-confusion forgery: the verifier trusts rsa-1's public key, which
    // anyone may fetch; the attacker signs HS256 with its PEM as the HMAC secret, hoping for a
    // verifier that hands "the key" to whatever algorithm the header names.
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let verifier = server.verifier();
    let claims = admin_claims();

    // Control: the same claims signed properly, with RS256 and the private key, are accepted.
    let genuine = asymmetric_token(Algorithm::RS256, RSA_1_PEM, Some(RSA_1_KID), &claims);
    assert_eq!(
        assert_accepted(&verifier, &genuine).await.roles,
        [Role::Admin]
    );

    let pems = [RSA_1_PUBLIC_PEM, RSA_1_PKCS1_PUBLIC_PEM];
    for pem in pems {
        // The PEM is the very key the JWKS publishes: it verifies the genuine token.
        let public_key = DecodingKey::from_rsa_pem(pem).expect("an RSA public key PEM");
        jsonwebtoken::decode::<serde_json::Value>(
            &genuine,
            &public_key,
            &Validation::new(Algorithm::RS256),
        )
        .expect("the PEM is rsa-1's public key");
    }
    // Each PEM as a file holds it (with its final newline) and as it is often pasted (without).
    let secrets = pems.into_iter().flat_map(|pem| [pem, pem.trim_ascii_end()]);
    for secret in secrets {
        for kid in [Some(RSA_1_KID), None] {
            let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
            header.kid = kid.map(str::to_owned);
            let forged = sign(header, &EncodingKey::from_secret(secret), &claims);
            // A well-formed HS256 token under that secret: a verifier that used the public key's
            // PEM as an HMAC key would accept it.
            jsonwebtoken::decode::<serde_json::Value>(
                &forged,
                &DecodingKey::from_secret(secret),
                &Validation::new(Algorithm::HS256),
            )
            .expect("the forgery verifies with the PEM as HMAC secret");
            assert_rejected(&verifier, &forged, AuthError::UnsupportedAlgorithm).await;
        }
    }
}

#[tokio::test]
async fn an_alg_none_token_is_refused() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    let token = unsigned_token("none", &admin_claims());
    assert_rejected(&server.verifier(), &token, AuthError::UnsupportedAlgorithm).await;
}

#[tokio::test]
async fn an_unreachable_identity_provider_makes_keys_unavailable() {
    let verifier = Verifier::jwks(unreachable_url().await, None, None);
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );
    assert_rejected(&verifier, &token, AuthError::KeysUnavailable).await;
    // Within the refresh interval the verifier does not retry, and still says why it fails.
    assert_rejected(&verifier, &token, AuthError::KeysUnavailable).await;
}

#[tokio::test]
async fn an_error_page_instead_of_a_key_set_makes_keys_unavailable() {
    let server = JwksServer::start(Vec::new()).await;
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );
    for body in [
        Published::Body(StatusCode::INTERNAL_SERVER_ERROR, "{\"keys\": []}"),
        Published::Body(StatusCode::OK, "<html>login</html>"),
    ] {
        server.publish(body);
        let verifier = server.verifier();
        assert_rejected(&verifier, &token, AuthError::KeysUnavailable).await;
    }
}

#[tokio::test]
async fn the_identity_provider_coming_back_is_noticed_after_the_interval() {
    let server = JwksServer::start(vec![jwk("rsa-1")]).await;
    server.publish(Published::Body(StatusCode::BAD_GATEWAY, "bad gateway"));
    let verifier = server.verifier().with_min_refresh_interval(Duration::ZERO);
    let token = asymmetric_token(
        Algorithm::RS256,
        RSA_1_PEM,
        Some(RSA_1_KID),
        &admin_claims(),
    );

    assert_rejected(&verifier, &token, AuthError::KeysUnavailable).await;
    server.publish(Published::Keys(vec![jwk("rsa-1")]));
    assert_accepted(&verifier, &token).await;
}
