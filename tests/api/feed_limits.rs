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

/// The SSE events of a feed read until `until` is seen or `limit` passes: (event, id) pairs.
async fn read_events(
    response: &mut reqwest::Response,
    until: &str,
    limit: Duration,
) -> Vec<(String, String)> {
    let started = Instant::now();
    let mut text = String::new();
    while !text.contains(until) {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .map(str::to_string)
            };
            Some((field("event")?, field("id").unwrap_or_default()))
        })
        .collect()
}

#[tokio::test]
async fn a_feed_that_reconnects_gets_what_it_missed_then_goes_on_live() {
    let source = nmp::feed::channel();
    let app = {
        let source = source.clone();
        spawn_app_with(move |state| state.feed = Some(source)).await
    };
    let read = tests::projections::ReadSide::start(&app).await;
    let feed = crate::dashboard::follow_the_stream(&read, source).await;
    let settings = &read.stream.settings;
    let mut app = app;
    app.state.feed_history = Some(std::sync::Arc::new(nmp::feed::JetStreamHistory {
        jetstream: read.stream.jetstream.clone(),
        stream: settings.stream_name(),
        subjects: settings.subjects(),
    }));
    // The history is read through the state the server was started with: a second server on
    // this state serves the feed with it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(api::serve(
        listener,
        app.state.clone(),
        std::future::pending(),
    ));
    let open = |last: Option<&str>| {
        let mut request = app
            .client
            .get(format!(
                "{address}/dashboard/feed?api-version=2024-02-29-preview"
            ))
            .bearer_auth(app.admin());
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };

    let mut first = open(None).await.expect("the feed");
    assert_eq!(first.status(), 200);
    assert_eq!(
        app.put_account("contoso", &tests::account_body("contoso"))
            .await
            .status,
        201
    );
    let seen = read_events(
        &mut first,
        "nmp.account.AccountCreated",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        seen,
        [("nmp.account.AccountCreated".to_string(), "1".to_string())]
    );
    drop(first);

    // Missed while disconnected.
    for number in ["+15105850001", "+15105850002"] {
        let added = app
            .put_number("contoso", number, &tests::number_body("contoso", number))
            .await;
        assert_eq!(added.status, 201);
    }
    read.stream.wait_for(3, Duration::from_secs(20)).await;

    let mut again = open(Some("1")).await.expect("the feed");
    assert_eq!(again.status(), 200);
    let missed = read_events(&mut again, "id: 3", Duration::from_secs(20)).await;
    assert_eq!(
        missed,
        [
            ("nmp.number.NumberAdded".to_string(), "2".to_string()),
            ("nmp.number.NumberAdded".to_string(), "3".to_string())
        ],
        "the missed events, in order, once each"
    );
    // Then live.
    let deleted = app.delete_number("contoso", "+15105850001").await;
    assert_eq!(deleted.status, 204);
    let live = read_events(&mut again, "id: 4", Duration::from_secs(20)).await;
    assert_eq!(
        live,
        [(
            "nmp.number.NumberDeletionRequested".to_string(),
            "4".to_string()
        )]
    );
    feed.abort();
}
