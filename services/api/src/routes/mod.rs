//! The API's resources, one module each.

pub mod accounts;
pub mod consents;
pub mod numbers;
pub mod system;
