//! The calling services an account or number can use, and the rules that tie a number's
//! services to its account's.

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::values::{
    AssignmentStatus, Capability, CountryCode, Identifier, SipHeaderValue, Subdomain,
    SubdomainToken, TenantId, Usage,
};

/// The services nmp manages, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Service {
    #[serde(rename = "teamsOperatorConnect")]
    TeamsOperatorConnect,
    #[serde(rename = "teamsPhoneMobile")]
    TeamsPhoneMobile,
    #[serde(rename = "teamsDirectRouting")]
    TeamsDirectRouting,
    #[serde(rename = "zoomPhoneCloudPeering")]
    ZoomPhoneCloudPeering,
    #[serde(rename = "azureOperatorCallProtection")]
    AzureOperatorCallProtection,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::TeamsOperatorConnect,
        Service::TeamsPhoneMobile,
        Service::TeamsDirectRouting,
        Service::ZoomPhoneCloudPeering,
        Service::AzureOperatorCallProtection,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            Service::TeamsOperatorConnect => "teamsOperatorConnect",
            Service::TeamsPhoneMobile => "teamsPhoneMobile",
            Service::TeamsDirectRouting => "teamsDirectRouting",
            Service::ZoomPhoneCloudPeering => "zoomPhoneCloudPeering",
            Service::AzureOperatorCallProtection => "azureOperatorCallProtection",
        }
    }

    /// The service of a wire name, if it is one.
    pub fn from_wire_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.wire_name() == name)
    }

    /// Operator Connect and Teams Phone Mobile numbers live in the enterprise's Teams tenant.
    pub fn is_teams_tenant_bound(self) -> bool {
        matches!(
            self,
            Service::TeamsOperatorConnect | Service::TeamsPhoneMobile
        )
    }
}

/// A service switched on or off, with flow-through to the backend on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncableService {
    pub enabled: bool,
    pub sync_enabled: bool,
}

/// A service that is only switched on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PlainService {
    pub enabled: bool,
}

/// Direct Routing's account settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectRoutingService {
    pub enabled: bool,
    pub sync_enabled: bool,
    pub configuration: Option<DirectRoutingConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectRoutingConfiguration {
    pub call_screening: bool,
    pub subdomain: Subdomain,
    pub region1_token: SubdomainToken,
    pub region2_token: SubdomainToken,
}

/// What an account has switched on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountServices {
    pub teams_tenant_id: Option<TenantId>,
    pub teams_operator_connect: Option<SyncableService>,
    pub teams_phone_mobile: Option<SyncableService>,
    pub teams_direct_routing: Option<DirectRoutingService>,
    pub zoom_phone_cloud_peering: Option<SyncableService>,
    pub azure_operator_call_protection: Option<PlainService>,
}

impl AccountServices {
    pub fn is_enabled(&self, service: Service) -> bool {
        match service {
            Service::TeamsOperatorConnect => self.teams_operator_connect.is_some_and(|s| s.enabled),
            Service::TeamsPhoneMobile => self.teams_phone_mobile.is_some_and(|s| s.enabled),
            Service::TeamsDirectRouting => self
                .teams_direct_routing
                .as_ref()
                .is_some_and(|s| s.enabled),
            Service::ZoomPhoneCloudPeering => {
                self.zoom_phone_cloud_peering.is_some_and(|s| s.enabled)
            }
            Service::AzureOperatorCallProtection => self
                .azure_operator_call_protection
                .is_some_and(|s| s.enabled),
        }
    }

    /// Whether changes to this service flow through to the backend.
    pub fn is_sync_enabled(&self, service: Service) -> bool {
        self.is_enabled(service)
            && match service {
                Service::TeamsOperatorConnect => {
                    self.teams_operator_connect.is_some_and(|s| s.sync_enabled)
                }
                Service::TeamsPhoneMobile => {
                    self.teams_phone_mobile.is_some_and(|s| s.sync_enabled)
                }
                Service::TeamsDirectRouting => self
                    .teams_direct_routing
                    .as_ref()
                    .is_some_and(|s| s.sync_enabled),
                Service::ZoomPhoneCloudPeering => self
                    .zoom_phone_cloud_peering
                    .is_some_and(|s| s.sync_enabled),
                Service::AzureOperatorCallProtection => false,
            }
    }

    pub fn any_sync_enabled(&self) -> bool {
        Service::ALL.iter().any(|s| self.is_sync_enabled(*s))
    }

    /// The account-level rules that do not depend on the account's numbers: none today. An
    /// account with Operator Connect or Teams Phone Mobile may have no `teamsTenantId`, as in
    /// the public API; its numbers cannot reach the backend until it has one, which their
    /// provisioning status says (`TeamsTenantIdRequired`).
    pub fn validate(&self) -> Result<(), DomainError> {
        Ok(())
    }
}

/// Teams settings of one number (Operator Connect or Teams Phone Mobile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamsNumberService {
    pub enabled: bool,
    pub assignment_status: Option<AssignmentStatus>,
    pub configuration: Option<TeamsNumberConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamsNumberConfiguration {
    pub usage: Usage,
    pub choosable_capabilities: Vec<Capability>,
    pub additional_usages: Vec<Usage>,
    pub civic_address_id: Option<Identifier>,
    pub location_id: Option<Identifier>,
    pub allow_tenant_address_update: bool,
    pub displayed_country_code: Option<CountryCode>,
}

/// Everything an operator sets on a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NumberDetails {
    pub teams_operator_connect: Option<TeamsNumberService>,
    pub teams_phone_mobile: Option<TeamsNumberService>,
    pub teams_direct_routing: Option<PlainService>,
    pub zoom_phone_cloud_peering: Option<PlainService>,
    pub azure_operator_call_protection: Option<PlainService>,
    pub custom_sip_header: Option<SipHeaderValue>,
}

impl NumberDetails {
    pub fn is_enabled(&self, service: Service) -> bool {
        match service {
            Service::TeamsOperatorConnect => self
                .teams_operator_connect
                .as_ref()
                .is_some_and(|s| s.enabled),
            Service::TeamsPhoneMobile => {
                self.teams_phone_mobile.as_ref().is_some_and(|s| s.enabled)
            }
            Service::TeamsDirectRouting => self.teams_direct_routing.is_some_and(|s| s.enabled),
            Service::ZoomPhoneCloudPeering => {
                self.zoom_phone_cloud_peering.is_some_and(|s| s.enabled)
            }
            Service::AzureOperatorCallProtection => self
                .azure_operator_call_protection
                .is_some_and(|s| s.enabled),
        }
    }

    pub fn enabled_services(&self) -> Vec<Service> {
        Service::ALL
            .into_iter()
            .filter(|s| self.is_enabled(*s))
            .collect()
    }

    /// Whether a change to this number has anything to push to the backend.
    pub fn needs_sync(&self, account: &AccountServices) -> bool {
        self.enabled_services()
            .into_iter()
            .any(|s| account.is_sync_enabled(s))
    }

    /// Checks every rule for a number with these details in an account with these services.
    /// The civic-address rule is the backend's to enforce (see DESIGN.md).
    pub fn validate(&self, account: &AccountServices) -> Result<(), DomainError> {
        for service in self.enabled_services() {
            if !account.is_enabled(service) {
                return Err(DomainError::ServiceNotEnabledOnAccount {
                    service: service.wire_name(),
                });
            }
        }
        if self.is_enabled(Service::TeamsOperatorConnect)
            && self.is_enabled(Service::TeamsPhoneMobile)
        {
            return Err(DomainError::ConflictingTeamsServices);
        }
        if self.custom_sip_header.is_some() {
            for service in [
                Service::TeamsPhoneMobile,
                Service::AzureOperatorCallProtection,
            ] {
                if self.is_enabled(service) {
                    return Err(DomainError::SipHeaderNotAllowed {
                        service: service.wire_name(),
                    });
                }
            }
        }
        let teams = [
            (Service::TeamsOperatorConnect, &self.teams_operator_connect),
            (Service::TeamsPhoneMobile, &self.teams_phone_mobile),
        ];
        for (service, settings) in teams {
            let Some(settings) = settings.as_ref().filter(|s| s.enabled) else {
                continue;
            };
            validate_teams_configuration(service, settings)?;
        }
        Ok(())
    }
}

fn validate_teams_configuration(
    service: Service,
    settings: &TeamsNumberService,
) -> Result<(), DomainError> {
    let name = service.wire_name();
    let Some(configuration) = &settings.configuration else {
        return Err(DomainError::TeamsConfigurationRequired { service: name });
    };
    if configuration.choosable_capabilities.is_empty() {
        return Err(DomainError::NoCapabilities { service: name });
    }
    let mut seen = Vec::new();
    for capability in &configuration.choosable_capabilities {
        if seen.contains(capability) {
            return Err(DomainError::DuplicateCapability {
                service: name,
                capability: capability.as_str(),
            });
        }
        seen.push(*capability);
    }
    if service == Service::TeamsOperatorConnect && seen.contains(&Capability::Mobile) {
        return Err(DomainError::MobileCapabilityOutsidePhoneMobile);
    }
    let mut usages = vec![configuration.usage];
    for usage in &configuration.additional_usages {
        if usages.contains(usage) {
            return Err(DomainError::DuplicateUsage {
                service: name,
                usage: usage.as_str(),
            });
        }
        usages.push(*usage);
    }
    Ok(())
}
