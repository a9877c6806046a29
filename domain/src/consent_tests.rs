//! Given/when/then tests of the Consent aggregate: what the backend reports, the customer
//! relationship the operator records, and the sync of that relationship.

use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;

use crate::consent::{
    Consent, ConsentCommand, ConsentEvent, CustomerRelationship, RelationshipChange,
    RelationshipNote,
};
use crate::error::DomainError;
use crate::test_fixtures::*;
use crate::values::{ConsentStatus, ProvisioningStatus, RelationshipStatus, SyncState};

fn framework() -> TestFramework<Consent> {
    TestFramework::<Consent>::with(())
}

fn recorded(status: ConsentStatus) -> ConsentEvent {
    ConsentEvent::ConsentRecorded {
        tenant_id: tenant(),
        report: consent_report(status),
        at: moment(0),
    }
}

fn active() -> ConsentEvent {
    recorded(ConsentStatus::Active)
}

fn removed() -> Vec<ConsentEvent> {
    vec![
        active(),
        ConsentEvent::ConsentChanged {
            report: consent_report(ConsentStatus::Removed),
            at: moment(5),
        },
    ]
}

fn record_consent(status: ConsentStatus, at: u32) -> ConsentCommand {
    ConsentCommand::RecordConsent {
        tenant_id: tenant(),
        report: consent_report(status),
        at: moment(at),
    }
}

/// A change with a reason and a ticket, at minute 10.
fn change_with_reason(reason: &str) -> RelationshipChange {
    RelationshipChange {
        comment: Some(comment(reason)),
        ticket_id: Some(ticket("CRM-1001")),
        ..relationship_change(moment(10))
    }
}

fn note_with_reason(reason: &str) -> RelationshipNote {
    RelationshipNote {
        comment: Some(comment(reason)),
        ticket_id: Some(ticket("CRM-1001")),
        at: moment(10),
    }
}

fn plain_note() -> RelationshipNote {
    RelationshipNote {
        comment: None,
        ticket_id: None,
        at: moment(10),
    }
}

// --- RecordConsent ---

#[tokio::test]
async fn recording_a_new_consent_records_it() {
    framework()
        .given_no_previous_events()
        .when_async(record_consent(ConsentStatus::Active, 0))
        .await
        .then_expect_events(vec![active()]);
}

#[tokio::test]
async fn recording_a_changed_consent_records_the_change() {
    framework()
        .given(vec![active()])
        .when_async(record_consent(ConsentStatus::Suspended, 5))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentChanged {
            report: consent_report(ConsentStatus::Suspended),
            at: moment(5),
        }]);
}

#[tokio::test]
async fn recording_a_consent_with_new_contacts_records_the_change() {
    let mut report = consent_report(ConsentStatus::Active);
    report.contacts[0].email = "grace@contoso.example".into();
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::RecordConsent {
            tenant_id: tenant(),
            report: report.clone(),
            at: moment(5),
        })
        .await
        .then_expect_events(vec![ConsentEvent::ConsentChanged {
            report,
            at: moment(5),
        }]);
}

#[tokio::test]
async fn recording_an_unchanged_consent_emits_nothing() {
    framework()
        .given(vec![active()])
        .when_async(record_consent(ConsentStatus::Active, 30))
        .await
        .then_expect_events(vec![]);
}

#[test]
fn a_recorded_consent_is_in_step_with_the_backend() {
    let consent: Consent = replay(vec![active()]);
    let state = consent.state.unwrap();
    assert_eq!(state.tenant_id, tenant());
    assert_eq!(state.relationship, None);
    assert_eq!(state.last_modified_on, moment(0));
    assert_eq!(state.sync.status, ProvisioningStatus::Synced);
    assert_eq!(state.sync.version, 1);
}

#[test]
fn a_change_reported_by_the_backend_keeps_the_relationship_and_its_sync_state() {
    let consent: Consent = replay(vec![
        active(),
        ConsentEvent::AgreementSigned(plain_note()),
        ConsentEvent::ConsentChanged {
            report: consent_report(ConsentStatus::Suspended),
            at: moment(20),
        },
    ]);
    let state = consent.state.unwrap();
    assert_eq!(state.report.status, ConsentStatus::Suspended);
    assert_eq!(state.last_modified_on, moment(20));
    assert_eq!(
        state.relationship.map(|r| r.status),
        Some(RelationshipStatus::AgreementSigned)
    );
    assert_eq!(state.sync, SyncState::pending(2));
}

// --- The five relationship commands ---

#[tokio::test]
async fn acknowledging_a_consent_records_it() {
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::AcknowledgeConsent(relationship_change(
            moment(10),
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentAcknowledged(plain_note())]);
}

#[tokio::test]
async fn recording_that_the_customer_was_contacted_records_it() {
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::RecordCustomerContacted(
            relationship_change(moment(10)),
        ))
        .await
        .then_expect_events(vec![ConsentEvent::CustomerContacted(plain_note())]);
}

#[tokio::test]
async fn signing_an_agreement_records_it() {
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::SignAgreement(change_with_reason(
            "signed at the branch",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::AgreementSigned(note_with_reason(
            "signed at the branch",
        ))]);
}

#[tokio::test]
async fn declining_a_consent_with_a_reason_records_it() {
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::DeclineConsent(change_with_reason(
            "outside our coverage",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentDeclined(note_with_reason(
            "outside our coverage",
        ))]);
}

#[tokio::test]
async fn terminating_a_contract_with_a_reason_records_it() {
    framework()
        .given(vec![active(), ConsentEvent::AgreementSigned(plain_note())])
        .when_async(ConsentCommand::TerminateContract(change_with_reason(
            "customer left",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ContractTerminated(note_with_reason(
            "customer left",
        ))]);
}

#[tokio::test]
async fn declining_a_consent_without_a_reason_is_refused() {
    framework()
        .given(vec![active()])
        .when_async(ConsentCommand::DeclineConsent(relationship_change(moment(
            10,
        ))))
        .await
        .then_expect_error(DomainError::ReasonRequired {
            status: RelationshipStatus::ConsentDeclined,
        });
}

#[tokio::test]
async fn terminating_a_contract_without_a_reason_is_refused() {
    framework()
        .given(vec![active(), ConsentEvent::AgreementSigned(plain_note())])
        .when_async(ConsentCommand::TerminateContract(relationship_change(
            moment(10),
        )))
        .await
        .then_expect_error(DomainError::ReasonRequired {
            status: RelationshipStatus::ContractTerminated,
        });
}

#[tokio::test]
async fn a_relationship_change_on_a_missing_consent_is_refused() {
    for status in RelationshipStatus::ALL {
        framework()
            .given_no_previous_events()
            .when_async(ConsentCommand::relationship(
                *status,
                change_with_reason("any"),
            ))
            .await
            .then_expect_error(DomainError::ConsentNotFound(tenant()));
    }
}

#[test]
fn relationship_builds_the_command_for_each_status() {
    let change = || relationship_change(moment(10));
    let cases = [
        (
            RelationshipStatus::ConsentAcknowledged,
            ConsentCommand::AcknowledgeConsent(change()),
        ),
        (
            RelationshipStatus::CustomerContacted,
            ConsentCommand::RecordCustomerContacted(change()),
        ),
        (
            RelationshipStatus::AgreementSigned,
            ConsentCommand::SignAgreement(change()),
        ),
        (
            RelationshipStatus::ConsentDeclined,
            ConsentCommand::DeclineConsent(change()),
        ),
        (
            RelationshipStatus::ContractTerminated,
            ConsentCommand::TerminateContract(change()),
        ),
    ];
    for (status, command) in cases {
        assert_eq!(ConsentCommand::relationship(status, change()), command);
    }
}

// --- A consent the enterprise removed ---

#[tokio::test]
async fn acknowledging_a_removed_consent_is_refused() {
    framework()
        .given(removed())
        .when_async(ConsentCommand::AcknowledgeConsent(relationship_change(
            moment(10),
        )))
        .await
        .then_expect_error(DomainError::ConsentRemoved(tenant()));
}

#[tokio::test]
async fn recording_contact_on_a_removed_consent_is_refused() {
    framework()
        .given(removed())
        .when_async(ConsentCommand::RecordCustomerContacted(change_with_reason(
            "called them",
        )))
        .await
        .then_expect_error(DomainError::ConsentRemoved(tenant()));
}

#[tokio::test]
async fn signing_an_agreement_on_a_removed_consent_is_refused() {
    framework()
        .given(removed())
        .when_async(ConsentCommand::SignAgreement(relationship_change(moment(
            10,
        ))))
        .await
        .then_expect_error(DomainError::ConsentRemoved(tenant()));
}

#[tokio::test]
async fn declining_a_removed_consent_is_allowed() {
    framework()
        .given(removed())
        .when_async(ConsentCommand::DeclineConsent(change_with_reason(
            "consent withdrawn",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentDeclined(note_with_reason(
            "consent withdrawn",
        ))]);
}

#[tokio::test]
async fn terminating_the_contract_of_a_removed_consent_is_allowed() {
    let mut given = removed();
    given.insert(1, ConsentEvent::AgreementSigned(plain_note()));
    framework()
        .given(given)
        .when_async(ConsentCommand::TerminateContract(change_with_reason(
            "consent withdrawn",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ContractTerminated(note_with_reason(
            "consent withdrawn",
        ))]);
}

#[tokio::test]
async fn closing_a_removed_consent_still_needs_a_reason() {
    framework()
        .given(removed())
        .when_async(ConsentCommand::DeclineConsent(relationship_change(moment(
            10,
        ))))
        .await
        .then_expect_error(DomainError::ReasonRequired {
            status: RelationshipStatus::ConsentDeclined,
        });
}

#[tokio::test]
async fn a_suspended_consent_still_takes_relationship_changes() {
    framework()
        .given(vec![recorded(ConsentStatus::Suspended)])
        .when_async(ConsentCommand::RecordCustomerContacted(
            relationship_change(moment(10)),
        ))
        .await
        .then_expect_events(vec![ConsentEvent::CustomerContacted(plain_note())]);
}

// --- Repeats ---

#[tokio::test]
async fn repeating_the_same_status_comment_and_ticket_emits_nothing() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentDeclined(note_with_reason("outside our coverage")),
        ])
        .when_async(ConsentCommand::DeclineConsent(RelationshipChange {
            at: moment(40),
            ..change_with_reason("outside our coverage")
        }))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn repeating_the_status_with_a_new_comment_records_it() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentDeclined(note_with_reason("outside our coverage")),
        ])
        .when_async(ConsentCommand::DeclineConsent(change_with_reason(
            "no Teams licences",
        )))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentDeclined(note_with_reason(
            "no Teams licences",
        ))]);
}

#[tokio::test]
async fn repeating_the_status_with_a_new_ticket_records_it() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
        ])
        .when_async(ConsentCommand::AcknowledgeConsent(RelationshipChange {
            ticket_id: Some(ticket("CRM-2002")),
            ..relationship_change(moment(10))
        }))
        .await
        .then_expect_events(vec![ConsentEvent::ConsentAcknowledged(RelationshipNote {
            ticket_id: Some(ticket("CRM-2002")),
            ..plain_note()
        })]);
}

// --- Sync state and provisioning outcomes ---

#[test]
fn a_relationship_change_makes_the_sync_state_pending() {
    let consent: Consent = replay(vec![
        active(),
        ConsentEvent::ConsentDeclined(note_with_reason("outside our coverage")),
    ]);
    let state = consent.state.unwrap();
    assert_eq!(state.sync, SyncState::pending(2));
    assert_eq!(state.last_modified_on, moment(10));
    assert_eq!(
        state.relationship,
        Some(CustomerRelationship {
            status: RelationshipStatus::ConsentDeclined,
            comment: Some(comment("outside our coverage")),
            ticket_id: Some(ticket("CRM-1001")),
            last_modified_on: moment(10),
        })
    );
}

#[tokio::test]
async fn a_provisioning_success_for_the_current_version_is_recorded() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
        ])
        .when_async(ConsentCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![ConsentEvent::ConsentProvisioned { for_version: 2 }]);
}

#[tokio::test]
async fn a_provisioning_failure_for_the_current_version_is_recorded() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
        ])
        .when_async(ConsentCommand::RecordProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("ConsentNotFound")],
        })
        .await
        .then_expect_events(vec![ConsentEvent::ConsentProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("ConsentNotFound")],
        }]);
}

#[tokio::test]
async fn a_provisioning_success_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
            ConsentEvent::CustomerContacted(plain_note()),
        ])
        .when_async(ConsentCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_failure_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
            ConsentEvent::CustomerContacted(plain_note()),
        ])
        .when_async(ConsentCommand::RecordProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("Timeout")],
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_outcome_for_a_missing_consent_emits_nothing() {
    framework()
        .given_no_previous_events()
        .when_async(ConsentCommand::RecordProvisioned { for_version: 0 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_change_reported_by_the_backend_does_not_make_an_outcome_stale() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::AgreementSigned(plain_note()),
            ConsentEvent::ConsentChanged {
                report: consent_report(ConsentStatus::Suspended),
                at: moment(20),
            },
        ])
        .when_async(ConsentCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![ConsentEvent::ConsentProvisioned { for_version: 2 }]);
}

#[tokio::test]
async fn a_repeated_provisioning_failure_emits_nothing() {
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
            ConsentEvent::ConsentProvisioningFailed {
                for_version: 2,
                errors: vec![backend_error("Timeout")],
            },
        ])
        .when_async(ConsentCommand::RecordProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("Timeout")],
        })
        .await
        .then_expect_events(vec![]);
}

// --- RetryProvisioning ---

fn retry() -> ConsentCommand {
    ConsentCommand::RetryProvisioning {
        tenant_id: tenant(),
    }
}

fn acknowledged_then_failed() -> Vec<ConsentEvent> {
    vec![
        active(),
        ConsentEvent::ConsentAcknowledged(plain_note()),
        ConsentEvent::ConsentProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("Timeout")],
        },
    ]
}

#[tokio::test]
async fn retrying_a_failed_relationship_push_pushes_it_again() {
    let relationship = replay::<Consent>(acknowledged_then_failed())
        .state
        .unwrap()
        .relationship;
    assert!(relationship.is_some());
    framework()
        .given(acknowledged_then_failed())
        .when_async(retry())
        .await
        .then_expect_events(vec![ConsentEvent::ConsentProvisioningRetried {
            relationship,
        }]);
}

#[test]
fn a_retried_consent_is_pending_at_the_new_version() {
    let mut events = acknowledged_then_failed();
    let relationship = replay::<Consent>(events.clone())
        .state
        .unwrap()
        .relationship;
    events.push(ConsentEvent::ConsentProvisioningRetried {
        relationship: relationship.clone(),
    });
    let state = replay::<Consent>(events).state.unwrap();
    assert_eq!(state.sync, SyncState::pending(4));
    assert_eq!(state.relationship, relationship);
}

#[tokio::test]
async fn retrying_a_consent_that_did_not_fail_is_refused() {
    framework()
        .given(vec![active()])
        .when_async(retry())
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Synced,
        });
    framework()
        .given(vec![
            active(),
            ConsentEvent::ConsentAcknowledged(plain_note()),
        ])
        .when_async(retry())
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Pending,
        });
}

#[tokio::test]
async fn retrying_a_missing_consent_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(retry())
        .await
        .then_expect_error(DomainError::ConsentNotFound(tenant()));
}

#[test]
fn provisioning_outcomes_set_the_sync_state() {
    let failed: Consent = replay(vec![
        active(),
        ConsentEvent::ConsentAcknowledged(plain_note()),
        ConsentEvent::ConsentProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("Timeout")],
        },
    ]);
    let sync = failed.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Failed);
    assert_eq!(sync.errors, vec![backend_error("Timeout")]);
    assert_eq!(sync.version, 2);

    let synced: Consent = replay(vec![
        active(),
        ConsentEvent::ConsentAcknowledged(plain_note()),
        ConsentEvent::ConsentProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("Timeout")],
        },
        ConsentEvent::ConsentProvisioned { for_version: 2 },
    ]);
    let sync = synced.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Synced);
    assert!(sync.errors.is_empty(), "a success clears earlier errors");
}

// --- The event contract ---

#[test]
fn consent_events_keep_their_stored_names_and_version() {
    let cases = [
        (active(), "ConsentRecorded"),
        (
            ConsentEvent::ConsentChanged {
                report: consent_report(ConsentStatus::Removed),
                at: moment(1),
            },
            "ConsentChanged",
        ),
        (
            ConsentEvent::ConsentAcknowledged(plain_note()),
            "ConsentAcknowledged",
        ),
        (
            ConsentEvent::CustomerContacted(plain_note()),
            "CustomerContacted",
        ),
        (
            ConsentEvent::AgreementSigned(plain_note()),
            "AgreementSigned",
        ),
        (
            ConsentEvent::ConsentDeclined(plain_note()),
            "ConsentDeclined",
        ),
        (
            ConsentEvent::ContractTerminated(plain_note()),
            "ContractTerminated",
        ),
        (
            ConsentEvent::ConsentProvisioned { for_version: 1 },
            "ConsentProvisioned",
        ),
        (
            ConsentEvent::ConsentProvisioningFailed {
                for_version: 1,
                errors: vec![],
            },
            "ConsentProvisioningFailed",
        ),
        (
            ConsentEvent::ConsentProvisioningRetried { relationship: None },
            "ConsentProvisioningRetried",
        ),
    ];
    for (event, event_type) in cases {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), "1.0");
    }
}
