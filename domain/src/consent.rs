//! The Consent aggregate: an enterprise's request for information, its id the Teams tenant id.
//! The backend reports the consent and its status; the operator records the customer
//! relationship (acknowledged, contacted, agreement signed, declined, contract terminated).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::values::{
    Comment, ConsentStatus, CountryCode, Identifier, ProvisioningError, ProvisioningStatus,
    RelationshipStatus, SyncState, TenantId, TicketId,
};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Consent {
    /// How many events have been applied: the stream's last sequence.
    pub version: u64,
    pub state: Option<ConsentState>,
}

/// A contact person the enterprise gave with its consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub full_name: String,
    pub email: String,
    pub telephone_number: Option<String>,
    pub company_name: Option<String>,
    pub company_size: Option<String>,
}

/// What the backend reports about a consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentReport {
    pub consent_id: Identifier,
    pub operator_id: Option<Identifier>,
    pub status: ConsentStatus,
    pub consented_on: DateTime<Utc>,
    pub countries: Vec<CountryCode>,
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRelationship {
    pub status: RelationshipStatus,
    pub comment: Option<Comment>,
    pub ticket_id: Option<TicketId>,
    pub last_modified_on: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentState {
    pub tenant_id: TenantId,
    pub report: ConsentReport,
    pub last_modified_on: DateTime<Utc>,
    pub relationship: Option<CustomerRelationship>,
    pub sync: SyncState,
}

/// The operator's note attached to a relationship change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipChange {
    pub tenant_id: TenantId,
    pub comment: Option<Comment>,
    pub ticket_id: Option<TicketId>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConsentCommand {
    /// The backend reported a consent, new or changed.
    RecordConsent {
        tenant_id: TenantId,
        report: ConsentReport,
        at: DateTime<Utc>,
    },
    AcknowledgeConsent(RelationshipChange),
    RecordCustomerContacted(RelationshipChange),
    SignAgreement(RelationshipChange),
    DeclineConsent(RelationshipChange),
    TerminateContract(RelationshipChange),
    /// Pushes the customer relationship again after its provisioning failed (only then).
    RetryProvisioning {
        tenant_id: TenantId,
    },
    RecordProvisioned {
        for_version: u64,
    },
    RecordProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
}

impl ConsentCommand {
    /// The command that moves the customer relationship to `status`.
    pub fn relationship(status: RelationshipStatus, change: RelationshipChange) -> Self {
        match status {
            RelationshipStatus::ConsentAcknowledged => ConsentCommand::AcknowledgeConsent(change),
            RelationshipStatus::CustomerContacted => {
                ConsentCommand::RecordCustomerContacted(change)
            }
            RelationshipStatus::AgreementSigned => ConsentCommand::SignAgreement(change),
            RelationshipStatus::ConsentDeclined => ConsentCommand::DeclineConsent(change),
            RelationshipStatus::ContractTerminated => ConsentCommand::TerminateContract(change),
        }
    }
}

/// The payload every relationship event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipNote {
    pub comment: Option<Comment>,
    pub ticket_id: Option<TicketId>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConsentEvent {
    ConsentRecorded {
        tenant_id: TenantId,
        report: ConsentReport,
        at: DateTime<Utc>,
    },
    ConsentChanged {
        report: ConsentReport,
        at: DateTime<Utc>,
    },
    ConsentAcknowledged(RelationshipNote),
    CustomerContacted(RelationshipNote),
    AgreementSigned(RelationshipNote),
    ConsentDeclined(RelationshipNote),
    ContractTerminated(RelationshipNote),
    ConsentProvisioned {
        for_version: u64,
    },
    ConsentProvisioningFailed {
        for_version: u64,
        errors: Vec<ProvisioningError>,
    },
    /// The operator asked to push the customer relationship again after its provisioning
    /// failed; it carries the relationship the backend must get.
    ConsentProvisioningRetried {
        relationship: Option<CustomerRelationship>,
    },
}

impl DomainEvent for ConsentEvent {
    fn event_type(&self) -> String {
        match self {
            ConsentEvent::ConsentRecorded { .. } => "ConsentRecorded",
            ConsentEvent::ConsentChanged { .. } => "ConsentChanged",
            ConsentEvent::ConsentAcknowledged(_) => "ConsentAcknowledged",
            ConsentEvent::CustomerContacted(_) => "CustomerContacted",
            ConsentEvent::AgreementSigned(_) => "AgreementSigned",
            ConsentEvent::ConsentDeclined(_) => "ConsentDeclined",
            ConsentEvent::ContractTerminated(_) => "ContractTerminated",
            ConsentEvent::ConsentProvisioned { .. } => "ConsentProvisioned",
            ConsentEvent::ConsentProvisioningFailed { .. } => "ConsentProvisioningFailed",
            ConsentEvent::ConsentProvisioningRetried { .. } => "ConsentProvisioningRetried",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl Consent {
    fn is_stale_outcome(&self, for_version: u64, failure: Option<&[ProvisioningError]>) -> bool {
        !self
            .state
            .as_ref()
            .is_some_and(|state| state.sync.is_news(for_version, failure))
    }

    fn change_relationship(
        &self,
        status: RelationshipStatus,
        change: RelationshipChange,
    ) -> Result<Option<ConsentEvent>, DomainError> {
        let Some(state) = &self.state else {
            return Err(DomainError::ConsentNotFound(change.tenant_id));
        };
        if status.needs_reason() && change.comment.is_none() {
            return Err(DomainError::ReasonRequired { status });
        }
        // Once the enterprise has removed its consent, the operator can only close the matter.
        if state.report.status == ConsentStatus::Removed && !status.needs_reason() {
            return Err(DomainError::ConsentRemoved(change.tenant_id));
        }
        if let Some(current) = &state.relationship
            && current.status == status
            && current.comment == change.comment
            && current.ticket_id == change.ticket_id
        {
            return Ok(None);
        }
        let note = RelationshipNote {
            comment: change.comment,
            ticket_id: change.ticket_id,
            at: change.at,
        };
        Ok(Some(match status {
            RelationshipStatus::ConsentAcknowledged => ConsentEvent::ConsentAcknowledged(note),
            RelationshipStatus::CustomerContacted => ConsentEvent::CustomerContacted(note),
            RelationshipStatus::AgreementSigned => ConsentEvent::AgreementSigned(note),
            RelationshipStatus::ConsentDeclined => ConsentEvent::ConsentDeclined(note),
            RelationshipStatus::ContractTerminated => ConsentEvent::ContractTerminated(note),
        }))
    }
}

impl Aggregate for Consent {
    const TYPE: &'static str = "consent";
    type Command = ConsentCommand;
    type Event = ConsentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ConsentCommand::RecordConsent {
                tenant_id,
                report,
                at,
            } => match &self.state {
                None => Some(ConsentEvent::ConsentRecorded {
                    tenant_id,
                    report,
                    at,
                }),
                Some(state) if state.report == report => None,
                Some(_) => Some(ConsentEvent::ConsentChanged { report, at }),
            },
            ConsentCommand::AcknowledgeConsent(change) => {
                self.change_relationship(RelationshipStatus::ConsentAcknowledged, change)?
            }
            ConsentCommand::RecordCustomerContacted(change) => {
                self.change_relationship(RelationshipStatus::CustomerContacted, change)?
            }
            ConsentCommand::SignAgreement(change) => {
                self.change_relationship(RelationshipStatus::AgreementSigned, change)?
            }
            ConsentCommand::DeclineConsent(change) => {
                self.change_relationship(RelationshipStatus::ConsentDeclined, change)?
            }
            ConsentCommand::TerminateContract(change) => {
                self.change_relationship(RelationshipStatus::ContractTerminated, change)?
            }
            ConsentCommand::RetryProvisioning { tenant_id } => {
                let Some(state) = &self.state else {
                    return Err(DomainError::ConsentNotFound(tenant_id));
                };
                if state.sync.status != ProvisioningStatus::Failed {
                    return Err(DomainError::ProvisioningNotFailed {
                        status: state.sync.status,
                    });
                }
                Some(ConsentEvent::ConsentProvisioningRetried {
                    relationship: state.relationship.clone(),
                })
            }
            ConsentCommand::RecordProvisioned { for_version } => (!self
                .is_stale_outcome(for_version, None))
            .then_some(ConsentEvent::ConsentProvisioned { for_version }),
            ConsentCommand::RecordProvisioningFailed {
                for_version,
                errors,
            } => (!self.is_stale_outcome(for_version, Some(&errors))).then_some(
                ConsentEvent::ConsentProvisioningFailed {
                    for_version,
                    errors,
                },
            ),
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        let version = self.version;
        let relationship =
            |status: RelationshipStatus, note: RelationshipNote| CustomerRelationship {
                status,
                comment: note.comment,
                ticket_id: note.ticket_id,
                last_modified_on: note.at,
            };
        let (status, note) = match event {
            ConsentEvent::ConsentRecorded {
                tenant_id,
                report,
                at,
            } => {
                // The consent came from the backend, so it is in step with it.
                self.state = Some(ConsentState {
                    tenant_id,
                    report,
                    last_modified_on: at,
                    relationship: None,
                    sync: SyncState::nothing_to_sync(version),
                });
                return;
            }
            ConsentEvent::ConsentChanged { report, at } => {
                if let Some(state) = &mut self.state {
                    state.report = report;
                    state.last_modified_on = at;
                }
                return;
            }
            ConsentEvent::ConsentProvisioned { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Synced;
                    state.sync.errors.clear();
                }
                return;
            }
            ConsentEvent::ConsentProvisioningFailed { errors, .. } => {
                if let Some(state) = &mut self.state {
                    state.sync.status = ProvisioningStatus::Failed;
                    state.sync.errors = errors;
                }
                return;
            }
            ConsentEvent::ConsentProvisioningRetried { .. } => {
                if let Some(state) = &mut self.state {
                    state.sync = SyncState::pending(version);
                }
                return;
            }
            ConsentEvent::ConsentAcknowledged(note) => {
                (RelationshipStatus::ConsentAcknowledged, note)
            }
            ConsentEvent::CustomerContacted(note) => (RelationshipStatus::CustomerContacted, note),
            ConsentEvent::AgreementSigned(note) => (RelationshipStatus::AgreementSigned, note),
            ConsentEvent::ConsentDeclined(note) => (RelationshipStatus::ConsentDeclined, note),
            ConsentEvent::ContractTerminated(note) => {
                (RelationshipStatus::ContractTerminated, note)
            }
        };
        if let Some(state) = &mut self.state {
            state.last_modified_on = note.at;
            state.relationship = Some(relationship(status, note));
            // The relationship is pushed to the backend.
            state.sync = SyncState::pending(version);
        }
    }
}
