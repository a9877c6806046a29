//! Safe retries: a write carrying `Repeatability-Request-ID` and `Repeatability-First-Sent` runs
//! once; a repeat (same caller, same id, same request) gets the first answer, whatever happened
//! since, and writes nothing. Also the echo of `x-ms-client-request-id`.
//!
//! To tell a replay from a second execution, most tests change the resource between the first
//! request and its repeat: a re-executed request would answer differently or write events.

use std::time::Duration;

use auth::Role;
use chrono::{DateTime, Utc};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tests::{
    API_VERSION, Answer, TENANT, TestApp, account_body, number_body, number_path, spawn_app,
};

const REQUEST_ID: &str = "Repeatability-Request-ID";
const FIRST_SENT: &str = "Repeatability-First-Sent";
const RESULT: &str = "Repeatability-Result";
const CLIENT_REQUEST_ID: &str = "x-ms-client-request-id";

/// An HTTP date (RFC 9110 IMF-fixdate), as `Repeatability-First-Sent` takes it.
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn now() -> String {
    http_date(Utc::now())
}

/// Adds the two repeatability headers.
fn repeatable(request: RequestBuilder, id: &str, first_sent: &str) -> RequestBuilder {
    request
        .header(REQUEST_ID, id)
        .header(FIRST_SENT, first_sent)
}

/// A request (with api-version) by an administrator whose token names `subject`.
fn request_by(app: &TestApp, subject: &str, method: Method, path: &str) -> RequestBuilder {
    let token = auth::mint_token(
        app.secret.as_bytes(),
        subject,
        &[Role::Admin],
        Duration::from_secs(600),
    );
    let separator = if path.contains('?') { '&' } else { '?' };
    app.client
        .request(
            method,
            format!("{}{path}{separator}api-version={API_VERSION}", app.address),
        )
        .bearer_auth(token)
}

fn consent_path(tenant: &str) -> String {
    format!("/teamsRequestsForInformation/{tenant}")
}

fn patch_consent(app: &TestApp, body: &Value) -> RequestBuilder {
    app.request(Method::PATCH, &consent_path(TENANT))
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
}

fn delete_body(numbers: &[&str]) -> Value {
    json!({"numbers": numbers.iter().map(|n| json!({"telephoneNumber": n})).collect::<Vec<_>>()})
}

#[track_caller]
fn assert_accepted(answer: &Answer) {
    assert_eq!(answer.header(RESULT), Some("accepted"), "{answer:?}");
}

#[track_caller]
fn assert_rejected(answer: &Answer) {
    assert_eq!(answer.header(RESULT), Some("rejected"), "{answer:?}");
}

/// `repeat` is `first` again: status, body, ETag, and `Repeatability-Result: accepted`.
#[track_caller]
fn assert_replayed(repeat: &Answer, first: &Answer) {
    assert_eq!(
        repeat.status, first.status,
        "the first status again: {repeat:?}"
    );
    assert_eq!(repeat.body, first.body, "the first body again");
    assert_eq!(
        repeat.header("etag"),
        first.header("etag"),
        "the first ETag again"
    );
    assert_eq!(
        repeat.header("x-ms-error-code"),
        first.header("x-ms-error-code"),
        "the first error code again"
    );
    assert_accepted(repeat);
}

// ---- repeats get the first answer -------------------------------------------------------

#[tokio::test]
async fn a_repeated_account_put_returns_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    let sent = now();
    let put = || {
        repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            "put-account-1",
            &sent,
        )
    };
    let first = app.send(put()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_accepted(&first);
    assert_eq!(first.etag(), "\"1\"");

    // The account moves on: executed again, the PUT would answer 200 with numberCount 1.
    let number = app
        .put_number(
            "contoso",
            "+15105850321",
            &number_body("contoso", "+15105850321"),
        )
        .await;
    assert_eq!(number.status, 201, "{number:?}");
    let events = app.event_count().await;

    let repeat = app.send(put()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(
        repeat.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"], 0,
        "the body of the first answer, not the account as it is now"
    );
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    let now = app.get_account("contoso").await;
    assert_eq!(
        now.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        1
    );
}

#[tokio::test]
async fn a_repeated_number_put_returns_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let sent = now();
    let number = "+15105850321";
    let put = || {
        repeatable(
            app.request(Method::PUT, &number_path("contoso", number))
                .json(&number_body("contoso", number)),
            "put-number-1",
            &sent,
        )
    };
    let first = app.send(put()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_accepted(&first);

    // Someone changes the number; executed again, the repeat would change it back.
    let mut changed = number_body("contoso", number);
    changed["configuration"]["customSipHeader"] = json!("changed");
    let replaced = app.put_number("contoso", number, &changed).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let events = app.event_count().await;

    let repeat = app.send(put()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    let now = app.get_number("contoso", number).await;
    assert_eq!(now.body["configuration"]["customSipHeader"], "changed");
}

#[tokio::test]
async fn a_repeated_batch_upsert_returns_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers = ["+15105850321", "+15105850322"];
    let body =
        json!({"numbers": numbers.iter().map(|n| number_body("contoso", n)).collect::<Vec<_>>()});
    let sent = now();
    let upsert = || {
        repeatable(
            app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers")
                .json(&body),
            "batch-upsert-1",
            &sent,
        )
    };
    let first = app.send(upsert()).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_accepted(&first);

    let mut changed = number_body("contoso", numbers[0]);
    changed["configuration"]["customSipHeader"] = json!("changed");
    app.put_number("contoso", numbers[0], &changed).await;
    let events = app.event_count().await;

    let repeat = app.send(upsert()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    let now = app.get_number("contoso", numbers[0]).await;
    assert_eq!(now.body["configuration"]["customSipHeader"], "changed");
}

#[tokio::test]
async fn a_repeated_batch_delete_answers_204_again_though_the_numbers_are_gone() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers = ["+15105850321", "+15105850322"];
    for number in numbers {
        app.put_number("contoso", number, &number_body("contoso", number))
            .await;
    }
    let sent = now();
    let delete = || {
        repeatable(
            app.request(Method::POST, "/accounts/contoso:deleteNumbers")
                .json(&delete_body(&numbers)),
            "batch-delete-1",
            &sent,
        )
    };
    let first = app.send(delete()).await;
    assert_eq!(first.status, 204, "{first:?}");
    assert_accepted(&first);
    // The backend releases them, which deletes them.
    app.backend_accepts(&numbers).await;
    let events = app.event_count().await;

    let repeat = app.send(delete()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(app.event_count().await, events, "a repeat writes no event");

    // Without the headers, the same request is carried out, and refused.
    let plain = app.delete_numbers("contoso", &numbers).await;
    assert!(
        plain.status == 404 || plain.status == 409,
        "deleting deleted numbers is refused: {plain:?}"
    );
}

#[tokio::test]
async fn a_repeated_account_delete_answers_204_again() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let sent = now();
    let delete = || {
        repeatable(
            app.request(Method::DELETE, "/accounts/contoso?deleteNumbers=true"),
            "delete-account-1",
            &sent,
        )
    };
    let first = app.send(delete()).await;
    assert_eq!(first.status, 204, "{first:?}");
    assert_accepted(&first);
    let events = app.event_count().await;

    let repeat = app.send(delete()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    app.delete_account("contoso", true)
        .await
        .assert_error(404, "AccountNotFound");
}

#[tokio::test]
async fn a_repeated_consent_patch_returns_the_first_answer_and_writes_nothing() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let acknowledge =
        json!({"customerRelationship": {"status": "ConsentAcknowledged", "comment": "ok"}});
    let sent = now();
    let patch = || repeatable(patch_consent(&app, &acknowledge), "patch-consent-1", &sent);
    let first = app.send(patch()).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_accepted(&first);

    let contacted = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "CustomerContacted"}}),
        )
        .await;
    assert_eq!(contacted.status, 200, "{contacted:?}");
    let events = app.event_count().await;

    let repeat = app.send(patch()).await;
    assert_replayed(&repeat, &first);
    assert_eq!(
        repeat.body["customerRelationship"]["status"],
        "ConsentAcknowledged"
    );
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    let now = app.get_consent(TENANT).await;
    assert_eq!(
        now.body["customerRelationship"]["status"],
        "CustomerContacted"
    );
}

#[tokio::test]
async fn a_repeat_of_a_refused_request_returns_the_same_refusal() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let sent = now();
    let delete = || {
        repeatable(
            app.request(Method::DELETE, "/accounts/contoso"),
            "refused-1",
            &sent,
        )
    };
    let first = app.send(delete()).await;
    first.assert_error(409, "AccountHasNumbers");
    assert_accepted(&first);

    // Now the delete would succeed if it were carried out again.
    app.delete_number("contoso", "+15105850321").await;
    let events = app.event_count().await;

    let repeat = app.send(delete()).await;
    repeat.assert_error(409, "AccountHasNumbers");
    assert_replayed(&repeat, &first);
    assert_eq!(app.event_count().await, events, "a repeat writes no event");
    assert_eq!(
        app.get_account("contoso").await.status,
        200,
        "the account is still there"
    );

    // An invalid request is answered the same way again, too.
    let bad = || {
        repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&json!({"name": "someone-else"})),
            "refused-2",
            &sent,
        )
    };
    let first = app.send(bad()).await;
    first.assert_error(400, "AccountNameMismatch");
    assert_replayed(&app.send(bad()).await, &first);
}

// ---- misuse is rejected -----------------------------------------------------------------

#[tokio::test]
async fn the_same_id_with_a_different_request_is_rejected() {
    let app = spawn_app().await;
    let sent = now();
    let first = app
        .send(repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            "reused-1",
            &sent,
        ))
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    let events = app.event_count().await;

    let mut other_body = account_body("contoso");
    other_body["serviceDetails"]["teamsPhoneMobile"] =
        json!({"enabled": true, "syncEnabled": true});
    let different_body = app
        .send(repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&other_body),
            "reused-1",
            &sent,
        ))
        .await;
    different_body.assert_error(409, "RepeatabilityRequestIdReused");
    assert_rejected(&different_body);

    let different_path = app
        .send(repeatable(
            app.request(Method::PUT, "/accounts/fabrikam")
                .json(&account_body("fabrikam")),
            "reused-1",
            &sent,
        ))
        .await;
    different_path.assert_error(409, "RepeatabilityRequestIdReused");
    assert_rejected(&different_path);

    assert_eq!(app.event_count().await, events, "nothing was written");
    let account = app.get_account("contoso").await;
    assert!(
        account.body["serviceDetails"]["teamsPhoneMobile"].is_null(),
        "{account:?}"
    );
    app.get_account("fabrikam")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn a_request_id_without_first_sent_is_refused() {
    let app = spawn_app().await;
    let put = || {
        app.request(Method::PUT, "/accounts/contoso")
            .json(&account_body("contoso"))
            .header(REQUEST_ID, "no-first-sent")
    };
    let refused = app.send(put()).await;
    refused.assert_error(400, "MissingRepeatabilityFirstSent");
    assert_rejected(&refused);
    assert_eq!(app.event_count().await, 0, "nothing was written");
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");

    // The refusal did not use the id up.
    let accepted = app.send(put().header(FIRST_SENT, now())).await;
    assert_eq!(accepted.status, 201, "{accepted:?}");
    assert_accepted(&accepted);
}

#[tokio::test]
async fn a_malformed_first_sent_is_refused() {
    let app = spawn_app().await;
    for (i, first_sent) in [
        "yesterday",
        "2024-13-45T07:58:49Z",
        "2024-01-18 07:58",
        "1705564729",
        "Thu, 45 Jan 2024 07:58:49 GMT",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let refused = app
            .send(repeatable(
                app.request(Method::PUT, "/accounts/contoso")
                    .json(&account_body("contoso")),
                &format!("malformed-{i}"),
                first_sent,
            ))
            .await;
        assert_eq!(
            refused.status, 400,
            "First-Sent '{first_sent}': {refused:?}"
        );
        assert_eq!(refused.error_target(), Some(FIRST_SENT), "{refused:?}");
        assert_rejected(&refused);
    }
    assert_eq!(app.event_count().await, 0, "nothing was written");
}

#[tokio::test]
async fn a_first_sent_in_rfc_3339_as_the_public_openapi_declares_it_is_accepted() {
    let app = spawn_app().await;
    let first_sent = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let put = || {
        repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            "rfc3339-1",
            &first_sent,
        )
    };
    let first = app.send(put()).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_accepted(&first);
    // The repeat gets the first answer.
    let repeat = app.send(put()).await;
    assert_eq!(repeat.status, 201, "{repeat:?}");
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn a_first_sent_older_than_24_hours_is_expired() {
    let app = spawn_app().await;
    let put = |id: &str, first_sent: DateTime<Utc>| {
        repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            id,
            &http_date(first_sent),
        )
    };
    let expired = app
        .send(put("old-1", Utc::now() - chrono::Duration::hours(25)))
        .await;
    expired.assert_error(400, "RepeatabilityExpired");
    assert_rejected(&expired);
    assert_eq!(app.event_count().await, 0, "nothing was written");

    let in_time = app
        .send(put("old-2", Utc::now() - chrono::Duration::hours(23)))
        .await;
    assert_eq!(in_time.status, 201, "{in_time:?}");
    assert_accepted(&in_time);
}

// ---- callers and concurrency ------------------------------------------------------------

#[tokio::test]
async fn two_callers_may_use_the_same_request_id() {
    let app = spawn_app().await;
    let sent = now();
    let put = |subject: &str, account: &str| {
        repeatable(
            request_by(&app, subject, Method::PUT, &format!("/accounts/{account}"))
                .json(&account_body(account)),
            "shared-id",
            &sent,
        )
    };
    let alice = app.send(put("alice", "contoso")).await;
    assert_eq!(alice.status, 201, "{alice:?}");
    assert_accepted(&alice);

    // Bob's identical request is his own: carried out (the account exists now: 200), not
    // answered with Alice's 201.
    let bob = app.send(put("bob", "contoso")).await;
    assert_eq!(bob.status, 200, "{bob:?}");
    assert_accepted(&bob);

    // Carol's different request is not a reuse of someone else's id.
    let carol = app.send(put("carol", "fabrikam")).await;
    assert_eq!(carol.status, 201, "{carol:?}");
    assert_accepted(&carol);

    // Each still gets their own first answer.
    assert_replayed(&app.send(put("alice", "contoso")).await, &alice);
    assert_replayed(&app.send(put("bob", "contoso")).await, &bob);
    assert_replayed(&app.send(put("carol", "fabrikam")).await, &carol);
    // And within one caller the id stays bound to its request.
    app.send(put("alice", "fabrikam"))
        .await
        .assert_error(409, "RepeatabilityRequestIdReused");
}

#[tokio::test]
async fn concurrent_identical_repeats_are_carried_out_once() {
    let app = spawn_app().await;
    // How many events creating an account writes.
    let before = app.event_count().await;
    app.put_account("reference", &account_body("reference"))
        .await;
    let per_creation = app.event_count().await - before;
    assert!(per_creation > 0);

    let before = app.event_count().await;
    let sent = now();
    let put = || {
        repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            "burst-1",
            &sent,
        )
    };
    let answers = futures::future::join_all((0..10).map(|_| app.send(put()))).await;
    assert_eq!(
        app.event_count().await - before,
        per_creation,
        "ten identical repeats, one execution"
    );

    let first = app.send(put()).await;
    assert_eq!(
        first.status, 201,
        "the first answer was a creation: {first:?}"
    );
    let mut replays = 0;
    for answer in &answers {
        if answer.status == 409 {
            answer.assert_error(409, "RepeatableRequestInProgress");
        } else {
            assert_replayed(answer, &first);
            replays += 1;
        }
    }
    assert!(
        replays >= 1,
        "at least the executing request answered: {answers:?}"
    );
}

#[tokio::test]
async fn a_get_with_repeatability_headers_is_just_served() {
    let app = spawn_app().await;
    let sent = now();
    let created = app
        .send(repeatable(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
            "get-1",
            &sent,
        ))
        .await;
    assert_eq!(created.status, 201, "{created:?}");

    let get = || {
        repeatable(
            app.request(Method::GET, "/accounts/contoso"),
            "get-1",
            &sent,
        )
    };
    let read = app.send(get()).await;
    assert_eq!(read.status, 200, "a read, not the PUT's answer: {read:?}");

    let mut changed = account_body("contoso");
    changed["serviceDetails"]["teamsPhoneMobile"] = json!({"enabled": true, "syncEnabled": true});
    app.put_account("contoso", &changed).await;
    let again = app.send(get()).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        again.body["serviceDetails"]["teamsPhoneMobile"]["enabled"], true,
        "not replayed"
    );
    assert_ne!(again.etag(), read.etag());

    // The headers are not checked on a read either.
    let unchecked = app
        .send(
            app.request(Method::GET, "/accounts/contoso")
                .header(REQUEST_ID, "get-2"),
        )
        .await;
    assert_eq!(unchecked.status, 200, "{unchecked:?}");
}

// ---- x-ms-client-request-id -------------------------------------------------------------

#[tokio::test]
async fn the_client_request_id_is_echoed_on_success_and_on_errors() {
    let app = spawn_app().await;
    let echoed = |answer: &Answer, id: &str| {
        assert_eq!(answer.header(CLIENT_REQUEST_ID), Some(id), "{answer:?}");
    };

    let created = app
        .send(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso"))
                .header(CLIENT_REQUEST_ID, "c-201"),
        )
        .await;
    assert_eq!(created.status, 201);
    echoed(&created, "c-201");

    let read = app
        .send(
            app.request(Method::GET, "/accounts/contoso")
                .header(CLIENT_REQUEST_ID, "c-200"),
        )
        .await;
    assert_eq!(read.status, 200);
    echoed(&read, "c-200");

    let deleted = app
        .send(
            app.request(Method::DELETE, &number_path("contoso", "+15105850399"))
                .header(CLIENT_REQUEST_ID, "c-404"),
        )
        .await;
    assert_eq!(deleted.status, 404, "{deleted:?}");
    echoed(&deleted, "c-404");

    let invalid = app
        .send(
            app.request(Method::PUT, "/accounts/contoso")
                .json(&json!({"name": 7}))
                .header(CLIENT_REQUEST_ID, "c-400"),
        )
        .await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
    echoed(&invalid, "c-400");

    let no_version = app
        .send(
            app.client
                .get(format!("{}/accounts/contoso", app.address))
                .bearer_auth(app.admin())
                .header(CLIENT_REQUEST_ID, "c-version"),
        )
        .await;
    no_version.assert_error(400, "MissingApiVersionParameter");
    echoed(&no_version, "c-version");

    let anonymous = app
        .send(
            app.client
                .get(format!(
                    "{}/accounts/contoso?api-version={API_VERSION}",
                    app.address
                ))
                .header(CLIENT_REQUEST_ID, "c-401"),
        )
        .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    echoed(&anonymous, "c-401");

    // A replayed answer echoes the repeat's id, not the first request's.
    let sent = now();
    let put = |id: &str| {
        repeatable(
            app.request(Method::PUT, "/accounts/fabrikam")
                .json(&account_body("fabrikam")),
            "echo-1",
            &sent,
        )
        .header(CLIENT_REQUEST_ID, id)
    };
    echoed(&app.send(put("c-first")).await, "c-first");
    let repeat = app.send(put("c-repeat")).await;
    assert_eq!(repeat.status, 201);
    echoed(&repeat, "c-repeat");
    let reused = app
        .send(
            repeatable(
                app.request(Method::DELETE, "/accounts/fabrikam"),
                "echo-1",
                &sent,
            )
            .header(CLIENT_REQUEST_ID, "c-reused"),
        )
        .await;
    reused.assert_error(409, "RepeatabilityRequestIdReused");
    echoed(&reused, "c-reused");
}

#[tokio::test]
async fn first_sent_is_accepted_in_every_http_date_format() {
    // RFC 9110 §5.6.7: a recipient that parses an HTTP-date MUST accept IMF-fixdate and the
    // obsolete RFC 850 and asctime formats.
    let app = spawn_app().await;
    let at = Utc::now() - chrono::Duration::minutes(1);
    let formats = [
        (
            "imf-fixdate",
            at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
        ("rfc850", at.format("%A, %d-%b-%y %H:%M:%S GMT").to_string()),
        ("asctime", at.format("%a %b %e %H:%M:%S %Y").to_string()),
    ];
    let mut refused = Vec::new();
    for (i, (format, first_sent)) in formats.iter().enumerate() {
        let account = format!("account-{i}");
        let answer = app
            .send(repeatable(
                app.request(Method::PUT, &format!("/accounts/{account}"))
                    .json(&account_body(&account)),
                &format!("format-{i}"),
                first_sent,
            ))
            .await;
        if answer.status == 201 {
            assert_accepted(&answer);
        } else {
            refused.push(format!(
                "{format} '{first_sent}': {} {}",
                answer.status, answer.body
            ));
        }
    }
    assert!(
        refused.is_empty(),
        "HTTP dates refused:\n{}",
        refused.join("\n")
    );
}
