//! The dashboard API: totals, recent activity and the live feed of changes (Server-Sent
//! Events).

use std::time::{Duration, Instant};

use auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{Answer, TENANT, TestApp, account_body, number_body, spawn_app, spawn_app_with};

use crate::lists::{LONE_TENANT, encode, get, keys, populate};

fn groups(answer: &Answer, field: &str) -> Vec<(Option<String>, u64)> {
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} groups: {answer:?}"))
        .iter()
        .map(|g| {
            (
                g["key"].as_str().map(str::to_string),
                g["count"].as_u64().expect("a count"),
            )
        })
        .collect()
}

fn group(key: &str, count: u64) -> (Option<String>, u64) {
    (Some(key.to_string()), count)
}

#[tokio::test]
async fn number_totals_count_live_numbers_per_group() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    let by_account = get(&app, "/dashboard/numbers/totals?groupBy=account").await;
    assert_eq!(by_account.body["groupBy"], "account");
    assert_eq!(
        by_account.body["total"], 6,
        "the deleted number does not count"
    );
    assert_eq!(
        groups(&by_account, "groups"),
        [group("contoso", 4), group("fabrikam", 2)]
    );

    // A number counts under each service it has enabled.
    let by_service = get(&app, "/dashboard/numbers/totals?groupBy=service").await;
    assert_eq!(by_service.body["total"], 6);
    assert_eq!(
        groups(&by_service, "groups"),
        [
            group("teamsOperatorConnect", 5),
            group("zoomPhoneCloudPeering", 2)
        ]
    );

    let by_usage = get(&app, "/dashboard/numbers/totals?groupBy=usage").await;
    assert_eq!(
        groups(&by_usage, "groups"),
        [
            group("CallingUserAssignment", 3),
            group("ConferenceAssignment", 1),
            group("FirstPartyAppAssignment", 1),
            (None, 1),
        ],
        "a Zoom-only number has no usage"
    );

    // The sync states add up to the total and agree with the numbers' own status.
    let by_state = get(&app, "/dashboard/numbers/totals?groupBy=syncState").await;
    let states = groups(&by_state, "groups");
    assert_eq!(states.iter().map(|(_, c)| c).sum::<u64>(), 6);
    let numbers = get(&app, "/numbers").await;
    for (state, count) in &states {
        let state = state.as_deref().expect("every number has a sync state");
        assert!(["pending", "synced", "failed"].contains(&state), "{state}");
        let listed = numbers.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["serviceProvisioningStatus"] == state)
            .count() as u64;
        assert_eq!(listed, *count, "{state}");
    }

    // The filter of the number lists narrows the totals.
    let filter = encode("accountName eq 'fabrikam'");
    let narrowed = get(
        &app,
        &format!("/dashboard/numbers/totals?groupBy=usage&filter={filter}"),
    )
    .await;
    assert_eq!(narrowed.body["total"], 2);
    assert_eq!(
        groups(&narrowed, "groups"),
        [
            group("CallingUserAssignment", 1),
            group("FirstPartyAppAssignment", 1)
        ]
    );

    let missing = get(&app, "/dashboard/numbers/totals").await;
    missing.assert_error(400, "InvalidQueryParameter");
    assert_eq!(missing.error_target(), Some("groupBy"));
    let unknown = get(&app, "/dashboard/numbers/totals?groupBy=colour").await;
    unknown.assert_error(400, "InvalidQueryParameter");
    let message = unknown.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("account, service, usage, syncState"),
        "{message}"
    );
    let bad_filter = get(
        &app,
        &format!(
            "/dashboard/numbers/totals?groupBy=usage&filter={}",
            encode("name eq 'x'")
        ),
    )
    .await;
    bad_filter.assert_error(400, "InvalidFilter");
}

#[tokio::test]
async fn consent_totals_count_by_status_and_by_relationship() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let empty = get(&app, "/dashboard/consents/totals").await;
    assert_eq!(
        empty.body,
        json!({"total": 0, "byStatus": [], "byRelationshipStatus": []})
    );

    app.record_consent(TENANT).await;
    app.record_consent(LONE_TENANT).await;
    let acknowledged = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
        )
        .await;
    assert_eq!(acknowledged.status, 200, "{acknowledged:?}");
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let totals = get(&app, "/dashboard/consents/totals").await;
    assert_eq!(totals.body["total"], 2);
    assert_eq!(groups(&totals, "byStatus"), [group("active", 2)]);
    assert_eq!(
        groups(&totals, "byRelationshipStatus"),
        [group("ConsentAcknowledged", 1), (None, 1)],
        "a consent without a relationship counts under null"
    );
}

#[tokio::test]
async fn activity_shows_the_latest_changes_with_who_and_which_ticket() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let created = app
        .send(
            app.request(Method::PUT, "/accounts/contoso")
                .header("x-nmp-ticket-id", "CHG-1234")
                .json(&account_body("contoso")),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    app.put_number(
        "contoso",
        "+15105850001",
        &number_body("contoso", "+15105850001"),
    )
    .await;
    let deleted = app.delete_number("contoso", "+15105850001").await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.backend_accepts(&["+15105850001"]).await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let all = get(&app, "/dashboard/activity").await;
    assert_eq!(all.status, 200, "{all:?}");
    let items = all.body["value"].as_array().expect("items").clone();
    assert_eq!(
        items.len() as i64,
        app.event_count().await,
        "one row per event"
    );
    let times: Vec<&str> = items.iter().map(|i| i["time"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let first = items.last().expect("the first change");
    assert_eq!(first["eventType"], "AccountCreated");
    assert_eq!(first["aggregateType"], "account");
    assert_eq!(first["aggregateId"], "contoso");
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["subject"], "test-user");
    assert_eq!(first["roles"], json!(["ProvisioningAPI.Admin"]));
    assert_eq!(first["ticketId"], "CHG-1234");
    let newest = &items[0];
    assert!(newest["ticketId"].is_null(), "{newest}");
    assert!(
        items
            .iter()
            .any(|i| i["eventType"] == "NumberDeleted" && i["aggregateId"] == "+15105850001"),
        "{items:?}"
    );

    let top = get(&app, "/dashboard/activity?top=2").await;
    assert_eq!(top.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(top.body["value"][0], items[0]);
    for bad in ["0", "501", "x", "-1"] {
        get(&app, &format!("/dashboard/activity?top={bad}"))
            .await
            .assert_error(400, "InvalidQueryParameter");
    }
}

#[tokio::test]
async fn dashboard_routes_need_read_and_the_api_version() {
    let app = spawn_app().await;
    let writer = app.token(&[Role::Write]);
    let reader = app.token(&[Role::Read]);
    for path in [
        "/dashboard/numbers/totals?groupBy=account",
        "/dashboard/consents/totals",
        "/dashboard/activity",
        "/dashboard/feed",
    ] {
        let anonymous = app.send(app.request_as(Method::GET, path, None)).await;
        assert_eq!(anonymous.status, 401, "{path}: {anonymous:?}");
        app.send(app.request_as(Method::GET, path, Some(&writer)))
            .await
            .assert_error(403, "Forbidden");
        app.send(app.request_unversioned(Method::GET, path))
            .await
            .assert_error(400, "MissingApiVersionParameter");
        let read = app
            .send(app.request_as(Method::GET, path, Some(&reader)))
            .await;
        if path == "/dashboard/feed" {
            // This app has no feed source.
            read.assert_error(503, "FeedUnavailable");
        } else {
            assert_eq!(read.status, 200, "{path}: {read:?}");
        }
    }
}

/// One SSE event: its fields, in order of appearance, and comment lines.
#[derive(Debug, Default)]
pub(crate) struct SseEvent {
    pub(crate) event: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) data: Option<String>,
    pub(crate) comments: Vec<String>,
}

/// Reads an SSE body chunk by chunk and splits it into events.
pub(crate) struct SseReader {
    pub(crate) response: reqwest::Response,
    pub(crate) buffer: String,
}

impl SseReader {
    /// The next event, or None when the stream ended or `limit` passed.
    pub(crate) async fn next(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines().filter(|l| !l.is_empty()) {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                    match name {
                        "" => event.comments.push(value),
                        "event" => event.event = Some(value),
                        "id" => event.id = Some(value),
                        "data" => event.data = Some(value),
                        _ => {}
                    }
                }
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The next event named `name`, skipping others and comments.
    async fn next_named(&mut self, name: &str, limit: Duration) -> SseEvent {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no event {name} within {limit:?}"));
            let event = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("the feed ended or stayed quiet before {name}"));
            if event.event.as_deref() == Some(name) {
                return event;
            }
        }
    }
}

/// Starts the live feed on the read side's stream, and waits until it follows the stream (it
/// takes the events from its start on).
pub(crate) async fn follow_the_stream(
    read: &ReadSide,
    source: tokio::sync::broadcast::Sender<api::FeedItem>,
) -> tokio::task::JoinHandle<()> {
    let settings = &read.stream.settings;
    let feed = nmp::feed::subscribe(
        read.stream.jetstream.clone(),
        settings.stream_name(),
        settings.subjects(),
        source,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stream = read
            .stream
            .jetstream
            .get_stream(settings.stream_name())
            .await
            .expect("the stream");
        let consumers = stream
            .info()
            .await
            .expect("stream info")
            .state
            .consumer_count;
        // The projector's durable consumer, and the feed's.
        if consumers >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed does not follow the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    feed
}

#[tokio::test]
async fn the_feed_streams_each_change_made_after_connecting() {
    let source = nmp::feed::channel();
    let app = {
        let source = source.clone();
        spawn_app_with(move |state| state.feed = Some(source)).await
    };
    let read = ReadSide::start(&app).await;
    let feed = follow_the_stream(&read, source).await;

    let response = app
        .request(Method::GET, "/dashboard/feed")
        .send()
        .await
        .expect("the feed answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut reader = SseReader {
        response,
        buffer: String::new(),
    };
    let opening = reader
        .next(Duration::from_secs(5))
        .await
        .expect("the feed opens with a comment");
    assert_eq!(opening.comments, ["nmp feed"], "{opening:?}");

    // Changes made after connecting arrive as events named by their CloudEvents type.
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    let event = reader
        .next_named("nmp.account.AccountCreated", Duration::from_secs(20))
        .await;
    // The id is the event's position in the stream: the first event of this test's stream.
    assert_eq!(event.id.as_deref(), Some("1"));
    let data: Value = serde_json::from_str(event.data.as_deref().expect("data")).expect("JSON");
    assert_eq!(data["eventId"], "account:contoso:1");
    assert_eq!(data["aggregateType"], "account");
    assert_eq!(data["aggregateId"], "contoso");
    assert_eq!(data["sequence"], 1);
    assert_eq!(data["eventType"], "AccountCreated");
    assert!(
        data["time"].as_str().is_some_and(|t| t.contains('T')),
        "{data}"
    );
    assert_eq!(
        data.as_object().unwrap().len(),
        6,
        "eventId, aggregateType, aggregateId, sequence, eventType, time: {data}"
    );

    let added = app
        .put_number(
            "contoso",
            "+15105850001",
            &number_body("contoso", "+15105850001"),
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    let number = reader
        .next_named("nmp.number.NumberAdded", Duration::from_secs(20))
        .await;
    assert_eq!(number.id.as_deref(), Some("2"));

    // Shutting nmp down ends the open feed, so the server can stop.
    drop(app);
    let stopped = Instant::now();
    // `next` also gives up after its limit: the feed must end well before that.
    while reader.next(Duration::from_secs(10)).await.is_some() {}
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "the feed went on after shutdown"
    );
    feed.abort();
}

#[tokio::test]
async fn lists_and_totals_agree() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;
    let by_account = get(&app, "/dashboard/numbers/totals?groupBy=account").await;
    let totals = groups(&by_account, "groups");
    // populate(): contoso keeps 4 live numbers, fabrikam 2; the deleted one counts nowhere.
    assert_eq!(totals, [group("contoso", 4), group("fabrikam", 2)]);
    assert_eq!(by_account.body["total"], 6, "{by_account:?}");
    let mut listed_in_all = 0;
    for (account, count) in totals {
        let account = account.expect("every number has an account");
        let listed = get(&app, &format!("/accounts/{account}/numbers")).await;
        let listed = keys(&listed, "telephoneNumber").len() as u64;
        assert_eq!(listed, count, "{account}");
        listed_in_all += listed;
    }
    let all = get(&app, "/numbers").await;
    assert_eq!(
        keys(&all, "telephoneNumber").len() as u64,
        listed_in_all,
        "the groups cover every listed number"
    );
}

/// A feed source with no NATS behind it still serves: it just stays quiet, with keep-alives.
#[tokio::test]
async fn a_quiet_feed_only_opens() {
    let source = nmp::feed::channel();
    let app: TestApp = {
        let source = source.clone();
        spawn_app_with(move |state| state.feed = Some(source)).await
    };
    let response = app
        .request(Method::GET, "/dashboard/feed")
        .send()
        .await
        .expect("the feed answers");
    let mut reader = SseReader {
        response,
        buffer: String::new(),
    };
    let opening = reader.next(Duration::from_secs(5)).await.expect("opens");
    assert_eq!(opening.comments, ["nmp feed"]);
    assert!(
        reader.next(Duration::from_millis(300)).await.is_none(),
        "nothing happens, nothing is sent"
    );
    // An event sent straight to the source reaches the open feed.
    let sent = source.send(api::FeedItem::Event(api::FeedEvent {
        ce_type: "nmp.account.AccountDeleted".to_string(),
        position: None,
        event_id: "account:x:2".to_string(),
        aggregate_type: "account".to_string(),
        aggregate_id: "x".to_string(),
        sequence: 2,
        event_type: "AccountDeleted".to_string(),
        time: None,
    }));
    assert_eq!(sent.ok(), Some(1), "one open feed");
    let event = reader
        .next_named("nmp.account.AccountDeleted", Duration::from_secs(5))
        .await;
    assert_eq!(event.id.as_deref(), Some("account:x:2"));
}
