//! The API's resources, one module each.

pub mod accounts;
pub mod audit;
pub mod consents;
pub mod dashboard;
pub mod failures;
pub mod lists;
pub mod numbers;
pub mod system;
