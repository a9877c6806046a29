//! Signing in and out.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::*;
use super::*;
use crate::AppState;

/// How long a development sign-in lasts.
const DEVELOPMENT_SESSION: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-in/development", post(development_sign_in))
        .route("/portal/sign-out", post(sign_out))
}

async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_html(&state, None).into_response()
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
            sign_in_html(
                &state,
                Some(SignInTrouble::Token("This token is not valid here: it may have expired, or come from another issuer. Get a fresh one and paste it whole.")),
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
            trouble("Development sign-in is only offered by nmp on loopback with its development secret."),
        )
            .into_response();
    };
    // The roles are separate grants; a person who writes also reads, so the offers add up:
    // "Read and write" is ReadUser with WriteUser, and so on. The administrator has every one.
    let offered = ROLES.iter().position(|(value, _)| *value == form.role);
    let roles: Option<Vec<auth::Role>> = offered.map(|i| {
        let upto: &[(&str, &str)] = if ROLES[i].0 == "ProvisioningAPI.AdminUser" {
            &ROLES[i..=i]
        } else {
            &ROLES[..=i]
        };
        upto.iter()
            .filter_map(|(value, _)| auth::Role::parse(value))
            .collect()
    });
    let Some(roles) = roles else {
        return (
            StatusCode::BAD_REQUEST,
            sign_in_html(
                &state,
                Some(SignInTrouble::Development(
                    "Choose one of the roles offered.",
                )),
            ),
        )
            .into_response();
    };
    let token = auth::mint_token(
        secret.as_bytes(),
        "portal-developer",
        &roles,
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

/// The roles a development sign-in offers, by the names operator staff know.
const ROLES: &[(&str, &str)] = &[
    ("ProvisioningAPI.ReadUser", "Read only"),
    ("ProvisioningAPI.WriteUser", "Read and write"),
    ("ProvisioningAPI.DeleteUser", "Read, write and delete"),
    ("ProvisioningAPI.AdminUser", "Administrator"),
];

/// What went wrong with a sign-in, said beside the way of signing in it concerns.
pub(super) enum SignInTrouble<'a> {
    /// With the identity provider (OpenID Connect).
    Provider(&'a str),
    /// With a pasted token.
    Token(&'a str),
    /// With the development sign-in.
    Development(&'a str),
}

/// The sign-in page: the identity provider's button when one is configured, the pasted token,
/// and on loopback with the development secret the development sign-in.
pub(super) fn sign_in_html(state: &AppState, trouble: Option<SignInTrouble<'_>>) -> Markup {
    let development = state.development_secret.is_some();
    let provider = state.oidc.as_ref().map(|oidc| oidc.name());
    let (provider_error, token_error, development_error) = match trouble {
        Some(SignInTrouble::Provider(error)) => (Some(error), None, None),
        Some(SignInTrouble::Token(error)) => (None, Some(error), None),
        Some(SignInTrouble::Development(error)) => (None, None, Some(error)),
        None => (None, None, None),
    };
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to the Number Management Portal" }
            @if let Some(provider) = &provider {
                div.stack.provider {
                    a.button href="/portal/sign-in/oidc" aria-describedby="provider-error" {
                        "Sign in with " (provider)
                    }
                    @if let Some(error) = provider_error {
                        p.error id="provider-error" role="alert" { (error) }
                    }
                }
                h2 { "Or paste a token" }
            } @else if let Some(error) = provider_error {
                p.error role="alert" { (error) }
            }
            form.stack method="post" action="/portal/sign-in" {
                label for="token" { "Bearer token" }
                textarea id="token" name="token" rows="5" required
                    aria-describedby="token-hint token-error" {}
                p.hint id="token-hint" {
                    "Paste an access token for nmp (ProvisioningAPI roles) from your identity provider."
                }
                @if let Some(error) = token_error {
                    p.error id="token-error" role="alert" { (error) }
                }
                button type="submit" { "Sign in" }
            }
            @if development {
                h2 { "Development sign-in" }
                form.stack method="post" action="/portal/sign-in/development" {
                    label for="role" { "Sign in with the role" }
                    select id="role" name="role" aria-describedby="role-error" {
                        @for (value, name) in ROLES {
                            option value=(value) { (name) }
                        }
                    }
                    p.hint { "Offered only by nmp on loopback with its development secret." }
                    @if let Some(error) = development_error {
                        p.error id="role-error" role="alert" { (error) }
                    }
                    button.quiet type="submit" { "Sign in for development" }
                }
            }
        },
    )
}
