//! Bearer-token authentication for nmp's HTTP and NATS APIs.
//!
//! A [`Verifier`] checks a JWT against either the operator's identity provider (a JWKS URL;
//! Entra ID or any OpenID provider) or a shared HS256 secret for local use, and yields a
//! [`Principal`] whose [`Role`]s decide which [`Permission`]s the caller has. The crate knows
//! nothing about HTTP status codes: [`AuthError::code`] gives the wire code and the API layer
//! picks the status.
//!
//! ```no_run
//! # async fn example(authorization: Option<&str>) -> Result<(), auth::AuthError> {
//! let verifier = auth::Verifier::jwks(
//!     "https://login.microsoftonline.com/contoso.onmicrosoft.com/discovery/v2.0/keys".to_owned(),
//!     Some("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0".to_owned()),
//!     Some("api://nmp".to_owned()),
//! );
//! let principal = verifier.verify(auth::bearer_token(authorization)?).await?;
//! if !principal.allows(auth::Permission::Write) {
//!     // 403
//! }
//! # Ok(())
//! # }
//! ```

mod bearer;
mod error;
mod jwks;
mod mint;
mod role;
mod verifier;

pub use bearer::bearer_token;
pub use error::AuthError;
pub use mint::{DEVELOPMENT_SECRET, mint_token};
pub use role::{Permission, Principal, Role, UnknownRole};
pub use verifier::Verifier;
