//! The published examples are the contract: every example of an operation nmp serves is sent as
//! it is written (path, query, headers and body, placed where swagger.json says each parameter
//! goes), after setting up the state it needs, and the answer must carry a status the example
//! lists and a body with the same fields, recursively, as the example's body for that status.
//! Values may differ (counts, timestamps, provisioning status).
//!
//! Each served example is tested by one function that starts by loading it with
//! `let example = load_example(...)` and the file's name;
//! `every_example_is_covered_or_listed_as_not_yet_served` reads this file to find them, so a
//! new example file cannot slip by untested.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{Answer, TestApp, account_body, number_body, spawn_app, spawn_app_with_backend};

/// Examples of operations nmp does not serve yet. Move a name out of here, and write its test
/// below, when its operation is served.
const NOT_YET_SERVED: &[&str] = &[];

const PROVISIONING_STATUSES: &[&str] = &["pending", "synced", "failed"];

// ---- the examples, one test each ---------------------------------------------------------

#[tokio::test]
async fn put_account_matches_its_example() {
    let example = load_example("PutAccount");
    let app = spawn_app().await;

    let created = send_example(&app, &example).await;
    assert_eq!(created.status, 201, "a new account is created: {created:?}");
    assert_matches_example(&created, &example);

    let replaced = send_example(&app, &example).await;
    assert_eq!(
        replaced.status, 200,
        "an existing account is replaced: {replaced:?}"
    );
    assert_matches_example(&replaced, &example);
}

#[tokio::test]
async fn get_account_matches_its_example() {
    let example = load_example("GetAccount");
    let app = spawn_app().await;
    let account = param(&example, "accountName");
    create_account(&app, account).await;

    let read = send_example(&app, &example).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_matches_example(&read, &example);
}

#[tokio::test]
async fn delete_account_matches_its_example() {
    let example = load_example("DeleteAccount");
    let app = spawn_app().await;
    let account = param(&example, "accountName");
    create_account(&app, account).await;
    // The example deletes with deleteNumbers=true: give the account a number to delete.
    create_number(&app, account, "+15105850321").await;

    let deleted = send_example(&app, &example).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_matches_example(&deleted, &example);
    // The number flows to the backend: both go once the backend has released it.
    app.backend_accepts(&["+15105850321"]).await;
    app.get_account(account).await.assert_error(404, "NotFound");
    app.get_number(account, "+15105850321")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn put_account_number_matches_its_example() {
    let example = load_example("PutAccountNumber");
    let app = spawn_app().await;
    create_account(&app, param(&example, "accountName")).await;

    let created = send_example(&app, &example).await;
    assert_eq!(created.status, 201, "a new number is created: {created:?}");
    assert_matches_example(&created, &example);

    let replaced = send_example(&app, &example).await;
    assert_eq!(
        replaced.status, 200,
        "an existing number is replaced: {replaced:?}"
    );
    assert_matches_example(&replaced, &example);
}

#[tokio::test]
async fn get_account_number_matches_its_example() {
    let example = load_example("GetAccountNumber");
    let app = spawn_app().await;
    let account = param(&example, "accountName");
    create_account(&app, account).await;
    create_number(&app, account, param(&example, "telephoneNumber")).await;

    let read = send_example(&app, &example).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_matches_example(&read, &example);
}

#[tokio::test]
async fn delete_account_number_matches_its_example() {
    let example = load_example("DeleteAccountNumber");
    let app = spawn_app().await;
    let account = param(&example, "accountName");
    let number = param(&example, "telephoneNumber");
    create_account(&app, account).await;
    create_number(&app, account, number).await;

    let deleted = send_example(&app, &example).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_matches_example(&deleted, &example);
    app.backend_accepts(&[number]).await;
    app.get_number(account, number)
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn post_account_numbers_batch_matches_its_example() {
    let example = load_example("PostAccountNumbersBatch");
    let app = spawn_app().await;
    create_account(&app, param(&example, "accountName")).await;

    let created = send_example(&app, &example).await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_matches_example(&created, &example);

    // Sent again, the same numbers are updated: still the example's shape.
    let updated = send_example(&app, &example).await;
    assert_eq!(updated.status, 200, "{updated:?}");
    assert_matches_example(&updated, &example);
}

#[tokio::test]
async fn post_account_numbers_delete_matches_its_example() {
    let example = load_example("PostAccountNumbersDelete");
    let app = spawn_app().await;
    let account = param(&example, "accountName");
    create_account(&app, account).await;
    let numbers: Vec<&str> = example["parameters"]["body"]["numbers"]
        .as_array()
        .expect("the example names numbers")
        .iter()
        .map(|n| n["telephoneNumber"].as_str().expect("a telephoneNumber"))
        .collect();
    for number in &numbers {
        create_number(&app, account, number).await;
    }

    let deleted = send_example(&app, &example).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_matches_example(&deleted, &example);
    app.backend_accepts(&numbers).await;
    for number in &numbers {
        app.get_number(account, number)
            .await
            .assert_error(404, "NotFound");
    }
}

#[tokio::test]
async fn get_request_for_information_matches_its_example() {
    let example = load_example("GetRequestForInformation");
    let app = spawn_app().await;
    let tenant = param(&example, "tenantId");
    // The example shows a consent linked to an account, whose relationship the operator has
    // acknowledged with a comment.
    app.record_consent(tenant).await;
    create_account_of_tenant(&app, "contoso", tenant).await;
    let acknowledged = app
        .patch_consent(
            tenant,
            &json!({"customerRelationship": {"status": "ConsentAcknowledged", "comment": "Acknowledged"}}),
        )
        .await;
    assert_eq!(acknowledged.status, 200, "setup: {acknowledged:?}");

    let read = send_example(&app, &example).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_matches_example(&read, &example);
    assert_eq!(
        read.body["accountName"], "contoso",
        "the consent names its account"
    );
}

#[tokio::test]
async fn patch_request_for_information_customer_relationship_matches_its_example() {
    let example = load_example("PatchRequestForInformationCustomerRelationship");
    let app = spawn_app().await;
    let tenant = param(&example, "tenantId");
    app.record_consent(tenant).await;
    create_account_of_tenant(&app, "contoso", tenant).await;

    let patched = send_example(&app, &example).await;
    assert!([200, 201].contains(&patched.status), "{patched:?}");
    assert_matches_example(&patched, &example);
    assert_eq!(
        patched.body["accountName"], "contoso",
        "the consent names its account"
    );
    assert_eq!(
        patched.body["customerRelationship"]["status"],
        example["parameters"]["resource"]["customerRelationship"]["status"]
    );
}

#[tokio::test]
async fn list_accounts_matches_its_example() {
    let example = load_example("ListAccounts");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    for item in example_items(&example) {
        create_account(&app, item["name"].as_str().expect("a name")).await;
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let listed = send_example(&app, &example).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_matches_example(&listed, &example);
    assert_record_count(&listed, &example);
}

#[tokio::test]
async fn list_numbers_matches_its_example() {
    let example = load_example("ListNumbers");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    create_example_numbers(&app, &example).await;

    let listed = send_example(&app, &example).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_matches_example(&listed, &example);
    assert_record_count(&listed, &example);
}

#[tokio::test]
async fn list_account_numbers_matches_its_example() {
    let example = load_example("ListAccountNumbers");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    create_example_numbers(&app, &example).await;

    let listed = send_example(&app, &example).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_matches_example(&listed, &example);
    assert_record_count(&listed, &example);
    let account = param(&example, "accountName");
    for item in listed.body["value"].as_array().expect("items") {
        assert_eq!(item["accountName"], account);
    }
}

#[tokio::test]
async fn list_requests_for_information_matches_its_example() {
    let example = load_example("ListRequestsForInformation");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    // As for the single GET: a consent linked to an account, acknowledged with a comment.
    for item in example_items(&example) {
        let tenant = item["tenantId"].as_str().expect("a tenantId");
        let account = item["accountName"].as_str().expect("an accountName");
        app.record_consent(tenant).await;
        create_account_of_tenant(&app, account, tenant).await;
        let acknowledged = app
            .patch_consent(
                tenant,
                &json!({"customerRelationship": {"status": "ConsentAcknowledged", "comment": "Acknowledged"}}),
            )
            .await;
        assert_eq!(acknowledged.status, 200, "setup: {acknowledged:?}");
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let listed = send_example(&app, &example).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_matches_example(&listed, &example);
    assert_record_count(&listed, &example);
    assert_eq!(
        listed.body["value"][0]["accountName"],
        example_items(&example)[0]["accountName"],
        "the consent names its account"
    );
}

#[tokio::test]
async fn post_get_account_teams_capability_plans_matches_its_example() {
    let example = load_example("PostGetAccountTeamsCapabilityPlans");
    let (app, _sim) = spawn_app_with_backend().await;
    create_account(&app, param(&example, "accountName")).await;

    let plans = send_example(&app, &example).await;
    assert_eq!(plans.status, 200, "{plans:?}");
    assert_matches_example(&plans, &example);
    let usages: Vec<&str> = plans.body["capabilityPlans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|plan| plan["usage"].as_str().expect("a usage"))
        .collect();
    assert!(usages.contains(&"CallingUserAssignment"), "{usages:?}");
}

#[tokio::test]
async fn post_get_account_teams_available_capabilities_matches_its_example() {
    let example = load_example("PostGetAccountTeamsAvailableCapabilities");
    let (app, _sim) = spawn_app_with_backend().await;
    create_account(&app, param(&example, "accountName")).await;

    let available = send_example(&app, &example).await;
    assert_eq!(available.status, 200, "{available:?}");
    assert_matches_example(&available, &example);
    assert!(
        !available.body["availableCapabilities"]
            .as_array()
            .expect("capabilities")
            .is_empty(),
        "{available:?}"
    );
}

// ---- coverage ----------------------------------------------------------------------------

#[test]
fn every_example_is_covered_or_listed_as_not_yet_served() {
    let files: BTreeSet<String> = std::fs::read_dir(examples_dir())
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", examples_dir().display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            path.file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        !files.is_empty(),
        "no examples found in {}",
        examples_dir().display()
    );

    // The tests above each start with `let example = load_example(...)` and a literal name;
    // the needle is split so that this line does not count.
    let source = include_str!("examples.rs");
    let needle = concat!("let example = load_", "example(\"");
    let covered: BTreeSet<String> = source
        .match_indices(needle)
        .filter_map(|(at, _)| {
            let rest = &source[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect();
    let not_yet: BTreeSet<String> = NOT_YET_SERVED.iter().map(|s| s.to_string()).collect();

    let both: Vec<_> = covered.intersection(&not_yet).collect();
    assert!(
        both.is_empty(),
        "tested yet listed as not yet served: {both:?}"
    );
    let unknown: Vec<_> = covered
        .union(&not_yet)
        .filter(|n| !files.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "named here but no such example file: {unknown:?}"
    );
    let untested: Vec<_> = files
        .iter()
        .filter(|n| !covered.contains(*n) && !not_yet.contains(*n))
        .collect();
    assert!(
        untested.is_empty(),
        "examples neither tested in examples.rs nor listed in NOT_YET_SERVED: {untested:?}"
    );
}

#[test]
fn assert_same_shape_names_the_path_of_each_difference() {
    let expected = json!({"name": "a", "serviceDetails": {"teamsOperatorConnect":
        {"enabled": true, "numberCount": 1}}, "errors": [{"code": "x"}], "list": []});
    let same = json!({"name": "b", "serviceDetails": {"teamsOperatorConnect":
        {"enabled": false, "numberCount": 7}}, "errors": [{"code": "y"}, {"code": "z"}],
        "list": [1]});
    assert_same_shape(&same, &expected, "$");

    let different = json!({"name": 3, "serviceDetails": {"teamsOperatorConnect":
        {"enabled": true, "syncEnabled": true}}, "errors": [{"message": "m"}], "list": {}});
    let found = shape_differences(&different, &expected, "$");
    let wanted = [
        "$.name: expected a string, found a number",
        "$.serviceDetails.teamsOperatorConnect.numberCount: missing",
        "$.serviceDetails.teamsOperatorConnect.syncEnabled: extra (not in the example)",
        "$.errors[0].code: missing",
        "$.errors[0].message: extra (not in the example)",
        "$.list: expected an array, found an object",
    ];
    for difference in wanted {
        assert!(
            found.iter().any(|f| f == difference),
            "{difference} not in {found:#?}"
        );
    }
    assert_eq!(found.len(), wanted.len(), "{found:#?}");
    let caught = std::panic::catch_unwind(|| assert_same_shape(&different, &expected, "$"));
    assert!(caught.is_err(), "assert_same_shape panics on a difference");
}

// ---- shape comparison --------------------------------------------------------------------

/// Panics, listing the JSON path of every field that is missing from `actual` or extra in it
/// compared with `expected`, recursively (arrays: the first elements' shapes, when both have
/// one), and of every value whose JSON type differs. Values themselves may differ.
#[track_caller]
pub(crate) fn assert_same_shape(actual: &Value, expected: &Value, path: &str) {
    let differences = shape_differences(actual, expected, path);
    assert!(
        differences.is_empty(),
        "the body's shape differs from the example's:\n  {}\nactual:   {actual}\nexpected: {expected}",
        differences.join("\n  ")
    );
}

/// The differences `assert_same_shape` reports, each as `<path>: <what>`.
pub(crate) fn shape_differences(actual: &Value, expected: &Value, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    collect_differences(actual, expected, path, &mut found);
    found
}

fn collect_differences(actual: &Value, expected: &Value, path: &str, found: &mut Vec<String>) {
    if kind(actual) != kind(expected) {
        found.push(format!(
            "{path}: expected {}, found {}",
            kind(expected),
            kind(actual)
        ));
        return;
    }
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, expected_value) in expected {
                let at = format!("{path}.{key}");
                match actual.get(key) {
                    None => found.push(format!("{at}: missing")),
                    Some(actual_value) => {
                        collect_differences(actual_value, expected_value, &at, found)
                    }
                }
            }
            for key in actual.keys().filter(|key| !expected.contains_key(*key)) {
                found.push(format!("{path}.{key}: extra (not in the example)"));
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            if let (Some(actual), Some(expected)) = (actual.first(), expected.first()) {
                collect_differences(actual, expected, &format!("{path}[0]"), found);
            }
        }
        _ => {}
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Every `serviceProvisioningStatus` in `value`, at any depth, is a status the API defines.
fn assert_provisioning_statuses(value: &Value, path: &str) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                let at = format!("{path}.{key}");
                if key == "serviceProvisioningStatus" {
                    assert!(
                        field
                            .as_str()
                            .is_some_and(|s| PROVISIONING_STATUSES.contains(&s)),
                        "{at} is {field}, not one of {PROVISIONING_STATUSES:?}"
                    );
                }
                assert_provisioning_statuses(field, &at);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_provisioning_statuses(item, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

/// The answer's status is one the example lists, and its body has the shape of the example's
/// body for that status (no body when the example shows none).
#[track_caller]
fn assert_matches_example(answer: &Answer, example: &Value) {
    let title = example["title"].as_str().unwrap_or("?");
    let responses = example["responses"]
        .as_object()
        .expect("the example lists responses");
    let status = answer.status.to_string();
    let Some(response) = responses.get(&status) else {
        panic!(
            "{title}: status {status} is not among the example's {:?}: {answer:?}",
            responses.keys().collect::<Vec<_>>()
        );
    };
    match response.get("body") {
        None => assert_eq!(
            answer.body,
            Value::Null,
            "{title}: the example's {status} has no body"
        ),
        Some(expected) => {
            assert_same_shape(&answer.body, expected, "$");
            assert_provisioning_statuses(&answer.body, "$");
        }
    }
}

// ---- the examples' requests --------------------------------------------------------------

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/acg-provisioning-api/2024-02-29-preview/examples")
}

fn swagger() -> Value {
    let path = examples_dir().join("../swagger.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("swagger.json is JSON")
}

/// Reads `examples/<name>.json` at test time.
fn load_example(name: &str) -> Value {
    let path = examples_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json is not JSON: {e}"))
}

/// A string parameter of the example.
fn param<'a>(example: &'a Value, name: &str) -> &'a str {
    example["parameters"][name]
        .as_str()
        .unwrap_or_else(|| panic!("the example has no string parameter {name}"))
}

/// A parameter value as it goes into a URL or a header.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so `+` is `%2B`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends the example's request as an administrator: swagger.json's operation (by the example's
/// operationId) gives the method, the path and where each parameter goes.
async fn send_example(app: &TestApp, example: &Value) -> Answer {
    let swagger = swagger();
    let operation_id = example["operationId"].as_str().expect("an operationId");
    let (method, template, operation) = swagger["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(method, operation)| (method, path, operation))
        })
        .find(|(_, _, operation)| operation["operationId"] == operation_id)
        .unwrap_or_else(|| panic!("swagger.json has no operation {operation_id}"));
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("a method");
    let given = example["parameters"].as_object().expect("parameters");

    let mut path = template.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut body = None;
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let parameter = match parameter["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/parameters/");
                &swagger["parameters"][name]
            }
            None => parameter,
        };
        let name = parameter["name"].as_str().expect("a parameter name");
        let Some(value) = given.get(name) else {
            assert_ne!(
                parameter["required"], true,
                "{operation_id}: required {name} missing"
            );
            continue;
        };
        match parameter["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &encode(&text(value))),
            Some("query") => query.push(format!("{}={}", encode(name), encode(&text(value)))),
            Some("header") => headers.push((name.to_string(), text(value))),
            Some("body") => body = Some(value.clone()),
            other => panic!("{operation_id}: parameter {name} in {other:?}"),
        }
    }
    assert!(!path.contains('{'), "{operation_id}: unfilled path {path}");
    let url = format!("{}{path}?{}", app.address, query.join("&"));
    let mut request = app.client.request(method, url).bearer_auth(app.admin());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        let content_type = operation["consumes"][0]
            .as_str()
            .or_else(|| swagger["consumes"][0].as_str())
            .unwrap_or("application/json");
        request = request
            .header("content-type", content_type)
            .body(body.to_string());
    }
    app.send(request).await
}

// ---- setup -------------------------------------------------------------------------------

async fn create_account(app: &TestApp, name: &str) {
    let created = app.put_account(name, &account_body(name)).await;
    assert_eq!(created.status, 201, "setup: {created:?}");
}

async fn create_account_of_tenant(app: &TestApp, name: &str, tenant: &str) {
    let mut body = account_body(name);
    body["serviceDetails"]["teamsTenantId"] = json!(tenant);
    let created = app.put_account(name, &body).await;
    assert_eq!(created.status, 201, "setup: {created:?}");
}

/// Records a civic address exactly as an example shows it, as the backend sync will.
async fn record_example_civic_address(app: &TestApp, address: &Value) {
    let text = |name: &str| address[name].as_str().map(str::to_string);
    let id = |value: &Value| domain::Identifier::parse(value.as_str().expect("an id")).expect("id");
    let locations = address["locations"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|l| domain::Location {
                    id: id(&l["id"]),
                    description: l["description"].as_str().map(str::to_string),
                    additional_info: l["additionalInfo"].as_str().map(str::to_string),
                    is_default: l["isDefault"].as_bool().unwrap_or(false),
                    elin: l["elin"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    let report = domain::CivicAddressReport {
        country: domain::CountryCode::parse(text("country").expect("country")).expect("country"),
        house_number: text("houseNumber"),
        house_number_suffix: text("houseNumberSuffix"),
        pre_directional: text("preDirectional"),
        street_name: text("streetName"),
        street_suffix: text("streetSuffix"),
        post_directional: text("postDirectional"),
        state_or_province: text("stateOrProvince"),
        county_or_district: text("countyOrDistrict"),
        city_or_town: text("cityOrTown"),
        city_or_town_alias: text("cityOrTownAlias"),
        postal_or_zip_code: text("postalOrZipCode"),
        description: text("description"),
        company_name: text("companyName"),
        company_id: text("companyId"),
        default_location_id: address.get("defaultLocationId").map(id),
        validation_status: match text("validationStatus").as_deref() {
            Some("validated") => domain::ValidationStatus::Validated,
            _ => domain::ValidationStatus::NotValidated,
        },
        partner_id: text("partnerId"),
        latitude: text("latitude"),
        longitude: text("longitude"),
        locations,
    };
    app.commands
        .record_civic_address(
            &id(&address["id"]),
            &domain::TenantId::parse(text("tenantId").expect("tenantId")).expect("tenant"),
            report,
            &store::EventMetadata::system("test-backend-sync"),
        )
        .await
        .expect("civic address recorded");
}

#[tokio::test]
async fn get_account_teams_civic_address_matches_its_example() {
    let example = load_example("GetAccountTeamsCivicAddress");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let address = &example["responses"]["200"]["body"];
    let tenant = address["tenantId"].as_str().expect("tenantId");
    create_account_of_tenant(&app, param(&example, "accountName"), tenant).await;
    record_example_civic_address(&app, address).await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let read = send_example(&app, &example).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_matches_example(&read, &example);
}

#[tokio::test]
async fn list_account_teams_civic_addresses_matches_its_example() {
    let example = load_example("ListAccountTeamsCivicAddresses");
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let items = example_items(&example);
    let tenant = items[0]["tenantId"].as_str().expect("tenantId");
    create_account_of_tenant(&app, param(&example, "accountName"), tenant).await;
    for address in &items {
        record_example_civic_address(&app, address).await;
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let listed = send_example(&app, &example).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_matches_example(&listed, &example);
    assert_record_count(&listed, &example);
}

/// The items of a list example's 200 answer.
fn example_items(example: &Value) -> Vec<Value> {
    example["responses"]["200"]["body"]["value"]
        .as_array()
        .expect("the example lists items")
        .clone()
}

/// The accounts and numbers a list example of numbers shows, projected.
async fn create_example_numbers(app: &TestApp, example: &Value) {
    let mut accounts = BTreeSet::new();
    for item in example_items(example) {
        let account = item["accountName"].as_str().expect("an accountName");
        if accounts.insert(account.to_string()) {
            create_account(app, account).await;
        }
        let number = item["telephoneNumber"].as_str().expect("a telephoneNumber");
        create_number(app, account, number).await;
    }
    wait_until_projected(app, Duration::from_secs(20)).await;
}

/// With `countRecords`, the answer carries `x-ms-record-count` as the example does: the
/// number of items (all fit one page here).
#[track_caller]
fn assert_record_count(answer: &Answer, example: &Value) {
    let shown = &example["responses"]["200"]["headers"]["x-ms-record-count"];
    assert!(shown.is_u64(), "the example shows a record count");
    let items = answer.body["value"].as_array().expect("items").len();
    assert_eq!(
        answer.header("x-ms-record-count"),
        Some(items.to_string().as_str()),
        "{answer:?}"
    );
    assert_eq!(shown.as_u64(), Some(items as u64), "as many as the example");
}

async fn create_number(app: &TestApp, account: &str, number: &str) {
    let created = app
        .put_number(account, number, &number_body(account, number))
        .await;
    assert_eq!(created.status, 201, "setup: {created:?}");
}
