//! Bad input of every kind: each is refused with a 4xx, a specific code and (where there is
//! one) the offending place as `target`; never a 500, and nothing is written.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tests::{
    API_VERSION, Answer, TENANT, TestApp, account_body, number_body, number_path, spawn_app,
};

const OWNED: &str = "+15105850321";
const FREE: &str = "+15105850399";

/// An nmp with account `contoso` owning `OWNED`, and a consent of `TENANT`.
async fn setup() -> TestApp {
    let app = spawn_app().await;
    let put = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(put.status, 201, "{put:?}");
    let put = app
        .put_number("contoso", OWNED, &number_body("contoso", OWNED))
        .await;
    assert_eq!(put.status, 201, "{put:?}");
    app.record_consent(TENANT).await;
    app
}

/// Sends `request` and asserts a refusal: `status`, `code`, `target`, never a 5xx, and no event
/// written. `what` names the case in failure messages.
async fn refused(
    app: &TestApp,
    what: &str,
    request: RequestBuilder,
    status: u16,
    code: &str,
    target: Option<&str>,
) -> Answer {
    let answer = refused_anywhere(app, what, request, status, code).await;
    assert_eq!(
        answer.error_target(),
        target,
        "{what}: target of {answer:?}"
    );
    answer
}

/// As `refused`, for refusals whose target is not checked.
async fn refused_anywhere(
    app: &TestApp,
    what: &str,
    request: RequestBuilder,
    status: u16,
    code: &str,
) -> Answer {
    let before = app.event_count().await;
    let answer = app.send(request).await;
    assert!(
        (400..500).contains(&answer.status),
        "{what}: expected a 4xx, got {answer:?}"
    );
    assert_eq!(answer.status, status, "{what}: status of {answer:?}");
    assert_eq!(answer.error_code(), code, "{what}: code of {answer:?}");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: a message explains the refusal: {answer:?}"
    );
    assert_eq!(
        app.event_count().await,
        before,
        "{what}: a refused request writes nothing"
    );
    answer
}

fn put_account(app: &TestApp, name: &str, body: &Value) -> RequestBuilder {
    app.request(Method::PUT, &format!("/accounts/{name}"))
        .json(body)
}

fn put_number(app: &TestApp, account: &str, number: &str, body: &Value) -> RequestBuilder {
    app.request(Method::PUT, &number_path(account, number))
        .json(body)
}

fn upsert(app: &TestApp, account: &str, numbers: Vec<Value>) -> RequestBuilder {
    app.request(
        Method::POST,
        &format!("/accounts/{account}:createOrUpdateNumbers"),
    )
    .json(&json!({ "numbers": numbers }))
}

fn delete_batch(app: &TestApp, account: &str, numbers: &[&str]) -> RequestBuilder {
    let numbers: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"telephoneNumber": n}))
        .collect();
    app.request(Method::POST, &format!("/accounts/{account}:deleteNumbers"))
        .json(&json!({ "numbers": numbers }))
}

fn patch_consent(app: &TestApp, tenant: &str, body: &Value) -> RequestBuilder {
    app.request(
        Method::PATCH,
        &format!("/teamsRequestsForInformation/{tenant}"),
    )
    .header("content-type", "application/merge-patch+json")
    .body(body.to_string())
}

/// A raw body with a JSON content type.
fn raw(request: RequestBuilder, body: impl Into<reqwest::Body>) -> RequestBuilder {
    request
        .header("content-type", "application/json")
        .body(body)
}

/// Asserts that `number` does not exist in `account`.
async fn absent(app: &TestApp, account: &str, number: &str) {
    let answer = app.get_number(account, number).await;
    assert_eq!(
        answer.status, 404,
        "{number} must not exist in {account}: {answer:?}"
    );
}

// ---- JSON syntax and shape -------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_refused_as_invalid_json() {
    let app = setup().await;
    let bodies: [(&str, Vec<u8>); 6] = [
        ("cut short", br#"{"name": "contoso","#.to_vec()),
        ("cut short in a value", br#"{"name": "cont"#.to_vec()),
        ("single quotes", b"{'name': 'contoso'}".to_vec()),
        ("not JSON", b"name=contoso".to_vec()),
        ("empty", Vec::new()),
        ("invalid UTF-8", b"{\"\xff\xfe\": 1}".to_vec()),
    ];
    for (what, body) in bodies {
        let requests = [
            (
                "account",
                raw(app.request(Method::PUT, "/accounts/contoso"), body.clone()),
            ),
            (
                "number",
                raw(
                    app.request(Method::PUT, &number_path("contoso", FREE)),
                    body.clone(),
                ),
            ),
            (
                "batch",
                raw(
                    app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers"),
                    body.clone(),
                ),
            ),
            (
                "consent",
                app.request(
                    Method::PATCH,
                    &format!("/teamsRequestsForInformation/{TENANT}"),
                )
                .header("content-type", "application/merge-patch+json")
                .body(body.clone()),
            ),
        ];
        for (resource, request) in requests {
            let what = format!("{resource}, {what}");
            refused_anywhere(&app, &what, request, 400, "InvalidJson").await;
        }
    }
}

#[tokio::test]
async fn trailing_data_after_a_valid_body_is_invalid_json() {
    let app = setup().await;
    let trailing = |body: Value| format!("{body} {{}}");
    let requests = [
        (
            "account",
            raw(
                app.request(Method::PUT, "/accounts/contoso"),
                trailing(account_body("contoso")),
            ),
        ),
        (
            "number",
            raw(
                app.request(Method::PUT, &number_path("contoso", FREE)),
                trailing(number_body("contoso", FREE)),
            ),
        ),
        (
            "batch",
            raw(
                app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers"),
                trailing(json!({"numbers": [number_body("contoso", FREE)]})),
            ),
        ),
        (
            "consent",
            app.request(
                Method::PATCH,
                &format!("/teamsRequestsForInformation/{TENANT}"),
            )
            .header("content-type", "application/merge-patch+json")
            .body(trailing(
                json!({"customerRelationship": {"status": "CustomerContacted"}}),
            )),
        ),
    ];
    for (what, request) in requests {
        refused(&app, what, request, 400, "InvalidJson", None).await;
    }
    absent(&app, "contoso", FREE).await;
}

/// A resource is a JSON object. serde also reads a struct from an array of its fields in
/// order, which the API must not: `["contoso"]` is no account.
#[tokio::test]
async fn a_json_array_is_not_a_resource() {
    let app = setup().await;
    let requests = [
        (
            "account",
            raw(
                app.request(Method::PUT, "/accounts/fabrikam"),
                r#"["fabrikam"]"#,
            ),
        ),
        (
            "number",
            raw(
                app.request(Method::PUT, &number_path("contoso", FREE)),
                json!([FREE, "contoso", {"zoomPhoneCloudPeering": {"enabled": true}}]).to_string(),
            ),
        ),
        (
            "batch item",
            raw(
                app.request(Method::POST, "/accounts/contoso:deleteNumbers"),
                json!({"numbers": [[OWNED]]}).to_string(),
            ),
        ),
        (
            "consent patch",
            app.request(
                Method::PATCH,
                &format!("/teamsRequestsForInformation/{TENANT}"),
            )
            .header("content-type", "application/merge-patch+json")
            .body(json!([{"status": "CustomerContacted"}]).to_string()),
        ),
    ];
    let mut failures = Vec::new();
    for (what, request) in requests {
        let before = app.event_count().await;
        let answer = app.send(request).await;
        let written = app.event_count().await - before;
        let code = answer.body["error"]["code"].as_str().unwrap_or("");
        if answer.status != 400 || code != "InvalidRequestBody" || written != 0 {
            failures.push(format!(
                "{what}: expected 400 InvalidRequestBody and no event, got {answer:?} and {written} events"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A syntax error names no field. nmp's target for one is either absent or the JSON path where
/// the document broke off, never a placeholder.
#[tokio::test]
async fn a_syntax_error_has_no_placeholder_target() {
    let app = setup().await;
    let mut failures = Vec::new();
    for (what, body) in [
        ("cut short after a comma", r#"{"name": "contoso","#),
        ("cut short after a key", r#"{"name""#),
        (
            "cut short in a nested object",
            r#"{"name": "contoso", "serviceDetails": {"#,
        ),
        ("an unquoted key", r#"{name: "contoso"}"#),
        ("single quotes", "{'name': 'contoso'}"),
        ("a comma too many", r#"{"name": "contoso",}"#),
    ] {
        let request = raw(app.request(Method::PUT, "/accounts/contoso"), body);
        let answer = refused_anywhere(&app, what, request, 400, "InvalidJson").await;
        if let Some(target) = answer.error_target()
            && target.contains('?')
        {
            failures.push(format!(
                "{what}: target {target:?} is not a JSON path: {answer:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let app = setup().await;
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!(
        r#"{{"numbers": [{}{}]}}"#,
        "{\"a\":".repeat(depth),
        "1}".repeat(depth)
    );
    for (what, path, body) in [
        ("arrays", "/accounts/contoso:createOrUpdateNumbers", &arrays),
        ("arrays", "/accounts/contoso:deleteNumbers", &arrays),
        (
            "objects",
            "/accounts/contoso:createOrUpdateNumbers",
            &objects,
        ),
    ] {
        let method = if path.contains(':') {
            Method::POST
        } else {
            Method::PUT
        };
        let request = raw(app.request(method, path), body.clone());
        refused_anywhere(
            &app,
            &format!("{what} at {path}"),
            request,
            400,
            "InvalidJson",
        )
        .await;
    }
    // nmp is still there.
    assert_eq!(app.get_account("contoso").await.status, 200);
}

#[tokio::test]
async fn wrong_types_are_refused_naming_the_json_path() {
    let app = setup().await;

    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsOperatorConnect"]["enabled"] = json!("yes");
    refused(
        &app,
        "account enabled: \"yes\"",
        put_account(&app, "contoso", &account),
        400,
        "InvalidRequestBody",
        Some("serviceDetails.teamsOperatorConnect.enabled"),
    )
    .await;

    let mut account = account_body("contoso");
    account["name"] = json!(42);
    refused(
        &app,
        "account name: 42",
        put_account(&app, "contoso", &account),
        400,
        "InvalidRequestBody",
        Some("name"),
    )
    .await;

    let mut number = number_body("contoso", FREE);
    number["serviceDetails"]["teamsOperatorConnect"]["enabled"] = json!("yes");
    refused(
        &app,
        "number enabled: \"yes\"",
        put_number(&app, "contoso", FREE, &number),
        400,
        "InvalidRequestBody",
        Some("serviceDetails.teamsOperatorConnect.enabled"),
    )
    .await;

    let mut number = number_body("contoso", FREE);
    number["telephoneNumber"] = json!(15105850399_u64);
    refused(
        &app,
        "telephoneNumber as a JSON number",
        put_number(&app, "contoso", FREE, &number),
        400,
        "InvalidRequestBody",
        Some("telephoneNumber"),
    )
    .await;

    let mut number = number_body("contoso", FREE);
    number["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"] =
        json!("InboundCalling");
    refused(
        &app,
        "choosableCapabilities not a list",
        put_number(&app, "contoso", FREE, &number),
        400,
        "InvalidRequestBody",
        Some("serviceDetails.teamsOperatorConnect.configuration.choosableCapabilities"),
    )
    .await;

    let mut second = number_body("contoso", "+15105850401");
    second["serviceDetails"]["teamsOperatorConnect"]["enabled"] = json!("yes");
    refused(
        &app,
        "batch item enabled: \"yes\"",
        upsert(&app, "contoso", vec![number_body("contoso", FREE), second]),
        400,
        "InvalidRequestBody",
        Some("numbers[1].serviceDetails.teamsOperatorConnect.enabled"),
    )
    .await;
    absent(&app, "contoso", FREE).await;

    refused(
        &app,
        "numbers not a list",
        app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers")
            .json(&json!({"numbers": {"telephoneNumber": FREE}})),
        400,
        "InvalidRequestBody",
        Some("numbers"),
    )
    .await;

    refused(
        &app,
        "deleteNumbers item telephoneNumber: true",
        app.request(Method::POST, "/accounts/contoso:deleteNumbers")
            .json(&json!({"numbers": [{"telephoneNumber": OWNED}, {"telephoneNumber": true}]})),
        400,
        "InvalidRequestBody",
        Some("numbers[1].telephoneNumber"),
    )
    .await;

    refused(
        &app,
        "relationship status: 5",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"status": 5}}),
        ),
        400,
        "InvalidRequestBody",
        Some("customerRelationship.status"),
    )
    .await;

    refused(
        &app,
        "relationship comment: []",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentDeclined", "comment": []}}),
        ),
        400,
        "InvalidRequestBody",
        Some("customerRelationship.comment"),
    )
    .await;
}

#[tokio::test]
async fn a_missing_required_field_is_refused() {
    let app = setup().await;
    let mut number = number_body("contoso", FREE);
    number["serviceDetails"]["teamsOperatorConnect"]
        .as_object_mut()
        .expect("object")
        .remove("enabled");
    let answer = refused(
        &app,
        "teamsOperatorConnect without enabled",
        put_number(&app, "contoso", FREE, &number),
        400,
        "InvalidRequestBody",
        Some("serviceDetails.teamsOperatorConnect"),
    )
    .await;
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("enabled"),
        "the message names the field: {message}"
    );

    let batch = json!({"numbers": [{"accountName": "contoso"}]});
    let answer = refused(
        &app,
        "batch item without telephoneNumber",
        app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers")
            .json(&batch),
        400,
        "InvalidRequestBody",
        Some("numbers[0]"),
    )
    .await;
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("telephoneNumber"), "{message}");

    refused(
        &app,
        "batch without numbers",
        app.request(Method::POST, "/accounts/contoso:deleteNumbers")
            .json(&json!({})),
        400,
        "InvalidRequestBody",
        None,
    )
    .await;
}

/// An edit of a number body.
type Change = fn(&mut Value);

#[tokio::test]
async fn unknown_enum_values_are_refused_naming_the_json_path() {
    let app = setup().await;
    let oc = "serviceDetails.teamsOperatorConnect";
    let cases: [(&str, Change, &str, String); 6] = [
        (
            "usage",
            |n| {
                n["serviceDetails"]["teamsOperatorConnect"]["configuration"]["usage"] = json!("Fax")
            },
            "InvalidUsage",
            format!("{oc}.configuration.usage"),
        ),
        (
            "usage in the wrong case",
            |n| {
                n["serviceDetails"]["teamsOperatorConnect"]["configuration"]["usage"] =
                    json!("callingUserAssignment")
            },
            "InvalidUsage",
            format!("{oc}.configuration.usage"),
        ),
        (
            "choosableCapabilities item",
            |n| {
                n["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"] =
                    json!(["InboundCalling", "Teleportation"])
            },
            "InvalidCapability",
            format!("{oc}.configuration.choosableCapabilities[1]"),
        ),
        (
            "additionalUsages item",
            |n| {
                n["serviceDetails"]["teamsOperatorConnect"]["configuration"]["additionalUsages"] =
                    json!(["Nope"])
            },
            "InvalidUsage",
            format!("{oc}.configuration.additionalUsages[0]"),
        ),
        (
            "assignmentStatus",
            |n| n["serviceDetails"]["teamsOperatorConnect"]["assignmentStatus"] = json!("maybe"),
            "InvalidAssignmentStatus",
            format!("{oc}.assignmentStatus"),
        ),
        (
            "displayedCountryCode",
            |n| {
                n["serviceDetails"]["teamsOperatorConnect"]["configuration"]["displayedCountryCode"] =
                    json!("usa")
            },
            "InvalidCountryCode",
            format!("{oc}.configuration.displayedCountryCode"),
        ),
    ];
    for (what, change, code, target) in cases {
        let mut number = number_body("contoso", FREE);
        change(&mut number);
        refused(
            &app,
            what,
            put_number(&app, "contoso", FREE, &number),
            400,
            code,
            Some(&target),
        )
        .await;
        // The same inside a batch, as its third item.
        let mut third = number_body("contoso", "+15105850402");
        change(&mut third);
        let batch = vec![
            number_body("contoso", "+15105850400"),
            number_body("contoso", "+15105850401"),
            third,
        ];
        refused(
            &app,
            &format!("{what} in a batch"),
            upsert(&app, "contoso", batch),
            400,
            code,
            Some(&format!("numbers[2].{target}")),
        )
        .await;
        absent(&app, "contoso", "+15105850400").await;
    }

    refused(
        &app,
        "relationship status",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"status": "BestFriends"}}),
        ),
        400,
        "InvalidRelationshipStatus",
        Some("customerRelationship.status"),
    )
    .await;
    refused(
        &app,
        "relationship status in the wrong case",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"status": "agreementsigned"}}),
        ),
        400,
        "InvalidRelationshipStatus",
        Some("customerRelationship.status"),
    )
    .await;
}

#[tokio::test]
async fn other_invalid_values_name_their_json_path() {
    let app = setup().await;
    let mut account = account_body("contoso");
    account["correlationId"] = json!("");
    refused(
        &app,
        "empty correlationId",
        put_account(&app, "contoso", &account),
        400,
        "InvalidIdentifier",
        Some("correlationId"),
    )
    .await;

    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsTenantId"] = json!("not-a-guid");
    refused(
        &app,
        "teamsTenantId",
        put_account(&app, "contoso", &account),
        400,
        "InvalidTenantId",
        Some("serviceDetails.teamsTenantId"),
    )
    .await;

    let dr = json!({"name": "dr", "serviceDetails": {"teamsDirectRouting": {
        "enabled": true, "syncEnabled": false,
        "configuration": {"callScreening": true, "subdomain": "much-too-long-a-subdomain",
            "subdomainTokens": {"region1Token": "abc=", "region2Token": "def="}}}}});
    refused(
        &app,
        "subdomain",
        put_account(&app, "dr", &dr),
        400,
        "InvalidSubdomain",
        Some("serviceDetails.teamsDirectRouting.configuration.subdomain"),
    )
    .await;

    let mut number = number_body("contoso", FREE);
    number["serviceDetails"]["teamsOperatorConnect"]["configuration"]["civicAddressId"] = json!("");
    refused(
        &app,
        "civicAddressId",
        put_number(&app, "contoso", FREE, &number),
        400,
        "InvalidIdentifier",
        Some("serviceDetails.teamsOperatorConnect.configuration.civicAddressId"),
    )
    .await;
}

// ---- size and media type ---------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_one_mebibyte_is_too_large() {
    let app = setup().await;
    let mut account = account_body("contoso");
    account["padding"] = json!("x".repeat(1024 * 1024));
    let body = account.to_string();
    assert!(body.len() > 1024 * 1024);
    refused(
        &app,
        "account",
        raw(app.request(Method::PUT, "/accounts/contoso"), body.clone()),
        413,
        "RequestBodyTooLarge",
        None,
    )
    .await;
    let batch =
        json!({"numbers": [number_body("contoso", FREE)], "padding": "x".repeat(1024 * 1024)});
    refused(
        &app,
        "batch",
        raw(
            app.request(Method::POST, "/accounts/contoso:createOrUpdateNumbers"),
            batch.to_string(),
        ),
        413,
        "RequestBodyTooLarge",
        None,
    )
    .await;
    absent(&app, "contoso", FREE).await;
    // The repeatability layer reads the body too, and keeps to the same limit.
    refused(
        &app,
        "account, repeatable",
        raw(app.request(Method::PUT, "/accounts/contoso"), body)
            .header("repeatability-request-id", uuid::Uuid::new_v4().to_string())
            .header(
                "repeatability-first-sent",
                chrono::Utc::now().to_rfc2822().replace("+0000", "GMT"),
            ),
        413,
        "RequestBodyTooLarge",
        None,
    )
    .await;
    // Just under the limit is fine (unknown fields are ignored).
    let mut account = account_body("contoso");
    account["padding"] = json!("x".repeat(1000 * 1000));
    let answer = app.put_account("contoso", &account).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let app = setup().await;
    let json_text = account_body("contoso").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/xml"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let with_type = |request: RequestBuilder, body: String| match content_type {
            Some(content_type) => request.header("content-type", content_type).body(body),
            None => request.body(body),
        };
        let what = format!("{content_type:?}");
        refused(
            &app,
            &format!("account, {what}"),
            with_type(
                app.request(Method::PUT, "/accounts/contoso"),
                json_text.clone(),
            ),
            415,
            "UnsupportedMediaType",
            Some("Content-Type"),
        )
        .await;
        refused(
            &app,
            &format!("number, {what}"),
            with_type(
                app.request(Method::PUT, &number_path("contoso", FREE)),
                number_body("contoso", FREE).to_string(),
            ),
            415,
            "UnsupportedMediaType",
            Some("Content-Type"),
        )
        .await;
        refused(
            &app,
            &format!("batch, {what}"),
            with_type(
                app.request(Method::POST, "/accounts/contoso:deleteNumbers"),
                json!({"numbers": [{"telephoneNumber": OWNED}]}).to_string(),
            ),
            415,
            "UnsupportedMediaType",
            Some("Content-Type"),
        )
        .await;
        refused(
            &app,
            &format!("consent, {what}"),
            with_type(
                app.request(
                    Method::PATCH,
                    &format!("/teamsRequestsForInformation/{TENANT}"),
                ),
                json!({"customerRelationship": {"status": "CustomerContacted"}}).to_string(),
            ),
            415,
            "UnsupportedMediaType",
            Some("Content-Type"),
        )
        .await;
    }
    assert_eq!(app.get_number("contoso", OWNED).await.status, 200);
}

// ---- telephone numbers -----------------------------------------------------------------------

/// Numbers that are not E.164 as nmp takes it, each with what is wrong.
const BAD_NUMBERS: [(&str, &str); 7] = [
    ("no plus", "15105850321"),
    ("letters", "+1510585abcd"),
    ("too long (17 characters)", "+1234567890123456"),
    ("leading 0 country code", "+05105850321"),
    ("only a plus", "+"),
    ("too short", "+1"),
    ("spaces", "+1 510 585 0321"),
];

#[tokio::test]
async fn invalid_telephone_numbers_in_the_path_are_refused() {
    let app = setup().await;
    for (what, number) in BAD_NUMBERS {
        let path = number_path("contoso", &number.replace(' ', "%20"));
        for method in [Method::GET, Method::DELETE] {
            refused(
                &app,
                &format!("{method} {what}"),
                app.request(method.clone(), &path),
                400,
                "InvalidTelephoneNumber",
                Some("telephoneNumber"),
            )
            .await;
        }
        refused(
            &app,
            &format!("PUT {what}"),
            app.request(Method::PUT, &path)
                .json(&number_body("contoso", number)),
            400,
            "InvalidTelephoneNumber",
            Some("telephoneNumber"),
        )
        .await;
    }
    // 16 characters is the most, and allowed.
    let longest = "+151058503210123";
    let put = app
        .put_number("contoso", longest, &number_body("contoso", longest))
        .await;
    assert_eq!(put.status, 201, "{put:?}");
}

#[tokio::test]
async fn invalid_telephone_numbers_in_a_put_body_are_refused() {
    let app = setup().await;
    for (what, number) in BAD_NUMBERS {
        refused(
            &app,
            what,
            put_number(&app, "contoso", FREE, &number_body("contoso", number)),
            400,
            "InvalidTelephoneNumber",
            Some("telephoneNumber"),
        )
        .await;
    }
    refused(
        &app,
        "body number differs from the path's",
        put_number(
            &app,
            "contoso",
            FREE,
            &number_body("contoso", "+15105850398"),
        ),
        400,
        "TelephoneNumberMismatch",
        Some("telephoneNumber"),
    )
    .await;
    absent(&app, "contoso", FREE).await;
    absent(&app, "contoso", "+15105850398").await;
}

#[tokio::test]
async fn invalid_telephone_numbers_in_a_batch_are_refused_naming_the_item() {
    let app = setup().await;
    for (what, number) in BAD_NUMBERS {
        let batch = vec![
            number_body("contoso", "+15105850400"),
            number_body("contoso", "+15105850401"),
            number_body("contoso", number),
        ];
        refused(
            &app,
            &format!("createOrUpdateNumbers, {what}"),
            upsert(&app, "contoso", batch),
            400,
            "InvalidTelephoneNumber",
            Some("numbers[2].telephoneNumber"),
        )
        .await;
        refused(
            &app,
            &format!("deleteNumbers, {what}"),
            delete_batch(&app, "contoso", &[OWNED, "+15105850400", number]),
            400,
            "InvalidTelephoneNumber",
            Some("numbers[2].telephoneNumber"),
        )
        .await;
    }
    absent(&app, "contoso", "+15105850400").await;
    assert_eq!(
        app.get_number("contoso", OWNED).await.status,
        200,
        "not deleted"
    );
}

// ---- account names ---------------------------------------------------------------------------

#[tokio::test]
async fn invalid_account_names_in_the_path_are_refused() {
    let app = setup().await;
    let too_long = "a".repeat(101);
    for (what, name) in [
        ("a dot", "bad.name"),
        ("a space", "bad%20name"),
        ("a non-ASCII letter", "caf%C3%A9"),
        ("a colon", "bad:name"),
        ("101 characters", too_long.as_str()),
    ] {
        let account = format!("/accounts/{name}");
        refused(
            &app,
            &format!("GET account, {what}"),
            app.request(Method::GET, &account),
            400,
            "InvalidAccountName",
            Some("accountName"),
        )
        .await;
        refused(
            &app,
            &format!("PUT account, {what}"),
            app.request(Method::PUT, &account).json(&account_body(name)),
            400,
            "InvalidAccountName",
            Some("accountName"),
        )
        .await;
        refused(
            &app,
            &format!("DELETE account, {what}"),
            app.request(Method::DELETE, &account),
            400,
            "InvalidAccountName",
            Some("accountName"),
        )
        .await;
        refused(
            &app,
            &format!("PUT number, {what}"),
            put_number(&app, name, FREE, &number_body(name, FREE)),
            400,
            "InvalidAccountName",
            Some("accountName"),
        )
        .await;
        if !name.contains(':') {
            refused(
                &app,
                &format!("createOrUpdateNumbers, {what}"),
                upsert(&app, name, vec![number_body(name, FREE)]),
                400,
                "InvalidAccountName",
                Some("accountName"),
            )
            .await;
            refused(
                &app,
                &format!("deleteNumbers, {what}"),
                delete_batch(&app, name, &[OWNED]),
                400,
                "InvalidAccountName",
                Some("accountName"),
            )
            .await;
        }
    }
    // 100 characters is the most, and allowed.
    let longest = "b".repeat(100);
    let put = app.put_account(&longest, &account_body(&longest)).await;
    assert_eq!(put.status, 201, "{put:?}");
}

#[tokio::test]
async fn account_names_in_the_body_must_match_the_path() {
    let app = setup().await;
    for body_name in ["fabrikam", "Contoso", "bad name", ""] {
        refused(
            &app,
            &format!("account body name {body_name:?}"),
            put_account(&app, "contoso", &account_body(body_name)),
            400,
            "AccountNameMismatch",
            Some("name"),
        )
        .await;
    }
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    refused(
        &app,
        "number body accountName",
        put_number(&app, "contoso", FREE, &number_body("fabrikam", FREE)),
        400,
        "AccountNameMismatch",
        Some("accountName"),
    )
    .await;
    refused(
        &app,
        "batch item accountName",
        upsert(
            &app,
            "contoso",
            vec![
                number_body("contoso", "+15105850400"),
                number_body("fabrikam", FREE),
            ],
        ),
        400,
        "AccountNameMismatch",
        Some("numbers[1].accountName"),
    )
    .await;
    absent(&app, "contoso", FREE).await;
    absent(&app, "fabrikam", FREE).await;
    absent(&app, "contoso", "+15105850400").await;
}

// ---- custom SIP header -----------------------------------------------------------------------

#[tokio::test]
async fn invalid_custom_sip_headers_are_refused() {
    let app = setup().await;
    let too_long = "h".repeat(101);
    for (what, value) in [
        ("a space", "contoso commsgw"),
        ("empty", ""),
        ("a dot", "contoso.commsgw"),
        ("a non-ASCII letter", "café"),
        ("101 characters", too_long.as_str()),
    ] {
        let mut number = number_body("contoso", FREE);
        number["configuration"]["customSipHeader"] = json!(value);
        refused(
            &app,
            what,
            put_number(&app, "contoso", FREE, &number),
            400,
            "InvalidCustomSipHeader",
            Some("configuration.customSipHeader"),
        )
        .await;
        refused(
            &app,
            &format!("{what} in a batch"),
            upsert(
                &app,
                "contoso",
                vec![number_body("contoso", "+15105850400"), number],
            ),
            400,
            "InvalidCustomSipHeader",
            Some("numbers[1].configuration.customSipHeader"),
        )
        .await;
    }
    absent(&app, "contoso", FREE).await;
    absent(&app, "contoso", "+15105850400").await;
}

// ---- batches ---------------------------------------------------------------------------------

fn numbers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("+1425555{i:04}")).collect()
}

#[tokio::test]
async fn more_than_one_hundred_numbers_are_too_many() {
    let app = setup().await;
    let many = numbers(101);
    let batch: Vec<Value> = many.iter().map(|n| number_body("contoso", n)).collect();
    refused(
        &app,
        "createOrUpdateNumbers with 101",
        upsert(&app, "contoso", batch),
        400,
        "TooManyNumbers",
        Some("numbers"),
    )
    .await;
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(
        &app,
        "deleteNumbers with 101",
        delete_batch(&app, "contoso", &refs),
        400,
        "TooManyNumbers",
        Some("numbers"),
    )
    .await;
    absent(&app, "contoso", &many[0]).await;

    // One hundred is the most, and allowed, both ways.
    let hundred = &many[..100];
    let batch: Vec<Value> = hundred.iter().map(|n| number_body("contoso", n)).collect();
    let answer = app
        .upsert_numbers("contoso", &json!({ "numbers": batch }))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["numbers"].as_array().map(Vec::len), Some(100));
    let refs: Vec<&str> = hundred.iter().map(String::as_str).collect();
    let answer = app.delete_numbers("contoso", &refs).await;
    assert_eq!(answer.status, 204, "{answer:?}");
}

#[tokio::test]
async fn an_empty_batch_changes_nothing() {
    // The public API sets no minimum: a BSS that sends its list in chunks may send an empty one.
    let app = setup().await;
    let before = app.event_count().await;
    let upserted = app.send(upsert(&app, "contoso", Vec::new())).await;
    assert_eq!(upserted.status, 200, "{upserted:?}");
    assert_eq!(upserted.body["numbers"], json!([]));
    let deleted = app.send(delete_batch(&app, "contoso", &[])).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(app.event_count().await, before, "nothing was written");
    // On an account that does not exist, it is still refused.
    app.send(upsert(&app, "nobody", Vec::new()))
        .await
        .assert_error(404, "AccountNotFound");
}

#[tokio::test]
async fn duplicate_numbers_in_one_batch_are_refused() {
    let app = setup().await;
    let batch = vec![
        number_body("contoso", "+15105850400"),
        number_body("contoso", "+15105850401"),
        number_body("contoso", "+15105850400"),
    ];
    let answer = refused(
        &app,
        "createOrUpdateNumbers",
        upsert(&app, "contoso", batch),
        400,
        "InvalidBatch",
        Some("numbers[2].telephoneNumber"),
    )
    .await;
    let details = answer.body["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "{answer:?}");
    assert_eq!(details[0]["code"], "DuplicateNumber");
    assert_eq!(details[0]["target"], "numbers[2].telephoneNumber");
    absent(&app, "contoso", "+15105850400").await;
    absent(&app, "contoso", "+15105850401").await;

    let answer = refused(
        &app,
        "deleteNumbers",
        delete_batch(&app, "contoso", &[OWNED, OWNED]),
        400,
        "InvalidBatch",
        Some("numbers[1].telephoneNumber"),
    )
    .await;
    assert_eq!(
        answer.body["error"]["details"][0]["code"],
        "DuplicateNumber"
    );
    assert_eq!(
        app.get_number("contoso", OWNED).await.status,
        200,
        "not deleted"
    );
}

#[tokio::test]
async fn one_item_refused_for_a_domain_reason_refuses_the_whole_batch() {
    let app = setup().await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    let batch = vec![
        number_body("fabrikam", "+15105850400"),
        number_body("fabrikam", OWNED),
        number_body("fabrikam", "+15105850401"),
    ];
    let answer = refused(
        &app,
        "a number of another account",
        upsert(&app, "fabrikam", batch),
        409,
        "InvalidBatch",
        Some("numbers[1].telephoneNumber"),
    )
    .await;
    let details = answer.body["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 1, "only the bad item is named: {answer:?}");
    assert_eq!(details[0]["code"], "NumberInAnotherAccount");
    assert_eq!(details[0]["target"], "numbers[1].telephoneNumber");
    absent(&app, "fabrikam", "+15105850400").await;
    absent(&app, "fabrikam", "+15105850401").await;
    let owner = app.get_number("contoso", OWNED).await;
    assert_eq!(owner.status, 200, "still contoso's: {owner:?}");
    let account = app.get_account("fabrikam").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"], 0,
        "{account:?}"
    );

    // An invalid item and a conflicting one: the request as a whole is invalid (400), and
    // each refused item is named.
    let mut zoom = number_body("fabrikam", "+15105850402");
    zoom["serviceDetails"] = json!({"zoomPhoneCloudPeering": {"enabled": true}});
    let batch = vec![
        number_body("fabrikam", "+15105850400"),
        number_body("fabrikam", OWNED),
        zoom,
    ];
    let answer = refused(
        &app,
        "conflict and invalid",
        upsert(&app, "fabrikam", batch),
        400,
        "InvalidBatch",
        Some("numbers[1].telephoneNumber"),
    )
    .await;
    let details = answer.body["error"]["details"].as_array().expect("details");
    let codes: Vec<&str> = details.iter().filter_map(|d| d["code"].as_str()).collect();
    assert_eq!(
        codes,
        ["NumberInAnotherAccount", "ServiceNotEnabledOnAccount"],
        "{answer:?}"
    );
    assert_eq!(
        details[1]["target"],
        "numbers[2].serviceDetails.zoomPhoneCloudPeering"
    );
    absent(&app, "fabrikam", "+15105850400").await;

    // Deleting, through fabrikam, a number that is contoso's deletes none of the batch (and
    // says whose it is, as a PUT would).
    let answer = app
        .upsert_numbers(
            "fabrikam",
            &json!({"numbers": [number_body("fabrikam", "+15105850400")]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = refused(
        &app,
        "deleting another account's number",
        delete_batch(&app, "fabrikam", &["+15105850400", OWNED]),
        409,
        "InvalidBatch",
        Some("numbers[1].telephoneNumber"),
    )
    .await;
    assert_eq!(
        answer.body["error"]["details"][0]["code"], "NumberInAnotherAccount",
        "{answer:?}"
    );
    assert_eq!(app.get_number("fabrikam", "+15105850400").await.status, 200);
    assert_eq!(app.get_number("contoso", OWNED).await.status, 200);
}

#[tokio::test]
async fn numbers_of_a_missing_account_are_not_found() {
    let app = setup().await;
    refused(
        &app,
        "PUT number",
        put_number(&app, "nobody", FREE, &number_body("nobody", FREE)),
        404,
        "AccountNotFound",
        Some("accountName"),
    )
    .await;
    refused(
        &app,
        "createOrUpdateNumbers",
        upsert(&app, "nobody", vec![number_body("nobody", FREE)]),
        404,
        "AccountNotFound",
        Some("accountName"),
    )
    .await;
    refused(
        &app,
        "deleteNumbers",
        delete_batch(&app, "nobody", &[FREE]),
        404,
        "AccountNotFound",
        Some("accountName"),
    )
    .await;
}

#[tokio::test]
async fn putting_a_number_of_another_account_is_a_conflict() {
    let app = setup().await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    refused(
        &app,
        "PUT",
        put_number(&app, "fabrikam", OWNED, &number_body("fabrikam", OWNED)),
        409,
        "NumberInAnotherAccount",
        Some("telephoneNumber"),
    )
    .await;
    assert_eq!(app.get_number("contoso", OWNED).await.status, 200);
    absent(&app, "fabrikam", OWNED).await;
}

// ---- query parameters and actions ------------------------------------------------------------

#[tokio::test]
async fn a_missing_api_version_is_refused() {
    let app = setup().await;
    for (what, request) in [
        (
            "GET account",
            app.request_unversioned(Method::GET, "/accounts/contoso"),
        ),
        (
            "PUT account",
            app.request_unversioned(Method::PUT, "/accounts/contoso")
                .json(&account_body("contoso")),
        ),
        (
            "DELETE number",
            app.request_unversioned(Method::DELETE, &number_path("contoso", OWNED)),
        ),
        (
            "other parameters only",
            app.request_unversioned(Method::DELETE, "/accounts/contoso?deleteNumbers=true"),
        ),
        (
            "a different case",
            app.request_unversioned(
                Method::DELETE,
                &format!("/accounts/contoso?deleteNumbers=true&API-VERSION={API_VERSION}"),
            ),
        ),
    ] {
        refused(
            &app,
            what,
            request,
            400,
            "MissingApiVersionParameter",
            Some("api-version"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_api_version_is_refused() {
    let app = setup().await;
    for version in [
        "2023-01-01",
        "",
        "2024-02-29",
        "2024-02-29-PREVIEW",
        "latest",
    ] {
        let path = format!("/accounts/contoso?deleteNumbers=true&api-version={version}");
        refused(
            &app,
            &format!("api-version={version:?}"),
            app.request_unversioned(Method::DELETE, &path),
            400,
            "UnsupportedApiVersionValue",
            Some("api-version"),
        )
        .await;
    }
    refused(
        &app,
        "a bare api-version",
        app.request_unversioned(Method::GET, "/accounts/contoso?api-version"),
        400,
        "UnsupportedApiVersionValue",
        Some("api-version"),
    )
    .await;
}

#[tokio::test]
async fn an_unknown_account_action_is_refused() {
    let app = setup().await;
    for action in ["frobnicate", "", "createOrUpdateNumber", "DELETENUMBERS"] {
        refused(
            &app,
            &format!("action {action:?}"),
            app.request(Method::POST, &format!("/accounts/contoso:{action}"))
                .json(&json!({"numbers": [{"telephoneNumber": OWNED}]})),
            400,
            "UnknownAction",
            Some("action"),
        )
        .await;
    }
    assert_eq!(app.get_number("contoso", OWNED).await.status, 200);
}

#[tokio::test]
async fn delete_numbers_must_be_true_or_false() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    for value in ["maybe", "", "1", "yes", "TRUE"] {
        refused(
            &app,
            &format!("deleteNumbers={value:?}"),
            app.request(
                Method::DELETE,
                &format!("/accounts/contoso?deleteNumbers={value}"),
            ),
            400,
            "InvalidQueryParameter",
            Some("deleteNumbers"),
        )
        .await;
    }
    assert_eq!(app.get_account("contoso").await.status, 200, "not deleted");
}

// ---- consents --------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_tenant_ids_in_the_consents_path_are_refused() {
    let app = setup().await;
    let body = json!({"customerRelationship": {"status": "CustomerContacted"}});
    for (what, tenant) in [
        ("not a GUID", "contoso"),
        ("no dashes", "a7f4bd5ccc0140f48baa2b6bdb272b8a"),
        ("braces", "%7Ba7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a%7D"),
        ("not hex", "g7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a"),
        ("too long", "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8aa"),
    ] {
        refused(
            &app,
            &format!("GET, {what}"),
            app.request(
                Method::GET,
                &format!("/teamsRequestsForInformation/{tenant}"),
            ),
            400,
            "InvalidTenantId",
            Some("tenantId"),
        )
        .await;
        refused(
            &app,
            &format!("PATCH, {what}"),
            patch_consent(&app, tenant, &body),
            400,
            "InvalidTenantId",
            Some("tenantId"),
        )
        .await;
    }
}

#[tokio::test]
async fn declining_or_terminating_needs_a_reason() {
    let app = setup().await;
    for (what, relationship) in [
        ("declined, no comment", json!({"status": "ConsentDeclined"})),
        (
            "declined, null comment",
            json!({"status": "ConsentDeclined", "comment": null}),
        ),
        (
            "terminated, no comment",
            json!({"status": "ContractTerminated"}),
        ),
    ] {
        refused(
            &app,
            what,
            patch_consent(
                &app,
                TENANT,
                &json!({ "customerRelationship": relationship }),
            ),
            400,
            "ReasonRequired",
            Some("customerRelationship.comment"),
        )
        .await;
    }
    refused(
        &app,
        "declined, blank comment",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentDeclined", "comment": "   "}}),
        ),
        400,
        "InvalidComment",
        Some("customerRelationship.comment"),
    )
    .await;
    refused(
        &app,
        "no status on a consent without a relationship",
        patch_consent(
            &app,
            TENANT,
            &json!({"customerRelationship": {"comment": "hello"}}),
        ),
        400,
        "MissingRelationshipStatus",
        Some("customerRelationship.status"),
    )
    .await;
    let consent = app.get_consent(TENANT).await;
    assert_eq!(consent.status, 200);
    assert!(
        consent.body.get("customerRelationship").is_none(),
        "{consent:?}"
    );
}

#[tokio::test]
async fn patching_an_unknown_consent_is_not_found() {
    let app = setup().await;
    let other = "00000000-0000-4000-8000-000000000001";
    refused(
        &app,
        "PATCH",
        patch_consent(
            &app,
            other,
            &json!({"customerRelationship": {"status": "CustomerContacted"}}),
        ),
        404,
        "RequestForInformationNotFound",
        Some("tenantId"),
    )
    .await;
    refused(
        &app,
        "GET",
        app.request(
            Method::GET,
            &format!("/teamsRequestsForInformation/{other}"),
        ),
        404,
        "RequestForInformationNotFound",
        Some("tenantId"),
    )
    .await;
}

// ---- headers ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_ticket_id_is_refused() {
    let app = setup().await;
    let body = json!({"customerRelationship": {"status": "CustomerContacted"}});
    for (what, ticket) in [
        ("65 characters", "T".repeat(65)),
        ("empty", String::new()),
        ("a tab", "INC\t42".to_string()),
    ] {
        refused(
            &app,
            &format!("PATCH consent, {what}"),
            patch_consent(&app, TENANT, &body).header("x-nmp-ticket-id", ticket.as_str()),
            400,
            "InvalidTicketId",
            Some("x-nmp-ticket-id"),
        )
        .await;
        refused(
            &app,
            &format!("PUT number, {what}"),
            put_number(&app, "contoso", FREE, &number_body("contoso", FREE))
                .header("x-nmp-ticket-id", ticket.as_str()),
            400,
            "InvalidTicketId",
            Some("x-nmp-ticket-id"),
        )
        .await;
    }
    // 64 characters is the most, and allowed.
    let answer = app
        .send(patch_consent(&app, TENANT, &body).header("x-nmp-ticket-id", "T".repeat(64)))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn malformed_preconditions_are_refused() {
    let app = setup().await;
    let consent = format!("/teamsRequestsForInformation/{TENANT}");
    for (header, value) in [
        ("if-match", "3"),
        ("if-match", "\"3"),
        ("if-match", "\"1\", 2"),
        ("if-match", ""),
        ("if-none-match", "anything"),
    ] {
        let target = Some(header);
        refused(
            &app,
            &format!("PUT account, {header}: {value}"),
            put_account(&app, "contoso", &account_body("contoso")).header(header, value),
            400,
            "InvalidHeader",
            target,
        )
        .await;
        refused(
            &app,
            &format!("PUT number, {header}: {value}"),
            put_number(&app, "contoso", OWNED, &number_body("contoso", OWNED))
                .header(header, value),
            400,
            "InvalidHeader",
            target,
        )
        .await;
        refused(
            &app,
            &format!("DELETE number, {header}: {value}"),
            app.request(Method::DELETE, &number_path("contoso", OWNED))
                .header(header, value),
            400,
            "InvalidHeader",
            target,
        )
        .await;
        refused(
            &app,
            &format!("DELETE account, {header}: {value}"),
            app.request(Method::DELETE, "/accounts/contoso?deleteNumbers=true")
                .header(header, value),
            400,
            "InvalidHeader",
            target,
        )
        .await;
        refused(
            &app,
            &format!("PATCH consent, {header}: {value}"),
            app.request(Method::PATCH, &consent)
                .header(header, value)
                .header("content-type", "application/merge-patch+json")
                .body(json!({"customerRelationship": {"status": "CustomerContacted"}}).to_string()),
            400,
            "InvalidHeader",
            target,
        )
        .await;
    }
    assert_eq!(
        app.get_number("contoso", OWNED).await.status,
        200,
        "not deleted"
    );
}
