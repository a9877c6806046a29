//! `RequestForInformationResource` (a consent) and its merge-patch body on the wire.

use domain::{AccountName, ConsentState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ProvisioningErrorWire, present, provisioning, wire_time};

/// An enterprise's request for information (consent), as the backend reported it, with the
/// operator's customer relationship.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestForInformationResource {
    pub id: String,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    pub product_context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    /// `active`, `suspended` or `removed`.
    pub status: String,
    pub consented_on: String,
    pub last_modified_on: String,
    pub consented_countries: Vec<String>,
    pub contacts: Vec<ContactDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_relationship: Option<CustomerRelationshipWire>,
    pub service_provisioning_status: String,
    pub service_provisioning_errors: Vec<ProvisioningErrorWire>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactDetails {
    pub full_name: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telephone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_size: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRelationshipWire {
    /// `ConsentAcknowledged`, `CustomerContacted`, `AgreementSigned`, `ConsentDeclined` or
    /// `ContractTerminated`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub last_modified_on: String,
}

/// Body of `PATCH /teamsRequestsForInformation/{tenantId}` (JSON merge patch): only
/// `customerRelationship` is writable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestForInformationPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_relationship: Option<CustomerRelationshipPatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRelationshipPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Absent keeps the comment, `null` removes it, a string replaces it. A declined consent or
    /// a terminated contract needs one: the reason.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Option<String>>,
}

impl RequestForInformationResource {
    pub fn from_state(
        state: &ConsentState,
        account: Option<&AccountName>,
    ) -> RequestForInformationResource {
        let report = &state.report;
        let (status, errors) = provisioning(&state.sync);
        RequestForInformationResource {
            id: report.consent_id.to_string(),
            tenant_id: state.tenant_id.to_string(),
            account_name: account.map(ToString::to_string),
            product_context: "teams".to_string(),
            operator_id: report.operator_id.as_ref().map(ToString::to_string),
            status: report.status.as_str().to_string(),
            consented_on: wire_time(&report.consented_on),
            last_modified_on: wire_time(&state.last_modified_on),
            consented_countries: report.countries.iter().map(ToString::to_string).collect(),
            contacts: report
                .contacts
                .iter()
                .map(|c| ContactDetails {
                    full_name: c.full_name.clone(),
                    email: c.email.clone(),
                    telephone_number: c.telephone_number.clone(),
                    company_name: c.company_name.clone(),
                    company_size: c.company_size.clone(),
                })
                .collect(),
            customer_relationship: state
                .relationship
                .as_ref()
                .map(|r| CustomerRelationshipWire {
                    status: r.status.as_str().to_string(),
                    comment: r.comment.as_ref().map(ToString::to_string),
                    last_modified_on: wire_time(&r.last_modified_on),
                }),
            service_provisioning_status: status,
            service_provisioning_errors: errors,
        }
    }
}
