//! The event store underneath: postgres-es reads what nmp appends, every row carries its
//! commit-safe position, and one command's events commit together or not at all.

use cqrs_es::persist::PersistedEventRepository;
use domain::{Account, AccountEvent, AccountServices, Number};
use postgres_es::PostgresEventRepository;
use store::{Changes, EventMetadata, StoreError};
use tests::{account_body, number_body, spawn_app};

#[tokio::test]
async fn postgres_es_reads_the_events_nmp_appends() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let repository = PostgresEventRepository::new(app.pool.clone());
    let events = repository
        .get_events::<Account>("contoso")
        .await
        .expect("postgres-es reads the account");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    // The number's membership is not in the account's stream.
    assert_eq!(types, ["AccountCreated"]);
    assert_eq!(events[0].sequence, 1);
    let numbers = repository
        .get_events::<Number>("+15105850321")
        .await
        .expect("postgres-es reads the number");
    assert_eq!(numbers.len(), 1);
    assert_eq!(numbers[0].event_version, "1.0");
}

#[tokio::test]
async fn every_event_has_a_global_position_and_its_transaction() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT global_position, tx_id::text, event_type FROM events ORDER BY tx_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.windows(2).all(|w| w[0].0 < w[1].0),
        "positions grow: {rows:?}"
    );
    assert_ne!(rows[0].1, rows[1].1, "two requests, two transactions");
    // The membership is written in the number's transaction: its row has that xmin.
    let membership: (String, Vec<String>, String) = sqlx::query_as(
        "SELECT account_name, services, xmin::text FROM account_numbers \
          WHERE telephone_number = '+15105850321'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the membership");
    assert_eq!(membership.0, "contoso");
    assert_eq!(membership.1, ["teamsOperatorConnect"]);
    let number_xid: String = sqlx::query_scalar(
        "SELECT (tx_id::text::bigint % 4294967296)::text FROM events \
          WHERE aggregate_type = 'number'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the number's transaction");
    assert_eq!(
        membership.2, number_xid,
        "the number and its membership commit together"
    );
}

#[tokio::test]
async fn a_conflict_on_one_aggregate_writes_none_of_the_command() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let store = app.event_store();
    let before = app.event_count().await;
    let mut changes = Changes::new();
    let created = AccountEvent::AccountCreated {
        name: domain::AccountName::parse("fabrikam").expect("name"),
        correlation_id: None,
        services: AccountServices::default(),
        sync_required: false,
    };
    changes
        .append::<Account>("fabrikam", 0, std::slice::from_ref(&created))
        .expect("queued");
    // "contoso" is at version 1 already: appending as if it were new clashes.
    changes
        .append::<Account>("contoso", 0, &[created])
        .expect("queued");
    let result = store.commit(changes, &EventMetadata::system("test")).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(
        app.event_count().await,
        before,
        "fabrikam was not written either"
    );
    app.get_account("fabrikam")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn commands_committed_together_succeed_or_conflict_each_on_its_own() {
    let app = spawn_app().await;
    let store = app.event_store();
    // 40 commands at once: two for each of 20 new accounts. In each pair exactly one wins the
    // account's first sequence; the loser is refused alone, whatever batch it shared.
    let commands = (0..40).map(|i| {
        let store = store.clone();
        async move {
            let name = format!("acct-{:02}", i / 2);
            let created = AccountEvent::AccountCreated {
                name: domain::AccountName::parse(&name).expect("name"),
                correlation_id: None,
                services: AccountServices::default(),
                sync_required: i % 2 == 0,
            };
            let mut changes = Changes::new();
            changes
                .append::<Account>(&name, 0, &[created])
                .expect("queued");
            (
                name,
                store.commit(changes, &EventMetadata::system("test")).await,
            )
        }
    });
    let outcomes = futures::future::join_all(commands).await;
    let mut winners = std::collections::BTreeMap::new();
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(()) => *winners.entry(name.clone()).or_insert(0) += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("{name}: {other}"),
        }
    }
    assert_eq!(winners.len(), 20, "{outcomes:?}");
    assert!(winners.values().all(|&n| n == 1), "{winners:?}");
    assert_eq!(app.event_count().await, 20);
    // Queued at the same moment, they were written together (group commit).
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT tx_id) FROM events")
        .fetch_one(&app.pool)
        .await
        .expect("transactions");
    assert!(
        transactions < 20,
        "{transactions} transactions for 20 commands"
    );
    let report = store::chain::verify(&app.pool).await.expect("verified");
    assert!(report.is_clean(), "{report}");
}
