//! The portal's search, history and live sync states, over real HTTP with real Postgres and
//! NATS (JetStream), the read side, and the provisioning saga against the backend simulator:
//! the search box finds numbers, accounts and tenants (and says when nothing matches); a
//! resource's history lists who changed it, when and under which ticket, and shows it as it
//! was at a chosen time; `/portal/live` carries a number's change from pending to synced, is
//! refused without a session, and a reconnection with `Last-Event-ID` gets what it missed.

use crate::dashboard::SseReader;
use std::time::{Duration, Instant};

use auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestApp;
use tests::portal::{client, page_of, portal_app, signed_in};
use tests::projections::{ReadSide, wait_until_projected};
use tests::saga::{SagaSide, accepted_number_body};
use tests::{TENANT, account_body, account_body_without_tenant, number_body, spawn_app_with};

const WAIT: Duration = Duration::from_secs(30);

/// GETs a portal path with the session: its status, where it redirects, and its HTML.
async fn get(app: &TestApp, cookie: &str, path: &str) -> (u16, Option<String>, String) {
    let answer = client()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .expect("sent");
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("location").to_string());
    (status, location, answer.text().await.expect("html"))
}

/// A PUT of the API with the operator's ticket.
async fn put_with_ticket(app: &TestApp, path: &str, body: &Value, ticket: &str) -> u16 {
    app.request(Method::PUT, path)
        .header("x-nmp-ticket-id", ticket)
        .json(body)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

// ---- search ------------------------------------------------------------------------------

#[tokio::test]
async fn search_finds_numbers_accounts_and_tenants_and_says_when_nothing_is_found() {
    let app = portal_app().await;
    let read = ReadSide::start(&app).await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put_account("Fabrikam-UK", &account_body_without_tenant("Fabrikam-UK"))
            .await
            .status,
        201
    );
    for number in ["+15105850001", "+15105850002", "+442071234567"] {
        let added = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert_eq!(added.status, 201, "{added:?}");
    }
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;
    let cookie = signed_in(&app, &[Role::ReadUser]).await;

    // Every page has the search box in its header; home has its own too.
    let (status, home) = page_of(&app, &cookie, "/portal").await;
    assert_eq!(status, 200);
    assert_eq!(
        home.matches(r#"action="/portal/search""#).count(),
        2,
        "{home}"
    );
    assert!(home.contains(r#"<label for="header-search""#), "{home}");
    let (_, accounts) = page_of(&app, &cookie, "/portal/accounts").await;
    assert!(accounts.contains(r#"action="/portal/search""#));

    // The beginning of a number: every number that starts with it, with live sync states.
    let (status, _, found) = get(&app, &cookie, "/portal/search?q=%2B1510585").await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.contains("+15105850001") && found.contains("+15105850002"),
        "{found}"
    );
    assert!(!found.contains("+442071234567"), "{found}");
    assert!(
        found.contains(r#"data-live="number:+15105850001""#),
        "{found}"
    );
    assert!(
        found.contains(r#"href="/portal/history/number/%2B15105850001""#),
        "{found}"
    );

    // A whole number, and nothing else: its page.
    let (status, location, _) = get(&app, &cookie, "/portal/search?q=%2B15105850001").await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("/portal/accounts/contoso/numbers/%2B15105850001")
    );

    // Digits as people write them: no +, spaces, brackets and dashes; 00 for +.
    let (_, _, found) = get(&app, &cookie, "/portal/search?q=1+(510)+585-000").await;
    assert!(
        found.contains("+15105850002") && found.contains("+15105850001"),
        "{found}"
    );
    let (status, location, _) = get(&app, &cookie, "/portal/search?q=1+(510)+585-0002").await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("/portal/accounts/contoso/numbers/%2B15105850002")
    );
    let (_, _, found) = get(&app, &cookie, "/portal/search?q=0044+20").await;
    assert!(found.contains("+442071234567"), "{found}");
    assert!(!found.contains("+1510585"), "{found}");

    // Part of an account's name, whatever its case: a results page.
    let (status, location, found) = get(&app, &cookie, "/portal/search?q=fabrik").await;
    assert_eq!((status, location), (200, None), "{found}");
    assert!(
        found.contains(r#"href="/portal/accounts/Fabrikam-UK""#),
        "{found}"
    );
    assert!(
        found.contains(r#"data-live="account:Fabrikam-UK""#),
        "{found}"
    );
    assert!(
        !found.contains(r#"href="/portal/accounts/contoso""#),
        "{found}"
    );
    // An account's exact name, and nothing else: its page.
    let (status, location, _) = get(&app, &cookie, "/portal/search?q=Fabrikam-UK").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/portal/accounts/Fabrikam-UK"));

    // A tenant id: its consent and its account, both listed.
    let (status, _, found) = get(&app, &cookie, &format!("/portal/search?q={TENANT}")).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.contains(&format!(r#"href="/portal/consents/{TENANT}""#)),
        "{found}"
    );
    assert!(
        found.contains(r#"href="/portal/accounts/contoso""#),
        "{found}"
    );
    assert!(
        found.contains(&format!(r#"data-live="consent:{TENANT}""#)),
        "{found}"
    );
    // Typed in capitals, it is the same tenant.
    let (_, _, found) = get(
        &app,
        &cookie,
        &format!("/portal/search?q={}", TENANT.to_uppercase()),
    )
    .await;
    assert!(
        found.contains(&format!(r#"href="/portal/consents/{TENANT}""#)),
        "{found}"
    );

    // Nothing found is said in words.
    for nothing in [
        "%2B4930",
        "nobody-here",
        "0d0d0d0d-0000-4000-8000-000000000000",
    ] {
        let (status, _, found) = get(&app, &cookie, &format!("/portal/search?q={nothing}")).await;
        assert_eq!(status, 200, "{found}");
        assert!(found.contains("Nothing matches"), "{nothing}: {found}");
        assert!(!found.contains("<table"), "{nothing}: {found}");
    }
    // Nothing typed: how to search.
    let (_, _, empty) = get(&app, &cookie, "/portal/search?q=").await;
    assert!(empty.contains("Type a telephone number"), "{empty}");

    // Without a session: sign in first; without the Read role: refused.
    let answer = client()
        .get(format!("{}/portal/search?q=contoso", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 303);
    let writer = signed_in(&app, &[Role::WriteUser]).await;
    let (status, _, _) = get(&app, &writer, "/portal/search?q=contoso").await;
    assert_eq!(status, 403);
    drop(read);
}

// ---- history -----------------------------------------------------------------------------

/// The part of a history page showing the resource as it was.
fn as_of_part(html: &str) -> &str {
    let start = html
        .find(r#"class="as-of""#)
        .unwrap_or_else(|| panic!("no as-of part: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</div>").expect("its end")]
}

#[tokio::test]
async fn history_lists_who_when_and_ticket_and_shows_the_resource_as_it_was() {
    let app = portal_app().await;
    // Home's recent activity is the read side's audit log.
    let read = ReadSide::start(&app).await;
    let cookie = signed_in(&app, &[Role::ReadUser]).await;

    // An account without a Teams tenant, then (later) with one.
    assert_eq!(
        put_with_ticket(
            &app,
            "/accounts/contoso",
            &account_body_without_tenant("contoso"),
            "CHG-1001"
        )
        .await,
        201
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        put_with_ticket(
            &app,
            "/accounts/contoso",
            &account_body("contoso"),
            "CHG-1002"
        )
        .await,
        200
    );

    let (status, _, html) = get(&app, &cookie, "/portal/history/account/contoso").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("History of account contoso"), "{html}");
    assert!(html.contains("Account created"), "{html}");
    assert!(html.contains("test-user"), "who: {html}");
    assert!(
        html.contains("ProvisioningAPI.Admin"),
        "with which role: {html}"
    );
    assert!(
        html.contains("CHG-1001") && html.contains("CHG-1002"),
        "tickets: {html}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(html.contains(&today), "when: {html}");
    assert!(html.contains(r#"data-live="account:contoso""#), "{html}");
    assert!(html.contains(r#"type="datetime-local""#), "{html}");
    assert!(
        !html.contains(r#"class="as-of""#),
        "nothing asked yet: {html}"
    );

    // As it was between the two changes (as a datetime-local input sends it, in UTC): no
    // tenant yet. Now: the tenant.
    let at = between.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    let (status, _, then) = get(
        &app,
        &cookie,
        &format!("/portal/history/account/contoso?at={at}"),
    )
    .await;
    assert_eq!(status, 200, "{then}");
    let part = as_of_part(&then);
    assert!(part.contains("<dt>Name</dt><dd>contoso</dd>"), "{part}");
    assert!(!part.contains(TENANT), "the tenant came later: {part}");
    assert!(then.contains("version 1"), "{then}");
    // A whole second, as a datetime-local input with step 1 sends it: the next one.
    let later = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (_, _, now) = get(
        &app,
        &cookie,
        &format!("/portal/history/account/contoso?at={later}"),
    )
    .await;
    let part = as_of_part(&now);
    assert!(part.contains(TENANT), "{part}");
    assert!(
        part.contains("Teams tenant id"),
        "fields named in words: {part}"
    );
    assert!(now.contains("version 2"), "{now}");
    // Before it was created, it did not exist; a time that is not one is said so.
    let (_, _, before) = get(
        &app,
        &cookie,
        "/portal/history/account/contoso?at=2020-01-01T00:00",
    )
    .await;
    assert!(before.contains("did not exist"), "{before}");
    let (status, _, bad) = get(
        &app,
        &cookie,
        "/portal/history/account/contoso?at=yesterday",
    )
    .await;
    assert_eq!(status, 200);
    assert!(bad.contains(r#"id="at-error" role="alert""#), "{bad}");
    assert!(bad.contains(r#"aria-describedby="at-error""#), "{bad}");

    // A number's history, with its ticket.
    let number = "+15105850001";
    assert_eq!(
        put_with_ticket(
            &app,
            &tests::number_path("contoso", number),
            &number_body("contoso", number),
            "CHG-2001"
        )
        .await,
        201
    );
    let (status, _, html) = get(&app, &cookie, "/portal/history/number/%2B15105850001").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("History of number +15105850001"), "{html}");
    assert!(html.contains("Number added"), "{html}");
    assert!(
        html.contains("CHG-2001") && html.contains("test-user"),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/portal/accounts/contoso/numbers/%2B15105850001""#),
        "its page: {html}"
    );
    assert!(
        html.contains(r#"data-live="number:+15105850001""#),
        "{html}"
    );
    let at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    let (_, _, html) = get(
        &app,
        &cookie,
        &format!("/portal/history/number/%2B15105850001?at={at}"),
    )
    .await;
    let part = as_of_part(&html);
    assert!(
        part.contains("+15105850001") && part.contains("contoso-commsgw"),
        "{part}"
    );

    // A consent's history: recorded by the backend sync, then the operator's answer.
    app.record_consent(TENANT).await;
    let answered = app
        .request(
            Method::PATCH,
            &format!("/teamsRequestsForInformation/{TENANT}"),
        )
        .header("content-type", "application/merge-patch+json")
        .header("x-nmp-ticket-id", "CHG-3001")
        .body(json!({"customerRelationship": {"status": "ConsentAcknowledged"}}).to_string())
        .send()
        .await
        .expect("sent");
    assert!(answered.status().is_success(), "{answered:?}");
    let (status, _, html) = get(&app, &cookie, &format!("/portal/history/consent/{TENANT}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("test-backend-sync"), "{html}");
    assert!(html.contains("CHG-3001"), "{html}");
    assert!(html.contains("Consent acknowledged"), "{html}");

    // Recent activity on home links each change to its history.
    wait_until_projected(&app, WAIT).await;
    let (_, home) = page_of(&app, &cookie, "/portal").await;
    assert!(
        home.contains(&format!(r#"href="/portal/history/consent/{TENANT}""#)),
        "{home}"
    );
    assert!(
        home.contains(r#"href="/portal/history/number/%2B15105850001""#),
        "{home}"
    );

    // Nothing recorded, or not a resource: not found, in words.
    let (status, _, html) = get(&app, &cookie, "/portal/history/account/nobody").await;
    assert_eq!(status, 404);
    assert!(html.contains("Nothing is recorded"), "{html}");
    let (status, _, _) = get(&app, &cookie, "/portal/history/order/1").await;
    assert_eq!(status, 404);
    let writer = signed_in(&app, &[Role::WriteUser]).await;
    let (status, _, _) = get(&app, &writer, "/portal/history/account/contoso").await;
    assert_eq!(status, 403);
    drop(read);
}

// ---- live --------------------------------------------------------------------------------

impl SseReader {
    /// The `sync` events until one for `key` says `status`; every one must be for `key`.
    async fn until_status(&mut self, key: &str, status: &str) -> Vec<(u64, Value)> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("{key} not {status} within {WAIT:?}: {seen:?}"));
            let Some(event) = self.next(left).await else {
                panic!("the feed ended or stayed quiet before {key} was {status}: {seen:?}");
            };
            if event.event.as_deref() != Some("sync") {
                assert_ne!(event.event.as_deref(), Some("lagged"), "{event:?}");
                continue;
            }
            let data: Value =
                serde_json::from_str(event.data.as_deref().expect("data")).expect("JSON");
            assert_eq!(data["key"], key, "only the keys asked for: {data}");
            let id: u64 = event
                .id
                .as_deref()
                .expect("an id")
                .parse()
                .expect("a stream position");
            let done = data["status"] == status;
            seen.push((id, data));
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn live_sync_states_go_from_pending_to_synced_or_failed_and_resume_after_a_reconnection() {
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
    // A reconnecting feed reads what it missed from the stream: served with the history.
    let settings = &read.stream.settings;
    let mut app = app;
    app.state.feed_history = Some(std::sync::Arc::new(nmp::feed::JetStreamHistory {
        jetstream: read.stream.jetstream.clone(),
        stream: settings.stream_name(),
        subjects: settings.subjects(),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(api::serve(
        listener,
        app.state.clone(),
        std::future::pending(),
    ));
    let cookie = signed_in(&app, &[Role::ReadUser]).await;
    let open = |keys: &str, cookie: Option<&str>, last: Option<&str>| {
        let mut request = client().get(format!(
            "{address}/portal/live?keys={}",
            keys.replace('+', "%2B")
        ));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };

    // Refused without a session, to another site's page, and to a role that may not read.
    let answer = open("number:+15105850001", None, None).await.expect("sent");
    assert_eq!(answer.status(), 401);
    let answer = client()
        .get(format!("{address}/portal/live"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 403);
    let writer = signed_in(&app, &[Role::WriteUser]).await;
    let answer = open("number:+15105850001", Some(&writer), None)
        .await
        .expect("sent");
    assert_eq!(answer.status(), 403);

    // A number, pending on its account's page (nothing provisions it yet).
    let number = "+15105850001";
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let added = app
        .put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    wait_until_projected(&app, WAIT).await;
    let (_, account_page) = page_of(&app, &cookie, "/portal/accounts/contoso").await;
    let cell = account_page
        .split(r#"data-live="number:+15105850001""#)
        .nth(1)
        .expect("the number's live sync state");
    assert!(
        cell[..cell.find("</span>").expect("its end")].contains("pending"),
        "{cell}"
    );

    let response = open(&format!("number:{number}"), Some(&cookie), None)
        .await
        .expect("the live feed");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut live = SseReader {
        response,
        buffer: String::new(),
    };
    let opening = live.next(Duration::from_secs(5)).await.expect("an opening");
    assert_eq!(opening.comments, ["nmp live"]);

    // The saga provisions it in the simulator: the page hears it is synced.
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    let seen = live
        .until_status(&format!("number:{number}"), "synced")
        .await;
    let (last_id, synced) = seen.last().expect("synced").clone();
    assert_eq!(synced["text"], "synced");
    assert_eq!(synced["errors"], json!([]));
    assert_eq!(synced["exists"], true);
    drop(live);

    // While the page is away, another number is added and synced.
    let other = "+15105850002";
    let added = app
        .put_number("contoso", other, &accepted_number_body("contoso", other))
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    saga.wait_until_settled(&app, WAIT).await;
    // Every event stored is on the stream.
    let stored = app.event_count().await as u64;
    read.stream.wait_for(stored, WAIT).await;
    let end = read.stream.last_sequence().await;
    assert!(end > last_id);

    // Reconnecting with Last-Event-ID: what was missed comes first, from the stream.
    let response = open(
        &format!("number:{other}"),
        Some(&cookie),
        Some(&last_id.to_string()),
    )
    .await
    .expect("the live feed again");
    assert_eq!(response.status(), 200);
    let mut again = SseReader {
        response,
        buffer: String::new(),
    };
    let missed = again
        .until_status(&format!("number:{other}"), "synced")
        .await;
    assert!(
        missed.iter().all(|(id, _)| *id > last_id && *id <= end),
        "only what was missed, from the stream: {missed:?} after {last_id} up to {end}"
    );
    assert!(
        missed.windows(2).all(|w| w[0].0 < w[1].0),
        "in order: {missed:?}"
    );
    // Without Last-Event-ID nothing is replayed: a page that just loaded shows the present.
    let response = open(&format!("number:{other}"), Some(&cookie), None)
        .await
        .expect("the live feed");
    let mut fresh = SseReader {
        response,
        buffer: String::new(),
    };
    assert_eq!(
        fresh
            .next(Duration::from_secs(5))
            .await
            .expect("opening")
            .comments,
        ["nmp live"]
    );
    let quiet = fresh.next(Duration::from_secs(2)).await;
    assert!(
        quiet.as_ref().is_none_or(|e| e.event.is_none()),
        "nothing replayed: {quiet:?}"
    );

    // A number the backend refuses: failed, with the backend's reason.
    let refused = "+15105850003";
    let response = open(&format!("number:{refused}"), Some(&cookie), None)
        .await
        .expect("the live feed");
    let mut live = SseReader {
        response,
        buffer: String::new(),
    };
    live.next(Duration::from_secs(5)).await.expect("an opening");
    let added = app
        .put_number(
            "contoso",
            refused,
            &tests::saga::rejected_number_body("contoso", refused),
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    let seen = live
        .until_status(&format!("number:{refused}"), "failed")
        .await;
    let (_, failed) = seen.last().expect("failed");
    assert_eq!(failed["text"], "failed");
    assert_eq!(
        failed["errors"][0]["code"], "CivicAddressRequired",
        "{failed}"
    );
    assert!(
        failed["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{failed}"
    );
    drop(saga);
    feed.abort();
}

// ---- failures ----------------------------------------------------------------------------

#[tokio::test]
async fn the_failures_empty_row_spans_every_column() {
    let app = portal_app().await;
    for (roles, columns) in [
        (vec![Role::ReadUser], 4),
        (vec![Role::ReadUser, Role::WriteUser], 5),
    ] {
        let cookie = signed_in(&app, &roles).await;
        let (status, html) = page_of(&app, &cookie, "/portal/failures").await;
        assert_eq!(status, 200);
        let table = &html[html.find("<table").expect("a table")..];
        let headers = table[..table.find("</thead>").expect("head")]
            .matches("<th ")
            .count();
        assert_eq!(headers, columns, "{roles:?}: {table}");
        assert!(
            table.contains(&format!(r#"<td colspan="{columns}">Nothing has failed"#)),
            "{roles:?}: {table}"
        );
    }
}

// ---- in a browser ------------------------------------------------------------------------

/// Waits until the page follows the live feed (its script says so on `<html>`).
async fn wait_until_following(browser: &tests::browser::Browser) {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = browser
            .execute(
                "return document.documentElement.getAttribute('data-live-state');",
                json!([]),
            )
            .await;
        if state == "open" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page does not follow the live feed: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn in_a_browser_search_and_history_pages_follow_the_live_feed_and_pass_the_checks() {
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
    let number = "+15105850001";
    assert_eq!(
        put_with_ticket(
            &app,
            "/accounts/contoso",
            &account_body("contoso"),
            "CHG-1001"
        )
        .await,
        201
    );
    assert_eq!(
        put_with_ticket(
            &app,
            &tests::number_path("contoso", number),
            &accepted_number_body("contoso", number),
            "CHG-1002"
        )
        .await,
        201
    );
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;

    let browser = tests::browser::Browser::start().await;
    browser.sign_in(&app, Role::ReadUser).await;

    // Home: the search box, typed into and sent with the keyboard's Enter.
    browser.check_page("search-home").await;
    browser.fill("#home-search", "1510585\n").await;
    browser
        .wait_for_text("main", "Numbers that start with it", WAIT)
        .await;
    assert!(browser.url().await.contains("/portal/search?q=1510585"));
    let cell = format!(r#"[data-live="number:{number}"]"#);
    assert_eq!(browser.text(&cell).await, "pending");
    browser.check_page("search-results").await;

    // Nothing found, in words, from the header's box.
    browser.fill("#header-search", "nobody-here\n").await;
    let said = browser.wait_for_text("main", "Nothing matches", WAIT).await;
    assert!(said.contains("nobody-here"), "{said}");
    browser.check_page("search-nothing").await;

    // A number's history: nothing provisions it yet, so it is pending; the saga then syncs it
    // with the simulator and the page says so by itself, without a reload.
    browser
        .open(&app, "/portal/history/number/%2B15105850001")
        .await;
    let history = browser.text("main").await;
    for text in ["Number added", "test-user", "CHG-1002"] {
        assert!(history.contains(text), "{text} in {history}");
    }
    assert_eq!(browser.text(&cell).await, "pending");
    browser.check_page("history-number").await;
    wait_until_following(&browser).await;
    browser
        .execute("window.nmpSamePage = true; return true;", json!([]))
        .await;
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    browser.wait_for_text(&cell, "synced", WAIT).await;
    assert_eq!(
        browser
            .execute("return window.nmpSamePage === true;", json!([]))
            .await,
        true,
        "the page was not reloaded"
    );

    // The account as it was at a time chosen in the page.
    browser.open(&app, "/portal/history/account/contoso").await;
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    browser
        .execute(
            "document.getElementById('at').value = arguments[0]; return true;",
            json!([at]),
        )
        .await;
    browser.click(r#"form.inline button[type="submit"]"#).await;
    let shown = browser
        .wait_for_text(".as-of", "Teams tenant id", WAIT)
        .await;
    assert!(shown.contains(TENANT), "{shown}");
    browser.check_page("history-as-of").await;
    browser
        .open(&app, &format!("/portal/history/consent/{TENANT}"))
        .await;
    browser
        .wait_for_text("main", "Consent recorded", WAIT)
        .await;
    browser.check_page("history-consent").await;
    browser.close().await;
    drop(saga);
    feed.abort();
}
