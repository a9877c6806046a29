//! The live feed's limits: a cap on open feeds, and a feed ends with its token.

use std::time::{Duration, Instant};

use auth::Role;
use reqwest::Method;
use tests::{TestApp, spawn_app_with};

async fn app_with_feed() -> TestApp {
    let source = nmp::feed::channel();
    spawn_app_with(move |state| state.feed = Some(source)).await
}

#[tokio::test]
async fn feeds_beyond_the_cap_are_refused() {
    let app = app_with_feed().await;
    let taken = app
        .state
        .feeds
        .clone()
        .acquire_many_owned(api::MAX_FEEDS as u32)
        .await
        .expect("every slot");
    let refused = app.send(app.request(Method::GET, "/dashboard/feed")).await;
    refused.assert_error(429, "TooManyFeeds");
    assert_eq!(refused.header("retry-after"), Some("10"));
    drop(taken);
    let response = app
        .request(Method::GET, "/dashboard/feed")
        .send()
        .await
        .expect("the feed answers");
    assert_eq!(response.status(), 200);
    // An open feed holds a slot, and gives it back when it closes.
    assert_eq!(app.state.feeds.available_permits(), api::MAX_FEEDS - 1);
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.state.feeds.available_permits() != api::MAX_FEEDS {
        assert!(Instant::now() < deadline, "the closed feed kept its slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_feed_ends_when_its_token_expires() {
    let app = app_with_feed().await;
    let token = auth::mint_token(
        app.secret.as_bytes(),
        "short-lived",
        &[Role::Read],
        Duration::from_secs(2),
    );
    let mut response = app
        .request_as(Method::GET, "/dashboard/feed", Some(&token))
        .send()
        .await
        .expect("the feed answers");
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let mut body = String::new();
    loop {
        let left = Duration::from_secs(8).saturating_sub(started.elapsed());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => break,
            Ok(Err(error)) => panic!("the feed broke: {error}"),
            Err(_) => panic!("the feed outlived its token: {body}"),
        }
    }
    assert!(body.contains("event: nmp.feed.expired"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
