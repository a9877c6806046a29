//! The ledger, the numbers held, the call counts, reset, and speed.

use std::time::Instant;

use backend::{Backend, RelationshipUpdate};
use domain::RelationshipStatus;
use sim::Change;

use crate::helpers::*;

#[tokio::test]
async fn the_ledger_lists_every_change_in_order_and_the_numbers_what_is_held() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.consent(&tenant(2), &["DE"]).await;
    test.backend
        .place_order(&order("a", &tenant(1), gb_numbers(0, 2)))
        .await
        .unwrap();
    test.backend
        .place_order(&order("b", &tenant(2), vec![oc_number("+4930123456")]))
        .await
        .unwrap();
    let mut changed = gb_numbers(0, 1).remove(0);
    changed.configuration.allow_tenant_address_update = false;
    changed.configuration.usage = domain::Usage::FirstPartyAppAssignment;
    test.backend
        .update_numbers(&tenant(1), &[changed])
        .await
        .unwrap();
    test.backend
        .release_numbers(&tenant(1), &[gb_numbers(1, 1).remove(0).telephone_number])
        .await
        .unwrap();
    test.backend
        .update_relationship(
            &tenant(2),
            &RelationshipUpdate {
                status: RelationshipStatus::AgreementSigned,
                comment: None,
            },
        )
        .await
        .unwrap();

    let ledger = test.control.ledger(0).await.unwrap();
    let kinds: Vec<(u64, &str, String)> = ledger
        .iter()
        .map(|entry| {
            let kind = match entry.change {
                Change::NumberUploaded { .. } => "uploaded",
                Change::NumberUpdated { .. } => "updated",
                Change::NumberReleased { .. } => "released",
                Change::RelationshipUpdated { .. } => "relationship",
            };
            let subject = entry
                .change
                .telephone_number()
                .map_or_else(|| entry.change.tenant_id().to_string(), ToString::to_string);
            (entry.sequence, kind, subject)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "uploaded", "+442000000000".to_string()),
            (2, "uploaded", "+442000000001".to_string()),
            (3, "uploaded", "+4930123456".to_string()),
            (4, "updated", "+442000000000".to_string()),
            (5, "released", "+442000000001".to_string()),
            (6, "relationship", tenant(2).to_string()),
        ]
    );
    assert_eq!(test.control.ledger(4).await.unwrap().len(), 2);

    let held = test.control.numbers(None).await.unwrap();
    let held: Vec<(String, String)> = held
        .iter()
        .map(|h| {
            (
                h.tenant_id.to_string(),
                h.number.telephone_number.to_string(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            (tenant(1).to_string(), "+442000000000".to_string()),
            (tenant(2).to_string(), "+4930123456".to_string()),
        ]
    );
}

#[tokio::test]
async fn the_ledger_reads_as_camel_case_json_with_its_kind() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .release_numbers(&tenant(1), &[number("+442000000000")])
        .await
        .unwrap();
    test.backend
        .place_order(&order("a", &tenant(1), gb_numbers(0, 1)))
        .await
        .unwrap();

    let body: serde_json::Value = reqwest::get(format!("{}/_sim/ledger", test.sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let entry = &body["value"][0];
    assert_eq!(entry["sequence"], 1);
    assert_eq!(entry["kind"], "numberUploaded");
    assert_eq!(entry["tenantId"], tenant(1).to_string());
    assert_eq!(entry["orderId"], "a");
    assert_eq!(entry["telephoneNumber"], "+442000000000");
    assert_eq!(entry["product"], "operatorConnect");
    assert!(entry["at"].is_string());
    assert_eq!(
        entry["configuration"]["choosableCapabilities"],
        serde_json::json!(["InboundCalling", "OutboundCalling"])
    );
    assert_eq!(entry["configuration"]["allowTenantAddressUpdate"], true);
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn calls_are_counted_by_route() {
    let test = spawn_sim().await;
    test.backend.consents().await.unwrap();
    test.backend.consents().await.unwrap();
    test.backend.capability_plans(&tenant(1)).await.unwrap();
    // The simulator's own API is not counted.
    test.control.ledger(0).await.unwrap();

    let stats = test.control.stats().await.unwrap();

    assert_eq!(stats.calls, 3);
    assert_eq!(stats.by_route["GET /consents"], 2);
    assert_eq!(
        stats.by_route["GET /tenants/{tenant_id}/capabilityPlans"],
        1
    );
}

#[tokio::test]
async fn reset_forgets_everything() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .place_order(&order("a", &tenant(1), gb_numbers(0, 1)))
        .await
        .unwrap();
    test.control
        .set_faults(&sim::Faults {
            rate_limit: Some(sim::RateLimit {
                limit: 100,
                window_seconds: 60,
            }),
            ..sim::Faults::default()
        })
        .await
        .unwrap();

    test.control.reset().await.unwrap();

    assert!(test.backend.consents().await.unwrap().is_empty());
    assert!(test.control.ledger(0).await.unwrap().is_empty());
    assert!(test.control.numbers(None).await.unwrap().is_empty());
    assert_eq!(test.control.faults().await.unwrap(), sim::Faults::default());
    assert!(test.backend.order("a").await.is_err());
}

#[tokio::test]
async fn thousands_of_numbers_go_through_in_seconds() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    let orders: Vec<_> = (0..50)
        .map(|n| order(&format!("bulk-{n}"), &tenant(1), gb_numbers(n * 100, 100)))
        .collect();

    let started = Instant::now();
    let mut placed = Vec::new();
    for order in &orders {
        placed.push(test.backend.place_order(order).await.unwrap());
    }
    let elapsed = started.elapsed();

    assert!(
        placed
            .iter()
            .all(|status| status.results.iter().all(|r| r.error.is_none()))
    );
    assert_eq!(test.control.numbers(None).await.unwrap().len(), 5_000);
    let rate = 5_000.0 / elapsed.as_secs_f64();
    println!("5000 numbers in {elapsed:?}: {rate:.0} numbers/s");
    assert!(rate > 2_000.0, "{rate:.0} numbers/s");
}
