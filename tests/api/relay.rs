//! The relay: every committed event reaches the JetStream stream exactly once, in order per
//! aggregate, through relay crashes, NATS restarts, rival relays and late commits.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use commands::Preconditions;
use domain::{AccountName, AccountServices, E164, Identifier, NumberDetails, PlainService};
use relay::RelayStatus;
use serde_json::Value;
use store::EventMetadata;
use tests::nats::{OwnNatsServer, TestStream, nats_url};
use tests::{TestApp, account_body, spawn_app};

/// Stored events as (message id, aggregate type, id, sequence), for comparing with the stream.
async fn stored_events(app: &TestApp) -> Vec<(String, String, String, i64)> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence FROM events ORDER BY tx_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    rows.into_iter()
        .map(|(t, i, s)| (format!("{t}:{i}:{s}"), t, i, s))
        .collect()
}

/// The stream holds exactly one message per stored event, and each aggregate's messages come
/// in sequence order.
async fn assert_exactly_once_in_order(app: &TestApp, stream: &TestStream) {
    let stored = stored_events(app).await;
    let messages = stream.messages().await;
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "no event is published twice");
    let expected: HashSet<&str> = stored.iter().map(|(id, ..)| id.as_str()).collect();
    assert_eq!(distinct, expected, "every stored event is published");
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    for message in &messages {
        let key = (message.aggregate_type.clone(), message.aggregate_id.clone());
        let previous = last.insert(key, message.sequence).unwrap_or(0);
        assert_eq!(
            message.sequence,
            previous + 1,
            "{} follows its aggregate's previous event",
            message.message_id
        );
    }
}

/// Proves that nothing more is on its way, then that the stream holds exactly the stored events:
/// commits a marker event after all the others and waits until the relay has published it. The
/// relay publishes in commit order, so a duplicate or a straggler of what came before would be
/// in the stream by then; and the marker must be the stream's last message.
async fn assert_nothing_more_then_exactly_once(app: &TestApp, stream: &TestStream) {
    let marker = format!("marker-{}", uuid::Uuid::new_v4().simple());
    let created = app.put_account(&marker, &account_body(&marker)).await;
    assert_eq!(created.status, 201, "the marker: {created:?}");
    let subject = format!("{}.events.account.{marker}", stream.settings.prefix);
    let sequence = stream
        .wait_for_subject(&subject, Duration::from_secs(60))
        .await;
    assert_eq!(
        stream.last_sequence().await,
        sequence,
        "nothing was published after the marker"
    );
    let stored = stored_events(app).await.len() as u64;
    assert_eq!(
        stream.message_count().await,
        stored,
        "one message per stored event, the marker included"
    );
    assert_exactly_once_in_order(app, stream).await;
}

fn metadata() -> EventMetadata {
    EventMetadata::system("relay-test")
}

/// Appends `count` events through the command service: account replacements and number adds.
async fn run_commands(app: &TestApp, writer: usize, count: usize) {
    let account = AccountName::parse(format!("writer-{writer}")).expect("name");
    let services = AccountServices {
        teams_direct_routing: None,
        zoom_phone_cloud_peering: None,
        azure_operator_call_protection: Some(PlainService { enabled: true }),
        ..Default::default()
    };
    for i in 0..count {
        if i % 2 == 0 {
            app.commands
                .create_or_replace_account(
                    &account,
                    Some(Identifier::parse(format!("c{i}")).expect("id")),
                    services.clone(),
                    &Preconditions::none(),
                    &metadata(),
                )
                .await
                .expect("account written");
        } else {
            let number = E164::parse(format!("+44{writer:03}{i:07}")).expect("number");
            let details = NumberDetails {
                azure_operator_call_protection: Some(PlainService { enabled: true }),
                ..Default::default()
            };
            app.commands
                .upsert_numbers(&account, vec![(number, details)], &metadata())
                .await
                .expect("number written");
        }
    }
}

#[tokio::test]
async fn every_event_is_published_with_its_cloudevents_headers() {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let created = app
        .send(
            app.request(reqwest::Method::PUT, "/accounts/contoso")
                .header("traceparent", traceparent)
                .json(&account_body("contoso")),
        )
        .await;
    assert_eq!(created.status, 201);
    app.put_number(
        "contoso",
        "+15105850321",
        &tests::number_body("contoso", "+15105850321"),
    )
    .await;
    let (relay, status) = stream.spawn_relay(&app.pool);
    stream.wait_for(2, Duration::from_secs(20)).await;

    let messages = stream.messages().await;
    assert_eq!(messages.len(), 2, "the account's and the number's");
    let first = &messages[0];
    let prefix = &stream.settings.prefix;
    assert_eq!(first.subject, format!("{prefix}.events.account.contoso"));
    assert_eq!(first.message_id, "account:contoso:1");
    assert_eq!(first.headers["ce-id"], "account:contoso:1");
    assert_eq!(first.headers["ce-specversion"], "1.0");
    assert_eq!(first.headers["ce-type"], "nmp.account.AccountCreated");
    assert_eq!(first.headers["ce-subject"], "account/contoso");
    assert_eq!(first.headers["ce-source"], format!("urn:nmp:{prefix}"));
    assert!(
        first.headers["ce-time"].starts_with("20"),
        "{:?}",
        first.headers
    );
    assert_eq!(first.headers["traceparent"], traceparent);
    let stored: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = 'account' AND sequence = 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("payload");
    let published: Value = serde_json::from_str(&first.payload).expect("JSON payload");
    assert_eq!(published, stored, "the payload is the stored event");
    let number = messages
        .iter()
        .find(|m| m.aggregate_type == "number")
        .expect("the number's event");
    assert_eq!(
        number.subject,
        format!("{prefix}.events.number.+15105850321")
    );

    // Caught up: the lag is measured and nothing waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status.lag() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "lag {:?}",
            status.lag()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(status.is_leader());
    relay.abort();
}

#[tokio::test]
async fn killing_the_relay_at_random_points_loses_and_duplicates_nothing() {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;

    // 5,000 commands from 10 writers, while the relay is killed and restarted at random.
    let writers = futures::future::join_all((0..10).map(|w| run_commands(&app, w, 500)));
    let killer = async {
        let mut restarts = 0;
        loop {
            let (relay, _) = stream.spawn_relay(&app.pool);
            let pause = 5 + uuid::Uuid::new_v4().as_u128() % 60;
            tokio::time::sleep(Duration::from_millis(pause as u64)).await;
            relay.abort();
            let _ = relay.await;
            restarts += 1;
            if restarts >= 40 {
                return restarts;
            }
        }
    };
    let (_, restarts) = tokio::join!(writers, killer);
    assert!(restarts >= 40);

    let stored = stored_events(&app).await.len() as u64;
    assert!(stored >= 5_000, "{stored} events");
    let (relay, _) = stream.spawn_relay(&app.pool);
    stream.wait_for(stored, Duration::from_secs(120)).await;
    assert_nothing_more_then_exactly_once(&app, &stream).await;
    relay.abort();
}

#[tokio::test]
async fn a_nats_restart_loses_nothing_and_commands_keep_being_accepted() {
    let app = spawn_app().await;
    let mut server = OwnNatsServer::start();
    let stream = TestStream::new(&server.url()).await;
    stream.ensure().await;
    let (relay, _) = stream.spawn_relay(&app.pool);

    run_commands(&app, 1, 100).await;
    stream.wait_for(100, Duration::from_secs(20)).await;

    server.stop();
    // The API keeps accepting commands while NATS is down; they wait in the store.
    for i in 0..20 {
        let name = format!("during-outage-{i}");
        let answer = app.put_account(&name, &account_body(&name)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    run_commands(&app, 2, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    let stored = stored_events(&app).await.len() as u64;
    stream.wait_for(stored, Duration::from_secs(60)).await;
    assert_nothing_more_then_exactly_once(&app, &stream).await;
    relay.abort();
}

#[tokio::test]
async fn two_relays_started_at_once_publish_each_event_once() {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let (first, first_status) = stream.spawn_relay(&app.pool);
    let (second, second_status) = stream.spawn_relay(&app.pool);
    futures::future::join_all((0..4).map(|w| run_commands(&app, w, 150))).await;
    let stored = stored_events(&app).await.len() as u64;
    stream.wait_for(stored, Duration::from_secs(30)).await;
    assert!(
        first_status.is_leader() != second_status.is_leader(),
        "exactly one relay is active"
    );

    // The standby takes over when the active one dies.
    let (active, standby_status) = if first_status.is_leader() {
        (first, second_status)
    } else {
        (second, first_status)
    };
    active.abort();
    run_commands(&app, 9, 50).await;
    let stored = stored_events(&app).await.len() as u64;
    stream.wait_for(stored, Duration::from_secs(30)).await;
    assert!(standby_status.is_leader());
    assert_nothing_more_then_exactly_once(&app, &stream).await;
}

#[tokio::test]
async fn an_event_whose_transaction_commits_late_is_still_published() {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let (relay, status) = stream.spawn_relay(&app.pool);

    // A transaction takes its position first and stays open...
    let mut late = app.pool.begin().await.expect("transaction");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('account', 'late', 1, 'AccountCreated', '1.0', \
                 '{\"AccountCreated\": {\"name\": \"late\", \"correlation_id\": null, \"services\": {}, \"sync_required\": false}}', \
                 '{\"subject\": \"test\", \"roles\": [], \"time\": \"2026-01-01T00:00:00Z\", \"correlation_id\": \"x\"}')",
    )
    .execute(&mut *late)
    .await
    .expect("insert");
    // ...while others commit after it.
    run_commands(&app, 1, 20).await;
    // The relay counts as its lag what it has seen committed after its checkpoint. Once it
    // counts those 20, a marker committed next shows in the count only on a later round of the
    // relay, whose read came after the 20 commits: had it published them, it would have done so
    // by then.
    let committed = app.event_count().await as u64;
    wait_for_lag(&status, &stream, committed).await;
    run_commands(&app, 2, 1).await;
    let committed = app.event_count().await as u64;
    wait_for_lag(&status, &stream, committed).await;
    assert_eq!(
        stream.message_count().await,
        0,
        "nothing passes the open transaction's position"
    );
    assert_eq!(status.published(), 0);

    late.commit().await.expect("commit");
    let stored = stored_events(&app).await;
    assert!(stored.iter().any(|(id, ..)| id == "account:late:1"));
    let stored = stored.len() as u64;
    stream.wait_for(stored, Duration::from_secs(20)).await;
    assert_eq!(
        stream.messages().await[0].message_id,
        "account:late:1",
        "the late event is published first, at its position"
    );
    assert_nothing_more_then_exactly_once(&app, &stream).await;
    relay.abort();
}

/// Waits until the relay reports a lag of `lag` events, failing at once if anything reaches
/// the stream meanwhile.
async fn wait_for_lag(status: &RelayStatus, stream: &TestStream, lag: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status.lag() != Some(lag) {
        assert_eq!(
            stream.message_count().await,
            0,
            "nothing passes the open transaction's position"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the relay's lag is {:?}, not {lag}",
            status.lag()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_stream_is_brought_to_the_configured_settings() {
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let mut changed = stream.settings.clone();
    changed.duplicate_window = Duration::from_secs(300);
    relay::ensure_stream(&stream.jetstream, &changed)
        .await
        .expect("updated");
    let info = stream
        .jetstream
        .get_stream(changed.stream_name())
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("info");
    assert_eq!(info.config.duplicate_window, Duration::from_secs(300));
}

#[tokio::test]
async fn a_stream_with_other_storage_is_reported_not_silently_used() {
    let stream = TestStream::new(&nats_url()).await;
    stream
        .jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream.settings.stream_name(),
            subjects: vec![stream.settings.subjects()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .expect("memory stream");
    let error = relay::ensure_stream(&stream.jetstream, &stream.settings)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, relay::StreamError::StorageMismatch { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("cannot change in place"),
        "{error}"
    );
}
