//! The Account aggregate: an enterprise customer, its id the account name.
//!
//! Which numbers an account holds is not in its stream: writes of different numbers of one
//! account must not queue on the account's sequence. The command side keeps the memberships
//! beside the numbers' events (the event store's `account_numbers`) and hands what the rules
//! need to the account's commands — how many numbers use each service, which numbers the
//! account holds — read under the account's lock, which membership writers share. So deleting
//! an account, changing its Teams tenant or switching a service off are still decided on
//! memberships that cannot change until the decision is committed.
//!
//! Deleting an account with its numbers, when some of them must first be released in the
//! backend, records the request (`AccountDeletionRequested`): the numbers that need no release go
//! at once, the account stays, `deleting`, refusing changes, and it is deleted in the same
//! commit that removes its last number (when the backend has released it).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::service_details::{AccountServices, Service};
use crate::values::{
    AccountName, E164, Identifier, ProvisioningError, ProvisioningStatus, SyncState,
};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    /// How many events have been applied: the stream's last sequence.
    pub version: u64,
    pub state: Option<AccountState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub name: AccountName,
    pub correlation_id: Option<Identifier>,
    pub services: AccountServices,
    pub sync: SyncState,
    /// Whether the account waits for the backend to release its last numbers to be deleted.
    #[serde(default)]
    pub deleting: bool,
}

impl AccountState {
    /// Refuses any change to an account that is being deleted.
    pub fn check_changeable(&self) -> Result<(), DomainError> {
        if self.deleting {
            return Err(DomainError::AccountBeingDeleted(self.name.clone()));
        }
        Ok(())
    }
}

/// A number's membership in an account, with the services it uses there: the payload of the
/// `NumbersAdded` events stored before memberships left the account's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberMembership {
    pub telephone_number: E164,
    pub services: Vec<Service>,
}

/// How many numbers an account holds, grouped by the services they use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumberCounts {
    groups: Vec<(Vec<Service>, u64)>,
}

impl NumberCounts {
    /// Counts from groups of numbers: the services each group's numbers use, and how many.
    pub fn from_groups(groups: impl IntoIterator<Item = (Vec<Service>, u64)>) -> Self {
        NumberCounts {
            groups: groups.into_iter().filter(|(_, n)| *n > 0).collect(),
        }
    }

    /// Counts of the numbers listed, each with its services.
    pub fn of<'a>(numbers: impl IntoIterator<Item = &'a [Service]>) -> Self {
        Self::from_groups(numbers.into_iter().map(|s| (s.to_vec(), 1)))
    }

    pub fn total(&self) -> u64 {
        self.groups.iter().map(|(_, n)| n).sum()
    }

    /// How many of the numbers have `service` enabled.
    pub fn using(&self, service: Service) -> u64 {
        self.groups
            .iter()
            .filter(|(services, _)| services.contains(&service))
            .map(|(_, n)| n)
            .sum()
    }

    /// How many of the numbers live in the account's Teams tenant (Operator Connect, Teams
    /// Phone Mobile).
    pub fn teams_tenant_bound(&self) -> u64 {
        self.groups
            .iter()
            .filter(|(services, _)| services.iter().any(|s| s.is_teams_tenant_bound()))
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    /// Creates the account, or replaces its settings when it exists. `numbers` counts the
    /// numbers the account holds, read so that they cannot change before the decision commits.
    CreateOrReplace {
        name: AccountName,
        correlation_id: Option<Identifier>,
        services: AccountServices,
        numbers: NumberCounts,
    },
    /// Deletes the account; with `delete_numbers` its numbers go with it. `members` are the
    /// numbers it holds (read so that they cannot change before the decision commits);
    /// `awaiting_release` names those whose deletion waits for the backend to release them
    /// (their own aggregates decided so, now or before); with any, the account is deleted once
    /// they are gone. Numbers already being deleted need no `delete_numbers`.
    Delete {
        account: AccountName,
        delete_numbers: bool,
        members: Vec<E164>,
        awaiting_release: Vec<E164>,
    },
    /// Numbers left the account and `remaining_numbers` are left: an account being deleted
    /// goes with its last number.
    CompleteDeletion {
        account: AccountName,
        remaining_numbers: u64,
    },
    /// Pushes again the change whose provisioning failed (only when it failed).
    RetryProvisioning {
        account: AccountName,
    },
    RecordProvisioned {
        for_version: u64,
    },
    RecordProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    AccountCreated {
        name: AccountName,
        correlation_id: Option<Identifier>,
        services: AccountServices,
        sync_required: bool,
    },
    AccountUpdated {
        correlation_id: Option<Identifier>,
        services: AccountServices,
        sync_required: bool,
    },
    /// Stored before memberships left the account's stream; read, never written now.
    NumbersAdded {
        numbers: Vec<NumberMembership>,
    },
    /// Stored before memberships left the account's stream; read, never written now.
    NumbersRemoved {
        numbers: Vec<E164>,
    },
    AccountDeleted {
        /// The numbers deleted together with the account.
        deleted_numbers: Vec<E164>,
    },
    /// The account is to be deleted once the backend has released `awaiting_release`;
    /// `deleted_numbers` were deleted at once, with this event.
    AccountDeletionRequested {
        deleted_numbers: Vec<E164>,
        awaiting_release: Vec<E164>,
    },
    /// The operator asked to push again the change whose provisioning failed; it carries the
    /// account's services, which the backend must get again.
    AccountProvisioningRetried {
        services: AccountServices,
    },
    AccountProvisioned {
        for_version: u64,
    },
    AccountProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            AccountEvent::AccountCreated { .. } => "AccountCreated",
            AccountEvent::AccountUpdated { .. } => "AccountUpdated",
            AccountEvent::NumbersAdded { .. } => "NumbersAdded",
            AccountEvent::NumbersRemoved { .. } => "NumbersRemoved",
            AccountEvent::AccountDeleted { .. } => "AccountDeleted",
            AccountEvent::AccountDeletionRequested { .. } => "AccountDeletionRequested",
            AccountEvent::AccountProvisioningRetried { .. } => "AccountProvisioningRetried",
            AccountEvent::AccountProvisioned { .. } => "AccountProvisioned",
            AccountEvent::AccountProvisioningFailed { .. } => "AccountProvisioningFailed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl Account {
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    fn existing(&self, name: &AccountName) -> Result<&AccountState, DomainError> {
        self.state
            .as_ref()
            .ok_or_else(|| DomainError::AccountNotFound(name.clone()))
    }

    fn is_stale_outcome(&self, for_version: u64, failure: Option<&[ProvisioningError]>) -> bool {
        !self
            .state
            .as_ref()
            .is_some_and(|state| state.sync.is_news(for_version, failure))
    }
}

/// Refuses a replacement that would strand numbers: a service they use switched off, or the
/// Teams tenant changed or dropped under Operator Connect or Teams Phone Mobile numbers.
fn check_replacement(
    state: &AccountState,
    services: &AccountServices,
    numbers: &NumberCounts,
) -> Result<(), DomainError> {
    for service in Service::ALL {
        let count = numbers.using(service) as usize;
        if count > 0 && !services.is_enabled(service) {
            return Err(DomainError::ServiceStillUsed {
                service: service.wire_name(),
                count,
            });
        }
    }
    // A first tenant may be set under numbers that waited for one; changing or dropping one
    // would strand the numbers in the tenant that holds them.
    if state.services.teams_tenant_id.is_some()
        && services.teams_tenant_id != state.services.teams_tenant_id
    {
        let count = numbers.teams_tenant_bound() as usize;
        if count > 0 {
            return Err(DomainError::TenantChangeWithNumbers {
                account: state.name.clone(),
                count,
            });
        }
    }
    Ok(())
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            AccountCommand::CreateOrReplace {
                name,
                correlation_id,
                services,
                numbers,
            } => {
                services.validate()?;
                if let Some(state) = &self.state {
                    state.check_changeable()?;
                }
                let sync_required = services.any_sync_enabled();
                let event = match &self.state {
                    None => AccountEvent::AccountCreated {
                        name,
                        correlation_id,
                        services,
                        sync_required,
                    },
                    Some(state)
                        if state.services == services && state.correlation_id == correlation_id =>
                    {
                        return Ok(());
                    }
                    Some(state) => {
                        check_replacement(state, &services, &numbers)?;
                        AccountEvent::AccountUpdated {
                            correlation_id,
                            services,
                            sync_required,
                        }
                    }
                };
                sink.write(event, self).await;
            }
            AccountCommand::CompleteDeletion {
                account,
                remaining_numbers,
            } => {
                let state = self.existing(&account)?;
                if state.deleting && remaining_numbers == 0 {
                    sink.write(
                        AccountEvent::AccountDeleted {
                            deleted_numbers: Vec::new(),
                        },
                        self,
                    )
                    .await;
                }
            }
            AccountCommand::Delete {
                account,
                delete_numbers,
                members,
                awaiting_release,
            } => {
                let state = self.existing(&account)?;
                if state.deleting {
                    // Asked already: it completes when the backend has released the numbers.
                    return Ok(());
                }
                let (awaiting_release, deleted_numbers): (Vec<E164>, Vec<E164>) = members
                    .into_iter()
                    .partition(|number| awaiting_release.contains(number));
                // Numbers already on their way out do not hold the account back.
                if !deleted_numbers.is_empty() && !delete_numbers {
                    return Err(DomainError::AccountHasNumbers {
                        account: state.name.clone(),
                        count: deleted_numbers.len(),
                    });
                }
                let event = if awaiting_release.is_empty() {
                    AccountEvent::AccountDeleted { deleted_numbers }
                } else {
                    AccountEvent::AccountDeletionRequested {
                        deleted_numbers,
                        awaiting_release,
                    }
                };
                sink.write(event, self).await;
            }
            AccountCommand::RetryProvisioning { account } => {
                let state = self.existing(&account)?;
                if state.sync.status != ProvisioningStatus::Failed {
                    return Err(DomainError::ProvisioningNotFailed {
                        status: state.sync.status,
                    });
                }
                let event = AccountEvent::AccountProvisioningRetried {
                    services: state.services.clone(),
                };
                sink.write(event, self).await;
            }
            AccountCommand::RecordProvisioned { for_version } => {
                if !self.is_stale_outcome(for_version, None) {
                    sink.write(AccountEvent::AccountProvisioned { for_version }, self)
                        .await;
                }
            }
            AccountCommand::RecordProvisioningFailed {
                for_version,
                errors,
            } => {
                if !self.is_stale_outcome(for_version, Some(&errors)) {
                    sink.write(
                        AccountEvent::AccountProvisioningFailed {
                            for_version,
                            errors,
                        },
                        self,
                    )
                    .await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        let version = self.version;
        let sync_for = |required: bool| {
            if required {
                SyncState::pending(version)
            } else {
                SyncState::nothing_to_sync(version)
            }
        };
        match event {
            AccountEvent::AccountCreated {
                name,
                correlation_id,
                services,
                sync_required,
            } => {
                self.state = Some(AccountState {
                    name,
                    correlation_id,
                    services,
                    sync: sync_for(sync_required),
                    deleting: false,
                });
            }
            AccountEvent::AccountUpdated {
                correlation_id,
                services,
                sync_required,
            } => {
                if let Some(state) = &mut self.state {
                    state.correlation_id = correlation_id;
                    state.services = services;
                    state.sync = sync_for(sync_required);
                }
            }
            // Memberships are kept beside the numbers' events now; these only count.
            AccountEvent::NumbersAdded { .. } | AccountEvent::NumbersRemoved { .. } => {}
            AccountEvent::AccountDeleted { .. } => self.state = None,
            AccountEvent::AccountDeletionRequested { .. } => {
                if let Some(state) = &mut self.state {
                    state.deleting = true;
                }
            }
            AccountEvent::AccountProvisioningRetried { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync = SyncState::pending(version);
                }
            }
            AccountEvent::AccountProvisioned { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Synced;
                    state.sync.errors.clear();
                }
            }
            AccountEvent::AccountProvisioningFailed { errors, .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Failed;
                    state.sync.errors = errors;
                }
            }
        }
    }
}
