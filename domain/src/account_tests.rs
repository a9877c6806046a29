//! Given/when/then tests of the Account aggregate: one per command path and per refusal.

use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;

use crate::account::{Account, AccountCommand, AccountEvent, NumberMembership};
use crate::error::DomainError;
use crate::service_details::{AccountServices, Service};
use crate::test_fixtures::*;
use crate::values::{E164, ProvisioningStatus, SyncState};

fn framework() -> TestFramework<Account> {
    TestFramework::<Account>::with(())
}

fn create_or_replace(services: AccountServices) -> AccountCommand {
    AccountCommand::CreateOrReplace {
        name: contoso(),
        correlation_id: None,
        services,
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

fn numbers_added(memberships: Vec<NumberMembership>) -> AccountEvent {
    AccountEvent::NumbersAdded {
        numbers: memberships,
    }
}

fn add_numbers(memberships: Vec<NumberMembership>) -> AccountCommand {
    AccountCommand::AddNumbers {
        account: contoso(),
        numbers: memberships,
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

fn delete(delete_numbers: bool) -> AccountCommand {
    AccountCommand::Delete {
        account: contoso(),
        delete_numbers,
        awaiting_release: vec![],
    }
}

/// Deletes contoso with its numbers, `awaiting` of them waiting for the backend's release.
fn delete_awaiting(awaiting: &[&str]) -> AccountCommand {
    AccountCommand::Delete {
        account: contoso(),
        delete_numbers: true,
        awaiting_release: numbers(awaiting),
    }
}

/// contoso with two Operator Connect numbers, 001 and 002.
fn with_two_numbers() -> Vec<AccountEvent> {
    vec![
        created(operator_connect_account()),
        numbers_added(vec![
            membership("+441632960001", &[Service::TeamsOperatorConnect]),
            membership("+441632960002", &[Service::TeamsOperatorConnect]),
        ]),
    ]
}

/// contoso with two numbers, both awaiting their release for the account's deletion.
fn being_deleted() -> Vec<AccountEvent> {
    let mut events = with_two_numbers();
    events.push(AccountEvent::AccountDeletionRequested {
        deleted_numbers: vec![],
        awaiting_release: numbers(&["+441632960001", "+441632960002"]),
    });
    events
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
        .when_async(create_or_replace(operator_connect_account()))
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
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountUpdated {
            correlation_id: Some(identifier("crm-43")),
            services: operator_connect_account(),
            sync_required: true,
        }]);
}

#[tokio::test]
async fn operator_connect_without_a_teams_tenant_id_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(
            account_services().operator_connect(Flow::Synced).build(),
        ))
        .await
        .then_expect_error(DomainError::TenantIdRequired {
            service: "teamsOperatorConnect",
        });
}

#[tokio::test]
async fn teams_phone_mobile_without_a_teams_tenant_id_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(create_or_replace(
            account_services().phone_mobile(Flow::NotSynced).build(),
        ))
        .await
        .then_expect_error(DomainError::TenantIdRequired {
            service: "teamsPhoneMobile",
        });
}

#[tokio::test]
async fn dropping_the_teams_tenant_id_of_an_operator_connect_account_is_refused() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(create_or_replace(
            account_services().operator_connect(Flow::Synced).build(),
        ))
        .await
        .then_expect_error(DomainError::TenantIdRequired {
            service: "teamsOperatorConnect",
        });
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
        .given(vec![
            created(all_services()),
            numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership(
                    "+441632960002",
                    &[Service::TeamsOperatorConnect, Service::TeamsDirectRouting],
                ),
                membership("+441632960003", &[Service::TeamsDirectRouting]),
            ]),
        ])
        .when_async(create_or_replace(AccountServices {
            teams_tenant_id: Some(other_tenant()),
            ..all_services()
        }))
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
        .given(vec![
            created(all_services()),
            numbers_added(vec![membership(
                "+447700900001",
                &[Service::TeamsPhoneMobile],
            )]),
        ])
        .when_async(create_or_replace(AccountServices {
            teams_tenant_id: Some(other_tenant()),
            ..all_services()
        }))
        .await
        .then_expect_error(DomainError::TenantChangeWithNumbers {
            account: contoso(),
            count: 1,
        });
}

#[tokio::test]
async fn changing_the_teams_tenant_id_of_an_account_with_only_direct_routing_numbers_is_allowed() {
    framework()
        .given(vec![
            created(all_services()),
            numbers_added(vec![
                membership("+441632960003", &[Service::TeamsDirectRouting]),
                membership("+441632960004", &[Service::ZoomPhoneCloudPeering]),
            ]),
        ])
        .when_async(create_or_replace(AccountServices {
            teams_tenant_id: Some(other_tenant()),
            ..all_services()
        }))
        .await
        .then_expect_events(vec![updated(AccountServices {
            teams_tenant_id: Some(other_tenant()),
            ..all_services()
        })]);
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
async fn changing_the_teams_tenant_id_after_the_teams_numbers_left_is_allowed() {
    let moved = account_services()
        .tenant(other_tenant())
        .operator_connect(Flow::Synced)
        .build();
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![membership(
                "+441632960001",
                &[Service::TeamsOperatorConnect],
            )]),
            AccountEvent::NumbersRemoved {
                numbers: numbers(&["+441632960001"]),
            },
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
        .given(vec![
            created(all_services()),
            numbers_added(vec![
                membership("+441632960003", &[Service::TeamsDirectRouting]),
                membership(
                    "+441632960004",
                    &[Service::TeamsDirectRouting, Service::ZoomPhoneCloudPeering],
                ),
            ]),
        ])
        .when_async(create_or_replace(without_direct_routing))
        .await
        .then_expect_error(DomainError::ServiceStillUsed {
            service: "teamsDirectRouting",
            count: 2,
        });
}

#[tokio::test]
async fn leaving_out_a_service_still_used_by_numbers_is_refused() {
    framework()
        .given(vec![
            created(all_services()),
            numbers_added(vec![membership(
                "+441632960005",
                &[Service::AzureOperatorCallProtection],
            )]),
        ])
        .when_async(create_or_replace(AccountServices {
            azure_operator_call_protection: None,
            ..all_services()
        }))
        .await
        .then_expect_error(DomainError::ServiceStillUsed {
            service: "azureOperatorCallProtection",
            count: 1,
        });
}

#[tokio::test]
async fn disabling_a_service_no_number_uses_is_allowed() {
    let without_zoom = AccountServices {
        zoom_phone_cloud_peering: None,
        ..all_services()
    };
    framework()
        .given(vec![
            created(all_services()),
            numbers_added(vec![membership(
                "+441632960003",
                &[Service::TeamsDirectRouting],
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
        .given(vec![
            created(direct_routing_account()),
            numbers_added(vec![membership(
                "+441632960003",
                &[Service::TeamsDirectRouting],
            )]),
        ])
        .when_async(create_or_replace(not_synced.clone()))
        .await
        .then_expect_events(vec![AccountEvent::AccountUpdated {
            correlation_id: None,
            services: not_synced,
            sync_required: false,
        }]);
}

// --- AddNumbers ---

#[tokio::test]
async fn adding_numbers_records_their_memberships() {
    let memberships = vec![
        membership("+441632960001", &[Service::TeamsOperatorConnect]),
        membership("+441632960002", &[Service::TeamsOperatorConnect]),
    ];
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(add_numbers(memberships.clone()))
        .await
        .then_expect_events(vec![numbers_added(memberships)]);
}

#[tokio::test]
async fn adding_numbers_to_a_missing_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(add_numbers(vec![membership(
            "+441632960001",
            &[Service::TeamsOperatorConnect],
        )]))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn adding_numbers_to_a_deleted_account_is_refused() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![],
            },
        ])
        .when_async(add_numbers(vec![membership(
            "+441632960001",
            &[Service::TeamsOperatorConnect],
        )]))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn adding_numbers_with_a_service_the_account_lacks_is_refused() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(add_numbers(vec![
            membership("+441632960001", &[Service::TeamsOperatorConnect]),
            membership("+441632960002", &[Service::ZoomPhoneCloudPeering]),
        ]))
        .await
        .then_expect_error(DomainError::ServiceNotEnabledOnAccount {
            service: "zoomPhoneCloudPeering",
        });
}

#[tokio::test]
async fn adding_numbers_with_unchanged_membership_emits_nothing() {
    let memberships = vec![
        membership("+441632960001", &[Service::TeamsOperatorConnect]),
        membership("+441632960002", &[Service::TeamsOperatorConnect]),
    ];
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(memberships.clone()),
        ])
        .when_async(add_numbers(memberships))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn adding_numbers_records_only_the_memberships_that_changed() {
    framework()
        .given(vec![
            created(all_services()),
            numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership("+441632960002", &[Service::TeamsDirectRouting]),
            ]),
        ])
        .when_async(add_numbers(vec![
            membership("+441632960001", &[Service::TeamsOperatorConnect]),
            membership(
                "+441632960002",
                &[Service::TeamsDirectRouting, Service::ZoomPhoneCloudPeering],
            ),
            membership("+441632960003", &[Service::TeamsPhoneMobile]),
        ]))
        .await
        .then_expect_events(vec![numbers_added(vec![
            membership(
                "+441632960002",
                &[Service::TeamsDirectRouting, Service::ZoomPhoneCloudPeering],
            ),
            membership("+441632960003", &[Service::TeamsPhoneMobile]),
        ])]);
}

// --- RemoveNumbers ---

#[tokio::test]
async fn removing_numbers_records_only_those_the_account_holds() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership("+441632960002", &[Service::TeamsOperatorConnect]),
            ]),
        ])
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960002", "+441632960009"]),
        })
        .await
        .then_expect_events(vec![AccountEvent::NumbersRemoved {
            numbers: numbers(&["+441632960002"]),
        }]);
}

#[tokio::test]
async fn removing_numbers_the_account_does_not_hold_emits_nothing() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960009"]),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn removing_numbers_from_a_missing_account_is_refused() {
    framework()
        .given_no_previous_events()
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960001"]),
        })
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

// --- Delete ---

#[tokio::test]
async fn deleting_an_account_without_numbers_is_allowed() {
    framework()
        .given(vec![created(operator_connect_account())])
        .when_async(delete(false))
        .await
        .then_expect_events(vec![AccountEvent::AccountDeleted {
            deleted_numbers: vec![],
        }]);
}

#[tokio::test]
async fn deleting_an_account_with_numbers_without_deleting_them_is_refused() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
                membership("+441632960002", &[Service::TeamsOperatorConnect]),
            ]),
        ])
        .when_async(delete(false))
        .await
        .then_expect_error(DomainError::AccountHasNumbers {
            account: contoso(),
            count: 2,
        });
}

#[tokio::test]
async fn deleting_an_account_with_its_numbers_lists_the_numbers_deleted() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![
                membership("+441632960002", &[Service::TeamsOperatorConnect]),
                membership("+441632960001", &[Service::TeamsOperatorConnect]),
            ]),
        ])
        .when_async(delete(true))
        .await
        .then_expect_events(vec![AccountEvent::AccountDeleted {
            deleted_numbers: numbers(&["+441632960001", "+441632960002"]),
        }]);
}

#[tokio::test]
async fn deleting_an_account_whose_numbers_await_their_release_records_the_request() {
    framework()
        .given(with_two_numbers())
        .when_async(delete_awaiting(&["+441632960002"]))
        .await
        .then_expect_events(vec![AccountEvent::AccountDeletionRequested {
            deleted_numbers: numbers(&["+441632960001"]),
            awaiting_release: numbers(&["+441632960002"]),
        }]);
}

#[tokio::test]
async fn an_account_whose_numbers_all_await_their_release_needs_no_delete_numbers() {
    framework()
        .given(with_two_numbers())
        .when_async(AccountCommand::Delete {
            account: contoso(),
            delete_numbers: false,
            awaiting_release: numbers(&["+441632960001", "+441632960002"]),
        })
        .await
        .then_expect_events(vec![AccountEvent::AccountDeletionRequested {
            deleted_numbers: vec![],
            awaiting_release: numbers(&["+441632960001", "+441632960002"]),
        }]);
    framework()
        .given(with_two_numbers())
        .when_async(AccountCommand::Delete {
            account: contoso(),
            delete_numbers: false,
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
        .given(with_two_numbers())
        .when_async(delete_awaiting(&["+441632960009"]))
        .await
        .then_expect_events(vec![AccountEvent::AccountDeleted {
            deleted_numbers: numbers(&["+441632960001", "+441632960002"]),
        }]);
}

#[test]
fn an_account_whose_deletion_was_requested_keeps_only_the_numbers_awaiting_release() {
    let mut events = with_two_numbers();
    events.push(AccountEvent::AccountDeletionRequested {
        deleted_numbers: numbers(&["+441632960001"]),
        awaiting_release: numbers(&["+441632960002"]),
    });
    let account: Account = replay(events);
    let state = account
        .state
        .expect("the account stays until its numbers are released");
    assert!(state.deleting);
    assert_eq!(
        state.numbers.keys().cloned().collect::<Vec<_>>(),
        numbers(&["+441632960002"])
    );
}

#[tokio::test]
async fn deleting_an_account_being_deleted_again_emits_nothing() {
    framework()
        .given(being_deleted())
        .when_async(delete_awaiting(&["+441632960001", "+441632960002"]))
        .await
        .then_expect_events(vec![]);
    framework()
        .given(being_deleted())
        .when_async(delete(false))
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
async fn adding_numbers_to_an_account_being_deleted_is_refused() {
    framework()
        .given(being_deleted())
        .when_async(add_numbers(vec![membership(
            "+441632960003",
            &[Service::TeamsOperatorConnect],
        )]))
        .await
        .then_expect_error(DomainError::AccountBeingDeleted(contoso()));
}

#[tokio::test]
async fn removing_some_numbers_of_an_account_being_deleted_keeps_it() {
    framework()
        .given(being_deleted())
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960001"]),
        })
        .await
        .then_expect_events(vec![AccountEvent::NumbersRemoved {
            numbers: numbers(&["+441632960001"]),
        }]);
}

#[tokio::test]
async fn removing_the_last_numbers_of_an_account_being_deleted_deletes_it() {
    let mut given = being_deleted();
    given.push(AccountEvent::NumbersRemoved {
        numbers: numbers(&["+441632960001"]),
    });
    framework()
        .given(given)
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960002"]),
        })
        .await
        .then_expect_events(vec![
            AccountEvent::NumbersRemoved {
                numbers: numbers(&["+441632960002"]),
            },
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![],
            },
        ]);
}

#[tokio::test]
async fn removing_the_last_numbers_of_an_account_not_being_deleted_keeps_it() {
    framework()
        .given(with_two_numbers())
        .when_async(AccountCommand::RemoveNumbers {
            account: contoso(),
            numbers: numbers(&["+441632960001", "+441632960002"]),
        })
        .await
        .then_expect_events(vec![AccountEvent::NumbersRemoved {
            numbers: numbers(&["+441632960001", "+441632960002"]),
        }]);
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
        .when_async(delete(true))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn deleting_an_account_twice_is_refused() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            AccountEvent::AccountDeleted {
                deleted_numbers: vec![],
            },
        ])
        .when_async(delete(false))
        .await
        .then_expect_error(DomainError::AccountNotFound(contoso()));
}

#[tokio::test]
async fn a_deleted_account_can_be_created_again() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![membership(
                "+441632960001",
                &[Service::TeamsOperatorConnect],
            )]),
            AccountEvent::AccountDeleted {
                deleted_numbers: numbers(&["+441632960001"]),
            },
        ])
        .when_async(create_or_replace(direct_routing_account()))
        .await
        .then_expect_events(vec![created(direct_routing_account())]);
}

#[test]
fn a_recreated_account_starts_without_numbers_and_with_a_fresh_sync_state() {
    let account: Account = replay(vec![
        created(operator_connect_account()),
        numbers_added(vec![membership(
            "+441632960001",
            &[Service::TeamsOperatorConnect],
        )]),
        AccountEvent::AccountDeleted {
            deleted_numbers: numbers(&["+441632960001"]),
        },
        created(direct_routing_account()),
    ]);
    let state = account.state.expect("the account exists again");
    assert!(state.numbers.is_empty());
    assert_eq!(state.services, direct_routing_account());
    assert_eq!(state.sync, SyncState::pending(4));
    assert_eq!(account.version, 4);
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

#[tokio::test]
async fn number_changes_do_not_make_a_provisioning_outcome_stale() {
    framework()
        .given(vec![
            created(operator_connect_account()),
            numbers_added(vec![membership(
                "+441632960001",
                &[Service::TeamsOperatorConnect],
            )]),
        ])
        .when_async(AccountCommand::RecordProvisioned { for_version: 1 })
        .await
        .then_expect_events(vec![AccountEvent::AccountProvisioned { for_version: 1 }]);
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

// --- number_count ---

#[test]
fn number_count_counts_the_numbers_using_each_service() {
    let account: Account = replay(vec![
        created(all_services()),
        numbers_added(vec![
            membership("+441632960001", &[Service::TeamsOperatorConnect]),
            membership(
                "+441632960002",
                &[Service::TeamsOperatorConnect, Service::TeamsDirectRouting],
            ),
            membership("+441632960003", &[Service::TeamsDirectRouting]),
            membership("+447700900001", &[Service::TeamsPhoneMobile]),
        ]),
        // A membership change replaces the number's services.
        numbers_added(vec![membership(
            "+441632960003",
            &[Service::ZoomPhoneCloudPeering],
        )]),
        AccountEvent::NumbersRemoved {
            numbers: numbers(&["+447700900001"]),
        },
    ]);
    let state = account.state.unwrap();
    assert_eq!(state.number_count(Service::TeamsOperatorConnect), 2);
    assert_eq!(state.number_count(Service::TeamsDirectRouting), 1);
    assert_eq!(state.number_count(Service::ZoomPhoneCloudPeering), 1);
    assert_eq!(state.number_count(Service::TeamsPhoneMobile), 0);
    assert_eq!(state.number_count(Service::AzureOperatorCallProtection), 0);
    assert_eq!(state.numbers.len(), 3);
}

// --- The event contract ---

#[test]
fn account_events_keep_their_stored_names_and_version() {
    let cases = [
        (created(direct_routing_account()), "AccountCreated"),
        (updated(direct_routing_account()), "AccountUpdated"),
        (numbers_added(vec![]), "NumbersAdded"),
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
