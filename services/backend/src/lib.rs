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
//! Every call is safe to repeat: an upload order carries an id chosen by the caller (the same
//! id places the order once), updating a number sets its whole configuration, and releasing a
//! number the backend no longer holds succeeds.

pub mod client;
pub mod wire;

use chrono::{DateTime, Utc};
use domain::{
    AssignmentStatus, Capability, CivicAddressReport, Comment, ConsentStatus, Contact, CountryCode,
    E164, Identifier, RelationshipStatus, TeamsNumberConfiguration, TenantId, Usage,
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
    pub contacts: Vec<Contact>,
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
    pub configuration: TeamsNumberConfiguration,
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
    pub report: CivicAddressReport,
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
