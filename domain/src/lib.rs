//! nmp's domain: the Consent, Account and Number aggregates with their commands, events and
//! value types. Pure: it knows nothing of HTTP, SQL or NATS, and takes time from its commands.

pub mod account;
pub mod civic_address;
pub mod consent;
pub mod error;
pub mod kinds;
pub mod number;
pub mod service_details;
pub mod values;

pub use account::{
    Account, AccountCommand, AccountEvent, AccountState, NumberCounts, NumberMembership,
};
pub use civic_address::{
    CivicAddress, CivicAddressCommand, CivicAddressEvent, CivicAddressReport, CivicAddressState,
    Location, ValidationStatus,
};
pub use consent::{
    Consent, ConsentCommand, ConsentEvent, ConsentReport, ConsentState, Contact,
    CustomerRelationship, RelationshipChange,
};
pub use error::{DomainError, RefusalKind};
pub use kinds::AggregateKind;
pub use number::{Number, NumberCommand, NumberEvent, NumberState};
pub use service_details::{
    AccountServices, DirectRoutingConfiguration, DirectRoutingService, NumberDetails, PlainService,
    Service, SyncableService, TeamsNumberConfiguration, TeamsNumberService,
};
pub use values::*;

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod consent_tests;
#[cfg(test)]
mod number_tests;
#[cfg(test)]
mod test_fixtures;
