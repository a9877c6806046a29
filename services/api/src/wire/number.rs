//! `NumberResource` and the batch bodies on the wire.

use domain::{
    AccountName, AssignmentStatus, Capability, CountryCode, E164, Identifier, NumberDetails,
    NumberState, PlainService, SipHeaderValue, TeamsNumberConfiguration, TeamsNumberService, Usage,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ProvisioningErrorWire, parse_at, provisioning};
use commands::AppError;

/// A telephone number of an account. Read-only fields sent by a client are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberResource {
    /// E.164: `+`, country code, digits; at most 16 characters.
    pub telephone_number: String,
    /// The account; must equal the account in the path when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    pub service_details: NumberServiceDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<NumberConfiguration>,
    #[serde(default, skip_deserializing)]
    pub service_provisioning_status: Option<String>,
    #[serde(default, skip_deserializing)]
    pub service_provisioning_errors: Option<Vec<ProvisioningErrorWire>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NumberServiceDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_operator_connect: Option<TeamsNumberDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_direct_routing: Option<EnabledDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_phone_mobile: Option<TeamsNumberDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom_phone_cloud_peering: Option<EnabledDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_operator_call_protection: Option<EnabledDetails>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnabledDetails {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamsNumberDetails {
    pub enabled: bool,
    /// `assigned` or `unassigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<TeamsNumberConfigurationWire>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamsNumberConfigurationWire {
    /// `CallingUserAssignment`, `FirstPartyAppAssignment` or `ConferenceAssignment`.
    pub usage: String,
    /// `InboundCalling`, `OutboundCalling`, `Mobile` (Teams Phone Mobile only).
    pub choosable_capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_usages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub civic_address_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tenant_address_update: Option<bool>,
    /// ISO 3166 alpha-2 (in either case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displayed_country_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberConfiguration {
    /// 1–100 of `A-Z a-z 0-9 _ -`; not for Teams Phone Mobile or Azure Operator Call
    /// Protection numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_sip_header: Option<String>,
}

/// Body of `:createOrUpdateNumbers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchNumbers {
    /// At most 100.
    pub numbers: Vec<NumberResource>,
}

/// Body of `:deleteNumbers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchNumbersDelete {
    /// At most 100.
    pub numbers: Vec<NumberIdentifier>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberIdentifier {
    pub telephone_number: String,
}

/// The most items a batch may hold.
pub const MAX_BATCH: usize = 100;

impl NumberResource {
    /// Parses one number of account `account`; `prefix` is its place in the body ("" for a
    /// single number, "numbers[3]." in a batch).
    pub fn into_details(
        self,
        account: &AccountName,
        prefix: &str,
    ) -> Result<(E164, NumberDetails), AppError> {
        let number = parse_at(
            format!("{prefix}telephoneNumber"),
            E164::parse(self.telephone_number),
        )?;
        if let Some(name) = &self.account_name
            && name != account.as_str()
        {
            return Err(AppError::invalid(
                "AccountNameMismatch",
                format!("accountName '{name}' differs from the account in the path '{account}'"),
            )
            .with_target(format!("{prefix}accountName")));
        }
        let services = self.service_details;
        let teams = |details: Option<TeamsNumberDetails>, service: &str| {
            details
                .map(|d| teams_service(d, &format!("{prefix}serviceDetails.{service}")))
                .transpose()
        };
        let plain = |d: Option<EnabledDetails>| d.map(|d| PlainService { enabled: d.enabled });
        let details = NumberDetails {
            teams_operator_connect: teams(services.teams_operator_connect, "teamsOperatorConnect")?,
            teams_phone_mobile: teams(services.teams_phone_mobile, "teamsPhoneMobile")?,
            teams_direct_routing: plain(services.teams_direct_routing),
            zoom_phone_cloud_peering: plain(services.zoom_phone_cloud_peering),
            azure_operator_call_protection: plain(services.azure_operator_call_protection),
            custom_sip_header: self
                .configuration
                .and_then(|c| c.custom_sip_header)
                .map(|v| {
                    parse_at(
                        format!("{prefix}configuration.customSipHeader"),
                        SipHeaderValue::parse(v),
                    )
                })
                .transpose()?,
        };
        Ok((number, details))
    }

    /// The number as the API shows it.
    pub fn from_state(state: &NumberState) -> NumberResource {
        let details = &state.details;
        let teams = |s: &Option<TeamsNumberService>| {
            s.as_ref().map(|s| TeamsNumberDetails {
                enabled: s.enabled,
                assignment_status: s.assignment_status.map(|a| a.as_str().to_string()),
                configuration: s
                    .configuration
                    .as_ref()
                    .map(|c| TeamsNumberConfigurationWire {
                        usage: c.usage.as_str().to_string(),
                        choosable_capabilities: c
                            .choosable_capabilities
                            .iter()
                            .map(|c| c.as_str().to_string())
                            .collect(),
                        additional_usages: (!c.additional_usages.is_empty()).then(|| {
                            c.additional_usages
                                .iter()
                                .map(|u| u.as_str().to_string())
                                .collect()
                        }),
                        civic_address_id: c.civic_address_id.as_ref().map(ToString::to_string),
                        location_id: c.location_id.as_ref().map(ToString::to_string),
                        allow_tenant_address_update: c.allow_tenant_address_update.then_some(true),
                        displayed_country_code: c
                            .displayed_country_code
                            .as_ref()
                            .map(ToString::to_string),
                    }),
            })
        };
        let plain = |s: &Option<PlainService>| s.map(|s| EnabledDetails { enabled: s.enabled });
        let (status, errors) = provisioning(&state.sync);
        NumberResource {
            telephone_number: state.telephone_number.to_string(),
            account_name: Some(state.account.to_string()),
            service_details: NumberServiceDetails {
                teams_operator_connect: teams(&details.teams_operator_connect),
                teams_direct_routing: plain(&details.teams_direct_routing),
                teams_phone_mobile: teams(&details.teams_phone_mobile),
                zoom_phone_cloud_peering: plain(&details.zoom_phone_cloud_peering),
                azure_operator_call_protection: plain(&details.azure_operator_call_protection),
            },
            configuration: details
                .custom_sip_header
                .as_ref()
                .map(|v| NumberConfiguration {
                    custom_sip_header: Some(v.to_string()),
                }),
            service_provisioning_status: Some(status),
            service_provisioning_errors: Some(errors),
        }
    }
}

fn teams_service(details: TeamsNumberDetails, base: &str) -> Result<TeamsNumberService, AppError> {
    let assignment_status = details
        .assignment_status
        .map(|a| {
            parse_at(
                format!("{base}.assignmentStatus"),
                AssignmentStatus::parse(&a),
            )
        })
        .transpose()?;
    let configuration = details
        .configuration
        .map(|c| -> Result<TeamsNumberConfiguration, AppError> {
            let at = |field: &str| format!("{base}.configuration.{field}");
            let choosable_capabilities = c
                .choosable_capabilities
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    parse_at(
                        format!("{}[{i}]", at("choosableCapabilities")),
                        Capability::parse(v),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let additional_usages = c
                .additional_usages
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, v)| parse_at(format!("{}[{i}]", at("additionalUsages")), Usage::parse(v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TeamsNumberConfiguration {
                usage: parse_at(at("usage"), Usage::parse(&c.usage))?,
                choosable_capabilities,
                additional_usages,
                civic_address_id: c
                    .civic_address_id
                    .map(|v| parse_at(at("civicAddressId"), Identifier::parse(v)))
                    .transpose()?,
                location_id: c
                    .location_id
                    .map(|v| parse_at(at("locationId"), Identifier::parse(v)))
                    .transpose()?,
                allow_tenant_address_update: c.allow_tenant_address_update.unwrap_or(false),
                // ISO 3166 codes are capitals; the public API does not say so, so `gb` is `GB`.
                displayed_country_code: c
                    .displayed_country_code
                    .map(|v| {
                        parse_at(
                            at("displayedCountryCode"),
                            CountryCode::parse(v.to_ascii_uppercase()),
                        )
                    })
                    .transpose()?,
            })
        })
        .transpose()?;
    Ok(TeamsNumberService {
        enabled: details.enabled,
        assignment_status,
        configuration,
    })
}
