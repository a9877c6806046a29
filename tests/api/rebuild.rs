//! What a rebuild leaves behind besides the rows: the names migrations rely on, and statistics.

use std::time::Duration;

use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{TENANT, TestApp, account_body, number_body, spawn_app};

/// Every index of `table` with its definition, the table's name left out.
async fn indexes(app: &TestApp, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT indexname::text, replace(indexdef, ' ON public.' || tablename || ' ', ' ON _ ') \
           FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
    )
    .bind(table)
    .fetch_all(&app.pool)
    .await
    .expect("indexes")
}

#[tokio::test]
async fn a_rebuilt_table_keeps_its_index_names_and_has_statistics() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.record_consent(TENANT).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    let numbers: Vec<Value> = (0..50)
        .map(|i| number_body("contoso", &format!("+1666100{i:04}")))
        .collect();
    app.upsert_numbers("contoso", &json!({"numbers": numbers}))
        .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    for target in projections::Target::ALL {
        let table = target.table();
        let before = indexes(&app, table).await;
        assert!(!before.is_empty(), "{table} has indexes");
        // Twice: the second rebuild starts from a table the first one swapped in.
        for _ in 0..2 {
            projections::rebuild(&app.event_store(), target)
                .await
                .expect("rebuilt");
            assert_eq!(
                indexes(&app, table).await,
                before,
                "{table}'s indexes keep their names and definitions"
            );
        }
        let analyzed: bool = sqlx::query_scalar(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1",
        )
        .bind(table)
        .fetch_one(&app.pool)
        .await
        .expect("statistics");
        assert!(analyzed, "{table} is analyzed before readers use it");
        let leftovers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class WHERE relname LIKE $1 || '%rebuild%'",
        )
        .bind(table)
        .fetch_one(&app.pool)
        .await
        .expect("leftovers");
        assert_eq!(
            leftovers, 0,
            "nothing named after the rebuild is left of {table}"
        );
    }
}
