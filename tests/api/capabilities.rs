//! `:getTeamsCapabilityPlans` and `:getTeamsAvailableCapabilities`, which nmp answers by asking
//! the Teams backend (here the simulator, over HTTP), and how it reports the backend's faults.

use reqwest::Method;
use serde_json::{Value, json};
use sim::{Faults, RateLimit};
use tests::{Answer, TestApp, account_body, spawn_app, spawn_app_with, spawn_app_with_backend};

async fn plans(app: &TestApp, account: &str) -> Answer {
    app.send(app.request(
        Method::POST,
        &format!("/accounts/{account}:getTeamsCapabilityPlans"),
    ))
    .await
}

async fn available(app: &TestApp, account: &str, body: &Value) -> Answer {
    app.send(
        app.request(
            Method::POST,
            &format!("/accounts/{account}:getTeamsAvailableCapabilities"),
        )
        .json(body),
    )
    .await
}

fn numbers(numbers: &[&str]) -> Value {
    json!({"numbers": numbers.iter().map(|n| json!({"telephoneNumber": n})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn the_capability_plans_are_the_backends() {
    let (app, _sim) = spawn_app_with_backend().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let answer = plans(&app, "contoso").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let plans = answer.body["capabilityPlans"].as_array().expect("plans");
    let calling = plans
        .iter()
        .find(|p| p["name"] == "operatorConnect-CallingUserAssignment")
        .expect("Operator Connect's calling-user plan");
    assert_eq!(
        *calling,
        json!({"name": "operatorConnect-CallingUserAssignment", "offerTypes": ["Calling"],
               "usage": "CallingUserAssignment", "mandatoryCapabilities": [],
               "choosableCapabilities": ["InboundCalling", "OutboundCalling"],
               "supportsTollFree": true})
    );
    let mobile = plans
        .iter()
        .find(|p| p["offerTypes"] == json!(["Mobile"]))
        .expect("a Teams Phone Mobile plan");
    assert_eq!(mobile["supportsTollFree"], false);
}

#[tokio::test]
async fn available_capabilities_are_those_every_number_has() {
    let (app, _sim) = spawn_app_with_backend().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let answer = available(&app, "contoso", &numbers(&["+15105850321", "+15105850322"])).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"availableCapabilities": ["InboundCalling", "OutboundCalling"]})
    );

    // A number the backend rejects is named, with the backend's code.
    let answer = available(&app, "contoso", &numbers(&["+15105850321", "+99912345678"])).await;
    answer.assert_error(400, "InvalidBatch");
    let detail = &answer.body["error"]["details"][0];
    assert_eq!(detail["target"], "numbers[1].telephoneNumber", "{answer:?}");
    assert!(detail["code"].as_str().is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn the_account_must_exist_and_have_a_teams_tenant() {
    let (app, _sim) = spawn_app_with_backend().await;
    plans(&app, "nobody").await.assert_error(404, "NotFound");
    let zoom_only = json!({"name": "zoomers", "serviceDetails": {
        "zoomPhoneCloudPeering": {"enabled": true, "syncEnabled": false}}});
    assert_eq!(app.put_account("zoomers", &zoom_only).await.status, 201);
    let answer = plans(&app, "zoomers").await;
    answer.assert_error(409, "AccountWithoutTeamsTenant");
    assert_eq!(answer.error_target(), Some("serviceDetails.teamsTenantId"));
    available(&app, "zoomers", &numbers(&["+15105850321"]))
        .await
        .assert_error(409, "AccountWithoutTeamsTenant");
}

#[tokio::test]
async fn without_a_backend_nmp_answers_503_backend_not_configured() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    plans(&app, "contoso")
        .await
        .assert_error(503, "BackendNotConfigured");
    available(&app, "contoso", &numbers(&["+15105850321"]))
        .await
        .assert_error(503, "BackendNotConfigured");
}

#[tokio::test]
async fn bad_requests_are_refused_before_the_backend_is_asked() {
    let app = spawn_app().await;
    plans(&app, "bad%20name")
        .await
        .assert_error(400, "InvalidAccountName");
    available(&app, "contoso", &json!({}))
        .await
        .assert_error(400, "InvalidRequestBody");
    available(&app, "contoso", &numbers(&[]))
        .await
        .assert_error(400, "NoNumbers");
    let many: Vec<String> = (0..101).map(|i| format!("+1510585{i:04}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    available(&app, "contoso", &numbers(&many))
        .await
        .assert_error(400, "TooManyNumbers");
    let answer = available(&app, "contoso", &numbers(&["+15105850321", "0151"])).await;
    answer.assert_error(400, "InvalidTelephoneNumber");
    assert_eq!(answer.error_target(), Some("numbers[1].telephoneNumber"));
    let not_json = app
        .send(
            app.request(
                Method::POST,
                "/accounts/contoso:getTeamsAvailableCapabilities",
            )
            .header("content-type", "text/plain")
            .body("numbers"),
        )
        .await;
    not_json.assert_error(415, "UnsupportedMediaType");
}

#[tokio::test]
async fn an_unavailable_backend_is_a_503_with_its_retry_after() {
    let (app, sim) = spawn_app_with_backend().await;
    app.put_account("contoso", &account_body("contoso")).await;
    sim.control()
        .set_faults(&Faults {
            rate_limit: Some(RateLimit {
                limit: 0,
                window_seconds: 30,
            }),
            ..Faults::default()
        })
        .await
        .expect("faults set");
    let answer = plans(&app, "contoso").await;
    answer.assert_error(503, "BackendUnavailable");
    let retry_after: u64 = answer
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after), "{answer:?}");
}

#[tokio::test]
async fn an_unreachable_backend_is_a_503_without_a_time() {
    // A port nobody listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    drop(listener);
    let backend =
        backend::client::HttpBackend::new(&url, Default::default()).expect("a backend client");
    let app = spawn_app_with(|state| state.backend = Some(std::sync::Arc::new(backend))).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let answer = plans(&app, "contoso").await;
    answer.assert_error(503, "BackendUnavailable");
    assert_eq!(answer.header("retry-after"), None);
}

#[tokio::test]
async fn a_refusal_by_the_backend_is_a_502_with_its_code() {
    let sim = sim::spawn(sim::SimSettings::default())
        .await
        .expect("the simulator starts");
    // A base URL where the backend knows no such route: it refuses every call.
    let backend =
        backend::client::HttpBackend::new(&format!("{}/nowhere/", sim.url()), Default::default())
            .expect("a backend client");
    let app = spawn_app_with(|state| state.backend = Some(std::sync::Arc::new(backend))).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let answer = plans(&app, "contoso").await;
    assert_eq!(answer.status, 502, "{answer:?}");
    let code = answer.error_code().to_string();
    assert!(!code.is_empty() && code != "InternalError", "{answer:?}");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the Teams backend refused")),
        "{answer:?}"
    );
}
