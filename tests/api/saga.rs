//! The provisioning saga and the backend sync against the backend simulator (in-process, real
//! HTTP): uploads, rejections, updates, releases on deletion, consents and civic addresses from
//! the backend, the rate limit, redelivery, and a run of 2,000 numbers through every fault the
//! simulator injects while the saga is killed and restarted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use domain::{Number, ProvisioningStatus, TenantId};
use reqwest::Method;
use serde_json::{Value, json};
use sim::{Change, DropConnection, Faults, RateLimit, ServerError, Slow, When};
use tests::nats::{TestStream, nats_url};
use tests::projections::ReadSide;
use tests::saga::{SagaOptions, SagaSide, accepted_number_body, rejected_number_body};
use tests::{TENANT, TestApp, account_body, spawn_app};

const WAIT: Duration = Duration::from_secs(30);

/// Aborts the task when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An nmp with a relay on a stream of its own, and the saga provisioning a simulator in which
/// `TENANT` has consented to US numbers. Fields drop in order: the saga first.
struct Setup {
    saga: SagaSide,
    _relay: Task,
    stream: TestStream,
    app: TestApp,
}

async fn setup(options: SagaOptions) -> Setup {
    let app = spawn_app().await;
    let stream = TestStream::new(&nats_url()).await;
    stream.ensure().await;
    let (relay, _) = stream.spawn_relay(&app.pool);
    let saga = SagaSide::start_with(&app, &stream, options).await;
    saga.consent(TENANT, &["US"]).await;
    Setup {
        saga,
        _relay: Task(relay),
        stream,
        app,
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("tenant")
}

fn numbers_body(bodies: Vec<Value>) -> Value {
    json!({ "numbers": bodies })
}

/// How many times the simulator's ledger records each kind of change per number.
async fn ledger_counts(saga: &SagaSide) -> HashMap<(String, &'static str), usize> {
    let mut counts = HashMap::new();
    for entry in saga.control.ledger(0).await.expect("ledger") {
        let kind = match &entry.change {
            Change::NumberUploaded { .. } => "uploaded",
            Change::NumberUpdated { .. } => "updated",
            Change::NumberReleased { .. } => "released",
            Change::RelationshipUpdated { .. } => continue,
        };
        let number = entry
            .change
            .telephone_number()
            .expect("a number")
            .to_string();
        *counts.entry((number, kind)).or_default() += 1;
    }
    counts
}

async fn held_numbers(saga: &SagaSide) -> BTreeMap<String, String> {
    saga.control
        .numbers(None)
        .await
        .expect("numbers")
        .into_iter()
        .map(|held| {
            (
                held.number.telephone_number.to_string(),
                held.tenant_id.to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_uploaded_number_becomes_synced_and_the_backend_holds_it() {
    let s = setup(SagaOptions::default()).await;
    let number = "+15105850001";
    assert_eq!(
        s.app
            .put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let created = s
        .app
        .put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["serviceProvisioningStatus"], "pending");

    let synced = s
        .app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    assert_eq!(synced.body["serviceProvisioningErrors"], json!([]));
    let held = s.saga.control.numbers(None).await.expect("numbers");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].tenant_id, tenant(TENANT));
    assert_eq!(held[0].number.telephone_number.as_str(), number);
    assert_eq!(
        held[0].number.assignment_status,
        Some(domain::AssignmentStatus::Assigned)
    );
    // The account has no resource of its own in the backend: in step once seen.
    s.saga.wait_until_settled(&s.app, WAIT).await;
    let account = s.app.get_account("contoso").await;
    assert_eq!(account.body["serviceProvisioningStatus"], "synced");
}

#[tokio::test]
async fn a_rejected_number_fails_with_the_backends_reason() {
    let s = setup(SagaOptions::default()).await;
    let number = "+15105850002";
    s.app.put_account("contoso", &account_body("contoso")).await;
    s.app
        .put_number("contoso", number, &rejected_number_body("contoso", number))
        .await;

    let failed = s
        .app
        .wait_for_number_status("contoso", number, "failed", WAIT)
        .await;
    let errors = failed.body["serviceProvisioningErrors"]
        .as_array()
        .expect("errors");
    assert_eq!(errors.len(), 1, "{failed:?}");
    assert_eq!(errors[0]["code"], "CivicAddressRequired");
    assert!(!errors[0]["message"].as_str().unwrap_or_default().is_empty());
    assert!(held_numbers(&s.saga).await.is_empty());
}

#[tokio::test]
async fn a_change_to_a_held_number_is_an_update_not_a_second_upload() {
    let s = setup(SagaOptions::default()).await;
    let number = "+15105850003";
    s.app.put_account("contoso", &account_body("contoso")).await;
    s.app
        .put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    s.app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;

    let mut changed = accepted_number_body("contoso", number);
    changed["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"] =
        json!(["InboundCalling", "OutboundCalling"]);
    let replaced = s.app.put_number("contoso", number, &changed).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body["serviceProvisioningStatus"], "pending");
    s.app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;

    let held = s.saga.control.numbers(None).await.expect("numbers");
    assert_eq!(
        held[0].number.configuration.choosable_capabilities,
        vec![
            domain::Capability::InboundCalling,
            domain::Capability::OutboundCalling
        ]
    );
    let counts = ledger_counts(&s.saga).await;
    assert_eq!(counts.get(&(number.to_string(), "uploaded")), Some(&1));
    assert_eq!(counts.get(&(number.to_string(), "updated")), Some(&1));
}

#[tokio::test]
async fn a_number_the_backend_lost_is_uploaded_again_on_its_next_change() {
    let s = setup(SagaOptions::default()).await;
    let number = "+15105850005";
    s.app.put_account("contoso", &account_body("contoso")).await;
    s.app
        .put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    s.app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    // The backend forgets everything (its consent too, given again).
    s.saga.control.reset().await.expect("reset");
    s.saga.consent(TENANT, &["US"]).await;

    let mut changed = accepted_number_body("contoso", number);
    changed["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"] =
        json!(["InboundCalling", "OutboundCalling"]);
    s.app.put_number("contoso", number, &changed).await;
    let synced = s
        .app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    assert_eq!(synced.body["serviceProvisioningErrors"], json!([]));
    let held = held_numbers(&s.saga).await;
    assert_eq!(held.get(number).map(String::as_str), Some(TENANT));
    let counts = ledger_counts(&s.saga).await;
    assert_eq!(counts.get(&(number.to_string(), "uploaded")), Some(&1));
}

#[tokio::test]
async fn deleting_a_number_releases_it_and_completes_when_the_backend_confirms() {
    let s = setup(SagaOptions::default()).await;
    let number = "+15105850004";
    s.app.put_account("contoso", &account_body("contoso")).await;
    s.app
        .put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    s.app
        .wait_for_number_status("contoso", number, "synced", WAIT)
        .await;

    let deleted = s.app.delete_number("contoso", number).await;
    assert!((200..300).contains(&deleted.status), "{deleted:?}");
    s.app
        .wait_for_status(&tests::number_path("contoso", number), 404, WAIT)
        .await;
    assert!(held_numbers(&s.saga).await.is_empty());
    let counts = ledger_counts(&s.saga).await;
    assert_eq!(counts.get(&(number.to_string(), "released")), Some(&1));
    // The number is free again: another account may take it.
    let account = s.app.get_account("contoso").await;
    assert_eq!(account.status, 200);
}

#[tokio::test]
async fn deleting_an_account_with_its_numbers_releases_them_then_the_account() {
    let s = setup(SagaOptions::default()).await;
    s.app.put_account("contoso", &account_body("contoso")).await;
    let numbers = ["+15105850011", "+15105850012", "+15105850013"];
    let answer = s
        .app
        .upsert_numbers(
            "contoso",
            &numbers_body(vec![
                accepted_number_body("contoso", numbers[0]),
                accepted_number_body("contoso", numbers[1]),
                rejected_number_body("contoso", numbers[2]),
            ]),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    s.saga.wait_until_settled(&s.app, WAIT).await;
    assert_eq!(held_numbers(&s.saga).await.len(), 2);

    let deleted = s.app.delete_account("contoso", true).await;
    assert!((200..300).contains(&deleted.status), "{deleted:?}");
    s.app.wait_for_status("/accounts/contoso", 404, WAIT).await;
    for number in numbers {
        let gone = s.app.get_number("contoso", number).await;
        assert_eq!(gone.status, 404, "{gone:?}");
    }
    assert!(held_numbers(&s.saga).await.is_empty());
    s.saga.wait_until_settled(&s.app, WAIT).await;
}

#[tokio::test]
async fn a_consent_from_the_backend_leads_to_synced_numbers_end_to_end() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    let mut saga = SagaSide::start(&app, &read.stream).await;
    let customer = "5b0e4a2c-7d51-4c1e-9f3a-0c2d8e6f1a47";
    // The enterprise consents in Teams and has an emergency address there.
    saga.consent(customer, &["US"]).await;
    let address = saga
        .control
        .put_civic_address(
            &tenant(customer),
            &sim::CivicAddressInput {
                country: Some(domain::CountryCode::parse("US").expect("country")),
                house_number: Some("1".to_string()),
                street_name: Some("Microsoft Way".to_string()),
                city_or_town: Some("Redmond".to_string()),
                postal_or_zip_code: Some("98052".to_string()),
                locations: vec![sim::LocationInput {
                    description: Some("Floor 1".to_string()),
                    is_default: true,
                    elin: Some("ELIN1".to_string()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await
        .expect("address");
    saga.start_sync(Duration::from_millis(100));

    // The sync records the consent: it shows in the API.
    let consent = app
        .wait_for_status(
            &format!("/teamsRequestsForInformation/{customer}"),
            200,
            WAIT,
        )
        .await;
    assert_eq!(consent.body["status"], "active");

    // The operator signs the agreement: the saga pushes it to the backend.
    let signed = app
        .patch_consent(
            customer,
            &json!({"customerRelationship": {"status": "AgreementSigned", "comment": "contract 42"}}),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let consents = saga.backend.consents().await.expect("consents");
        let pushed = consents
            .iter()
            .find(|c| c.tenant_id.as_str() == customer)
            .and_then(|c| c.customer_relationship.clone());
        if pushed.as_ref().map(|r| r.status) == Some(domain::RelationshipStatus::AgreementSigned) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relationship never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + WAIT;
    while app.get_consent(customer).await.body["serviceProvisioningStatus"] != "synced" {
        assert!(
            Instant::now() < deadline,
            "the consent's push is not recorded synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The account for that tenant sees its civic address and its numbers sync.
    let mut account = account_body("fabrikam");
    account["serviceDetails"]["teamsTenantId"] = json!(customer);
    assert_eq!(app.put_account("fabrikam", &account).await.status, 201);
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = app
            .send(app.request(Method::GET, "/accounts/fabrikam/teamsCivicAddresses"))
            .await;
        if listed.body["value"][0]["id"] == address.id.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "civic address not listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let number = "+15105850021";
    let mut body = rejected_number_body("fabrikam", number);
    body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["civicAddressId"] =
        json!(address.id.as_str());
    assert_eq!(app.put_number("fabrikam", number, &body).await.status, 201);
    app.wait_for_number_status("fabrikam", number, "synced", WAIT)
        .await;
    let held = saga
        .control
        .numbers(Some(&tenant(customer)))
        .await
        .expect("numbers");
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0]
            .number
            .configuration
            .civic_address_id
            .as_ref()
            .map(|id| id.as_str()),
        Some(address.id.as_str())
    );

    // The enterprise removes the address in Teams: the sync records that too.
    saga.control
        .remove_civic_address(&tenant(customer), address.id.as_str())
        .await
        .expect("removed");
    app.wait_for_status(
        &format!("/accounts/fabrikam/teamsCivicAddresses/{}", address.id),
        404,
        WAIT,
    )
    .await;
    saga.kill();
}

#[tokio::test]
async fn a_failed_number_is_retried_on_request_and_listed_until_then() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    let saga = SagaSide::start(&app, &read.stream).await;
    let number = "+15105850031";
    // No consent yet: the backend rejects the upload.
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    let failed = app
        .wait_for_number_status("contoso", number, "failed", WAIT)
        .await;
    assert_eq!(
        failed.body["serviceProvisioningErrors"][0]["code"],
        "NoActiveConsent"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let failures = app
            .send(app.request(Method::GET, "/provisioning/failures"))
            .await;
        if failures.body["value"][0]["id"] == number {
            assert_eq!(failures.body["value"][0]["kind"], "number");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failure is not listed: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    saga.consent(TENANT, &["US"]).await;
    let retried = app
        .send(app.request(
            Method::POST,
            &format!(
                "{}:retryProvisioning",
                tests::number_path("contoso", number)
            ),
        ))
        .await;
    assert_eq!(retried.status, 200, "{retried:?}");
    app.wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    assert_eq!(held_numbers(&saga).await.len(), 1);
}

#[tokio::test]
async fn the_saga_keeps_to_its_rate_limit_without_a_429() {
    // 1,100 calls a minute, and a backend that allows 20 in any second (1,200 a minute): the
    // window is short, so the saga keeps a little further below it than the 1% it keeps
    // below a backend's minute, which leaves room for jitter on the way.
    let s = setup(SagaOptions {
        calls_per_minute: 1100,
        order_delay: Duration::ZERO,
        ..SagaOptions::default()
    })
    .await;
    s.saga
        .control
        .set_faults(&Faults {
            rate_limit: Some(RateLimit {
                limit: 20,
                window_seconds: 1,
            }),
            ..Faults::default()
        })
        .await
        .expect("faults");
    // 40 accounts on 40 tenants without consent: one order (one call) each.
    let started = Instant::now();
    for i in 0..40 {
        let name = format!("acct{i}");
        let mut account = account_body(&name);
        account["serviceDetails"]["teamsTenantId"] =
            json!(format!("00000000-0000-4000-8000-{i:012}"));
        s.app.put_account(&name, &account).await;
        let bodies = (0..5)
            .map(|j| accepted_number_body(&name, &format!("+1510586{i:02}{j:02}")))
            .collect();
        let answer = s.app.upsert_numbers(&name, &numbers_body(bodies)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    s.saga.wait_until_settled(&s.app, WAIT).await;
    let stats = s.saga.control.stats().await.expect("stats");
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert_eq!(s.saga.budget.rate_limited(), 0);
    let calls = s.saga.budget.calls();
    assert!(calls >= 40, "{calls} calls");
    // Spaced 54.5 ms apart (and 1%): the calls took at least that long.
    assert!(
        started.elapsed() >= Duration::from_micros(54_500 * (calls - 1)),
        "{calls} calls in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_redelivered_stream_places_no_order_twice() {
    let mut s = setup(SagaOptions::default()).await;
    s.app.put_account("contoso", &account_body("contoso")).await;
    let numbers: Vec<String> = (0..150).map(|i| format!("+1510587{i:04}")).collect();
    for chunk in numbers.chunks(100) {
        let bodies = chunk
            .iter()
            .map(|n| accepted_number_body("contoso", n))
            .collect();
        s.app.upsert_numbers("contoso", &numbers_body(bodies)).await;
    }
    s.saga.wait_until_settled(&s.app, WAIT).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_orders")
        .fetch_one(&s.app.pool)
        .await
        .expect("orders");
    let placed_before = s
        .saga
        .control
        .stats()
        .await
        .expect("stats")
        .by_route
        .clone();

    // Every event again: a fresh durable consumer starts from the stream's beginning.
    s.saga.kill();
    let stream = s
        .stream
        .jetstream
        .get_stream(s.stream.settings.stream_name())
        .await
        .expect("stream");
    stream
        .delete_consumer(saga::CONSUMER)
        .await
        .expect("consumer deleted");
    s.saga.restart();
    let deadline = Instant::now() + WAIT;
    loop {
        let info = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(saga::CONSUMER)
            .await;
        if let Ok(mut consumer) = info
            && let Ok(info) = consumer.info().await
            && info.num_pending == 0
            && info.num_ack_pending == 0
            && info.delivered.stream_sequence > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the stream was not redelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.saga.wait_until_settled(&s.app, WAIT).await;

    let orders_after: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_orders")
        .fetch_one(&s.app.pool)
        .await
        .expect("orders");
    assert!(
        orders >= 2,
        "150 numbers need two orders at least, not {orders}"
    );
    assert_eq!(orders_after, orders, "no order written again");
    let placed_after = s.saga.control.stats().await.expect("stats").by_route;
    assert_eq!(
        placed_before.get("PUT /orders/{order_id}"),
        placed_after.get("PUT /orders/{order_id}"),
        "no order placed again"
    );
    let counts = ledger_counts(&s.saga).await;
    assert_eq!(counts.len(), 150);
    assert!(counts.values().all(|&count| count == 1));
}

/// The issue's reliability test: 2,000 numbers (every tenth rejected by the backend), the
/// simulator injecting each fault kind in turn, the saga killed and restarted at random, some
/// numbers updated and some deleted meanwhile. In the end every number is synced or failed
/// with a reason, the simulator holds exactly nmp's live synced numbers, none was uploaded
/// twice, none is held after its deletion, and no change was in two orders.
#[tokio::test]
async fn two_thousand_numbers_survive_every_fault_and_restarts() {
    let mut s = setup(SagaOptions {
        order_delay: Duration::from_millis(30),
        request_timeout: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        ..SagaOptions::default()
    })
    .await;
    s.app.put_account("contoso", &account_body("contoso")).await;
    let numbers: Vec<String> = (0..2000).map(|i| format!("+1510600{i:04}")).collect();
    let rejected = |i: usize| i.is_multiple_of(10);

    // The faults, in turn.
    let control = s.saga.control.clone();
    let faults = Task(tokio::spawn(async move {
        let random = |seed: u64| When::Random {
            probability: 0.3,
            seed,
        };
        let next = When::Next(2);
        let phases = [
            Faults {
                rate_limit: Some(RateLimit {
                    limit: 1,
                    window_seconds: 1,
                }),
                ..Faults::default()
            },
            Faults {
                server_error: Some(ServerError {
                    status: 503,
                    when: next,
                }),
                ..Faults::default()
            },
            Faults {
                drop_connection: Some(DropConnection {
                    after_applying: false,
                    when: next,
                }),
                ..Faults::default()
            },
            Faults {
                drop_connection: Some(DropConnection {
                    after_applying: true,
                    when: next,
                }),
                ..Faults::default()
            },
            Faults {
                slow: Some(Slow {
                    delay_ms: 800,
                    when: next,
                }),
                ..Faults::default()
            },
            Faults {
                server_error: Some(ServerError {
                    status: 500,
                    when: random(5),
                }),
                drop_connection: Some(DropConnection {
                    after_applying: true,
                    when: random(6),
                }),
                slow: Some(Slow {
                    delay_ms: 800,
                    when: random(7),
                }),
                rate_limit: Some(RateLimit {
                    limit: 5,
                    window_seconds: 1,
                }),
            },
        ];
        // Each phase lasts until it has dealt its faults a few times (or for 1.5 s at most),
        // so every kind is seen however the saga's calls fall.
        let dealt = |stats: &sim::Stats| {
            [
                stats.rate_limited,
                stats.server_errors,
                stats.dropped,
                stats.delayed,
            ]
        };
        for (index, phase) in phases.iter().enumerate().cycle() {
            let Ok(before) = control.stats().await else {
                return;
            };
            let _ = control.set_faults(phase).await;
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(1500) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(now) = control.stats().await else {
                    return;
                };
                let kinds: &[usize] = match index {
                    0 => &[0],
                    1 => &[1],
                    2 | 3 => &[2],
                    4 => &[3],
                    _ => &[0, 1, 2, 3],
                };
                let (was, is) = (dealt(&before), dealt(&now));
                if kinds.iter().all(|&k| is[k] >= was[k] + 2) {
                    break;
                }
            }
        }
    }));

    let random_below = |n: u64| (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64;
    let mut deleted = HashSet::new();
    let mut kills = 0;
    for (batch, chunk) in numbers.chunks(100).enumerate() {
        let bodies = chunk
            .iter()
            .enumerate()
            .map(|(offset, number)| {
                if rejected(batch * 100 + offset) {
                    rejected_number_body("contoso", number)
                } else {
                    accepted_number_body("contoso", number)
                }
            })
            .collect();
        let answer = s.app.upsert_numbers("contoso", &numbers_body(bodies)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        if batch % 3 == 2 {
            s.saga.kill();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(random_below(300))).await;
            s.saga.restart();
        }
        if batch == 8 || batch == 14 {
            // Delete 40 of the numbers so far: some synced, some pending, some failed.
            let victims: Vec<&str> = (0..40)
                .map(|k| numbers[(batch * 37 + k * 13) % (batch * 100)].as_str())
                .filter(|n| deleted.insert(n.to_string()))
                .collect();
            let answer = s.app.delete_numbers("contoso", &victims).await;
            assert!((200..300).contains(&answer.status), "{answer:?}");
        }
        if batch == 11 {
            // Change 50 accepted numbers, wherever their upload stands.
            let bodies: Vec<Value> = (0..50)
                .map(|k| numbers[k * 20 + 3].as_str())
                .filter(|n| !deleted.contains(*n))
                .map(|n| {
                    let mut body = accepted_number_body("contoso", n);
                    body["serviceDetails"]["teamsOperatorConnect"]["configuration"]
                        ["choosableCapabilities"] = json!(["InboundCalling", "OutboundCalling"]);
                    body
                })
                .collect();
            let answer = s.app.upsert_numbers("contoso", &numbers_body(bodies)).await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(random_below(150))).await;
    }
    // A few more kills while the saga works through the backlog.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500 + random_below(1000))).await;
        s.saga.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(random_below(300))).await;
        s.saga.restart();
    }
    drop(faults);
    s.saga
        .control
        .set_faults(&Faults::default())
        .await
        .expect("faults off");
    s.saga
        .wait_until_settled(&s.app, Duration::from_secs(90))
        .await;

    // Every number synced, or failed with the backend's reason; deleted ones gone.
    let store = s.app.event_store();
    let loaded = store.load_many::<Number>(&numbers).await.expect("numbers");
    let mut live_synced = BTreeMap::new();
    for (i, (number, loaded)) in numbers.iter().zip(&loaded).enumerate() {
        let Some(state) = &loaded.aggregate.state else {
            assert!(deleted.contains(number), "{number} vanished");
            continue;
        };
        assert!(
            !deleted.contains(number),
            "{number} was deleted but is still there"
        );
        if rejected(i) {
            assert_eq!(state.sync.status, ProvisioningStatus::Failed, "{number}");
            assert_eq!(state.sync.errors.len(), 1, "{number}");
            assert_eq!(
                state.sync.errors[0].code, "CivicAddressRequired",
                "{number}"
            );
        } else {
            assert_eq!(
                state.sync.status,
                ProvisioningStatus::Synced,
                "{number}: {:?}",
                state.sync
            );
            live_synced.insert(number.clone(), TENANT.to_string());
        }
    }
    // The backend holds exactly nmp's live synced numbers, none after its deletion.
    let held = held_numbers(&s.saga).await;
    assert_eq!(held.len(), live_synced.len());
    assert!(
        held == live_synced,
        "the simulator's numbers differ from nmp's"
    );
    // None uploaded twice.
    let counts = ledger_counts(&s.saga).await;
    let twice: Vec<_> = counts
        .iter()
        .filter(|((_, kind), count)| *kind == "uploaded" && **count > 1)
        .collect();
    assert!(twice.is_empty(), "uploaded more than once: {twice:?}");
    // No change in two orders, and no number in two orders at all (no upload was repeated).
    let repeated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT telephone_number FROM saga_order_items \
          GROUP BY telephone_number HAVING count(*) > 1) r",
    )
    .fetch_one(&s.app.pool)
    .await
    .expect("orders");
    assert_eq!(repeated, 0);
    let stats = s.saga.control.stats().await.expect("stats");
    assert!(kills >= 6);
    assert!(
        stats.rate_limited > 0 && stats.server_errors > 0 && stats.dropped > 0 && stats.delayed > 0,
        "every fault was dealt: {stats:?}"
    );
    assert!(stats.largest_batch <= 100, "{stats:?}");
}

#[tokio::test]
async fn numbers_of_an_account_without_a_teams_tenant_fail_until_it_has_one_then_are_pushed() {
    let app = spawn_app().await;
    let read = ReadSide::start(&app).await;
    let saga = SagaSide::start(&app, &read.stream).await;
    saga.consent(TENANT, &["US"]).await;
    let number = "+15105850041";
    // As the public API allows: Operator Connect with flow-through, and no tenant yet.
    let body = tests::account_body_without_tenant("contoso");
    assert_eq!(app.put_account("contoso", &body).await.status, 201);
    app.put_number("contoso", number, &accepted_number_body("contoso", number))
        .await;
    let failed = app
        .wait_for_number_status("contoso", number, "failed", WAIT)
        .await;
    let error = &failed.body["serviceProvisioningErrors"][0];
    assert_eq!(error["code"], "TeamsTenantIdRequired", "{failed:?}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("the account has no Teams tenant")),
        "{failed:?}"
    );
    assert!(
        held_numbers(&saga).await.is_empty(),
        "nothing reached the backend"
    );

    // The tenant is set under the waiting number, then the operator retries.
    let set = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(set.status, 200, "{set:?}");
    let retried = app
        .send(app.request(
            Method::POST,
            &format!(
                "{}:retryProvisioning",
                tests::number_path("contoso", number)
            ),
        ))
        .await;
    assert_eq!(retried.status, 200, "{retried:?}");
    app.wait_for_number_status("contoso", number, "synced", WAIT)
        .await;
    assert_eq!(held_numbers(&saga).await.len(), 1);
    // Once numbers live in the tenant, it cannot change.
    let mut other = account_body("contoso");
    other["serviceDetails"]["teamsTenantId"] = json!("0f3a4b5c-6d7e-4f80-9a1b-2c3d4e5f6a7b");
    app.put_account("contoso", &other)
        .await
        .assert_error(409, "TenantChangeNotAllowed");
}
