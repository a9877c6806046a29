//! An event the projector can never project is retried with a growing wait, then parked in
//! `projection_dead_letters` and counted, instead of being redelivered for ever; the others
//! are projected meanwhile.

use std::time::{Duration, Instant};

use projections::{Projector, ProjectorSettings};
use tests::nats::{TestStream, nats_url};
use tests::{account_body, number_body, spawn_app};

#[tokio::test]
async fn an_unprojectable_event_is_parked_after_its_retries_and_counted() {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let (relay, _) = stream.spawn_relay(&app.pool);
    let mut settings = ProjectorSettings::new(&stream.settings.stream_name());
    settings.ack_wait = Duration::from_secs(5);
    settings.retry_delay = Duration::from_millis(50);
    settings.max_retry_delay = Duration::from_millis(200);
    settings.max_deliveries = 3;
    let projector = Projector::new(app.event_store(), stream.jetstream.clone(), settings);
    let status = projector.status();
    let projector = tokio::spawn(projector.run());

    app.put_account("contoso", &account_body("contoso")).await;
    // An event this version cannot read, as a newer or damaged writer might have left it.
    let metadata: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE aggregate_type = 'account'")
            .fetch_one(&app.pool)
            .await
            .expect("metadata");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('number', '+15105850999', 1, 'NumberAdded', '1.0', \
                 '{\"NumberAdded\": {\"unreadable\": true}}', $1)",
    )
    .bind(&metadata)
    .execute(&app.pool)
    .await
    .expect("a poison event");
    // A good event after it is projected all the same.
    let good = app
        .put_number(
            "contoso",
            "+15105850321",
            &number_body("contoso", "+15105850321"),
        )
        .await;
    assert_eq!(good.status, 201, "{good:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let parked: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT aggregate_type, aggregate_id, deliveries, error FROM projection_dead_letters",
        )
        .fetch_all(&app.pool)
        .await
        .expect("dead letters");
        let projected: Option<bool> = sqlx::query_scalar(
            "SELECT NOT deleted FROM read_numbers WHERE telephone_number = '+15105850321'",
        )
        .fetch_optional(&app.pool)
        .await
        .expect("the good number");
        if !parked.is_empty() && projected == Some(true) {
            assert_eq!(parked.len(), 1, "{parked:?}");
            let (kind, id, deliveries, error) = &parked[0];
            assert_eq!((kind.as_str(), id.as_str()), ("number", "+15105850999"));
            assert_eq!(*deliveries, 3);
            assert!(!error.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "parked {parked:?}, good number projected {projected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status.parked(), 1);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics page");
    let parked = format!(
        "nmp_projector_parked_events_total{{stream=\"{}\",projector=\"projector\"}} 1\n",
        stream.settings.stream_name()
    );
    assert!(metrics.contains(&parked), "{metrics}");
    // Parked means acknowledged: it is not delivered again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&app.pool)
        .await
        .expect("dead letters");
    assert_eq!(rows, 1);
    projector.abort();
    relay.abort();
}
