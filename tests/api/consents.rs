//! Requests for information (consents) and the operator's customer relationship.

use serde_json::json;
use tests::{TENANT, account_body, spawn_app};

#[tokio::test]
async fn a_recorded_consent_is_read_with_its_linked_account() {
    let app = spawn_app().await;
    app.get_consent(TENANT)
        .await
        .assert_error(404, "RequestForInformationNotFound");
    app.record_consent(TENANT).await;
    let unlinked = app.get_consent(TENANT).await;
    assert_eq!(unlinked.status, 200, "{unlinked:?}");
    assert_eq!(unlinked.body["tenantId"], TENANT);
    assert_eq!(unlinked.body["status"], "active");
    assert_eq!(unlinked.body["productContext"], "teams");
    assert!(unlinked.body.get("accountName").is_none());

    app.put_account("contoso", &account_body("contoso")).await;
    let linked = app.get_consent(TENANT).await;
    assert_eq!(linked.body["accountName"], "contoso");

    app.delete_account("contoso", false).await;
    let unlinked_again = app.get_consent(TENANT).await;
    assert!(
        unlinked_again.body.get("accountName").is_none(),
        "{unlinked_again:?}"
    );
}

#[tokio::test]
async fn each_relationship_status_is_recorded() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let steps = [
        ("ConsentAcknowledged", None),
        ("CustomerContacted", Some("called the IT lead")),
        ("AgreementSigned", Some("contract 42")),
        ("ContractTerminated", Some("customer left")),
        ("ConsentDeclined", Some("no coverage in their country")),
    ];
    let mut last_etag = String::new();
    for (status, comment) in steps {
        let mut relationship = json!({"status": status});
        if let Some(comment) = comment {
            relationship["comment"] = json!(comment);
        }
        let answer = app
            .patch_consent(TENANT, &json!({"customerRelationship": relationship}))
            .await;
        assert_eq!(answer.status, 200, "{status}: {answer:?}");
        assert_eq!(answer.body["customerRelationship"]["status"], status);
        assert_eq!(answer.body["serviceProvisioningStatus"], "pending");
        assert_ne!(answer.etag(), last_etag);
        last_etag = answer.etag();
        let read = app.get_consent(TENANT).await;
        assert_eq!(
            read.body["customerRelationship"]["status"], status,
            "read-your-writes"
        );
    }
}

#[tokio::test]
async fn a_merge_patch_keeps_removes_or_replaces_the_comment() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let first = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentAcknowledged", "comment": "seen"}}),
        )
        .await;
    assert_eq!(first.body["customerRelationship"]["comment"], "seen");

    let kept = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "CustomerContacted"}}),
        )
        .await;
    assert_eq!(
        kept.body["customerRelationship"]["comment"], "seen",
        "absent keeps it"
    );

    let removed = app
        .patch_consent(TENANT, &json!({"customerRelationship": {"comment": null}}))
        .await;
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(
        removed.body["customerRelationship"]["status"],
        "CustomerContacted"
    );
    assert!(
        removed.body["customerRelationship"]
            .get("comment")
            .is_none(),
        "null removes it"
    );

    let nothing = app.patch_consent(TENANT, &json!({})).await;
    assert_eq!(nothing.status, 200);
    assert_eq!(
        nothing.etag(),
        removed.etag(),
        "an empty patch changes nothing"
    );
}

#[tokio::test]
async fn declining_or_terminating_needs_a_reason() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    for status in ["ConsentDeclined", "ContractTerminated"] {
        let refused = app
            .patch_consent(TENANT, &json!({"customerRelationship": {"status": status}}))
            .await;
        refused.assert_error(400, "ReasonRequired");
        assert_eq!(refused.error_target(), Some("customerRelationship.comment"));
    }
}

#[tokio::test]
async fn the_ticket_id_is_kept_in_the_event_and_its_metadata() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let answer = app
        .send(
            app.request(
                reqwest::Method::PATCH,
                &format!("/teamsRequestsForInformation/{TENANT}"),
            )
            .header("content-type", "application/merge-patch+json")
            .header("x-nmp-ticket-id", "CHG-1234")
            .header(
                "x-ms-client-request-id",
                "9c5f3f52-8f9e-4c47-9f3f-0a4d2b1f6a10",
            )
            .body(json!({"customerRelationship": {"status": "AgreementSigned"}}).to_string()),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let (payload, metadata): (serde_json::Value, serde_json::Value) =
        sqlx::query_as("SELECT payload, metadata FROM events WHERE event_type = 'AgreementSigned'")
            .fetch_one(&app.pool)
            .await
            .expect("the event");
    assert_eq!(payload["AgreementSigned"]["ticket_id"], "CHG-1234");
    assert_eq!(metadata["ticket_id"], "CHG-1234");
    assert_eq!(metadata["subject"], "test-user");
    assert_eq!(metadata["roles"], json!(["ProvisioningAPI.Admin"]));
    assert_eq!(
        metadata["client_request_id"],
        "9c5f3f52-8f9e-4c47-9f3f-0a4d2b1f6a10"
    );
    assert!(metadata["time"].is_string());
    assert!(metadata["correlation_id"].is_string());
    let traceparent = metadata["traceparent"].as_str().expect("traceparent");
    assert_eq!(traceparent.len(), 55, "W3C traceparent: {traceparent}");
}

#[tokio::test]
async fn an_incoming_trace_context_is_kept() {
    let app = spawn_app().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let answer = app
        .send(
            app.request(reqwest::Method::PUT, "/accounts/contoso")
                .header("traceparent", traceparent)
                .json(&account_body("contoso")),
        )
        .await;
    assert_eq!(answer.status, 201);
    let metadata: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE event_type = 'AccountCreated'")
            .fetch_one(&app.pool)
            .await
            .expect("the event");
    assert_eq!(metadata["traceparent"], traceparent);
}
