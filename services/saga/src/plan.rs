//! What the backend needs for a number whose change is pending, decided from the number's
//! current state, its account's, and what the backend holds (`saga_held`). Pure: the worker
//! loads the inputs and carries the decision out.

use backend::{NumberConfiguration, Product};
use domain::{AccountState, NumberState, ProvisioningError, Service, TenantId};

/// The backend's part in a number's pending change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// No call: the change is answered as it stands (`Ok`: nothing to push, or nothing the
    /// backend holds to release; `Err`: the change cannot be pushed at all).
    Answer(Result<(), Vec<ProvisioningError>>),
    /// The backend does not hold the number: upload it to `tenant` (an order).
    Upload {
        tenant: TenantId,
        configuration: NumberConfiguration,
    },
    /// The tenant holds the number already: set its configuration.
    Update {
        tenant: TenantId,
        configuration: NumberConfiguration,
    },
    /// The backend holds the number for `tenant` and must let it go.
    Release {
        tenant: TenantId,
        then: AfterRelease,
    },
}

/// What a confirmed release means for the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRelease {
    /// The change is done: the number was deleted, or no longer uses a Teams service.
    Answered,
    /// The number moved to another tenant: the upload there follows.
    UploadNext,
}

/// Where the number should stand in the backend after its change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// Held by `tenant` with this configuration.
    Held {
        tenant: TenantId,
        configuration: NumberConfiguration,
    },
    /// Not held by anyone.
    Released,
    /// Leave the backend as it is: the number's Teams service does not flow through.
    HandsOff,
}

/// Decides what a pending change of `number` needs from the backend. `account` is the number's
/// account (if it still exists); `held_by` the tenant the backend holds the number for, if any.
pub fn need(
    number: &NumberState,
    account: Option<&AccountState>,
    held_by: Option<&TenantId>,
) -> Need {
    let wanted = match wanted(number, account) {
        Ok(wanted) => wanted,
        Err(error) => return Need::Answer(Err(vec![error])),
    };
    match (wanted, held_by) {
        (Wanted::HandsOff, _) | (Wanted::Released, None) => Need::Answer(Ok(())),
        (Wanted::Released, Some(holder)) => Need::Release {
            tenant: holder.clone(),
            then: AfterRelease::Answered,
        },
        (
            Wanted::Held {
                tenant,
                configuration,
            },
            None,
        ) => Need::Upload {
            tenant,
            configuration,
        },
        (
            Wanted::Held {
                tenant,
                configuration,
            },
            Some(holder),
        ) if holder == &tenant => Need::Update {
            tenant,
            configuration,
        },
        (Wanted::Held { .. }, Some(holder)) => Need::Release {
            tenant: holder.clone(),
            then: AfterRelease::UploadNext,
        },
    }
}

fn wanted(
    number: &NumberState,
    account: Option<&AccountState>,
) -> Result<Wanted, ProvisioningError> {
    if number.deleting {
        return Ok(Wanted::Released);
    }
    let teams = [
        (
            Service::TeamsOperatorConnect,
            Product::OperatorConnect,
            &number.details.teams_operator_connect,
        ),
        (
            Service::TeamsPhoneMobile,
            Product::TeamsPhoneMobile,
            &number.details.teams_phone_mobile,
        ),
    ];
    let Some((service, product, settings)) =
        teams.into_iter().find_map(|(service, product, settings)| {
            settings
                .as_ref()
                .filter(|s| s.enabled)
                .map(|s| (service, product, s))
        })
    else {
        // No Teams service (any more): the backend must not hold the number.
        return Ok(Wanted::Released);
    };
    let Some(account) = account else {
        return Err(cannot_push(
            "AccountNotFound",
            format!("the number's account '{}' does not exist", number.account),
        ));
    };
    if !account.services.is_sync_enabled(service) {
        return Ok(Wanted::HandsOff);
    }
    let Some(tenant) = account.services.teams_tenant_id.clone() else {
        return Err(cannot_push(
            "TeamsTenantIdRequired",
            format!(
                "the account has no Teams tenant: set teamsTenantId on account '{}', then retry \
                 provisioning",
                account.name
            ),
        ));
    };
    let Some(configuration) = settings.configuration.clone() else {
        return Err(cannot_push(
            "ConfigurationRequired",
            format!("the number has no {} configuration", service.wire_name()),
        ));
    };
    Ok(Wanted::Held {
        tenant,
        configuration: NumberConfiguration {
            telephone_number: number.telephone_number.clone(),
            product,
            assignment_status: settings.assignment_status,
            configuration: configuration.into(),
        },
    })
}

fn cannot_push(code: &str, message: String) -> ProvisioningError {
    ProvisioningError {
        code: code.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {

    use domain::{
        AccountName, AccountServices, Capability, E164, NumberDetails, SyncState, SyncableService,
        TeamsNumberConfiguration, TeamsNumberService, Usage,
    };

    use super::*;

    const TENANT: &str = "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a";
    const OTHER_TENANT: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn account(sync_enabled: bool) -> AccountState {
        AccountState {
            name: AccountName::parse("contoso").unwrap(),
            correlation_id: None,
            services: AccountServices {
                teams_tenant_id: Some(tenant(TENANT)),
                teams_operator_connect: Some(SyncableService {
                    enabled: true,
                    sync_enabled,
                }),
                ..Default::default()
            },
            sync: SyncState::pending(1),
            deleting: false,
        }
    }

    fn teams_configuration() -> TeamsNumberConfiguration {
        TeamsNumberConfiguration {
            usage: Usage::CallingUserAssignment,
            choosable_capabilities: vec![Capability::InboundCalling],
            additional_usages: vec![],
            civic_address_id: None,
            location_id: None,
            allow_tenant_address_update: true,
            displayed_country_code: None,
        }
    }

    fn number(operator_connect: bool) -> NumberState {
        NumberState {
            telephone_number: E164::parse("+15105850001").unwrap(),
            account: AccountName::parse("contoso").unwrap(),
            details: NumberDetails {
                teams_operator_connect: operator_connect.then(|| TeamsNumberService {
                    enabled: true,
                    assignment_status: None,
                    configuration: Some(teams_configuration()),
                }),
                ..Default::default()
            },
            sync: SyncState::pending(1),
            sync_required: true,
            deleting: false,
        }
    }

    fn configuration() -> NumberConfiguration {
        NumberConfiguration {
            telephone_number: E164::parse("+15105850001").unwrap(),
            product: Product::OperatorConnect,
            assignment_status: None,
            configuration: teams_configuration().into(),
        }
    }

    #[test]
    fn a_number_the_backend_does_not_hold_is_uploaded() {
        assert_eq!(
            need(&number(true), Some(&account(true)), None),
            Need::Upload {
                tenant: tenant(TENANT),
                configuration: configuration()
            }
        );
    }

    #[test]
    fn a_number_the_tenant_holds_is_updated() {
        assert_eq!(
            need(&number(true), Some(&account(true)), Some(&tenant(TENANT))),
            Need::Update {
                tenant: tenant(TENANT),
                configuration: configuration()
            }
        );
    }

    #[test]
    fn a_number_being_deleted_is_released_where_it_is_held() {
        let deleting = NumberState {
            deleting: true,
            ..number(true)
        };
        assert_eq!(
            need(&deleting, None, Some(&tenant(OTHER_TENANT))),
            Need::Release {
                tenant: tenant(OTHER_TENANT),
                then: AfterRelease::Answered
            }
        );
    }

    #[test]
    fn a_number_being_deleted_that_the_backend_does_not_hold_is_released_at_once() {
        let deleting = NumberState {
            deleting: true,
            ..number(true)
        };
        assert_eq!(need(&deleting, None, None), Need::Answer(Ok(())));
    }

    #[test]
    fn a_number_whose_teams_service_was_switched_off_is_released() {
        assert_eq!(
            need(&number(false), Some(&account(true)), Some(&tenant(TENANT))),
            Need::Release {
                tenant: tenant(TENANT),
                then: AfterRelease::Answered
            }
        );
    }

    #[test]
    fn a_number_held_by_another_tenant_is_released_there_before_its_upload() {
        assert_eq!(
            need(
                &number(true),
                Some(&account(true)),
                Some(&tenant(OTHER_TENANT))
            ),
            Need::Release {
                tenant: tenant(OTHER_TENANT),
                then: AfterRelease::UploadNext
            }
        );
    }

    #[test]
    fn a_service_without_flow_through_leaves_the_backend_alone() {
        assert_eq!(
            need(&number(true), Some(&account(false)), Some(&tenant(TENANT))),
            Need::Answer(Ok(()))
        );
    }

    #[test]
    fn a_number_without_its_account_cannot_be_pushed() {
        let Need::Answer(Err(errors)) = need(&number(true), None, None) else {
            panic!("expected a failure");
        };
        assert_eq!(errors[0].code, "AccountNotFound");
    }
}
