//! What every stored event records about the request that caused it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who did it, when, and how to trace it. Stored as each event's `metadata` column; all events
/// of one command share it. `EventStore::commit` adds each event's own `chain` key (its link in
/// the tamper-evidence chain, `chain.rs`) when storing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The caller's subject (the token's `sub`).
    pub subject: String,
    /// The caller's roles as the token named them.
    pub roles: Vec<String>,
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// Ties together the events of one business operation across requests.
    pub correlation_id: String,
    /// The W3C trace context of the request, so later work continues its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventMetadata {
    /// Metadata for work nmp does on its own behalf (sync from the backend, tests' setup).
    pub fn system(subject: &str) -> Self {
        EventMetadata {
            subject: subject.to_string(),
            roles: Vec::new(),
            time: Utc::now(),
            client_request_id: None,
            ticket_id: None,
            correlation_id: uuid::Uuid::new_v4().to_string(),
            traceparent: None,
        }
    }
}
