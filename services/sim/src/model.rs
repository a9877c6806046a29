//! The JSON of the simulator's own API, `/_sim`: what tests and demos send to set the scene, and
//! what they read back (the ledger, the numbers held, call counts). camelCase throughout: a
//! number's `configuration` is the backend API's [`NumberSettings`].

use std::collections::BTreeMap;

use backend::{
    BackendCivicAddressReport, BackendContact, BackendLocation, NumberConfiguration,
    NumberSettings, Product,
};
use chrono::{DateTime, Utc};
use domain::{
    AssignmentStatus, Comment, ConsentStatus, CountryCode, E164, Identifier, RelationshipStatus,
    TenantId, ValidationStatus,
};
use serde::{Deserialize, Serialize};

/// `POST /_sim/consents`: an enterprise consents (or consents again), status `active`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentInput {
    pub tenant_id: TenantId,
    pub countries: Vec<CountryCode>,
    #[serde(default)]
    pub contacts: Vec<ContactInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactInput {
    pub full_name: String,
    pub email: String,
    #[serde(default)]
    pub telephone_number: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub company_size: Option<String>,
}

impl From<ContactInput> for BackendContact {
    fn from(input: ContactInput) -> Self {
        BackendContact {
            full_name: input.full_name,
            email: input.email,
            telephone_number: input.telephone_number,
            company_name: input.company_name,
            company_size: input.company_size,
        }
    }
}

/// `POST /_sim/consents/{tenantId}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentStatusInput {
    pub status: ConsentStatus,
}

/// `POST /_sim/tenants/{tenantId}/civicAddresses`: the enterprise adds (or, with a known `id`,
/// replaces) a civic address. Ids left out are generated.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CivicAddressInput {
    pub id: Option<Identifier>,
    pub country: Option<CountryCode>,
    pub house_number: Option<String>,
    pub house_number_suffix: Option<String>,
    pub pre_directional: Option<String>,
    pub street_name: Option<String>,
    pub street_suffix: Option<String>,
    pub post_directional: Option<String>,
    pub state_or_province: Option<String>,
    pub county_or_district: Option<String>,
    pub city_or_town: Option<String>,
    pub city_or_town_alias: Option<String>,
    pub postal_or_zip_code: Option<String>,
    pub description: Option<String>,
    pub company_name: Option<String>,
    pub company_id: Option<String>,
    /// `validated` unless given.
    pub validation_status: Option<ValidationStatus>,
    pub partner_id: Option<String>,
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    pub locations: Vec<LocationInput>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocationInput {
    pub id: Option<Identifier>,
    pub description: Option<String>,
    pub additional_info: Option<String>,
    pub is_default: bool,
    pub elin: Option<String>,
}

impl CivicAddressInput {
    /// The report the backend gives, with generated ids filled in. The default location is the
    /// one marked `isDefault`, else the first.
    pub(crate) fn into_report(
        self,
        mut new_id: impl FnMut() -> Identifier,
    ) -> BackendCivicAddressReport {
        let locations: Vec<BackendLocation> = self
            .locations
            .into_iter()
            .map(|location| BackendLocation {
                id: location.id.unwrap_or_else(&mut new_id),
                description: location.description,
                additional_info: location.additional_info,
                is_default: location.is_default,
                elin: location.elin,
            })
            .collect();
        let default_location_id = locations
            .iter()
            .find(|location| location.is_default)
            .or(locations.first())
            .map(|location| location.id.clone());
        BackendCivicAddressReport {
            country: self
                .country
                .unwrap_or_else(|| CountryCode::parse("GB").expect("a country code")),
            house_number: self.house_number,
            house_number_suffix: self.house_number_suffix,
            pre_directional: self.pre_directional,
            street_name: self.street_name,
            street_suffix: self.street_suffix,
            post_directional: self.post_directional,
            state_or_province: self.state_or_province,
            county_or_district: self.county_or_district,
            city_or_town: self.city_or_town,
            city_or_town_alias: self.city_or_town_alias,
            postal_or_zip_code: self.postal_or_zip_code,
            description: self.description,
            company_name: self.company_name,
            company_id: self.company_id,
            default_location_id,
            validation_status: self
                .validation_status
                .unwrap_or(ValidationStatus::Validated),
            partner_id: self.partner_id,
            latitude: self.latitude,
            longitude: self.longitude,
            locations,
        }
    }
}

/// `GET` and `POST /_sim/settings`: what may change while the simulator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeSettings {
    /// How long an order stays `inProgress` before it completes; 0 completes it at once.
    pub order_delay_ms: u64,
}

/// A number a tenant holds (`GET /_sim/numbers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldNumber {
    pub tenant_id: TenantId,
    /// The order that uploaded it.
    pub order_id: String,
    #[serde(flatten)]
    pub number: NumberConfiguration,
}

/// One change the simulator accepted (`GET /_sim/ledger`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// 1, 2, 3... in the order the changes took effect.
    pub sequence: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub change: Change,
}

/// An effective change: repeating a call that changes nothing records nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Change {
    /// An order uploaded the number to the tenant, or replaced its configuration there.
    NumberUploaded {
        tenant_id: TenantId,
        order_id: String,
        telephone_number: E164,
        product: Product,
        assignment_status: Option<AssignmentStatus>,
        configuration: NumberSettings,
    },
    /// `numbers:update` changed the number's configuration.
    NumberUpdated {
        tenant_id: TenantId,
        telephone_number: E164,
        product: Product,
        assignment_status: Option<AssignmentStatus>,
        configuration: NumberSettings,
    },
    /// The tenant no longer holds the number.
    NumberReleased {
        tenant_id: TenantId,
        telephone_number: E164,
    },
    /// The operator set the consent's customer relationship.
    RelationshipUpdated {
        tenant_id: TenantId,
        status: RelationshipStatus,
        comment: Option<Comment>,
    },
}

impl Change {
    pub fn tenant_id(&self) -> &TenantId {
        match self {
            Change::NumberUploaded { tenant_id, .. }
            | Change::NumberUpdated { tenant_id, .. }
            | Change::NumberReleased { tenant_id, .. }
            | Change::RelationshipUpdated { tenant_id, .. } => tenant_id,
        }
    }

    pub fn telephone_number(&self) -> Option<&E164> {
        match self {
            Change::NumberUploaded {
                telephone_number, ..
            }
            | Change::NumberUpdated {
                telephone_number, ..
            }
            | Change::NumberReleased {
                telephone_number, ..
            } => Some(telephone_number),
            Change::RelationshipUpdated { .. } => None,
        }
    }
}

/// How the backend API was called (`GET /_sim/stats`), since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Every call of the backend API, faulted or not.
    pub calls: u64,
    /// Calls by route, such as `PUT /orders/{id}`.
    pub by_route: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub dropped: u64,
    pub delayed: u64,
    /// The most numbers any one call carried.
    pub largest_batch: usize,
}
