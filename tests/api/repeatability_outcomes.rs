//! A repeatable request is never carried out twice: not by a repeat while it runs longer than
//! its lease (the lease is renewed), and not by a repeat after it failed in a way that may have
//! committed its changes (the reservation is kept).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::put;
use chrono::Utc;
use reqwest::Method;
use tests::{Answer, TestApp, number_body, spawn_app_with};

fn first_sent() -> String {
    Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[tokio::test]
async fn a_request_running_longer_than_its_lease_is_not_carried_out_by_a_repeat() {
    let app = spawn_app_with(|state| state.repeatability_lease = Duration::from_secs(1)).await;
    let account = tests::account_body("contoso");
    assert_eq!(app.put_account("contoso", &account).await.status, 201);
    // The account's lock held elsewhere: the number's write waits for it.
    let lock = app
        .event_store()
        .lock_accounts(&["contoso"])
        .await
        .expect("locked");
    let sent = first_sent();
    let put = |app: &TestApp| {
        app.request(Method::PUT, &tests::number_path("contoso", "+15105850321"))
            .header("Repeatability-Request-ID", "slow-1")
            .header("Repeatability-First-Sent", sent.clone())
            .json(&number_body("contoso", "+15105850321"))
    };
    let first = {
        let request = put(&app);
        tokio::spawn(async move { Answer::from(request.send().await.expect("sent")).await })
    };
    // Well past the lease: the first is still running, so the repeat is told to wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let repeat = app.send(put(&app)).await;
    repeat.assert_error(409, "RepeatableRequestInProgress");
    drop(lock);
    let first = first.await.expect("the first request");
    assert_eq!(first.status, 201, "{first:?}");
    let repeat = app.send(put(&app)).await;
    assert_eq!(repeat.status, 201, "the first answer: {repeat:?}");
    assert_eq!(repeat.header("repeatability-result"), Some("accepted"));
    let added: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'NumberAdded'")
            .fetch_one(&app.pool)
            .await
            .expect("events");
    assert_eq!(added, 1, "carried out once");
}

/// Serves `handler` behind the repeatability middleware, on the app's state.
async fn serve_behind_repeatability(
    app: &TestApp,
    handler: axum::routing::MethodRouter<api::AppState>,
) -> String {
    let router = axum::Router::new()
        .route("/thing", handler)
        .layer(axum::middleware::from_fn_with_state(
            app.state.clone(),
            api::middleware::repeatability,
        ))
        .with_state(app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

async fn send(address: &str, id: &str) -> Answer {
    let response = reqwest::Client::new()
        .put(format!("{address}/thing"))
        .header("Repeatability-Request-ID", id)
        .header("Repeatability-First-Sent", first_sent())
        .body("{}")
        .send()
        .await
        .expect("sent");
    Answer::from(response).await
}

#[tokio::test]
async fn a_failure_that_may_have_committed_keeps_the_reservation() {
    let app = spawn_app_with(|_| {}).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let address = serve_behind_repeatability(
        &app,
        put(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                api::error::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the connection broke while committing",
                )
                .with_outcome_unknown()
            }
        }),
    )
    .await;
    assert_eq!(send(&address, "unknown-1").await.status, 503);
    let repeat = send(&address, "unknown-1").await;
    repeat.assert_error(409, "RepeatableRequestInProgress");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "not carried out again");
}

#[tokio::test]
async fn a_failure_before_anything_was_written_lets_a_repeat_try_again() {
    let app = spawn_app_with(|_| {}).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let address = serve_behind_repeatability(
        &app,
        put(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                api::error::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "no connection could be had",
                )
            }
        }),
    )
    .await;
    assert_eq!(send(&address, "known-1").await.status, 503);
    assert_eq!(send(&address, "known-1").await.status, 503);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the repeat ran it again");
}
