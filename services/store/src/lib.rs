//! nmp's event store on Postgres: the schema (its own migrations), loading aggregates (with an
//! in-process cache, so that a load reads only the events appended since), and appending the
//! events of one command — across any number of aggregates of any type — in one transaction.
//! Every event is chained to the one before it in its aggregate (`chain`: tamper evidence and
//! its verification); `audit` holds the reads for auditors.

pub mod audit;
mod cache;
pub mod chain;
mod combiner;
mod database;
mod event_store;
mod metadata;
pub mod repeatability;

pub use cache::DEFAULT_CACHE_CAPACITY;
pub use database::{DatabaseError, connect, connect_reader};
pub use event_store::{AccountLock, Changes, EventStore, Loaded, Member, StoreError, TenantLink};
pub use metadata::EventMetadata;
