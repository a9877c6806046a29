//! Every operation of the `Backend` trait, through the client.

use backend::{Backend, BackendError, Product, RelationshipUpdate};
use domain::{Capability, Comment, ConsentStatus, RelationshipStatus, Usage};
use sim::Change;

use crate::helpers::*;

#[tokio::test]
async fn consents_come_with_their_countries_contacts_and_status() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB", "FR"]).await;
    test.consent(&tenant(2), &["US"]).await;
    test.control
        .set_consent_status(&tenant(2), ConsentStatus::Suspended)
        .await
        .unwrap();

    let consents = test.backend.consents().await.unwrap();

    assert_eq!(consents.len(), 2);
    let first = &consents[0];
    assert_eq!(first.tenant_id, tenant(1));
    assert_eq!(first.status, ConsentStatus::Active);
    assert_eq!(first.countries, vec![country("GB"), country("FR")]);
    assert_eq!(first.contacts[0].full_name, "Ada Lovelace");
    assert_eq!(
        first.operator_id.as_ref().unwrap().as_str(),
        sim::OPERATOR_ID
    );
    assert_eq!(first.customer_relationship, None);
    assert_eq!(consents[1].status, ConsentStatus::Suspended);
}

#[tokio::test]
async fn a_consent_given_again_keeps_its_id_and_becomes_active() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.control
        .set_consent_status(&tenant(1), ConsentStatus::Removed)
        .await
        .unwrap();
    let before = test.backend.consents().await.unwrap().remove(0);

    test.consent(&tenant(1), &["GB", "DE"]).await;

    let after = test.backend.consents().await.unwrap().remove(0);
    assert_eq!(after.consent_id, before.consent_id);
    assert_eq!(after.status, ConsentStatus::Active);
    assert_eq!(after.countries, vec![country("GB"), country("DE")]);
}

#[tokio::test]
async fn the_customer_relationship_is_set_once_however_often_it_is_pushed() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    let update = RelationshipUpdate {
        status: RelationshipStatus::ConsentDeclined,
        comment: Some(Comment::parse("no budget this year").unwrap()),
    };

    test.backend
        .update_relationship(&tenant(1), &update)
        .await
        .unwrap();
    test.backend
        .update_relationship(&tenant(1), &update)
        .await
        .unwrap();

    let consent = test.backend.consents().await.unwrap().remove(0);
    assert_eq!(consent.customer_relationship, Some(update.clone()));
    let ledger = test.control.ledger(0).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0].change,
        Change::RelationshipUpdated {
            tenant_id: tenant(1),
            status: update.status,
            comment: update.comment,
        }
    );
}

#[tokio::test]
async fn declining_without_a_reason_or_for_an_unknown_tenant_is_refused_for_good() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    let declined = RelationshipUpdate {
        status: RelationshipStatus::ConsentDeclined,
        comment: None,
    };
    let error = test
        .backend
        .update_relationship(&tenant(1), &declined)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackendError::Permanent { code, .. } if code == "CommentRequired"),
        "{error:?}"
    );

    let acknowledged = RelationshipUpdate {
        status: RelationshipStatus::ConsentAcknowledged,
        comment: None,
    };
    let error = test
        .backend
        .update_relationship(&tenant(9), &acknowledged)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackendError::Permanent { code, .. } if code == "ConsentNotFound"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_order_uploads_its_numbers_and_can_be_read_back() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB", "US"]).await;
    let numbers = vec![oc_number("+442071234567"), oc_number("+14255550100")];

    let placed = test
        .backend
        .place_order(&order("order-1", &tenant(1), numbers.clone()))
        .await
        .unwrap();

    assert_eq!(placed.state, backend::OrderState::Completed);
    assert_eq!(placed.results.len(), 2);
    assert!(
        placed.results.iter().all(|r| r.error.is_none()),
        "{placed:?}"
    );
    assert_eq!(test.backend.order("order-1").await.unwrap(), placed);
    let held = test.control.numbers(Some(&tenant(1))).await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|h| h.order_id == "order-1"));
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let test = spawn_sim().await;
    let error = test.backend.order("nope").await.unwrap_err();
    assert!(
        matches!(&error, BackendError::Permanent { code, .. } if code == "OrderNotFound"),
        "{error:?}"
    );
}

#[tokio::test]
async fn updating_a_number_replaces_its_configuration_and_one_not_held_is_rejected() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .place_order(&order("o", &tenant(1), vec![oc_number("+442071234567")]))
        .await
        .unwrap();
    let mut changed = oc_number("+442071234567");
    changed.configuration.usage = Usage::ConferenceAssignment;
    changed.configuration.choosable_capabilities = vec![Capability::InboundCalling];

    let results = test
        .backend
        .update_numbers(&tenant(1), &[changed.clone(), oc_number("+442079999999")])
        .await
        .unwrap();

    assert_eq!(results[0].error, None);
    assert_eq!(results[1].error.as_ref().unwrap().code, "NumberNotFound");
    let held = test.control.numbers(Some(&tenant(1))).await.unwrap();
    assert_eq!(held[0].number, changed);
    let ledger = test.control.ledger(1).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert!(matches!(ledger[0].change, Change::NumberUpdated { .. }));
}

#[tokio::test]
async fn releasing_frees_held_numbers_and_accepts_numbers_not_held() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.backend
        .place_order(&order("o", &tenant(1), vec![oc_number("+442071234567")]))
        .await
        .unwrap();

    let results = test
        .backend
        .release_numbers(
            &tenant(1),
            &[number("+442071234567"), number("+442079999999")],
        )
        .await
        .unwrap();

    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    assert!(test.control.numbers(None).await.unwrap().is_empty());
    let ledger = test.control.ledger(0).await.unwrap();
    assert_eq!(ledger.len(), 2, "an upload and one release: {ledger:?}");
    assert_eq!(
        ledger[1].change,
        Change::NumberReleased {
            tenant_id: tenant(1),
            telephone_number: number("+442071234567"),
        }
    );
}

#[tokio::test]
async fn civic_addresses_come_with_their_locations() {
    let test = spawn_sim().await;
    test.civic_address(&tenant(1), "addr-1", "loc-1").await;
    test.civic_address(&tenant(2), "addr-2", "loc-2").await;

    let addresses = test.backend.civic_addresses(&tenant(1)).await.unwrap();

    assert_eq!(addresses.len(), 1);
    let address = &addresses[0];
    assert_eq!(address.id, id("addr-1"));
    assert_eq!(address.tenant_id, tenant(1));
    assert_eq!(address.report.city_or_town.as_deref(), Some("London"));
    assert_eq!(address.report.locations[0].id, id("loc-1"));
    assert_eq!(address.report.default_location_id, Some(id("loc-1")));
    assert!(
        test.backend
            .civic_addresses(&tenant(3))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_removed_civic_address_is_no_longer_reported() {
    let test = spawn_sim().await;
    test.civic_address(&tenant(1), "addr-1", "loc-1").await;

    test.control
        .remove_civic_address(&tenant(1), "addr-1")
        .await
        .unwrap();

    assert!(
        test.backend
            .civic_addresses(&tenant(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn capability_plans_offer_mobile_only_with_teams_phone_mobile() {
    let test = spawn_sim().await;

    let plans = test.backend.capability_plans(&tenant(1)).await.unwrap();

    assert!(plans.iter().any(|p| p.product == Product::OperatorConnect));
    for plan in &plans {
        assert_eq!(
            plan.capabilities.contains(&Capability::Mobile),
            plan.product == Product::TeamsPhoneMobile,
            "{plan:?}"
        );
    }
}

#[tokio::test]
async fn available_capabilities_follow_the_numbers_product() {
    let test = spawn_sim().await;
    test.consent(&tenant(1), &["GB"]).await;
    test.consent(&tenant(2), &["GB"]).await;
    test.backend
        .place_order(&order(
            "o1",
            &tenant(1),
            vec![mobile_number("+447700900001")],
        ))
        .await
        .unwrap();
    test.backend
        .place_order(&order("o2", &tenant(2), vec![oc_number("+442071234567")]))
        .await
        .unwrap();

    let available = test
        .backend
        .available_capabilities(
            &tenant(1),
            &[
                number("+447700900001"),
                number("+442079999999"),
                number("+442071234567"),
                number("+999123456"),
            ],
        )
        .await
        .unwrap();

    assert!(available[0].capabilities.contains(&Capability::Mobile));
    assert_eq!(
        available[1].capabilities,
        vec![Capability::InboundCalling, Capability::OutboundCalling]
    );
    assert_eq!(
        available[2].error.as_ref().unwrap().code,
        "NumberAlreadyTaken"
    );
    assert_eq!(
        available[3].error.as_ref().unwrap().code,
        "UnknownCountryCode"
    );
}
