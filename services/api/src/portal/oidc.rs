//! Signing in to the portal with the operator's OpenID Connect provider (Entra ID, Keycloak or
//! any other): the authorization code flow with PKCE (S256).
//!
//! `/portal/sign-in/oidc` sends the browser to the provider with a fresh `state`, `nonce` and
//! code challenge, keeping them (and the code verifier) in a short-lived HttpOnly cookie of this
//! browser. It is SameSite=Lax because the provider's answer comes back as a top-level GET from
//! another site, which a Strict cookie would not accompany. `/portal/sign-in/oidc/callback`
//! checks that the answer belongs to that sign-in, exchanges the code (with the verifier) for
//! tokens, checks the ID token (signature, issuer, audience, expiry, nonce), and verifies the
//! access token exactly as the API does: that token becomes the session, as a pasted one would.
//!
//! The provider's discovery document is read on first use (nmp starts while the provider is
//! down) and kept for an hour.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::pages::*;
use super::sign_in::{SignInTrouble, sign_in_html};
use super::{cookie, on_loopback, session_cookie};
use crate::AppState;

/// The cookie that carries a sign-in in progress from the redirect to the callback.
const FLOW_COOKIE: &str = "nmp_portal_oidc";
/// How long a person has at the provider before the sign-in must start again.
const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long a discovery document is trusted before it is read again.
const DISCOVERY_AGE: Duration = Duration::from_secs(60 * 60);
/// Discovery documents and token answers are small; the cap keeps a broken provider from
/// filling memory.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Where and how the portal signs in with an OpenID Connect provider.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer; its discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// nmp's client id at the provider.
    pub client_id: String,
    /// nmp's client secret, for a confidential client.
    pub client_secret: Option<String>,
    /// Scopes asked for, space-separated (`openid` among them).
    pub scopes: String,
    /// The provider's name on the sign-in button; the issuer's host without it.
    pub name: Option<String>,
}

/// The portal's client of one OpenID Connect provider, shared by every request.
pub struct OidcClient {
    config: OidcConfig,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<(Arc<Provider>, Instant)>>,
}

/// What the discovery document says, and the verifier of the provider's ID tokens.
struct Provider {
    authorization_endpoint: reqwest::Url,
    token_endpoint: reqwest::Url,
    /// Whether the client secret goes in the form (`client_secret_post`) rather than in an
    /// `Authorization: Basic` header, the default.
    secret_in_form: bool,
    /// ID tokens are for nmp's client id, from the issuer, signed with the provider's keys.
    id_tokens: auth::Verifier,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("scopes", &self.config.scopes)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in cannot go on: what the person reads, and what the log keeps.
struct Refusal {
    status: StatusCode,
    message: String,
}

fn refused(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

const UNREACHABLE: &str = "The identity provider cannot be reached just now, or did not answer as \
     an OpenID Connect provider should. Try again in a moment, or paste a token instead.";

impl OidcClient {
    pub fn new(config: OidcConfig) -> Result<OidcClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OidcClient {
            config,
            http,
            provider: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's name for people: the configured one, else the issuer's host.
    pub fn name(&self) -> String {
        if let Some(name) = self.config.name.as_deref().filter(|n| !n.is_empty()) {
            return name.to_string();
        }
        reqwest::Url::parse(&self.config.issuer)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_else(|| self.config.issuer.clone())
    }

    /// The provider's endpoints, from its discovery document (read again after an hour).
    async fn provider(&self) -> Result<Arc<Provider>, Refusal> {
        let mut cached = self.provider.lock().await;
        if let Some((provider, read_at)) = cached.as_ref()
            && read_at.elapsed() < DISCOVERY_AGE
        {
            return Ok(provider.clone());
        }
        let provider = Arc::new(self.discover().await.map_err(|error| {
            tracing::warn!(issuer = %self.config.issuer, %error, "cannot read the OpenID provider's discovery document");
            refused(StatusCode::SERVICE_UNAVAILABLE, UNREACHABLE)
        })?);
        *cached = Some((provider.clone(), Instant::now()));
        Ok(provider)
    }

    async fn discover(&self) -> Result<Provider, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            authorization_endpoint: String,
            token_endpoint: String,
            jwks_uri: String,
            #[serde(default)]
            token_endpoint_auth_methods_supported: Vec<String>,
            #[serde(default)]
            code_challenge_methods_supported: Option<Vec<String>>,
        }
        let issuer = self.config.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("{url} answered {}", answer.status()));
        }
        let body = read_capped(answer).await?;
        let discovery: Discovery =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
        // OpenID Connect Discovery 1.0 §4.3: the document must be the issuer's own.
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(format!(
                "{url} names the issuer {}, not {issuer}",
                discovery.issuer
            ));
        }
        if let Some(methods) = &discovery.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(format!("{url}: the provider does not offer PKCE with S256"));
        }
        let endpoint = |name: &str, value: &str| -> Result<reqwest::Url, String> {
            let url = reqwest::Url::parse(value)
                .map_err(|e| format!("{name} '{value}' is not a URL: {e}"))?;
            let local = url.host_str().is_some_and(|host| {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                return Err(format!(
                    "{name} '{value}' must use https (plain http only to this host)"
                ));
            }
            Ok(url)
        };
        let authorization_endpoint =
            endpoint("authorization_endpoint", &discovery.authorization_endpoint)?;
        let token_endpoint = endpoint("token_endpoint", &discovery.token_endpoint)?;
        let jwks_uri = endpoint("jwks_uri", &discovery.jwks_uri)?;
        let methods = &discovery.token_endpoint_auth_methods_supported;
        let secret_in_form = methods.iter().any(|m| m == "client_secret_post")
            && !methods.iter().any(|m| m == "client_secret_basic");
        Ok(Provider {
            authorization_endpoint,
            token_endpoint,
            secret_in_form,
            id_tokens: auth::Verifier::jwks(
                jwks_uri.to_string(),
                Some(discovery.issuer),
                Some(self.config.client_id.clone()),
            ),
        })
    }

    /// Trades the code for tokens at the token endpoint, with the PKCE verifier.
    async fn exchange(
        &self,
        provider: &Provider,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Tokens, Refusal> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", self.config.client_id.as_str()),
        ];
        let mut request = self.http.post(provider.token_endpoint.clone());
        if let Some(secret) = &self.config.client_secret {
            if provider.secret_in_form {
                form.push(("client_secret", secret.as_str()));
            } else {
                // RFC 6749 §2.3.1: both are form-encoded before they go into Basic.
                request = request.basic_auth(
                    urlencoding(&self.config.client_id),
                    Some(urlencoding(secret)),
                );
            }
        }
        let unreachable = |error: String| {
            tracing::warn!(issuer = %self.config.issuer, %error, "the OpenID provider's token endpoint failed");
            refused(StatusCode::BAD_GATEWAY, UNREACHABLE)
        };
        let answer = request
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = answer.status();
        let body = read_capped(answer).await.map_err(unreachable)?;
        if !status.is_success() {
            #[derive(Deserialize)]
            struct TokenError {
                error: Option<String>,
                error_description: Option<String>,
            }
            let error = serde_json::from_slice::<TokenError>(&body).ok();
            let code = error
                .as_ref()
                .and_then(|e| e.error.clone())
                .unwrap_or_else(|| status.to_string());
            let description = error.and_then(|e| e.error_description).unwrap_or_default();
            tracing::info!(issuer = %self.config.issuer, %code, %description, "the OpenID provider refused a sign-in code");
            return Err(refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "The identity provider refused to finish this sign-in ({code}): the sign-in \
                     may have been used already, or have taken too long. Start again."
                ),
            ));
        }
        serde_json::from_slice::<Tokens>(&body)
            .map_err(|e| unreachable(format!("the token answer is not understood: {e}")))
    }
}

async fn read_capped(answer: reqwest::Response) -> Result<Vec<u8>, String> {
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err("the answer is too large".to_string());
    }
    let body = answer.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > MAX_ANSWER_BYTES {
        return Err("the answer is too large".to_string());
    }
    Ok(body.to_vec())
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    id_token: Option<String>,
}

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/sign-in/oidc", get(start))
        .route("/portal/sign-in/oidc/callback", get(callback))
}

/// A sign-in in progress: what the provider's answer must match, and the PKCE verifier.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    started: u64,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            state: random(),
            nonce: random(),
            verifier: random(),
            started: now(),
        }
    }

    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    fn cookie_value(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.state, self.nonce, self.verifier, self.started
        )
    }

    fn from_cookie(value: &str) -> Option<Flow> {
        let mut parts = value.split('.');
        let (Some(state), Some(nonce), Some(verifier), Some(started), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Flow {
            state: state.to_string(),
            nonce: nonce.to_string(),
            verifier: verifier.to_string(),
            started: started.parse().ok()?,
        })
    }
}

/// 32 random bytes, base64url: a state, a nonce, or a PKCE verifier (43 characters).
fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn flow_cookie(headers: &HeaderMap, value: &str, max_age: u64) -> HeaderValue {
    let secure = if on_loopback(headers) { "" } else { "; Secure" };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/portal; HttpOnly; SameSite=Lax{secure}; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("nmp_portal_oidc=; Path=/portal; Max-Age=0"))
}

/// Where the provider sends the browser back: nmp's public URL, or as the browser reached nmp.
fn redirect_uri(state: &AppState, uri: &Uri, headers: &HeaderMap) -> String {
    let origin = crate::routes::lists::origin(state.public_url.as_deref(), uri, headers);
    format!("{origin}/portal/sign-in/oidc/callback")
}

/// Sends the browser to the provider's authorization endpoint.
async fn start(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return (
            StatusCode::NOT_FOUND,
            trouble("This nmp has no identity provider to sign in with. Paste a token instead."),
        )
            .into_response();
    };
    let provider = match oidc.provider().await {
        Ok(provider) => provider,
        Err(refusal) => return refuse(&state, &headers, refusal),
    };
    let flow = Flow::new();
    let mut url = provider.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.config.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state, &uri, &headers))
        .append_pair("scope", &oidc.config.scopes)
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &flow.challenge())
        .append_pair("code_challenge_method", "S256");
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        flow_cookie(&headers, &flow.cookie_value(), FLOW_LIFETIME.as_secs()),
    );
    response
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's answer: on success, the session is set and the browser goes on to the portal.
async fn callback(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    match finish(&state, &uri, &headers, answer).await {
        Ok((token, expires_at)) => signed_in(&headers, &token, expires_at),
        Err(refusal) => refuse(&state, &headers, refusal),
    }
}

async fn finish(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    answer: Callback,
) -> Result<(String, Option<u64>), Refusal> {
    let Some(oidc) = state.oidc.clone() else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "This nmp has no identity provider to sign in with. Paste a token instead.",
        ));
    };
    if let Some(error) = &answer.error {
        let said = answer
            .error_description
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(error);
        return Err(refused(
            StatusCode::BAD_REQUEST,
            format!("The identity provider did not sign you in: {said}"),
        ));
    }
    let Some(flow) = cookie(headers, FLOW_COOKIE).and_then(Flow::from_cookie) else {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "This sign-in did not start in this browser, or took too long. Start again.",
        ));
    };
    if now().saturating_sub(flow.started) > FLOW_LIFETIME.as_secs() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "This sign-in took too long at the identity provider. Start again.",
        ));
    }
    let state_matches = answer.state.as_deref().is_some_and(|s| {
        // Compared in constant time: the state stands between a stranger's code and a session.
        s.len() == flow.state.len()
            && s.bytes()
                .zip(flow.state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !state_matches {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "This answer from the identity provider does not belong to the sign-in this browser \
             started. Start again.",
        ));
    }
    let Some(code) = answer.code.filter(|c| !c.is_empty()) else {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no sign-in code. Start again.",
        ));
    };
    let provider = oidc.provider().await?;
    let tokens = oidc
        .exchange(
            &provider,
            &code,
            &redirect_uri(state, uri, headers),
            &flow.verifier,
        )
        .await?;
    let foreign = |what: &str, error: &dyn std::fmt::Display| {
        tracing::info!(issuer = %oidc.config.issuer, %error, "the OpenID provider's {what} is refused");
        refused(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer is not for this sign-in, or not from this provider. \
             Start again.",
        )
    };
    let Some(id_token) = tokens.id_token else {
        return Err(foreign("answer", &"it has no ID token"));
    };
    provider
        .id_tokens
        .verify(&id_token)
        .await
        .map_err(|e| foreign("ID token", &e))?;
    if id_token_nonce(&id_token).as_deref() != Some(flow.nonce.as_str()) {
        return Err(foreign("ID token", &"its nonce is not this sign-in's"));
    }
    let token = tokens.access_token;
    let principal = match state.verifier.verify(&token).await {
        Ok(principal) if token.chars().all(|c| c.is_ascii_graphic()) => principal,
        Ok(_) => {
            return Err(foreign(
                "access token",
                &"it has characters a cookie cannot hold",
            ));
        }
        Err(error) => {
            tracing::warn!(issuer = %oidc.config.issuer, %error, "the OpenID provider's access token does not verify");
            return Err(refused(
                StatusCode::FORBIDDEN,
                "You signed in at the identity provider, but its access token is not one nmp \
                 accepts (it may be meant for another application). Ask an administrator to \
                 check nmp's sign-in settings.",
            ));
        }
    };
    if principal.roles.is_empty() {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!(
                "You signed in as {}, but you have no role in nmp. Ask an administrator to give \
                 you one of the ProvisioningAPI roles (ReadUser, WriteUser, DeleteUser or \
                 AdminUser).",
                principal.subject
            ),
        ));
    }
    Ok((token, principal.expires_at))
}

/// The `nonce` of an ID token whose signature has been checked.
fn id_token_nonce(id_token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Claims {
        nonce: Option<String>,
    }
    let payload = id_token.split('.').nth(1)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Claims>(&payload).ok()?.nonce
}

/// The session is set; the browser goes on to the portal from a page of nmp's own, so that
/// the navigation is same-site and the SameSite=Strict session cookie goes with it (a redirect
/// straight from here would still count as the provider's cross-site navigation).
fn signed_in(headers: &HeaderMap, token: &str, expires_at: Option<u64>) -> Response {
    let max_age = expires_at.map(|at| at.saturating_sub(now()));
    let mut response = (
        [(header::HeaderName::from_static("refresh"), "0; url=/portal")],
        page(
            "Signed in",
            None,
            html! {
                h1 { "Signed in" }
                p { a href="/portal" { "Go on to the portal" } }
            },
        ),
    )
        .into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, session_cookie(headers, token, max_age));
    cookies.append(header::SET_COOKIE, flow_cookie(headers, "", 0));
    response
}

/// The sign-in page with what went wrong beside the provider's button; the sign-in in
/// progress, if any, is over.
fn refuse(state: &AppState, headers: &HeaderMap, refusal: Refusal) -> Response {
    let mut response = (
        refusal.status,
        sign_in_html(state, Some(SignInTrouble::Provider(&refusal.message))),
    )
        .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(headers, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_verifiers_sha256_in_base64url() {
        // RFC 7636 appendix B.
        let flow = Flow {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_string(),
            started: 0,
        };
        assert_eq!(
            flow.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_flow_survives_its_cookie_and_nothing_else_does() {
        let flow = Flow::new();
        let back = Flow::from_cookie(&flow.cookie_value()).unwrap();
        assert_eq!(back.state, flow.state);
        assert_eq!(back.nonce, flow.nonce);
        assert_eq!(back.verifier, flow.verifier);
        assert_eq!(back.started, flow.started);
        assert_eq!(flow.verifier.len(), 43);
        assert!(Flow::from_cookie("a.b.c").is_none());
        assert!(Flow::from_cookie("a.b.c.d.e").is_none());
        assert!(Flow::from_cookie("a.b.c.soon").is_none());
    }
}
