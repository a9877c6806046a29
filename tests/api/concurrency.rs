//! Concurrent writers: a race on one aggregate never loses a write and never answers 500;
//! writes of different numbers of one account never conflict, and the account's rules that
//! depend on its numbers hold under any interleaving.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tests::{Answer, TENANT, TestApp, account_body, number_body, spawn_app};

#[tokio::test]
async fn concurrent_batches_into_one_account_lose_no_number() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    // 16 writers race on the same account aggregate, each adding 10 numbers of its own.
    let writers = (0..16).map(|writer| {
        let numbers: Vec<Value> = (0..10)
            .map(|i| number_body("contoso", &format!("+1510{writer:03}{i:04}")))
            .collect();
        let app = &app;
        async move {
            app.upsert_numbers("contoso", &json!({"numbers": numbers}))
                .await
        }
    });
    let answers = join_all(writers).await;
    for answer in &answers {
        assert_eq!(
            answer.status, 200,
            "batches of different numbers never conflict: {answer:?}"
        );
    }
    let account = app.get_account("contoso").await;
    let count = account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"]
        .as_u64()
        .expect("numberCount");
    assert_eq!(count, 16 * 10, "every write is there, none twice");
    for writer in 0..16 {
        let probe = format!("+1510{writer:03}0007");
        assert_eq!(
            app.get_number("contoso", &probe).await.status,
            200,
            "{probe}"
        );
    }
}

#[tokio::test]
async fn sixty_four_writers_adding_numbers_to_one_account_all_succeed() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    // 64 writers at once, each adding numbers of its own one request at a time.
    let writers = (0..64).map(|writer| {
        let app = &app;
        async move {
            let mut answers = Vec::new();
            for i in 0..4 {
                let number = format!("+1510{writer:03}{i:04}");
                answers.push(
                    app.put_number("contoso", &number, &number_body("contoso", &number))
                        .await,
                );
            }
            answers
        }
    });
    let answers: Vec<Answer> = join_all(writers).await.into_iter().flatten().collect();
    assert_eq!(answers.len(), 256);
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 201).collect();
    assert!(failed.is_empty(), "no error at all: {failed:?}");

    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"], 256,
        "{account:?}"
    );
    let members: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT telephone_number) FROM account_numbers WHERE account_name = 'contoso'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("memberships");
    assert_eq!(members, 256);
    let added: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'number' AND event_type = 'NumberAdded'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("events");
    assert_eq!(added, 256, "each number added once");
    // The account's stream did not move: its numbers are not in it.
    let account_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'account'")
            .fetch_one(&app.pool)
            .await
            .expect("events");
    assert_eq!(account_events, 1);
}

/// The refusals an account rule may answer a racing writer with.
const RULES: &[&str] = &[
    "AccountNotFound",
    "AccountBeingDeleted",
    "AccountHasNumbers",
    "ServiceInUse",
    "ServiceNotEnabledOnAccount",
    "TenantChangeNotAllowed",
    "NumberBeingDeleted",
    "NumberNotFound",
];

/// Checks an answer to a racing writer: a success, or a refusal that names the rule; never a
/// 5xx, never `Conflict`. Returns the refusal's code, if any.
fn judged(answer: &Answer) -> Option<String> {
    if (200..300).contains(&answer.status) {
        return None;
    }
    assert!(answer.status < 500, "never a 5xx: {answer:?}");
    let code = answer.error_code().to_string();
    let codes: Vec<String> = std::iter::once(code.clone())
        .chain(
            answer.body["error"]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["code"].as_str().map(str::to_string)),
        )
        .collect();
    for code in &codes {
        assert!(
            RULES.contains(&code.as_str()) || (code == "NotFound" && answer.status == 404),
            "a refusal names the rule, not {code}: {answer:?}"
        );
    }
    Some(code)
}

/// The account as the race leaves it: Operator Connect on or off, a tenant, flow-through.
fn race_account(operator_connect: bool, tenant: &str, sync: bool) -> Value {
    json!({
        "name": "race",
        "serviceDetails": {
            "teamsTenantId": tenant,
            "teamsOperatorConnect": {"enabled": operator_connect, "syncEnabled": sync}
        }
    })
}

const OTHER_TENANT: &str = "0f3a4b5c-6d7e-4f80-9a1b-2c3d4e5f6a7b";

/// What one account operator tries while the numbers are written, in turn.
async fn account_operator(app: &TestApp, sync: bool, rounds: usize) -> Vec<(String, Answer)> {
    let mut answers = Vec::new();
    for round in 0..rounds {
        let (what, answer) = match round % 6 {
            0 => (
                "tenant change",
                app.put_account("race", &race_account(true, OTHER_TENANT, sync))
                    .await,
            ),
            1 => (
                "switch-off",
                app.put_account("race", &race_account(false, TENANT, sync))
                    .await,
            ),
            2 => ("delete", app.delete_account("race", false).await),
            3 => (
                "delete with numbers",
                app.delete_account("race", true).await,
            ),
            4 => (
                "create",
                app.put_account("race", &race_account(true, TENANT, sync))
                    .await,
            ),
            _ => (
                "tenant back",
                app.put_account("race", &race_account(true, TENANT, sync))
                    .await,
            ),
        };
        answers.push((what.to_string(), answer));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    answers
}

/// Replays the account's and its numbers' events in commit order and checks every account
/// rule against the memberships at that moment. Returns the live numbers of the account.
async fn replay_rules(app: &TestApp) -> BTreeSet<String> {
    let events: Vec<(String, String, String, Value, String)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, event_type, payload, tx_id::text FROM events \
          WHERE aggregate_type IN ('account', 'number') ORDER BY tx_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    let mut exists = false;
    let mut deleting = false;
    let mut operator_connect = false;
    let mut tenant: Option<String> = None;
    let mut members: BTreeSet<String> = BTreeSet::new();
    // The numbers of a commit apply before its account event (they are queued first).
    for (index, (kind, id, event_type, payload, _)) in events.iter().enumerate() {
        let at = format!("event {index}: {kind}/{id} {event_type}");
        let body = &payload[event_type.as_str()];
        match (kind.as_str(), event_type.as_str()) {
            ("account", "AccountCreated" | "AccountUpdated") => {
                let services = &body["services"];
                let next_tenant = services["teams_tenant_id"].as_str().map(str::to_string);
                let next_oc = services["teams_operator_connect"]["enabled"] == json!(true);
                if event_type == "AccountUpdated" {
                    assert!(exists, "{at}: updated while gone");
                    if next_tenant != tenant {
                        assert!(members.is_empty(), "{at}: tenant changed under {members:?}");
                    }
                    if !next_oc {
                        assert!(members.is_empty(), "{at}: switched off under {members:?}");
                    }
                } else {
                    assert!(!exists, "{at}: created twice");
                    assert!(members.is_empty(), "{at}: created holding {members:?}");
                }
                exists = true;
                deleting = false;
                tenant = next_tenant;
                operator_connect = next_oc;
            }
            ("account", "AccountDeleted") => {
                assert!(members.is_empty(), "{at}: deleted holding {members:?}");
                exists = false;
                deleting = false;
            }
            ("account", "AccountDeletionRequested") => deleting = true,
            ("account", _) => {}
            ("number", "NumberAdded" | "NumberUpdated") => {
                assert!(exists && !deleting, "{at}: the account is gone or going");
                assert!(operator_connect, "{at}: Operator Connect is off");
                members.insert(id.clone());
            }
            ("number", "NumberDeleted") => {
                members.remove(id);
            }
            ("number", _) => {}
            _ => unreachable!(),
        }
    }
    if !exists {
        assert!(
            members.is_empty(),
            "no number in a deleted account: {members:?}"
        );
    }
    members
}

async fn race(sync: bool) {
    let app = spawn_app().await;
    app.put_account("race", &race_account(true, TENANT, sync))
        .await;
    let writers = (0..24).map(|writer| {
        let app = &app;
        async move {
            let mut answers = Vec::new();
            for i in 0..6 {
                let number = format!("+1425{writer:03}{i:04}");
                let answer = if i % 3 == 2 {
                    // A small batch too.
                    let numbers: Vec<Value> = (0..3)
                        .map(|k| number_body("race", &format!("+1426{writer:03}{i:02}{k:02}")))
                        .collect();
                    app.upsert_numbers("race", &json!({"numbers": numbers}))
                        .await
                } else {
                    app.put_number("race", &number, &number_body("race", &number))
                        .await
                };
                answers.push(answer);
                if i == 4 {
                    answers.push(
                        app.delete_number("race", &format!("+1425{writer:03}0000"))
                            .await,
                    );
                }
            }
            answers
        }
    });
    let (numbers, operations) = tokio::join!(join_all(writers), account_operator(&app, sync, 24));
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for answer in numbers.iter().flatten() {
        if let Some(code) = judged(answer) {
            *refusals.entry(code).or_default() += 1;
        }
    }
    for (what, answer) in &operations {
        if let Some(code) = judged(answer) {
            *refusals.entry(format!("{what}: {code}")).or_default() += 1;
        }
    }
    // The race did race: some account changes were refused for the numbers, some numbers for
    // the account.
    assert!(
        refusals.keys().any(|k| k.contains("AccountHasNumbers")
            || k.contains("ServiceInUse")
            || k.contains("TenantChangeNotAllowed")),
        "{refusals:?}"
    );

    let members = replay_rules(&app).await;
    let stored: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT telephone_number FROM account_numbers WHERE account_name = 'race'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("memberships")
    .into_iter()
    .collect();
    assert_eq!(stored, members, "the memberships are those the events make");
    let account = app.get_account("race").await;
    if account.status == 200 {
        let counted = account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(counted as usize, members.len(), "{account:?}");
    } else {
        account.assert_error(404, "NotFound");
        assert!(members.is_empty());
    }
    for number in &members {
        assert_eq!(app.get_number("race", number).await.status, 200, "{number}");
    }
}

#[tokio::test]
async fn account_changes_racing_number_writes_keep_every_rule() {
    race(false).await;
}

#[tokio::test]
async fn account_changes_racing_number_writes_keep_every_rule_with_flow_through() {
    // Numbers of a flow-through account wait for their release: the account stays, deleting.
    race(true).await;
}

#[tokio::test]
async fn concurrent_replacements_of_one_account_all_land_in_order() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let writers = (0..12).map(|i| {
        let mut body = account_body("contoso");
        body["correlationId"] = json!(format!("writer-{i}"));
        let app = &app;
        async move { app.put_account("contoso", &body).await }
    });
    let answers = join_all(writers).await;
    let accepted: Vec<&str> = answers
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.body["correlationId"].as_str().expect("id"))
        .collect();
    for answer in &answers {
        assert!(
            answer.status == 200 || (answer.status == 409 && answer.error_code() == "Conflict"),
            "{answer:?}"
        );
    }
    // Every accepted replacement is an event of its own: none was overwritten silently.
    let updates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'account' AND event_type = 'AccountUpdated'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(updates as usize, accepted.len());
    let last: String = sqlx::query_scalar(
        "SELECT payload->'AccountUpdated'->>'correlation_id' FROM events \
         WHERE aggregate_type = 'account' ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("last");
    let read = app.get_account("contoso").await;
    assert_eq!(
        read.body["correlationId"], last,
        "the state is the last committed write"
    );
}

#[tokio::test]
async fn racing_to_claim_one_number_gives_it_to_exactly_one_account() {
    let app = spawn_app().await;
    let accounts: Vec<String> = (0..8).map(|i| format!("account-{i}")).collect();
    for account in &accounts {
        app.put_account(account, &account_body(account)).await;
    }
    let claims = accounts.iter().map(|account| {
        let app = &app;
        async move {
            app.put_number(
                account,
                "+15105850321",
                &number_body(account, "+15105850321"),
            )
            .await
        }
    });
    let answers = join_all(claims).await;
    let winners = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(winners, 1, "{answers:?}");
    for answer in answers.iter().filter(|a| a.status != 201) {
        assert!(
            matches!(answer.error_code(), "NumberInAnotherAccount" | "Conflict"),
            "{answer:?}"
        );
    }
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'number' AND event_type = 'NumberAdded'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(owners, 1);
}

/// An Operator Connect number's details with `header` as its custom SIP header.
fn details_with_header(header: &str) -> domain::NumberDetails {
    domain::NumberDetails {
        teams_operator_connect: Some(domain::TeamsNumberService {
            enabled: true,
            assignment_status: Some(domain::AssignmentStatus::Assigned),
            configuration: Some(domain::TeamsNumberConfiguration {
                usage: domain::Usage::CallingUserAssignment,
                choosable_capabilities: vec![domain::Capability::InboundCalling],
                additional_usages: Vec::new(),
                civic_address_id: None,
                location_id: None,
                allow_tenant_address_update: true,
                displayed_country_code: None,
            }),
        }),
        custom_sip_header: Some(domain::SipHeaderValue::parse(header).expect("a header")),
        ..domain::NumberDetails::default()
    }
}

#[tokio::test]
async fn a_write_decided_on_what_another_instance_changed_since_is_decided_again() {
    let app = spawn_app().await;
    // Without flow-through, so that a deletion is immediate.
    let mut body = account_body("contoso");
    body["serviceDetails"]["teamsOperatorConnect"]["syncEnabled"] = json!(false);
    app.put_account("contoso", &body).await;
    // Two instances of nmp on one database, each with its own cache of aggregates.
    let first = app.commands.clone();
    let second = commands::CommandService::new(store::EventStore::new(app.pool.clone()));
    let metadata = store::EventMetadata::system("test");
    let account = domain::AccountName::parse("contoso").expect("a name");
    let number = |n: &str| domain::E164::parse(n).expect("a number");
    let upsert = |service: &commands::CommandService, n: &str, header: &str| {
        let service = service.clone();
        let account = account.clone();
        let metadata = metadata.clone();
        let telephone_number = number(n);
        let details = details_with_header(header);
        async move {
            service
                .upsert_number(
                    &account,
                    telephone_number,
                    details,
                    &commands::Preconditions::none(),
                    &metadata,
                )
                .await
        }
    };
    // Both know the account.
    first.account(&account).await.expect("loaded");
    second.account(&account).await.expect("loaded");

    // The first knows +15105850001 at version 1; the second moves it to version 2.
    let created = upsert(&first, "+15105850001", "one")
        .await
        .expect("created");
    assert!(created.created);
    second
        .number(&number("+15105850001"))
        .await
        .expect("loaded");
    upsert(&second, "+15105850001", "two")
        .await
        .expect("updated");
    // What the first knows is stale: its write is decided again on version 2.
    let third = upsert(&first, "+15105850001", "three")
        .await
        .expect("updated");
    assert!(!third.created);
    assert_eq!(third.number.version, 3);

    // A number the first never saw, written by the second: not new after all.
    upsert(&second, "+15105850002", "two")
        .await
        .expect("created");
    let seen = upsert(&first, "+15105850002", "one")
        .await
        .expect("updated");
    assert!(!seen.created, "an existing number is updated, not created");
    assert_eq!(seen.number.version, 2);

    // A number deleted by the second while the first still knows it.
    second
        .delete_number(
            &account,
            number("+15105850001"),
            &commands::Preconditions::none(),
            &metadata,
        )
        .await
        .expect("deleted");
    let again = upsert(&first, "+15105850001", "four")
        .await
        .expect("added again");
    assert!(again.created);
    assert_eq!(again.number.version, 5);

    let sequences: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, event_type FROM events WHERE aggregate_type = 'number' \
          ORDER BY aggregate_id, sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    let types: Vec<String> = sequences.iter().map(|(_, _, t)| t.clone()).collect();
    assert_eq!(
        types,
        [
            "NumberAdded",
            "NumberUpdated",
            "NumberUpdated",
            "NumberDeleted",
            "NumberAdded",
            "NumberAdded",
            "NumberUpdated"
        ],
        "{sequences:?}"
    );
    let read = app.get_number("contoso", "+15105850001").await;
    assert_eq!(read.body["configuration"]["customSipHeader"], "four");
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert!(report.is_clean(), "{report}");
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM account_numbers")
        .fetch_one(&app.pool)
        .await
        .expect("memberships");
    assert_eq!(members, 2);
}
