//! Numbers: single-resource writes and reads, and the two batch actions.

use serde_json::{Value, json};
use tests::{account_body, number_body, spawn_app};

fn batch(account: &str, numbers: &[&str]) -> Value {
    json!({"numbers": numbers.iter().map(|n| number_body(account, n)).collect::<Vec<_>>()})
}

#[tokio::test]
async fn a_number_is_created_read_replaced_and_deleted() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let number = "+15105850321";

    let created = app
        .put_number("contoso", number, &number_body("contoso", number))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["telephoneNumber"], number);
    assert_eq!(created.body["accountName"], "contoso");
    assert_eq!(
        created.body["configuration"]["customSipHeader"],
        "contoso-commsgw"
    );
    assert_eq!(created.body["serviceProvisioningStatus"], "pending");

    let read = app.get_number("contoso", number).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.body, created.body,
        "a read right after the write sees it"
    );

    let mut changed = number_body("contoso", number);
    changed["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"] =
        json!(["InboundCalling", "OutboundCalling"]);
    changed["configuration"] = json!({});
    let replaced = app.put_number("contoso", number, &changed).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(
        replaced.body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"],
        json!(["InboundCalling", "OutboundCalling"])
    );
    assert!(
        replaced.body.get("configuration").is_none(),
        "the SIP header was removed"
    );

    assert_eq!(app.delete_number("contoso", number).await.status, 204);
    // It flows to the backend: it is deleted once the backend has released it.
    let deleting = app.get_number("contoso", number).await;
    assert_eq!(deleting.body["serviceProvisioningStatus"], "pending");
    app.backend_accepts(&[number]).await;
    app.get_number("contoso", number)
        .await
        .assert_error(404, "NotFound");
    app.delete_number("contoso", number)
        .await
        .assert_error(404, "NumberNotFound");
}

#[tokio::test]
async fn a_number_is_read_only_through_its_own_account() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    app.get_number("fabrikam", "+15105850321")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn a_number_belongs_to_one_account_at_a_time() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let refused = app
        .put_number(
            "fabrikam",
            "+15105850321",
            &number_body("fabrikam", "+15105850321"),
        )
        .await;
    refused.assert_error(409, "NumberInAnotherAccount");
    assert_eq!(refused.error_target(), Some("telephoneNumber"));
}

#[tokio::test]
async fn a_number_needs_an_existing_account() {
    let app = spawn_app().await;
    app.put_number(
        "ghost",
        "+15105850321",
        &number_body("ghost", "+15105850321"),
    )
    .await
    .assert_error(404, "AccountNotFound");
}

#[tokio::test]
async fn a_toll_free_number_needs_no_displayed_country_as_in_the_public_api() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let number = "+18005550100";
    let mut body = number_body("contoso", number);
    let accepted = app.put_number("contoso", number, &body).await;
    assert_eq!(accepted.status, 201, "{accepted:?}");
    // And one given is kept, in capitals.
    body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["displayedCountryCode"] =
        json!("us");
    let replaced = app.put_number("contoso", number, &body).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(
        replaced.body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["displayedCountryCode"],
        "US"
    );
}

#[tokio::test]
async fn teams_phone_mobile_numbers_take_no_custom_sip_header() {
    let app = spawn_app().await;
    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsPhoneMobile"] = json!({"enabled": true, "syncEnabled": true});
    app.put_account("contoso", &account).await;
    let body = json!({"telephoneNumber": "+447700900123", "accountName": "contoso",
        "serviceDetails": {"teamsPhoneMobile": {"enabled": true, "configuration": {
            "usage": "CallingUserAssignment", "choosableCapabilities": ["Mobile"]}}},
        "configuration": {"customSipHeader": "not-allowed"}});
    app.put_number("contoso", "+447700900123", &body)
        .await
        .assert_error(400, "CustomSipHeaderNotAllowed");
}

#[tokio::test]
async fn a_calling_user_number_without_an_address_is_accepted_as_the_public_api_does() {
    // The backend, not the API, refuses it later (DESIGN.md): the example itself has none.
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let created = app
        .put_number(
            "contoso",
            "+15105850321",
            &number_body("contoso", "+15105850321"),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
}

#[tokio::test]
async fn a_batch_upserts_every_number_and_reports_each() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers: Vec<String> = (0..100).map(|i| format!("+1510585{i:04}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();

    let answer = app
        .upsert_numbers("contoso", &batch("contoso", &refs))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let reported = answer.body["numbers"].as_array().expect("numbers");
    assert_eq!(reported.len(), 100);
    for (item, number) in reported.iter().zip(&numbers) {
        assert_eq!(item["telephoneNumber"], number.as_str());
        assert_eq!(item["serviceProvisioningStatus"], "pending");
    }
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        100
    );
    assert_eq!(app.get_number("contoso", &numbers[57]).await.status, 200);

    // Upserting again with one change updates that one and leaves the rest alone.
    let events = app.event_count().await;
    let mut again = batch("contoso", &refs);
    again["numbers"][3]["configuration"]["customSipHeader"] = json!("changed");
    let answer = app.upsert_numbers("contoso", &again).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["numbers"][3]["configuration"]["customSipHeader"],
        "changed"
    );
    assert_eq!(
        app.event_count().await,
        events + 1,
        "only the changed number has a new event"
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_item_writes_nothing() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.put_number(
        "fabrikam",
        "+15105850002",
        &number_body("fabrikam", "+15105850002"),
    )
    .await;
    let events = app.event_count().await;

    let answer = app
        .upsert_numbers(
            "contoso",
            &batch("contoso", &["+15105850001", "+15105850002", "+15105850003"]),
        )
        .await;
    answer.assert_error(409, "InvalidBatch");
    let details = answer.body["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 1);
    assert_eq!(details[0]["code"], "NumberInAnotherAccount");
    assert_eq!(details[0]["target"], "numbers[1].telephoneNumber");
    assert_eq!(app.event_count().await, events, "nothing was written");
    app.get_number("contoso", "+15105850001")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn a_batch_deletes_numbers_all_or_nothing() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers = ["+15105850001", "+15105850002", "+15105850003"];
    app.upsert_numbers("contoso", &batch("contoso", &numbers))
        .await;

    let events = app.event_count().await;
    let refused = app
        .delete_numbers("contoso", &["+15105850001", "+15105850999"])
        .await;
    refused.assert_error(404, "InvalidBatch");
    assert_eq!(
        refused.body["error"]["details"][0]["code"],
        "NumberNotFound"
    );
    assert_eq!(
        refused.body["error"]["details"][0]["target"],
        "numbers[1].telephoneNumber"
    );
    assert_eq!(app.event_count().await, events);

    let deleted = app.delete_numbers("contoso", &numbers[..2]).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.backend_accepts(&numbers[..2]).await;
    assert_eq!(app.get_number("contoso", numbers[0]).await.status, 404);
    assert_eq!(app.get_number("contoso", numbers[2]).await.status, 200);
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        1
    );
}
