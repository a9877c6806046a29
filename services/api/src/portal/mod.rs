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

mod pages;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "nmp_portal";
/// How long a development sign-in lasts.
const DEVELOPMENT_SESSION: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

const CSS: &str = include_str!("portal.css");

/// The portal's routes, with its security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/accounts", get(accounts))
        .route("/portal/accounts/{name}", get(account))
        .route("/portal/consents", get(consents))
        .route("/portal/failures", get(failures))
        .route("/portal/failures/retry", post(retry_failure))
        .route(
            "/portal/consents/{tenant}",
            get(consent).post(answer_consent),
        )
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-in/development", post(development_sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/static/portal.css", get(stylesheet))
        .layer(axum::middleware::map_response(security_headers))
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

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
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

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    match pages::Home::read(&state).await {
        Ok(home) => pages::home(&session, &home).into_response(),
        Err(error) => unreadable("figures", error),
    }
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
    if csrf != Some(session.csrf.as_str()) {
        return Err(Box::new(forged()));
    }
    if !session.principal.allows(auth::Permission::Write) {
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
        Box::new((error.status, pages::trouble(&error.body.message)).into_response())
    })
}

async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let pool = state.commands.store().pool();
    let listed = projections::query::accounts(pool, &page_of(query.after)).await;
    match listed {
        Ok(listed) => {
            let total = listed.total.unwrap_or(0);
            pages::accounts(&session, &listed, total).into_response()
        }
        Err(error) => unreadable("accounts", error),
    }
}

async fn sign_in_page(State(state): State<AppState>) -> Response {
    pages::sign_in(state.development_secret.is_some(), None).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let token = form.token.trim();
    match state.verifier.verify(token).await {
        Ok(_) if token.chars().all(|c| c.is_ascii_graphic()) => {
            let mut response = Redirect::to("/portal").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&headers, token, None));
            response
        }
        Ok(_) | Err(_) => (
            StatusCode::BAD_REQUEST,
            pages::sign_in(
                state.development_secret.is_some(),
                Some("This token is not valid here: it may have expired, or come from another issuer. Get a fresh one and paste it whole."),
            ),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct DevelopmentSignIn {
    role: String,
}

async fn development_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DevelopmentSignIn>,
) -> Response {
    let Some(secret) = &state.development_secret else {
        return (
            StatusCode::NOT_FOUND,
            pages::trouble("Development sign-in is only offered by nmp on loopback with its development secret."),
        )
            .into_response();
    };
    let Some(role) = auth::Role::parse(&form.role) else {
        return (
            StatusCode::BAD_REQUEST,
            pages::sign_in(true, Some("Choose one of the roles offered.")),
        )
            .into_response();
    };
    let token = auth::mint_token(
        secret.as_bytes(),
        "portal-developer",
        &[role],
        DEVELOPMENT_SESSION,
    );
    let mut response = Redirect::to("/portal").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&headers, &token, Some(DEVELOPMENT_SESSION.as_secs())),
    );
    response
}

#[derive(Deserialize)]
struct SignOut {
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if form.csrf != session.csrf {
        return forged();
    }
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("nmp_portal=; Path=/portal; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
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

async fn consents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let listed =
        projections::query::consents(state.commands.store().pool(), &page_of(query.after)).await;
    match listed {
        Ok(listed) => {
            let total = listed.total.unwrap_or(0);
            pages::consents(&session, &listed, total).into_response()
        }
        Err(error) => unreadable("consents", error),
    }
}

/// The consent page with what the form said and the error next to its field, if any.
async fn consent_page(
    state: &AppState,
    session: &Session,
    tenant: &str,
    form: pages::AnswerForm<'_>,
    status: StatusCode,
) -> Response {
    let Ok(tenant) = domain::TenantId::parse(tenant) else {
        return (
            StatusCode::NOT_FOUND,
            pages::trouble("There is no consent with this tenant id: a tenant id is a GUID."),
        )
            .into_response();
    };
    match state.commands.consent(&tenant).await {
        Ok(loaded) => match &loaded.aggregate.state {
            Some(consent) => (status, pages::consent(session, consent, &form)).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                pages::trouble("There is no consent from this tenant."),
            )
                .into_response(),
        },
        Err(error) => unreadable("consent", error),
    }
}

async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<SavedQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let form = pages::AnswerForm {
        saved: query.saved.is_some(),
        ..pages::AnswerForm::default()
    };
    consent_page(&state, &session, &tenant, form, StatusCode::OK).await
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    csrf: Option<String>,
    status: Option<String>,
    comment: Option<String>,
}

/// Records the operator's answer to a consent through the API's own operation, so the rules,
/// the events and the audit trail are those of `PATCH /teamsRequestsForInformation/{tenantId}`.
async fn answer_consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Form(answer): Form<Answer>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
        &session,
        &headers,
        answer.csrf.as_deref(),
        "Your role may read consents but not answer them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let status = answer.status.as_deref().unwrap_or("").trim().to_string();
    let comment = answer.comment.as_deref().unwrap_or("").trim().to_string();
    let patch = crate::wire::consent::RequestForInformationPatch {
        customer_relationship: Some(crate::wire::consent::CustomerRelationshipPatch {
            status: Some(status.clone()),
            comment: Some((!comment.is_empty()).then(|| comment.clone())),
        }),
    };
    match crate::operations::patch_request_for_information(&state, &caller, &tenant, patch).await {
        Ok(_) => Redirect::to(&format!("/portal/consents/{tenant}?saved=1")).into_response(),
        Err(error) if error.status.is_client_error() && error.status != StatusCode::NOT_FOUND => {
            let field = match error.body.target.as_deref() {
                Some("customerRelationship.status") => pages::Field::Status,
                _ => pages::Field::Comment,
            };
            let form = pages::AnswerForm {
                saved: false,
                status: &status,
                comment: &comment,
                error: Some((field, error.body.message.as_str())),
            };
            consent_page(&state, &session, &tenant, form, StatusCode::BAD_REQUEST).await
        }
        Err(error) => (error.status, pages::trouble(&error.body.message)).into_response(),
    }
}

/// An account's page: its settings and sync state, and its numbers fifty to a page.
async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            pages::trouble("There is no account by this name."),
        )
            .into_response()
    };
    let Ok(name) = domain::values::AccountName::parse(name) else {
        return not_found();
    };
    let loaded = match state.commands.account(&name).await {
        Ok(loaded) => loaded,
        Err(error) => return unreadable("account", error),
    };
    let Some(account) = &loaded.aggregate.state else {
        return not_found();
    };
    let numbers = projections::query::numbers(
        state.commands.store().pool(),
        Some(name.as_str()),
        &page_of(query.after),
    )
    .await;
    match numbers {
        Ok(numbers) => pages::account(&session, account, &numbers).into_response(),
        Err(error) => unreadable("account", error),
    }
}

#[derive(Deserialize)]
struct FailuresQuery {
    after: Option<String>,
    retried: Option<String>,
}

/// The provisioning failures: what the backend refused, why, and a retry for each.
async fn failures(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FailuresQuery>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let listed = projections::failures::failures(
        state.commands.store().pool(),
        &projections::failures::FailureQuery {
            after: query.after.filter(|a| !a.is_empty()),
            skip: 0,
            take: PAGE_ROWS,
            count: true,
        },
    )
    .await;
    match listed {
        Ok(listed) => pages::failures(&session, &listed, query.retried.as_deref()).into_response(),
        Err(error) => unreadable("failures", error),
    }
}

#[derive(Deserialize)]
struct Retry {
    csrf: Option<String>,
    kind: Option<String>,
    id: Option<String>,
    account: Option<String>,
}

/// Retries one failure through the API's own retry operation for its kind.
async fn retry_failure(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(retry): Form<Retry>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let caller = match writer(
        &session,
        &headers,
        retry.csrf.as_deref(),
        "Your role may read failures but not retry them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let id = retry.id.unwrap_or_default();
    let account = retry.account.unwrap_or_default();
    let outcome = match retry.kind.as_deref() {
        Some("account") => {
            crate::operations::retry_account_provisioning(&state, &caller, &id).await
        }
        Some("number") => {
            crate::operations::retry_number_provisioning(&state, &caller, &account, &id).await
        }
        Some("consent") => {
            crate::operations::retry_request_for_information_provisioning(&state, &caller, &id)
                .await
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                pages::trouble("Only an account, a number or a consent can be retried."),
            )
                .into_response();
        }
    };
    match outcome {
        Ok(_) => Redirect::to("/portal/failures?retried=1").into_response(),
        Err(error) => (error.status, pages::trouble(&error.body.message)).into_response(),
    }
}
