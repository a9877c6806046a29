//! The portal's first pages over real HTTP: sign-in (a pasted token, or the development
//! sign-in), the session cookie's flags, the security headers, the home page's figures, and a
//! sign-out that needs the page's form token.

use auth::Role;
use std::time::Duration;
use tests::portal::{client, form_token, page_of, portal_app, post_form, session_of, signed_in};
use tests::projections::{ReadSide, wait_until_projected};
use tests::saga::{SagaSide, accepted_number_body};
use tests::{account_body, number_body, spawn_app_with};

#[tokio::test]
async fn without_a_session_the_portal_asks_to_sign_in_with_its_security_headers() {
    let app = portal_app().await;
    let home = client()
        .get(format!("{}/portal", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/portal/sign-in");
    let page = client()
        .get(format!("{}/portal/sign-in", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("html");
    assert!(
        html.contains(r#"<label for="token">"#),
        "every input has a label"
    );
    assert!(
        !html.contains("<script>")
            && html.contains(r#"<script src="/portal/static/portal.js" defer></script>"#),
        "no inline script, only the portal's own file"
    );
    assert!(!html.contains("style="), "no inline style");
    assert!(
        !html.contains("Development sign-in"),
        "offered only with the development secret"
    );
}

#[tokio::test]
async fn a_pasted_token_signs_in_to_a_home_page_with_the_figures() {
    let app = portal_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let bad = client()
        .post(format!("{}/portal/sign-in", app.address))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .expect("sent");
    assert_eq!(bad.status(), 400);
    assert!(bad.headers().get("set-cookie").is_none());
    let said = bad.text().await.unwrap();
    assert!(
        said.contains(r#"id="token-error" role="alert""#),
        "the error is next to the field"
    );

    let signed_in = client()
        .post(format!("{}/portal/sign-in", app.address))
        .form(&[("token", app.token(&[Role::ReadUser]).as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(signed_in.status(), 303);
    let cookie = session_of(&signed_in);
    assert!(cookie.starts_with("nmp_portal="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/portal"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not on loopback: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();

    let home = client()
        .get(format!("{}/portal", app.address))
        .header("cookie", &session)
        .send()
        .await
        .expect("sent");
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    for text in [
        "What needs attention",
        "Consents waiting for an answer",
        "Provisioning failures",
        "Numbers by sync state",
        "Recent activity",
        "Signed in as test-user",
    ] {
        assert!(html.contains(text), "{text}");
    }

    // Signing out needs the page's form token.
    let forged = client()
        .post(format!("{}/portal/sign-out", app.address))
        .header("cookie", &session)
        .form(&[("csrf", "guessed")])
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form token")
        .to_string();
    let out = client()
        .post(format!("{}/portal/sign-out", app.address))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(out.status(), 303);
    assert!(session_of(&out).contains("Max-Age=0"));
}

#[tokio::test]
async fn the_development_sign_in_is_offered_only_with_the_development_secret() {
    let app = portal_app().await;
    let refused = client()
        .post(format!("{}/portal/sign-in/development", app.address))
        .form(&[("role", "ProvisioningAPI.AdminUser")])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 404);

    // nmp on loopback with its development secret offers it (here the test's secret plays it).
    let app = spawn_app_with(|state| {
        state.serve_portal = true;
    })
    .await;
    let secret = app.secret.clone();
    let mut app = app;
    app.state.development_secret = Some(secret);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(api::serve(
        listener,
        app.state.clone(),
        std::future::pending(),
    ));
    let page = client()
        .get(format!("{address}/portal/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Development sign-in"));
    assert!(page.contains(r#"<label for="role">"#));
    let signed_in = client()
        .post(format!("{address}/portal/sign-in/development"))
        .form(&[("role", "ProvisioningAPI.ReadUser")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = session_of(&signed_in);
    assert!(session.contains("Max-Age=28800"), "{session}");
    let home = client()
        .get(format!("{address}/portal"))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("portal-developer"));

    // "Read and write" is both grants: the session reads the pages and may write.
    let writer = client()
        .post(format!("{address}/portal/sign-in/development"))
        .form(&[("role", "ProvisioningAPI.WriteUser")])
        .send()
        .await
        .unwrap();
    let cookie = session_of(&writer).split(';').next().unwrap().to_string();
    let page = client()
        .get(format!("{address}/portal/new-account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "a writer who reads gets the form");
    // A role that is not offered is refused.
    let machine = client()
        .post(format!("{address}/portal/sign-in/development"))
        .form(&[("role", "ProvisioningAPI.Admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(machine.status(), 400);
}

#[tokio::test]
async fn a_session_whose_roles_cannot_read_is_told_so_on_every_page() {
    let app = portal_app().await;
    let session = signed_in(&app, &[Role::WriteUser]).await;
    for path in [
        "/portal",
        "/portal/accounts",
        "/portal/numbers",
        "/portal/live",
    ] {
        let (status, html) = page_of(&app, &session, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("do not include reading"), "{path}: {html}");
    }
    // Signing out still works, and the sign-in page is open to all.
    let (status, _) = page_of(&app, &session, "/portal/sign-in").await;
    assert_eq!(status, 200);
    let reader = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (status, _) = page_of(&app, &reader, "/portal/accounts").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_portal_is_served_only_by_the_portal_component() {
    let app = tests::spawn_app().await;
    let answer = client()
        .get(format!("{}/portal/sign-in", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 404);
}

#[tokio::test]
async fn the_accounts_page_lists_accounts_with_their_numbers_fifty_to_a_page() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    let (status, _) = page_of(&app, "nmp_portal=none", "/portal/accounts").await;
    assert_eq!(status, 303, "without a session the page asks to sign in");

    for i in 0..52 {
        let name = format!("acct-{i:02}");
        let put = app.put_account(&name, &account_body(&name)).await;
        assert!(put.status < 300, "{put:?}");
    }
    for number in ["+15105850321", "+15105850322"] {
        let put = app
            .put_number("acct-00", number, &number_body("acct-00", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let session = signed_in(&app, &[Role::ReadUser]).await;
    let (status, first) = page_of(&app, &session, "/portal/accounts").await;
    assert_eq!(status, 200);
    assert!(first.contains("52 accounts in all"), "{first}");
    assert!(first.contains(r#"<a href="/portal/accounts">Accounts</a>"#));
    let rows = first.matches(r#"<a href="/portal/accounts/acct-"#).count();
    assert_eq!(rows, 50, "fifty to a page");
    assert!(first.contains(">acct-49</a>") && !first.contains(">acct-50</a>"));
    // acct-00 holds two Operator Connect numbers; the others none.
    assert!(
        first.contains("teamsOperatorConnect 2"),
        "the counts of acct-00's numbers: {first}"
    );
    assert_eq!(first.matches("teamsOperatorConnect 2").count(), 1);
    assert!(
        first.contains(r#"data-live="account:acct-00" aria-live="polite">pending<"#)
            || first.contains(r#"data-live="account:acct-00" aria-live="polite">synced<"#),
        "each account's sync state, live: {first}"
    );

    let next = first
        .split(r#"<a href=""#)
        .find_map(|rest| {
            let href = rest.split('"').next()?;
            href.starts_with("/portal/accounts?after=")
                .then(|| href.to_string())
        })
        .expect("a link to the next page");
    assert_eq!(next, "/portal/accounts?after=acct-49");
    let (status, second) = page_of(&app, &session, &next).await;
    assert_eq!(status, 200);
    assert_eq!(
        second.matches(r#"<a href="/portal/accounts/acct-"#).count(),
        2
    );
    assert!(second.contains(">acct-50</a>") && second.contains(">acct-51</a>"));
    assert!(
        !second.contains("Next page"),
        "the last page links no further"
    );

    // A key past every account answers an empty page, not an error.
    let (status, past) = page_of(&app, &session, "/portal/accounts?after=zzz%22%3E%3C").await;
    assert_eq!(status, 200);
    assert!(past.contains("No accounts follow this page"), "{past}");
    assert!(
        !past.contains("zzz\"><"),
        "the key is never echoed unescaped"
    );
}

const TENANT: &str = "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a";

#[tokio::test]
async fn staff_answer_a_consent_and_errors_stand_next_to_their_field() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let path = format!("/portal/consents/{TENANT}");

    // The list shows the consent waiting, linked to its page.
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (status, list) = page_of(&app, &writer, "/portal/consents").await;
    assert_eq!(status, 200);
    assert!(list.contains("1 consent in all"), "{list}");
    assert!(list.contains(&format!(r#"<a href="{path}">{TENANT}</a>"#)));
    assert!(list.contains("<strong>Waiting for an answer</strong>"));
    assert!(list.contains("<td>Contoso</td>"));

    let (status, page) = page_of(&app, &writer, &path).await;
    assert_eq!(status, 200);
    assert!(page.contains("Consent from Contoso"));
    assert!(page.contains(r#"<label for="status">"#) && page.contains(r#"<label for="comment">"#));
    let csrf = form_token(&page);

    // Declining without a reason is refused, the error next to the comment, and nothing is
    // recorded.
    let (status, refused) = post_form(
        &app,
        &writer,
        &path,
        &[
            ("csrf", &csrf),
            ("status", "ConsentDeclined"),
            ("comment", ""),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains(r#"id="comment-error" role="alert""#),
        "{refused}"
    );
    assert!(
        refused.contains(r#"<option value="ConsentDeclined" selected>"#),
        "what was chosen stays chosen"
    );
    let stored = app.get_consent(TENANT).await;
    assert!(stored.body["customerRelationship"].is_null(), "{stored:?}");

    // A status that is not one of the five is refused next to the status.
    let (status, refused) = post_form(
        &app,
        &writer,
        &path,
        &[("csrf", &csrf), ("status", "Married"), ("comment", "")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="status-error" role="alert""#),
        "{refused}"
    );

    // A forged form (no page token) is refused.
    let (status, _) = post_form(
        &app,
        &writer,
        &path,
        &[("csrf", "guessed"), ("status", "ConsentAcknowledged")],
    )
    .await;
    assert_eq!(status, 403);

    // A reader sees the consent but no form, and cannot post one.
    let reader = signed_in(&app, &[Role::ReadUser]).await;
    let (_, read_only) = page_of(&app, &reader, &path).await;
    assert!(!read_only.contains(r#"<label for="status">"#));
    assert!(read_only.contains("answering them needs a role that may write"));
    let reader_csrf = form_token(&read_only);
    let (status, _) = post_form(
        &app,
        &reader,
        &path,
        &[("csrf", &reader_csrf), ("status", "ConsentAcknowledged")],
    )
    .await;
    assert_eq!(status, 403);
    let stored = app.get_consent(TENANT).await;
    assert!(stored.body["customerRelationship"].is_null(), "{stored:?}");

    // The writer acknowledges it: recorded, and the page says so.
    let (status, location) = post_form(
        &app,
        &writer,
        &path,
        &[
            ("csrf", &csrf),
            ("status", "ConsentAcknowledged"),
            ("comment", "Called back"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, format!("{path}?saved=1"));
    let stored = app.get_consent(TENANT).await;
    assert_eq!(
        stored.body["customerRelationship"]["status"],
        "ConsentAcknowledged"
    );
    assert_eq!(
        stored.body["customerRelationship"]["comment"],
        "Called back"
    );
    let (_, saved) = page_of(&app, &writer, &location).await;
    assert!(saved.contains("Your answer is recorded"));
    assert!(saved.contains(r#"<option value="ConsentAcknowledged" selected>"#));
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let (_, list) = page_of(&app, &writer, "/portal/consents").await;
    assert!(list.contains("<td>ConsentAcknowledged</td>"), "{list}");

    // A tenant id that is not a GUID, or no consent, is a clear 404.
    let (status, _) = page_of(&app, &writer, "/portal/consents/not-a-guid").await;
    assert_eq!(status, 404);
    let (status, _) = page_of(
        &app,
        &writer,
        "/portal/consents/00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_accounts_page_shows_its_settings_and_its_numbers() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    for number in ["+15105850321", "+15105850322"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let session = signed_in(&app, &[Role::ReadUser]).await;

    let (_, list) = page_of(&app, &session, "/portal/accounts").await;
    assert!(list.contains(r#"<a href="/portal/accounts/contoso">contoso</a>"#));
    let (status, page) = page_of(&app, &session, "/portal/accounts/contoso").await;
    assert_eq!(status, 200);
    assert!(page.contains("Account contoso"));
    assert!(page.contains("<dt>Numbers</dt><dd>2</dd>"), "{page}");
    for number in ["+15105850321", "+15105850322"] {
        assert!(page.contains(&format!("<td>{number}</td>")), "{number}");
    }
    assert!(page.contains("<td>teamsOperatorConnect</td>"));

    let (status, _) = page_of(&app, &session, "/portal/accounts/nobody").await;
    assert_eq!(status, 404);
    let (status, _) = page_of(&app, &session, "/portal/accounts/%20bad%20name%3C").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn staff_see_why_a_number_failed_and_retry_it() {
    let app = portal_app().await;
    let read = ReadSide::start(&app).await;
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    let number = "+15105850041";
    // An account without a Teams tenant: its number fails in the saga.
    let body = tests::account_body_without_tenant("contoso");
    assert_eq!(app.put_account("contoso", &body).await.status, 201);
    app.put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    app.wait_for_number_status("contoso", number, "failed", Duration::from_secs(20))
        .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let reader = signed_in(&app, &[Role::ReadUser]).await;
    let (status, seen) = page_of(&app, &reader, "/portal/failures").await;
    assert_eq!(status, 200);
    assert!(seen.contains(&format!("number {number}")), "{seen}");
    assert!(seen.contains("TeamsTenantIdRequired"), "{seen}");
    assert!(seen.contains(r#"<a href="/portal/accounts/contoso">contoso</a>"#));
    assert!(!seen.contains(">Retry</button>"), "a reader has no retry");
    let (_, account) = page_of(&app, &reader, "/portal/accounts/contoso").await;
    assert!(
        account.contains("TeamsTenantIdRequired"),
        "the account's page says why its number failed: {account}"
    );
    let csrf = form_token(&seen);
    let (status, _) = post_form(
        &app,
        &reader,
        "/portal/failures/retry",
        &[
            ("csrf", &csrf),
            ("kind", "number"),
            ("id", number),
            ("account", "contoso"),
        ],
    )
    .await;
    assert_eq!(status, 403, "a reader cannot retry");

    // The tenant is set, then a writer retries from the page and the number goes through.
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        200
    );
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (_, seen) = page_of(&app, &writer, "/portal/failures").await;
    assert!(
        seen.contains(&format!(r#"aria-label="Retry number {number}""#)),
        "{seen}"
    );
    let csrf = form_token(&seen);
    let (status, _) = post_form(
        &app,
        &writer,
        "/portal/failures/retry",
        &[("csrf", &csrf), ("kind", "shoe"), ("id", number)],
    )
    .await;
    assert_eq!(status, 400, "an unknown kind is refused");
    let (status, location) = post_form(
        &app,
        &writer,
        "/portal/failures/retry",
        &[
            ("csrf", &csrf),
            ("kind", "number"),
            ("id", number),
            ("account", "contoso"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/failures?retried=1");
    app.wait_for_number_status("contoso", number, "synced", Duration::from_secs(20))
        .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let (_, after) = page_of(&app, &writer, &location).await;
    assert!(after.contains("Pushed again"));
    assert!(after.contains("Nothing has failed"), "{after}");
}

/// The number on the home page's "Numbers" card.
fn numbers_figure(home: &str) -> u64 {
    let card = &home[home.find(r#"id="numbers""#).expect("the numbers card")..];
    card.split(r#"class="figure">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse().ok())
        .expect("a figure")
}

#[tokio::test]
async fn the_home_page_keeps_its_count_of_numbers_only_while_nothing_changes() {
    let source = nmp::feed::channel();
    let app = {
        let source = source.clone();
        spawn_app_with(move |state| {
            state.feed = Some(source);
            state.serve_portal = true;
        })
        .await
    };
    let read = ReadSide::start(&app).await;
    let feed = crate::dashboard::follow_the_stream(&read, source).await;
    let session = signed_in(&app, &[Role::ReadUser]).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let (_, home) = page_of(&app, &session, "/portal").await;
    assert_eq!(numbers_figure(&home), 0);

    // Numbers added: the page counts again within a couple of seconds of their events.
    for number in ["+15105850321", "+15105850322", "+15105850323"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, home) = page_of(&app, &session, "/portal").await;
        if numbers_figure(&home) == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the home page still counts {} numbers",
            numbers_figure(&home)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ten quiet seconds later a count stands until the next event: a row changed behind
    // nmp's back (no event) is not seen, which shows the page does not count on every visit.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (_, home) = page_of(&app, &session, "/portal").await;
    assert_eq!(numbers_figure(&home), 3);
    sqlx::query("UPDATE read_numbers SET deleted = true WHERE telephone_number = '+15105850323'")
        .execute(&app.pool)
        .await
        .expect("a row changed without an event");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, home) = page_of(&app, &session, "/portal").await;
    assert_eq!(numbers_figure(&home), 3, "the kept count");

    // The next events make the page count again: 321, 322, 324 and 325 are live (323 was
    // marked deleted behind nmp's back).
    for number in ["+15105850324", "+15105850325"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, home) = page_of(&app, &session, "/portal").await;
        if numbers_figure(&home) == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the home page still counts {} numbers",
            numbers_figure(&home)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    feed.abort();
}
