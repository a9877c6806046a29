//! Stores written before number memberships left the account's stream: the migration replays
//! the memberships recorded there, and everything that reads events still works on them.

use domain::{
    Account, AccountEvent, AccountName, AccountServices, AssignmentStatus, Capability, E164,
    Number, NumberDetails, NumberEvent, NumberMembership, Service, SyncableService,
    TeamsNumberConfiguration, TeamsNumberService, TenantId, Usage,
};
use projections::rebuild::{Target, rebuild};
use sqlx::migrate::MigrateDatabase;
use store::{Changes, EventMetadata, EventStore};
use tests::TENANT;

fn number(value: &str) -> E164 {
    E164::parse(value).expect("a number")
}

fn operator_connect() -> AccountServices {
    AccountServices {
        teams_tenant_id: Some(TenantId::parse(TENANT).expect("a tenant")),
        teams_operator_connect: Some(SyncableService {
            enabled: true,
            sync_enabled: false,
        }),
        ..AccountServices::default()
    }
}

fn details() -> NumberDetails {
    NumberDetails {
        teams_operator_connect: Some(TeamsNumberService {
            enabled: true,
            assignment_status: Some(AssignmentStatus::Assigned),
            configuration: Some(TeamsNumberConfiguration {
                usage: Usage::CallingUserAssignment,
                choosable_capabilities: vec![Capability::InboundCalling],
                additional_usages: Vec::new(),
                civic_address_id: None,
                location_id: None,
                allow_tenant_address_update: true,
                displayed_country_code: None,
            }),
        }),
        ..NumberDetails::default()
    }
}

fn created(name: &str) -> AccountEvent {
    AccountEvent::AccountCreated {
        name: AccountName::parse(name).expect("a name"),
        correlation_id: None,
        services: operator_connect(),
        sync_required: false,
    }
}

fn added(account: &str, telephone_number: &str) -> NumberEvent {
    NumberEvent::NumberAdded {
        telephone_number: number(telephone_number),
        account: AccountName::parse(account).expect("a name"),
        details: details(),
        sync_required: false,
    }
}

fn deleted(account: &str) -> NumberEvent {
    NumberEvent::NumberDeleted {
        account: AccountName::parse(account).expect("a name"),
        sync_required: false,
    }
}

fn joined(numbers: &[&str]) -> AccountEvent {
    AccountEvent::NumbersAdded {
        numbers: numbers
            .iter()
            .map(|n| NumberMembership {
                telephone_number: number(n),
                services: vec![Service::TeamsOperatorConnect],
            })
            .collect(),
    }
}

/// Commits one request's events as nmp wrote them before 0007: the numbers' and the
/// account's membership event together.
async fn commit(
    store: &EventStore,
    numbers: &[(&str, u64, NumberEvent)],
    account: Option<(&str, u64, AccountEvent)>,
) {
    let mut changes = Changes::new();
    for (id, after, event) in numbers {
        changes
            .append::<Number>(id, *after, std::slice::from_ref(event))
            .expect("queued");
    }
    if let Some((name, after, event)) = account {
        changes
            .append::<Account>(name, after, &[event])
            .expect("queued");
    }
    store
        .commit(changes, &EventMetadata::system("legacy-writer"))
        .await
        .expect("committed");
}

#[tokio::test]
async fn a_store_written_with_memberships_on_the_account_stream_is_migrated() {
    let server = std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", &server[..server.rfind('/').expect("a path")]);
    sqlx::Postgres::create_database(&url)
        .await
        .expect("created");
    let pool = sqlx::PgPool::connect(&url).await.expect("connected");

    // The events are written through today's store (it appends whatever events it is given),
    // then the schema is taken back to what it was before memberships moved: 0007 undone.
    sqlx::migrate!("../services/store/migrations")
        .run(&pool)
        .await
        .expect("migrated");
    let store = EventStore::new(pool.clone());
    commit(&store, &[], Some(("contoso", 0, created("contoso")))).await;
    commit(&store, &[], Some(("fabrikam", 0, created("fabrikam")))).await;
    commit(&store, &[], Some(("northwind", 0, created("northwind")))).await;
    // contoso takes three numbers, then lets one go.
    commit(
        &store,
        &[
            ("+15105850001", 0, added("contoso", "+15105850001")),
            ("+15105850002", 0, added("contoso", "+15105850002")),
            ("+15105850003", 0, added("contoso", "+15105850003")),
        ],
        Some((
            "contoso",
            1,
            joined(&["+15105850001", "+15105850002", "+15105850003"]),
        )),
    )
    .await;
    commit(
        &store,
        &[("+15105850003", 1, deleted("contoso"))],
        Some((
            "contoso",
            2,
            AccountEvent::NumbersRemoved {
                numbers: vec![number("+15105850003")],
            },
        )),
    )
    .await;
    // fabrikam takes a number and is deleted with it; northwind takes it then.
    commit(
        &store,
        &[("+15105850004", 0, added("fabrikam", "+15105850004"))],
        Some(("fabrikam", 1, joined(&["+15105850004"]))),
    )
    .await;
    commit(
        &store,
        &[("+15105850004", 1, deleted("fabrikam"))],
        Some((
            "fabrikam",
            2,
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![number("+15105850004")],
            },
        )),
    )
    .await;
    commit(
        &store,
        &[("+15105850004", 2, added("northwind", "+15105850004"))],
        Some(("northwind", 1, joined(&["+15105850004"]))),
    )
    .await;

    for undo in [
        "DROP FUNCTION nmp_append_batch, nmp_append, nmp_events_after, nmp_share_accounts, \
         nmp_account_lock_key",
        "DROP TABLE account_numbers",
        "ALTER TABLE read_accounts DROP COLUMN number_counts",
        // And what later migrations made, so that they run again after 0007.
        "DROP TABLE projection_dead_letters",
        "DROP INDEX audit_log_recent",
        "CREATE INDEX audit_log_time ON audit_log (occurred_at DESC)",
        "DELETE FROM _sqlx_migrations WHERE version >= 7",
    ] {
        sqlx::query(undo).execute(&pool).await.expect(undo);
    }
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("migrations");
    assert_eq!(before, 6, "the schema of a store before 0007");

    // nmp starts on it: 0007 replays the memberships the account streams recorded.
    sqlx::migrate!("../services/store/migrations")
        .run(&pool)
        .await
        .expect("migrated");
    let members: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT telephone_number, account_name, services FROM account_numbers ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("memberships");
    let oc = vec!["teamsOperatorConnect".to_string()];
    assert_eq!(
        members,
        [
            (
                "+15105850001".to_string(),
                "contoso".to_string(),
                oc.clone()
            ),
            (
                "+15105850002".to_string(),
                "contoso".to_string(),
                oc.clone()
            ),
            (
                "+15105850004".to_string(),
                "northwind".to_string(),
                oc.clone()
            ),
        ]
    );

    // The command side decides on them: the counts, and the rules.
    let store = EventStore::new(pool.clone());
    let commands = commands::CommandService::new(store.clone());
    let contoso = AccountName::parse("contoso").expect("a name");
    let counts = commands
        .account_number_counts(&contoso)
        .await
        .expect("counts");
    assert_eq!(counts.using(Service::TeamsOperatorConnect), 2);
    let refused = commands
        .delete_account(
            &contoso,
            false,
            &commands::Preconditions::none(),
            &EventMetadata::system("test"),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(commands::CommandError::Refused(
                domain::DomainError::AccountHasNumbers { count: 2, .. }
            ))
        ),
        "{refused:?}"
    );
    let account = commands.account(&contoso).await.expect("loaded");
    assert_eq!(account.version, 3, "old membership events still count");
    commands
        .delete_account(
            &contoso,
            true,
            &commands::Preconditions::none(),
            &EventMetadata::system("test"),
        )
        .await
        .expect("deleted with its numbers");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM account_numbers")
        .fetch_one(&pool)
        .await
        .expect("memberships");
    assert_eq!(left, 1, "northwind's number stays");

    // Every reader of events still reads them.
    for target in Target::ALL {
        rebuild(&store, target).await.expect("rebuilt");
    }
    let counted: (i64, serde_json::Value) = sqlx::query_as(
        "SELECT number_count, number_counts FROM read_accounts WHERE name = 'northwind'",
    )
    .fetch_one(&pool)
    .await
    .expect("northwind's row");
    assert_eq!(counted.0, 1);
    assert_eq!(counted.1, serde_json::json!({"teamsOperatorConnect": 1}));
    let report = store::chain::verify(&pool).await.expect("verified");
    assert!(report.is_clean(), "{report}");
    assert!(report.events >= 13, "{report}");

    pool.close().await;
    let admin = sqlx::PgPool::connect(&server).await.expect("server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("dropped");
}
