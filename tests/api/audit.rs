//! For auditors: the tamper-evidence chain and its verification, an aggregate's history, its
//! state as of a time, and the CloudEvents export.

use std::collections::HashMap;

use auth::Role;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use domain::{Account, AccountEvent};
use reqwest::Method;
use serde_json::{Value, json};
use store::chain::{ChainLink, EventContent, Problem, event_hash};
use store::{Changes, EventMetadata};
use tests::{Answer, TENANT, TestApp, account_body, number_body, spawn_app};

const NUMBER: &str = "+15105850321";

fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The recorded time of an event of the history.
fn recorded(event: &Value) -> DateTime<Utc> {
    let time = event["metadata"]["time"].as_str().expect("a time");
    DateTime::parse_from_rfc3339(time)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

async fn history(app: &TestApp, path: &str) -> Answer {
    app.send(app.request(Method::GET, path)).await
}

async fn as_of(app: &TestApp, kind: &str, id: &str, time: DateTime<Utc>) -> Answer {
    let id = id.replace('+', "%2B");
    app.send(app.request(
        Method::GET,
        &format!("/audit/{kind}/{id}/asOf?time={}", at(time)),
    ))
    .await
}

/// The export's lines, each parsed, with the response's content type.
async fn export(app: &TestApp, query: &str) -> (Option<String>, Vec<Value>) {
    let response = app
        .request(Method::GET, &format!("/audit/export{query}"))
        .send()
        .await
        .expect("export is sent");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("export body");
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    (content_type, lines)
}

/// An account with one number that was created, changed and deleted: three events each (the
/// account records the number's arrival and removal).
async fn number_lifecycle(app: &TestApp) {
    // Operator Connect without flow-through, so that the deletion completes at once (a
    // number that flows to the backend waits for its release).
    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsOperatorConnect"]["syncEnabled"] = json!(false);
    assert_eq!(app.put_account("contoso", &account).await.status, 201);
    let created = app
        .put_number("contoso", NUMBER, &number_body("contoso", NUMBER))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let mut changed = number_body("contoso", NUMBER);
    changed["configuration"]["customSipHeader"] = json!("contoso-other");
    let replaced = app.put_number("contoso", NUMBER, &changed).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(app.delete_number("contoso", NUMBER).await.status, 204);
}

/// Commits `count` events to account `name` in commits of at most `per_commit`, through the
/// store (as the command side does), chained like any others.
async fn bulk_account_events(app: &TestApp, name: &str, count: u64, per_commit: u64) {
    let store = app.event_store();
    let mut version = 0;
    while version < count {
        let size = per_commit.min(count - version);
        let events: Vec<AccountEvent> = (0..size)
            .map(|i| {
                if version + i == 0 {
                    AccountEvent::AccountCreated {
                        name: domain::AccountName::parse(name).expect("name"),
                        correlation_id: None,
                        services: domain::AccountServices::default(),
                        sync_required: false,
                    }
                } else {
                    AccountEvent::AccountProvisioned {
                        for_version: version + i,
                    }
                }
            })
            .collect();
        let mut changes = Changes::new();
        changes
            .append::<Account>(name, version, &events)
            .expect("queued");
        store
            .commit(changes, &EventMetadata::system("test-bulk"))
            .await
            .expect("committed");
        version += size;
    }
}

// ---- the chain ---------------------------------------------------------------------------

#[tokio::test]
async fn every_event_carries_a_hash_that_links_it_to_the_event_before() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    app.record_consent(TENANT).await;
    let rows: Vec<(String, String, i64, String, String, Value, Value)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                metadata FROM events ORDER BY aggregate_type, aggregate_id, sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert_eq!(
        rows.len(),
        5,
        "one account, three number, one consent event"
    );
    let mut last: HashMap<(String, String), String> = HashMap::new();
    for (kind, id, sequence, event_type, event_version, payload, metadata) in &rows {
        let link = ChainLink::of(metadata).expect("every event has a chain");
        assert_eq!(link.hash.len(), 64, "a hex SHA-256");
        let key = (kind.clone(), id.clone());
        assert_eq!(
            link.previous.as_ref(),
            last.get(&key),
            "{kind}/{id} #{sequence} links to the event before it (none for the first)"
        );
        let content = EventContent {
            aggregate_type: kind,
            aggregate_id: id,
            sequence: *sequence,
            event_type,
            event_version,
            payload,
            metadata,
        };
        assert_eq!(
            event_hash(link.previous.as_deref(), &content),
            link.hash,
            "{kind}/{id} #{sequence}: the hash recomputes from the stored values"
        );
        last.insert(key, link.hash);
    }
}

#[tokio::test]
async fn verify_is_clean_on_an_untouched_store() {
    let app = spawn_app().await;
    assert!(
        store::chain::verify(&app.pool)
            .await
            .expect("verified")
            .is_clean(),
        "an empty store is clean"
    );
    number_lifecycle(&app).await;
    // A batch, whose numbers and account share one transaction.
    let batch = app
        .upsert_numbers(
            "contoso",
            &json!({"numbers": [
                {"telephoneNumber": "+15105850322", "serviceDetails": {"teamsOperatorConnect":
                    {"enabled": true, "configuration": {"usage": "CallingUserAssignment",
                     "choosableCapabilities": ["InboundCalling"]}}}},
                {"telephoneNumber": "+15105850323", "serviceDetails": {"teamsOperatorConnect":
                    {"enabled": true, "configuration": {"usage": "CallingUserAssignment",
                     "choosableCapabilities": ["InboundCalling"]}}}}]}),
        )
        .await;
    assert_eq!(batch.status, 200, "{batch:?}");
    app.record_consent(TENANT).await;
    let signed = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "AgreementSigned", "comment": "ünïcode ✓"}}),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    // Appended knowing only the version: the previous hash is read when committing.
    bulk_account_events(&app, "bulk", 5, 2).await;
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.events as i64, app.event_count().await);
    assert_eq!(
        report.aggregates, 6,
        "contoso, bulk, three numbers, the consent"
    );
}

#[tokio::test]
async fn verify_finds_an_event_edited_in_the_table() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload, '{NumberUpdated,sync_required}', 'true') \
          WHERE aggregate_type = 'number' AND sequence = 2",
    )
    .execute(&app.pool)
    .await
    .expect("payload edited");
    sqlx::query(
        "UPDATE events SET metadata = jsonb_set(metadata, '{subject}', '\"someone-else\"') \
          WHERE aggregate_type = 'account' AND sequence = 1",
    )
    .execute(&app.pool)
    .await
    .expect("metadata edited");
    let report = store::chain::verify(&app.pool).await.expect("verified");
    let found: Vec<(&str, &str, i64, &Problem)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.aggregate_type.as_str(),
                f.aggregate_id.as_str(),
                f.sequence,
                &f.problem,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("account", "contoso", 1, &Problem::Altered),
            ("number", NUMBER, 2, &Problem::Altered),
        ],
        "{report}"
    );
    assert!(
        report
            .to_string()
            .contains("number/+15105850321 #2: altered")
    );
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    sqlx::query("DELETE FROM events WHERE aggregate_type = 'number' AND sequence = 2")
        .execute(&app.pool)
        .await
        .expect("deleted");
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert_eq!(report.findings.len(), 1, "{report}");
    let finding = &report.findings[0];
    assert_eq!(
        (finding.aggregate_id.as_str(), finding.sequence),
        (NUMBER, 3)
    );
    assert_eq!(finding.problem, Problem::Missing { from: 2, to: 2 });

    // Renumbering the events after it to close the gap does not hide it.
    sqlx::query(
        "UPDATE events SET sequence = sequence - 1 \
          WHERE aggregate_type = 'number' AND sequence > 2",
    )
    .execute(&app.pool)
    .await
    .expect("renumbered");
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert!(!report.is_clean());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.sequence == 2
                && matches!(f.problem, Problem::BrokenLink { previous: Some(_) })),
        "{report}"
    );
}

#[tokio::test]
async fn verify_finds_events_swapped_in_place_or_by_sequence() {
    let app = spawn_app().await;
    bulk_account_events(&app, "swapped", 5, 5).await;
    bulk_account_events(&app, "moved", 5, 5).await;
    // Swap the payloads of #2 and #3.
    sqlx::query(
        "UPDATE events e SET payload = o.payload FROM events o \
          WHERE e.aggregate_id = 'swapped' AND o.aggregate_id = 'swapped' \
            AND ((e.sequence = 2 AND o.sequence = 3) OR (e.sequence = 3 AND o.sequence = 2))",
    )
    .execute(&app.pool)
    .await
    .expect("payloads swapped");
    // Swap #2 and #3 whole, by their sequences.
    for (from, to) in [(2, 100), (3, 2), (100, 3)] {
        sqlx::query(
            "UPDATE events SET sequence = $2 WHERE aggregate_id = 'moved' AND sequence = $1",
        )
        .bind(from)
        .bind(to)
        .execute(&app.pool)
        .await
        .expect("moved");
    }
    let report = store::chain::verify(&app.pool).await.expect("verified");
    let of = |id: &str| -> Vec<(i64, Problem)> {
        report
            .findings
            .iter()
            .filter(|f| f.aggregate_id == id)
            .map(|f| (f.sequence, f.problem.clone()))
            .collect()
    };
    assert_eq!(
        of("swapped"),
        [(2, Problem::Altered), (3, Problem::Altered)],
        "{report}"
    );
    let moved = of("moved");
    assert!(
        moved.contains(&(2, Problem::Reordered { follows: 3 })),
        "the event now at #2 follows the one now at #3: {report}"
    );
    assert!(
        moved.contains(&(3, Problem::Reordered { follows: 1 })),
        "{report}"
    );
    assert!(
        moved.contains(&(4, Problem::Reordered { follows: 2 })),
        "{report}"
    );
    assert!(
        moved.iter().all(|(sequence, _)| (2..=4).contains(sequence)),
        "{report}"
    );
}

// ---- history -------------------------------------------------------------------------------

#[tokio::test]
async fn the_history_of_a_number_lists_every_event_in_order_with_its_metadata() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    let answer = history(&app, "/audit/number/%2B15105850321/events").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let events = answer.body["value"].as_array().expect("value");
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "NumberAdded");
    assert_eq!(types[types.len() - 1], "NumberDeleted");
    assert_eq!(events.len(), 3, "{types:?}");
    assert!(answer.body.get("nextLink").is_none());
    let mut previous_hash = Value::Null;
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["aggregateType"], "number");
        assert_eq!(event["aggregateId"], NUMBER);
        assert_eq!(event["sequence"], index as i64 + 1);
        assert_eq!(event["eventVersion"], "1.0");
        assert!(event["globalPosition"].is_i64());
        assert!(event["payload"].is_object());
        assert_eq!(event["metadata"]["subject"], "test-user");
        assert_eq!(event["metadata"]["roles"], json!(["ProvisioningAPI.Admin"]));
        assert!(event["metadata"]["traceparent"].is_string());
        assert!(event["time"].is_string());
        assert_eq!(event["metadata"]["chain"]["previous"], previous_hash);
        previous_hash = event["metadata"]["chain"]["hash"].clone();
    }
    let account = history(&app, "/audit/account/contoso/events").await;
    let types: Vec<&str> = account.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    // The number's comings and goings are in its own history, not the account's.
    assert_eq!(types, ["AccountCreated"]);
}

#[tokio::test]
async fn a_long_history_is_paged_with_next_links() {
    let app = spawn_app().await;
    bulk_account_events(&app, "paged", 7, 7).await;
    let mut sequences = Vec::new();
    let mut link = Some(format!(
        "{}/audit/account/paged/events?api-version={}&maxpagesize=3",
        app.address,
        tests::API_VERSION
    ));
    let mut pages = 0;
    while let Some(url) = link {
        let page = app
            .send(app.client.get(&url).bearer_auth(app.admin()))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        for event in page.body["value"].as_array().expect("value") {
            sequences.push(event["sequence"].as_i64().unwrap());
        }
        link = page.body["nextLink"].as_str().map(str::to_string);
        if let Some(next) = &link {
            assert!(next.starts_with(&app.address), "absolute: {next}");
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(sequences, (1..=7).collect::<Vec<_>>());

    let top = history(
        &app,
        "/audit/account/paged/events?top=4&skip=2&maxpagesize=2",
    )
    .await;
    let got: Vec<i64> = top.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [3, 4]);
    let next = top.body["nextLink"].as_str().expect("a next page");
    assert!(next.contains("top=2") && next.contains("skip=4"), "{next}");
    let last = app
        .send(app.client.get(next).bearer_auth(app.admin()))
        .await;
    let got: Vec<i64> = last.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [5, 6]);
    assert!(last.body.get("nextLink").is_none(), "top is used up");
}

#[tokio::test]
async fn history_refuses_bad_input_and_answers_404_for_what_never_existed() {
    let app = spawn_app().await;
    history(&app, "/audit/accounts/contoso/events")
        .await
        .assert_error(400, "InvalidAggregateType");
    let answer = history(&app, "/audit/widget/contoso/events").await;
    answer.assert_error(400, "InvalidAggregateType");
    assert_eq!(answer.error_target(), Some("aggregateType"));
    let answer = history(&app, "/audit/number/12345/events").await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error_target(), Some("aggregateId"));
    let answer = history(&app, "/audit/account/contoso/events?maxpagesize=0").await;
    answer.assert_error(400, "InvalidQueryParameter");
    assert_eq!(answer.error_target(), Some("maxpagesize"));
    history(&app, "/audit/account/contoso/events")
        .await
        .assert_error(404, "NotFound");
    let unversioned = app
        .send(app.request_unversioned(Method::GET, "/audit/account/contoso/events"))
        .await;
    unversioned.assert_error(400, "MissingApiVersionParameter");
}

#[tokio::test]
async fn audit_routes_need_the_read_permission() {
    // The export needs more: an administrator (the_export_needs_an_administrator).
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let writer = app.token(&[Role::Write]);
    let reader = app.token(&[Role::Read]);
    for path in [
        "/audit/account/contoso/events",
        "/audit/account/contoso/asOf?time=2030-01-01T00:00:00Z",
    ] {
        app.send(app.request_as(Method::GET, path, Some(&writer)))
            .await
            .assert_error(403, "Forbidden");
        app.send(app.request_as(Method::GET, path, None))
            .await
            .assert_error(401, "MissingToken");
        let read = app
            .send(app.request_as(Method::GET, path, Some(&reader)))
            .await;
        assert_eq!(read.status, 200, "{path}: {read:?}");
    }
}

// ---- as of a time ----------------------------------------------------------------------------

#[tokio::test]
async fn a_number_as_of_a_time_is_what_the_api_showed_then() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    let events = history(&app, "/audit/number/%2B15105850321/events").await;
    let events = events.body["value"].as_array().expect("value").clone();
    let (created, changed, deleted) = (
        recorded(&events[0]),
        recorded(&events[1]),
        recorded(&events[2]),
    );

    as_of(&app, "number", NUMBER, created - Duration::milliseconds(1))
        .await
        .assert_error(404, "NotFound");

    let first = as_of(&app, "number", NUMBER, created).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["aggregateType"], "number");
    assert_eq!(first.body["aggregateId"], NUMBER);
    assert_eq!(first.body["version"], 1);
    let resource = &first.body["resource"];
    assert_eq!(resource["telephoneNumber"], NUMBER);
    assert_eq!(resource["accountName"], "contoso");
    assert_eq!(
        resource["configuration"]["customSipHeader"],
        "contoso-commsgw"
    );

    let between = as_of(&app, "number", NUMBER, changed - Duration::nanoseconds(1)).await;
    assert_eq!(between.body["version"], 1, "{between:?}");
    assert_eq!(
        between.body["resource"]["configuration"]["customSipHeader"], "contoso-commsgw",
        "the earlier state"
    );

    let later = as_of(&app, "number", NUMBER, changed).await;
    assert_eq!(later.body["version"], 2, "{later:?}");
    assert_eq!(
        later.body["resource"]["configuration"]["customSipHeader"],
        "contoso-other"
    );

    as_of(&app, "number", NUMBER, deleted)
        .await
        .assert_error(404, "NotFound");
    as_of(&app, "number", NUMBER, Utc::now() + Duration::days(1))
        .await
        .assert_error(404, "NotFound");
    // The account, still there; its numbers are not in its events, so a past state has no
    // counts of them.
    let account = as_of(&app, "account", "contoso", deleted).await;
    assert_eq!(account.status, 200, "{account:?}");
    assert_eq!(account.body["version"], 1);
    assert_eq!(account.body["resource"]["name"], "contoso");
    assert!(
        account.body["resource"]["serviceDetails"]["teamsOperatorConnect"]
            .get("numberCount")
            .is_none(),
        "{account:?}"
    );
}

#[tokio::test]
async fn a_consent_as_of_a_time_shows_its_relationship_and_account_then() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let signed = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "AgreementSigned"}}),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let events = history(&app, &format!("/audit/consent/{TENANT}/events")).await;
    let events = events.body["value"].as_array().expect("value").clone();
    assert_eq!(events.len(), 2);

    let recorded_only = as_of(&app, "consent", TENANT, recorded(&events[0])).await;
    assert_eq!(recorded_only.status, 200, "{recorded_only:?}");
    let resource = &recorded_only.body["resource"];
    assert_eq!(resource["tenantId"], TENANT);
    assert!(resource.get("customerRelationship").is_none(), "{resource}");
    assert!(
        resource.get("accountName").is_none(),
        "the account did not exist yet: {resource}"
    );

    let now = as_of(&app, "consent", TENANT, recorded(&events[1])).await;
    assert_eq!(now.body["version"], 2);
    assert_eq!(
        now.body["resource"]["customerRelationship"]["status"],
        "AgreementSigned"
    );
    assert_eq!(now.body["resource"]["accountName"], "contoso");
}

#[tokio::test]
async fn as_of_refuses_a_missing_or_malformed_time() {
    let app = spawn_app().await;
    app.send(app.request(Method::GET, "/audit/account/contoso/asOf"))
        .await
        .assert_error(400, "MissingTime");
    let answer = app
        .send(app.request(Method::GET, "/audit/account/contoso/asOf?time=yesterday"))
        .await;
    answer.assert_error(400, "InvalidTime");
    assert_eq!(answer.error_target(), Some("time"));
    let answer = app
        .send(app.request(
            Method::GET,
            "/audit/consent/contoso/asOf?time=2024-05-01T00:00:00Z",
        ))
        .await;
    assert_eq!(answer.status, 400, "not a tenant id: {answer:?}");
    assert_eq!(answer.error_target(), Some("aggregateId"));
    let answer = app
        .send(app.request(Method::GET, "/audit/teams/x/asOf?time=2024-05-01T00:00:00Z"))
        .await;
    answer.assert_error(400, "InvalidAggregateType");
}

// ---- export ----------------------------------------------------------------------------------

#[tokio::test]
async fn the_export_holds_the_events_of_a_time_range_as_cloud_events_in_commit_order() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    number_lifecycle(&app).await;
    let all: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_type, global_position, metadata->>'time' FROM events \
          ORDER BY tx_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert_eq!(
        all.len(),
        5,
        "one consent, one account, three number events"
    );

    let (content_type, lines) = export(&app, "").await;
    assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(lines.len(), all.len());
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["globalposition"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = all.iter().map(|(_, position, _)| *position).collect();
    assert_eq!(positions, expected, "commit order");
    for line in &lines {
        assert_eq!(line["specversion"], "1.0");
        assert_eq!(line["source"], "urn:nmp:nmp");
        assert_eq!(line["datacontenttype"], "application/json");
        let (kind, id, sequence) = (
            line["subject"].as_str().unwrap().split_once('/').unwrap().0,
            line["subject"].as_str().unwrap().split_once('/').unwrap().1,
            line["sequence"].as_i64().unwrap(),
        );
        assert_eq!(line["id"], format!("{kind}:{id}:{sequence}"));
        let event_type = line["type"].as_str().unwrap();
        assert!(
            event_type.starts_with(&format!("nmp.{kind}.")),
            "{event_type}"
        );
        assert!(line["data"].is_object());
        assert!(line["eventversion"].is_string());
        let time = line["time"].as_str().expect("a time");
        assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        let metadata: Value =
            serde_json::from_str(line["metadata"].as_str().expect("metadata as a string"))
                .expect("metadata is JSON");
        assert!(ChainLink::of(&metadata).is_some());
        for (name, value) in line.as_object().unwrap() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "CloudEvents attribute names are lower-case alphanumeric: {name}"
            );
            if name != "data" {
                assert!(
                    !value.is_object() && !value.is_array(),
                    "{name} is a scalar"
                );
            }
        }
    }
    assert_eq!(lines[0]["type"], "nmp.consent.ConsentRecorded");

    // A range: from the number's creation to (not including) its deletion, numbers only.
    let times: Vec<DateTime<Utc>> = lines
        .iter()
        .filter(|l| l["subject"] == format!("number/{NUMBER}"))
        .map(|l| {
            DateTime::parse_from_rfc3339(l["time"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    assert_eq!(times.len(), 3);
    let query = format!(
        "?from={}&to={}&aggregateType=number",
        at(times[0]),
        at(times[2])
    );
    let (_, numbers) = export(&app, &query).await;
    let types: Vec<&str> = numbers
        .iter()
        .map(|l| l["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["nmp.number.NumberAdded", "nmp.number.NumberUpdated"]
    );
    let (_, accounts) = export(&app, "?aggregateType=account").await;
    assert_eq!(
        accounts.len(),
        1,
        "the account's creation: its numbers are theirs"
    );
    assert!(accounts.iter().all(|l| l["subject"] == "account/contoso"));
    let (_, none) = export(&app, &format!("?from={}&to={}", at(times[0]), at(times[0]))).await;
    assert!(none.is_empty(), "an empty range");
}

#[tokio::test]
async fn the_export_refuses_bad_input() {
    let app = spawn_app().await;
    let get =
        |query: &'static str| app.send(app.request(Method::GET, &format!("/audit/export{query}")));
    let answer = get("?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z").await;
    answer.assert_error(400, "InvalidTimeRange");
    assert_eq!(answer.error_target(), Some("from"));
    let answer = get("?to=05/01/2024").await;
    answer.assert_error(400, "InvalidTime");
    assert_eq!(answer.error_target(), Some("to"));
    let answer = get("?aggregateType=accounts").await;
    answer.assert_error(400, "InvalidAggregateType");
    assert_eq!(answer.error_target(), Some("aggregateType"));
}

#[tokio::test]
async fn a_large_export_is_streamed() {
    let app = spawn_app().await;
    const EVENTS: u64 = 20_000;
    bulk_account_events(&app, "large", EVENTS, 1_000).await;
    let mut response = app
        .request(Method::GET, "/audit/export?aggregateType=account")
        .send()
        .await
        .expect("export is sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "sent as it is read, so its length is not known up front"
    );
    let first = response.chunk().await.expect("a chunk").expect("not empty");
    let first_line = first.split(|b| *b == b'\n').next().expect("a line");
    let first_event: Value = serde_json::from_slice(first_line).expect("JSON");
    assert_eq!(first_event["id"], "account:large:1");
    let mut bytes = first.len();
    let mut body = first.to_vec();
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        bytes += chunk.len();
        body.extend_from_slice(&chunk);
    }
    assert!(
        first.len() * 10 < bytes,
        "the first chunk ({} bytes) came before the rest ({bytes} bytes in all)",
        first.len()
    );
    let mut expected = 1;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: Value = serde_json::from_slice(line).expect("JSON");
        assert_eq!(event["sequence"], expected);
        expected += 1;
    }
    assert_eq!(expected - 1, EVENTS as i64);
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.events, EVENTS);
}

#[tokio::test]
async fn the_openapi_description_lists_the_audit_routes() {
    let app = spawn_app().await;
    let openapi = app
        .send(app.client.get(format!("{}/openapi.json", app.address)))
        .await;
    let paths = openapi.body["paths"].as_object().expect("paths");
    for path in [
        "/audit/{aggregateType}/{aggregateId}/events",
        "/audit/{aggregateType}/{aggregateId}/asOf",
        "/audit/export",
    ] {
        assert!(paths.contains_key(path), "{path}");
    }
}

// ---- export: who, and how many at once ------------------------------------------------------

#[tokio::test]
async fn the_export_needs_an_administrator() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    for role in [
        Role::Read,
        Role::Write,
        Role::Delete,
        Role::ReadUser,
        Role::WriteUser,
    ] {
        let token = app.token(&[role, Role::Read]);
        let refused = app
            .send(app.request_as(Method::GET, "/audit/export", Some(&token)))
            .await;
        refused.assert_error(403, "Forbidden");
    }
    for role in [Role::Admin, Role::AdminUser] {
        let token = app.token(&[role]);
        let answer = app
            .send(app.request_as(Method::GET, "/audit/export", Some(&token)))
            .await;
        assert_eq!(answer.status, 200, "{role:?}: {answer:?}");
    }
}

#[tokio::test]
async fn exports_beyond_the_limit_are_refused_until_one_ends() {
    let app = spawn_app().await;
    number_lifecycle(&app).await;
    // Every slot taken, as by exports still running.
    let held = app
        .state
        .exports
        .permits
        .clone()
        .acquire_many_owned(api::Exports::CONCURRENT as u32)
        .await
        .expect("the slots");
    let refused = app.send(app.request(Method::GET, "/audit/export")).await;
    refused.assert_error(429, "TooManyExports");
    assert_eq!(refused.header("retry-after"), Some("30"));
    drop(held);
    let (_, lines) = export(&app, "").await;
    assert_eq!(lines.len(), 4, "one account and three number events");
    // An export that ended gave its slot back.
    assert_eq!(
        app.state.exports.permits.available_permits(),
        api::Exports::CONCURRENT
    );
}

// ---- every aggregate kind ------------------------------------------------------------------

#[tokio::test]
async fn civic_addresses_have_a_history_a_past_state_and_an_export_like_the_others() {
    let app = spawn_app().await;
    app.record_civic_address(TENANT, "civic-1", "Redmond").await;
    app.record_civic_address(TENANT, "civic-1", "Bellevue")
        .await;
    let before_move = Utc::now();
    // Recorded again with the same report: nothing new.
    app.record_civic_address(TENANT, "civic-1", "Bellevue")
        .await;

    let history = history(&app, "/audit/civicAddress/civic-1/events").await;
    assert_eq!(history.status, 200, "{history:?}");
    let types: Vec<&str> = history.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CivicAddressRecorded", "CivicAddressChanged"]);

    let as_of = app
        .send(app.request(
            Method::GET,
            &format!("/audit/civicAddress/civic-1/asOf?time={}", at(before_move)),
        ))
        .await;
    assert_eq!(as_of.status, 200, "{as_of:?}");
    assert_eq!(as_of.body["aggregateType"], "civicAddress");
    assert_eq!(as_of.body["version"], 2);
    assert_eq!(as_of.body["resource"]["cityOrTown"], "Bellevue");
    assert_eq!(as_of.body["resource"]["id"], "civic-1");

    let (_, lines) = export(&app, "?aggregateType=civicAddress").await;
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| l["subject"] == "civicAddress/civic-1"),
        "{lines:?}"
    );
    // Every kind nmp keeps is one the routes take.
    for kind in domain::AggregateKind::names() {
        let answer = app
            .send(app.request(Method::GET, &format!("/audit/export?aggregateType={kind}")))
            .await;
        assert_eq!(answer.status, 200, "{kind}: {answer:?}");
    }
}
