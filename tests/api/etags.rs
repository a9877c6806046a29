//! Optimistic concurrency: the ETag of an account, a number or a consent is its aggregate's
//! version, quoted; `If-Match` and `If-None-Match` make a write conditional, and a condition
//! that does not hold is 412 "PreconditionFailed" with nothing written.

use reqwest::Method;
use serde_json::{Value, json};
use tests::{Answer, TENANT, TestApp, account_body, number_body, number_path, spawn_app};

const NUMBER: &str = "+15105850321";

fn quoted(version: u64) -> String {
    format!("\"{version}\"")
}

/// `PUT /accounts/{name}` with one precondition header.
async fn put_account_if(
    app: &TestApp,
    name: &str,
    body: &Value,
    header: &str,
    tag: &str,
) -> Answer {
    app.send(
        app.request(Method::PUT, &format!("/accounts/{name}"))
            .header(header, tag)
            .json(body),
    )
    .await
}

async fn put_number_if(
    app: &TestApp,
    number: &str,
    body: &Value,
    header: &str,
    tag: &str,
) -> Answer {
    app.send(
        app.request(Method::PUT, &number_path("contoso", number))
            .header(header, tag)
            .json(body),
    )
    .await
}

async fn patch_consent_if(app: &TestApp, body: &Value, tag: &str) -> Answer {
    app.send(
        app.request(
            Method::PATCH,
            &format!("/teamsRequestsForInformation/{TENANT}"),
        )
        .header("if-match", tag)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string()),
    )
    .await
}

/// The account with Teams Phone Mobile added: a real change.
fn changed_account(name: &str) -> Value {
    let mut body = account_body(name);
    body["serviceDetails"]["teamsPhoneMobile"] = json!({"enabled": true, "syncEnabled": true});
    body
}

fn number_with_header(number: &str, sip_header: &str) -> Value {
    let mut body = number_body("contoso", number);
    body["configuration"]["customSipHeader"] = json!(sip_header);
    body
}

fn relationship(status: &str) -> Value {
    json!({"customerRelationship": {"status": status}})
}

/// An account "contoso" with one number.
async fn account_with_number(app: &TestApp) {
    let account = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(account.status, 201, "setup: {account:?}");
    let number = app
        .put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    assert_eq!(number.status, 201, "setup: {number:?}");
}

// ---- the ETag is the version ------------------------------------------------------------

#[tokio::test]
async fn the_etag_is_the_aggregate_version() {
    let app = spawn_app().await;

    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.etag(), quoted(1));
    assert_eq!(app.get_account("contoso").await.etag(), quoted(1));
    let replaced = app
        .put_account("contoso", &changed_account("contoso"))
        .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.etag(), quoted(2));
    assert_eq!(app.get_account("contoso").await.etag(), quoted(2));
    let unchanged = app
        .put_account("contoso", &changed_account("contoso"))
        .await;
    assert_eq!(unchanged.etag(), quoted(2), "no change, no new version");

    let number = app
        .put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    assert_eq!(number.status, 201, "{number:?}");
    assert_eq!(number.etag(), quoted(1));
    assert_eq!(app.get_number("contoso", NUMBER).await.etag(), quoted(1));
    let number = app
        .put_number("contoso", NUMBER, &number_with_header(NUMBER, "changed"))
        .await;
    assert_eq!(number.status, 200, "{number:?}");
    assert_eq!(number.etag(), quoted(2));
    assert_eq!(app.get_number("contoso", NUMBER).await.etag(), quoted(2));

    app.record_consent(TENANT).await;
    assert_eq!(app.get_consent(TENANT).await.etag(), quoted(1));
    let patched = app
        .patch_consent(TENANT, &relationship("ConsentAcknowledged"))
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.etag(), quoted(2));
    assert_eq!(app.get_consent(TENANT).await.etag(), quoted(2));
}

// ---- If-Match ---------------------------------------------------------------------------

#[tokio::test]
async fn if_match_with_the_current_etag_succeeds() {
    let app = spawn_app().await;
    account_with_number(&app).await;
    app.record_consent(TENANT).await;

    let current = app.get_account("contoso").await.etag();
    let replaced = put_account_if(
        &app,
        "contoso",
        &changed_account("contoso"),
        "if-match",
        &current,
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_ne!(replaced.etag(), current);
    assert_eq!(replaced.etag(), app.get_account("contoso").await.etag());

    let current = app.get_number("contoso", NUMBER).await.etag();
    let number = put_number_if(
        &app,
        NUMBER,
        &number_with_header(NUMBER, "changed"),
        "if-match",
        &current,
    )
    .await;
    assert_eq!(number.status, 200, "{number:?}");
    assert_eq!(number.etag(), quoted(2));

    let current = app.get_consent(TENANT).await.etag();
    let patched = patch_consent_if(&app, &relationship("ConsentAcknowledged"), &current).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.etag(), quoted(2));

    let current = app.get_number("contoso", NUMBER).await.etag();
    let deleted = app
        .send(
            app.request(Method::DELETE, &number_path("contoso", NUMBER))
                .header("if-match", &current),
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.backend_accepts(&[NUMBER]).await;

    let current = app.get_account("contoso").await.etag();
    let deleted = app
        .send(
            app.request(Method::DELETE, "/accounts/contoso")
                .header("if-match", &current),
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    account_with_number(&app).await;
    let stale_account = app.get_account("contoso").await.etag();
    let stale_number = app.get_number("contoso", NUMBER).await.etag();
    app.put_account("contoso", &changed_account("contoso"))
        .await;
    app.put_number("contoso", NUMBER, &number_with_header(NUMBER, "moved-on"))
        .await;
    let account = app.get_account("contoso").await;
    let number = app.get_number("contoso", NUMBER).await;
    let events = app.event_count().await;

    let mut other = changed_account("contoso");
    other["serviceDetails"]["zoomPhoneCloudPeering"] =
        json!({"enabled": true, "syncEnabled": false});
    put_account_if(&app, "contoso", &other, "if-match", &stale_account)
        .await
        .assert_error(412, "PreconditionFailed");
    put_number_if(
        &app,
        NUMBER,
        &number_with_header(NUMBER, "stale"),
        "if-match",
        &stale_number,
    )
    .await
    .assert_error(412, "PreconditionFailed");
    // A tag that never was is just as stale.
    put_account_if(&app, "contoso", &other, "if-match", &quoted(99))
        .await
        .assert_error(412, "PreconditionFailed");

    assert_eq!(app.event_count().await, events, "nothing was written");
    let after = app.get_account("contoso").await;
    assert_eq!((&after.body, after.etag()), (&account.body, account.etag()));
    let after = app.get_number("contoso", NUMBER).await;
    assert_eq!((&after.body, after.etag()), (&number.body, number.etag()));
}

#[tokio::test]
async fn if_match_star_on_a_missing_resource_is_refused() {
    let app = spawn_app().await;
    put_account_if(&app, "contoso", &account_body("contoso"), "if-match", "*")
        .await
        .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, 0, "nothing was written");
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");

    app.put_account("contoso", &account_body("contoso")).await;
    let events = app.event_count().await;
    put_number_if(
        &app,
        NUMBER,
        &number_body("contoso", NUMBER),
        "if-match",
        "*",
    )
    .await
    .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, events, "nothing was written");
    app.get_number("contoso", NUMBER)
        .await
        .assert_error(404, "NotFound");

    // On an existing resource, * matches.
    let replaced = put_account_if(
        &app,
        "contoso",
        &changed_account("contoso"),
        "if-match",
        "*",
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
}

// ---- If-None-Match ----------------------------------------------------------------------

#[tokio::test]
async fn if_none_match_star_creates_but_never_replaces() {
    let app = spawn_app().await;
    let created = put_account_if(
        &app,
        "contoso",
        &account_body("contoso"),
        "if-none-match",
        "*",
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let events = app.event_count().await;
    put_account_if(
        &app,
        "contoso",
        &changed_account("contoso"),
        "if-none-match",
        "*",
    )
    .await
    .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, events, "nothing was written");
    assert!(app.get_account("contoso").await.body["serviceDetails"]["teamsPhoneMobile"].is_null());

    let created = put_number_if(
        &app,
        NUMBER,
        &number_body("contoso", NUMBER),
        "if-none-match",
        "*",
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let events = app.event_count().await;
    put_number_if(
        &app,
        NUMBER,
        &number_with_header(NUMBER, "replaced"),
        "if-none-match",
        "*",
    )
    .await
    .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, events, "nothing was written");
    assert_eq!(
        app.get_number("contoso", NUMBER).await.body["configuration"]["customSipHeader"],
        "contoso-commsgw"
    );
}

// ---- DELETE and PATCH -------------------------------------------------------------------

#[tokio::test]
async fn a_delete_with_a_stale_if_match_is_refused() {
    let app = spawn_app().await;
    account_with_number(&app).await;
    let stale_number = app.get_number("contoso", NUMBER).await.etag();
    app.put_number("contoso", NUMBER, &number_with_header(NUMBER, "moved-on"))
        .await;
    let stale_account = app.get_account("contoso").await.etag();
    app.put_account("contoso", &changed_account("contoso"))
        .await;
    let events = app.event_count().await;

    app.send(
        app.request(Method::DELETE, &number_path("contoso", NUMBER))
            .header("if-match", &stale_number),
    )
    .await
    .assert_error(412, "PreconditionFailed");
    app.send(
        app.request(Method::DELETE, "/accounts/contoso?deleteNumbers=true")
            .header("if-match", &stale_account),
    )
    .await
    .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, events, "nothing was written");
    assert_eq!(app.get_account("contoso").await.status, 200);
    assert_eq!(app.get_number("contoso", NUMBER).await.status, 200);

    let current = app.get_account("contoso").await.etag();
    let deleted = app
        .send(
            app.request(Method::DELETE, "/accounts/contoso?deleteNumbers=true")
                .header("if-match", &current),
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
}

#[tokio::test]
async fn a_consent_patch_with_a_stale_if_match_is_refused() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let stale = app.get_consent(TENANT).await.etag();
    app.patch_consent(TENANT, &relationship("ConsentAcknowledged"))
        .await;
    let consent = app.get_consent(TENANT).await;
    let events = app.event_count().await;

    patch_consent_if(&app, &relationship("CustomerContacted"), &stale)
        .await
        .assert_error(412, "PreconditionFailed");
    assert_eq!(app.event_count().await, events, "nothing was written");
    let after = app.get_consent(TENANT).await;
    assert_eq!((&after.body, after.etag()), (&consent.body, consent.etag()));

    let patched = patch_consent_if(&app, &relationship("CustomerContacted"), &consent.etag()).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(
        patched.body["customerRelationship"]["status"],
        "CustomerContacted"
    );
}

// ---- concurrent conditional writers -----------------------------------------------------

/// Exactly one answer is a success with `winner_status`; every other one is 412 (never 500,
/// never 409). Returns the winner.
#[track_caller]
fn the_one_winner(answers: Vec<Answer>, winner_status: u16) -> Answer {
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let mut winners = Vec::new();
    for answer in answers {
        if answer.status == winner_status {
            winners.push(answer);
        } else {
            answer.assert_error(412, "PreconditionFailed");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner among {statuses:?}");
    winners.remove(0)
}

#[tokio::test]
async fn concurrent_conditional_account_writers_have_exactly_one_winner() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let current = app.get_account("contoso").await.etag();

    // Eight different replacements, all conditional on the same version.
    let bodies: Vec<Value> = (0..8)
        .map(|_| {
            let mut body = changed_account("contoso");
            body["correlationId"] = json!(uuid::Uuid::new_v4().to_string());
            body
        })
        .collect();
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|body| put_account_if(&app, "contoso", body, "if-match", &current)),
    )
    .await;
    let winner = the_one_winner(answers, 200);

    let now = app.get_account("contoso").await;
    assert_eq!(now.body, winner.body, "the account is the winner's");
    assert_eq!(now.etag(), winner.etag());
    assert!(
        bodies
            .iter()
            .any(|b| b["correlationId"] == now.body["correlationId"]),
        "the winner's body was one of those sent"
    );
}

#[tokio::test]
async fn concurrent_conditional_number_writers_have_exactly_one_winner() {
    let app = spawn_app().await;
    account_with_number(&app).await;
    let current = app.get_number("contoso", NUMBER).await.etag();

    let answers = futures::future::join_all((0..8).map(|i| {
        let body = number_with_header(NUMBER, &format!("writer-{i}"));
        let current = current.clone();
        let app = &app;
        async move { put_number_if(app, NUMBER, &body, "if-match", &current).await }
    }))
    .await;
    let winner = the_one_winner(answers, 200);

    let now = app.get_number("contoso", NUMBER).await;
    assert_eq!(now.body, winner.body, "the number is the winner's");
    assert_eq!(now.etag(), winner.etag());
}

#[tokio::test]
async fn concurrent_creators_with_if_none_match_have_exactly_one_winner() {
    let app = spawn_app().await;
    let bodies: Vec<Value> = (0..8)
        .map(|_| {
            let mut body = account_body("contoso");
            body["correlationId"] = json!(uuid::Uuid::new_v4().to_string());
            body
        })
        .collect();
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|body| put_account_if(&app, "contoso", body, "if-none-match", "*")),
    )
    .await;
    let winner = the_one_winner(answers, 201);

    let now = app.get_account("contoso").await;
    assert_eq!(now.body, winner.body, "the account is the winner's");
    assert_eq!(now.etag(), quoted(1));
}

#[tokio::test]
async fn concurrent_conditional_consent_patches_have_exactly_one_winner() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let current = app.get_consent(TENANT).await.etag();

    let answers = futures::future::join_all((0..8).map(|i| {
        let body = json!({"customerRelationship":
            {"status": "ConsentAcknowledged", "comment": format!("writer-{i}")}});
        let current = current.clone();
        let app = &app;
        async move { patch_consent_if(app, &body, &current).await }
    }))
    .await;
    let winner = the_one_winner(answers, 200);

    let now = app.get_consent(TENANT).await;
    assert_eq!(now.body, winner.body, "the consent is the winner's");
    assert_eq!(now.etag(), winner.etag());
}
