//! Each injected fault, and the `BackendError` the client makes of it.

use std::time::{Duration, Instant};

use backend::client::{HttpBackend, Timeouts};
use backend::{Backend, BackendError};
use sim::{DropConnection, Faults, RateLimit, ServerError, SimSettings, Slow, When};

use crate::helpers::*;

fn assert_transient(result: Result<impl std::fmt::Debug, BackendError>) -> Option<Duration> {
    transient(result).1
}

/// The reason and `retry_after` of a transient error.
fn transient(result: Result<impl std::fmt::Debug, BackendError>) -> (String, Option<Duration>) {
    match result {
        Err(BackendError::Transient {
            reason,
            retry_after,
        }) => (reason, retry_after),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

/// A connection that ended without an answer, not an HTTP status.
fn assert_no_answer(result: Result<impl std::fmt::Debug, BackendError>) {
    let (reason, _) = transient(result);
    assert!(reason.contains("no answer"), "{reason}");
}

#[tokio::test]
async fn beyond_the_rate_limit_calls_are_transient_with_retry_after() {
    let test = spawn_sim().await;
    test.control
        .set_faults(&Faults {
            rate_limit: Some(RateLimit {
                limit: 2,
                window_seconds: 60,
            }),
            ..Faults::default()
        })
        .await
        .unwrap();

    test.backend.consents().await.unwrap();
    test.backend.consents().await.unwrap();
    let retry_after = assert_transient(test.backend.consents().await);

    let retry_after = retry_after.expect("Retry-After is passed on");
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60),
        "{retry_after:?}"
    );
    let stats = test.control.stats().await.unwrap();
    assert_eq!((stats.calls, stats.rate_limited), (3, 1));
}

#[tokio::test]
async fn a_short_window_lets_calls_through_again_after_retry_after() {
    let test = spawn_sim().await;
    test.control
        .set_faults(&Faults {
            rate_limit: Some(RateLimit {
                limit: 1,
                window_seconds: 1,
            }),
            ..Faults::default()
        })
        .await
        .unwrap();
    test.backend.consents().await.unwrap();

    let retry_after = assert_transient(test.backend.consents().await).unwrap();
    tokio::time::sleep(retry_after).await;

    test.backend.consents().await.unwrap();
}

#[tokio::test]
async fn server_errors_are_transient_and_change_nothing() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.control
        .set_faults(&Faults {
            server_error: Some(ServerError {
                status: 503,
                when: When::Next(2),
            }),
            ..Faults::default()
        })
        .await
        .unwrap();
    let upload = order("o", &tenant(1), gb_numbers(0, 1));

    let (reason, _) = transient(test.backend.place_order(&upload).await);
    assert!(reason.contains("HTTP 503"), "{reason}");
    assert_transient(test.backend.place_order(&upload).await);
    assert!(test.control.ledger(0).await.unwrap().is_empty());
    assert_eq!(
        test.control
            .faults()
            .await
            .unwrap()
            .server_error
            .unwrap()
            .when,
        When::Next(0)
    );
    test.backend.place_order(&upload).await.unwrap();

    assert_eq!(test.control.ledger(0).await.unwrap().len(), 1);
    assert_eq!(test.control.stats().await.unwrap().server_errors, 2);
}

#[tokio::test]
async fn every_nth_call_fails() {
    let test = spawn_sim().await;
    test.control
        .set_faults(&Faults {
            server_error: Some(ServerError {
                status: 500,
                when: When::EveryNth(3),
            }),
            ..Faults::default()
        })
        .await
        .unwrap();

    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(test.backend.consents().await.is_ok());
    }

    assert_eq!(outcomes, [true, true, false, true, true, false]);
}

#[tokio::test]
async fn random_faults_repeat_for_the_same_seed() {
    async fn outcomes() -> Vec<bool> {
        let test = spawn_sim().await;
        test.control
            .set_faults(&Faults {
                server_error: Some(ServerError {
                    status: 502,
                    when: When::Random {
                        probability: 0.5,
                        seed: 2024,
                    },
                }),
                ..Faults::default()
            })
            .await
            .unwrap();
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            outcomes.push(test.backend.consents().await.is_ok());
        }
        outcomes
    }

    let first = outcomes().await;
    assert_eq!(first, outcomes().await);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_arrives_late() {
    let test = spawn_sim().await;
    test.control
        .set_faults(&Faults {
            slow: Some(Slow {
                delay_ms: 300,
                when: When::Always,
            }),
            ..Faults::default()
        })
        .await
        .unwrap();

    let started = Instant::now();
    test.backend.consents().await.unwrap();

    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_answer_later_than_the_timeout_is_transient_though_the_change_took_effect() {
    let test = spawn_sim_with(SimSettings::default(), Duration::from_millis(300)).await;
    test.consent(&tenant(1), &["GB"]).await;
    test.control
        .set_faults(&Faults {
            slow: Some(Slow {
                delay_ms: 5_000,
                when: When::Next(1),
            }),
            ..Faults::default()
        })
        .await
        .unwrap();
    let upload = order("o", &tenant(1), gb_numbers(0, 2));

    let started = Instant::now();
    let (reason, _) = transient(test.backend.place_order(&upload).await);
    assert!(reason.contains("timed out"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The order was placed; placing it again under its id returns it and uploads nothing more.
    let placed = test.backend.place_order(&upload).await.unwrap();
    assert!(placed.results.iter().all(|r| r.error.is_none()));
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_connection_dropped_before_the_call_is_transient_and_changes_nothing() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.control
        .set_faults(&Faults {
            drop_connection: Some(DropConnection {
                after_applying: false,
                when: When::Next(1),
            }),
            ..Faults::default()
        })
        .await
        .unwrap();
    let upload = order("o", &tenant(1), gb_numbers(0, 1));

    assert_no_answer(test.backend.place_order(&upload).await);
    assert!(test.control.ledger(0).await.unwrap().is_empty());

    test.backend.place_order(&upload).await.unwrap();
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 1);
    assert_eq!(test.control.stats().await.unwrap().dropped, 1);
}

#[tokio::test]
async fn a_connection_dropped_after_the_call_loses_only_the_answer() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.control
        .set_faults(&Faults {
            drop_connection: Some(DropConnection {
                after_applying: true,
                when: When::Next(1),
            }),
            ..Faults::default()
        })
        .await
        .unwrap();

    let released = test
        .backend
        .place_order(&order("o", &tenant(1), gb_numbers(0, 1)))
        .await;

    assert_no_answer(released);
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 1);
    let again = test
        .backend
        .place_order(&order("o", &tenant(1), gb_numbers(0, 1)))
        .await
        .unwrap();
    assert!(again.results[0].error.is_none());
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn dropping_every_call_keeps_the_simulator_serving_its_own_api() {
    let test = spawn_sim().await;
    test.control
        .set_faults(&Faults {
            drop_connection: Some(DropConnection {
                after_applying: false,
                when: When::Always,
            }),
            server_error: Some(ServerError {
                status: 500,
                when: When::Always,
            }),
            ..Faults::default()
        })
        .await
        .unwrap();

    for _ in 0..5 {
        assert_no_answer(test.backend.consents().await);
    }

    assert_eq!(test.control.stats().await.unwrap().dropped, 5);
    test.control.set_faults(&Faults::default()).await.unwrap();
    test.backend.consents().await.unwrap();
}

#[tokio::test]
async fn a_backend_that_does_not_listen_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let backend =
        HttpBackend::new(&format!("http://127.0.0.1:{port}"), Timeouts::default()).unwrap();

    let (reason, _) = transient(backend.consents().await);
    assert!(reason.contains("cannot connect"), "{reason}");
}

#[tokio::test]
async fn an_unknown_route_is_permanent() {
    let test = spawn_sim().await;
    let backend = HttpBackend::new(&format!("{}/v9", test.sim.url()), Timeouts::default()).unwrap();

    let error = backend.consents().await.unwrap_err();

    assert!(
        matches!(&error, BackendError::Permanent { code, .. } if code == "NotFound"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_invalid_fault_is_refused() {
    let test = spawn_sim().await;
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/faults", test.sim.url()))
        .json(&serde_json::json!({"serverError": {"status": 404}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/faults", test.sim.url()))
        .json(&serde_json::json!({"slow": {"delayMs": 10, "when": {"everyNTh": 2}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidBody");
}
