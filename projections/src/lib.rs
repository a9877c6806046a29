//! Read models for lists, dashboards and auditors, built from the event stream.
//!
//! The projector (`projector.rs`) consumes the JetStream stream with a durable pull consumer and
//! keeps one row per account, number and consent (`write.rs`), each with its aggregate's version
//! written in the same transaction, plus one audit row per event. Projectors never write the
//! event store.

pub mod failures;
pub mod filter;
pub mod projector;
pub mod query;
pub mod rebuild;
pub mod write;

pub use projector::{Projector, ProjectorSettings, ProjectorStatus};
pub use rebuild::{RebuildReport, Target, rebuild};
pub use write::{Kind, Projected, project};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] store::StoreError),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("cannot replay a stored event: {0}")]
    Replay(String),
}
