//! The Number aggregate: one telephone number, its id the E.164 string. A number belongs to one
//! account at a time; deleting it frees it for any account.
//!
//! Deleting a number whose last change had to reach the backend (`sync_required`) only records
//! the request (`NumberDeletionRequested`): the saga releases the number in the backend, and the
//! backend's confirmation deletes it (`NumberDeleted`). A number that never reached the backend
//! is released all the same — the backend counts a number it does not hold as released — which
//! keeps the rule the one that decides whether a change flows to the backend at all. Meanwhile
//! the number stays, `deleting`, and refuses changes; when the backend refuses the release it
//! stays `failed` with the backend's errors until the operator retries.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::service_details::{AccountServices, NumberDetails};
use crate::values::{
    AccountName, E164, ProvisioningError, ProvisioningStatus, SipHeaderValue, SyncState,
};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Number {
    /// How many events have been applied: the stream's last sequence.
    pub version: u64,
    pub state: Option<NumberState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumberState {
    pub telephone_number: E164,
    pub account: AccountName,
    pub details: NumberDetails,
    pub sync: SyncState,
    /// Whether the last change had to reach the backend.
    pub sync_required: bool,
    /// Whether the number's deletion waits for the backend to release it.
    #[serde(default)]
    pub deleting: bool,
}

// Commands live only while they are handled, so their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum NumberCommand {
    /// Adds the number to an account, or replaces its settings there. The account's services
    /// come with the command so the number's can be checked against them.
    AddOrUpdate {
        telephone_number: E164,
        account: AccountName,
        account_services: AccountServices,
        details: NumberDetails,
    },
    SetSipHeader {
        telephone_number: E164,
        account: AccountName,
        account_services: AccountServices,
        value: Option<SipHeaderValue>,
    },
    /// Deletes the number, or, when the backend must release it first, asks for that.
    Delete {
        telephone_number: E164,
        account: AccountName,
    },
    /// Pushes again the change whose provisioning failed (only when it failed).
    RetryProvisioning {
        telephone_number: E164,
        account: AccountName,
    },
    /// The backend accepted the change made at `for_version`.
    RecordProvisioned { for_version: u64 },
    /// The backend refused the change made at `for_version`.
    RecordProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NumberEvent {
    NumberAdded {
        telephone_number: E164,
        account: AccountName,
        details: NumberDetails,
        sync_required: bool,
    },
    NumberUpdated {
        details: NumberDetails,
        sync_required: bool,
    },
    SipHeaderSet {
        value: SipHeaderValue,
        sync_required: bool,
    },
    SipHeaderCleared {
        sync_required: bool,
    },
    /// The number is gone. `sync_required` is false when it was deleted at once (nothing to
    /// release) or when the backend has confirmed its release; true only in events stored before
    /// deletions waited for the backend.
    NumberDeleted {
        account: AccountName,
        sync_required: bool,
    },
    /// The number is to be released in the backend; it is deleted once the backend confirms.
    NumberDeletionRequested {
        account: AccountName,
    },
    /// The operator asked to push again the change whose provisioning failed. It carries what
    /// the backend must get again: the number's details, and whether it is being deleted.
    NumberProvisioningRetried {
        account: AccountName,
        details: NumberDetails,
        deleting: bool,
    },
    NumberProvisioned {
        for_version: u64,
    },
    NumberProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
}

impl DomainEvent for NumberEvent {
    fn event_type(&self) -> String {
        match self {
            NumberEvent::NumberAdded { .. } => "NumberAdded",
            NumberEvent::NumberUpdated { .. } => "NumberUpdated",
            NumberEvent::SipHeaderSet { .. } => "SipHeaderSet",
            NumberEvent::SipHeaderCleared { .. } => "SipHeaderCleared",
            NumberEvent::NumberDeleted { .. } => "NumberDeleted",
            NumberEvent::NumberDeletionRequested { .. } => "NumberDeletionRequested",
            NumberEvent::NumberProvisioningRetried { .. } => "NumberProvisioningRetried",
            NumberEvent::NumberProvisioned { .. } => "NumberProvisioned",
            NumberEvent::NumberProvisioningFailed { .. } => "NumberProvisioningFailed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl Number {
    /// The number's state if it currently belongs to `account` and may change.
    fn changeable(
        &self,
        number: &E164,
        account: &AccountName,
    ) -> Result<&NumberState, DomainError> {
        let state = self.owned_by(number, account)?;
        if state.deleting {
            return Err(DomainError::NumberBeingDeleted(number.clone()));
        }
        Ok(state)
    }

    /// The number's state if it currently belongs to `account`.
    fn owned_by(&self, number: &E164, account: &AccountName) -> Result<&NumberState, DomainError> {
        match &self.state {
            Some(state) if &state.account == account => Ok(state),
            _ => Err(DomainError::NumberNotFound(number.clone())),
        }
    }

    /// Owner check shared by every command that touches an existing or new number.
    fn check_not_elsewhere(&self, number: &E164, account: &AccountName) -> Result<(), DomainError> {
        match &self.state {
            Some(state) if &state.account != account => Err(DomainError::NumberInAnotherAccount {
                number: number.clone(),
                owner: state.account.clone(),
            }),
            _ => Ok(()),
        }
    }
}

impl Aggregate for Number {
    const TYPE: &'static str = "number";
    type Command = NumberCommand;
    type Event = NumberEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            NumberCommand::AddOrUpdate {
                telephone_number,
                account,
                account_services,
                details,
            } => {
                self.check_not_elsewhere(&telephone_number, &account)?;
                if self.state.as_ref().is_some_and(|state| state.deleting) {
                    return Err(DomainError::NumberBeingDeleted(telephone_number));
                }
                details.validate(&account_services)?;
                // Switching off a service that flows through must reach the backend too: the
                // number has to be released there.
                let sync_required = details.needs_sync(&account_services)
                    || self
                        .state
                        .as_ref()
                        .is_some_and(|state| state.details.needs_sync(&account_services));
                let event = match &self.state {
                    None => NumberEvent::NumberAdded {
                        telephone_number,
                        account,
                        details,
                        sync_required,
                    },
                    Some(state) if state.details == details => return Ok(()),
                    Some(_) => NumberEvent::NumberUpdated {
                        details,
                        sync_required,
                    },
                };
                sink.write(event, self).await;
            }
            NumberCommand::SetSipHeader {
                telephone_number,
                account,
                account_services,
                value,
            } => {
                self.check_not_elsewhere(&telephone_number, &account)?;
                let state = self.changeable(&telephone_number, &account)?;
                if state.details.custom_sip_header == value {
                    return Ok(());
                }
                let details = NumberDetails {
                    custom_sip_header: value.clone(),
                    ..state.details.clone()
                };
                details.validate(&account_services)?;
                let sync_required = details.needs_sync(&account_services);
                let event = match value {
                    Some(value) => NumberEvent::SipHeaderSet {
                        value,
                        sync_required,
                    },
                    None => NumberEvent::SipHeaderCleared { sync_required },
                };
                sink.write(event, self).await;
            }
            NumberCommand::Delete {
                telephone_number,
                account,
            } => {
                self.check_not_elsewhere(&telephone_number, &account)?;
                let state = self.owned_by(&telephone_number, &account)?;
                let event = if state.deleting {
                    // Asked already: the release is under way (or failed, and awaits a retry).
                    return Ok(());
                } else if state.sync_required {
                    NumberEvent::NumberDeletionRequested { account }
                } else {
                    // Its services do not flow to the backend: nothing to release there.
                    NumberEvent::NumberDeleted {
                        account,
                        sync_required: false,
                    }
                };
                sink.write(event, self).await;
            }
            NumberCommand::RetryProvisioning {
                telephone_number,
                account,
            } => {
                self.check_not_elsewhere(&telephone_number, &account)?;
                let state = self.owned_by(&telephone_number, &account)?;
                if state.sync.status != ProvisioningStatus::Failed {
                    return Err(DomainError::ProvisioningNotFailed {
                        status: state.sync.status,
                    });
                }
                let event = NumberEvent::NumberProvisioningRetried {
                    account,
                    details: state.details.clone(),
                    deleting: state.deleting,
                };
                sink.write(event, self).await;
            }
            NumberCommand::RecordProvisioned { for_version } => {
                if self.is_stale_outcome(for_version, None) {
                    return Ok(());
                }
                let event = match &self.state {
                    // The backend released the number: its deletion completes.
                    Some(state) if state.deleting => NumberEvent::NumberDeleted {
                        account: state.account.clone(),
                        sync_required: false,
                    },
                    _ => NumberEvent::NumberProvisioned { for_version },
                };
                sink.write(event, self).await;
            }
            NumberCommand::RecordProvisioningFailed {
                for_version,
                errors,
            } => {
                if self.is_stale_outcome(for_version, Some(&errors)) {
                    return Ok(());
                }
                sink.write(
                    NumberEvent::NumberProvisioningFailed {
                        for_version,
                        errors,
                    },
                    self,
                )
                .await;
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
            NumberEvent::NumberAdded {
                telephone_number,
                account,
                details,
                sync_required,
            } => {
                self.state = Some(NumberState {
                    telephone_number,
                    account,
                    details,
                    sync: sync_for(sync_required),
                    sync_required,
                    deleting: false,
                });
            }
            NumberEvent::NumberUpdated {
                details,
                sync_required,
            } => {
                if let Some(state) = &mut self.state {
                    state.details = details;
                    state.sync = sync_for(sync_required);
                    state.sync_required = sync_required;
                }
            }
            NumberEvent::SipHeaderSet {
                value,
                sync_required,
            } => {
                if let Some(state) = &mut self.state {
                    state.details.custom_sip_header = Some(value);
                    state.sync = sync_for(sync_required);
                    state.sync_required = sync_required;
                }
            }
            NumberEvent::SipHeaderCleared { sync_required } => {
                if let Some(state) = &mut self.state {
                    state.details.custom_sip_header = None;
                    state.sync = sync_for(sync_required);
                    state.sync_required = sync_required;
                }
            }
            NumberEvent::NumberDeleted { .. } => self.state = None,
            NumberEvent::NumberDeletionRequested { .. } => {
                if let Some(state) = &mut self.state {
                    state.deleting = true;
                    state.sync = SyncState::pending(version);
                    state.sync_required = true;
                }
            }
            NumberEvent::NumberProvisioningRetried { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync = SyncState::pending(version);
                }
            }
            NumberEvent::NumberProvisioned { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Synced;
                    state.sync.errors.clear();
                }
            }
            NumberEvent::NumberProvisioningFailed { errors, .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Failed;
                    state.sync.errors = errors;
                }
            }
        }
    }
}

impl Number {
    /// An outcome for a change that has since been superseded, or for a number that is gone,
    /// changes nothing: the newer change has its own outcome coming.
    fn is_stale_outcome(&self, for_version: u64, failure: Option<&[ProvisioningError]>) -> bool {
        !self
            .state
            .as_ref()
            .is_some_and(|state| state.sync.is_news(for_version, failure))
    }
}
