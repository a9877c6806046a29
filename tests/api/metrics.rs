//! `GET /metrics`: after traffic through the HTTP API, the relay, the projector and the saga
//! (against the backend simulator), the Prometheus page carries each of nmp's metrics with
//! figures that follow the traffic. Counters are compared with a page read before the traffic,
//! and per-installation figures are read under this test's own `stream` label, so that other
//! nmp instances in the same process cannot make the test pass or fail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use sim::{Faults, RateLimit};
use tests::projections::{ReadSide, wait_until_projected};
use tests::saga::{SagaOptions, SagaSide, accepted_number_body};
use tests::{API_VERSION, TENANT, TestApp, account_body, number_body, spawn_app};

const WAIT: Duration = Duration::from_secs(30);

/// One series of the page: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
}

/// The page's samples, by series.
#[derive(Debug)]
struct Page {
    text: String,
    samples: BTreeMap<Series, f64>,
}

impl Page {
    async fn read(app: &TestApp) -> Page {
        let response = app
            .client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.expect("the page");
        Page::parse(text)
    }

    fn parse(text: String) -> Page {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample: series and value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect(line))),
                None => (series, BTreeMap::new()),
            };
            samples.insert(
                Series {
                    name: name.to_string(),
                    labels,
                },
                value,
            );
        }
        Page { text, samples }
    }

    /// The sample of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let series = Series {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.samples.get(&series).copied()
    }

    /// Like `get`, 0 when absent (a counter not incremented yet).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    /// Whether the page describes `name` with `# HELP` and `# TYPE` of `kind`.
    fn describes(&self, name: &str, kind: &str) -> bool {
        self.text.contains(&format!("# HELP {name} "))
            && self.text.contains(&format!("# TYPE {name} {kind}\n"))
    }
}

/// `k="v",k2="v2"`, where values may hold commas and braces (route templates).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("a label");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.to_string(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

/// Reads the page until `ready` holds of it.
async fn wait_for(app: &TestApp, what: &str, ready: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = Page::read(app).await;
        if ready(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen in\n{}",
            page.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_follow_requests_commands_the_relay_the_projector_and_the_saga() {
    let app = spawn_app().await;
    let before = Page::read(&app).await;
    let read = ReadSide::start(&app).await;
    let stream = read.stream.settings.stream_name();
    let mut saga = SagaSide::start_with(
        &app,
        &read.stream,
        SagaOptions {
            // 100 ms between calls: an order's first poll, 20 ms after it was placed, waits
            // for the budget.
            calls_per_minute: 600,
            ..SagaOptions::default()
        },
    )
    .await;
    saga.consent(TENANT, &["US"]).await;

    // HTTP: a 201, a 404 on a known route, and a 404 on no route at all.
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    assert_eq!(app.get_account("fabrikam").await.status, 404);
    let unrouted = app
        .client
        .get(format!("{}/no/such/{}", app.address, uuid::Uuid::new_v4()))
        .send()
        .await
        .expect("request");
    assert_eq!(unrouted.status(), 404);
    let bodies: Vec<_> = (0..5)
        .map(|i| accepted_number_body("contoso", &format!("+151058800{i:02}")))
        .collect();
    let answer = app
        .upsert_numbers("contoso", &json!({ "numbers": bodies }))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // Writers racing on one number through two nmp instances on the same database (each
    // with its own event store): the losers' conflicts are retried, never answered 500.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let second = format!("http://{}", listener.local_addr().expect("address"));
    let mut state = app.state.clone();
    state.commands = commands::CommandService::new(store::EventStore::new(app.pool.clone()));
    let second_server = tokio::spawn(api::serve(listener, state, std::future::pending()));
    let number = tests::number_path("contoso", "+15105880100");
    let conflicts =
        |page: &Page| page.counter("nmp_command_conflicts_total", &[("resolution", "retried")]);
    let mut raced = Page::read(&app).await;
    let deadline = Instant::now() + WAIT;
    for round in 0.. {
        let writers = (0..16).map(|writer| {
            let mut body = number_body("contoso", "+15105880100");
            body["displayName"] = json!(format!("writer {round} {writer}"));
            let url = if writer % 2 == 0 {
                &app.address
            } else {
                &second
            };
            app.client
                .put(format!("{url}{number}?api-version={API_VERSION}"))
                .bearer_auth(app.admin())
                .json(&body)
                .send()
        });
        for answer in join_all(writers).await {
            let status = answer.expect("an answer").status();
            assert!(status == 200 || status == 201, "{status}");
        }
        raced = Page::read(&app).await;
        if conflicts(&raced) > conflicts(&before) || Instant::now() > deadline {
            break;
        }
    }
    second_server.abort();
    assert!(
        conflicts(&raced) > conflicts(&before),
        "no conflict in {WAIT:?} of races:\n{}",
        raced.text
    );
    assert!(
        raced.counter("nmp_command_retries_total", &[])
            > before.counter("nmp_command_retries_total", &[])
    );

    // The backend refuses every call for a while: 429s, and the saga's work put back.
    saga.control
        .set_faults(&Faults {
            rate_limit: Some(RateLimit {
                limit: 0,
                window_seconds: 1,
            }),
            ..Faults::default()
        })
        .await
        .expect("faults");
    let answer = app
        .upsert_numbers(
            "contoso",
            &json!({ "numbers": [accepted_number_body("contoso", "+15105880200")] }),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_for(&app, "rate-limited calls and retries", |page| {
        page.counter("nmp_backend_calls_total", &[("outcome", "rate_limited")])
            > before.counter("nmp_backend_calls_total", &[("outcome", "rate_limited")])
            && page.counter("nmp_saga_retries_total", &[("kind", "work_item")])
                + page.counter("nmp_saga_retries_total", &[("kind", "order")])
                > before.counter("nmp_saga_retries_total", &[("kind", "work_item")])
                    + before.counter("nmp_saga_retries_total", &[("kind", "order")])
    })
    .await;
    saga.control
        .set_faults(&Faults::default())
        .await
        .expect("faults");
    saga.wait_until_settled(&app, WAIT).await;
    wait_until_projected(&app, WAIT).await;

    let events = app.event_count().await as f64;
    let page = wait_for(&app, "the relay, projector and saga caught up", |page| {
        page.get("nmp_relay_lag_events", &[("stream", &stream)]) == Some(0.0)
            && page.get(
                "nmp_projector_lag_events",
                &[("stream", &stream), ("projector", "projector")],
            ) == Some(0.0)
            && page.get("nmp_saga_work_items", &[("stream", &stream)]) == Some(0.0)
    })
    .await;

    // Requests, by method, matched route and status.
    let put = [
        ("method", "PUT"),
        ("route", "/accounts/{account}"),
        ("status", "201"),
    ];
    assert!(page.must("nmp_http_requests_total", &put) >= 1.0);
    let missing = [
        ("method", "GET"),
        ("route", "/accounts/{account}"),
        ("status", "404"),
    ];
    assert!(
        page.must("nmp_http_requests_total", &missing)
            >= before.counter("nmp_http_requests_total", &missing) + 1.0
    );
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert!(page.must("nmp_http_requests_total", &unmatched) >= 1.0);
    assert!(
        !page.text.contains("/no/such/"),
        "raw paths never become labels"
    );
    let count = page.must("nmp_http_request_duration_seconds_count", &put);
    let sum = page.must("nmp_http_request_duration_seconds_sum", &put);
    assert!(
        count >= 1.0 && sum > 0.0 && sum < 30.0 * count,
        "{count} {sum}"
    );
    let mut bucket = put.to_vec();
    bucket.push(("le", "+Inf"));
    assert_eq!(
        page.must("nmp_http_request_duration_seconds_bucket", &bucket),
        count
    );
    assert!(page.describes("nmp_http_request_duration_seconds", "histogram"));

    // Commands, by aggregate, command and outcome.
    let created = [
        ("aggregate", "account"),
        ("command", "CreateOrReplace"),
        ("outcome", "accepted"),
    ];
    assert!(page.must("nmp_commands_total", &created) >= 1.0);
    assert!(page.describes("nmp_command_conflicts_total", "counter"));

    // The relay: every event published, nothing behind, this process leading.
    assert!(page.must("nmp_relay_published_events_total", &[("stream", &stream)]) >= events);
    assert_eq!(page.must("nmp_relay_leader", &[("stream", &stream)]), 1.0);

    // The saga: its orders, its answers, its backend calls, the budget's waits.
    assert_eq!(
        page.must("nmp_saga_open_orders", &[("stream", &stream)]),
        0.0
    );
    let synced = page.counter("nmp_saga_outcomes_total", &[("result", "synced")])
        - before.counter("nmp_saga_outcomes_total", &[("result", "synced")]);
    assert!(synced >= 6.0, "{synced} numbers synced");
    assert!(
        page.counter("nmp_saga_orders_created_total", &[])
            > before.counter("nmp_saga_orders_created_total", &[])
    );
    assert!(
        page.counter("nmp_backend_calls_total", &[("outcome", "ok")])
            > before.counter("nmp_backend_calls_total", &[("outcome", "ok")])
    );
    assert!(
        page.counter("nmp_backend_rate_limit_wait_seconds_count", &[])
            > before.counter("nmp_backend_rate_limit_wait_seconds_count", &[])
    );
    assert!(page.describes("nmp_backend_rate_limit_wait_seconds", "histogram"));

    // The database pools, as they stand.
    assert_eq!(
        page.must("nmp_db_pool_connections_max", &[("pool", "main")]),
        10.0
    );
    let in_use = page.must("nmp_db_pool_connections_in_use", &[("pool", "main")]);
    let idle = page.must("nmp_db_pool_connections_idle", &[("pool", "main")]);
    assert!(in_use + idle <= 10.0, "{in_use} + {idle}");
    assert!(
        page.get("nmp_db_pool_connections_max", &[("pool", "exports")])
            .is_some()
    );
    // Parked events are counted per stream and projector: `poison` parks one and reads it
    // here.
    saga.kill();
}
