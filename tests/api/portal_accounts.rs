//! The portal's accounts, consents and civic addresses over real HTTP: the lists' filters and
//! key-set pages that keep them, creating and editing an account (errors beside their field,
//! nothing written on bad input), deleting one with or without its numbers after confirming,
//! answering a consent with a ticket, creating an account from a consent, the civic addresses
//! of an account, and a Read-only user who sees no write actions and is refused when forcing
//! each form; then, in headless Chromium, creating an account from a consent, editing it and
//! answering the consent, every page checked with axe-core and photographed.

use std::time::Duration;

use auth::Role;
use chrono::Utc;
use domain::{ConsentReport, ConsentStatus, Contact, CountryCode, Identifier, TenantId};
use serde_json::json;
use store::EventMetadata;
use tests::browser::Browser;
use tests::portal::{form_token, page_of, portal_app, post_form, signed_in};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{TENANT, TestApp, account_body, number_body};

const WAIT: Duration = Duration::from_secs(20);

/// A tenant id of its own for consent `i`.
fn tenant(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-00000000000{}", i % 10)
}

/// Records a consent of `company` for `countries`, as the backend sync does.
async fn record_consent(
    app: &TestApp,
    tenant: &str,
    status: ConsentStatus,
    countries: &[&str],
    company: &str,
) {
    let report = ConsentReport {
        consent_id: Identifier::parse(format!("consent-{tenant}")).unwrap(),
        operator_id: None,
        status,
        consented_on: Utc::now(),
        countries: countries
            .iter()
            .map(|c| CountryCode::parse(*c).unwrap())
            .collect(),
        contacts: vec![Contact {
            full_name: "Jane Doe".to_string(),
            email: "jane@example.com".to_string(),
            telephone_number: None,
            company_name: Some(company.to_string()),
            company_size: None,
        }],
    };
    app.commands
        .record_consent(
            &TenantId::parse(tenant).unwrap(),
            report,
            &EventMetadata::system("test-backend-sync"),
        )
        .await
        .expect("consent recorded");
}

/// The target of the page's "Next page" link, as the browser would follow it.
fn next_link(html: &str) -> Option<String> {
    let before = html.split(">Next page</a>").next()?;
    if before.len() == html.len() {
        return None;
    }
    let href = before.rsplit(r#"href=""#).next()?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// The metadata of the last event in the history of an account or consent, as the audit
/// route answers it.
async fn last_event_metadata(app: &TestApp, kind: &str, id: &str) -> String {
    let history = app
        .send(app.request(reqwest::Method::GET, &format!("/audit/{kind}/{id}/events")))
        .await;
    let events = history.body["value"].as_array().expect("events").clone();
    events.last().expect("an event")["metadata"].to_string()
}

/// How many times `needle` occurs in `html`.
fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

#[tokio::test]
async fn consents_are_filtered_by_tenant_status_answer_and_country_and_pages_keep_the_filters() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    // 53 consents for Great Britain, 2 of them suspended; 3 for the US; one for both.
    for i in 0..53 {
        let status = if i < 2 {
            ConsentStatus::Suspended
        } else {
            ConsentStatus::Active
        };
        record_consent(&app, &tenant(i), status, &["GB"], &format!("Brit {i}")).await;
    }
    for i in 100..103 {
        record_consent(&app, &tenant(i), ConsentStatus::Active, &["US"], "Yank").await;
    }
    record_consent(
        &app,
        &tenant(200),
        ConsentStatus::Active,
        &["US", "GB"],
        "Both",
    )
    .await;
    let answered = app
        .patch_consent(
            &tenant(100),
            &json!({"customerRelationship": {"status": "CustomerContacted"}}),
        )
        .await;
    assert_eq!(answered.status, 200, "{answered:?}");
    wait_until_projected(&app, WAIT).await;
    let reader = signed_in(&app, &[Role::ReadUser]).await;

    let (status, all) = page_of(&app, &reader, "/portal/consents").await;
    assert_eq!(status, 200);
    assert!(all.contains("57 consents in all"), "{all}");
    for label in [
        r#"<label for="filter-tenant">"#,
        r#"<label for="filter-status">"#,
        r#"<label for="filter-relationship">"#,
        r#"<label for="filter-country">"#,
    ] {
        assert!(all.contains(label), "{label}");
    }

    // Country GB: 54 consents (one of them also for the US), fifty to a page; the next page
    // keeps the filter.
    let (status, first) = page_of(&app, &reader, "/portal/consents?country=gb").await;
    assert_eq!(status, 200);
    assert!(first.contains("54 matching consents in all"), "{first}");
    assert_eq!(count(&first, r#"<a href="/portal/consents/"#), 50);
    assert!(!first.contains("Yank"), "no US-only consent");
    assert!(
        first.contains(r#"name="country" value="GB""#),
        "the form shows the filter"
    );
    let next = next_link(&first).expect("a next page");
    assert!(
        next.starts_with("/portal/consents?country=GB&after="),
        "{next}"
    );
    let (status, second) = page_of(&app, &reader, &next).await;
    assert_eq!(status, 200);
    assert_eq!(count(&second, r#"<a href="/portal/consents/"#), 4);
    assert!(
        second.contains("Both") && !second.contains("Yank"),
        "{second}"
    );
    assert!(
        next_link(&second).is_none(),
        "the last page links no further"
    );

    // Consent status, and country together.
    let (_, suspended) = page_of(&app, &reader, "/portal/consents?status=suspended").await;
    assert!(
        suspended.contains("2 matching consents in all"),
        "{suspended}"
    );
    assert!(suspended.contains("Brit 0") && suspended.contains("Brit 1"));
    assert!(suspended.contains(r#"<option value="suspended" selected>"#));
    let (_, none) = page_of(
        &app,
        &reader,
        "/portal/consents?status=suspended&country=US",
    )
    .await;
    assert!(none.contains("No consents match these filters"), "{none}");

    // Our answer: the one answered, or those waiting.
    let (_, contacted) = page_of(
        &app,
        &reader,
        "/portal/consents?relationship=CustomerContacted",
    )
    .await;
    assert!(
        contacted.contains("1 matching consent in all"),
        "{contacted}"
    );
    assert!(contacted.contains(&tenant(100)));
    let (_, waiting) = page_of(
        &app,
        &reader,
        "/portal/consents?relationship=waiting&country=US",
    )
    .await;
    assert!(waiting.contains("3 matching consents in all"), "{waiting}");
    assert!(waiting.contains(&tenant(101)) && !waiting.contains(&tenant(100)));

    // A tenant id's beginning, in either case.
    let (_, by_tenant) = page_of(&app, &reader, "/portal/consents?tenant=00000065").await;
    assert!(
        by_tenant.contains("1 matching consent in all"),
        "{by_tenant}"
    );
    assert!(by_tenant.contains(&tenant(101)));
    let (_, by_tenant) = page_of(&app, &reader, "/portal/consents?tenant=000000C8-").await;
    assert!(by_tenant.contains(&tenant(200)), "{by_tenant}");

    // A country that is not one is refused next to its field; the text stays as typed and is
    // never pasted unescaped.
    let (status, refused) = page_of(&app, &reader, "/portal/consents?country=%3Cb%3E").await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="filter-country-error" role="alert""#),
        "{refused}"
    );
    assert!(!refused.contains("<B>"), "{refused}");
    // A filter value that is no status is not a filter (and not an error either).
    let (status, odd) = page_of(&app, &reader, "/portal/consents?status=%27%20or%201%3D1").await;
    assert_eq!(status, 200);
    assert!(odd.contains("57 consents in all"), "{odd}");
}

#[tokio::test]
async fn accounts_are_filtered_by_name_service_and_sync_state_and_pages_keep_the_filters() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    for i in 0..52 {
        let name = format!("acme-{i:02}");
        assert_eq!(
            app.put_account(&name, &account_body(&name)).await.status,
            201
        );
    }
    let direct_routing = json!({
        "name": "zeta",
        "serviceDetails": {"teamsDirectRouting": {"enabled": true, "syncEnabled": false}}
    });
    assert_eq!(app.put_account("zeta", &direct_routing).await.status, 201);
    let put = app
        .put_number(
            "acme-03",
            "+15105850321",
            &number_body("acme-03", "+15105850321"),
        )
        .await;
    assert!(put.status < 300, "{put:?}");
    wait_until_projected(&app, WAIT).await;
    let reader = signed_in(&app, &[Role::ReadUser]).await;

    let (status, all) = page_of(&app, &reader, "/portal/accounts").await;
    assert_eq!(status, 200);
    assert!(all.contains("53 accounts in all"), "{all}");
    assert!(all.contains(r#"<label for="filter-name">"#));
    assert!(all.contains(r#"<label for="filter-service">"#));
    assert!(
        all.contains("teamsOperatorConnect 1"),
        "numbers counted per service"
    );

    // A name's beginning, in either case; the next page keeps the filter.
    let (_, first) = page_of(&app, &reader, "/portal/accounts?name=ACME").await;
    assert!(first.contains("52 matching accounts in all"), "{first}");
    assert_eq!(count(&first, r#"<a href="/portal/accounts/acme-"#), 50);
    let next = next_link(&first).expect("a next page");
    assert_eq!(next, "/portal/accounts?name=ACME&after=acme-49");
    let (_, second) = page_of(&app, &reader, &next).await;
    assert_eq!(count(&second, r#"<a href="/portal/accounts/acme-"#), 2);
    assert!(!second.contains(">zeta</a>"));
    assert!(next_link(&second).is_none());

    // A service enabled.
    let (_, routed) = page_of(&app, &reader, "/portal/accounts?service=teamsDirectRouting").await;
    assert!(routed.contains("1 matching account in all"), "{routed}");
    assert!(routed.contains(">zeta</a>"));
    assert!(routed.contains(r#"<option value="teamsDirectRouting" selected>"#));
    let (_, both) = page_of(
        &app,
        &reader,
        "/portal/accounts?service=teamsDirectRouting&name=acme",
    )
    .await;
    assert!(both.contains("No accounts match these filters"), "{both}");

    // A sync state: without a backend, the flow-through accounts wait; none failed.
    let (_, pending) = page_of(&app, &reader, "/portal/accounts?sync=pending&name=acme").await;
    assert!(pending.contains("52 matching accounts in all"), "{pending}");
    assert!(pending.contains(r#"<option value="pending" selected>"#));
    let (_, failed) = page_of(&app, &reader, "/portal/accounts?sync=failed").await;
    assert!(
        failed.contains("No accounts match these filters"),
        "{failed}"
    );
}

/// The form fields of a new Operator Connect account with flow-through.
fn new_account<'a>(csrf: &'a str, name: &'a str, tenant: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("tenant", tenant),
        ("teamsOperatorConnect", "on"),
        ("teamsOperatorConnect-sync", "on"),
    ]
}

#[tokio::test]
async fn staff_create_an_account_and_errors_stand_beside_their_field_with_nothing_written() {
    let app = portal_app().await;
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (_, list) = page_of(&app, &writer, "/portal/accounts").await;
    assert!(list.contains(r#"href="/portal/new-account""#));
    let (status, form) = page_of(&app, &writer, "/portal/new-account").await;
    assert_eq!(status, 200);
    for label in [
        r#"<label for="name">"#,
        r#"<label for="tenant">"#,
        r#"<label for="teamsOperatorConnect">"#,
        r#"<label for="teamsOperatorConnect-sync">Sync with backend service"#,
        r#"<label for="teamsPhoneMobile">"#,
        r#"<label for="teamsDirectRouting">"#,
        r#"<label for="subdomain">"#,
        r#"<label for="region1">"#,
        r#"<label for="region2">"#,
        r#"<label for="azureOperatorCallProtection">"#,
    ] {
        assert!(form.contains(label), "{label}");
    }
    assert!(!form.contains("style="), "no inline style");
    let csrf = form_token(&form);
    let events = app.event_count().await;

    // A tenant id that is not a GUID: refused beside the field, what was typed kept.
    let (status, refused) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account(&csrf, "fabrikam", "not-a-guid"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains(r#"id="tenant-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("is not a GUID"), "{refused}");
    assert!(refused.contains(r#"name="name" value="fabrikam""#));
    assert!(refused.contains(r#"name="tenant" value="not-a-guid""#));
    assert!(refused.contains(r#"id="teamsOperatorConnect" name="teamsOperatorConnect" checked"#));

    // A bad name, and a Direct Routing token missing: each beside its field.
    let (status, refused) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account(&csrf, "fab rikam", TENANT),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="name-error" role="alert""#),
        "{refused}"
    );
    let mut routed = new_account(&csrf, "fabrikam", TENANT);
    routed.extend([
        ("teamsDirectRouting", "on"),
        ("subdomain", "fab"),
        ("region1", "token-1"),
    ]);
    let (status, refused) = post_form(&app, &writer, "/portal/new-account", &routed).await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="region2-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains(r#"name="subdomain" value="fab""#));
    let (status, refused) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account(&csrf, "", TENANT),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="name-error" role="alert""#),
        "{refused}"
    );
    let long = "T".repeat(65);
    let mut ticketed = new_account(&csrf, "fabrikam", TENANT);
    ticketed.push(("ticket", &long));
    let (status, refused) = post_form(&app, &writer, "/portal/new-account", &ticketed).await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="ticket-error" role="alert""#),
        "{refused}"
    );
    assert_eq!(app.get_account("fabrikam").await.status, 404);
    assert_eq!(app.event_count().await, events, "nothing written");

    // A good form creates it, with what was chosen.
    routed.retain(|(name, _)| *name != "region1");
    routed.extend([
        ("region1", "token-1"),
        ("region2", "token-2"),
        ("callScreening", "on"),
        ("ticket", "CHG-10"),
    ]);
    let (status, location) = post_form(&app, &writer, "/portal/new-account", &routed).await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/accounts/fabrikam?saved=1");
    let stored = app.get_account("fabrikam").await;
    assert_eq!(stored.status, 200);
    let details = &stored.body["serviceDetails"];
    assert_eq!(details["teamsTenantId"], TENANT);
    assert_eq!(details["teamsOperatorConnect"]["enabled"], true);
    assert_eq!(details["teamsOperatorConnect"]["syncEnabled"], true);
    assert_eq!(details["teamsDirectRouting"]["enabled"], true);
    assert_eq!(details["teamsDirectRouting"]["syncEnabled"], false);
    let configuration = &details["teamsDirectRouting"]["configuration"];
    assert_eq!(configuration["subdomain"], "fab");
    assert_eq!(configuration["subdomainTokens"]["region2Token"], "token-2");
    assert_eq!(configuration["callScreening"], true);
    assert!(details.get("teamsPhoneMobile").is_none(), "{details}");
    let (_, page) = page_of(&app, &writer, &location).await;
    assert!(page.contains("The account is saved"), "{page}");
    let metadata = last_event_metadata(&app, "account", "fabrikam").await;
    assert!(
        metadata.contains("CHG-10"),
        "the ticket is in the history: {metadata}"
    );

    // The same name again does not replace it.
    let etag = stored.etag();
    let (status, refused) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account(&csrf, "fabrikam", ""),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        refused.contains(r#"id="name-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("exists already"));
    assert_eq!(app.get_account("fabrikam").await.etag(), etag);

    // A forged form is refused.
    let (status, _) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account("guessed", "other", TENANT),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.get_account("other").await.status, 404);
}

#[tokio::test]
async fn staff_edit_an_account_and_a_refused_change_leaves_it_as_it_was() {
    let app = portal_app().await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let put = app
        .put_number(
            "contoso",
            "+15105850321",
            &number_body("contoso", "+15105850321"),
        )
        .await;
    assert!(put.status < 300, "{put:?}");
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (_, page) = page_of(&app, &writer, "/portal/accounts/contoso").await;
    for link in [
        r#"href="/portal/accounts/contoso/edit""#,
        r#"href="/portal/accounts/contoso/numbers""#,
        r#"href="/portal/accounts/contoso/addresses""#,
        r#"href="/portal/history/account/contoso""#,
    ] {
        assert!(page.contains(link), "{link}: {page}");
    }
    assert!(
        !page.contains(r#"href="/portal/accounts/contoso/delete""#),
        "a writer may not delete"
    );
    let (status, form) = page_of(&app, &writer, "/portal/accounts/contoso/edit").await;
    assert_eq!(status, 200);
    assert!(form.contains("Edit account contoso"));
    assert!(!form.contains(r#"<label for="name">"#), "the name stays");
    assert!(form.contains(&format!(r#"name="tenant" value="{TENANT}""#)));
    assert!(form.contains(r#"id="teamsOperatorConnect" name="teamsOperatorConnect" checked"#));
    assert!(!form.contains(r#"id="teamsPhoneMobile" name="teamsPhoneMobile" checked"#));
    let csrf = form_token(&form);
    let version = form
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the version the form shows")
        .to_string();
    let before = app.get_account("contoso").await;
    let events = app.event_count().await;
    let edit = "/portal/accounts/contoso/edit";
    let fields = |tenant: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut fields: Vec<(&str, String)> = vec![
            ("csrf", csrf.clone()),
            ("version", version.clone()),
            ("tenant", tenant.to_string()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        fields
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        let writer = &writer;
        async move {
            let borrowed: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, writer, edit, &borrowed).await
        }
    };
    let operator_connect = [
        ("teamsOperatorConnect", "on"),
        ("teamsOperatorConnect-sync", "on"),
    ];

    // A bad tenant id: beside its field.
    let (status, refused) = send(fields("1234", &operator_connect)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains(r#"id="tenant-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains(r#"name="tenant" value="1234""#));

    // Operator Connect switched off while a number uses it: beside that service.
    let (status, refused) = send(fields(TENANT, &[("teamsPhoneMobile", "on")])).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains(r#"id="teamsOperatorConnect-error" role="alert""#),
        "{refused}"
    );
    assert!(
        refused.contains("numbers of the account use it"),
        "{refused}"
    );
    assert!(
        refused.contains(r#"id="teamsPhoneMobile" name="teamsPhoneMobile" checked"#),
        "what was chosen stays chosen"
    );

    // The tenant changed under the number: beside the tenant.
    let other = "0f6ad3b4-2d1b-4e8e-9c39-6f2c1e9b7a11";
    let (status, refused) = send(fields(other, &operator_connect)).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains(r#"id="tenant-error" role="alert""#),
        "{refused}"
    );

    let after = app.get_account("contoso").await;
    assert_eq!(after.etag(), before.etag(), "the account is unchanged");
    assert_eq!(after.body, before.body);
    assert_eq!(app.event_count().await, events, "nothing written");

    // A good change: Teams Phone Mobile added, Operator Connect's flow-through off.
    let (status, location) = send(fields(
        TENANT,
        &[
            ("teamsOperatorConnect", "on"),
            ("teamsPhoneMobile", "on"),
            ("teamsPhoneMobile-sync", "on"),
        ],
    ))
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/accounts/contoso?saved=1");
    let changed = app.get_account("contoso").await;
    let details = &changed.body["serviceDetails"];
    assert_eq!(details["teamsOperatorConnect"]["enabled"], true);
    assert_eq!(details["teamsOperatorConnect"]["syncEnabled"], false);
    assert_eq!(details["teamsPhoneMobile"]["enabled"], true);
    assert_eq!(
        changed.body["correlationId"], before.body["correlationId"],
        "the correlation id stays"
    );

    // The form filled before that change is stale now: refused, nothing overwritten.
    let (status, refused) = send(fields(TENANT, &operator_connect)).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains(r#"id="form-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("Someone changed this account"));
    assert_eq!(app.get_account("contoso").await.etag(), changed.etag());

    // Switching a service off that the account had keeps it, disabled.
    let (_, form) = page_of(&app, &writer, edit).await;
    let version = form
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let fields: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("version", &version),
        ("tenant", TENANT),
        ("teamsOperatorConnect", "on"),
    ];
    let (status, _) = post_form(&app, &writer, edit, &fields).await;
    assert_eq!(status, 303);
    let off = app.get_account("contoso").await;
    assert_eq!(
        off.body["serviceDetails"]["teamsPhoneMobile"]["enabled"],
        false
    );
}

#[tokio::test]
async fn staff_delete_an_account_with_or_without_its_numbers_after_confirming() {
    let app = portal_app().await;
    for name in ["contoso", "fabrikam"] {
        assert_eq!(app.put_account(name, &account_body(name)).await.status, 201);
    }
    for number in ["+15105850321", "+15105850322"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert!(put.status < 300, "{put:?}");
    }
    let deleter = signed_in(&app, &[Role::ReadUser, Role::DeleteUser]).await;
    let (_, page) = page_of(&app, &deleter, "/portal/accounts/contoso").await;
    assert!(
        page.contains(r#"href="/portal/accounts/contoso/delete""#),
        "{page}"
    );
    assert!(
        !page.contains(r#"href="/portal/accounts/contoso/edit""#),
        "deleting is not writing"
    );
    let (status, confirm) = page_of(&app, &deleter, "/portal/accounts/contoso/delete").await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Delete account contoso?"));
    assert!(confirm.contains("The account holds 2 numbers"), "{confirm}");
    assert!(confirm.contains(r#"<label for="numbers-keep">"#));
    assert!(confirm.contains(r#"<label for="numbers-delete">"#));
    let csrf = form_token(&confirm);
    let path = "/portal/accounts/contoso/delete";

    // Only the account, while it has numbers: refused beside the choice, nothing deleted.
    let (status, refused) = post_form(
        &app,
        &deleter,
        path,
        &[("csrf", &csrf), ("numbers", "keep")],
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains(r#"id="numbers-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("still has numbers"));
    assert_eq!(app.get_account("contoso").await.status, 200);
    assert_eq!(app.get_number("contoso", "+15105850321").await.status, 200);
    // A forged form deletes nothing.
    let (status, _) = post_form(
        &app,
        &deleter,
        path,
        &[("csrf", "guessed"), ("numbers", "delete")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.get_account("contoso").await.status, 200);

    // With its numbers: they flow to the backend, so the account goes once the backend has
    // released them; meanwhile its page says so and offers no change.
    let (status, location) = post_form(
        &app,
        &deleter,
        path,
        &[("csrf", &csrf), ("numbers", "delete")],
    )
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/accounts/contoso");
    let (_, page) = page_of(&app, &deleter, &location).await;
    assert!(
        page.contains(r#"data-live="account:contoso" aria-live="polite">being deleted"#),
        "{page}"
    );
    assert!(!page.contains(r#"href="/portal/accounts/contoso/delete""#));
    // Meanwhile it cannot change: said above the form, which has no name field.
    let admin = signed_in(&app, &[Role::AdminUser]).await;
    let (status, form) = page_of(&app, &admin, "/portal/accounts/contoso/edit").await;
    assert_eq!(status, 200);
    let (status, refused) = post_form(
        &app,
        &admin,
        "/portal/accounts/contoso/edit",
        &[
            ("csrf", &form_token(&form)),
            ("tenant", TENANT),
            ("teamsOperatorConnect", "on"),
        ],
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.contains(r#"id="form-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("is being deleted"), "{refused}");
    app.backend_accepts(&["+15105850321", "+15105850322"]).await;
    assert_eq!(app.get_account("contoso").await.status, 404);
    assert_eq!(app.get_number("contoso", "+15105850321").await.status, 404);

    // Without numbers, the account alone: there is nothing to choose.
    let (_, confirm) = page_of(&app, &deleter, "/portal/accounts/fabrikam/delete").await;
    assert!(
        confirm.contains("The account holds no numbers"),
        "{confirm}"
    );
    assert!(!confirm.contains(r#"id="numbers-delete""#), "{confirm}");
    let (status, location) = post_form(
        &app,
        &deleter,
        "/portal/accounts/fabrikam/delete",
        &[("csrf", &csrf), ("numbers", "keep"), ("ticket", "CHG-20")],
    )
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/accounts?deleted=fabrikam");
    assert_eq!(app.get_account("fabrikam").await.status, 404);
    let metadata = last_event_metadata(&app, "account", "fabrikam").await;
    assert!(
        metadata.contains("CHG-20"),
        "the ticket is in the history: {metadata}"
    );
    let (_, list) = page_of(&app, &deleter, &location).await;
    assert!(list.contains("Account fabrikam is deleted"), "{list}");
    let (status, _) = page_of(&app, &deleter, "/portal/accounts/fabrikam/delete").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_reader_sees_no_write_actions_and_is_refused_when_forcing_each_form() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    app.record_consent(TENANT).await;
    wait_until_projected(&app, WAIT).await;
    let reader = signed_in(&app, &[Role::ReadUser]).await;
    let before = app.get_account("contoso").await;

    let (_, list) = page_of(&app, &reader, "/portal/accounts").await;
    assert!(!list.contains("/portal/new-account"), "{list}");
    let (_, page) = page_of(&app, &reader, "/portal/accounts/contoso").await;
    assert!(!page.contains("/portal/accounts/contoso/edit"), "{page}");
    assert!(!page.contains("/portal/accounts/contoso/delete"), "{page}");
    for link in [
        "/portal/accounts/contoso/numbers",
        "/portal/accounts/contoso/addresses",
        "/portal/history/account/contoso",
    ] {
        assert!(page.contains(&format!(r#"href="{link}""#)), "{link}");
        let (status, _) = page_of(&app, &reader, link).await;
        assert_eq!(status, 200, "{link} answers");
    }
    let (_, consent) = page_of(&app, &reader, &format!("/portal/consents/{TENANT}")).await;
    assert!(!consent.contains("/portal/new-account"), "{consent}");
    assert!(!consent.contains(r#"<label for="ticket">"#));
    let history = format!("/portal/history/consent/{TENANT}");
    assert!(consent.contains(&format!(r#"href="{history}""#)));
    assert_eq!(page_of(&app, &reader, &history).await.0, 200);
    let csrf = form_token(&page);

    for path in [
        "/portal/new-account",
        "/portal/accounts/contoso/edit",
        "/portal/accounts/contoso/delete",
    ] {
        let (status, _) = page_of(&app, &reader, path).await;
        assert_eq!(status, 403, "GET {path}");
    }
    let (status, _) = post_form(
        &app,
        &reader,
        "/portal/new-account",
        &new_account(&csrf, "sneaky", TENANT),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &reader,
        "/portal/accounts/contoso/edit",
        &[("csrf", &csrf), ("tenant", ""), ("teamsPhoneMobile", "on")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &reader,
        "/portal/accounts/contoso/delete",
        &[("csrf", &csrf), ("numbers", "delete")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &reader,
        &format!("/portal/consents/{TENANT}"),
        &[
            ("csrf", &csrf),
            ("status", "ConsentAcknowledged"),
            ("ticket", "T-1"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.get_account("sneaky").await.status, 404);
    assert_eq!(app.get_account("contoso").await.body, before.body);
    assert!(app.get_consent(TENANT).await.body["customerRelationship"].is_null());

    // A writer may not delete either.
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (status, _) = page_of(&app, &writer, "/portal/accounts/contoso/delete").await;
    assert_eq!(status, 403);
    let (_, page) = page_of(&app, &writer, "/portal/accounts/contoso").await;
    let (status, _) = post_form(
        &app,
        &writer,
        "/portal/accounts/contoso/delete",
        &[("csrf", &form_token(&page)), ("numbers", "delete")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.get_account("contoso").await.status, 200);
}

#[tokio::test]
async fn an_account_is_created_from_a_consent_with_its_tenant_filled_in() {
    let app = portal_app().await;
    app.record_consent(TENANT).await;
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let consent_path = format!("/portal/consents/{TENANT}");
    let (_, consent) = page_of(&app, &writer, &consent_path).await;
    assert!(
        consent.contains("<dt>Account</dt><dd>none yet</dd>"),
        "{consent}"
    );
    let link = format!("/portal/new-account?tenant={TENANT}");
    assert!(consent.contains(&format!(r#"href="{link}""#)), "{consent}");

    let (status, form) = page_of(&app, &writer, &link).await;
    assert_eq!(status, 200);
    assert!(
        form.contains(&format!(r#"name="tenant" value="{TENANT}""#)),
        "{form}"
    );
    let csrf = form_token(&form);
    let (status, location) = post_form(
        &app,
        &writer,
        "/portal/new-account",
        &new_account(&csrf, "contoso", TENANT),
    )
    .await;
    assert_eq!(status, 303, "{location}");
    let stored = app.get_account("contoso").await;
    assert_eq!(stored.body["serviceDetails"]["teamsTenantId"], TENANT);
    let (_, consent) = page_of(&app, &writer, &consent_path).await;
    assert!(
        consent.contains(r#"<dt>Account</dt><dd><a href="/portal/accounts/contoso">contoso</a>"#),
        "the consent links its account: {consent}"
    );
}

#[tokio::test]
async fn a_consent_answer_carries_its_ticket_into_the_history() {
    let app = portal_app().await;
    app.record_consent(TENANT).await;
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let path = format!("/portal/consents/{TENANT}");
    let (_, page) = page_of(&app, &writer, &path).await;
    assert!(page.contains(r#"<label for="ticket">"#));
    assert!(page.contains(r#"maxlength="64""#));
    assert!(
        page.contains(r#"id="comment-hint""#),
        "the reason's rule is said before sending"
    );
    let csrf = form_token(&page);
    let events = app.event_count().await;

    // A ticket id over 64 characters is refused beside its field, the answer kept.
    let long = "T".repeat(65);
    let (status, refused) = post_form(
        &app,
        &writer,
        &path,
        &[
            ("csrf", &csrf),
            ("status", "ContractTerminated"),
            ("comment", "Moved to another operator"),
            ("ticket", &long),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains(r#"id="ticket-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("64 characters"));
    assert!(refused.contains(r#"<option value="ContractTerminated" selected>"#));
    assert!(refused.contains("Moved to another operator"));
    assert!(refused.contains(&format!(r#"value="{long}""#)));
    assert_eq!(app.event_count().await, events);

    // Ending a contract without a reason: beside the comment, in words.
    let (status, refused) = post_form(
        &app,
        &writer,
        &path,
        &[
            ("csrf", &csrf),
            ("status", "ContractTerminated"),
            ("comment", ""),
            ("ticket", "CHG-1"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains(r#"id="comment-error" role="alert""#),
        "{refused}"
    );
    assert!(refused.contains("needs a reason"), "{refused}");
    assert!(refused.contains(r#"value="CHG-1""#), "the ticket stays");
    assert_eq!(app.event_count().await, events);

    let (status, location) = post_form(
        &app,
        &writer,
        &path,
        &[
            ("csrf", &csrf),
            ("status", "ConsentAcknowledged"),
            ("comment", ""),
            ("ticket", "CHG-4711"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{location}");
    let metadata = last_event_metadata(&app, "consent", TENANT).await;
    assert!(
        metadata.contains("CHG-4711"),
        "the ticket is in the audit trail: {metadata}"
    );
    let (_, page) = page_of(&app, &writer, &location).await;
    assert!(page.contains("ticket CHG-4711"), "{page}");
}

#[tokio::test]
async fn an_accounts_civic_addresses_are_listed_with_their_locations_and_elins() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let bare = tests::account_body_without_tenant("bare");
    assert_eq!(app.put_account("bare", &bare).await.status, 201);
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    app.record_civic_address(TENANT, "addr-2", "Seattle").await;
    app.record_civic_address(
        "0f6ad3b4-2d1b-4e8e-9c39-6f2c1e9b7a11",
        "addr-9",
        "Elsewhere",
    )
    .await;
    wait_until_projected(&app, WAIT).await;
    let reader = signed_in(&app, &[Role::ReadUser]).await;

    let (status, list) = page_of(&app, &reader, "/portal/accounts/contoso/addresses").await;
    assert_eq!(status, 200);
    assert!(list.contains("2 civic addresses in all"), "{list}");
    assert!(
        list.contains("1 Microsoft Way, Redmond, WA, 98052, US"),
        "{list}"
    );
    assert!(
        list.contains("<td>Contoso</td><td>Head office</td><td>yes</td>"),
        "{list}"
    );
    assert!(list.contains(r#"href="/portal/accounts/contoso/addresses/addr-2""#));
    assert!(!list.contains("Elsewhere"), "another tenant's address");

    let (status, detail) =
        page_of(&app, &reader, "/portal/accounts/contoso/addresses/addr-1").await;
    assert_eq!(status, 200);
    for text in [
        "<dt>Id</dt><dd>addr-1</dd>",
        "<dt>City or town</dt><dd>Redmond</dd>",
        "<td>addr-1-floor-1</td><td>Floor 1</td>",
        "<td>ELIN-1</td><td>yes</td>",
    ] {
        assert!(detail.contains(text), "{text}: {detail}");
    }
    let (status, _) = page_of(&app, &reader, "/portal/accounts/contoso/addresses/addr-9").await;
    assert_eq!(status, 404, "an address of another tenant");
    let (status, _) = page_of(&app, &reader, "/portal/accounts/contoso/addresses/nope").await;
    assert_eq!(status, 404);
    let (status, bare) = page_of(&app, &reader, "/portal/accounts/bare/addresses").await;
    assert_eq!(status, 200);
    assert!(bare.contains("has no Teams tenant yet"), "{bare}");
    let (status, _) = page_of(&app, &reader, "/portal/accounts/nobody/addresses").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn in_a_browser_staff_create_an_account_from_a_consent_edit_it_and_answer_the_consent() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    record_consent(
        &app,
        &tenant(7),
        ConsentStatus::Active,
        &["GB"],
        "Northwind",
    )
    .await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    wait_until_projected(&app, WAIT).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::AdminUser).await;

    // The consents, filtered by country through the form.
    browser.open(&app, "/portal/consents").await;
    assert!(browser.text("main").await.contains("2 consents in all"));
    browser.check_page("consents-filters").await;
    browser.fill("#filter-country", "us").await;
    browser.click(r#"form.filters button[type="submit"]"#).await;
    let main = browser.text("main").await;
    assert!(main.contains("1 matching consent in all"), "{main}");
    assert!(!main.contains("Northwind"), "{main}");
    browser.check_page("consents-filtered").await;
    browser
        .click(&format!(r#"main a[href="/portal/consents/{TENANT}"]"#))
        .await;
    assert_eq!(browser.text("h1").await, "Consent from Contoso");
    browser.check_page("consent-with-actions").await;

    // An account for the consent's tenant, its tenant filled in; a Direct Routing token left
    // out is said beside its field.
    browser
        .click(&format!(r#"a[href="/portal/new-account?tenant={TENANT}"]"#))
        .await;
    assert_eq!(browser.text("h1").await, "Create an account");
    assert_eq!(
        browser.attribute("#tenant", "value").await.as_deref(),
        Some(TENANT)
    );
    browser.check_page("account-create").await;
    browser.fill("#name", "contoso").await;
    browser.click("#teamsOperatorConnect").await;
    browser.click("#teamsDirectRouting").await;
    browser.fill("#subdomain", "contoso").await;
    browser.fill("#region1", "token-1").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    assert_eq!(browser.status().await, 400);
    let error = browser.text("#region2-error").await;
    assert!(error.contains("subdomain token"), "{error}");
    assert!(
        browser
            .attribute("#region2", "aria-describedby")
            .await
            .unwrap_or_default()
            .contains("region2-error")
    );
    assert_eq!(
        browser.attribute("#subdomain", "value").await.as_deref(),
        Some("contoso"),
        "what was typed stays"
    );
    browser.check_page("account-create-refused").await;
    assert_eq!(app.get_account("contoso").await.status, 404);
    browser.fill("#region2", "token-2").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("main", "The account is saved", WAIT)
        .await;
    browser.check_page("account-saved").await;
    let stored = app.get_account("contoso").await;
    assert_eq!(stored.body["serviceDetails"]["teamsTenantId"], TENANT);
    assert_eq!(
        stored.body["serviceDetails"]["teamsDirectRouting"]["configuration"]["subdomainTokens"]["region2Token"],
        "token-2"
    );

    // Edited: Teams Phone Mobile switched on, without flow-through.
    browser
        .click(r#"a[href="/portal/accounts/contoso/edit"]"#)
        .await;
    assert_eq!(browser.text("h1").await, "Edit account contoso");
    browser.check_page("account-edit").await;
    browser.click("#teamsPhoneMobile").await;
    browser.click("#teamsPhoneMobile-sync").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("main", "The account is saved", WAIT)
        .await;
    let edited = app.get_account("contoso").await;
    assert_eq!(
        edited.body["serviceDetails"]["teamsPhoneMobile"]["enabled"],
        true
    );
    assert_eq!(
        edited.body["serviceDetails"]["teamsPhoneMobile"]["syncEnabled"],
        false
    );

    // Its civic addresses, and one with its locations.
    browser
        .click(r#"a[href="/portal/accounts/contoso/addresses"]"#)
        .await;
    assert!(browser.text("main").await.contains("Redmond"));
    browser.check_page("civic-addresses").await;
    browser
        .click(r#"a[href="/portal/accounts/contoso/addresses/addr-1"]"#)
        .await;
    assert!(browser.text("main").await.contains("ELIN-1"));
    browser.check_page("civic-address").await;

    // Deleting asks first; keeping the account leaves it as it is.
    browser.open(&app, "/portal/accounts/contoso").await;
    browser
        .click(r#"a[href="/portal/accounts/contoso/delete"]"#)
        .await;
    assert_eq!(browser.text("h1").await, "Delete account contoso?");
    browser.check_page("account-delete").await;
    browser
        .click(r#"main p a[href="/portal/accounts/contoso"]"#)
        .await;
    assert_eq!(browser.text("h1").await, "Account contoso");
    assert_eq!(app.get_account("contoso").await.status, 200);

    // The consent now names its account; declining it without a reason is said beside the
    // comment, then answered with a reason and a ticket.
    browser
        .open(&app, &format!("/portal/consents/{TENANT}"))
        .await;
    assert!(browser.text("main").await.contains("contoso"));
    browser.choose("#status", "ConsentDeclined").await;
    browser.fill("#ticket", "CHG-77").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    assert_eq!(browser.status().await, 400);
    let error = browser.text("#comment-error").await;
    assert!(error.contains("needs a reason"), "{error}");
    browser.check_page("consent-answer-refused").await;
    browser
        .fill("#comment", "The customer chose another operator")
        .await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("main", "Your answer is recorded", WAIT)
        .await;
    let consent = app.get_consent(TENANT).await;
    assert_eq!(
        consent.body["customerRelationship"]["status"],
        "ConsentDeclined"
    );
    assert!(browser.text("main").await.contains("ticket CHG-77"));

    // The accounts, filtered by the start of a name.
    browser.open(&app, "/portal/accounts").await;
    browser.fill("#filter-name", "CON").await;
    browser.click(r#"form.filters button[type="submit"]"#).await;
    let main = browser.text("main").await;
    assert!(main.contains("1 matching account in all"), "{main}");
    browser.check_page("accounts-filtered").await;
    browser.close().await;
}
