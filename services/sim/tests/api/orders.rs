//! Upload orders: idempotent by id, asynchronous, at most 100 numbers.

use std::time::Duration;

use backend::{Backend, BackendError, OrderState};
use sim::{Change, RuntimeSettings, SimSettings};

use crate::helpers::*;

#[tokio::test]
async fn placing_an_order_twice_uploads_each_number_once() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    let first = order("order-1", &tenant(1), gb_numbers(0, 3));

    let placed = test.backend.place_order(&first).await.unwrap();
    let again = test.backend.place_order(&first).await.unwrap();
    // Under the same id, even a different body returns the order already placed.
    let different = order("order-1", &tenant(1), gb_numbers(10, 2));
    let different = test.backend.place_order(&different).await.unwrap();

    assert_eq!(again, placed);
    assert_eq!(different, placed);
    let ledger = test.control.ledger(0).await.unwrap();
    assert_eq!(ledger.len(), 3);
    assert!(ledger.iter().all(
        |e| matches!(&e.change, Change::NumberUploaded { order_id, .. } if order_id == "order-1")
    ));
    assert_eq!(test.control.numbers(None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn uploading_a_number_again_unchanged_records_nothing() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .place_order(&order("a", &tenant(1), gb_numbers(0, 2)))
        .await
        .unwrap();

    let status = test
        .backend
        .place_order(&order("b", &tenant(1), gb_numbers(0, 2)))
        .await
        .unwrap();

    assert!(status.results.iter().all(|r| r.error.is_none()));
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_order_completes_after_the_delay_set_at_start() {
    let test = spawn_sim_with(
        SimSettings {
            order_delay: Duration::from_millis(300),
        },
        Duration::from_secs(5),
    )
    .await;
    test.consent(&tenant(1), &["GB"]).await;

    let placed = test
        .backend
        .place_order(&order("slow", &tenant(1), gb_numbers(0, 2)))
        .await
        .unwrap();

    assert_eq!(placed.state, OrderState::InProgress);
    assert!(placed.results.is_empty());
    assert_eq!(
        test.backend.order("slow").await.unwrap().state,
        OrderState::InProgress
    );
    assert!(test.control.ledger(0).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let completed = test.backend.order("slow").await.unwrap();
    assert_eq!(completed.state, OrderState::Completed);
    assert_eq!(completed.results.len(), 2);
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_delay_set_at_run_time_applies_to_the_next_orders() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;

    let settings = test
        .control
        .set_settings(&RuntimeSettings {
            order_delay_ms: 200,
        })
        .await
        .unwrap();
    let placed = test
        .backend
        .place_order(&order("o", &tenant(1), gb_numbers(0, 1)))
        .await
        .unwrap();

    assert_eq!(settings.order_delay_ms, 200);
    assert_eq!(placed.state, OrderState::InProgress);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        test.backend.order("o").await.unwrap().state,
        OrderState::Completed
    );
    let ledger = test.control.ledger(0).await.unwrap();
    assert_eq!(ledger.len(), 1);
    // Recorded when the order fell due, not when it was looked at.
    let lag = chrono::Utc::now() - ledger[0].at;
    assert!(lag >= chrono::Duration::milliseconds(50), "{lag}");
}

#[tokio::test]
async fn more_than_a_hundred_numbers_in_one_call_is_refused_for_good() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;

    let error = test
        .backend
        .place_order(&order("big", &tenant(1), gb_numbers(0, 101)))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, BackendError::Permanent { code, .. } if code == "InvalidNumberCount"),
        "{error:?}"
    );
    let error = test
        .backend
        .update_numbers(&tenant(1), &gb_numbers(0, 101))
        .await
        .unwrap_err();
    assert!(matches!(error, BackendError::Permanent { .. }), "{error:?}");
    assert_eq!(test.control.stats().await.unwrap().largest_batch, 101);
}
