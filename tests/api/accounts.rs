//! Accounts: create, read, replace, delete, and the rules that tie them to their numbers.

use serde_json::json;
use tests::{TENANT, account_body, number_body, spawn_app};

#[tokio::test]
async fn an_account_is_created_read_replaced_and_deleted() {
    let app = spawn_app().await;

    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["name"], "contoso");
    assert_eq!(created.body["serviceDetails"]["teamsTenantId"], TENANT);
    assert_eq!(
        created.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        0
    );
    assert_eq!(created.body["serviceProvisioningStatus"], "pending");
    assert_eq!(created.body["serviceProvisioningErrors"], json!([]));

    let read = app.get_account("contoso").await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.body, created.body,
        "a read right after the write sees it"
    );
    assert_eq!(read.etag(), created.etag());

    let mut changed = account_body("contoso");
    changed["serviceDetails"]["teamsPhoneMobile"] = json!({"enabled": true, "syncEnabled": false});
    let replaced = app.put_account("contoso", &changed).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(
        replaced.body["serviceDetails"]["teamsPhoneMobile"]["enabled"],
        true
    );
    assert_ne!(replaced.etag(), created.etag());

    let deleted = app.delete_account("contoso", false).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
}

#[tokio::test]
async fn replacing_an_account_with_the_same_settings_changes_nothing() {
    let app = spawn_app().await;
    let first = app.put_account("contoso", &account_body("contoso")).await;
    let events = app.event_count().await;
    let again = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.etag(), first.etag());
    assert_eq!(
        app.event_count().await,
        events,
        "no event for an unchanged account"
    );
}

#[tokio::test]
async fn an_account_without_sync_enabled_services_is_synced_at_once() {
    let app = spawn_app().await;
    let body = json!({"name": "dr-only", "serviceDetails": {
        "teamsDirectRouting": {"enabled": true, "syncEnabled": false,
            "configuration": {"callScreening": true, "subdomain": "contoso",
                "subdomainTokens": {"region1Token": "abc=", "region2Token": "def="}}}}});
    let created = app.put_account("dr-only", &body).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["serviceProvisioningStatus"], "synced");
    let dr = &created.body["serviceDetails"]["teamsDirectRouting"];
    assert_eq!(dr["configuration"]["subdomain"], "contoso");
    assert_eq!(dr["subdomainStatus"], "notProvisioned");
}

#[tokio::test]
async fn an_account_with_numbers_is_deleted_only_with_its_numbers() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    for number in ["+15105850321", "+15105850322"] {
        let put = app
            .put_number("contoso", number, &number_body("contoso", number))
            .await;
        assert_eq!(put.status, 201, "{put:?}");
    }
    let events = app.event_count().await;
    app.delete_account("contoso", false)
        .await
        .assert_error(409, "AccountHasNumbers");
    assert_eq!(app.event_count().await, events, "a refusal writes nothing");

    let deleted = app.delete_account("contoso", true).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    // They flow to the backend: they go once the backend has released them.
    app.backend_accepts(&["+15105850321", "+15105850322"]).await;
    app.get_number("contoso", "+15105850321")
        .await
        .assert_error(404, "NotFound");
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");

    // The numbers are free again, for any account.
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    let moved = app
        .put_number(
            "fabrikam",
            "+15105850321",
            &number_body("fabrikam", "+15105850321"),
        )
        .await;
    assert_eq!(moved.status, 201, "{moved:?}");
}

#[tokio::test]
async fn deleting_a_missing_account_is_not_found() {
    let app = spawn_app().await;
    app.delete_account("nobody", false)
        .await
        .assert_error(404, "AccountNotFound");
}

#[tokio::test]
async fn the_teams_tenant_cannot_change_while_the_account_has_teams_numbers() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let mut moved = account_body("contoso");
    moved["serviceDetails"]["teamsTenantId"] = json!("00000000-0000-4000-8000-000000000001");
    app.put_account("contoso", &moved)
        .await
        .assert_error(409, "TenantChangeNotAllowed");

    app.delete_number("contoso", "+15105850321").await;
    app.backend_accepts(&["+15105850321"]).await;
    let changed = app.put_account("contoso", &moved).await;
    assert_eq!(changed.status, 200, "{changed:?}");
}

#[tokio::test]
async fn a_service_in_use_by_numbers_cannot_be_switched_off() {
    let app = spawn_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let mut off = account_body("contoso");
    off["serviceDetails"]["teamsOperatorConnect"]["enabled"] = json!(false);
    app.put_account("contoso", &off)
        .await
        .assert_error(409, "ServiceInUse");
}

#[tokio::test]
async fn operator_connect_needs_no_teams_tenant_as_in_the_public_api() {
    let app = spawn_app().await;
    let body = json!({"name": "contoso", "serviceDetails": {
        "teamsOperatorConnect": {"enabled": true, "syncEnabled": true},
        "teamsPhoneMobile": {"enabled": false, "syncEnabled": false}}});
    let created = app.put_account("contoso", &body).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(
        created.body["serviceDetails"]
            .get("teamsTenantId")
            .is_none()
    );
    // Numbers may be added; they wait for the tenant (see the saga's tests).
    let number = app
        .put_number(
            "contoso",
            "+15105850321",
            &tests::number_body("contoso", "+15105850321"),
        )
        .await;
    assert_eq!(number.status, 201, "{number:?}");
    // The first tenant may be set under them.
    let set = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["serviceDetails"]["teamsTenantId"], tests::TENANT);
}

#[tokio::test]
async fn number_counts_follow_the_numbers_services() {
    let app = spawn_app().await;
    let mut body = account_body("contoso");
    body["serviceDetails"]["zoomPhoneCloudPeering"] =
        json!({"enabled": true, "syncEnabled": false});
    app.put_account("contoso", &body).await;
    app.put_number(
        "contoso",
        "+15105850321",
        &number_body("contoso", "+15105850321"),
    )
    .await;
    let zoom = json!({"telephoneNumber": "+15105850399", "accountName": "contoso",
        "serviceDetails": {"zoomPhoneCloudPeering": {"enabled": true}}});
    let put = app.put_number("contoso", "+15105850399", &zoom).await;
    assert_eq!(put.status, 201, "{put:?}");
    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        1
    );
    assert_eq!(
        account.body["serviceDetails"]["zoomPhoneCloudPeering"]["numberCount"],
        1
    );
}
