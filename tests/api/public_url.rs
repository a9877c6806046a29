//! Links in answers start with the configured public URL, whatever the request's headers say;
//! without one, they follow the request.

use reqwest::Method;
use serde_json::json;
use tests::{TestApp, account_body, spawn_app, spawn_app_with};

/// An account with three events, so its history pages at one event a page.
async fn three_events(app: &TestApp) {
    for correlation in ["c1", "c2", "c3"] {
        let mut body = account_body("contoso");
        body["correlationId"] = json!(correlation);
        let answer = app.put_account("contoso", &body).await;
        assert!(answer.status == 200 || answer.status == 201, "{answer:?}");
    }
}

async fn next_link(app: &TestApp, host: &str) -> String {
    let page = app
        .send(
            app.request(Method::GET, "/audit/account/contoso/events?maxpagesize=1")
                .header("host", host)
                .header("x-forwarded-proto", "http"),
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    page.body["nextLink"]
        .as_str()
        .expect("a next page")
        .to_string()
}

#[tokio::test]
async fn next_links_start_with_the_public_url_when_one_is_set() {
    let app = spawn_app_with(|state| {
        state.public_url = Some("https://nmp.example.com/".to_string());
    })
    .await;
    three_events(&app).await;
    let link = next_link(&app, "attacker.example").await;
    assert!(
        link.starts_with("https://nmp.example.com/audit/account/contoso/events?"),
        "{link}"
    );
}

#[tokio::test]
async fn without_a_public_url_links_follow_the_request() {
    let app = spawn_app().await;
    three_events(&app).await;
    let link = next_link(&app, "nmp.internal:8443").await;
    assert!(
        link.starts_with("http://nmp.internal:8443/audit/account/contoso/events?"),
        "{link}"
    );
}
