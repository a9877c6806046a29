//! The answers of `:getTeamsCapabilityPlans` and `:getTeamsAvailableCapabilities`, from what the
//! Teams backend reports (`backend::CapabilityPlan`, `backend::AvailableCapabilities`).

use backend::{AvailableCapabilities, CapabilityPlan, Product};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The Teams capability plans of an account's tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamsCapabilityPlans {
    pub capability_plans: Vec<TeamsCapabilityPlan>,
}

/// A Teams capability plan: for one product and usage, the capabilities a number may have.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamsCapabilityPlan {
    /// `<product>-<usage>`, such as `operatorConnect-CallingUserAssignment`.
    pub name: String,
    /// `Calling` (Operator Connect) or `Mobile` (Teams Phone Mobile).
    pub offer_types: Vec<String>,
    pub usage: String,
    pub mandatory_capabilities: Vec<String>,
    pub choosable_capabilities: Vec<String>,
    /// Whether toll-free numbers may be uploaded under the plan (Operator Connect only).
    pub supports_toll_free: bool,
}

/// The Teams capabilities available to every number asked about.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamsAvailableCapabilities {
    pub available_capabilities: Vec<String>,
}

fn product_name(product: Product) -> &'static str {
    match product {
        Product::OperatorConnect => "operatorConnect",
        Product::TeamsPhoneMobile => "teamsPhoneMobile",
    }
}

impl TeamsCapabilityPlan {
    /// The backend names a plan by product and usage and lists the capabilities a number may
    /// choose; none is mandatory in it.
    pub fn from_backend(plan: &CapabilityPlan) -> Self {
        let usage = plan.usage.as_str().to_string();
        TeamsCapabilityPlan {
            name: format!("{}-{usage}", product_name(plan.product)),
            offer_types: vec![
                match plan.product {
                    Product::OperatorConnect => "Calling",
                    Product::TeamsPhoneMobile => "Mobile",
                }
                .to_string(),
            ],
            usage,
            mandatory_capabilities: Vec::new(),
            choosable_capabilities: plan
                .capabilities
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            supports_toll_free: plan.product == Product::OperatorConnect,
        }
    }
}

impl TeamsAvailableCapabilities {
    /// The capabilities every one of the numbers has, in the order the first lists them.
    pub fn common_to(numbers: &[AvailableCapabilities]) -> Self {
        let available_capabilities = match numbers.split_first() {
            None => Vec::new(),
            Some((first, rest)) => first
                .capabilities
                .iter()
                .filter(|c| rest.iter().all(|other| other.capabilities.contains(c)))
                .map(|c| c.as_str().to_string())
                .collect(),
        };
        TeamsAvailableCapabilities {
            available_capabilities,
        }
    }
}
