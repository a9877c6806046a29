//! Signing in to the portal with an OpenID Connect provider (authorization code with PKCE),
//! against a small provider the tests run: the whole flow over real HTTP, and every way it
//! must refuse.

use auth::Role;
use tests::TestApp;
use tests::browser::Browser;
use tests::oidc_provider::{Approval, OidcProvider};
use tests::portal::{client, page_of};

const CLIENT_ID: &str = "nmp-portal";
const CLIENT_SECRET: &str = "portal-secret";

/// A provider approving `approval`, and nmp with the portal signing in with it (its access
/// tokens verified with its keys, as `NMP_JWT_JWKS_URL` would have them).
async fn provider_and_portal(approval: Approval) -> (OidcProvider, TestApp) {
    let provider = OidcProvider::start(CLIENT_ID, Some(CLIENT_SECRET), approval).await;
    let app = portal_of(&provider).await;
    (provider, app)
}

/// nmp with the portal signing in with `provider`.
async fn portal_of(provider: &OidcProvider) -> TestApp {
    let verifier = provider.verifier();
    let oidc = provider.client();
    tests::spawn_app_with(move |state| {
        state.serve_portal = true;
        state.verifier = verifier;
        state.oidc = Some(oidc);
    })
    .await
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_string()
}

/// `name=value` of the cookie `name` among `Set-Cookie` headers.
fn cookie_pair(cookies: &[String], name: &str) -> Option<String> {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// A sign-in begun at nmp: the flow cookie (`name=value`), its whole `Set-Cookie`, and where
/// the browser is sent.
struct Begun {
    flow: String,
    set_cookie: String,
    authorize: String,
}

async fn begin(app: &TestApp, host: Option<&str>) -> Begun {
    let mut request = client().get(format!("{}/portal/sign-in/oidc", app.address));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let answer = request.send().await.expect("sent");
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    let cookies = set_cookies(&answer);
    let set_cookie = cookies
        .iter()
        .find(|c| c.starts_with("nmp_portal_oidc="))
        .expect("the flow cookie")
        .clone();
    Begun {
        flow: cookie_pair(&cookies, "nmp_portal_oidc").unwrap(),
        set_cookie,
        authorize: location(&answer),
    }
}

/// The provider's answer to the authorization request: where it sends the browser back.
async fn authorize(url: &str) -> String {
    let answer = client().get(url).send().await.expect("sent");
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    location(&answer)
}

/// The browser coming back to nmp's callback (`callback` as the provider wrote it) with
/// `flow` as its cookie.
async fn come_back(
    app: &TestApp,
    callback: &str,
    flow: Option<&str>,
    host: Option<&str>,
) -> reqwest::Response {
    let path = &callback[callback.find("/portal/").expect("a portal path")..];
    let mut request = client().get(format!("{}{path}", app.address));
    if let Some(flow) = flow {
        request = request.header("cookie", flow);
    }
    if let Some(host) = host {
        request = request.header("host", host);
    }
    request.send().await.expect("sent")
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
}

/// A sign-in that must be refused: the sign-in page, with `words` beside the provider's
/// button, no session, and the sign-in in progress ended.
async fn assert_refused(answer: reqwest::Response, status: u16, words: &str) {
    assert_eq!(answer.status(), status);
    let cookies = set_cookies(&answer);
    assert!(
        cookie_pair(&cookies, "nmp_portal").is_none(),
        "no session may be set: {cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("nmp_portal_oidc=;") && c.contains("Max-Age=0")),
        "the flow cookie is cleared: {cookies:?}"
    );
    let html = answer.text().await.unwrap();
    assert!(html.contains("Sign in with Test Identity"), "{html}");
    assert!(
        html.contains(r#"id="provider-error" role="alert""#),
        "{html}"
    );
    assert!(html.contains(words), "expected «{words}» in {html}");
}

#[tokio::test]
async fn the_sign_in_page_offers_the_provider_when_one_is_configured() {
    let (_provider, app) = provider_and_portal(Approval::of("ada", &[Role::Read])).await;
    let (status, html) = page_of(&app, "", "/portal/sign-in").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"href="/portal/sign-in/oidc""#), "{html}");
    assert!(html.contains("Sign in with Test Identity"), "{html}");
    assert!(
        html.contains("Bearer token"),
        "pasting a token stays offered"
    );

    let plain = tests::portal::portal_app().await;
    let (_, html) = page_of(&plain, "", "/portal/sign-in").await;
    assert!(!html.contains("/portal/sign-in/oidc"), "{html}");
    let answer = client()
        .get(format!("{}/portal/sign-in/oidc", plain.address))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}

#[tokio::test]
async fn signing_in_with_the_provider_opens_a_session_that_works_on_the_portal() {
    let (provider, app) =
        provider_and_portal(Approval::of("ada", &[Role::Read, Role::Write])).await;
    let begun = begin(&app, None).await;

    // The browser goes to the provider's authorization endpoint with a PKCE challenge.
    assert!(
        begun
            .authorize
            .starts_with(&format!("{}/authorize?", provider.issuer)),
        "{}",
        begun.authorize
    );
    let asked = |name| query_value(&begun.authorize, name);
    assert_eq!(asked("response_type").as_deref(), Some("code"));
    assert_eq!(asked("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(asked("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(asked("code_challenge").map(|c| c.len()), Some(43));
    assert_eq!(
        asked("redirect_uri"),
        Some(format!("{}/portal/sign-in/oidc/callback", app.address))
    );
    assert!(asked("scope").unwrap().split(' ').any(|s| s == "openid"));
    let (state, nonce) = (asked("state").unwrap(), asked("nonce").unwrap());
    assert!(state.len() >= 32 && nonce.len() >= 32 && state != nonce);
    // Kept in this browser only, for the provider's cross-site redirect back.
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/portal", "Max-Age=600"] {
        assert!(begun.set_cookie.contains(flag), "{}", begun.set_cookie);
    }
    assert!(!begun.set_cookie.contains("Secure"), "loopback");

    let callback = authorize(&begun.authorize).await;
    let answer = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers().get("refresh").unwrap().to_str().unwrap(),
        "0; url=/portal"
    );
    let cookies = set_cookies(&answer);
    let session_set = cookies
        .iter()
        .find(|c| c.starts_with("nmp_portal="))
        .expect("a session cookie")
        .clone();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age="] {
        assert!(session_set.contains(flag), "{session_set}");
    }
    assert!(!session_set.contains("Secure"), "loopback: {session_set}");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("nmp_portal_oidc=;") && c.contains("Max-Age=0")),
        "the sign-in in progress is over: {cookies:?}"
    );
    let html = answer.text().await.unwrap();
    assert!(html.contains(r#"href="/portal""#), "{html}");

    // The token endpoint was asked with the verifier, nmp's client and its secret.
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["grant_type"], "authorization_code");
    assert_eq!(requests[0]["code_verifier"].len(), 43);
    assert!(!requests[0].contains_key("client_secret"), "sent in Basic");

    let session = cookie_pair(&cookies, "nmp_portal").unwrap();
    let (status, html) = page_of(&app, &session, "/portal").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Signed in as ada"), "{html}");
    let (status, _) = page_of(&app, &session, "/portal/accounts").await;
    assert_eq!(status, 200);
    // Without the session, the portal sends the browser to sign in.
    let (status, _) = page_of(&app, "", "/portal").await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn off_loopback_both_cookies_are_secure() {
    let (_provider, app) = provider_and_portal(Approval::of("ada", &[Role::Read])).await;
    let host = Some("portal.example");
    let begun = begin(&app, host).await;
    assert!(
        begun.set_cookie.contains("; Secure"),
        "{}",
        begun.set_cookie
    );
    assert_eq!(
        query_value(&begun.authorize, "redirect_uri").as_deref(),
        Some("http://portal.example/portal/sign-in/oidc/callback")
    );
    let callback = authorize(&begun.authorize).await;
    let answer = come_back(&app, &callback, Some(&begun.flow), host).await;
    assert_eq!(answer.status(), 200);
    let cookies = set_cookies(&answer);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("nmp_portal="))
        .expect("a session");
    for flag in ["HttpOnly", "SameSite=Strict", "; Secure"] {
        assert!(session.contains(flag), "{session}");
    }
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_by_the_provider_and_no_session_is_opened() {
    let (provider, app) =
        provider_and_portal(Approval::of("ada", &[Role::Read, Role::Write])).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    // Another verifier in the cookie than the one whose challenge the provider holds.
    let mut parts: Vec<String> = begun.flow.split('.').map(str::to_string).collect();
    assert_eq!(parts.len(), 4, "{}", begun.flow);
    let forged = "A".repeat(43);
    parts[2] = forged.clone();
    let answer = come_back(&app, &callback, Some(&parts.join(".")), None).await;
    assert_refused(
        answer,
        400,
        "refused to finish this sign-in (invalid_grant)",
    )
    .await;
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["code_verifier"], forged);
}

#[tokio::test]
async fn a_code_used_once_is_refused_the_second_time() {
    let (_provider, app) =
        provider_and_portal(Approval::of("ada", &[Role::Read, Role::Write])).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let first = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_eq!(first.status(), 200);
    let again = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_refused(again, 400, "may have been used already").await;
}

#[tokio::test]
async fn an_answer_whose_state_was_changed_is_refused_before_the_code_is_used() {
    let (provider, app) =
        provider_and_portal(Approval::of("ada", &[Role::Read, Role::Write])).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let state = query_value(&callback, "state").unwrap();
    let other = if state.starts_with('x') { "y" } else { "x" };
    let tampered = callback.replace(&state, &format!("{other}{}", &state[1..]));
    assert_ne!(tampered, callback);
    let answer = come_back(&app, &tampered, Some(&begun.flow), None).await;
    assert_refused(
        answer,
        400,
        "does not belong to the sign-in this browser started",
    )
    .await;
    assert!(provider.token_requests().is_empty(), "the code is not used");

    // An answer for a sign-in another browser started (no flow cookie here).
    let answer = come_back(&app, &callback, None, None).await;
    assert_refused(answer, 400, "did not start in this browser").await;
    assert!(provider.token_requests().is_empty());
}

#[tokio::test]
async fn an_id_token_for_another_nonce_is_refused() {
    let mut approval = Approval::of("ada", &[Role::Admin]);
    approval.nonce = Some("a-nonce-of-another-sign-in".to_string());
    let (provider, app) = provider_and_portal(approval).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let answer = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_refused(answer, 400, "not for this sign-in").await;
    assert_eq!(provider.token_requests().len(), 1, "the code was exchanged");
}

#[tokio::test]
async fn a_sign_in_left_too_long_at_the_provider_is_refused() {
    let (provider, app) =
        provider_and_portal(Approval::of("ada", &[Role::Read, Role::Write])).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let mut parts: Vec<String> = begun.flow.split('.').map(str::to_string).collect();
    let started: u64 = parts[3].parse().unwrap();
    parts[3] = (started - 11 * 60).to_string();
    let answer = come_back(&app, &callback, Some(&parts.join(".")), None).await;
    assert_refused(answer, 400, "took too long").await;
    assert!(provider.token_requests().is_empty());
}

#[tokio::test]
async fn the_providers_refusal_is_said_in_its_own_words() {
    let mut approval = Approval::of("ada", &[Role::Read, Role::Write]);
    approval.error = Some((
        "access_denied".to_string(),
        "The user declined to sign in.".to_string(),
    ));
    let (_provider, app) = provider_and_portal(approval).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let answer = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_refused(
        answer,
        400,
        "The identity provider did not sign you in: The user declined to sign in.",
    )
    .await;
}

#[tokio::test]
async fn a_user_without_a_role_in_nmp_is_told_so_and_not_signed_in() {
    let (provider, app) = provider_and_portal(Approval::of("bob", &[])).await;
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let answer = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_refused(
        answer,
        403,
        "You signed in as bob, but you have no role in nmp",
    )
    .await;

    // The same user with a role is let in.
    provider.approve(Approval::of("bob", &[Role::Read]));
    let begun = begin(&app, None).await;
    let callback = authorize(&begun.authorize).await;
    let answer = come_back(&app, &callback, Some(&begun.flow), None).await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn an_unreachable_provider_is_said_so_on_the_sign_in_page() {
    // A provider that has stopped: its port answers nothing.
    let provider = OidcProvider::start(CLIENT_ID, None, Approval::of("ada", &[Role::Read])).await;
    let oidc = provider.client();
    drop(provider);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let app = tests::spawn_app_with(move |state| {
        state.serve_portal = true;
        state.oidc = Some(oidc);
    })
    .await;
    let answer = client()
        .get(format!("{}/portal/sign-in/oidc", app.address))
        .send()
        .await
        .unwrap();
    assert_refused(answer, 503, "cannot be reached just now").await;
}

#[tokio::test]
async fn staff_sign_in_through_the_identity_provider_in_a_real_browser() {
    // The provider on `localhost`, nmp on 127.0.0.1: another site, as Entra ID is, so the
    // browser comes back cross-site and the SameSite rules of both cookies are exercised.
    let provider = OidcProvider::start_at(
        "localhost",
        CLIENT_ID,
        Some(CLIENT_SECRET),
        Approval::of("ada", &[Role::Read, Role::Write]),
    )
    .await;
    let app = portal_of(&provider).await;
    let browser = Browser::start().await;
    browser.open(&app, "/portal/sign-in").await;
    assert_eq!(
        browser.text(r#"a[href="/portal/sign-in/oidc"]"#).await,
        "Sign in with Test Identity"
    );
    browser.check_page("sign-in-with-provider").await;
    browser.click(r#"a[href="/portal/sign-in/oidc"]"#).await;
    browser
        .wait_for_text(
            "body",
            "Signed in as ada",
            std::time::Duration::from_secs(15),
        )
        .await;
    assert!(
        browser.url().await.ends_with("/portal"),
        "{}",
        browser.url().await
    );
    assert_eq!(provider.token_requests().len(), 1);

    // Refused by the provider: back on the sign-in page, the reason beside its button.
    provider.approve(Approval {
        error: Some((
            "access_denied".to_string(),
            "The user declined to sign in.".to_string(),
        )),
        ..Approval::of("ada", &[Role::Read, Role::Write])
    });
    browser.open(&app, "/portal/sign-in").await;
    browser.click(r#"a[href="/portal/sign-in/oidc"]"#).await;
    let said = browser
        .wait_for_text(
            "#provider-error",
            "declined",
            std::time::Duration::from_secs(15),
        )
        .await;
    assert!(said.contains("did not sign you in"), "{said}");
    browser.check_page("sign-in-with-provider-refused").await;
    browser.close().await;
}
