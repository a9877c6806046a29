//! The Provisioning API's JSON shapes. These are separate from the domain's types so that a
//! change to the wire cannot reshape stored events; conversions parse every field into domain
//! values and report a refusal with the JSON path of the offending field.

pub mod account;
pub mod capabilities;
pub mod consent;
pub mod number;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{InvalidValue, ProvisioningError, SyncState};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use commands::AppError;

/// Parses `value` with `parse`, reporting a failure at `target`.
pub(crate) fn parse_at<T>(
    target: impl Into<String>,
    parsed: Result<T, InvalidValue>,
) -> Result<T, AppError> {
    parsed.map_err(|error| AppError::invalid_value(error, target))
}

/// Times as the API writes them: RFC 3339, UTC, milliseconds.
pub(crate) fn wire_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One error the backend reported, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ProvisioningErrorWire {
    pub code: String,
    pub message: String,
}

/// `serviceProvisioningStatus` and `serviceProvisioningErrors` of a resource.
pub(crate) fn provisioning(sync: &SyncState) -> (String, Vec<ProvisioningErrorWire>) {
    (
        sync.status.as_str().to_string(),
        sync.errors
            .iter()
            .map(
                |ProvisioningError { code, message }| ProvisioningErrorWire {
                    code: code.clone(),
                    message: message.clone(),
                },
            )
            .collect(),
    )
}

/// Distinguishes a field that is absent (`None`) from one set to `null` (`Some(None)`), as JSON
/// merge patch needs.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
