//! Given/when/then tests of the Number aggregate: one per command path and per refusal, every
//! rule of `service_details.rs` included.

use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;

use crate::error::DomainError;
use crate::number::{Number, NumberCommand, NumberEvent};
use crate::service_details::{AccountServices, NumberDetails, TeamsNumberConfiguration};
use crate::test_fixtures::*;
use crate::values::{
    AccountName, Capability, E164, ProvisioningStatus, SipHeaderValue, SyncState, Usage,
};

const GEOGRAPHIC: &str = "+441632960001";
const TOLL_FREE: &str = "+18005550100";

fn framework() -> TestFramework<Number> {
    TestFramework::<Number>::with(())
}

fn the_number() -> E164 {
    number(GEOGRAPHIC)
}

fn add_to(
    account: AccountName,
    account_services: AccountServices,
    details: NumberDetails,
) -> NumberCommand {
    NumberCommand::AddOrUpdate {
        telephone_number: the_number(),
        account,
        account_services,
        details,
    }
}

/// Adds or updates the number in contoso, which has every service enabled and synced.
fn add(details: NumberDetails) -> NumberCommand {
    add_to(contoso(), all_services(), details)
}

fn added_to(account: AccountName, details: NumberDetails, sync_required: bool) -> NumberEvent {
    NumberEvent::NumberAdded {
        telephone_number: the_number(),
        account,
        details,
        sync_required,
    }
}

fn added(details: NumberDetails, sync_required: bool) -> NumberEvent {
    added_to(contoso(), details, sync_required)
}

fn set_sip_header(value: Option<&str>) -> NumberCommand {
    set_sip_header_in(contoso(), value)
}

fn set_sip_header_in(account: AccountName, value: Option<&str>) -> NumberCommand {
    NumberCommand::SetSipHeader {
        telephone_number: the_number(),
        account,
        account_services: all_services(),
        value: value.map(sip_header),
    }
}

fn delete_from(account: AccountName) -> NumberCommand {
    NumberCommand::Delete {
        telephone_number: the_number(),
        account,
    }
}

fn deletion_requested() -> NumberEvent {
    NumberEvent::NumberDeletionRequested { account: contoso() }
}

/// An Operator Connect number of contoso whose deletion waits for the backend (version 2).
fn being_deleted() -> Vec<NumberEvent> {
    vec![added(operator_connect(), true), deletion_requested()]
}

fn operator_connect() -> NumberDetails {
    number_details().operator_connect().build()
}

fn direct_routing() -> NumberDetails {
    number_details().direct_routing().build()
}

/// Runs AddOrUpdate on a new number and expects the refusal.
async fn adding_is_refused(
    telephone_number: &str,
    details: NumberDetails,
    expected_error: DomainError,
) {
    framework()
        .given_no_previous_events()
        .when_async(NumberCommand::AddOrUpdate {
            telephone_number: number(telephone_number),
            account: contoso(),
            account_services: all_services(),
            details,
        })
        .await
        .then_expect_error(expected_error);
}

/// Runs AddOrUpdate on a new number and expects it to be added.
async fn adding_is_accepted(telephone_number: &str, details: NumberDetails) {
    framework()
        .given_no_previous_events()
        .when_async(NumberCommand::AddOrUpdate {
            telephone_number: number(telephone_number),
            account: contoso(),
            account_services: all_services(),
            details: details.clone(),
        })
        .await
        .then_expect_events(vec![NumberEvent::NumberAdded {
            telephone_number: number(telephone_number),
            account: contoso(),
            details,
            sync_required: true,
        }]);
}

fn with_configuration(
    change: impl FnOnce(&mut TeamsNumberConfiguration),
) -> TeamsNumberConfiguration {
    let mut configuration = teams_configuration();
    change(&mut configuration);
    configuration
}

// --- AddOrUpdate ---

#[tokio::test]
async fn adding_a_number_records_it_in_its_account() {
    framework()
        .given_no_previous_events()
        .when_async(add(operator_connect()))
        .await
        .then_expect_events(vec![added(operator_connect(), true)]);
}

#[tokio::test]
async fn adding_a_number_whose_services_do_not_flow_to_the_backend_needs_no_sync() {
    let services = account_services()
        .direct_routing(Flow::NotSynced)
        .call_protection()
        .build();
    let details = number_details().direct_routing().call_protection().build();
    framework()
        .given_no_previous_events()
        .when_async(add_to(contoso(), services, details.clone()))
        .await
        .then_expect_events(vec![added(details, false)]);
}

#[tokio::test]
async fn adding_a_number_with_no_service_enabled_is_accepted_and_needs_no_sync() {
    framework()
        .given_no_previous_events()
        .when_async(add(NumberDetails::default()))
        .await
        .then_expect_events(vec![added(NumberDetails::default(), false)]);
}

#[tokio::test]
async fn updating_a_number_records_its_new_details() {
    let details = number_details()
        .operator_connect()
        .direct_routing()
        .sip_header("contoso-gw")
        .build();
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(add(details.clone()))
        .await
        .then_expect_events(vec![NumberEvent::NumberUpdated {
            details,
            sync_required: true,
        }]);
}

#[tokio::test]
async fn updating_a_number_with_identical_details_emits_nothing() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(add(operator_connect()))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn adding_a_number_owned_by_another_account_is_refused() {
    framework()
        .given(vec![added_to(fabrikam(), operator_connect(), true)])
        .when_async(add(operator_connect()))
        .await
        .then_expect_error(DomainError::NumberInAnotherAccount {
            number: the_number(),
            owner: fabrikam(),
        });
}

#[tokio::test]
async fn a_deleted_number_can_be_added_to_another_account() {
    framework()
        .given(vec![
            added_to(fabrikam(), operator_connect(), true),
            NumberEvent::NumberDeleted {
                account: fabrikam(),
                sync_required: true,
            },
        ])
        .when_async(add(direct_routing()))
        .await
        .then_expect_events(vec![added(direct_routing(), true)]);
}

#[tokio::test]
async fn disabling_operator_connect_on_a_number_that_reached_the_backend_still_flows_to_it() {
    // The backend holds the number in the enterprise's tenant: only the saga can release it,
    // even though the number's remaining service does not flow through.
    let services = account_services()
        .tenant(tenant())
        .operator_connect(Flow::Synced)
        .direct_routing(Flow::NotSynced)
        .build();
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(add_to(contoso(), services, direct_routing()))
        .await
        .then_expect_events(vec![NumberEvent::NumberUpdated {
            details: direct_routing(),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn updating_a_number_that_never_reached_the_backend_still_needs_no_sync() {
    let services = account_services()
        .direct_routing(Flow::NotSynced)
        .call_protection()
        .build();
    let details = number_details().direct_routing().call_protection().build();
    framework()
        .given(vec![added(
            number_details().direct_routing().build(),
            false,
        )])
        .when_async(add_to(contoso(), services, details.clone()))
        .await
        .then_expect_events(vec![NumberEvent::NumberUpdated {
            details,
            sync_required: false,
        }]);
}

// --- The rules of service_details.rs ---

#[tokio::test]
async fn a_service_the_account_has_not_enabled_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(add_to(
            contoso(),
            account_services().direct_routing(Flow::Synced).build(),
            number_details().direct_routing().zoom().build(),
        ))
        .await
        .then_expect_error(DomainError::ServiceNotEnabledOnAccount {
            service: "zoomPhoneCloudPeering",
        });
}

#[tokio::test]
async fn a_teams_service_switched_off_on_the_number_is_not_checked() {
    // Disabled Operator Connect settings may be incomplete and the account may lack the service.
    let mut details = number_details()
        .operator_connect_without_configuration()
        .direct_routing()
        .build();
    if let Some(operator_connect) = &mut details.teams_operator_connect {
        operator_connect.enabled = false;
    }
    framework()
        .given_no_previous_events()
        .when_async(add_to(
            contoso(),
            account_services().direct_routing(Flow::Synced).build(),
            details.clone(),
        ))
        .await
        .then_expect_events(vec![added(details, true)]);
}

#[tokio::test]
async fn operator_connect_and_teams_phone_mobile_on_one_number_are_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details().operator_connect().phone_mobile().build(),
        DomainError::ConflictingTeamsServices,
    )
    .await;
}

#[tokio::test]
async fn a_sip_header_on_a_teams_phone_mobile_number_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .phone_mobile()
            .sip_header("contoso-gw")
            .build(),
        DomainError::SipHeaderNotAllowed {
            service: "teamsPhoneMobile",
        },
    )
    .await;
}

#[tokio::test]
async fn a_sip_header_on_an_azure_operator_call_protection_number_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .direct_routing()
            .call_protection()
            .sip_header("contoso-gw")
            .build(),
        DomainError::SipHeaderNotAllowed {
            service: "azureOperatorCallProtection",
        },
    )
    .await;
}

#[tokio::test]
async fn a_sip_header_on_an_operator_connect_number_is_accepted() {
    adding_is_accepted(
        GEOGRAPHIC,
        number_details()
            .operator_connect()
            .sip_header("contoso-gw")
            .build(),
    )
    .await;
}

#[tokio::test]
async fn operator_connect_without_a_configuration_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .operator_connect_without_configuration()
            .build(),
        DomainError::TeamsConfigurationRequired {
            service: "teamsOperatorConnect",
        },
    )
    .await;
}

#[tokio::test]
async fn teams_phone_mobile_without_a_configuration_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .phone_mobile_without_configuration()
            .build(),
        DomainError::TeamsConfigurationRequired {
            service: "teamsPhoneMobile",
        },
    )
    .await;
}

#[tokio::test]
async fn a_teams_number_without_capabilities_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| c.choosable_capabilities.clear()))
            .build(),
        DomainError::NoCapabilities {
            service: "teamsOperatorConnect",
        },
    )
    .await;
}

#[tokio::test]
async fn a_capability_named_twice_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .phone_mobile_with(with_configuration(|c| {
                c.choosable_capabilities = vec![
                    Capability::Mobile,
                    Capability::InboundCalling,
                    Capability::Mobile,
                ];
            }))
            .build(),
        DomainError::DuplicateCapability {
            service: "teamsPhoneMobile",
            capability: "Mobile",
        },
    )
    .await;
}

#[tokio::test]
async fn the_mobile_capability_on_an_operator_connect_number_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.choosable_capabilities = vec![Capability::InboundCalling, Capability::Mobile];
            }))
            .build(),
        DomainError::MobileCapabilityOutsidePhoneMobile,
    )
    .await;
}

#[tokio::test]
async fn the_mobile_capability_on_a_teams_phone_mobile_number_is_accepted() {
    adding_is_accepted(
        "+447700900001",
        number_details()
            .phone_mobile_with(with_configuration(|c| {
                c.choosable_capabilities = vec![
                    Capability::Mobile,
                    Capability::InboundCalling,
                    Capability::OutboundCalling,
                ];
            }))
            .build(),
    )
    .await;
}

#[tokio::test]
async fn an_additional_usage_named_twice_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.additional_usages = vec![
                    Usage::ConferenceAssignment,
                    Usage::FirstPartyAppAssignment,
                    Usage::ConferenceAssignment,
                ];
            }))
            .build(),
        DomainError::DuplicateUsage {
            service: "teamsOperatorConnect",
            usage: "ConferenceAssignment",
        },
    )
    .await;
}

#[tokio::test]
async fn the_main_usage_repeated_as_an_additional_usage_is_refused() {
    adding_is_refused(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.additional_usages = vec![Usage::CallingUserAssignment];
            }))
            .build(),
        DomainError::DuplicateUsage {
            service: "teamsOperatorConnect",
            usage: "CallingUserAssignment",
        },
    )
    .await;
}

#[tokio::test]
async fn distinct_additional_usages_are_accepted() {
    adding_is_accepted(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.additional_usages =
                    vec![Usage::ConferenceAssignment, Usage::FirstPartyAppAssignment];
            }))
            .build(),
    )
    .await;
}

#[tokio::test]
async fn a_toll_free_number_without_a_displayed_country_code_is_accepted() {
    // The public API has no such rule; the backend decides what it needs.
    adding_is_accepted(TOLL_FREE, operator_connect()).await;
}

#[tokio::test]
async fn a_toll_free_number_with_a_displayed_country_code_is_accepted() {
    adding_is_accepted(
        TOLL_FREE,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.displayed_country_code = Some(country("US"));
            }))
            .build(),
    )
    .await;
}

#[tokio::test]
async fn a_toll_free_number_without_teams_services_needs_no_displayed_country_code() {
    adding_is_accepted(TOLL_FREE, direct_routing()).await;
}

#[tokio::test]
async fn a_calling_user_number_without_civic_address_or_location_is_accepted() {
    // The backend enforces this rule; its refusal comes back as a failed sync (DESIGN.md).
    adding_is_accepted(
        GEOGRAPHIC,
        number_details()
            .operator_connect_with(with_configuration(|c| {
                c.civic_address_id = None;
                c.location_id = None;
                c.allow_tenant_address_update = false;
            }))
            .build(),
    )
    .await;
}

#[tokio::test]
async fn an_update_is_checked_by_the_same_rules() {
    framework()
        .given(vec![added(direct_routing(), true)])
        .when_async(add(number_details().phone_mobile().sip_header("x").build()))
        .await
        .then_expect_error(DomainError::SipHeaderNotAllowed {
            service: "teamsPhoneMobile",
        });
}

// --- SetSipHeader ---

#[tokio::test]
async fn setting_a_sip_header_records_it() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_events(vec![NumberEvent::SipHeaderSet {
            value: sip_header("contoso-gw"),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn replacing_a_sip_header_records_the_new_value() {
    framework()
        .given(vec![added(
            number_details()
                .operator_connect()
                .sip_header("old-gw")
                .build(),
            true,
        )])
        .when_async(set_sip_header(Some("new-gw")))
        .await
        .then_expect_events(vec![NumberEvent::SipHeaderSet {
            value: sip_header("new-gw"),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn clearing_a_sip_header_records_it() {
    framework()
        .given(vec![added(
            number_details()
                .operator_connect()
                .sip_header("contoso-gw")
                .build(),
            true,
        )])
        .when_async(set_sip_header(None))
        .await
        .then_expect_events(vec![NumberEvent::SipHeaderCleared {
            sync_required: true,
        }]);
}

#[tokio::test]
async fn setting_the_sip_header_the_number_already_has_emits_nothing() {
    framework()
        .given(vec![added(
            number_details()
                .operator_connect()
                .sip_header("contoso-gw")
                .build(),
            true,
        )])
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn clearing_a_sip_header_the_number_does_not_have_emits_nothing() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(set_sip_header(None))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn setting_a_sip_header_on_a_number_of_another_account_is_refused() {
    framework()
        .given(vec![added_to(fabrikam(), operator_connect(), true)])
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_error(DomainError::NumberInAnotherAccount {
            number: the_number(),
            owner: fabrikam(),
        });
}

#[tokio::test]
async fn setting_a_sip_header_on_a_missing_number_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_error(DomainError::NumberNotFound(the_number()));
}

#[tokio::test]
async fn setting_a_sip_header_on_a_deleted_number_is_refused() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberDeleted {
                account: contoso(),
                sync_required: true,
            },
        ])
        .when_async(set_sip_header(None))
        .await
        .then_expect_error(DomainError::NumberNotFound(the_number()));
}

#[tokio::test]
async fn setting_a_sip_header_on_a_teams_phone_mobile_number_is_refused() {
    framework()
        .given(vec![added(number_details().phone_mobile().build(), true)])
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_error(DomainError::SipHeaderNotAllowed {
            service: "teamsPhoneMobile",
        });
}

#[tokio::test]
async fn setting_a_sip_header_on_an_azure_operator_call_protection_number_is_refused() {
    framework()
        .given(vec![added(
            number_details().direct_routing().call_protection().build(),
            true,
        )])
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_error(DomainError::SipHeaderNotAllowed {
            service: "azureOperatorCallProtection",
        });
}

#[tokio::test]
async fn a_sip_header_change_on_a_number_that_never_reached_the_backend_needs_no_sync() {
    framework()
        .given(vec![added(direct_routing(), false)])
        .when_async(NumberCommand::SetSipHeader {
            telephone_number: the_number(),
            account: contoso(),
            account_services: account_services().direct_routing(Flow::NotSynced).build(),
            value: Some(sip_header("contoso-gw")),
        })
        .await
        .then_expect_events(vec![NumberEvent::SipHeaderSet {
            value: sip_header("contoso-gw"),
            sync_required: false,
        }]);
}

// --- Delete ---

#[tokio::test]
async fn deleting_a_number_that_flows_to_the_backend_asks_for_its_release_first() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(delete_from(contoso()))
        .await
        .then_expect_events(vec![NumberEvent::NumberDeletionRequested {
            account: contoso(),
        }]);
}

#[tokio::test]
async fn a_number_whose_upload_never_succeeded_is_released_all_the_same() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberProvisioningFailed {
                for_version: 1,
                errors: vec![backend_error("LocationRequired")],
            },
        ])
        .when_async(delete_from(contoso()))
        .await
        .then_expect_events(vec![NumberEvent::NumberDeletionRequested {
            account: contoso(),
        }]);
}

#[test]
fn a_number_whose_deletion_was_requested_stays_pending_and_deleting() {
    let number: Number = replay(vec![
        added(operator_connect(), true),
        NumberEvent::NumberProvisioned { for_version: 1 },
        deletion_requested(),
    ]);
    let state = number
        .state
        .expect("the number stays until the backend releases it");
    assert!(state.deleting);
    assert!(state.sync_required);
    assert_eq!(state.sync, SyncState::pending(3));
    assert_eq!(state.details, operator_connect());
}

#[tokio::test]
async fn deleting_a_number_being_deleted_again_emits_nothing() {
    framework()
        .given(being_deleted())
        .when_async(delete_from(contoso()))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn updating_a_number_being_deleted_is_refused() {
    framework()
        .given(being_deleted())
        .when_async(add(direct_routing()))
        .await
        .then_expect_error(DomainError::NumberBeingDeleted(the_number()));
    framework()
        .given(being_deleted())
        .when_async(add(operator_connect()))
        .await
        .then_expect_error(DomainError::NumberBeingDeleted(the_number()));
}

#[tokio::test]
async fn setting_the_sip_header_of_a_number_being_deleted_is_refused() {
    framework()
        .given(being_deleted())
        .when_async(set_sip_header(Some("contoso-gw")))
        .await
        .then_expect_error(DomainError::NumberBeingDeleted(the_number()));
}

#[tokio::test]
async fn a_number_being_deleted_still_belongs_to_its_account() {
    framework()
        .given(being_deleted())
        .when_async(add_to(fabrikam(), all_services(), operator_connect()))
        .await
        .then_expect_error(DomainError::NumberInAnotherAccount {
            number: the_number(),
            owner: contoso(),
        });
}

#[tokio::test]
async fn the_backend_confirming_the_release_deletes_the_number() {
    framework()
        .given(being_deleted())
        .when_async(NumberCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![NumberEvent::NumberDeleted {
            account: contoso(),
            sync_required: false,
        }]);
}

#[tokio::test]
async fn a_success_for_the_change_before_the_deletion_does_not_delete_the_number() {
    framework()
        .given(being_deleted())
        .when_async(NumberCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn the_backend_refusing_the_release_records_the_failure() {
    framework()
        .given(being_deleted())
        .when_async(NumberCommand::RecordProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("NumberInUse")],
        })
        .await
        .then_expect_events(vec![NumberEvent::NumberProvisioningFailed {
            for_version: 2,
            errors: vec![backend_error("NumberInUse")],
        }]);
}

#[test]
fn a_refused_release_leaves_the_number_failed_and_still_being_deleted() {
    let mut events = being_deleted();
    events.push(NumberEvent::NumberProvisioningFailed {
        for_version: 2,
        errors: vec![backend_error("NumberInUse")],
    });
    let state = replay::<Number>(events).state.expect("the number stays");
    assert!(state.deleting);
    assert_eq!(state.sync.status, ProvisioningStatus::Failed);
    assert_eq!(state.sync.errors, vec![backend_error("NumberInUse")]);
}

#[tokio::test]
async fn a_confirmation_after_a_refused_release_deletes_the_number() {
    let mut events = being_deleted();
    events.push(NumberEvent::NumberProvisioningFailed {
        for_version: 2,
        errors: vec![backend_error("Timeout")],
    });
    framework()
        .given(events)
        .when_async(NumberCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![NumberEvent::NumberDeleted {
            account: contoso(),
            sync_required: false,
        }]);
}

#[test]
fn a_number_state_stored_before_deletions_waited_reads_as_not_being_deleted() {
    let number: Number = replay(vec![added(operator_connect(), true)]);
    let mut json = serde_json::to_value(number.state.unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("deleting");
    let state: crate::number::NumberState = serde_json::from_value(json).unwrap();
    assert!(!state.deleting);
}

#[tokio::test]
async fn deleting_a_number_that_never_reached_the_backend_needs_no_sync() {
    framework()
        .given(vec![added(direct_routing(), false)])
        .when_async(delete_from(contoso()))
        .await
        .then_expect_events(vec![NumberEvent::NumberDeleted {
            account: contoso(),
            sync_required: false,
        }]);
}

#[tokio::test]
async fn deleting_a_missing_number_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(delete_from(contoso()))
        .await
        .then_expect_error(DomainError::NumberNotFound(the_number()));
}

#[tokio::test]
async fn deleting_a_deleted_number_is_refused() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberDeleted {
                account: contoso(),
                sync_required: true,
            },
        ])
        .when_async(delete_from(contoso()))
        .await
        .then_expect_error(DomainError::NumberNotFound(the_number()));
}

#[tokio::test]
async fn deleting_a_number_of_another_account_is_refused() {
    framework()
        .given(vec![added_to(fabrikam(), operator_connect(), true)])
        .when_async(delete_from(contoso()))
        .await
        .then_expect_error(DomainError::NumberInAnotherAccount {
            number: the_number(),
            owner: fabrikam(),
        });
}

// --- RetryProvisioning ---

fn retry() -> NumberCommand {
    NumberCommand::RetryProvisioning {
        telephone_number: the_number(),
        account: contoso(),
    }
}

#[tokio::test]
async fn retrying_a_failed_upload_pushes_the_number_again() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberProvisioningFailed {
                for_version: 1,
                errors: vec![backend_error("LocationRequired")],
            },
        ])
        .when_async(retry())
        .await
        .then_expect_events(vec![NumberEvent::NumberProvisioningRetried {
            account: contoso(),
            details: operator_connect(),
            deleting: false,
        }]);
}

#[tokio::test]
async fn retrying_a_failed_release_asks_for_the_release_again() {
    let mut events = being_deleted();
    events.push(NumberEvent::NumberProvisioningFailed {
        for_version: 2,
        errors: vec![backend_error("NumberInUse")],
    });
    framework()
        .given(events)
        .when_async(retry())
        .await
        .then_expect_events(vec![NumberEvent::NumberProvisioningRetried {
            account: contoso(),
            details: operator_connect(),
            deleting: true,
        }]);
}

#[test]
fn a_retried_provisioning_is_pending_at_the_new_version_with_the_same_details() {
    let number: Number = replay(vec![
        added(operator_connect(), true),
        NumberEvent::NumberProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("LocationRequired")],
        },
        NumberEvent::NumberProvisioningRetried {
            account: contoso(),
            details: operator_connect(),
            deleting: false,
        },
    ]);
    let state = number.state.unwrap();
    assert_eq!(state.sync, SyncState::pending(3));
    assert_eq!(state.details, operator_connect());
    assert!(state.sync_required);
    assert!(!state.deleting);
}

#[tokio::test]
async fn retrying_a_pending_or_synced_number_is_refused() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(retry())
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Pending,
        });
    framework()
        .given(vec![added(direct_routing(), false)])
        .when_async(retry())
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Synced,
        });
}

#[tokio::test]
async fn retrying_a_missing_number_or_one_of_another_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(retry())
        .await
        .then_expect_error(DomainError::NumberNotFound(the_number()));
    framework()
        .given(vec![
            added_to(fabrikam(), operator_connect(), true),
            NumberEvent::NumberProvisioningFailed {
                for_version: 1,
                errors: vec![backend_error("LocationRequired")],
            },
        ])
        .when_async(retry())
        .await
        .then_expect_error(DomainError::NumberInAnotherAccount {
            number: the_number(),
            owner: fabrikam(),
        });
}

// --- Sync state and provisioning outcomes ---

#[test]
fn a_change_that_must_reach_the_backend_leaves_the_number_pending() {
    let number: Number = replay(vec![added(operator_connect(), true)]);
    let state = number.state.unwrap();
    assert!(state.sync_required);
    assert_eq!(state.sync, SyncState::pending(1));

    let number: Number = replay(vec![
        added(operator_connect(), true),
        NumberEvent::NumberProvisioned { for_version: 1 },
        NumberEvent::SipHeaderSet {
            value: sip_header("contoso-gw"),
            sync_required: true,
        },
    ]);
    let state = number.state.unwrap();
    assert_eq!(state.sync, SyncState::pending(3));
    assert_eq!(
        state.details.custom_sip_header,
        Some(SipHeaderValue::parse("contoso-gw").unwrap())
    );
}

#[test]
fn a_change_with_nothing_to_push_is_at_once_in_step_with_the_backend() {
    let number: Number = replay(vec![
        added(direct_routing(), false),
        NumberEvent::SipHeaderSet {
            value: sip_header("contoso-gw"),
            sync_required: false,
        },
        NumberEvent::SipHeaderCleared {
            sync_required: false,
        },
    ]);
    let state = number.state.unwrap();
    assert!(!state.sync_required);
    assert_eq!(state.sync.status, ProvisioningStatus::Synced);
    assert_eq!(state.sync.version, 3);
    assert_eq!(state.details.custom_sip_header, None);
}

#[test]
fn provisioning_outcomes_set_the_sync_state() {
    let failed: Number = replay(vec![
        added(operator_connect(), true),
        NumberEvent::NumberProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("LocationRequired")],
        },
    ]);
    let sync = failed.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Failed);
    assert_eq!(sync.errors, vec![backend_error("LocationRequired")]);

    let synced: Number = replay(vec![
        added(operator_connect(), true),
        NumberEvent::NumberProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("Timeout")],
        },
        NumberEvent::NumberProvisioned { for_version: 1 },
    ]);
    let sync = synced.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Synced);
    assert!(sync.errors.is_empty(), "a success clears earlier errors");
}

#[tokio::test]
async fn a_provisioning_success_for_the_current_version_is_recorded() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::SipHeaderSet {
                value: sip_header("contoso-gw"),
                sync_required: true,
            },
        ])
        .when_async(NumberCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![NumberEvent::NumberProvisioned { for_version: 2 }]);
}

#[tokio::test]
async fn a_provisioning_failure_for_the_current_version_is_recorded() {
    framework()
        .given(vec![added(operator_connect(), true)])
        .when_async(NumberCommand::RecordProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("LocationRequired")],
        })
        .await
        .then_expect_events(vec![NumberEvent::NumberProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("LocationRequired")],
        }]);
}

#[tokio::test]
async fn a_provisioning_success_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::SipHeaderSet {
                value: sip_header("contoso-gw"),
                sync_required: true,
            },
        ])
        .when_async(NumberCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_failure_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberUpdated {
                details: direct_routing(),
                sync_required: true,
            },
        ])
        .when_async(NumberCommand::RecordProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("LocationRequired")],
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_outcome_for_a_deleted_number_emits_nothing() {
    framework()
        .given(vec![
            added(operator_connect(), true),
            NumberEvent::NumberDeleted {
                account: contoso(),
                sync_required: true,
            },
        ])
        .when_async(NumberCommand::RecordProvisioned { for_version: 2 })
        .await
        .then_expect_events(vec![]);
    framework()
        .given_no_previous_events()
        .when_async(NumberCommand::RecordProvisioningFailed {
            for_version: 0,
            errors: vec![backend_error("NotFound")],
        })
        .await
        .then_expect_events(vec![]);
}

// --- The event contract ---

#[test]
fn number_events_keep_their_stored_names_and_version() {
    let cases = [
        (added(direct_routing(), true), "NumberAdded"),
        (
            NumberEvent::NumberUpdated {
                details: direct_routing(),
                sync_required: true,
            },
            "NumberUpdated",
        ),
        (
            NumberEvent::SipHeaderSet {
                value: sip_header("x"),
                sync_required: true,
            },
            "SipHeaderSet",
        ),
        (
            NumberEvent::SipHeaderCleared {
                sync_required: true,
            },
            "SipHeaderCleared",
        ),
        (
            NumberEvent::NumberDeleted {
                account: contoso(),
                sync_required: true,
            },
            "NumberDeleted",
        ),
        (
            NumberEvent::NumberProvisioned { for_version: 1 },
            "NumberProvisioned",
        ),
        (
            NumberEvent::NumberProvisioningFailed {
                for_version: 1,
                errors: vec![],
            },
            "NumberProvisioningFailed",
        ),
        (deletion_requested(), "NumberDeletionRequested"),
        (
            NumberEvent::NumberProvisioningRetried {
                account: contoso(),
                details: direct_routing(),
                deleting: false,
            },
            "NumberProvisioningRetried",
        ),
    ];
    for (event, event_type) in cases {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), "1.0");
    }
}
