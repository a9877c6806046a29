//! Flow-through provisioning as the API shows it: deletions that wait for the backend's
//! release, the outcomes the provisioning saga records (sent here through the command service,
//! the saga's own path), retries of failed provisioning, and the list of failures.

use std::time::Duration;

use auth::Role;
use commands::{NumberOutcome, saga_metadata};
use domain::{AccountName, E164, ProvisioningError, TenantId};
use reqwest::Method;
use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{Answer, TENANT, TestApp, account_body, number_body, number_path, spawn_app};

const NUMBER: &str = "+15105850321";

fn e164(number: &str) -> E164 {
    E164::parse(number).expect("a number")
}

fn backend_error(code: &str) -> Vec<ProvisioningError> {
    vec![ProvisioningError {
        code: code.to_string(),
        message: format!("the backend says {code}"),
    }]
}

/// contoso (Operator Connect flowing to the backend) with `numbers`.
async fn account_with(app: &TestApp, numbers: &[&str]) {
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "setup: {created:?}");
    for number in numbers {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert_eq!(put.status, 201, "setup: {put:?}");
    }
}

async fn retry_number(app: &TestApp, number: &str) -> Answer {
    app.send(app.request(
        Method::POST,
        &format!("{}:retryProvisioning", number_path("contoso", number)),
    ))
    .await
}

async fn retry_account(app: &TestApp, account: &str) -> Answer {
    app.send(app.request(
        Method::POST,
        &format!("/accounts/{account}:retryProvisioning"),
    ))
    .await
}

async fn retry_consent(app: &TestApp, tenant: &str) -> Answer {
    app.send(app.request(
        Method::POST,
        &format!("/teamsRequestsForInformation/{tenant}:retryProvisioning"),
    ))
    .await
}

async fn failures(app: &TestApp, query: &str) -> Answer {
    app.send(app.request(Method::GET, &format!("/provisioning/failures{query}")))
        .await
}

/// The sync version of a number, as the saga reads it.
async fn sync_version(app: &TestApp, number: &str) -> u64 {
    app.commands
        .number(&e164(number))
        .await
        .expect("loads")
        .aggregate
        .state
        .expect("exists")
        .sync
        .version
}

async fn event_types(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .expect("events")
}

// ---- deleting a number -------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_synced_number_completes_when_the_backend_confirms_the_release() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    app.backend_accepts(&[NUMBER]).await;

    let deleted = app.delete_number("contoso", NUMBER).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let deleting = app.get_number("contoso", NUMBER).await;
    assert_eq!(deleting.status, 200, "the number stays until released");
    assert_eq!(deleting.body["serviceProvisioningStatus"], "pending");
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"], 1,
        "still a member"
    );

    app.backend_accepts(&[NUMBER]).await;
    app.get_number("contoso", NUMBER)
        .await
        .assert_error(404, "NotFound");
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        0
    );
    assert_eq!(
        event_types(&app, NUMBER).await,
        [
            "NumberAdded",
            "NumberProvisioned",
            "NumberDeletionRequested",
            "NumberDeleted"
        ]
    );
    // The deletion is the saga's, and the number left its account with it.
    let deleted_by: Vec<String> = sqlx::query_scalar(
        "SELECT metadata->>'subject' FROM events WHERE event_type = 'NumberDeleted'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("deletions");
    assert_eq!(deleted_by, ["nmp-saga"]);
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM account_numbers")
        .fetch_one(&app.pool)
        .await
        .expect("memberships");
    assert_eq!(members, 0);
    // Gone for good: free for any account, and the account may go without deleteNumbers.
    let deleted = app.delete_account("contoso", false).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
}

#[tokio::test]
async fn a_number_whose_services_do_not_flow_to_the_backend_is_deleted_at_once() {
    let app = spawn_app().await;
    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsOperatorConnect"]["syncEnabled"] = json!(false);
    assert_eq!(app.put_account("contoso", &account).await.status, 201);
    app.put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
    app.get_number("contoso", NUMBER)
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn a_refused_release_leaves_the_number_failed_with_the_backend_errors() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
    app.backend_refuses(&[NUMBER], "NumberInUse").await;

    let failed = app.get_number("contoso", NUMBER).await;
    assert_eq!(failed.status, 200, "{failed:?}");
    assert_eq!(failed.body["serviceProvisioningStatus"], "failed");
    assert_eq!(
        failed.body["serviceProvisioningErrors"],
        json!([{"code": "NumberInUse", "message": "the backend says NumberInUse"}])
    );
    // Still being deleted: changes are refused, a repeated delete changes nothing.
    app.put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await
        .assert_error(409, "NumberBeingDeleted");
    let events = app.event_count().await;
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
    assert_eq!(app.event_count().await, events, "asked already");

    // A retry asks for the release again; the confirmation then deletes the number.
    let retried = retry_number(&app, NUMBER).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.body["serviceProvisioningStatus"], "pending");
    assert_eq!(retried.body["serviceProvisioningErrors"], json!([]));
    app.backend_accepts(&[NUMBER]).await;
    app.get_number("contoso", NUMBER)
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn changes_to_a_number_being_deleted_are_refused() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER, "+15105850322"]).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
    let events = app.event_count().await;

    let refused = app
        .put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    refused.assert_error(409, "NumberBeingDeleted");
    assert_eq!(refused.error_target(), Some("telephoneNumber"));
    let batch = app
        .upsert_numbers(
            "contoso",
            &json!({"numbers": [number_body("contoso", "+15105850322"), number_body("contoso", NUMBER)]}),
        )
        .await;
    batch.assert_error(409, "InvalidBatch");
    assert_eq!(
        batch.body["error"]["details"][0]["code"],
        "NumberBeingDeleted"
    );
    assert_eq!(
        batch.body["error"]["details"][0]["target"],
        "numbers[1].telephoneNumber"
    );
    // Another account cannot take it either: it still belongs to contoso.
    app.put_number("fabrikam", NUMBER, &number_body("fabrikam", NUMBER))
        .await
        .assert_error(409, "NumberInAnotherAccount");
    // Deleting it again, alone or in a batch, is accepted and changes nothing.
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
    assert_eq!(app.delete_numbers("contoso", &[NUMBER]).await.status, 204);
    assert_eq!(app.event_count().await, events, "nothing was written");
}

// ---- outcomes recorded by the saga ---------------------------------------------------------

#[tokio::test]
async fn outcomes_apply_in_one_commit_and_stale_repeated_or_unknown_ones_change_nothing() {
    let app = spawn_app().await;
    let numbers = ["+15105850001", "+15105850002", "+15105850003"];
    account_with(&app, &numbers).await;
    let version = sync_version(&app, numbers[0]).await;
    assert_eq!(version, 1);

    let outcomes = vec![
        NumberOutcome {
            telephone_number: e164(numbers[0]),
            for_version: 1,
            result: Ok(()),
        },
        NumberOutcome {
            telephone_number: e164(numbers[1]),
            for_version: 1,
            result: Err(backend_error("LocationRequired")),
        },
        // A superseded change, a number nmp does not know: nothing.
        NumberOutcome {
            telephone_number: e164(numbers[2]),
            for_version: 0,
            result: Ok(()),
        },
        NumberOutcome {
            telephone_number: e164("+15105859999"),
            for_version: 1,
            result: Ok(()),
        },
    ];
    let before = app.event_count().await;
    app.commands
        .record_number_outcomes(outcomes.clone(), &saga_metadata())
        .await
        .expect("recorded");
    assert_eq!(app.event_count().await, before + 2);
    let commits: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT tx_id) FROM events WHERE metadata->>'subject' = 'nmp-saga'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(commits, 1, "one commit for the whole answer");
    let roles: Value = sqlx::query_scalar(
        "SELECT metadata->'roles' FROM events WHERE metadata->>'subject' = 'nmp-saga' LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("roles");
    assert_eq!(roles, json!(["system"]));

    let synced = app.get_number("contoso", numbers[0]).await;
    assert_eq!(synced.body["serviceProvisioningStatus"], "synced");
    let failed = app.get_number("contoso", numbers[1]).await;
    assert_eq!(failed.body["serviceProvisioningStatus"], "failed");
    assert_eq!(
        failed.body["serviceProvisioningErrors"][0]["code"],
        "LocationRequired"
    );
    let pending = app.get_number("contoso", numbers[2]).await;
    assert_eq!(pending.body["serviceProvisioningStatus"], "pending");

    // Delivered twice: nothing more.
    app.commands
        .record_number_outcomes(outcomes, &saga_metadata())
        .await
        .expect("recorded again");
    assert_eq!(app.event_count().await, before + 2);
    // An empty answer is no commit.
    app.commands
        .record_number_outcomes(Vec::new(), &saga_metadata())
        .await
        .expect("nothing to record");
    assert_eq!(app.event_count().await, before + 2);
}

#[tokio::test]
async fn answers_for_one_number_apply_in_order() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    let answer = |result| NumberOutcome {
        telephone_number: e164(NUMBER),
        for_version: 1,
        result,
    };
    app.commands
        .record_number_outcomes(
            vec![answer(Err(backend_error("Timeout"))), answer(Ok(()))],
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    let number = app.get_number("contoso", NUMBER).await;
    assert_eq!(number.body["serviceProvisioningStatus"], "synced");
    assert_eq!(
        event_types(&app, NUMBER).await,
        [
            "NumberAdded",
            "NumberProvisioningFailed",
            "NumberProvisioned"
        ]
    );
}

#[tokio::test]
async fn account_and_consent_outcomes_are_recorded_once() {
    let app = spawn_app().await;
    account_with(&app, &[]).await;
    let contoso = AccountName::parse("contoso").expect("a name");
    app.commands
        .record_account_outcome(
            &contoso,
            1,
            Err(backend_error("TenantNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    let account = app.get_account("contoso").await;
    assert_eq!(account.body["serviceProvisioningStatus"], "failed");
    let events = app.event_count().await;
    app.commands
        .record_account_outcome(
            &contoso,
            1,
            Err(backend_error("TenantNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded again");
    app.commands
        .record_account_outcome(
            &AccountName::parse("nobody").expect("a name"),
            1,
            Ok(()),
            &saga_metadata(),
        )
        .await
        .expect("a missing account is no error");
    assert_eq!(app.event_count().await, events);

    app.record_consent(TENANT).await;
    let tenant = TenantId::parse(TENANT).expect("a tenant");
    let patched = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
        )
        .await;
    assert_eq!(patched.body["serviceProvisioningStatus"], "pending");
    app.commands
        .record_consent_outcome(&tenant, 2, Ok(()), &saga_metadata())
        .await
        .expect("recorded");
    let consent = app.get_consent(TENANT).await;
    assert_eq!(consent.body["serviceProvisioningStatus"], "synced");
    let events = app.event_count().await;
    app.commands
        .record_consent_outcome(&tenant, 2, Ok(()), &saga_metadata())
        .await
        .expect("recorded again");
    app.commands
        .record_consent_outcome(&tenant, 1, Err(backend_error("Late")), &saga_metadata())
        .await
        .expect("a stale answer is no error");
    assert_eq!(app.event_count().await, events);
}

// ---- deleting an account with its numbers ----------------------------------------------------

#[tokio::test]
async fn deleting_an_account_with_numbers_to_release_waits_for_the_last_release() {
    let app = spawn_app().await;
    // Operator Connect numbers flow to the backend; a Zoom one does not.
    let mut body = account_body("contoso");
    body["serviceDetails"]["zoomPhoneCloudPeering"] =
        json!({"enabled": true, "syncEnabled": false});
    assert_eq!(app.put_account("contoso", &body).await.status, 201);
    let released = ["+15105850001", "+15105850002"];
    for number in released {
        app.put_number("contoso", number, &number_body("contoso", number))
            .await;
    }
    let local = "+15105850003";
    let put = app
        .put_number(
            "contoso",
            local,
            &json!({"telephoneNumber": local, "serviceDetails": {"zoomPhoneCloudPeering": {"enabled": true}}}),
        )
        .await;
    assert_eq!(put.status, 201, "{put:?}");
    app.record_consent(TENANT).await;
    assert_eq!(app.get_consent(TENANT).await.body["accountName"], "contoso");

    let deleted = app.delete_account("contoso", true).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.get_number("contoso", local)
        .await
        .assert_error(404, "NotFound");
    for number in released {
        let deleting = app.get_number("contoso", number).await;
        assert_eq!(deleting.body["serviceProvisioningStatus"], "pending");
    }
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.status, 200,
        "the account stays meanwhile: {account:?}"
    );
    assert_eq!(app.get_consent(TENANT).await.body["accountName"], "contoso");

    // Meanwhile it refuses changes; deleting it again changes nothing.
    app.put_account("contoso", &body)
        .await
        .assert_error(409, "AccountBeingDeleted");
    app.put_number(
        "contoso",
        "+15105850004",
        &number_body("contoso", "+15105850004"),
    )
    .await
    .assert_error(409, "AccountBeingDeleted");
    app.upsert_numbers(
        "contoso",
        &json!({"numbers": [number_body("contoso", "+15105850004")]}),
    )
    .await
    .assert_error(409, "AccountBeingDeleted");
    let events = app.event_count().await;
    assert_eq!(app.delete_account("contoso", true).await.status, 204);
    assert_eq!(app.delete_account("contoso", false).await.status, 204);
    assert_eq!(app.event_count().await, events);

    app.backend_accepts(&released[..1]).await;
    assert_eq!(app.get_account("contoso").await.status, 200, "one to go");
    app.backend_accepts(&released[1..]).await;
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
    let consent = app.get_consent(TENANT).await;
    assert!(consent.body.get("accountName").is_none(), "{consent:?}");
    assert_eq!(
        event_types(&app, "contoso")
            .await
            .last()
            .map(String::as_str),
        Some("AccountDeleted")
    );
    // The name is free again.
    assert_eq!(app.put_account("contoso", &body).await.status, 201);
}

#[tokio::test]
async fn a_refused_release_keeps_the_account_being_deleted() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    assert_eq!(app.delete_account("contoso", true).await.status, 204);
    app.backend_refuses(&[NUMBER], "NumberInUse").await;
    let account = app.get_account("contoso").await;
    assert_eq!(account.status, 200, "{account:?}");
    app.put_account("contoso", &account_body("contoso"))
        .await
        .assert_error(409, "AccountBeingDeleted");
    assert_eq!(retry_number(&app, NUMBER).await.status, 200);
    app.backend_accepts(&[NUMBER]).await;
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn an_account_whose_numbers_are_all_being_deleted_needs_no_delete_numbers() {
    let app = spawn_app().await;
    account_with(&app, &["+15105850001", "+15105850002"]).await;
    assert_eq!(
        app.delete_number("contoso", "+15105850001").await.status,
        204
    );
    app.delete_account("contoso", false)
        .await
        .assert_error(409, "AccountHasNumbers");
    assert_eq!(
        app.delete_number("contoso", "+15105850002").await.status,
        204
    );
    let deleted = app.delete_account("contoso", false).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.put_account("contoso", &account_body("contoso"))
        .await
        .assert_error(409, "AccountBeingDeleted");
    app.backend_accepts(&["+15105850001", "+15105850002"]).await;
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn an_account_whose_numbers_need_no_release_is_deleted_at_once() {
    let app = spawn_app().await;
    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsOperatorConnect"]["syncEnabled"] = json!(false);
    assert_eq!(app.put_account("contoso", &account).await.status, 201);
    app.put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    assert_eq!(app.delete_account("contoso", true).await.status, 204);
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
    app.get_number("contoso", NUMBER)
        .await
        .assert_error(404, "NotFound");
}

// ---- retries ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_number_can_be_retried_and_goes_back_to_pending() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    retry_number(&app, NUMBER)
        .await
        .assert_error(409, "ProvisioningNotFailed");
    app.backend_refuses(&[NUMBER], "LocationRequired").await;
    let failed = app.get_number("contoso", NUMBER).await;

    let retried = retry_number(&app, NUMBER).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.etag(), "\"3\"");
    assert_eq!(retried.body["serviceProvisioningStatus"], "pending");
    assert_eq!(
        retried.body["serviceDetails"], failed.body["serviceDetails"],
        "the same details"
    );
    assert_eq!(
        sync_version(&app, NUMBER).await,
        3,
        "a new version to answer"
    );
    let again = retry_number(&app, NUMBER).await;
    again.assert_error(409, "ProvisioningNotFailed");
    assert_eq!(again.error_target(), Some("serviceProvisioningStatus"));
    app.backend_accepts(&[NUMBER]).await;
    retry_number(&app, NUMBER)
        .await
        .assert_error(409, "ProvisioningNotFailed");

    // If-Match applies; other accounts' numbers and missing ones are not found.
    app.backend_refuses(&[NUMBER], "LocationRequired").await;
    let stale = app
        .send(
            app.request(
                Method::POST,
                &format!("{}:retryProvisioning", number_path("contoso", NUMBER)),
            )
            .header("if-match", "\"1\""),
        )
        .await;
    stale.assert_error(412, "PreconditionFailed");
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.send(app.request(
        Method::POST,
        &format!("{}:retryProvisioning", number_path("fabrikam", NUMBER)),
    ))
    .await
    .assert_error(409, "NumberInAnotherAccount");
    retry_number(&app, "+15105850999")
        .await
        .assert_error(404, "NumberNotFound");
}

#[tokio::test]
async fn failed_accounts_and_consents_can_be_retried() {
    let app = spawn_app().await;
    account_with(&app, &[]).await;
    retry_account(&app, "contoso")
        .await
        .assert_error(409, "ProvisioningNotFailed");
    let contoso = AccountName::parse("contoso").expect("a name");
    app.commands
        .record_account_outcome(
            &contoso,
            1,
            Err(backend_error("TenantNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    let retried = retry_account(&app, "contoso").await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.body["serviceProvisioningStatus"], "pending");
    assert_eq!(retried.etag(), "\"3\"");
    retry_account(&app, "nobody")
        .await
        .assert_error(404, "AccountNotFound");

    app.record_consent(TENANT).await;
    retry_consent(&app, TENANT)
        .await
        .assert_error(409, "ProvisioningNotFailed");
    app.patch_consent(
        TENANT,
        &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
    )
    .await;
    let tenant = TenantId::parse(TENANT).expect("a tenant");
    app.commands
        .record_consent_outcome(
            &tenant,
            2,
            Err(backend_error("ConsentNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    assert_eq!(
        app.get_consent(TENANT).await.body["serviceProvisioningStatus"],
        "failed"
    );
    let retried = retry_consent(&app, TENANT).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.body["serviceProvisioningStatus"], "pending");
    assert_eq!(
        retried.body["customerRelationship"]["status"],
        "ConsentAcknowledged"
    );
    retry_consent(&app, "00000000-0000-4000-8000-000000000009")
        .await
        .assert_error(404, "RequestForInformationNotFound");
}

#[tokio::test]
async fn retrying_needs_write_and_bad_input_is_refused_never_a_fault() {
    let app = spawn_app().await;
    account_with(&app, &[NUMBER]).await;
    app.backend_refuses(&[NUMBER], "LocationRequired").await;
    let path = format!("{}:retryProvisioning", number_path("contoso", NUMBER));
    for (role, status) in [(Role::Read, 403), (Role::Delete, 403), (Role::Write, 200)] {
        let token = app.token(&[role]);
        let answer = app
            .send(app.request_as(Method::POST, &path, Some(&token)))
            .await;
        assert_eq!(answer.status, status, "{role:?}: {answer:?}");
    }
    let cases = [
        (
            "/accounts/contoso/numbers/0151:retryProvisioning",
            400,
            "InvalidTelephoneNumber",
        ),
        (
            "/accounts/contoso/numbers/%2B15105850321:retry",
            400,
            "UnknownAction",
        ),
        (
            "/accounts/contoso/numbers/%2B15105850321:",
            400,
            "UnknownAction",
        ),
        (
            "/accounts/contoso/numbers/%2B15105850321",
            405,
            "MethodNotAllowed",
        ),
        (
            "/accounts/bad%20name/numbers/%2B15105850321:retryProvisioning",
            400,
            "InvalidAccountName",
        ),
        ("/accounts/contoso:retry", 400, "UnknownAction"),
        (
            "/accounts/bad%20name:retryProvisioning",
            400,
            "InvalidAccountName",
        ),
        (
            "/teamsRequestsForInformation/not-a-tenant:retryProvisioning",
            400,
            "InvalidTenantId",
        ),
        ("/teamsRequestsForInformation/x:retry", 400, "UnknownAction"),
        ("/teamsRequestsForInformation/x", 405, "MethodNotAllowed"),
    ];
    for (path, status, code) in cases {
        let answer = app.send(app.request(Method::POST, path)).await;
        answer.assert_error(status, code);
    }
    // A body, even a malformed one, is ignored by an action that takes none.
    let answer = app
        .send(
            app.request(Method::POST, &path)
                .header("content-type", "text/plain")
                .body("{"),
        )
        .await;
    assert_eq!(answer.status, 409, "{answer:?}");
}

// ---- the failures list ------------------------------------------------------------------------

#[tokio::test]
async fn the_failures_list_shows_every_failed_resource_and_pages() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let numbers = ["+15105850001", "+15105850002", "+15105850003"];
    account_with(&app, &numbers).await;
    app.backend_refuses(&numbers[..2], "LocationRequired").await;
    app.backend_accepts(&numbers[2..]).await;
    // A failed release shows too, as a deletion.
    assert_eq!(app.delete_number("contoso", numbers[1]).await.status, 204);
    app.backend_refuses(&numbers[1..2], "NumberInUse").await;
    let contoso = AccountName::parse("contoso").expect("a name");
    app.commands
        .record_account_outcome(
            &contoso,
            1,
            Err(backend_error("TenantNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    app.record_consent(TENANT).await;
    app.patch_consent(
        TENANT,
        &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
    )
    .await;
    app.commands
        .record_consent_outcome(
            &TenantId::parse(TENANT).expect("a tenant"),
            2,
            Err(backend_error("ConsentNotFound")),
            &saga_metadata(),
        )
        .await
        .expect("recorded");
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let all = failures(&app, "?countRecords=true").await;
    assert_eq!(all.status, 200, "{all:?}");
    assert_eq!(all.header("x-ms-record-count"), Some("4"));
    let items = all.body["value"].as_array().expect("items").clone();
    let ids: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            ("account", "contoso"),
            ("consent", TENANT),
            ("number", numbers[0]),
            ("number", numbers[1])
        ],
        "by kind, then id"
    );
    for item in &items {
        assert_eq!(item["accountName"], "contoso", "{item}");
        assert_eq!(item["serviceProvisioningStatus"], "failed");
        assert!(
            item["failedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{item}"
        );
    }
    assert_eq!(
        items[0]["serviceProvisioningErrors"][0]["code"],
        "TenantNotFound"
    );
    assert_eq!(
        items[2]["serviceProvisioningErrors"][0]["code"],
        "LocationRequired"
    );
    assert_eq!(items[2]["deleting"], false);
    assert_eq!(
        items[3]["serviceProvisioningErrors"][0]["code"],
        "NumberInUse"
    );
    assert_eq!(items[3]["deleting"], true, "a failed release");
    assert_eq!(items[3]["version"], 3, "the version of the deletion");
    assert!(all.body.get("nextLink").is_none());

    // Paged one at a time through nextLink, every item once, in order.
    let mut page = failures(&app, "?maxpagesize=1").await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(
            page.body["value"]
                .as_array()
                .expect("items")
                .iter()
                .cloned(),
        );
        let Some(link) = page.body["nextLink"].as_str() else {
            break;
        };
        page = app
            .send(app.client.get(link).bearer_auth(app.admin()))
            .await;
    }
    assert_eq!(seen, items);
    let topped = failures(&app, "?top=3&skip=1").await;
    let ids: Vec<&str> = topped.body["value"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [TENANT, numbers[0], numbers[1]]);

    // A retried resource leaves the list.
    assert_eq!(retry_number(&app, numbers[0]).await.status, 200);
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let after = failures(&app, "?countRecords=true").await;
    assert_eq!(after.header("x-ms-record-count"), Some("3"));

    // Read is enough; bad paging is refused.
    let token = app.token(&[Role::Read]);
    let read = app
        .send(app.request_as(Method::GET, "/provisioning/failures", Some(&token)))
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    for (query, code) in [
        ("?filter=kind eq 'number'", "InvalidQueryParameter"),
        ("?maxpagesize=0", "InvalidQueryParameter"),
        ("?top=-1", "InvalidQueryParameter"),
        ("?skipToken=zzz", "InvalidQueryParameter"),
        ("?countRecords=maybe", "InvalidQueryParameter"),
    ] {
        failures(&app, query).await.assert_error(400, code);
    }
}

#[tokio::test]
async fn the_failures_list_is_empty_without_failures() {
    let app = spawn_app().await;
    let answer = failures(&app, "?countRecords=true").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, json!({"value": []}));
    assert_eq!(answer.header("x-ms-record-count"), Some("0"));
}

#[tokio::test]
async fn the_openapi_document_describes_nmps_provisioning_extensions() {
    let app = spawn_app().await;
    let openapi = app
        .send(app.client.get(format!("{}/openapi.json", app.address)))
        .await;
    assert_eq!(openapi.status, 200, "{openapi:?}");
    let paths = openapi.body["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/provisioning/failures", "get"),
        ("/accounts/{accountName}:retryProvisioning", "post"),
        (
            "/accounts/{accountName}/numbers/{telephoneNumber}:retryProvisioning",
            "post",
        ),
        (
            "/teamsRequestsForInformation/{tenantId}:retryProvisioning",
            "post",
        ),
        ("/accounts/{accountName}:getTeamsCapabilityPlans", "post"),
        (
            "/accounts/{accountName}:getTeamsAvailableCapabilities",
            "post",
        ),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is described"
        );
    }
    let tags = openapi.body["tags"].as_array().expect("tags");
    assert!(
        tags.iter().any(|t| t["name"] == "Provisioning"
            && t["description"]
                .as_str()
                .is_some_and(|d| d.contains("nmp's own"))),
        "{tags:?}"
    );
}
