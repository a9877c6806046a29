//! Helpers for the portal's tests over real HTTP: an nmp serving the portal, a signed-in
//! session, pages and forms.

use crate::{TestApp, spawn_app_with};
use auth::Role;
use reqwest::redirect::Policy;

/// nmp with the API and the portal.
pub async fn portal_app() -> TestApp {
    spawn_app_with(|state| state.serve_portal = true).await
}

/// A client that does not follow redirects, so tests see where the portal sends them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The `Set-Cookie` header of an answer.
pub fn session_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string()
}

/// Signs in with a pasted token of `roles` and answers the session cookie to send back.
pub async fn signed_in(app: &TestApp, roles: &[Role]) -> String {
    let answer = client()
        .post(format!("{}/portal/sign-in", app.address))
        .form(&[("token", app.token(roles).as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 303);
    session_of(&answer).split(';').next().unwrap().to_string()
}

/// GETs a portal page with the session cookie: its status and HTML.
pub async fn page_of(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let answer = client()
        .get(format!("{}{path}", app.address))
        .header("cookie", session)
        .send()
        .await
        .expect("sent");
    (answer.status().as_u16(), answer.text().await.expect("html"))
}

/// The form token on a page.
pub fn form_token(html: &str) -> String {
    html.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form token")
        .to_string()
}

/// POSTs a form with the session cookie: its status, and where it redirects (or its HTML).
pub async fn post_form(
    app: &TestApp,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let answer = client()
        .post(format!("{}{path}", app.address))
        .header("cookie", session)
        .form(form)
        .send()
        .await
        .expect("sent");
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = answer.text().await.expect("html");
    (status, location.unwrap_or(body))
}
