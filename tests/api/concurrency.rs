//! Concurrent writers: a race on one aggregate never loses a write and never answers 500.

use futures::future::join_all;
use serde_json::{Value, json};
use tests::{account_body, number_body, spawn_app};

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
    let mut accepted = 0;
    for answer in &answers {
        match answer.status {
            200 => accepted += 1,
            409 => assert_eq!(answer.error_code(), "Conflict", "{answer:?}"),
            other => panic!("a racing writer got {other}: {answer:?}"),
        }
    }
    let account = app.get_account("contoso").await;
    let count = account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"]
        .as_u64()
        .expect("numberCount");
    assert_eq!(
        count,
        accepted * 10,
        "every accepted write is there, none twice"
    );
    assert!(accepted >= 1);
    for (writer, answer) in answers.iter().enumerate() {
        let probe = format!("+1510{writer:03}0007");
        let expected = if answer.status == 200 { 200 } else { 404 };
        assert_eq!(
            app.get_number("contoso", &probe).await.status,
            expected,
            "{probe}"
        );
    }
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
