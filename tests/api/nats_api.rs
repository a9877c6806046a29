//! The NATS request-reply API: the REST API's commands and queries over NATS, with the same
//! rules, codes and tokens, and a structured answer to every bad request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use auth::{Permission, Role};
use futures::StreamExt;
use nats_api::NatsApiSettings;
use serde_json::{Value, json};
use tests::nats::{nats_url, test_prefix};
use tests::{TENANT, TestApp, account_body, number_body, spawn_app, spawn_app_with_backend};

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

/// One operation of the NATS API: the permission it needs and its status when allowed (on the
/// resources `cell_fixture` sets up for it).
struct Row {
    operation: &'static str,
    needs: Permission,
    success: u16,
    /// Whether an allowed call writes events (queries, the capability questions included, do
    /// not).
    writes: bool,
}

const fn row(operation: &'static str, needs: Permission, success: u16, writes: bool) -> Row {
    Row {
        operation,
        needs,
        success,
        writes,
    }
}

#[rustfmt::skip]
const MATRIX: [Row; 16] = [
    row("accounts.get", Permission::Read, 200, false),
    row("accounts.createOrReplace", Permission::Write, 200, true),
    row("accounts.delete", Permission::Delete, 204, true),
    row("accounts.retryProvisioning", Permission::Write, 200, true),
    row("accounts.getTeamsCapabilityPlans", Permission::Write, 200, false),
    row("accounts.getTeamsAvailableCapabilities", Permission::Write, 200, false),
    row("numbers.get", Permission::Read, 200, false),
    row("numbers.createOrReplace", Permission::Write, 201, true),
    row("numbers.delete", Permission::Delete, 204, true),
    row("numbers.createOrUpdateBatch", Permission::Write, 200, true),
    row("numbers.deleteBatch", Permission::Delete, 204, true),
    row("numbers.setCustomSipHeader", Permission::Write, 200, true),
    row("numbers.retryProvisioning", Permission::Write, 200, true),
    row("requestsForInformation.get", Permission::Read, 200, false),
    row("requestsForInformation.updateRelationship", Permission::Write, 200, true),
    row("requestsForInformation.retryProvisioning", Permission::Write, 200, true),
];

/// What each role grants, written out independently of `auth`'s own table.
fn role_grants(role: Role, permission: Permission) -> bool {
    match role {
        Role::Admin | Role::AdminUser => true,
        Role::Read | Role::ReadUser => permission == Permission::Read,
        Role::Write | Role::WriteUser => permission == Permission::Write,
        Role::Delete | Role::DeleteUser => permission == Permission::Delete,
    }
}

/// Resources of one matrix cell: an account of a tenant of its own with one number, a number
/// not created yet, and what the operation needs to succeed (a failed provisioning to retry, a
/// consent).
struct Cell {
    account: String,
    number: String,
    spare: String,
    tenant: String,
}

/// Sets up, as an administrator, fresh resources for `operation` in cell `cell`, so that every
/// cell starts from the same state whatever the cells before it did.
async fn cell_fixture(app: &TestApp, cell: usize, operation: &str) -> Cell {
    let fixture = Cell {
        account: format!("nats-{cell}"),
        number: format!("+1510556{:04}", cell * 2),
        spare: format!("+1510556{:04}", cell * 2 + 1),
        tenant: format!("00000000-0000-4000-8000-{cell:012}"),
    };
    let mut account = account_body(&fixture.account);
    account["serviceDetails"]["teamsTenantId"] = json!(fixture.tenant);
    let put = app.put_account(&fixture.account, &account).await;
    assert_eq!(put.status, 201, "fixture account: {put:?}");
    let put = app
        .put_number(
            &fixture.account,
            &fixture.number,
            &number_body(&fixture.account, &fixture.number),
        )
        .await;
    assert_eq!(put.status, 201, "fixture number: {put:?}");
    let failure = || {
        vec![domain::ProvisioningError {
            code: "TenantNotFound".to_string(),
            message: "the backend says no".to_string(),
        }]
    };
    match operation {
        "accounts.retryProvisioning" => {
            let name = domain::AccountName::parse(&fixture.account).expect("a name");
            let loaded = app.commands.account(&name).await.expect("loads");
            let version = loaded.aggregate.state.expect("exists").sync.version;
            app.commands
                .record_account_outcome(&name, version, Err(failure()), &commands::saga_metadata())
                .await
                .expect("recorded");
            let failed = app.get_account(&fixture.account).await;
            assert_eq!(failed.body["serviceProvisioningStatus"], "failed");
        }
        "numbers.retryProvisioning" => {
            app.backend_refuses(&[&fixture.number], "LocationRequired")
                .await;
            let failed = app.get_number(&fixture.account, &fixture.number).await;
            assert_eq!(failed.body["serviceProvisioningStatus"], "failed");
        }
        "requestsForInformation.get" | "requestsForInformation.updateRelationship" => {
            app.record_consent(&fixture.tenant).await;
        }
        "requestsForInformation.retryProvisioning" => {
            app.record_consent(&fixture.tenant).await;
            let patched = app
                .patch_consent(
                    &fixture.tenant,
                    &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
                )
                .await;
            assert_eq!(patched.status, 200, "fixture consent: {patched:?}");
            let tenant = domain::TenantId::parse(&fixture.tenant).expect("a tenant");
            let loaded = app.commands.consent(&tenant).await.expect("loads");
            let version = loaded.aggregate.state.expect("exists").sync.version;
            app.commands
                .record_consent_outcome(
                    &tenant,
                    version,
                    Err(failure()),
                    &commands::saga_metadata(),
                )
                .await
                .expect("recorded");
            let failed = app.get_consent(&fixture.tenant).await;
            assert_eq!(failed.body["serviceProvisioningStatus"], "failed");
        }
        _ => {}
    }
    fixture
}

/// The request body of `operation` on `cell`; `note` makes each allowed change a real one.
fn cell_request(operation: &str, cell: &Cell, note: &str) -> Value {
    let account = cell.account.as_str();
    let the_number = json!({"accountName": account, "telephoneNumber": cell.number});
    match operation {
        "accounts.get" | "accounts.retryProvisioning" | "accounts.getTeamsCapabilityPlans" => {
            json!({"accountName": account})
        }
        "accounts.createOrReplace" => {
            let mut body = account_body(account);
            body["serviceDetails"]["teamsTenantId"] = json!(cell.tenant);
            body["serviceDetails"]["teamsPhoneMobile"] =
                json!({"enabled": true, "syncEnabled": false});
            json!({"accountName": account, "account": body})
        }
        "accounts.delete" => json!({"accountName": account, "deleteNumbers": true}),
        "accounts.getTeamsAvailableCapabilities" => {
            json!({"accountName": account, "numbers": [{"telephoneNumber": cell.number}]})
        }
        "numbers.get" | "numbers.delete" | "numbers.retryProvisioning" => the_number,
        "numbers.createOrReplace" => json!({"accountName": account,
            "telephoneNumber": cell.spare, "number": number_body(account, &cell.spare)}),
        "numbers.createOrUpdateBatch" => {
            json!({"accountName": account, "numbers": [number_body(account, &cell.spare)]})
        }
        "numbers.deleteBatch" => {
            json!({"accountName": account, "numbers": [{"telephoneNumber": cell.number}]})
        }
        "numbers.setCustomSipHeader" => json!({"accountName": account,
            "telephoneNumber": cell.number, "customSipHeader": note}),
        "requestsForInformation.get" | "requestsForInformation.retryProvisioning" => {
            json!({"tenantId": cell.tenant})
        }
        "requestsForInformation.updateRelationship" => json!({"tenantId": cell.tenant,
            "customerRelationship": {"status": "CustomerContacted", "comment": note}}),
        other => panic!("no request for {other}"),
    }
}

#[test]
fn the_matrix_covers_every_nats_operation() {
    let mut covered: Vec<&str> = MATRIX.iter().map(|row| row.operation).collect();
    let mut operations: Vec<&str> = nats_api::Operation::ALL
        .iter()
        .map(|(name, _)| *name)
        .collect();
    covered.sort_unstable();
    operations.sort_unstable();
    assert_eq!(covered, operations);
    for row in &MATRIX {
        let operation = nats_api::Operation::parse(row.operation).expect("an operation");
        assert_eq!(operation.permission(), row.needs, "{}", row.operation);
    }
}

#[tokio::test]
async fn the_roles_rule_over_nats_as_over_http() {
    // The capability questions ask the backend: the simulator answers them.
    let (app, _sim) = spawn_app_with_backend().await;
    let nats = start(&app, None).await;
    let mut failures = Vec::new();
    let mut cell = 0;
    for role in Role::ALL {
        let token = app.token(&[role]);
        for row in &MATRIX {
            cell += 1;
            let fixture = cell_fixture(&app, cell, row.operation).await;
            let note = format!("cell-{cell}");
            let body = cell_request(row.operation, &fixture, &note);
            let before = app.event_count().await;
            let reply = nats
                .call_raw(row.operation, Some(&token), body.to_string().into_bytes())
                .await;
            let written = app.event_count().await - before;
            let what = format!("{role} / {} (needs {})", row.operation, row.needs);
            if role_grants(role, row.needs) {
                if reply.status != row.success || reply.header("Nmp-Error-Code").is_some() {
                    failures.push(format!(
                        "{what}: allowed, expected {}, got {reply:?}",
                        row.success
                    ));
                }
                if row.writes && written == 0 {
                    failures.push(format!("{what}: an allowed write recorded no event"));
                }
                if !row.writes && written != 0 {
                    failures.push(format!("{what}: a query wrote {written} events"));
                }
            } else {
                if reply.status != 403
                    || reply.body["error"]["code"] != "Forbidden"
                    || reply.header("Nmp-Error-Code").as_deref() != Some("Forbidden")
                    || reply.header("Nats-Service-Error-Code").as_deref() != Some("403")
                {
                    failures.push(format!("{what}: expected 403 Forbidden, got {reply:?}"));
                }
                if written != 0 {
                    failures.push(format!("{what}: a refused request wrote {written} events"));
                }
            }
        }
    }
    assert_eq!(cell, 128, "8 roles × 16 operations");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The requests each instance of the NATS API serving `prefix` has answered, by instance id,
/// from the micro services' STATS answers: every `nmp` service on the server answers, only
/// those whose endpoint serves `prefix` count. Asks again until `instances` instances have
/// answered `total` requests between them (or 10 s have passed), and returns the last answer.
async fn answered_per_instance(
    client: &async_nats::Client,
    prefix: &str,
    instances: usize,
    total: u64,
) -> BTreeMap<String, u64> {
    let subject = format!("{prefix}.api.>");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.expect("subscribe");
        client
            .publish_with_reply("$SRV.STATS.nmp", inbox, "".into())
            .await
            .expect("ask for stats");
        client.flush().await.expect("flush");
        let mut answered = BTreeMap::new();
        // Every service answers at once; a pause of half a second ends the round.
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), replies.next()).await
        {
            let stats: Value = serde_json::from_slice(&message.payload).expect("stats JSON");
            let endpoints = stats["endpoints"].as_array().expect("endpoints");
            for endpoint in endpoints
                .iter()
                .filter(|e| e["subject"] == subject.as_str())
            {
                let id = stats["id"].as_str().expect("an id").to_string();
                let requests = endpoint["num_requests"].as_u64().expect("num_requests");
                assert_eq!(endpoint["queue_group"], "q", "{stats}");
                *answered.entry(id).or_insert(0) += requests;
            }
        }
        let sum: u64 = answered.values().sum();
        if (answered.len() >= instances && sum >= total) || Instant::now() >= deadline {
            return answered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn instances_share_the_requests_of_one_prefix() {
    const REQUESTS: u64 = 40;
    let app = spawn_app().await;
    let first = start(&app, None).await;
    // A second instance on the same prefix, on a connection of its own as another nmp process
    // would have, joins the queue group.
    let second_client = async_nats::connect(nats_url()).await.expect("NATS");
    let second_task = nats_api::start(
        second_client.clone(),
        app.state.clone(),
        NatsApiSettings::new(&first.prefix),
    )
    .await
    .expect("second instance");
    second_client.flush().await.expect("flush");
    for i in 0..REQUESTS {
        let name = format!("account-{i}");
        let reply = first
            .call(
                &app,
                "accounts.createOrReplace",
                json!({"accountName": name, "account": account_body(&name)}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let answered = answered_per_instance(&first.client, &first.prefix, 2, REQUESTS).await;
    assert_eq!(
        answered.len(),
        2,
        "two instances serve the prefix: {answered:?}"
    );
    assert!(
        answered.values().all(|&requests| requests > 0),
        "both instances answered requests: {answered:?}"
    );
    assert_eq!(
        answered.values().sum::<u64>(),
        REQUESTS,
        "each request was answered once, by one of the instances: {answered:?}"
    );
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
