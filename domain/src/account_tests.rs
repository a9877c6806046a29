//! Given/when/then tests of the Account aggregate: one per command path and per refusal.
//!
//! The account's numbers are not in its stream: the command side hands them to the commands
//! (`numbers` counts to CreateOrReplace, `members` to Delete, `remaining_numbers` to
//! CompleteDeletion), so the tests state them there.

use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;

use crate::account::{Account, AccountCommand, AccountEvent, NumberCounts, NumberMembership};
use crate::error::DomainError;
use crate::service_details::{AccountServices, Service};
use crate::test_fixtures::*;
use crate::values::{E164, ProvisioningStatus, SyncState};

/// The two numbers of contoso in most tests.
const TWO_NUMBERS: [&str; 2] = ["+441632960001", "+441632960002"];

fn framework() -> TestFramework<Account> {
    TestFramework::<Account>::with(())
}

/// Creates or replaces contoso with `services`, the account holding no numbers.
fn create_or_replace(services: AccountServices) -> AccountCommand {
    replace_holding(services, NumberCounts::default())
}

/// Creates or replaces contoso with `services`, the account holding the numbers `numbers` counts.
fn replace_holding(services: AccountServices, numbers: NumberCounts) -> AccountCommand {
    AccountCommand::CreateOrReplace {
        name: contoso(),
        correlation_id: None,
        services,
        numbers,
    }
}

fn created(services: AccountServices) -> AccountEvent {
    let sync_required = services.any_sync_enabled();
    AccountEvent::AccountCreated {
        name: contoso(),
        correlation_id: None,
        services,
        sync_required,
    }
}

fn updated(services: AccountServices) -> AccountEvent {
    let sync_required = services.any_sync_enabled();
    AccountEvent::AccountUpdated {
        correlation_id: None,
        services,
        sync_required,
    }
}

fn membership(telephone_number: &str, services: &[Service]) -> NumberMembership {
    NumberMembership {
        telephone_number: number(telephone_number),
        services: services.to_vec(),
    }
}

/// A `NumbersAdded` event as stored before memberships left the account's stream.
fn legacy_numbers_added(memberships: Vec<NumberMembership>) -> AccountEvent {
    AccountEvent::NumbersAdded {
        numbers: memberships,
    }
}

/// A `NumbersRemoved` event as stored before memberships left the account's stream.
fn legacy_numbers_removed(values: &[&str]) -> AccountEvent {
    AccountEvent::NumbersRemoved {
        numbers: numbers(values),
    }
}

fn numbers(values: &[&str]) -> Vec<E164> {
    values.iter().map(|value| number(value)).collect()
}

fn operator_connect_account() -> AccountServices {
    account_services()
        .tenant(tenant())
        .operator_connect(Flow::Synced)
        .build()
}

fn direct_routing_account() -> AccountServices {
    account_services().direct_routing(Flow::Synced).build()
}

/// `all_services` with the Teams tenant moved to `other_tenant`.
fn all_services_in_other_tenant() -> AccountServices {
    AccountServices {
        teams_tenant_id: Some(other_tenant()),
        ..all_services()
    }
}

/// Deletes contoso, which holds `members`, none of them awaiting release.
fn delete(delete_numbers: bool, members: &[&str]) -> AccountCommand {
    AccountCommand::Delete {
        account: contoso(),
        delete_numbers,
        members: numbers(members),
        awaiting_release: vec![],
    }
}

/// Deletes contoso, which holds `members`, with its numbers, `awaiting` of them waiting for the
/// backend's release.
fn delete_awaiting(members: &[&str], awaiting: &[&str]) -> AccountCommand {
    AccountCommand::Delete {
        account: contoso(),
        delete_numbers: true,
        members: numbers(members),
        awaiting_release: numbers(awaiting),
    }
}

fn complete_deletion(remaining_numbers: u64) -> AccountCommand {
    AccountCommand::CompleteDeletion {
        account: contoso(),
        remaining_numbers,
    }
}

fn deleted(values: &[&str]) -> AccountEvent {
    AccountEvent::AccountDeleted {
        deleted_numbers: numbers(values),
    }
}

/// contoso, with Operator Connect, its two numbers both awaiting their release for the
/// account's deletion.
fn being_deleted() -> Vec<AccountEvent> {
    vec![
        created(operator_connect_account()),
        AccountEvent::AccountDeletionRequested {
            deleted_numbers: vec![],
            awaiting_release: numbers(&TWO_NUMBERS),
        },
    ]
}

fn failed_at(for_version: u64) -> AccountEvent {
    AccountEvent::AccountProvisioningFailed {
        for_version,
        errors: vec![backend_error("TenantNotFound")],
    }
}

// --- CreateOrReplace ---

#[tokio::test]
async fn creating_an_account_records_it_with_its_services() {
    framework()
        .given_no_previous_events()
        .when_async(AccountCommand::CreateOrReplace {
            name: contoso(),
            correlation_id: Some(identifier("crm-42")),
            services: operator_connect_account(),
            numbers: NumberCounts::default(),
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountCreated {
            name: contoso(),
            correlation_id: Some(identifier("crm-42")),
            services: operator_connect_account(),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn creating_an_account_without_sync_enabled_services_needs_no_sync() {
    let services = account_services()
        .direct_routing(Flow::NotSynced)
        .call_protection()
        .build();
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(services.clone()))
        .await
        .then_expect_events(vec![AccountEvent::AccountCreated {
            name: contoso(),
            correlation_id: None,
            services,
            sync_required: false,
        }]);
}

#[tokio::test]
async fn replacing_an_account_records_its_new_settings() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(create_or_replace(all_services()))
        .await
        .then_expect_events(vec![AccountEvent::AccountUpdated {
            correlation_id: None,
            services: all_services(),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn replacing_an_account_with_identical_settings_emits_nothing() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(replace_holding(
            operator_connect_account(),
            NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 2)]),
        ))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn changing_only_the_correlation_id_updates_the_account() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::CreateOrReplace {
            name: contoso(),
            correlation_id: Some(identifier("crm-43")),
            services: operator_connect_account(),
            numbers: NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 2)]),
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountUpdated {
            correlation_id: Some(identifier("crm-43")),
            services: operator_connect_account(),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn operator_connect_without_a_teams_tenant_id_is_accepted() {
    // As in the public API: the tenant may come later; until then the numbers wait.
    let services = account_services().operator_connect(Flow::Synced).build();
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(services.clone()))
        .await
        .then_expect_events(vec![created(services)]);
}

#[tokio::test]
async fn teams_phone_mobile_without_a_teams_tenant_id_is_accepted() {
    let services = account_services().phone_mobile(Flow::NotSynced).build();
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(services.clone()))
        .await
        .then_expect_events(vec![created(services)]);
}

#[tokio::test]
async fn dropping_the_teams_tenant_id_of_an_account_with_teams_numbers_is_refused() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::CreateOrReplace {
            name: contoso(),
            correlation_id: None,
            services: account_services().operator_connect(Flow::Synced).build(),
            numbers: NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 2)]),
        })
        .await
        .then_expect_error(DomainError::TenantChangeWithNumbers {
            account: contoso(),
            count: 2,
        });
}

#[tokio::test]
async fn a_first_teams_tenant_id_may_be_set_under_numbers_waiting_for_it() {
    let without = account_services().operator_connect(Flow::Synced).build();
    framework()
        .given(vec![created(without)])
        .when_async(AccountCommand::CreateOrReplace {
            name: contoso(),
            correlation_id: None,
            services: operator_connect_account(),
            numbers: NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 2)]),
        })
        .await
        .then_expect_events(vec![updated(operator_connect_account())]);
}

#[tokio::test]
async fn a_disabled_teams_service_needs_no_teams_tenant_id() {
    let mut services = account_services().operator_connect(Flow::Synced).build();
    if let Some(operator_connect) = &mut services.teams_operator_connect {
        operator_connect.enabled = false;
    }
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(services.clone()))
        .await
        .then_expect_events(vec![created(services)]);
}

#[tokio::test]
async fn changing_the_teams_tenant_id_while_the_account_has_operator_connect_numbers_is_refused() {
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            all_services_in_other_tenant(),
            NumberCounts::of([
                &[Service::TeamsOperatorConnect][..],
                &[Service::TeamsOperatorConnect, Service::TeamsDirectRouting][..],
                &[Service::TeamsDirectRouting][..],
            ]),
        ))
        .await
        .then_expect_error(DomainError::TenantChangeWithNumbers {
            account: contoso(),
            count: 2,
        });
}

#[tokio::test]
async fn changing_the_teams_tenant_id_while_the_account_has_teams_phone_mobile_numbers_is_refused()
{
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            all_services_in_other_tenant(),
            NumberCounts::from_groups(vec![(vec![Service::TeamsPhoneMobile], 1)]),
        ))
        .await
        .then_expect_error(DomainError::TenantChangeWithNumbers {
            account: contoso(),
            count: 1,
        });
}

#[tokio::test]
async fn changing_the_teams_tenant_id_counts_every_teams_tenant_bound_number() {
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            all_services_in_other_tenant(),
            NumberCounts::from_groups(vec![
                (vec![Service::TeamsOperatorConnect], 3),
                (vec![Service::TeamsPhoneMobile], 4),
                (vec![Service::TeamsDirectRouting], 5),
            ]),
        ))
        .await
        .then_expect_error(DomainError::TenantChangeWithNumbers {
            account: contoso(),
            count: 7,
        });
}

#[tokio::test]
async fn changing_the_teams_tenant_id_of_an_account_with_only_direct_routing_numbers_is_allowed() {
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            all_services_in_other_tenant(),
            NumberCounts::from_groups(vec![
                (vec![Service::TeamsDirectRouting], 1),
                (vec![Service::ZoomPhoneCloudPeering], 1),
            ]),
        ))
        .await
        .then_expect_events(vec![updated(all_services_in_other_tenant())]);
}

#[tokio::test]
async fn changing_the_teams_tenant_id_of_an_account_without_numbers_is_allowed() {
    let moved = account_services()
        .tenant(other_tenant())
        .operator_connect(Flow::Synced)
        .build();
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(create_or_replace(moved.clone()))
        .await
        .then_expect_events(vec![updated(moved)]);
}

#[tokio::test]
async fn changing_the_teams_tenant_id_when_the_teams_numbers_count_zero_is_allowed() {
    let moved = account_services()
        .tenant(other_tenant())
        .operator_connect(Flow::Synced)
        .phone_mobile(Flow::Synced)
        .build();
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            moved.clone(),
            NumberCounts::from_groups(vec![
                (vec![Service::TeamsOperatorConnect], 0),
                (vec![Service::TeamsPhoneMobile], 0),
            ]),
        ))
        .await
        .then_expect_events(vec![updated(moved)]);
}

#[tokio::test]
async fn changing_the_teams_tenant_id_is_decided_on_the_counts_not_on_legacy_number_events() {
    let moved = account_services()
        .tenant(other_tenant())
        .operator_connect(Flow::Synced)
        .build();
    framework()
        .given(vec![
            created(operator_connect_account()),
            legacy_numbers_added(vec![membership(
                "+441632960001",
                &[Service::TeamsOperatorConnect],
            )]),
        ])
        .when_async(create_or_replace(moved.clone()))
        .await
        .then_expect_events(vec![updated(moved)]);
}

#[tokio::test]
async fn disabling_a_service_still_used_by_numbers_is_refused() {
    let mut without_direct_routing = all_services();
    if let Some(direct_routing) = &mut without_direct_routing.teams_direct_routing {
        direct_routing.enabled = false;
    }
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            without_direct_routing,
            NumberCounts::from_groups(vec![
                (vec![Service::TeamsDirectRouting], 1),
                (
                    vec![Service::TeamsDirectRouting, Service::ZoomPhoneCloudPeering],
                    1,
                ),
            ]),
        ))
        .await
        .then_expect_error(DomainError::ServiceStillUsed {
            service: "teamsDirectRouting",
            count: 2,
        });
}

#[tokio::test]
async fn leaving_out_a_service_still_used_by_numbers_is_refused() {
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            AccountServices {
                azure_operator_call_protection: None,
                ..all_services()
            },
            NumberCounts::from_groups(vec![(vec![Service::AzureOperatorCallProtection], 1)]),
        ))
        .await
        .then_expect_error(DomainError::ServiceStillUsed {
            service: "azureOperatorCallProtection",
            count: 1,
        });
}

#[tokio::test]
async fn a_service_still_used_is_refused_before_a_tenant_change_with_numbers() {
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            AccountServices {
                teams_operator_connect: None,
                ..all_services_in_other_tenant()
            },
            NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 2)]),
        ))
        .await
        .then_expect_error(DomainError::ServiceStillUsed {
            service: "teamsOperatorConnect",
            count: 2,
        });
}

#[tokio::test]
async fn disabling_a_service_no_number_uses_is_allowed() {
    let without_zoom = AccountServices {
        zoom_phone_cloud_peering: None,
        ..all_services()
    };
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            without_zoom.clone(),
            NumberCounts::from_groups(vec![(vec![Service::TeamsDirectRouting], 1)]),
        ))
        .await
        .then_expect_events(vec![updated(without_zoom)]);
}

#[tokio::test]
async fn disabling_a_service_whose_numbers_count_zero_is_allowed() {
    let without_zoom = AccountServices {
        zoom_phone_cloud_peering: None,
        ..all_services()
    };
    framework()
        .given(vec![created(all_services())])
        .when_async(replace_holding(
            without_zoom.clone(),
            NumberCounts::from_groups(vec![(vec![Service::ZoomPhoneCloudPeering], 0)]),
        ))
        .await
        .then_expect_events(vec![updated(without_zoom)]);
}

#[tokio::test]
async fn disabling_a_service_is_decided_on_the_counts_not_on_legacy_number_events() {
    let without_zoom = AccountServices {
        zoom_phone_cloud_peering: None,
        ..all_services()
    };
    framework()
        .given(vec![
            created(all_services()),
            legacy_numbers_added(vec![membership(
                "+441632960004",
                &[Service::ZoomPhoneCloudPeering],
            )]),
        ])
        .when_async(create_or_replace(without_zoom.clone()))
        .await
        .then_expect_events(vec![updated(without_zoom)]);
}

#[tokio::test]
async fn turning_off_sync_for_a_service_in_use_is_allowed_and_needs_no_sync() {
    let not_synced = account_services().direct_routing(Flow::NotSynced).build();
    framework()
        .given(vec![created(direct_routing_account())])
        .when_async(replace_holding(
            not_synced.clone(),
            NumberCounts::from_groups(vec![(vec![Service::TeamsDirectRouting], 1)]),
        ))
        .await
        .then_expect_events(vec![AccountEvent::AccountUpdated {
            correlation_id: None,
            services: not_synced,
            sync_required: false,
        }]);
}

// --- NumberCounts ---

#[test]
fn number_counts_count_the_numbers_using_each_service() {
    let counts = NumberCounts::from_groups(vec![
        (vec![Service::TeamsOperatorConnect], 1),
        (
            vec![Service::TeamsOperatorConnect, Service::TeamsDirectRouting],
            2,
        ),
        (vec![Service::ZoomPhoneCloudPeering], 3),
        (vec![Service::TeamsPhoneMobile], 0),
    ]);
    assert_eq!(counts.using(Service::TeamsOperatorConnect), 3);
    assert_eq!(counts.using(Service::TeamsDirectRouting), 2);
    assert_eq!(counts.using(Service::ZoomPhoneCloudPeering), 3);
    assert_eq!(counts.using(Service::TeamsPhoneMobile), 0);
    assert_eq!(counts.using(Service::AzureOperatorCallProtection), 0);
    assert_eq!(counts.teams_tenant_bound(), 3);
    assert_eq!(counts.total(), 6);
}

#[test]
fn number_counts_of_listed_numbers_count_each_once() {
    let counts = NumberCounts::of([
        &[Service::TeamsPhoneMobile][..],
        &[
            Service::TeamsPhoneMobile,
            Service::AzureOperatorCallProtection,
        ][..],
        &[][..],
    ]);
    assert_eq!(counts.total(), 3);
    assert_eq!(counts.using(Service::TeamsPhoneMobile), 2);
    assert_eq!(counts.using(Service::AzureOperatorCallProtection), 1);
    assert_eq!(counts.teams_tenant_bound(), 2);
}

#[test]
fn number_counts_leave_out_empty_groups() {
    let counts = NumberCounts::from_groups(vec![(vec![Service::TeamsOperatorConnect], 0)]);
    assert_eq!(counts, NumberCounts::default());
    assert_eq!(counts.total(), 0);
}

// --- Delete ---

#[tokio::test]
async fn deleting_an_account_without_numbers_is_allowed() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete(false, &[]))
        .await
        .then_expect_events(vec![deleted(&[])]);
}

#[tokio::test]
async fn deleting_an_account_with_numbers_without_deleting_them_is_refused() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete(false, &TWO_NUMBERS))
        .await
        .then_expect_error(DomainError::AccountHasNumbers {
            account: contoso(),
            count: 2,
        });
}

#[tokio::test]
async fn deleting_an_account_with_its_numbers_lists_the_numbers_deleted() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete(true, &TWO_NUMBERS))
        .await
        .then_expect_events(vec![deleted(&TWO_NUMBERS)]);
}

#[tokio::test]
async fn deleting_an_account_without_members_ignores_legacy_number_events() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            legacy_numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership("+441632960002", &[Service::TeamsOperatorConnect]),
            ]),
        ])
        .when_async(delete(false, &[]))
        .await
        .then_expect_events(vec![deleted(&[])]);
}

#[tokio::test]
async fn deleting_an_account_whose_numbers_await_their_release_records_the_request() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete_awaiting(&TWO_NUMBERS, &["+441632960002"]))
        .await
        .then_expect_events(vec![AccountEvent::AccountDeletionRequested {
            deleted_numbers: numbers(&["+441632960001"]),
            awaiting_release: numbers(&["+441632960002"]),
        }]);
}

#[tokio::test]
async fn an_account_whose_numbers_all_await_their_release_needs_no_delete_numbers() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::Delete {
            account: contoso(),
            delete_numbers: false,
            members: numbers(&TWO_NUMBERS),
            awaiting_release: numbers(&TWO_NUMBERS),
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountDeletionRequested {
            deleted_numbers: vec![],
            awaiting_release: numbers(&TWO_NUMBERS),
        }]);
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::Delete {
            account: contoso(),
            delete_numbers: false,
            members: numbers(&TWO_NUMBERS),
            awaiting_release: numbers(&["+441632960001"]),
        })
        .await
        .then_expect_error(DomainError::AccountHasNumbers {
            account: contoso(),
            count: 1,
        });
}

#[tokio::test]
async fn numbers_said_to_await_release_that_the_account_does_not_hold_are_ignored() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete_awaiting(&TWO_NUMBERS, &["+441632960009"]))
        .await
        .then_expect_events(vec![deleted(&TWO_NUMBERS)]);
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete_awaiting(&[], &["+441632960009"]))
        .await
        .then_expect_events(vec![deleted(&[])]);
}

#[test]
fn an_account_whose_deletion_was_requested_stays_being_deleted() {
    let account: Account = replay(vec![
        created(operator_connect_account()),
        AccountEvent::AccountDeletionRequested {
            deleted_numbers: numbers(&["+441632960001"]),
            awaiting_release: numbers(&["+441632960002"]),
        },
    ]);
    assert_eq!(account.version, 2);
    let state = account
        .state
        .expect("the account stays until its numbers are released");
    assert!(state.deleting);
    assert_eq!(state.services, operator_connect_account());
    assert_eq!(state.sync, SyncState::pending(1));
}

#[tokio::test]
async fn deleting_an_account_being_deleted_again_emits_nothing() {
    framework()
        .given(being_deleted())
        .when_async(delete_awaiting(&TWO_NUMBERS, &TWO_NUMBERS))
        .await
        .then_expect_events(vec![]);
    framework()
        .given(being_deleted())
        .when_async(delete(false, &TWO_NUMBERS))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn replacing_an_account_being_deleted_is_refused() {
    framework()
        .given(being_deleted())
        .when_async(create_or_replace(all_services()))
        .await
        .then_expect_error(DomainError::AccountBeingDeleted(contoso()));
    framework()
        .given(being_deleted())
        .when_async(create_or_replace(operator_connect_account()))
        .await
        .then_expect_error(DomainError::AccountBeingDeleted(contoso()));
}

#[tokio::test]
async fn a_provisioning_outcome_for_an_account_being_deleted_is_recorded() {
    framework()
        .given(being_deleted())
        .when_async(AccountCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioned { for_version: 1 }]);
}

#[test]
fn an_account_state_stored_before_deletions_waited_reads_as_not_being_deleted() {
    let account: Account = replay(vec![created(operator_connect_account())]);
    let mut json = serde_json::to_value(account.state.unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("deleting");
    let state: crate::account::AccountState = serde_json::from_value(json).unwrap();
    assert!(!state.deleting);
}

#[tokio::test]
async fn deleting_a_missing_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(delete(true, &[]))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn deleting_an_account_twice_is_refused() {
    framework()
        .given(vec![created(operator_connect_account()), deleted(&[])])
        .when_async(delete(false, &[]))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn a_deleted_account_can_be_created_again() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            deleted(&["+441632960001"]),
        ])
        .when_async(create_or_replace(direct_routing_account()))
        .await
        .then_expect_events(vec![created(direct_routing_account())]);
}

#[test]
fn a_recreated_account_starts_with_a_fresh_state() {
    let account: Account = replay(vec![
        created(operator_connect_account()),
        AccountEvent::AccountDeletionRequested {
            deleted_numbers: vec![],
            awaiting_release: numbers(&["+441632960001"]),
        },
        deleted(&[]),
        created(direct_routing_account()),
    ]);
    let state = account.state.expect("the account exists again");
    assert!(!state.deleting);
    assert_eq!(state.services, direct_routing_account());
    assert_eq!(state.sync, SyncState::pending(4));
    assert_eq!(account.version, 4);
}

// --- CompleteDeletion ---

#[tokio::test]
async fn the_last_numbers_gone_delete_an_account_being_deleted() {
    framework()
        .given(being_deleted())
        .when_async(complete_deletion(0))
        .await
        .then_expect_events(vec![deleted(&[])]);
}

#[tokio::test]
async fn an_account_being_deleted_stays_while_numbers_remain() {
    framework()
        .given(being_deleted())
        .when_async(complete_deletion(1))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn an_account_not_being_deleted_stays_when_its_last_numbers_are_gone() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(complete_deletion(0))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn completing_the_deletion_of_a_missing_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(complete_deletion(0))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
    let mut already_deleted = being_deleted();
    already_deleted.push(deleted(&[]));
    framework()
        .given(already_deleted)
        .when_async(complete_deletion(0))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

// --- Legacy number events ---

#[test]
fn a_stream_with_legacy_number_events_still_loads() {
    let without: Account = replay(vec![created(operator_connect_account())]);
    let with: Account = replay(vec![
        created(operator_connect_account()),
        legacy_numbers_added(vec![
            membership("+441632960001", &[Service::TeamsOperatorConnect]),
            membership("+441632960002", &[Service::TeamsOperatorConnect]),
        ]),
        legacy_numbers_removed(&["+441632960001"]),
    ]);
    assert_eq!(with.version, 3, "the legacy events count in the version");
    assert_eq!(with.state, without.state, "and change nothing else");
}

#[test]
fn legacy_number_events_stored_as_json_are_still_read() {
    let stored = [
        serde_json::json!({"NumbersAdded": {"numbers": [
            {"telephone_number": "+441632960001", "services": ["teamsOperatorConnect"]},
            {"telephone_number": "+441632960002", "services": ["teamsOperatorConnect", "teamsDirectRouting"]},
        ]}}),
        serde_json::json!({"NumbersRemoved": {"numbers": ["+441632960001"]}}),
    ];
    let events: Vec<AccountEvent> = stored
        .into_iter()
        .map(|json| serde_json::from_value(json).expect("a stored account event"))
        .collect();
    assert_eq!(
        events,
        vec![
            legacy_numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership(
                    "+441632960002",
                    &[Service::TeamsOperatorConnect, Service::TeamsDirectRouting],
                ),
            ]),
            legacy_numbers_removed(&["+441632960001"]),
        ]
    );
    let mut stream = vec![created(operator_connect_account())];
    stream.extend(events);
    stream.push(AccountEvent::AccountProvisioned { for_version: 1 });
    let account: Account = replay(stream);
    assert_eq!(account.version, 4);
    let state = account.state.expect("the account exists");
    assert_eq!(state.services, operator_connect_account());
    assert_eq!(state.sync.status, ProvisioningStatus::Synced);
    assert_eq!(state.sync.version, 1);
}

#[tokio::test]
async fn legacy_number_events_do_not_make_a_provisioning_outcome_stale() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            legacy_numbers_added(vec![membership(
                "+441632960001",
                &[Service::TeamsOperatorConnect],
            )]),
            legacy_numbers_removed(&["+441632960001"]),
        ])
        .when_async(AccountCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioned { for_version: 1 }]);
}

// --- Sync state and provisioning outcomes ---

#[test]
fn an_account_with_a_sync_enabled_service_is_pending_after_each_change() {
    let account: Account = replay(vec![created(operator_connect_account())]);
    assert_eq!(account.state.unwrap().sync, SyncState::pending(1));

    let account: Account = replay(vec![
        created(operator_connect_account()),
        AccountEvent::AccountProvisioned { for_version: 1 },
        updated(all_services()),
    ]);
    assert_eq!(account.state.unwrap().sync, SyncState::pending(3));
}

#[test]
fn an_account_without_sync_enabled_services_has_nothing_to_sync() {
    let services = account_services()
        .direct_routing(Flow::NotSynced)
        .zoom(Flow::NotSynced)
        .call_protection()
        .build();
    assert!(!services.any_sync_enabled());
    let account: Account = replay(vec![created(services)]);
    let sync = account.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Synced);
    assert_eq!(sync.version, 1);
}

#[test]
fn azure_operator_call_protection_never_flows_to_the_backend() {
    let services = account_services().call_protection().build();
    assert!(services.is_enabled(Service::AzureOperatorCallProtection));
    assert!(!services.is_sync_enabled(Service::AzureOperatorCallProtection));
}

#[tokio::test]
async fn a_provisioning_success_for_the_current_version_is_recorded() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioned { for_version: 1 }]);
}

#[tokio::test]
async fn a_provisioning_failure_for_the_current_version_is_recorded() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::RecordProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("TenantNotFound")],
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("TenantNotFound")],
        }]);
}

#[tokio::test]
async fn a_provisioning_success_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            updated(all_services()),
        ])
        .when_async(AccountCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_failure_for_a_stale_version_emits_nothing() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            updated(all_services()),
        ])
        .when_async(AccountCommand::RecordProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("TenantNotFound")],
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_provisioning_outcome_for_a_missing_account_emits_nothing() {
    framework()
        .given_no_previous_events()
        .when_async(AccountCommand::RecordProvisioned { for_version: 0 })
        .await
        .then_expect_events(vec![]);
    framework()
        .given(vec![
            created(operator_connect_account()),
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![],
            },
        ])
        .when_async(AccountCommand::RecordProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("Gone")],
        })
        .await
        .then_expect_events(vec![]);
}

#[test]
fn provisioning_outcomes_set_the_sync_state() {
    let failed: Account = replay(vec![
        created(operator_connect_account()),
        AccountEvent::AccountProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("TenantNotFound")],
        },
    ]);
    let sync = failed.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Failed);
    assert_eq!(sync.errors, vec![backend_error("TenantNotFound")]);
    assert_eq!(sync.version, 1);

    let synced: Account = replay(vec![
        created(operator_connect_account()),
        AccountEvent::AccountProvisioningFailed {
            for_version: 1,
            errors: vec![backend_error("TenantNotFound")],
        },
        AccountEvent::AccountProvisioned { for_version: 1 },
    ]);
    let sync = synced.state.unwrap().sync;
    assert_eq!(sync.status, ProvisioningStatus::Synced);
    assert!(sync.errors.is_empty(), "a success clears earlier errors");
}

// --- RetryProvisioning ---

#[tokio::test]
async fn retrying_a_failed_provisioning_pushes_the_services_again() {
    framework()
        .given(vec![created(operator_connect_account()), failed_at(1)])
        .when_async(AccountCommand::RetryProvisioning { account: contoso() })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioningRetried {
            services: operator_connect_account(),
        }]);
}

#[test]
fn a_retried_provisioning_is_pending_at_the_new_version() {
    let account: Account = replay(vec![
        created(operator_connect_account()),
        failed_at(1),
        AccountEvent::AccountProvisioningRetried {
            services: operator_connect_account(),
        },
    ]);
    let state = account.state.unwrap();
    assert_eq!(state.sync, SyncState::pending(3));
    assert_eq!(state.services, operator_connect_account());
}

#[tokio::test]
async fn retrying_a_pending_or_synced_provisioning_is_refused() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::RetryProvisioning { account: contoso() })
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Pending,
        });
    framework()
        .given(vec![
            created(operator_connect_account()),
            AccountEvent::AccountProvisioned { for_version: 1 },
        ])
        .when_async(AccountCommand::RetryProvisioning { account: contoso() })
        .await
        .then_expect_error(DomainError::ProvisioningNotFailed {
            status: ProvisioningStatus::Synced,
        });
}

#[tokio::test]
async fn retrying_the_provisioning_of_a_missing_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(AccountCommand::RetryProvisioning { account: contoso() })
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

// --- The event contract ---

#[test]
fn account_events_keep_their_stored_names_and_version() {
    let cases = [
        (created(direct_routing_account()), "AccountCreated"),
        (updated(direct_routing_account()), "AccountUpdated"),
        (legacy_numbers_added(vec![]), "NumbersAdded"),
        (
            AccountEvent::NumbersRemoved { numbers: vec![] },
            "NumbersRemoved",
        ),
        (
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![],
            },
            "AccountDeleted",
        ),
        (
            AccountEvent::AccountProvisioned { for_version: 1 },
            "AccountProvisioned",
        ),
        (
            AccountEvent::AccountProvisioningFailed {
                for_version: 1,
                errors: vec![],
            },
            "AccountProvisioningFailed",
        ),
        (
            AccountEvent::AccountDeletionRequested {
                deleted_numbers: vec![],
                awaiting_release: vec![],
            },
            "AccountDeletionRequested",
        ),
        (
            AccountEvent::AccountProvisioningRetried {
                services: direct_routing_account(),
            },
            "AccountProvisioningRetried",
        ),
    ];
    for (event, event_type) in cases {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), "1.0");
    }
}
