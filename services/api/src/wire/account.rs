//! `AccountResource` on the wire.

use domain::{
    AccountName, AccountServices, AccountState, DirectRoutingConfiguration, DirectRoutingService,
    Identifier, NumberCounts, PlainService, Service, Subdomain, SubdomainToken, SyncableService,
    TenantId,
};
use projections::query::AccountRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ProvisioningErrorWire, parse_at, provisioning};
use commands::AppError;

/// An enterprise customer account. Read-only fields sent by a client are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountResource {
    /// 1–100 of `A-Z a-z 0-9 _ -`; must equal the name in the path.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_details: Option<AccountServiceDetails>,
    /// `pending`, `synced` or `failed` (read-only).
    #[serde(default, skip_deserializing)]
    pub service_provisioning_status: Option<String>,
    #[serde(default, skip_deserializing)]
    pub service_provisioning_errors: Option<Vec<ProvisioningErrorWire>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountServiceDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_operator_connect: Option<SyncableServiceDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_direct_routing: Option<DirectRoutingDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_phone_mobile: Option<SyncableServiceDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom_phone_cloud_peering: Option<SyncableServiceDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_operator_call_protection: Option<CallProtectionDetails>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncableServiceDetails {
    pub enabled: bool,
    pub sync_enabled: bool,
    /// How many of the account's numbers use the service (read-only).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub number_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectRoutingDetails {
    pub enabled: bool,
    pub sync_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<DirectRoutingConfigurationWire>,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub number_count: Option<u64>,
    /// `provisioned`, `notProvisioned` or `inconsistent` (read-only).
    #[serde(default, skip_deserializing)]
    pub subdomain_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectRoutingConfigurationWire {
    pub call_screening: bool,
    pub subdomain: String,
    pub subdomain_tokens: SubdomainTokensWire,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubdomainTokensWire {
    pub region1_token: String,
    pub region2_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallProtectionDetails {
    pub enabled: bool,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub number_count: Option<u64>,
}

/// A validated account request.
pub struct AccountRequest {
    pub correlation_id: Option<Identifier>,
    pub services: AccountServices,
}

impl AccountResource {
    /// Parses the request body for the account named `path_name` in the URL.
    pub fn into_request(self, path_name: &AccountName) -> Result<AccountRequest, AppError> {
        if self.name != path_name.as_str() {
            return Err(AppError::invalid(
                "AccountNameMismatch",
                format!(
                    "the body's name '{}' differs from the account in the path '{path_name}'",
                    self.name
                ),
            )
            .with_target("name"));
        }
        let correlation_id = self
            .correlation_id
            .map(|id| parse_at("correlationId", Identifier::parse(id)))
            .transpose()?;
        let details = self.service_details.unwrap_or_default();
        let syncable = |d: Option<SyncableServiceDetails>| {
            d.map(|d| SyncableService {
                enabled: d.enabled,
                sync_enabled: d.sync_enabled,
            })
        };
        let teams_direct_routing = details
            .teams_direct_routing
            .map(|dr| -> Result<DirectRoutingService, AppError> {
                let configuration = dr
                    .configuration
                    .map(|c| -> Result<DirectRoutingConfiguration, AppError> {
                        let base = "serviceDetails.teamsDirectRouting.configuration";
                        Ok(DirectRoutingConfiguration {
                            call_screening: c.call_screening,
                            subdomain: parse_at(
                                format!("{base}.subdomain"),
                                Subdomain::parse(c.subdomain),
                            )?,
                            region1_token: parse_at(
                                format!("{base}.subdomainTokens.region1Token"),
                                SubdomainToken::parse(c.subdomain_tokens.region1_token),
                            )?,
                            region2_token: parse_at(
                                format!("{base}.subdomainTokens.region2Token"),
                                SubdomainToken::parse(c.subdomain_tokens.region2_token),
                            )?,
                        })
                    })
                    .transpose()?;
                Ok(DirectRoutingService {
                    enabled: dr.enabled,
                    sync_enabled: dr.sync_enabled,
                    configuration,
                })
            })
            .transpose()?;
        let services = AccountServices {
            teams_tenant_id: details
                .teams_tenant_id
                .map(|t| parse_at("serviceDetails.teamsTenantId", TenantId::parse(t)))
                .transpose()?,
            teams_operator_connect: syncable(details.teams_operator_connect),
            teams_phone_mobile: syncable(details.teams_phone_mobile),
            teams_direct_routing,
            zoom_phone_cloud_peering: syncable(details.zoom_phone_cloud_peering),
            azure_operator_call_protection: details
                .azure_operator_call_protection
                .map(|d| PlainService { enabled: d.enabled }),
        };
        Ok(AccountRequest {
            correlation_id,
            services,
        })
    }

    /// The account as the API shows it, from the aggregate and the counts of its numbers.
    pub fn from_state(state: &AccountState, numbers: &NumberCounts) -> AccountResource {
        Self::with_counts(state, |service| Some(numbers.using(service)))
    }

    /// The account as the API shows it, without the counts of its numbers (an account as it
    /// was at a past time: its numbers are not in its events).
    pub fn without_counts(state: &AccountState) -> AccountResource {
        Self::with_counts(state, |_| None)
    }

    /// The account as the API shows it, from its read row (which holds the counts of its
    /// numbers per service, not the numbers).
    pub fn from_row(row: &AccountRow) -> AccountResource {
        Self::with_counts(&row.state, |service| Some(row.number_count(service)))
    }

    /// The account with `number_count` telling how many of its numbers use a service.
    fn with_counts(
        state: &AccountState,
        number_count: impl Fn(Service) -> Option<u64>,
    ) -> AccountResource {
        let services = &state.services;
        let count = |service: Service| number_count(service);
        let syncable = |s: &Option<SyncableService>, service: Service| {
            s.map(|s| SyncableServiceDetails {
                enabled: s.enabled,
                sync_enabled: s.sync_enabled,
                number_count: count(service),
            })
        };
        let (status, errors) = provisioning(&state.sync);
        AccountResource {
            name: state.name.to_string(),
            correlation_id: state.correlation_id.as_ref().map(ToString::to_string),
            service_details: Some(AccountServiceDetails {
                teams_tenant_id: services.teams_tenant_id.as_ref().map(ToString::to_string),
                teams_operator_connect: syncable(
                    &services.teams_operator_connect,
                    Service::TeamsOperatorConnect,
                ),
                teams_direct_routing: services.teams_direct_routing.as_ref().map(|dr| {
                    DirectRoutingDetails {
                        enabled: dr.enabled,
                        sync_enabled: dr.sync_enabled,
                        configuration: dr.configuration.as_ref().map(|c| {
                            DirectRoutingConfigurationWire {
                                call_screening: c.call_screening,
                                subdomain: c.subdomain.to_string(),
                                subdomain_tokens: SubdomainTokensWire {
                                    region1_token: c.region1_token.to_string(),
                                    region2_token: c.region2_token.to_string(),
                                },
                            }
                        }),
                        number_count: count(Service::TeamsDirectRouting),
                        // nmp does not provision Direct Routing subdomains (yet).
                        subdomain_status: Some("notProvisioned".to_string()),
                    }
                }),
                teams_phone_mobile: syncable(
                    &services.teams_phone_mobile,
                    Service::TeamsPhoneMobile,
                ),
                zoom_phone_cloud_peering: syncable(
                    &services.zoom_phone_cloud_peering,
                    Service::ZoomPhoneCloudPeering,
                ),
                azure_operator_call_protection: services.azure_operator_call_protection.map(|s| {
                    CallProtectionDetails {
                        enabled: s.enabled,
                        number_count: count(Service::AzureOperatorCallProtection),
                    }
                }),
            }),
            service_provisioning_status: Some(status),
            service_provisioning_errors: Some(errors),
        }
    }
}
