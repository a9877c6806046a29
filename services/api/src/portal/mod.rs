//! The Number Management Portal (component `portal`), under `/portal` on the API's port: pages
//! rendered on the server (maud templates compiled into the binary), on the same command
//! service, read side, roles and validation as the API.
//!
//! Sign-in keeps the caller's bearer token — pasted, or on loopback with the development secret
//! minted for a chosen role — in an HttpOnly, SameSite=Strict cookie (Secure unless the request
//! came to a loopback host); every request verifies it as the API does, so it ends when the
//! token expires. Every form that changes something carries a token derived from the session
//! cookie (which a page of another site cannot read), and every page is sent with a
//! Content-Security-Policy that allows no inline script or style.

mod accounts;
mod addresses;
mod consents;
mod failures;
mod history;
mod home;
mod live;
mod numbers;
mod oidc;
mod pages;
mod sign_in;
mod upload;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppState;

pub use home::NumberFigures;
pub use oidc::{OidcClient, OidcConfig};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "nmp_portal";

/// The portal's files, kept in the repository and compiled into the binary: no page needs
/// anything from another site.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("static/portal.css"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("static/portal.js"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("static/upload.js"),
    ),
];

/// The portal's routes, with its security headers. Each part of the portal brings its own; every
/// page after sign-in needs the Read permission, as every read of the API does.
pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(home::routes())
        .merge(accounts::routes())
        .merge(addresses::routes())
        .merge(consents::routes())
        .merge(failures::routes())
        .merge(history::routes())
        .merge(live::routes())
        .merge(numbers::routes())
        .merge(upload::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            readers_only,
        ));
    Router::new()
        .merge(pages)
        .merge(oidc::routes())
        .merge(sign_in::routes())
        .route("/portal/static/{file}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// Refuses a signed-in caller whose roles do not include reading (a role that may only write or
/// delete, as the API's roles are separate): the portal has nothing to show it. Callers without a
/// session go on, and each page sends them to sign in.
async fn readers_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(session) = session(&state, request.headers()).await
        && !session.principal.allows(auth::Permission::Read)
    {
        return (
            StatusCode::FORBIDDEN,
            pages::trouble(
                "Your roles do not include reading (ProvisioningAPI.ReadUser), so the portal has \
                 nothing to show you. Ask an administrator to add it.",
            ),
        )
            .into_response();
    }
    next.run(request).await
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            pages::trouble("There is no such file."),
        )
            .into_response(),
    }
}

/// The caller signed in to the portal: who, and the session's form token.
pub struct Session {
    pub principal: auth::Principal,
    pub csrf: String,
}

/// The form token of a session: a hash of its cookie, which another site's page cannot read.
fn csrf_of(token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"nmp-portal-form\0");
    hasher.update(token.as_bytes());
    format!("{:x}", hasher.finalize())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// The session of a request, if its cookie holds a token that verifies.
async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let principal = state.verifier.verify(token).await.ok()?;
    Some(Session {
        principal,
        csrf: csrf_of(token),
    })
}

/// Whether the request came to a loopback host (then the cookie may go without `Secure`).
fn on_loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn session_cookie(headers: &HeaderMap, token: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if on_loopback(headers) { "" } else { "; Secure" };
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/portal; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("nmp_portal=; Path=/portal; Max-Age=0"))
}

fn to_sign_in() -> Response {
    Redirect::to("/portal/sign-in").into_response()
}

/// Rows on a page of the portal's lists.
const PAGE_ROWS: u64 = 50;

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
}

/// One page of a list: the first, or the one after the key the previous page ended on.
fn page_of(after: Option<String>) -> projections::query::ListQuery {
    projections::query::ListQuery {
        filter: None,
        after: after.filter(|a| !a.is_empty()),
        skip: 0,
        take: PAGE_ROWS,
        count: true,
    }
}

/// The answer to a form that did not come from the portal's own page.
fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::trouble(
            "This form was not sent from the portal's own page. Reload the page and try again.",
        ),
    )
        .into_response()
}

/// The caller of a form that changes something: the form must carry the session's form token
/// and the session's roles must allow writing (else `refusal` says what the role may not do).
fn writer(
    session: &Session,
    headers: &HeaderMap,
    csrf: Option<&str>,
    refusal: &str,
) -> Result<crate::context::Caller, Box<Response>> {
    caller_allowed(session, headers, csrf, auth::Permission::Write, refusal)
}

/// The caller of a form: the form must carry the session's form token and the session's roles
/// must grant `permission` (else `refusal` says what the role may not do).
fn caller_allowed(
    session: &Session,
    headers: &HeaderMap,
    csrf: Option<&str>,
    permission: auth::Permission,
    refusal: &str,
) -> Result<crate::context::Caller, Box<Response>> {
    if csrf != Some(session.csrf.as_str()) {
        return Err(Box::new(forged()));
    }
    if !session.principal.allows(permission) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, pages::trouble(refusal)).into_response(),
        ));
    }
    let lookup = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::to_string).map_err(|_| ()))
    };
    crate::context::Caller::from_headers(session.principal.clone(), &lookup).map_err(|error| {
        let status = crate::error::status_of(error.kind);
        Box::new((status, pages::trouble(&error.body.message)).into_response())
    })
}

fn unreadable(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "cannot read the portal's {what} page");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::trouble(&format!(
            "The {what} cannot be read just now. Try again in a moment."
        )),
    )
        .into_response()
}
