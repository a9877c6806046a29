//! The read side for tests: a test's own stream, relay and projector(s), and a wait until the
//! read tables have caught up with the event store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::{Projector, ProjectorSettings, ProjectorStatus};
use tokio::task::JoinHandle;

use crate::TestApp;
use crate::nats::{TestStream, nats_url};

/// Relay and projector running for one test app, on a stream of its own.
pub struct ReadSide {
    pub stream: TestStream,
    pub relay: JoinHandle<()>,
    pub projector: JoinHandle<()>,
    pub projector_status: Arc<ProjectorStatus>,
}

impl ReadSide {
    pub async fn start(app: &TestApp) -> ReadSide {
        let stream = TestStream::new(&nats_url()).await;
        stream.ensure().await;
        let (relay, _) = stream.spawn_relay(&app.pool);
        let (projector, projector_status) = spawn_projector(app, &stream);
        ReadSide {
            stream,
            relay,
            projector,
            projector_status,
        }
    }

    /// Another projector instance sharing the durable consumer.
    pub fn another_projector(&self, app: &TestApp) -> JoinHandle<()> {
        spawn_projector(app, &self.stream).0
    }
}

impl Drop for ReadSide {
    fn drop(&mut self) {
        self.relay.abort();
        self.projector.abort();
    }
}

pub fn spawn_projector(
    app: &TestApp,
    stream: &TestStream,
) -> (JoinHandle<()>, Arc<ProjectorStatus>) {
    let mut settings = ProjectorSettings::new(&stream.settings.stream_name());
    settings.ack_wait = Duration::from_secs(5);
    let projector = Projector::new(app.event_store(), stream.jetstream.clone(), settings);
    let status = projector.status();
    (tokio::spawn(projector.run()), status)
}

/// Aggregates whose read row lags behind their events (an account also while its counts of
/// numbers, recounted after each batch, disagree with the number rows), and events without an
/// audit row.
pub async fn unprojected(app: &TestApp) -> (i64, i64) {
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ( \
            SELECT aggregate_type, aggregate_id, max(sequence) AS v FROM events \
             WHERE aggregate_type IN ('account', 'number', 'consent', 'civicAddress') GROUP BY 1, 2) e \
         LEFT JOIN read_accounts a ON e.aggregate_type = 'account' AND a.name = e.aggregate_id \
         LEFT JOIN read_numbers n ON e.aggregate_type = 'number' AND n.telephone_number = e.aggregate_id \
         LEFT JOIN read_consents c ON e.aggregate_type = 'consent' AND c.tenant_id = e.aggregate_id \
         LEFT JOIN read_civic_addresses v ON e.aggregate_type = 'civicAddress' AND v.civic_address_id = e.aggregate_id \
         WHERE coalesce(a.version, n.version, c.version, v.version, 0) <> e.v",
    )
    .fetch_one(&app.pool)
    .await
    .expect("rows behind");
    let miscounted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM read_accounts a \
          WHERE NOT a.deleted AND a.number_count <> \
                (SELECT count(*) FROM read_numbers n \
                  WHERE n.account_name = a.name AND NOT n.deleted)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("accounts miscounted");
    let rows = rows + miscounted;
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e \
          WHERE e.aggregate_type IN ('account', 'number', 'consent', 'civicAddress') \
            AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.global_position = e.global_position)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit behind");
    (rows, audit)
}

/// Waits until every read row and audit row has caught up with the event store.
pub async fn wait_until_projected(app: &TestApp, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let behind = unprojected(app).await;
        if behind == (0, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read side still behind (rows, audit): {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
