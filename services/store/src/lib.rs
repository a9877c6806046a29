//! nmp's event store on Postgres: the schema (its own migrations), loading aggregates through
//! postgres-es, and appending the events of one command — across any number of aggregates of
//! any type — in one transaction.

mod database;
mod event_store;
mod metadata;
pub mod repeatability;

pub use database::{DatabaseError, connect};
pub use event_store::{Changes, EventStore, Loaded, StoreError, TenantLink};
pub use metadata::EventMetadata;
