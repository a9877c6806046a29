//! The portal in headless Chromium, as operator staff use it: signing in by pasting a token (or,
//! on loopback with the development secret, by choosing a role), the home page, the accounts and
//! an account, answering a consent (the error next to the reason when declining without one,
//! then the answer recorded; and again with the keyboard alone), retrying a provisioning failure
//! the backend simulator refused, a number going from pending to synced on screen without a
//! reload, 10,000 CSV rows with bad ones checked, imported and their result downloaded, an
//! exported list edited and uploaded back, and a Read-only user who sees no write forms and is
//! refused when forcing one. Every page is checked (`Browser::check_page`: axe-core, width,
//! weight) and photographed at 1280x800 and 390x844 (`target/screenshots/`).

use std::time::Duration;

use auth::Role;
use tests::browser::Browser;
use tests::portal::portal_app;
use tests::projections::{ReadSide, wait_until_projected};
use tests::saga::{SagaSide, accepted_number_body};
use tests::{TENANT, account_body, number_body};

/// The forms of the page shown that would change something, as HTML (empty when none).
async fn write_forms(browser: &Browser) -> String {
    browser
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(f => f.outerHTML).join('\\n')",
            serde_json::json!([WRITE_FORMS]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const WAIT: Duration = Duration::from_secs(20);

/// The forms on the page that would change something (the sign-out form in the header aside).
const WRITE_FORMS: &str = r#"main form[method="post"]"#;

#[tokio::test]
async fn staff_sign_in_by_pasting_a_token_and_see_what_needs_attention() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;

    // Without a session, the portal sends the browser to its sign-in page.
    browser.open(&app, "/portal/accounts").await;
    let url = browser.url().await;
    assert!(url.contains("/portal/sign-in"), "{url}");
    assert_eq!(
        browser.text("label[for=token]").await,
        "Bearer token",
        "the token's field has its label"
    );
    browser.check_page("sign-in").await;

    // A token that is not one is refused next to the field, in words.
    browser.fill("#token", "not-a-token").await;
    browser
        .click(r#"form[action="/portal/sign-in"] button[type=submit]"#)
        .await;
    assert_eq!(browser.status().await, 400);
    let error = browser.text("#token-error").await;
    assert!(error.contains("This token is not valid here"), "{error}");
    assert!(
        browser
            .attribute("#token", "aria-describedby")
            .await
            .unwrap_or_default()
            .contains("token-error"),
        "the field names its error"
    );
    browser.check_page("sign-in-refused").await;

    browser.sign_in(&app, Role::ReadUser).await;
    assert!(browser.url().await.ends_with("/portal"));
    let home = browser.text("main").await;
    for text in [
        "What needs attention",
        "Consents waiting for an answer",
        "Provisioning failures",
    ] {
        assert!(home.contains(text), "{text} in {home}");
    }
    browser.check_page("home").await;

    // The header's links lead to each part; signing out ends the session.
    browser
        .click(r#"nav[aria-label=Main] a[href="/portal/consents"]"#)
        .await;
    assert_eq!(browser.text("h1").await, "Consents");
    browser
        .click(r#"form[action="/portal/sign-out"] button"#)
        .await;
    let url = browser.url().await;
    assert!(url.contains("/portal/sign-in"), "{url}");
    browser.open(&app, "/portal").await;
    assert!(
        browser.url().await.contains("/portal/sign-in"),
        "signed out, the home page asks to sign in again"
    );
    browser.close().await;
}

#[tokio::test]
async fn staff_find_an_account_and_its_numbers() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    for name in ["contoso", "fabrikam"] {
        assert!(app.put_account(name, &account_body(name)).await.status < 300);
    }
    for number in ["+15105850321", "+15105850322"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::WriteUser).await;

    browser
        .click(r#"nav[aria-label=Main] a[href="/portal/accounts"]"#)
        .await;
    assert!(browser.url().await.ends_with("/portal/accounts"));
    let list = browser.text("main").await;
    assert!(list.contains("2 accounts in all"), "{list}");
    assert!(list.contains("fabrikam"), "{list}");
    browser.check_page("accounts").await;

    browser
        .click(r#"main a[href="/portal/accounts/contoso"]"#)
        .await;
    assert_eq!(browser.text("h1").await, "Account contoso");
    let page = browser.text("main").await;
    for text in ["+15105850321", "+15105850322", "teamsOperatorConnect"] {
        assert!(page.contains(text), "{text} in {page}");
    }
    browser.check_page("account").await;
    browser.close().await;
}

#[tokio::test]
async fn staff_answer_a_consent_and_a_missing_reason_is_said_next_to_its_field() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::WriteUser).await;

    browser
        .click(r#"nav[aria-label=Main] a[href="/portal/consents"]"#)
        .await;
    let list = browser.text("main").await;
    assert!(list.contains("1 consent in all"), "{list}");
    assert!(list.contains("Waiting for an answer"), "{list}");
    browser.check_page("consents").await;

    browser
        .click(&format!(r#"main a[href="/portal/consents/{TENANT}"]"#))
        .await;
    assert_eq!(browser.text("h1").await, "Consent from Contoso");
    browser.check_page("consent").await;

    // Declining without a reason: refused, the error next to the comment, nothing recorded.
    browser.choose("#status", "ConsentDeclined").await;
    browser.fill("#comment", "").await;
    browser.click(r#"main form button[type=submit]"#).await;
    assert_eq!(browser.status().await, 400);
    let error = browser.text("#comment-error").await;
    assert!(!error.is_empty(), "the error says what is missing");
    assert_eq!(
        browser.attribute("#comment-error", "role").await.as_deref(),
        Some("alert")
    );
    assert!(
        browser
            .attribute("#comment", "aria-describedby")
            .await
            .unwrap_or_default()
            .contains("comment-error")
    );
    let chosen = browser
        .execute(
            "return document.querySelector('#status').value",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(chosen, "ConsentDeclined", "what was chosen stays chosen");
    browser.check_page("consent-refused").await;
    let stored = app.get_consent(TENANT).await;
    assert!(stored.body["customerRelationship"].is_null(), "{stored:?}");

    // With a reason it is recorded, and the page says so.
    browser
        .fill("#comment", "The customer chose another operator")
        .await;
    browser.click(r#"main form button[type=submit]"#).await;
    let url = browser.url().await;
    assert!(
        url.ends_with("?saved=1"),
        "{url}: {}",
        browser.text("main").await
    );
    let notice = browser.text("p.notice").await;
    assert!(notice.contains("Your answer is recorded"), "{notice}");
    browser.check_page("consent-recorded").await;
    let stored = app.get_consent(TENANT).await;
    assert_eq!(
        stored.body["customerRelationship"]["status"],
        "ConsentDeclined"
    );
    assert_eq!(
        stored.body["customerRelationship"]["comment"],
        "The customer chose another operator"
    );
    browser.close().await;
}

#[tokio::test]
async fn staff_see_why_the_backend_refused_a_number_and_retry_it_from_the_failures_page() {
    let app = portal_app().await;
    let read = ReadSide::start(&app).await;
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    let number = "+15105850041";
    // An account without a Teams tenant: the backend refuses its number.
    let body = tests::account_body_without_tenant("contoso");
    assert_eq!(app.put_account("contoso", &body).await.status, 201);
    app.put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    app.wait_for_number_status("contoso", number, "failed", WAIT)
        .await;
    wait_until_projected(&app, WAIT).await;
    let retry = format!(r#"button[aria-label="Retry number {number}"]"#);

    // A reader sees the failure and why, without a retry.
    let reader = Browser::start().await;
    reader.sign_in(&app, Role::ReadUser).await;
    reader
        .click(r#"nav[aria-label=Main] a[href="/portal/failures"]"#)
        .await;
    let seen = reader.text("main").await;
    assert!(seen.contains(&format!("number {number}")), "{seen}");
    assert!(seen.contains("TeamsTenantIdRequired"), "{seen}");
    assert_eq!(reader.count(&retry).await, 0, "a reader has no retry");
    let forms = write_forms(&reader).await;
    assert!(forms.is_empty(), "{forms}");
    reader.check_page("failures-read-only").await;
    reader.close().await;

    // The tenant is set; a writer retries from the page and the number goes through.
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        200
    );
    let writer = Browser::start().await;
    writer.sign_in(&app, Role::WriteUser).await;
    writer.open(&app, "/portal/failures").await;
    writer.check_page("failures").await;
    writer.click(&retry).await;
    assert!(writer.url().await.ends_with("/portal/failures?retried=1"));
    let notice = writer.text("p.notice").await;
    assert!(notice.contains("Pushed again"), "{notice}");
    app.wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    wait_until_projected(&app, WAIT).await;
    writer.open(&app, "/portal/failures").await;
    writer
        .wait_for_text("main", "Nothing has failed", WAIT)
        .await;
    writer.open(&app, "/portal/accounts/contoso").await;
    let account = writer.text("main").await;
    assert!(account.contains(number), "{account}");
    assert!(!account.contains("TeamsTenantIdRequired"), "{account}");
    writer.close().await;
}

#[tokio::test]
async fn a_read_only_user_sees_no_write_forms_and_is_refused_when_forcing_one() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    assert!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status
            < 300
    );
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::ReadUser).await;

    for (path, name) in [
        ("/portal", "home-read-only"),
        ("/portal/accounts", "accounts-read-only"),
        ("/portal/accounts/contoso", "account-read-only"),
        ("/portal/consents", "consents-read-only"),
        (
            &format!("/portal/consents/{TENANT}") as &str,
            "consent-read-only",
        ),
        ("/portal/failures", "failures-empty-read-only"),
    ] {
        browser.open(&app, path).await;
        assert_eq!(browser.status().await, 200, "{path}");
        let forms = write_forms(&browser).await;
        assert!(
            forms.is_empty(),
            "a Read-only user is offered no form that writes on {path}: {forms}"
        );
        browser.check_page(name).await;
    }
    browser
        .open(&app, &format!("/portal/consents/{TENANT}"))
        .await;
    let said = browser.text("main").await;
    assert!(
        said.contains("answering them needs a role that may write"),
        "{said}"
    );

    // Forcing the answer with a form of their own, with the session's real form token: refused.
    let csrf = browser
        .attribute(r#"header input[name=csrf]"#, "value")
        .await
        .expect("the session's form token");
    browser
        .post_form(
            &format!("/portal/consents/{TENANT}"),
            &[
                ("csrf", &csrf),
                ("status", "ConsentAcknowledged"),
                ("comment", "forced"),
            ],
        )
        .await;
    assert_eq!(browser.status().await, 403);
    assert_eq!(browser.text("h1").await, "Something went wrong");
    let refusal = browser.text("p.error[role=alert]").await;
    assert!(!refusal.is_empty());
    browser.check_page("refused").await;
    let stored = app.get_consent(TENANT).await;
    assert!(
        stored.body["customerRelationship"].is_null(),
        "nothing was recorded: {stored:?}"
    );

    // A retry forced the same way is refused too.
    browser.open(&app, "/portal/failures").await;
    browser
        .post_form(
            "/portal/failures/retry",
            &[("csrf", &csrf), ("kind", "account"), ("id", "contoso")],
        )
        .await;
    assert_eq!(browser.status().await, 403);
    browser.close().await;
}

#[tokio::test]
async fn a_number_goes_from_pending_to_synced_on_screen_without_a_reload() {
    // nmp with its live feed following the test's stream.
    let source = nmp::feed::channel();
    let app = {
        let source = source.clone();
        tests::spawn_app_with(move |state| {
            state.feed = Some(source);
            state.serve_portal = true;
        })
        .await
    };
    let read = ReadSide::start(&app).await;
    let _feed = crate::dashboard::follow_the_stream(&read, source).await;
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

    // Nothing provisions it yet: the account's page shows it pending.
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::AdminUser).await;
    browser.open(&app, "/portal/accounts/contoso").await;
    let cell = format!(r#"[data-live="number:{number}"]"#);
    assert_eq!(browser.text(&cell).await, "pending");
    assert_eq!(
        browser.text(r#"[data-live="account:contoso"]"#).await,
        "pending"
    );
    browser.check_page("live-pending").await;
    browser
        .execute("window.nmpSamePage = true;", serde_json::json!([]))
        .await;

    // The saga provisions the account and its number with the backend simulator; the page
    // follows by itself.
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    browser.wait_for_text(&cell, "synced", WAIT).await;
    browser
        .wait_for_text(r#"[data-live="account:contoso"]"#, "synced", WAIT)
        .await;
    assert_eq!(
        browser
            .execute("return window.nmpSamePage === true;", serde_json::json!([]))
            .await,
        true,
        "the page was not reloaded"
    );
    assert_eq!(
        app.get_number("contoso", number).await.body["serviceProvisioningStatus"],
        "synced",
        "the page says what nmp holds"
    );
    browser.check_page("live-synced").await;
    browser.close().await;
}

/// A CSV file of 10,000 Operator Connect numbers for calling users at `addr-1`, four of them bad:
/// a number without its `+` (row 2), a usage that is not one (row 5000), no civic address
/// (row 9999), and `held` (row 7777), which another account holds.
fn ten_thousand_rows(held: &str) -> std::path::PathBuf {
    let mut csv = String::from(
        "telephoneNumber,serviceDetails_teamsOperatorConnect_enabled,\
         serviceDetails_teamsOperatorConnect_configuration_usage,\
         serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities,\
         serviceDetails_teamsOperatorConnect_configuration_civicAddressId\n",
    );
    for row in 1..=10_000u32 {
        let number = format!("+1425{:07}", 5_000_000 + row);
        let line = match row {
            2 => format!(
                "{},true,CallingUserAssignment,InboundCalling,addr-1",
                &number[1..]
            ),
            5000 => format!("{number},true,Nonsense,InboundCalling,addr-1"),
            7777 => format!("{held},true,CallingUserAssignment,InboundCalling,addr-1"),
            9999 => format!("{number},true,CallingUserAssignment,InboundCalling,"),
            _ => {
                format!("{number},true,CallingUserAssignment,InboundCalling;OutboundCalling,addr-1")
            }
        };
        csv.push_str(&line);
        csv.push('\n');
    }
    let path = std::env::temp_dir().join(format!("nmp-browser-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, csv).expect("the CSV file is written");
    path
}

#[tokio::test]
async fn ten_thousand_rows_with_bad_ones_are_checked_then_imported_from_the_browser() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    for name in ["contoso", "fabrikam"] {
        assert_eq!(app.put_account(name, &account_body(name)).await.status, 201);
    }
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    let held = "+12065550100";
    let put = app
        .put_number("fabrikam", held, &accepted_number_body("fabrikam", held))
        .await;
    assert_eq!(put.status, 201, "{put:?}");
    wait_until_projected(&app, WAIT).await;
    let file = ten_thousand_rows(held);
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::AdminUser).await;

    // The file is checked first: every bad row named with its rule, nothing written.
    browser
        .open(&app, "/portal/accounts/contoso/uploads/new")
        .await;
    let events = app.event_count().await;
    browser.upload("#file", &file).await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("h1", "Check the upload to contoso", Duration::from_secs(60))
        .await;
    let said = browser.text("main").await;
    assert!(said.contains("10000 rows"), "{said}");
    assert!(said.contains("9996 rows can go in"), "{said}");
    assert!(said.contains("4 refused"), "{said}");
    assert_eq!(browser.count("table.rows tbody tr").await, 4);
    let refused = browser.text("table.rows").await;
    for rule in [
        "InvalidTelephoneNumber",
        "InvalidUsage",
        "CivicAddressRequired",
        held,
    ] {
        assert!(refused.contains(rule), "{rule} in {refused}");
    }
    browser.check_page("upload-10000-preview").await;
    assert_eq!(app.event_count().await, events, "nothing written yet");

    // Import: the page follows the import by itself and ends on the result.
    let pressed = std::time::Instant::now();
    browser.click("main form.import button").await;
    browser
        .wait_for_text("h1", "Import into contoso done", Duration::from_secs(180))
        .await;
    let imported = pressed.elapsed();
    let result = browser.text("main p[role=status]").await;
    assert!(
        result.ends_with("9996 numbers created, 0 updated, 4 refused."),
        "{result}"
    );
    assert_eq!(browser.count("table.rows tbody tr").await, 4);
    browser.check_page("upload-10000-result").await;

    // The result file, downloaded by the page: one line per row, the same four refused.
    let link = browser
        .attribute(r#"main a[href$="/results.csv"]"#, "href")
        .await
        .expect("a link to the result file");
    let results = browser.fetch_text(&link).await;
    assert_eq!(results.lines().count(), 10_001, "a header and every row");
    assert_eq!(results.matches(",created,").count(), 9996);
    assert_eq!(results.matches(",refused,").count(), 4);

    // Stored, and on the account's numbers page.
    wait_until_projected(&app, WAIT).await;
    browser
        .click(r#"main a[href="/portal/accounts/contoso/numbers"]"#)
        .await;
    browser
        .wait_for_text("main", "9996 numbers in all", Duration::from_secs(5))
        .await;
    println!(
        "10,000 rows from Import to the result page in {imported:?}, on the numbers page in {:?}",
        pressed.elapsed()
    );
    browser.check_page("numbers-10000").await;

    // The home page counts them; the account's page lists them fifty at a time.
    browser
        .click(r#"nav[aria-label=Main] a[href="/portal"]"#)
        .await;
    let home = browser.text("main").await;
    assert!(home.contains("9997"), "every number stored: {home}");
    browser.check_page("home-10000").await;
    browser.open(&app, "/portal/accounts/contoso").await;
    assert_eq!(browser.count(r#"main [data-live^="number:"]"#).await, 50);
    browser.check_page("account-10000").await;
    assert_eq!(app.get_number("fabrikam", held).await.status, 200);
    assert_eq!(app.get_number("contoso", "+14255000001").await.status, 200);
    let _ = std::fs::remove_file(&file);
    browser.close().await;
}

#[tokio::test]
async fn staff_sign_in_and_answer_a_consent_with_the_keyboard_alone() {
    use tests::browser::{ARROW_DOWN, ENTER};
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;

    // Sign in: Tab to the token's field, type it, Tab to the button, Enter.
    browser.open(&app, "/portal/sign-in").await;
    browser.tab_to("#token", 5).await;
    browser.type_keys(&app.token(&[Role::AdminUser])).await;
    browser
        .tab_to(r#"form[action="/portal/sign-in"] button"#, 5)
        .await;
    browser.press(ENTER).await;
    browser
        .wait_for_text("header", "Signed in as", Duration::from_secs(10))
        .await;

    // From the header to the consents, and to the one waiting.
    browser
        .tab_to(r#"nav[aria-label=Main] a[href="/portal/consents"]"#, 10)
        .await;
    browser.press(ENTER).await;
    assert_eq!(browser.text("h1").await, "Consents");
    browser
        .tab_to(&format!(r#"main a[href="/portal/consents/{TENANT}"]"#), 40)
        .await;
    browser.press(ENTER).await;
    assert_eq!(browser.text("h1").await, "Consent from Contoso");

    // The drop-down answers to the arrow keys; the reason is typed; Enter records it.
    browser.tab_to("#status", 40).await;
    let mut value = serde_json::Value::Null;
    for _ in 0..8 {
        browser.press(ARROW_DOWN).await;
        value = browser
            .execute(
                "return document.querySelector('#status').value",
                serde_json::json!([]),
            )
            .await;
        if value == "CustomerContacted" {
            break;
        }
    }
    assert_eq!(value, "CustomerContacted");
    browser.tab_to("#comment", 5).await;
    browser.type_keys("Called the customer back").await;
    browser
        .tab_to(r#"main form[method="post"] button[type="submit"]"#, 10)
        .await;
    browser.press(ENTER).await;
    let notice = browser.text("p.notice").await;
    assert!(notice.contains("Your answer is recorded"), "{notice}");
    let stored = app.get_consent(TENANT).await;
    assert_eq!(
        stored.body["customerRelationship"]["status"],
        "CustomerContacted"
    );
    assert_eq!(
        stored.body["customerRelationship"]["comment"],
        "Called the customer back"
    );
    browser.close().await;
}

#[tokio::test]
async fn staff_export_filtered_numbers_edit_the_file_and_upload_it_back() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let chosen: Vec<String> = (1..=5).map(|i| format!("+1510585010{i}")).collect();
    let others = ["+14255550001", "+14255550002"];
    for number in chosen.iter().map(String::as_str).chain(others) {
        let put = app
            .put_number("contoso", number, &accepted_number_body("contoso", number))
            .await;
        assert_eq!(put.status, 201, "{put:?}");
    }
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::AdminUser).await;

    // The numbers starting +151058501, filtered through the form, exported as the page offers.
    browser.open(&app, "/portal/accounts/contoso/numbers").await;
    browser.fill("#number", "+151058501").await;
    browser
        .click(r#"main form.filters button[type="submit"]"#)
        .await;
    let said = browser.text("main").await;
    assert!(
        said.contains("5 numbers in all match this filter"),
        "{said}"
    );
    browser.check_page("numbers-filtered").await;
    let link = browser
        .attribute(r#"main a[href*="/export.csv"]"#, "href")
        .await
        .expect("an export link");
    let exported = browser.fetch_text(&link).await;
    assert_eq!(
        exported.lines().count(),
        6,
        "a header and the five: {exported}"
    );
    for number in &chosen {
        assert!(exported.contains(number.as_str()), "{number} in {exported}");
    }
    for number in others {
        assert!(!exported.contains(number), "{number} is filtered out");
    }

    // Edited: every number gets a custom SIP header.
    let mut lines = exported.lines();
    let header = lines.next().expect("a header");
    let column = header
        .split(',')
        .position(|c| c == "configuration_customSipHeader")
        .expect("the SIP header's column");
    let mut edited = format!("{header}\n");
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        cells[column] = "fabrikam-sbc".to_string();
        edited.push_str(&cells.join(","));
        edited.push('\n');
    }
    let file = std::env::temp_dir().join(format!("nmp-export-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, edited).expect("the edited file");

    // Uploaded back: checked, then each of the five updated, the others untouched.
    browser
        .open(&app, "/portal/accounts/contoso/uploads/new")
        .await;
    browser.upload("#file", &file).await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("h1", "Check the upload to contoso", WAIT)
        .await;
    let said = browser.text("main").await;
    assert!(
        said.contains("5 rows can go in") && said.contains("none is refused"),
        "{said}"
    );
    browser.click("main form.import button").await;
    browser
        .wait_for_text("h1", "Import into contoso done", Duration::from_secs(60))
        .await;
    let result = browser.text("main p[role=status]").await;
    assert!(
        result.ends_with("0 numbers created, 5 updated, 0 refused."),
        "{result}"
    );
    for number in &chosen {
        let stored = app.get_number("contoso", number).await;
        assert_eq!(
            stored.body["configuration"]["customSipHeader"], "fabrikam-sbc",
            "{number}: {stored:?}"
        );
    }
    for number in others {
        let stored = app.get_number("contoso", number).await;
        assert_ne!(
            stored.body["configuration"]["customSipHeader"],
            "fabrikam-sbc"
        );
    }
    let _ = std::fs::remove_file(&file);
    browser.close().await;
}

#[tokio::test]
async fn on_loopback_with_the_development_secret_staff_sign_in_by_choosing_a_role() {
    // nmp on loopback with its development secret (here the test's own secret plays it).
    let mut app = portal_app().await;
    app.state.development_secret = Some(app.secret.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    app.address = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(api::serve(
        listener,
        app.state.clone(),
        std::future::pending(),
    ));
    app.record_consent(TENANT).await;
    let browser = Browser::start().await;

    browser.open(&app, "/portal/sign-in").await;
    let page = browser.text("main").await;
    assert!(page.contains("Development sign-in"), "{page}");
    browser.check_page("sign-in-development").await;
    browser.choose("#role", "ProvisioningAPI.ReadUser").await;
    browser
        .click(r#"form[action="/portal/sign-in/development"] button[type="submit"]"#)
        .await;
    browser
        .wait_for_text("header", "Signed in as portal-developer", WAIT)
        .await;

    // The role chosen is the session's: reading, not writing.
    browser
        .open(&app, &format!("/portal/consents/{TENANT}"))
        .await;
    assert_eq!(browser.status().await, 200);
    let forms = write_forms(&browser).await;
    assert!(forms.is_empty(), "{forms}");
    browser.close().await;
}
