//! The tamper-evidence chain: every event's metadata carries `"chain": {"previous", "hash"}`,
//! where `hash` is SHA-256 over a canonical form of the event (its aggregate, sequence, type,
//! version, payload and metadata without the chain) and `previous` — the hash of the event before
//! it in its aggregate, `null` for sequence 1. Editing, removing or reordering a stored event
//! therefore breaks either its own hash or the link from the event after it, and `verify` finds
//! it by recomputing every chain.
//!
//! The chain is unkeyed: it shows accidental or naive tampering, not an attacker who recomputes
//! every hash after theirs. Removing the last events of an aggregate (or a whole aggregate)
//! leaves no link behind to break; anchoring the chain heads outside the database would.
//!
//! The canonical form is compact JSON with object keys sorted by their bytes, written here
//! rather than left to serde_json (whose key order depends on its `preserve_order` feature).
//! PostgreSQL's jsonb reorders keys and normalises whitespace, so hashes are always computed
//! from JSON values, never from stored text.

use std::fmt;

use futures::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::event_store::StoreError;

/// The metadata key holding an event's link.
pub const CHAIN_KEY: &str = "chain";

/// What an event's hash covers, besides the previous hash.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a Value,
    /// The event's metadata; a `chain` key in it is left out of the hash.
    pub metadata: &'a Value,
}

/// The hex SHA-256 of `previous` and `content` in canonical form: the object
/// `{"aggregate_id", "aggregate_type", "event_type", "event_version", "metadata", "payload",
/// "previous", "sequence"}`, compact, keys sorted, `metadata` without its `chain`.
pub fn event_hash(previous: Option<&str>, content: &EventContent<'_>) -> String {
    let mut out = Vec::with_capacity(512);
    // Keys in byte order, written one by one so that payload and metadata are not copied.
    out.push(b'{');
    write_key(&mut out, "aggregate_id", true);
    write_string(&mut out, content.aggregate_id);
    write_key(&mut out, "aggregate_type", false);
    write_string(&mut out, content.aggregate_type);
    write_key(&mut out, "event_type", false);
    write_string(&mut out, content.event_type);
    write_key(&mut out, "event_version", false);
    write_string(&mut out, content.event_version);
    write_key(&mut out, "metadata", false);
    write_canonical(&mut out, content.metadata, Some(CHAIN_KEY));
    write_key(&mut out, "payload", false);
    write_canonical(&mut out, content.payload, None);
    write_key(&mut out, "previous", false);
    match previous {
        Some(previous) => write_string(&mut out, previous),
        None => out.extend_from_slice(b"null"),
    }
    write_key(&mut out, "sequence", false);
    out.extend_from_slice(content.sequence.to_string().as_bytes());
    out.push(b'}');
    format!("{:x}", Sha256::digest(&out))
}

fn write_key(out: &mut Vec<u8>, key: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    write_string(out, key);
    out.push(b':');
}

/// Writes `value` as compact JSON with object keys sorted by their bytes; `skip` leaves one key
/// of the top-level object out.
fn write_canonical(out: &mut Vec<u8>, value: &Value, skip: Option<&str>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_canonical(out, &map[key], None);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(out, item, None);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own compact form, which does not depend on any feature.
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// An event's link as its metadata records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub previous: Option<String>,
    pub hash: String,
}

impl ChainLink {
    /// The link in `metadata`, if it has a well-formed one.
    pub fn of(metadata: &Value) -> Option<ChainLink> {
        let chain = metadata.get(CHAIN_KEY)?.as_object()?;
        let hash = chain.get("hash")?.as_str()?.to_string();
        let previous = match chain.get("previous")? {
            Value::Null => None,
            Value::String(previous) => Some(previous.clone()),
            _ => return None,
        };
        Some(ChainLink { previous, hash })
    }

    /// The JSON stored under `chain`.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"previous": self.previous, "hash": self.hash})
    }
}

/// What `verify` found wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its content (or its sequence) does not match its hash: it was edited in place.
    Altered,
    /// The events `from..=to` of its aggregate, before it, are missing.
    Missing { from: i64, to: i64 },
    /// It follows, by its `previous`, the event stored at sequence `follows`, not the one stored
    /// before it: events were moved.
    Reordered { follows: i64 },
    /// Its `previous` names no event of its aggregate (or is null although it is not the first
    /// event): the event before it was removed or rewritten.
    BrokenLink { previous: Option<String> },
    /// Its metadata has no (well-formed) chain.
    Unchained,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered => write!(
                f,
                "altered: its content (or its sequence) does not match its hash"
            ),
            Problem::Missing { from, to } if from == to => {
                write!(
                    f,
                    "removed: the event at sequence {from} before it is missing"
                )
            }
            Problem::Missing { from, to } => {
                write!(
                    f,
                    "removed: the events at sequences {from}..={to} before it are missing"
                )
            }
            Problem::Reordered { follows } => write!(
                f,
                "reordered: its chain says it follows the event now at sequence {follows}"
            ),
            Problem::BrokenLink { previous: None } => write!(
                f,
                "removed or rewritten: its chain starts over although events precede it"
            ),
            Problem::BrokenLink {
                previous: Some(previous),
            } => write!(
                f,
                "removed or rewritten: the event it follows (hash {previous}) is not in the store"
            ),
            Problem::Unchained => write!(f, "unchained: its metadata has no chain"),
        }
    }
}

/// One event `verify` found wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} #{}: {}",
            self.aggregate_type, self.aggregate_id, self.sequence, self.problem
        )
    }
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub aggregates: u64,
    pub events: u64,
    /// By aggregate, then sequence.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        write!(
            f,
            "checked {} events of {} aggregates: ",
            self.events, self.aggregates
        )?;
        if self.is_clean() {
            write!(f, "every chain is intact")
        } else {
            write!(f, "{} problem(s)", self.findings.len())
        }
    }
}

/// One row as `verify` reads it.
type VerifyRow = (String, String, i64, String, String, Value, Value);

/// The last event seen of the aggregate being checked.
struct Previous {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    /// Its stored hash, when it has a chain.
    hash: Option<String>,
}

/// An event whose `previous` does not match the event stored before it; classified once the
/// scan is over (it may point at an event stored later).
struct Suspect {
    finding: usize,
    previous: String,
}

/// Recomputes every chain in the store and reports each event that was altered, removed or
/// reordered. Streams the table by aggregate and sequence: memory does not grow with it (only
/// with the findings).
pub async fn verify(pool: &PgPool) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut suspects: Vec<Suspect> = Vec::new();
    let mut last: Option<Previous> = None;
    {
        let mut rows = sqlx::query_as::<_, VerifyRow>(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
               FROM events ORDER BY aggregate_type, aggregate_id, sequence",
        )
        .fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let (
                aggregate_type,
                aggregate_id,
                sequence,
                event_type,
                event_version,
                payload,
                metadata,
            ) = row;
            report.events += 1;
            let before = last
                .take()
                .filter(|p| p.aggregate_type == aggregate_type && p.aggregate_id == aggregate_id);
            if before.is_none() {
                report.aggregates += 1;
            }
            let mut find = |problem: Problem| {
                report.findings.push(Finding {
                    aggregate_type: aggregate_type.clone(),
                    aggregate_id: aggregate_id.clone(),
                    sequence,
                    problem,
                });
                report.findings.len() - 1
            };
            let expected_sequence = before.as_ref().map_or(1, |p| p.sequence + 1);
            if sequence > expected_sequence {
                find(Problem::Missing {
                    from: expected_sequence,
                    to: sequence - 1,
                });
            }
            let link = ChainLink::of(&metadata);
            match &link {
                None => {
                    find(Problem::Unchained);
                }
                Some(link) => {
                    let content = EventContent {
                        aggregate_type: &aggregate_type,
                        aggregate_id: &aggregate_id,
                        sequence,
                        event_type: &event_type,
                        event_version: &event_version,
                        payload: &payload,
                        metadata: &metadata,
                    };
                    if event_hash(link.previous.as_deref(), &content) != link.hash {
                        find(Problem::Altered);
                    }
                    // The link can be checked only against the event right before it.
                    let expected_previous = match &before {
                        None if sequence == 1 => Some(None),
                        Some(p) if p.sequence + 1 == sequence => p.hash.clone().map(Some),
                        _ => None,
                    };
                    if let Some(expected) = expected_previous
                        && expected != link.previous
                    {
                        match &link.previous {
                            None => {
                                find(Problem::BrokenLink { previous: None });
                            }
                            Some(previous) => {
                                let finding = find(Problem::BrokenLink {
                                    previous: Some(previous.clone()),
                                });
                                suspects.push(Suspect {
                                    finding,
                                    previous: previous.clone(),
                                });
                            }
                        }
                    }
                }
            }
            last = Some(Previous {
                aggregate_type,
                aggregate_id,
                sequence,
                hash: link.map(|l| l.hash),
            });
        }
    }
    // Rare (only where the store was tampered with), so one lookup each is fine.
    for suspect in suspects {
        let finding = &mut report.findings[suspect.finding];
        let follows: Option<i64> = sqlx::query_scalar(
            "SELECT sequence FROM events \
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND metadata->'chain'->>'hash' = $3 \
              ORDER BY sequence LIMIT 1",
        )
        .bind(&finding.aggregate_type)
        .bind(&finding.aggregate_id)
        .bind(&suspect.previous)
        .fetch_optional(pool)
        .await?;
        if let Some(follows) = follows {
            finding.problem = Problem::Reordered { follows };
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn content<'a>(payload: &'a Value, metadata: &'a Value) -> EventContent<'a> {
        EventContent {
            aggregate_type: "account",
            aggregate_id: "contoso",
            sequence: 2,
            event_type: "AccountUpdated",
            event_version: "1.0",
            payload,
            metadata,
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order_or_the_chain_itself() {
        let payload: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, "x"], "x": null}}"#).unwrap();
        let reordered: Value =
            serde_json::from_str(r#"{"a": {"x": null, "y": [1, "x"]}, "b": 1}"#).unwrap();
        let metadata = json!({"subject": "alice", "time": "2024-05-01T10:00:00Z"});
        let chained = json!({"time": "2024-05-01T10:00:00Z", "subject": "alice",
                             "chain": {"previous": "00", "hash": "11"}});
        let hash = event_hash(Some("ab"), &content(&payload, &metadata));
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, event_hash(Some("ab"), &content(&reordered, &chained)));
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let payload = json!({"a": 1});
        let metadata = json!({"subject": "alice"});
        let base = content(&payload, &metadata);
        let hash = event_hash(Some("ab"), &base);
        assert_ne!(hash, event_hash(None, &base));
        assert_ne!(hash, event_hash(Some("ac"), &base));
        assert_ne!(
            hash,
            event_hash(
                Some("ab"),
                &EventContent {
                    sequence: 3,
                    ..base
                }
            )
        );
        assert_ne!(
            hash,
            event_hash(
                Some("ab"),
                &EventContent {
                    aggregate_id: "fabrikam",
                    ..base
                }
            )
        );
        assert_ne!(
            hash,
            event_hash(
                Some("ab"),
                &EventContent {
                    event_version: "2.0",
                    ..base
                }
            )
        );
        let other_payload = json!({"a": 2});
        assert_ne!(
            hash,
            event_hash(
                Some("ab"),
                &EventContent {
                    payload: &other_payload,
                    ..base
                }
            )
        );
        let other_metadata = json!({"subject": "mallory"});
        assert_ne!(
            hash,
            event_hash(
                Some("ab"),
                &EventContent {
                    metadata: &other_metadata,
                    ..base
                }
            )
        );
    }

    #[test]
    fn canonical_json_is_compact_with_sorted_keys() {
        let value: Value =
            serde_json::from_str(r#"{"é": "\u00e9\n", "Z": [true, 1.5, -3], "a": {}}"#).unwrap();
        let mut out = Vec::new();
        write_canonical(&mut out, &value, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Z":[true,1.5,-3],"a":{},"é":"é\n"}"#
        );
    }

    #[test]
    fn a_link_is_read_back_from_metadata() {
        let link = ChainLink {
            previous: None,
            hash: "ff".to_string(),
        };
        let metadata = json!({"subject": "alice", "chain": link.to_value()});
        assert_eq!(ChainLink::of(&metadata), Some(link));
        assert_eq!(ChainLink::of(&json!({"subject": "alice"})), None);
        assert_eq!(ChainLink::of(&json!({"chain": {"hash": 1}})), None);
    }
}
