//! The NATS request-reply API: the REST API's commands and queries over NATS, with the same
//! rules, codes and tokens, and a structured answer to every bad request.

use std::time::Duration;

use async_nats::HeaderMap;
use auth::Role;
use nats_api::NatsApiSettings;
use serde_json::{Value, json};
use tests::nats::{nats_url, test_prefix};
use tests::{TENANT, TestApp, account_body, number_body, spawn_app};

/// A running NATS API for a test app, and a client to call it.
struct Nats {
    client: async_nats::Client,
    prefix: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(app: &TestApp, max_payload: Option<usize>) -> Nats {
    let client = async_nats::connect(nats_url()).await.expect("NATS");
    let prefix = test_prefix();
    let mut settings = NatsApiSettings::new(&prefix);
    if let Some(max) = max_payload {
        settings.max_payload = max;
    }
    let task = nats_api::start(client.clone(), app.state.clone(), settings)
        .await
        .expect("the NATS API starts");
    // The service's subscription must reach the server before the first request.
    client.flush().await.expect("flush");
    Nats {
        client,
        prefix,
        task,
    }
}

/// A reply: its status (`Nmp-Status`), headers and JSON body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.as_str().to_string())
    }

    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body["error"]["code"], code, "{self:?}");
        assert_eq!(self.header("Nmp-Error-Code").as_deref(), Some(code));
        assert_eq!(
            self.header("Nats-Service-Error-Code"),
            Some(status.to_string())
        );
        assert!(self.header("Nats-Service-Error").is_some());
    }
}

impl Nats {
    async fn call_raw(&self, operation: &str, token: Option<&str>, payload: Vec<u8>) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            headers.insert("Authorization", format!("Bearer {token}").as_str());
        }
        let request = self.client.request_with_headers(
            format!("{}.api.{operation}", self.prefix),
            headers,
            payload.into(),
        );
        let message = tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .expect("an answer, never silence")
            .expect("a reply");
        let headers = message.headers.clone().unwrap_or_default();
        let status = headers
            .get("Nmp-Status")
            .and_then(|v| v.as_str().parse().ok())
            .expect("Nmp-Status");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&message.payload).expect("a JSON reply"),
        }
    }

    async fn call(&self, app: &TestApp, operation: &str, body: Value) -> Reply {
        self.call_raw(operation, Some(&app.admin()), body.to_string().into_bytes())
            .await
    }
}

#[tokio::test]
async fn every_operation_works_over_nats_as_over_http() {
    let app = spawn_app().await;
    let nats = start(&app, None).await;

    let created = nats
        .call(
            &app,
            "accounts.createOrReplace",
            json!({"accountName": "contoso", "account": account_body("contoso")}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("ETag").as_deref(), Some("\"1\""));
    let over_http = app.get_account("contoso").await;
    assert_eq!(
        created.body, over_http.body,
        "the same resource as REST shows"
    );

    let read = nats
        .call(&app, "accounts.get", json!({"accountName": "contoso"}))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["name"], "contoso");

    let batch = nats
        .call(
            &app,
            "numbers.createOrUpdateBatch",
            json!({"accountName": "contoso", "numbers": [
                number_body("contoso", "+15105850001"), number_body("contoso", "+15105850002")]}),
        )
        .await;
    assert_eq!(batch.status, 200, "{batch:?}");
    assert_eq!(batch.body["numbers"].as_array().map(Vec::len), Some(2));

    let put = nats
        .call(
            &app,
            "numbers.createOrReplace",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850003",
                   "number": number_body("contoso", "+15105850003")}),
        )
        .await;
    assert_eq!(put.status, 201, "{put:?}");

    let number = nats
        .call(
            &app,
            "numbers.get",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850001"}),
        )
        .await;
    assert_eq!(number.status, 200);
    assert_eq!(
        number.body["configuration"]["customSipHeader"],
        "contoso-commsgw"
    );

    let set = nats
        .call(
            &app,
            "numbers.setCustomSipHeader",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850001", "customSipHeader": "trunk-7"}),
        )
        .await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["configuration"]["customSipHeader"], "trunk-7");
    let cleared = nats
        .call(
            &app,
            "numbers.setCustomSipHeader",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850001", "customSipHeader": null}),
        )
        .await;
    assert_eq!(cleared.status, 200);
    assert!(cleared.body.get("configuration").is_none(), "{cleared:?}");
    assert_eq!(
        app.get_number("contoso", "+15105850001").await.body,
        cleared.body,
        "REST sees the change"
    );

    let deleted = nats
        .call(
            &app,
            "numbers.delete",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850003"}),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.body, json!({}));
    let batch_deleted = nats
        .call(
            &app,
            "numbers.deleteBatch",
            json!({"accountName": "contoso", "numbers": [{"telephoneNumber": "+15105850002"}]}),
        )
        .await;
    assert_eq!(batch_deleted.status, 204, "{batch_deleted:?}");

    app.record_consent(TENANT).await;
    let consent = nats
        .call(
            &app,
            "requestsForInformation.get",
            json!({"tenantId": TENANT}),
        )
        .await;
    assert_eq!(consent.status, 200);
    assert_eq!(consent.body["accountName"], "contoso");
    let signed = nats
        .call(
            &app,
            "requestsForInformation.updateRelationship",
            json!({"tenantId": TENANT, "customerRelationship": {"status": "AgreementSigned", "comment": "signed"}}),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    assert_eq!(
        signed.body["customerRelationship"]["status"],
        "AgreementSigned"
    );

    let refused = nats
        .call(&app, "accounts.delete", json!({"accountName": "contoso"}))
        .await;
    refused.assert_error(409, "AccountHasNumbers");
    let gone = nats
        .call(
            &app,
            "accounts.delete",
            json!({"accountName": "contoso", "deleteNumbers": true}),
        )
        .await;
    assert_eq!(gone.status, 204, "{gone:?}");
    // The numbers flow to the backend: the account goes with the last one it releases.
    app.backend_accepts(&["+15105850001", "+15105850002", "+15105850003"])
        .await;
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn refusals_carry_the_same_codes_and_targets_as_rest() {
    let app = spawn_app().await;
    let nats = start(&app, None).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.put_number(
        "fabrikam",
        "+15105850001",
        &number_body("fabrikam", "+15105850001"),
    )
    .await;
    let events = app.event_count().await;

    let taken = nats
        .call(
            &app,
            "numbers.createOrReplace",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850001",
                   "number": number_body("contoso", "+15105850001")}),
        )
        .await;
    taken.assert_error(409, "NumberInAnotherAccount");

    let mut bad = number_body("contoso", "+15105850002");
    bad["serviceDetails"]["teamsOperatorConnect"]["configuration"]["usage"] = json!("Nonsense");
    let invalid = nats
        .call(
            &app,
            "numbers.createOrUpdateBatch",
            json!({"accountName": "contoso", "numbers": [bad]}),
        )
        .await;
    invalid.assert_error(400, "InvalidUsage");
    assert_eq!(
        invalid.body["error"]["target"],
        "numbers[0].serviceDetails.teamsOperatorConnect.configuration.usage"
    );

    let wrong_type = nats
        .call(
            &app,
            "accounts.delete",
            json!({"accountName": "contoso", "deleteNumbers": "yes"}),
        )
        .await;
    wrong_type.assert_error(400, "InvalidRequestBody");
    assert_eq!(wrong_type.body["error"]["target"], "deleteNumbers");

    let missing = nats
        .call(
            &app,
            "numbers.setCustomSipHeader",
            json!({"accountName": "contoso", "telephoneNumber": "+15105850001"}),
        )
        .await;
    missing.assert_error(400, "MissingField");

    let not_e164 = nats
        .call(
            &app,
            "numbers.get",
            json!({"accountName": "contoso", "telephoneNumber": "15105850001"}),
        )
        .await;
    not_e164.assert_error(400, "InvalidTelephoneNumber");
    assert_eq!(app.event_count().await, events, "no refusal wrote anything");
}

#[tokio::test]
async fn bad_requests_get_structured_errors_and_the_service_carries_on() {
    let app = spawn_app().await;
    let nats = start(&app, Some(64 * 1024)).await;
    let admin = app.admin();

    nats.call_raw("accounts.get", Some(&admin), b"{not json".to_vec())
        .await
        .assert_error(400, "InvalidJson");
    nats.call_raw("accounts.frobnicate", Some(&admin), b"{}".to_vec())
        .await
        .assert_error(404, "UnknownOperation");
    nats.call_raw("nonsense", Some(&admin), b"{}".to_vec())
        .await
        .assert_error(404, "UnknownOperation");
    nats.call_raw("accounts.get", None, b"{}".to_vec())
        .await
        .assert_error(401, "MissingToken");
    nats.call_raw("accounts.get", Some("not.a.token"), b"{}".to_vec())
        .await
        .assert_error(401, "MalformedToken");
    let other = auth::mint_token(
        b"another-secret",
        "x",
        &[Role::Admin],
        Duration::from_secs(60),
    );
    nats.call_raw("accounts.get", Some(&other), b"{}".to_vec())
        .await
        .assert_error(401, "InvalidTokenSignature");
    let reader = app.token(&[Role::Read]);
    nats.call_raw(
        "accounts.delete",
        Some(&reader),
        json!({"accountName": "contoso"}).to_string().into_bytes(),
    )
    .await
    .assert_error(403, "Forbidden");
    let big = json!({"accountName": "x".repeat(100 * 1024)})
        .to_string()
        .into_bytes();
    nats.call_raw("accounts.get", Some(&admin), big)
        .await
        .assert_error(413, "RequestBodyTooLarge");
    nats.call_raw(
        "accounts.get",
        Some(&admin),
        json!([1, 2]).to_string().into_bytes(),
    )
    .await
    .assert_error(400, "InvalidRequestBody");

    // Still serving.
    let created = nats
        .call(
            &app,
            "accounts.createOrReplace",
            json!({"accountName": "contoso", "account": account_body("contoso")}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
}

#[tokio::test]
async fn the_roles_rule_over_nats_as_over_http() {
    let app = spawn_app().await;
    let nats = start(&app, None).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let cases = [
        (
            Role::Read,
            "accounts.get",
            json!({"accountName": "contoso"}),
            true,
        ),
        (
            Role::ReadUser,
            "accounts.get",
            json!({"accountName": "contoso"}),
            true,
        ),
        (
            Role::Write,
            "accounts.get",
            json!({"accountName": "contoso"}),
            false,
        ),
        (
            Role::Write,
            "accounts.createOrReplace",
            json!({"accountName": "contoso", "account": account_body("contoso")}),
            true,
        ),
        (
            Role::Read,
            "accounts.createOrReplace",
            json!({"accountName": "contoso", "account": account_body("contoso")}),
            false,
        ),
        (
            Role::Write,
            "numbers.deleteBatch",
            json!({"accountName": "contoso", "numbers": [{"telephoneNumber": "+15105850009"}]}),
            false,
        ),
        (
            Role::DeleteUser,
            "accounts.delete",
            json!({"accountName": "nobody"}),
            true,
        ),
        (
            Role::Admin,
            "accounts.delete",
            json!({"accountName": "nobody"}),
            true,
        ),
    ];
    for (role, operation, body, allowed) in cases {
        let reply = nats
            .call_raw(
                operation,
                Some(&app.token(&[role])),
                body.to_string().into_bytes(),
            )
            .await;
        if allowed {
            assert_ne!(reply.status, 403, "{role:?} may {operation}: {reply:?}");
            assert_ne!(reply.status, 401, "{role:?} {operation}: {reply:?}");
        } else {
            reply.assert_error(403, "Forbidden");
        }
    }
}

#[tokio::test]
async fn instances_share_the_requests_of_one_prefix() {
    let app = spawn_app().await;
    let first = start(&app, None).await;
    // A second instance on the same prefix joins the queue group.
    let second_task = nats_api::start(
        first.client.clone(),
        app.state.clone(),
        NatsApiSettings::new(&first.prefix),
    )
    .await
    .expect("second instance");
    first.client.flush().await.expect("flush");
    for i in 0..20 {
        let name = format!("account-{i}");
        let reply = first
            .call(
                &app,
                "accounts.createOrReplace",
                json!({"accountName": name, "account": account_body(&name)}),
            )
            .await;
        assert_eq!(
            reply.status, 201,
            "each request is answered once, by one of the instances: {reply:?}"
        );
    }
    second_task.abort();
}

#[tokio::test]
async fn provisioning_retries_and_deletions_work_over_nats_as_over_http() {
    let app = spawn_app().await;
    let nats = start(&app, None).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let number = "+15105850001";
    app.put_number("contoso", number, &number_body("contoso", number))
        .await;
    let the_number = json!({"accountName": "contoso", "telephoneNumber": number});

    nats.call(&app, "numbers.retryProvisioning", the_number.clone())
        .await
        .assert_error(409, "ProvisioningNotFailed");
    app.backend_refuses(&[number], "LocationRequired").await;
    let retried = nats
        .call(&app, "numbers.retryProvisioning", the_number.clone())
        .await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.body["serviceProvisioningStatus"], "pending");
    assert_eq!(retried.header("ETag").as_deref(), Some("\"3\""));
    assert_eq!(
        app.get_number("contoso", number).await.body,
        retried.body,
        "REST sees the retry"
    );

    let deleted = nats.call(&app, "numbers.delete", the_number.clone()).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    nats.call(
        &app,
        "numbers.createOrReplace",
        json!({"accountName": "contoso", "telephoneNumber": number,
               "number": number_body("contoso", number)}),
    )
    .await
    .assert_error(409, "NumberBeingDeleted");
    let gone = nats
        .call(
            &app,
            "accounts.delete",
            json!({"accountName": "contoso", "deleteNumbers": true}),
        )
        .await;
    assert_eq!(gone.status, 204, "{gone:?}");
    nats.call(
        &app,
        "accounts.createOrReplace",
        json!({"accountName": "contoso", "account": account_body("contoso")}),
    )
    .await
    .assert_error(409, "AccountBeingDeleted");
    nats.call(
        &app,
        "accounts.retryProvisioning",
        json!({"accountName": "contoso"}),
    )
    .await
    .assert_error(409, "ProvisioningNotFailed");

    app.record_consent(TENANT).await;
    nats.call(
        &app,
        "requestsForInformation.retryProvisioning",
        json!({"tenantId": TENANT}),
    )
    .await
    .assert_error(409, "ProvisioningNotFailed");
    nats.call(
        &app,
        "requestsForInformation.retryProvisioning",
        json!({"tenantId": "not-a-tenant"}),
    )
    .await
    .assert_error(400, "InvalidTenantId");

    nats.call(
        &app,
        "accounts.getTeamsCapabilityPlans",
        json!({"accountName": "contoso"}),
    )
    .await
    .assert_error(503, "BackendNotConfigured");
    nats.call(
        &app,
        "accounts.getTeamsAvailableCapabilities",
        json!({"accountName": "contoso", "numbers": []}),
    )
    .await
    .assert_error(400, "NoNumbers");
}
