//! The operations of the NATS API and their request bodies; each runs the same
//! `api::operations` function as its REST twin.

use api::AppState;
use api::context::{Caller, from_value};
use api::operations;
use api::wire::account::AccountResource;
use api::wire::consent::{CustomerRelationshipPatch, RequestForInformationPatch};
use api::wire::number::{BatchNumbers, BatchNumbersDelete, NumberIdentifier, NumberResource};
use auth::Permission;
use commands::{AppError, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An operation, named by the subject's last two tokens (`accounts.get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    AccountsGet,
    AccountsCreateOrReplace,
    AccountsDelete,
    AccountsRetryProvisioning,
    AccountsGetTeamsCapabilityPlans,
    AccountsGetTeamsAvailableCapabilities,
    NumbersGet,
    NumbersCreateOrReplace,
    NumbersDelete,
    NumbersCreateOrUpdateBatch,
    NumbersDeleteBatch,
    NumbersSetCustomSipHeader,
    NumbersRetryProvisioning,
    RequestsForInformationGet,
    RequestsForInformationUpdateRelationship,
    RequestsForInformationRetryProvisioning,
}

impl Operation {
    pub const ALL: [(&'static str, Operation); 16] = [
        ("accounts.get", Operation::AccountsGet),
        (
            "accounts.createOrReplace",
            Operation::AccountsCreateOrReplace,
        ),
        ("accounts.delete", Operation::AccountsDelete),
        (
            "accounts.retryProvisioning",
            Operation::AccountsRetryProvisioning,
        ),
        (
            "accounts.getTeamsCapabilityPlans",
            Operation::AccountsGetTeamsCapabilityPlans,
        ),
        (
            "accounts.getTeamsAvailableCapabilities",
            Operation::AccountsGetTeamsAvailableCapabilities,
        ),
        ("numbers.get", Operation::NumbersGet),
        ("numbers.createOrReplace", Operation::NumbersCreateOrReplace),
        ("numbers.delete", Operation::NumbersDelete),
        (
            "numbers.createOrUpdateBatch",
            Operation::NumbersCreateOrUpdateBatch,
        ),
        ("numbers.deleteBatch", Operation::NumbersDeleteBatch),
        (
            "numbers.setCustomSipHeader",
            Operation::NumbersSetCustomSipHeader,
        ),
        (
            "numbers.retryProvisioning",
            Operation::NumbersRetryProvisioning,
        ),
        (
            "requestsForInformation.get",
            Operation::RequestsForInformationGet,
        ),
        (
            "requestsForInformation.updateRelationship",
            Operation::RequestsForInformationUpdateRelationship,
        ),
        (
            "requestsForInformation.retryProvisioning",
            Operation::RequestsForInformationRetryProvisioning,
        ),
    ];

    pub fn parse(name: &str) -> Option<Operation> {
        Self::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, operation)| *operation)
    }

    /// The same rule as HTTP: queries need Read, removals Delete, everything else Write (the
    /// capability questions included: over HTTP they are POST actions).
    pub fn permission(self) -> Permission {
        match self {
            Operation::AccountsGet
            | Operation::NumbersGet
            | Operation::RequestsForInformationGet => Permission::Read,
            Operation::AccountsDelete
            | Operation::NumbersDelete
            | Operation::NumbersDeleteBatch => Permission::Delete,
            _ => Permission::Write,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountRef {
    account_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountPut {
    account_name: String,
    account: AccountResource,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDelete {
    account_name: String,
    #[serde(default)]
    delete_numbers: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberRef {
    account_name: String,
    telephone_number: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberPut {
    account_name: String,
    telephone_number: String,
    number: NumberResource,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberBatch {
    account_name: String,
    numbers: Vec<NumberResource>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NumberDeleteBatch {
    account_name: String,
    numbers: Vec<NumberIdentifier>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AvailableCapabilitiesQuery {
    account_name: String,
    numbers: Vec<NumberIdentifier>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SipHeaderPut {
    account_name: String,
    telephone_number: String,
    /// A value sets the header; `null` clears it. It must be given either way.
    #[serde(default, deserialize_with = "api::wire::present")]
    custom_sip_header: Option<Option<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsentRef {
    tenant_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelationshipUpdate {
    tenant_id: String,
    customer_relationship: CustomerRelationshipPatch,
}

/// Runs `operation` with its JSON body.
pub async fn run(
    state: &AppState,
    caller: &Caller,
    operation: Operation,
    body: Value,
) -> Result<Outcome, AppError> {
    match operation {
        Operation::AccountsGet => {
            let request: AccountRef = from_value(body)?;
            operations::get_account(state, &request.account_name).await
        }
        Operation::AccountsCreateOrReplace => {
            let request: AccountPut = from_value(body)?;
            operations::put_account(state, caller, &request.account_name, request.account).await
        }
        Operation::AccountsDelete => {
            let request: AccountDelete = from_value(body)?;
            operations::delete_account(state, caller, &request.account_name, request.delete_numbers)
                .await
        }
        Operation::AccountsRetryProvisioning => {
            let request: AccountRef = from_value(body)?;
            operations::retry_account_provisioning(state, caller, &request.account_name).await
        }
        Operation::AccountsGetTeamsCapabilityPlans => {
            let request: AccountRef = from_value(body)?;
            operations::get_teams_capability_plans(state, &request.account_name).await
        }
        Operation::AccountsGetTeamsAvailableCapabilities => {
            let request: AvailableCapabilitiesQuery = from_value(body)?;
            let batch = BatchNumbersDelete {
                numbers: request.numbers,
            };
            operations::get_teams_available_capabilities(state, &request.account_name, batch).await
        }
        Operation::NumbersGet => {
            let request: NumberRef = from_value(body)?;
            operations::get_number(state, &request.account_name, &request.telephone_number).await
        }
        Operation::NumbersCreateOrReplace => {
            let request: NumberPut = from_value(body)?;
            operations::put_number(
                state,
                caller,
                &request.account_name,
                &request.telephone_number,
                request.number,
            )
            .await
        }
        Operation::NumbersDelete => {
            let request: NumberRef = from_value(body)?;
            operations::delete_number(
                state,
                caller,
                &request.account_name,
                &request.telephone_number,
            )
            .await
        }
        Operation::NumbersCreateOrUpdateBatch => {
            let request: NumberBatch = from_value(body)?;
            let batch = BatchNumbers {
                numbers: request.numbers,
            };
            operations::create_or_update_numbers(state, caller, &request.account_name, batch).await
        }
        Operation::NumbersDeleteBatch => {
            let request: NumberDeleteBatch = from_value(body)?;
            let batch = BatchNumbersDelete {
                numbers: request.numbers,
            };
            operations::delete_numbers(state, caller, &request.account_name, batch).await
        }
        Operation::NumbersSetCustomSipHeader => {
            let request: SipHeaderPut = from_value(body)?;
            let Some(value) = request.custom_sip_header else {
                return Err(AppError::invalid(
                    "MissingField",
                    "customSipHeader is required: a value sets the header, null clears it",
                )
                .with_target("customSipHeader"));
            };
            operations::set_custom_sip_header(
                state,
                caller,
                &request.account_name,
                &request.telephone_number,
                value,
            )
            .await
        }
        Operation::NumbersRetryProvisioning => {
            let request: NumberRef = from_value(body)?;
            operations::retry_number_provisioning(
                state,
                caller,
                &request.account_name,
                &request.telephone_number,
            )
            .await
        }
        Operation::RequestsForInformationGet => {
            let request: ConsentRef = from_value(body)?;
            operations::get_request_for_information(state, &request.tenant_id).await
        }
        Operation::RequestsForInformationUpdateRelationship => {
            let request: RelationshipUpdate = from_value(body)?;
            let patch = RequestForInformationPatch {
                customer_relationship: Some(request.customer_relationship),
            };
            operations::patch_request_for_information(state, caller, &request.tenant_id, patch)
                .await
        }
        Operation::RequestsForInformationRetryProvisioning => {
            let request: ConsentRef = from_value(body)?;
            operations::retry_request_for_information_provisioning(
                state,
                caller,
                &request.tenant_id,
            )
            .await
        }
    }
}
