//! Why a command was refused. One enum for the whole domain so that every edge (REST, NATS)
//! maps refusals to wire codes in one place.

use crate::values::{
    AccountName, E164, Identifier, InvalidValue, ProvisioningStatus, RelationshipStatus, TenantId,
};

/// How a refusal should be reported, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong (HTTP 400).
    Invalid,
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// The request is well-formed but clashes with the current state (HTTP 409).
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    InvalidValue(#[from] InvalidValue),

    #[error("account '{0}' does not exist")]
    AccountNotFound(AccountName),
    #[error("number {0} does not exist")]
    NumberNotFound(E164),
    #[error("no request for information exists for tenant {0}")]
    ConsentNotFound(TenantId),
    #[error("civic address {0} does not exist")]
    CivicAddressNotFound(Identifier),

    #[error("number {number} already belongs to account '{owner}'")]
    NumberInAnotherAccount { number: E164, owner: AccountName },
    #[error(
        "account '{account}' still has {count} numbers; delete them first or ask to delete them with the account"
    )]
    AccountHasNumbers { account: AccountName, count: usize },
    #[error(
        "teamsTenantId of account '{account}' cannot change while it has {count} Operator Connect or Teams Phone Mobile numbers"
    )]
    TenantChangeWithNumbers { account: AccountName, count: usize },
    #[error("{service} cannot be disabled while {count} numbers of the account use it")]
    ServiceStillUsed { service: &'static str, count: usize },
    #[error("{service} must be enabled on the account before a number can use it")]
    ServiceNotEnabledOnAccount { service: &'static str },
    #[error("a number cannot have both teamsOperatorConnect and teamsPhoneMobile enabled")]
    ConflictingTeamsServices,
    #[error("a custom SIP header is not allowed on a {service} number")]
    SipHeaderNotAllowed { service: &'static str },
    #[error(
        "{service}.configuration (usage and choosableCapabilities) is required when the service is enabled"
    )]
    TeamsConfigurationRequired { service: &'static str },
    #[error("{service}.configuration.choosableCapabilities must name at least one capability")]
    NoCapabilities { service: &'static str },
    #[error("{service}.configuration.choosableCapabilities names {capability} twice")]
    DuplicateCapability {
        service: &'static str,
        capability: &'static str,
    },
    #[error("the Mobile capability is only for teamsPhoneMobile numbers")]
    MobileCapabilityOutsidePhoneMobile,
    #[error(
        "{service}.configuration.additionalUsages may not repeat a usage or the main usage ({usage})"
    )]
    DuplicateUsage {
        service: &'static str,
        usage: &'static str,
    },
    #[error("number {0} appears more than once in the request")]
    DuplicateNumberInRequest(E164),
    #[error("{status} needs a reason in customerRelationship.comment")]
    ReasonRequired { status: RelationshipStatus },
    #[error("the request for information of tenant {0} was removed by the enterprise")]
    ConsentRemoved(TenantId),
    #[error(
        "number {0} is being deleted: it goes once the backend has released it, and cannot change meanwhile"
    )]
    NumberBeingDeleted(E164),
    #[error(
        "account '{0}' is being deleted: it goes once the backend has released its numbers, and cannot change meanwhile"
    )]
    AccountBeingDeleted(AccountName),
    #[error(
        "only a failed provisioning can be retried; serviceProvisioningStatus is {}",
        .status.as_str()
    )]
    ProvisioningNotFailed { status: ProvisioningStatus },
}

impl DomainError {
    pub fn kind(&self) -> RefusalKind {
        use DomainError::*;
        match self {
            AccountNotFound(_)
            | NumberNotFound(_)
            | ConsentNotFound(_)
            | CivicAddressNotFound(_) => RefusalKind::NotFound,
            NumberInAnotherAccount { .. }
            | AccountHasNumbers { .. }
            | TenantChangeWithNumbers { .. }
            | ServiceStillUsed { .. }
            | ConsentRemoved(_)
            | NumberBeingDeleted(_)
            | AccountBeingDeleted(_)
            | ProvisioningNotFailed { .. } => RefusalKind::Conflict,
            InvalidValue(_)
            | ServiceNotEnabledOnAccount { .. }
            | ConflictingTeamsServices
            | SipHeaderNotAllowed { .. }
            | TeamsConfigurationRequired { .. }
            | NoCapabilities { .. }
            | DuplicateCapability { .. }
            | MobileCapabilityOutsidePhoneMobile
            | DuplicateUsage { .. }
            | DuplicateNumberInRequest(_)
            | ReasonRequired { .. } => RefusalKind::Invalid,
        }
    }

    /// The stable wire code for this refusal.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            InvalidValue(value) => value.kind.code(),
            AccountNotFound(_) => "AccountNotFound",
            NumberNotFound(_) => "NumberNotFound",
            ConsentNotFound(_) => "RequestForInformationNotFound",
            CivicAddressNotFound(_) => "CivicAddressNotFound",
            NumberInAnotherAccount { .. } => "NumberInAnotherAccount",
            AccountHasNumbers { .. } => "AccountHasNumbers",
            TenantChangeWithNumbers { .. } => "TenantChangeNotAllowed",
            ServiceNotEnabledOnAccount { .. } => "ServiceNotEnabledOnAccount",
            ServiceStillUsed { .. } => "ServiceInUse",
            ConflictingTeamsServices => "ConflictingServices",
            SipHeaderNotAllowed { .. } => "CustomSipHeaderNotAllowed",
            TeamsConfigurationRequired { .. } => "ConfigurationRequired",
            NoCapabilities { .. } => "CapabilitiesRequired",
            DuplicateCapability { .. } => "DuplicateCapability",
            MobileCapabilityOutsidePhoneMobile => "InvalidCapability",
            DuplicateUsage { .. } => "DuplicateUsage",
            ReasonRequired { .. } => "ReasonRequired",
            DuplicateNumberInRequest(_) => "DuplicateNumber",
            ConsentRemoved(_) => "RequestForInformationRemoved",
            NumberBeingDeleted(_) => "NumberBeingDeleted",
            AccountBeingDeleted(_) => "AccountBeingDeleted",
            ProvisioningNotFailed { .. } => "ProvisioningNotFailed",
        }
    }

    /// The JSON path, relative to the resource, that the refusal is about, when there is one.
    pub fn target(&self) -> Option<String> {
        use DomainError::*;
        let service_config = |service: &str, field: &str| {
            Some(format!("serviceDetails.{service}.configuration.{field}"))
        };
        match self {
            InvalidValue(_) => None,
            AccountNotFound(_) | AccountBeingDeleted(_) => Some("accountName".into()),
            NumberNotFound(_)
            | NumberInAnotherAccount { .. }
            | DuplicateNumberInRequest(_)
            | NumberBeingDeleted(_) => Some("telephoneNumber".into()),
            ConsentNotFound(_) | ConsentRemoved(_) => Some("tenantId".into()),
            CivicAddressNotFound(_) => Some("civicAddressId".into()),
            AccountHasNumbers { .. } => Some("deleteNumbers".into()),
            TenantChangeWithNumbers { .. } => Some("serviceDetails.teamsTenantId".into()),
            ServiceNotEnabledOnAccount { service } | ServiceStillUsed { service, .. } => {
                Some(format!("serviceDetails.{service}"))
            }
            ConflictingTeamsServices => Some("serviceDetails".into()),
            SipHeaderNotAllowed { .. } => Some("configuration.customSipHeader".into()),
            TeamsConfigurationRequired { service } => {
                Some(format!("serviceDetails.{service}.configuration"))
            }
            NoCapabilities { service } | DuplicateCapability { service, .. } => {
                service_config(service, "choosableCapabilities")
            }
            MobileCapabilityOutsidePhoneMobile => Some(
                "serviceDetails.teamsOperatorConnect.configuration.choosableCapabilities".into(),
            ),
            DuplicateUsage { service, .. } => service_config(service, "additionalUsages"),
            ReasonRequired { .. } => Some("customerRelationship.comment".into()),
            ProvisioningNotFailed { .. } => Some("serviceProvisioningStatus".into()),
        }
    }
}
