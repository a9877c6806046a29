//! The per-number rejections of an upload order: the rules a real backend enforces.

use backend::{Backend, NumberResult};
use domain::{Capability, ConsentStatus, Usage};
use sim::rejection;

use crate::helpers::*;

fn code(result: &NumberResult) -> Option<&str> {
    result.error.as_ref().map(|e| e.code.as_str())
}

#[tokio::test]
async fn a_tenant_without_an_active_consent_gets_no_numbers() {
    let test = spawn_sim().await;
    test.consent(&tenant(2), &["GB"]).await;
    test.control
        .set_consent_status(&tenant(2), ConsentStatus::Suspended)
        .await
        .unwrap();

    let never_consented = test
        .backend
        .place_order(&order("o1", &tenant(1), vec![oc_number("+442071234567")]))
        .await
        .unwrap();
    let suspended = test
        .backend
        .place_order(&order("o2", &tenant(2), vec![oc_number("+442071234568")]))
        .await
        .unwrap();

    assert_eq!(
        code(&never_consented.results[0]),
        Some(rejection::NO_ACTIVE_CONSENT)
    );
    assert_eq!(
        code(&suspended.results[0]),
        Some(rejection::NO_ACTIVE_CONSENT)
    );
    assert!(test.control.ledger(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn each_number_of_an_order_is_judged_on_its_own() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB", "US"]).await;
    test.consent(&tenant(2), &["GB"]).await;
    test.civic_address(&tenant(1), "addr-1", "loc-1").await;
    test.civic_address(&tenant(2), "addr-2", "loc-2").await;
    test.backend
        .place_order(&order(
            "theirs",
            &tenant(2),
            vec![oc_number("+442070000001")],
        ))
        .await
        .unwrap();

    let mut with_location = oc_number("+442070000010");
    with_location.configuration.allow_tenant_address_update = false;
    with_location.configuration.civic_address_id = Some(id("addr-1"));
    with_location.configuration.location_id = Some(id("loc-1"));
    let mut missing_location = oc_number("+442070000011");
    missing_location.configuration.location_id = Some(id("loc-2"));
    let mut missing_address = oc_number("+442070000012");
    missing_address.configuration.civic_address_id = Some(id("addr-2"));
    let mut no_address = oc_number("+442070000013");
    no_address.configuration.allow_tenant_address_update = false;
    let mut mobile_on_operator_connect = oc_number("+442070000014");
    mobile_on_operator_connect
        .configuration
        .choosable_capabilities
        .push(Capability::Mobile);
    let mut conference_on_mobile = mobile_number("+447700900002");
    conference_on_mobile.configuration.usage = Usage::ConferenceAssignment;
    let mut shown_as_france = oc_number("+18005550100");
    shown_as_france.configuration.displayed_country_code = Some(country("FR"));

    let numbers = vec![
        oc_number("+442070000002"),
        with_location,
        oc_number("+14255550100"),
        oc_number("+33123456789"),
        oc_number("+999123456"),
        missing_location,
        missing_address,
        no_address,
        oc_number("+442070000001"),
        mobile_on_operator_connect,
        conference_on_mobile,
        shown_as_france,
    ];
    let status = test
        .backend
        .place_order(&order("mixed", &tenant(1), numbers))
        .await
        .unwrap();

    let codes: Vec<Option<&str>> = status.results.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            None,
            None,
            None,
            Some(rejection::COUNTRY_NOT_CONSENTED),
            Some(rejection::UNKNOWN_COUNTRY_CODE),
            Some(rejection::LOCATION_NOT_FOUND),
            Some(rejection::CIVIC_ADDRESS_NOT_FOUND),
            Some(rejection::CIVIC_ADDRESS_REQUIRED),
            Some(rejection::NUMBER_ALREADY_TAKEN),
            Some(rejection::CAPABILITY_NOT_AVAILABLE),
            Some(rejection::USAGE_NOT_AVAILABLE),
            Some(rejection::COUNTRY_NOT_CONSENTED),
        ]
    );
    assert!(
        status
            .results
            .iter()
            .all(|r| r.error.as_ref().is_none_or(|e| !e.message.is_empty()))
    );
    let held: Vec<String> = test
        .control
        .numbers(Some(&tenant(1)))
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.number.telephone_number.to_string())
        .collect();
    assert_eq!(held, ["+14255550100", "+442070000002", "+442070000010"]);
    let theirs = test.control.numbers(Some(&tenant(2))).await.unwrap();
    assert_eq!(theirs.len(), 1, "the other tenant keeps its number");
}

#[tokio::test]
async fn a_location_under_another_of_the_tenants_addresses_is_missing() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.civic_address(&tenant(1), "addr-1", "loc-1").await;
    test.civic_address(&tenant(1), "addr-2", "loc-2").await;
    let mut crossed = oc_number("+442070000001");
    crossed.configuration.civic_address_id = Some(id("addr-1"));
    crossed.configuration.location_id = Some(id("loc-2"));
    let mut location_only = oc_number("+442070000002");
    location_only.configuration.location_id = Some(id("loc-2"));

    let status = test
        .backend
        .place_order(&order("o", &tenant(1), vec![crossed, location_only]))
        .await
        .unwrap();

    assert_eq!(
        code(&status.results[0]),
        Some(rejection::LOCATION_NOT_FOUND)
    );
    assert_eq!(code(&status.results[1]), None);
}

#[tokio::test]
async fn an_update_breaking_a_rule_is_rejected_and_changes_nothing() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .place_order(&order("o", &tenant(1), vec![oc_number("+442070000001")]))
        .await
        .unwrap();
    let mut bad = oc_number("+442070000001");
    bad.configuration.location_id = Some(id("nowhere"));

    let results = test
        .backend
        .update_numbers(&tenant(1), &[bad])
        .await
        .unwrap();

    assert_eq!(code(&results[0]), Some(rejection::LOCATION_NOT_FOUND));
    let held = test.control.numbers(None).await.unwrap();
    assert_eq!(held[0].number, oc_number("+442070000001"));
    assert_eq!(test.control.ledger(0).await.unwrap().len(), 1);
}
