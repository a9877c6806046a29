//! nmp's interface to the Teams backend (Operator Connect and Teams Phone Mobile), in the
//! domain's terms.
//!
//! Microsoft's Operator Connect API is not public; what is known of it is what this trait
//! offers: consents (with countries, contacts and status) and their customer relationship,
//! numbers uploaded to a tenant as asynchronous orders with per-number results, configuration
//! updates, unassigning and releasing numbers, a tenant's civic addresses and locations, and
//! the capability plans. [`client::HttpBackend`] speaks it over HTTP to `NMP_BACKEND_URL`
//! (the simulator, `nmp sim`, or a connector to the real backend); the JSON of every request
//! and answer is the serde form of the types below.
//!
//! That JSON is camelCase throughout, and independent of nmp's stored events: where a domain
//! type is also an event payload (a number's Teams configuration, a consent's contacts, a civic
//! address and its locations), this crate has its own wire type for it ([`NumberSettings`],
//! [`BackendContact`], [`BackendCivicAddressReport`], [`BackendLocation`]), converted to and
//! from the domain's with `From`. Renaming a field of an event changes nothing here. Only the
//! domain's value types (numbers, country codes, ids, usages, capabilities, statuses), whose
//! serde form is a plain string, appear as they are.
//!
//! Every call is safe to repeat: an upload order carries an id chosen by the caller (the same
//! id places the order once), updating a number sets its whole configuration, and releasing a
//! number the backend no longer holds succeeds.

pub mod client;
pub mod wire;

use chrono::{DateTime, Utc};
use domain::{
    AssignmentStatus, Capability, CivicAddressReport, Comment, ConsentStatus, Contact, CountryCode,
    E164, Identifier, Location, RelationshipStatus, TeamsNumberConfiguration, TenantId, Usage,
    ValidationStatus,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// At most this many numbers go into one call.
pub const MAX_NUMBERS_PER_CALL: usize = 100;

/// Why a call to the backend did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Worth trying again later: rate limited (with the backend's `Retry-After` when given),
    /// a 5xx, a timeout, a dropped connection.
    #[error("the backend is unavailable for now: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The backend refused the call as a whole; repeating it would not help.
    #[error("the backend refused the call: {code}: {message}")]
    Permanent { code: String, message: String },
}

impl BackendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, BackendError::Transient { .. })
    }
}

/// An enterprise's consent as the backend reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendConsent {
    pub tenant_id: TenantId,
    /// The backend's id of the consent.
    pub consent_id: Identifier,
    pub operator_id: Option<Identifier>,
    pub status: ConsentStatus,
    pub consented_on: DateTime<Utc>,
    pub last_modified_on: DateTime<Utc>,
    pub countries: Vec<CountryCode>,
    pub contacts: Vec<BackendContact>,
    /// The customer relationship as last pushed by the operator.
    pub customer_relationship: Option<RelationshipUpdate>,
}

/// The operator's side of a consent, pushed to the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipUpdate {
    pub status: RelationshipStatus,
    pub comment: Option<Comment>,
}

/// Which Teams product a number is provisioned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Product {
    OperatorConnect,
    TeamsPhoneMobile,
}

/// A number's configuration as the backend holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberConfiguration {
    pub telephone_number: E164,
    pub product: Product,
    pub assignment_status: Option<AssignmentStatus>,
    pub configuration: NumberSettings,
}

/// How a number is set up in Teams: the wire form of [`TeamsNumberConfiguration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberSettings {
    pub usage: Usage,
    pub choosable_capabilities: Vec<Capability>,
    pub additional_usages: Vec<Usage>,
    pub civic_address_id: Option<Identifier>,
    pub location_id: Option<Identifier>,
    pub allow_tenant_address_update: bool,
    pub displayed_country_code: Option<CountryCode>,
}

impl From<TeamsNumberConfiguration> for NumberSettings {
    fn from(c: TeamsNumberConfiguration) -> Self {
        NumberSettings {
            usage: c.usage,
            choosable_capabilities: c.choosable_capabilities,
            additional_usages: c.additional_usages,
            civic_address_id: c.civic_address_id,
            location_id: c.location_id,
            allow_tenant_address_update: c.allow_tenant_address_update,
            displayed_country_code: c.displayed_country_code,
        }
    }
}

impl From<NumberSettings> for TeamsNumberConfiguration {
    fn from(s: NumberSettings) -> Self {
        TeamsNumberConfiguration {
            usage: s.usage,
            choosable_capabilities: s.choosable_capabilities,
            additional_usages: s.additional_usages,
            civic_address_id: s.civic_address_id,
            location_id: s.location_id,
            allow_tenant_address_update: s.allow_tenant_address_update,
            displayed_country_code: s.displayed_country_code,
        }
    }
}

/// A contact person the enterprise gave with its consent: the wire form of [`Contact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendContact {
    pub full_name: String,
    pub email: String,
    pub telephone_number: Option<String>,
    pub company_name: Option<String>,
    pub company_size: Option<String>,
}

impl From<Contact> for BackendContact {
    fn from(c: Contact) -> Self {
        BackendContact {
            full_name: c.full_name,
            email: c.email,
            telephone_number: c.telephone_number,
            company_name: c.company_name,
            company_size: c.company_size,
        }
    }
}

impl From<BackendContact> for Contact {
    fn from(c: BackendContact) -> Self {
        Contact {
            full_name: c.full_name,
            email: c.email,
            telephone_number: c.telephone_number,
            company_name: c.company_name,
            company_size: c.company_size,
        }
    }
}

/// An order uploading numbers to a tenant. `id` is the caller's: placing an order whose id the
/// backend already knows returns that order and places nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadOrder {
    pub id: String,
    pub tenant_id: TenantId,
    pub numbers: Vec<NumberConfiguration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderState {
    /// Accepted; its numbers are being worked on.
    InProgress,
    /// Every number has its result.
    Completed,
}

/// What the backend did with one number of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberResult {
    pub telephone_number: E164,
    /// `None` when the change took effect; otherwise why the backend rejected it.
    pub error: Option<Rejection>,
}

/// A per-number rejection: a rule of the backend the number breaks. Permanent for this change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

/// An upload order and, once completed, its per-number results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatus {
    pub id: String,
    pub tenant_id: TenantId,
    pub state: OrderState,
    /// Empty until the order completes; then one result per number of the order.
    pub results: Vec<NumberResult>,
}

/// A civic address of a tenant, with its locations, as the backend reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendCivicAddress {
    pub id: Identifier,
    pub tenant_id: TenantId,
    pub report: BackendCivicAddressReport,
}

/// A civic address as the backend reports it: the wire form of [`CivicAddressReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendCivicAddressReport {
    pub country: CountryCode,
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
    pub default_location_id: Option<Identifier>,
    pub validation_status: ValidationStatus,
    pub partner_id: Option<String>,
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    pub locations: Vec<BackendLocation>,
}

/// A place inside a civic address, with its emergency location number: the wire form of
/// [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendLocation {
    pub id: Identifier,
    pub description: Option<String>,
    pub additional_info: Option<String>,
    pub is_default: bool,
    pub elin: Option<String>,
}

impl From<Location> for BackendLocation {
    fn from(l: Location) -> Self {
        BackendLocation {
            id: l.id,
            description: l.description,
            additional_info: l.additional_info,
            is_default: l.is_default,
            elin: l.elin,
        }
    }
}

impl From<BackendLocation> for Location {
    fn from(l: BackendLocation) -> Self {
        Location {
            id: l.id,
            description: l.description,
            additional_info: l.additional_info,
            is_default: l.is_default,
            elin: l.elin,
        }
    }
}

impl From<CivicAddressReport> for BackendCivicAddressReport {
    fn from(r: CivicAddressReport) -> Self {
        BackendCivicAddressReport {
            country: r.country,
            house_number: r.house_number,
            house_number_suffix: r.house_number_suffix,
            pre_directional: r.pre_directional,
            street_name: r.street_name,
            street_suffix: r.street_suffix,
            post_directional: r.post_directional,
            state_or_province: r.state_or_province,
            county_or_district: r.county_or_district,
            city_or_town: r.city_or_town,
            city_or_town_alias: r.city_or_town_alias,
            postal_or_zip_code: r.postal_or_zip_code,
            description: r.description,
            company_name: r.company_name,
            company_id: r.company_id,
            default_location_id: r.default_location_id,
            validation_status: r.validation_status,
            partner_id: r.partner_id,
            latitude: r.latitude,
            longitude: r.longitude,
            locations: r.locations.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<BackendCivicAddressReport> for CivicAddressReport {
    fn from(r: BackendCivicAddressReport) -> Self {
        CivicAddressReport {
            country: r.country,
            house_number: r.house_number,
            house_number_suffix: r.house_number_suffix,
            pre_directional: r.pre_directional,
            street_name: r.street_name,
            street_suffix: r.street_suffix,
            post_directional: r.post_directional,
            state_or_province: r.state_or_province,
            county_or_district: r.county_or_district,
            city_or_town: r.city_or_town,
            city_or_town_alias: r.city_or_town_alias,
            postal_or_zip_code: r.postal_or_zip_code,
            description: r.description,
            company_name: r.company_name,
            company_id: r.company_id,
            default_location_id: r.default_location_id,
            validation_status: r.validation_status,
            partner_id: r.partner_id,
            latitude: r.latitude,
            longitude: r.longitude,
            locations: r.locations.into_iter().map(Into::into).collect(),
        }
    }
}

/// What the backend offers a tenant: per product, the usages and the capabilities of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityPlan {
    pub product: Product,
    pub usage: Usage,
    pub capabilities: Vec<Capability>,
}

/// The capabilities the backend would give one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableCapabilities {
    pub telephone_number: E164,
    pub capabilities: Vec<Capability>,
    pub error: Option<Rejection>,
}

/// The Teams backend, as nmp uses it.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Every consent given to this operator.
    async fn consents(&self) -> Result<Vec<BackendConsent>, BackendError>;

    /// Sets the customer relationship of a tenant's consent.
    async fn update_relationship(
        &self,
        tenant: &TenantId,
        update: &RelationshipUpdate,
    ) -> Result<(), BackendError>;

    /// Places an upload order (at most [`MAX_NUMBERS_PER_CALL`] numbers), or returns the order
    /// already placed under the same id. The backend refuses a tenant without an active
    /// consent covering a number's country per number, in the order's results.
    async fn place_order(&self, order: &UploadOrder) -> Result<OrderStatus, BackendError>;

    /// The status of an order placed earlier.
    async fn order(&self, id: &str) -> Result<OrderStatus, BackendError>;

    /// Replaces the configuration of numbers the tenant already holds (at most
    /// [`MAX_NUMBERS_PER_CALL`]).
    async fn update_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[NumberConfiguration],
    ) -> Result<Vec<NumberResult>, BackendError>;

    /// Unassigns and releases numbers (at most [`MAX_NUMBERS_PER_CALL`]); a number the tenant
    /// does not hold counts as released.
    async fn release_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<NumberResult>, BackendError>;

    /// A tenant's civic addresses with their locations.
    async fn civic_addresses(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<BackendCivicAddress>, BackendError>;

    /// The usages and capabilities the backend offers a tenant.
    async fn capability_plans(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CapabilityPlan>, BackendError>;

    /// The capabilities available to the given numbers of a tenant.
    async fn available_capabilities(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<AvailableCapabilities>, BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn id(value: &str) -> Identifier {
        Identifier::parse(value).unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap()
    }

    fn country() -> CountryCode {
        CountryCode::parse("GB").unwrap()
    }

    fn some(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    /// Every object key in `value`, with its path.
    fn keys(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let at = format!("{path}.{key}");
                    found.push(at.clone());
                    keys(inner, &at, found);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    keys(inner, &format!("{path}[{i}]"), found);
                }
            }
            _ => {}
        }
    }

    fn assert_camel_case(value: &impl Serialize, nested: &[&str]) {
        let json = serde_json::to_value(value).unwrap();
        let mut found = Vec::new();
        keys(&json, "$", &mut found);
        let snake: Vec<&String> = found
            .iter()
            .filter(|path| path.rsplit('.').next().unwrap().contains('_'))
            .collect();
        assert!(snake.is_empty(), "snake_case keys in {json}: {snake:?}");
        for key in nested {
            assert!(
                found.iter().any(|path| path.ends_with(key)),
                "no {key} in {json}"
            );
        }
    }

    #[test]
    fn number_configuration_is_camel_case_throughout() {
        let number = NumberConfiguration {
            telephone_number: E164::parse("+442071234567").unwrap(),
            product: Product::OperatorConnect,
            assignment_status: Some(AssignmentStatus::Assigned),
            configuration: NumberSettings {
                usage: Usage::CallingUserAssignment,
                choosable_capabilities: vec![Capability::InboundCalling],
                additional_usages: vec![Usage::ConferenceAssignment],
                civic_address_id: Some(id("addr-1")),
                location_id: Some(id("loc-1")),
                allow_tenant_address_update: true,
                displayed_country_code: Some(country()),
            },
        };
        assert_camel_case(
            &number,
            &[
                ".configuration.choosableCapabilities",
                ".configuration.allowTenantAddressUpdate",
                ".configuration.displayedCountryCode",
            ],
        );
        let domain: TeamsNumberConfiguration = number.configuration.clone().into();
        assert_eq!(NumberSettings::from(domain), number.configuration);
    }

    #[test]
    fn consent_is_camel_case_throughout() {
        let consent = BackendConsent {
            tenant_id: tenant(),
            consent_id: id("consent-1"),
            operator_id: Some(id("operator-1")),
            status: ConsentStatus::Active,
            consented_on: Utc::now(),
            last_modified_on: Utc::now(),
            countries: vec![country()],
            contacts: vec![BackendContact {
                full_name: "Ada Lovelace".to_string(),
                email: "ada@example.com".to_string(),
                telephone_number: some("+442071234567"),
                company_name: some("Contoso"),
                company_size: some("100-500"),
            }],
            customer_relationship: Some(RelationshipUpdate {
                status: RelationshipStatus::AgreementSigned,
                comment: Some(Comment::parse("signed").unwrap()),
            }),
        };
        assert_camel_case(
            &consent,
            &[
                ".contacts[0].fullName",
                ".contacts[0].telephoneNumber",
                ".contacts[0].companySize",
            ],
        );
        let domain: Contact = consent.contacts[0].clone().into();
        assert_eq!(BackendContact::from(domain), consent.contacts[0]);
    }

    #[test]
    fn civic_address_is_camel_case_throughout() {
        let address = BackendCivicAddress {
            id: id("addr-1"),
            tenant_id: tenant(),
            report: BackendCivicAddressReport {
                country: country(),
                house_number: some("1"),
                house_number_suffix: some("a"),
                pre_directional: some("N"),
                street_name: some("High"),
                street_suffix: some("Street"),
                post_directional: some("S"),
                state_or_province: some("Greater London"),
                county_or_district: some("Westminster"),
                city_or_town: some("London"),
                city_or_town_alias: some("City"),
                postal_or_zip_code: some("SW1A 1AA"),
                description: some("Head office"),
                company_name: some("Contoso"),
                company_id: some("c-1"),
                default_location_id: Some(id("loc-1")),
                validation_status: ValidationStatus::Validated,
                partner_id: some("p-1"),
                latitude: some("51.5"),
                longitude: some("-0.1"),
                locations: vec![BackendLocation {
                    id: id("loc-1"),
                    description: some("Floor 1"),
                    additional_info: some("East wing"),
                    is_default: true,
                    elin: some("ELIN1"),
                }],
            },
        };
        assert_camel_case(
            &address,
            &[
                ".report.cityOrTown",
                ".report.defaultLocationId",
                ".report.locations[0].additionalInfo",
                ".report.locations[0].isDefault",
            ],
        );
        let domain: CivicAddressReport = address.report.clone().into();
        assert_eq!(BackendCivicAddressReport::from(domain), address.report);
    }
}
