//! The projector: read rows and audit rows follow the events, through redelivery, gaps and
//! several projector instances.

use std::time::Duration;

use projections::{Kind, Projected, project};
use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{TENANT, TestApp, account_body, number_body, spawn_app};

async fn row(app: &TestApp, sql: &str, key: &str) -> Value {
    sqlx::query_scalar::<_, Value>(sql)
        .bind(key)
        .fetch_one(&app.pool)
        .await
        .expect("a row")
}

#[tokio::test]
async fn read_rows_follow_every_change() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    for number in ["+15105850001", "+15105850002", "+15105850003"] {
        app.put_number("contoso", number, &number_body("contoso", number))
            .await;
    }
    app.delete_number("contoso", "+15105850003").await;
    app.backend_accepts(&["+15105850003"]).await;
    app.record_consent(TENANT).await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let account = row(
        &app,
        "SELECT json_build_object('version', version, 'count', number_count, 'services', services, \
                'tenant', teams_tenant_id, 'sync', sync_status, 'deleted', deleted) \
           FROM read_accounts WHERE name = $1",
        "contoso",
    )
    .await;
    assert_eq!(
        account,
        json!({"version": 1, "count": 2, "services": ["teamsOperatorConnect"],
               "tenant": TENANT, "sync": "pending", "deleted": false})
    );
    let number = row(
        &app,
        "SELECT json_build_object('account', account_name, 'usage', usage, 'services', services, \
                'header', custom_sip_header, 'deleted', deleted) \
           FROM read_numbers WHERE telephone_number = $1",
        "+15105850001",
    )
    .await;
    assert_eq!(
        number,
        json!({"account": "contoso", "usage": "CallingUserAssignment",
               "services": ["teamsOperatorConnect"], "header": "contoso-commsgw", "deleted": false})
    );
    let deleted = row(
        &app,
        "SELECT to_json(deleted) FROM read_numbers WHERE telephone_number = $1",
        "+15105850003",
    )
    .await;
    assert_eq!(deleted, json!(true));

    // The audit log has one row per event with who did it.
    let audit: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, subject FROM audit_log WHERE aggregate_type = 'account' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        audit[0],
        ("AccountCreated".to_string(), Some("test-user".to_string()))
    );
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850001",
        &number_body("contoso", "+15105850001"),
    )
    .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let snapshot = || async {
        sqlx::query_scalar::<_, Value>(
            "SELECT json_agg(to_jsonb(n) - 'updated_at' ORDER BY telephone_number) FROM read_numbers n",
        )
        .fetch_one(&app.pool)
        .await
        .expect("rows")
    };
    let before = snapshot().await;
    let audit_before = app.event_count().await;
    for _ in 0..3 {
        let again = project(
            &app.event_store(),
            Kind::Number,
            "+15105850001",
            "read_numbers",
        )
        .await
        .expect("projected");
        assert_eq!(again, Projected::Unchanged);
    }
    assert_eq!(snapshot().await, before);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(audit, audit_before, "one audit row per event, no more");
}

#[tokio::test]
async fn an_event_after_a_gap_first_pulls_the_missing_events() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    wait_until_projected(&app, Duration::from_secs(20)).await;
    // The projector misses the next changes (as if their messages were lost or late)...
    read.projector.abort();
    let mut body = account_body("contoso");
    for i in 0..3 {
        body["correlationId"] = json!(format!("change-{i}"));
        app.put_account("contoso", &body).await;
    }
    // ...and then sees only the last one: the row jumps from version 1 to 4, and the audit log
    // gets the events in between.
    let projected = project(
        &app.event_store(),
        Kind::Account,
        "contoso",
        "read_accounts",
    )
    .await
    .expect("projected");
    assert_eq!(projected, Projected::Advanced { from: 1, to: 4 });
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM audit_log WHERE aggregate_id = 'contoso' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(sequences, [1, 2, 3, 4]);
}

#[tokio::test]
async fn two_projector_instances_share_the_work_without_harm() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    let second = read.another_projector(&app);
    app.put_account("contoso", &account_body("contoso")).await;
    let writers = (0..8).map(|w| {
        let app = &app;
        async move {
            let numbers: Vec<Value> = (0..25)
                .map(|i| number_body("contoso", &format!("+1555{w:03}{i:04}")))
                .collect();
            app.upsert_numbers("contoso", &json!({"numbers": numbers}))
                .await
        }
    });
    for answer in futures::future::join_all(writers).await {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    wait_until_projected(&app, Duration::from_secs(30)).await;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM read_numbers WHERE account_name = 'contoso' AND NOT deleted",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(count, 200);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .expect("audit");
    assert_eq!(audit, app.event_count().await);
    second.abort();
}

#[tokio::test]
async fn a_batch_of_many_events_of_many_aggregates_ends_at_every_final_version() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    // The projector is stopped: every change below waits in the stream.
    read.projector.abort();
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers: Vec<String> = (0..50).map(|i| format!("+1999000{i:04}")).collect();
    for round in 0..6 {
        let bodies: Vec<Value> = numbers
            .iter()
            .map(|n| {
                let mut body = number_body("contoso", n);
                body["configuration"]["customSipHeader"] = json!(format!("round-{round}"));
                body
            })
            .collect();
        let answer = app
            .upsert_numbers("contoso", &json!({"numbers": bodies}))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let events = app.event_count().await;
    assert!(events >= 300, "{events} events");
    read.stream
        .wait_for(events as u64, Duration::from_secs(20))
        .await;

    // One batch naming a number several times, and several numbers: each is written once, from
    // nothing to its last version, with the audit rows of all its events.
    let batch: Vec<(Kind, String)> = [0, 1, 0, 2, 0, 1]
        .iter()
        .map(|&i| (Kind::Number, numbers[i].clone()))
        .chain([(Kind::Account, "contoso".to_string())])
        .collect();
    let mut moved = projections::write::project_batch(&app.event_store(), &batch)
        .await
        .expect("projected");
    moved.sort_by(|a, b| (a.kind.aggregate_type(), &a.id).cmp(&(b.kind.aggregate_type(), &b.id)));
    let summary: Vec<(&str, u64, u64)> = moved
        .iter()
        .map(|m| (m.id.as_str(), m.from, m.to))
        .collect();
    let account_version = last_sequence(&app, "account", "contoso").await;
    let number_version = last_sequence(&app, "number", &numbers[0]).await;
    assert!(number_version >= 6, "six changes of each number");
    assert_eq!(
        summary,
        [
            ("contoso", 0, account_version),
            (numbers[0].as_str(), 0, number_version),
            (numbers[1].as_str(), 0, number_version),
            (numbers[2].as_str(), 0, number_version)
        ]
    );
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .expect("audit");
    assert_eq!(audited, (account_version + 3 * number_version) as i64);

    // The projector then takes the whole stream, in batches that hold every event of those
    // numbers again and all of the others.
    let _projector = read.another_projector(&app);
    wait_until_projected(&app, Duration::from_secs(30)).await;
    let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT telephone_number, version, custom_sip_header FROM read_numbers \
          ORDER BY telephone_number",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(rows.len(), numbers.len());
    for ((number, version, header), expected) in rows.iter().zip(&numbers) {
        assert_eq!(number, expected);
        assert_eq!(*version as u64, number_version, "{number}");
        assert_eq!(header.as_deref(), Some("round-5"), "{number}");
    }
    let account: i64 =
        sqlx::query_scalar("SELECT version FROM read_accounts WHERE name = 'contoso'")
            .fetch_one(&app.pool)
            .await
            .expect("account");
    assert_eq!(account, account_version as i64);
    // Exactly one audit row per event.
    let (audit, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (aggregate_type, aggregate_id, sequence)) FROM audit_log",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!((audit, distinct), (events, events));
    let unaudited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e \
          WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.global_position = e.global_position \
                              AND l.aggregate_id = e.aggregate_id AND l.sequence = e.sequence)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("unaudited");
    assert_eq!(unaudited, 0);
}

#[tokio::test]
async fn an_aggregate_that_cannot_be_projected_does_not_hold_back_its_batch() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    read.projector.abort();
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers: Vec<Value> = (0..20)
        .map(|i| number_body("contoso", &format!("+1999111{i:04}")))
        .collect();
    let answer = app
        .upsert_numbers("contoso", &json!({"numbers": numbers}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // An event this version cannot read (as if written by a newer nmp), in the same stretch of
    // the stream as the others.
    let unreadable = last_sequence(&app, "number", "+19991110000").await + 1;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('number', '+19991110000', $1, 'NumberReshaped', '9.0', '{\"NumberReshaped\": {}}', \
                 '{\"subject\": \"test\", \"roles\": [], \"time\": \"2026-01-01T00:00:00Z\", \"correlation_id\": \"x\"}')",
    )
    .bind(unreadable as i64)
    .execute(&app.pool)
    .await
    .expect("insert");
    let events = app.event_count().await;
    read.stream
        .wait_for(events as u64, Duration::from_secs(20))
        .await;

    let _projector = read.another_projector(&app);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (rows, audit): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM read_numbers), (SELECT count(*) FROM audit_log)",
        )
        .fetch_one(&app.pool)
        .await
        .expect("counts");
        // Every aggregate but the unreadable number, with all their events.
        if (rows, audit) == (19, events - unreadable as i64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "projected {rows} numbers and {audit} events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let account: i64 =
        sqlx::query_scalar("SELECT version FROM read_accounts WHERE name = 'contoso'")
            .fetch_one(&app.pool)
            .await
            .expect("account");
    assert_eq!(
        account,
        last_sequence(&app, "account", "contoso").await as i64
    );
}

/// The sequence of an aggregate's last event.
async fn last_sequence(app: &TestApp, aggregate_type: &str, id: &str) -> u64 {
    let last: i64 = sqlx::query_scalar(
        "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("last sequence");
    last as u64
}

/// A table's rows as JSON, without the time they were written, in key order.
async fn table_rows(app: &TestApp, table: &str, key: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) - 'updated_at' FROM {table} t ORDER BY {key}"
    ))
    .fetch_all(&app.pool)
    .await
    .expect("rows")
}

#[tokio::test]
async fn a_rebuild_under_live_writes_ends_identical_to_the_live_tables() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.record_consent(TENANT).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    let seed: Vec<Value> = (0..100)
        .map(|i| number_body("contoso", &format!("+1666000{i:04}")))
        .collect();
    app.upsert_numbers("contoso", &json!({"numbers": seed}))
        .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    // Writers keep going while every read model is rebuilt; readers keep reading.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writers = async {
        let mut round = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let numbers: Vec<Value> = (0..10)
                .map(|i| number_body("contoso", &format!("+1777{round:03}{i:04}")))
                .collect();
            let answer = app
                .upsert_numbers("contoso", &json!({"numbers": numbers}))
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
            app.delete_number("contoso", &format!("+1666000{:04}", round % 100))
                .await;
            round += 1;
        }
        round
    };
    let readers = async {
        let mut reads = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM read_numbers")
                .fetch_one(&app.pool)
                .await
                .expect("readers never fail during a rebuild");
            assert!(count >= 100, "readers never see an empty table: {count}");
            reads += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reads
    };
    let rebuild = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for target in projections::Target::ALL {
            let report = projections::rebuild(&app.event_store(), target)
                .await
                .expect("rebuilt");
            assert!(report.rows > 0, "{report:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (rounds, reads, ()) = tokio::join!(writers, readers, rebuild);
    assert!(rounds > 0 && reads > 0);
    wait_until_projected(&app, Duration::from_secs(30)).await;

    // Build the same tables the live way, row by row, and compare.
    for (table, key, kind) in [
        ("read_accounts", "name", Kind::Account),
        ("read_numbers", "telephone_number", Kind::Number),
        ("read_consents", "tenant_id", Kind::Consent),
        (
            "read_civic_addresses",
            "civic_address_id",
            Kind::CivicAddress,
        ),
    ] {
        let expected = format!("{table}_expected");
        sqlx::query(&format!(
            "CREATE TABLE {expected} (LIKE {table} INCLUDING ALL)"
        ))
        .execute(&app.pool)
        .await
        .expect("scratch table");
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1",
        )
        .bind(kind.aggregate_type())
        .fetch_all(&app.pool)
        .await
        .expect("ids");
        for id in ids {
            project(&app.event_store(), kind, &id, &expected)
                .await
                .expect("projected");
        }
        if kind == Kind::Account {
            // The live way counts an account's numbers from the number rows.
            projections::write::recount_table(&app.pool, &expected, "read_numbers")
                .await
                .expect("recounted");
        }
        assert_eq!(
            table_rows(&app, table, key).await,
            table_rows(&app, &expected, key).await,
            "{table} after the rebuild equals the live projection"
        );
    }
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .expect("audit");
    assert_eq!(audit, app.event_count().await);
}

#[tokio::test]
async fn civic_addresses_are_projected_as_the_api_shows_them() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    app.record_civic_address(TENANT, "addr-2", "Seattle").await;
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let address = row(
        &app,
        "SELECT address FROM read_civic_addresses WHERE civic_address_id = $1",
        "addr-1",
    )
    .await;
    assert_eq!(address["id"], "addr-1");
    assert_eq!(address["tenantId"], TENANT);
    assert_eq!(address["cityOrTown"], "Redmond");
    assert_eq!(address["validationStatus"], "validated");
    assert_eq!(address["locations"][0]["elin"], "ELIN-1");
    assert_eq!(address["locations"][0]["civicAddressId"], "addr-1");
    assert!(
        address.get("houseNumberSuffix").is_none(),
        "unreported fields are left out"
    );

    app.commands
        .remove_civic_address(
            &domain::Identifier::parse("addr-2").expect("id"),
            &store::EventMetadata::system("test-backend-sync"),
        )
        .await
        .expect("removed");
    wait_until_projected(&app, Duration::from_secs(20)).await;
    let removed = row(
        &app,
        "SELECT to_json(deleted) FROM read_civic_addresses WHERE civic_address_id = $1",
        "addr-2",
    )
    .await;
    assert_eq!(removed, json!(true));
}

#[tokio::test]
async fn a_deletion_projected_behind_a_batch_in_flight_still_recounts_the_account_it_left() {
    let app = spawn_app().await;
    let mut account = account_body("contoso");
    // Without flow-through, so that the deletion is immediate.
    account["serviceDetails"]["teamsOperatorConnect"]["syncEnabled"] = json!(false);
    app.put_account("contoso", &account).await;
    let number = "+15105850321";
    app.put_number("contoso", number, &number_body("contoso", number))
        .await;
    assert_eq!(app.delete_number("contoso", number).await.status, 204);
    let store = app.event_store();
    project(&store, Kind::Account, "contoso", "read_accounts")
        .await
        .expect("the account's row");

    // A batch still in flight has written the number's first version, and counted it.
    let mut in_flight = app.pool.begin().await.expect("a transaction");
    sqlx::query(
        "INSERT INTO read_numbers (telephone_number, version, deleted, account_name, services, \
                                   sync_status, state) \
         VALUES ($1, 1, false, 'contoso', '{teamsOperatorConnect}', 'synced', '{}')",
    )
    .bind(number)
    .execute(&mut *in_flight)
    .await
    .expect("the number's row");
    sqlx::query("UPDATE read_accounts SET number_count = 1 WHERE name = 'contoso'")
        .execute(&mut *in_flight)
        .await
        .expect("its count");
    // The deletion's batch reads what it must recount while that batch is uncommitted, then
    // waits for its row.
    let deletion = {
        let store = store.clone();
        tokio::spawn(async move {
            projections::write::project_batch(&store, &[(Kind::Number, number.to_string())]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    in_flight.commit().await.expect("committed");
    deletion
        .await
        .expect("the deletion's batch")
        .expect("projected");

    let (deleted, count): (bool, i64) = sqlx::query_as(
        "SELECT n.deleted, a.number_count FROM read_numbers n, read_accounts a \
          WHERE n.telephone_number = $1 AND a.name = 'contoso'",
    )
    .bind(number)
    .fetch_one(&app.pool)
    .await
    .expect("rows");
    assert!(deleted);
    assert_eq!(count, 0, "the account it left is recounted");
}
