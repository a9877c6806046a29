//! Token factories and a local JWKS server shared by the verifier tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use auth::{AuthError, Principal, Verifier};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const SECRET: &[u8] = b"test-secret-that-is-at-least-32-bytes-long";

pub const RSA_1_PEM: &[u8] = include_bytes!("../fixtures/rsa-1.pem");
/// rsa-1's public key as `openssl rsa -pubout` writes it (SubjectPublicKeyInfo, `BEGIN PUBLIC
/// KEY`): the key the JWKS publishes, in the form an attacker would download or derive.
pub const RSA_1_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/rsa-1.public.pem");
/// rsa-1's public key in PKCS#1 (`openssl rsa -RSAPublicKey_out`, `BEGIN RSA PUBLIC KEY`).
pub const RSA_1_PKCS1_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/rsa-1.rsa-public.pem");
pub const RSA_2_PEM: &[u8] = include_bytes!("../fixtures/rsa-2.pem");
pub const EC_PEM: &[u8] = include_bytes!("../fixtures/ec-p256.pem");
pub const RSA_1_KID: &str = "test-rsa-1";
pub const RSA_2_KID: &str = "test-rsa-2";
pub const EC_KID: &str = "test-ec-1";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims valid for an hour, with `extra` merged in (a `null` value removes the claim).
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({ "sub": "tester", "exp": now() + 3600, "iat": now() });
    for (name, value) in extra.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

pub fn hs256_token(secret: &[u8], claims: &Value) -> String {
    sign(
        Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(secret),
        claims,
    )
}

pub fn sign(header: Header, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Signs with one of the fixture keys, naming `kid` in the header.
pub fn asymmetric_token(
    algorithm: Algorithm,
    pem: &[u8],
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let key = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    sign(header, &key, claims)
}

pub fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An unsigned token: base64url header and payload and an empty signature, as an attacker
/// would write it by hand.
pub fn unsigned_token(alg: &str, claims: &Value) -> String {
    let header = json!({ "alg": alg, "typ": "JWT" });
    format!("{}.{}.", encode_part(&header), encode_part(claims))
}

/// Verifies and checks that the rejection is `expected` and that its message leaks nothing.
pub async fn assert_rejected(verifier: &Verifier, token: &str, expected: AuthError) {
    let error = verifier
        .verify(token)
        .await
        .expect_err("the token should be rejected");
    assert_eq!(error, expected, "token {token}");
    let message = error.to_string();
    assert!(!token.is_empty() && !message.contains(token), "{message}");
    assert!(
        !message.contains(std::str::from_utf8(SECRET).unwrap()),
        "{message}"
    );
    for part in token.split('.').filter(|part| part.len() > 8) {
        assert!(!message.contains(part), "{message}");
    }
}

pub async fn assert_accepted(verifier: &Verifier, token: &str) -> Principal {
    match verifier.verify(token).await {
        Ok(principal) => principal,
        Err(error) => panic!(
            "the token should be accepted, got {error:?} ({})",
            error.code()
        ),
    }
}

pub fn jwk(name: &str) -> Value {
    let text = match name {
        "rsa-1" => include_str!("../fixtures/rsa-1.jwk.json"),
        "rsa-2" => include_str!("../fixtures/rsa-2.jwk.json"),
        "ec-p256" => include_str!("../fixtures/ec-p256.jwk.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// What the fake identity provider answers on its JWKS URL.
#[derive(Clone)]
pub enum Published {
    Keys(Vec<Value>),
    Body(StatusCode, &'static str),
}

#[derive(Clone)]
struct ServerState {
    published: Arc<Mutex<Published>>,
    fetches: Arc<AtomicUsize>,
}

/// A JWKS endpoint on 127.0.0.1 that serves whatever the test publishes and counts fetches.
pub struct JwksServer {
    pub url: String,
    state: ServerState,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> JwksServer {
        let state = ServerState {
            published: Arc::new(Mutex::new(Published::Keys(keys))),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/keys", get(serve_keys))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            url: format!("http://{address}/keys"),
            state,
        }
    }

    pub fn publish(&self, published: Published) {
        *self.state.published.lock().unwrap() = published;
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::jwks(self.url.clone(), None, None)
    }
}

async fn serve_keys(State(state): State<ServerState>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let published = state.published.lock().unwrap().clone();
    match published {
        Published::Keys(keys) => axum::Json(json!({ "keys": keys })).into_response(),
        Published::Body(status, body) => (status, body).into_response(),
    }
}

/// A URL on which nothing listens: the port was bound and released again.
pub async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/keys")
}
