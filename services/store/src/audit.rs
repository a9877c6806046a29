//! Reads for auditors: an aggregate's recorded events (with their metadata), its state as of a
//! time, and every event of a time range in commit order — streamed, so that an export of
//! millions of events holds one row at a time — with the CloudEvents shape of an exported line.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::persist::SerializedEvent;
use futures::{Stream, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::event_store::{EventStore, StoreError};

/// One stored event as it was recorded: the row of `events`, metadata (with its chain) included.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RecordedEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub global_position: i64,
}

impl RecordedEvent {
    /// When it was recorded: its metadata's `time`.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        metadata_time(&self.metadata)
    }

    /// The event as one CloudEvents 1.0 JSON object (structured mode): id
    /// `<type>:<id>:<sequence>` as on NATS, `source` the installation's (`urn:nmp:<prefix>`),
    /// type `nmp.<aggregate type>.<event type>`, the stored payload as `data`, and extension
    /// attributes `sequence`, `globalposition`, `eventversion`, `traceparent` and `metadata` (the
    /// stored metadata, chain included, as a JSON string: CloudEvents attributes are scalars).
    pub fn cloud_event<'a>(&'a self, source: &'a str) -> CloudEvent<'a> {
        CloudEvent {
            specversion: "1.0",
            id: format!(
                "{}:{}:{}",
                self.aggregate_type, self.aggregate_id, self.sequence
            ),
            source,
            kind: format!("nmp.{}.{}", self.aggregate_type, self.event_type),
            subject: format!("{}/{}", self.aggregate_type, self.aggregate_id),
            time: self.metadata.get("time").and_then(Value::as_str),
            datacontenttype: "application/json",
            data: &self.payload,
            sequence: self.sequence,
            globalposition: self.global_position,
            eventversion: &self.event_version,
            traceparent: self.metadata.get("traceparent").and_then(Value::as_str),
            metadata: self.metadata.to_string(),
        }
    }
}

/// A CloudEvents 1.0 event in the JSON format, as `RecordedEvent::cloud_event` builds it.
#[derive(Debug, Serialize)]
pub struct CloudEvent<'a> {
    pub specversion: &'static str,
    pub id: String,
    pub source: &'a str,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<&'a str>,
    pub datacontenttype: &'static str,
    pub data: &'a Value,
    pub sequence: i64,
    pub globalposition: i64,
    pub eventversion: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<&'a str>,
    pub metadata: String,
}

fn metadata_time(metadata: &Value) -> Option<DateTime<Utc>> {
    let time = metadata.get("time")?.as_str()?;
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// An aggregate as it stood at a time: rebuilt from its events up to then.
#[derive(Debug, Clone)]
pub struct AsOf<A> {
    pub aggregate: A,
    /// The sequence of the last event applied (0: none had happened yet).
    pub version: u64,
    /// When that event was recorded.
    pub last_event_time: Option<DateTime<Utc>>,
}

/// Which events an export holds: recorded at or after `from` and before `to` (either end open
/// when `None`), of one aggregate type or all.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub aggregate_type: Option<String>,
}

/// The events `filter` selects, in commit order `(tx_id, global_position)`, streamed from one
/// query: rows are read as the stream is polled, so memory stays flat however many there are.
/// Only committed events are seen; one whose transaction commits after the query started is
/// not, whatever its time.
pub fn export<'a>(
    pool: &'a PgPool,
    filter: &ExportFilter,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'a {
    sqlx::query_as::<_, RecordedEvent>(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                metadata, global_position \
           FROM events \
          WHERE ($1::timestamptz IS NULL OR (metadata->>'time')::timestamptz >= $1) \
            AND ($2::timestamptz IS NULL OR (metadata->>'time')::timestamptz < $2) \
            AND ($3::text IS NULL OR aggregate_type = $3) \
          ORDER BY tx_id, global_position",
    )
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.aggregate_type.clone())
    .fetch(pool)
    .map_err(StoreError::from)
}

impl EventStore {
    /// Events of aggregate `aggregate_id` of `aggregate_type` by sequence, skipping the first
    /// `skip` and returning at most `limit`.
    pub async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = sqlx::query_as::<_, RecordedEvent>(
            "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                    metadata, global_position \
               FROM events \
              WHERE aggregate_type = $1 AND aggregate_id = $2 \
              ORDER BY sequence OFFSET $3 LIMIT $4",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(i64::try_from(skip).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(events)
    }

    /// Aggregate `id` as it stood at `time`: its events in sequence order, up to the first one
    /// recorded later than `time` (or without a time), applied to a new aggregate. Bypasses the
    /// aggregate cache, which holds only current states.
    pub async fn load_as_of<A: Aggregate>(
        &self,
        id: &str,
        time: DateTime<Utc>,
    ) -> Result<AsOf<A>, StoreError> {
        let mut as_of = AsOf {
            aggregate: A::default(),
            version: 0,
            last_event_time: None,
        };
        // Cut like the API's other reads: an aggregate with a very long history answers an
        // error rather than holding a connection.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET LOCAL statement_timeout = '15s'")
            .execute(&mut *tx)
            .await?;
        let mut rows = sqlx::query_as::<_, (i64, String, String, Value, Value)>(
            "SELECT sequence, event_type, event_version, payload, metadata FROM events \
              WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(id)
        .fetch(&mut *tx);
        while let Some((sequence, event_type, event_version, payload, metadata)) =
            rows.try_next().await?
        {
            let recorded = metadata_time(&metadata);
            if recorded.is_none_or(|recorded| recorded > time) {
                break;
            }
            let event = self.upcast(SerializedEvent::new(
                id.to_string(),
                sequence as usize,
                A::TYPE.to_string(),
                event_type,
                event_version,
                payload,
                Value::Null,
            ));
            let event: A::Event = serde_json::from_value(event.payload).map_err(|source| {
                StoreError::Deserialize {
                    aggregate_type: A::TYPE.to_string(),
                    aggregate_id: id.to_string(),
                    sequence: sequence as usize,
                    source,
                }
            })?;
            as_of.aggregate.apply(event);
            as_of.version = sequence as u64;
            as_of.last_event_time = recorded;
        }
        Ok(as_of)
    }
}
