//! A small OpenID Connect provider the portal's sign-in tests run on 127.0.0.1:0: discovery,
//! an authorization endpoint that approves at once as the chosen user with the chosen roles, a
//! token endpoint that checks the client, the redirect URI, the PKCE verifier against the
//! challenge and that a code is used once, and the JWKS of its RS256 key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const KEY_PEM: &[u8] = include_bytes!("../../services/auth/tests/fixtures/rsa-1.pem");
const KEY_JWK: &str = include_str!("../../services/auth/tests/fixtures/rsa-1.jwk.json");
const KEY_ID: &str = "test-rsa-1";

/// The audience of the access tokens the provider gives nmp.
pub const AUDIENCE: &str = "api://nmp-tests";

/// Who the provider signs in next, and how it misbehaves when a test asks it to.
#[derive(Clone, Debug)]
pub struct Approval {
    pub subject: String,
    /// Role names put in the access token's `roles`.
    pub roles: Vec<String>,
    /// Put this nonce in the ID token instead of the one asked for.
    pub nonce: Option<String>,
    /// Answer the authorization request with this error (`access_denied`, …) instead of a code.
    pub error: Option<(String, String)>,
}

impl Approval {
    pub fn of(subject: &str, roles: &[auth::Role]) -> Approval {
        Approval {
            subject: subject.to_string(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            nonce: None,
            error: None,
        }
    }
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    approval: Approval,
    used: bool,
}

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    next: Mutex<Approval>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Every token request, to show what nmp sent.
    token_requests: Mutex<Vec<HashMap<String, String>>>,
}

/// A running provider.
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    provider: Arc<Provider>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OidcProvider {
    /// Starts a provider on 127.0.0.1 that knows one client, approving `approval` until told
    /// otherwise.
    pub async fn start(client_id: &str, client_secret: Option<&str>, approval: Approval) -> Self {
        Self::start_at("127.0.0.1", client_id, client_secret, approval).await
    }

    /// As `start`, its issuer named `http://{host}:PORT` (`localhost`: another site than nmp
    /// on 127.0.0.1, as a browser sees them).
    pub async fn start_at(
        host: &str,
        client_id: &str,
        client_secret: Option<&str>,
        approval: Approval,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let issuer = format!("http://{host}:{port}");
        let provider = Arc::new(Provider {
            issuer: issuer.clone(),
            client_id: client_id.to_string(),
            client_secret: client_secret.map(str::to_string),
            next: Mutex::new(approval),
            grants: Mutex::new(HashMap::new()),
            token_requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(provider.clone());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await
                .expect("the provider serves");
        });
        OidcProvider {
            issuer,
            client_id: client_id.to_string(),
            client_secret: client_secret.map(str::to_string),
            provider,
            shutdown: Some(shutdown),
        }
    }

    /// Who the provider approves from now on.
    pub fn approve(&self, approval: Approval) {
        *self.provider.next.lock().unwrap() = approval;
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The forms nmp posted to the token endpoint, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.provider.token_requests.lock().unwrap().clone()
    }

    /// nmp's verifier of this provider's access tokens, as `NMP_JWT_*` would configure it.
    pub fn verifier(&self) -> auth::Verifier {
        auth::Verifier::jwks(
            self.jwks_url(),
            Some(self.issuer.clone()),
            Some(AUDIENCE.to_string()),
        )
    }

    /// The portal's client of this provider, as `NMP_OIDC_*` would configure it.
    pub fn client(&self) -> Arc<api::portal::OidcClient> {
        Arc::new(
            api::portal::OidcClient::new(api::portal::OidcConfig {
                issuer: self.issuer.clone(),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
                scopes: "openid profile".to_string(),
                name: Some("Test Identity".to_string()),
            })
            .expect("client"),
        )
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn discovery(State(provider): State<Arc<Provider>>) -> Response {
    let issuer = &provider.issuer;
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
    .into_response()
}

async fn jwks() -> Response {
    let key: Value = serde_json::from_str(KEY_JWK).expect("jwk");
    axum::Json(json!({ "keys": [key] })).into_response()
}

async fn authorize(
    State(provider): State<Arc<Provider>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let asked = |name: &str| query.get(name).cloned().unwrap_or_default();
    if asked("client_id") != provider.client_id {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let redirect_uri = asked("redirect_uri");
    if !redirect_uri.starts_with("http://")
        || !redirect_uri.ends_with("/portal/sign-in/oidc/callback")
    {
        return (StatusCode::BAD_REQUEST, "unregistered redirect uri").into_response();
    }
    let state = urlencode(&asked("state"));
    let approval = provider.next.lock().unwrap().clone();
    if let Some((error, description)) = &approval.error {
        return Redirect::to(&format!(
            "{redirect_uri}?error={}&error_description={}&state={state}",
            urlencode(error),
            urlencode(description)
        ))
        .into_response();
    }
    let malformed = asked("response_type") != "code"
        || asked("code_challenge_method") != "S256"
        || asked("code_challenge").len() != 43
        || !asked("scope").split(' ').any(|s| s == "openid");
    if malformed {
        return Redirect::to(&format!(
            "{redirect_uri}?error=invalid_request&error_description=malformed&state={state}"
        ))
        .into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    provider.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id: asked("client_id"),
            redirect_uri: redirect_uri.clone(),
            challenge: asked("code_challenge"),
            nonce: query.get("nonce").cloned(),
            approval,
            used: false,
        },
    );
    Redirect::to(&format!("{redirect_uri}?code={code}&state={state}")).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    provider.token_requests.lock().unwrap().push(form.clone());
    let request: TokenRequest =
        serde_json::from_value(serde_json::to_value(&form).unwrap()).expect("form");
    // The client: its secret in Basic or in the form, when it has one.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| {
            v.split_once(':')
                .map(|(id, secret)| (id.to_string(), secret.to_string()))
        });
    let (client_id, secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (request.client_id.clone(), request.client_secret.clone()),
    };
    if client_id.as_deref() != Some(provider.client_id.as_str())
        || (provider.client_secret.is_some() && secret != provider.client_secret)
    {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "who are you?");
    }
    if request.grant_type.as_deref() != Some("authorization_code") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "codes only",
        );
    }
    let mut grants = provider.grants.lock().unwrap();
    let Some(grant) = request.code.as_deref().and_then(|c| grants.get_mut(c)) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown code");
    };
    if grant.used {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code already used",
        );
    }
    grant.used = true;
    if Some(grant.client_id.as_str()) != client_id.as_deref()
        || request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
    {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "another client or redirect uri",
        );
    }
    let verifier = request.code_verifier.unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if verifier.len() < 43 || challenge != grant.challenge {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let now = chrono::Utc::now().timestamp();
    let approval = &grant.approval;
    let access = json!({
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": approval.subject,
        "roles": approval.roles,
        "iat": now,
        "exp": now + 3600,
    });
    let id = json!({
        "iss": provider.issuer,
        "aud": provider.client_id,
        "sub": approval.subject,
        "nonce": approval.nonce.clone().or_else(|| grant.nonce.clone()),
        "iat": now,
        "exp": now + 3600,
    });
    axum::Json(json!({
        "access_token": sign(&access),
        "id_token": sign(&id),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KEY_ID.to_string());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(KEY_PEM).expect("key"),
    )
    .expect("signed")
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
