//! Loading aggregates and appending events.
//!
//! Loading goes through postgres-es's `PostgresEventRepository` (plain event-store mode: no
//! snapshots, which apply events twice in 0.5.0). Appending does not: postgres-es writes one
//! aggregate type per transaction, and nmp must write a number and its account — and up to a
//! hundred numbers of a batch — atomically. `EventStore::commit` therefore inserts the same rows
//! postgres-es would, for any mix of aggregates, in one transaction. The primary key
//! `(aggregate_type, aggregate_id, sequence)` turns a concurrent append into `StoreError::Conflict`.

use cqrs_es::persist::{EventUpcaster, PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

use crate::metadata::EventMetadata;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to one of the aggregates first.
    #[error("a concurrent change to the same resource was committed first")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store error: {0}")]
    Persistence(#[from] cqrs_es::persist::PersistenceError),
    #[error("cannot serialise an event: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("stored event {aggregate_type}/{aggregate_id}#{sequence} cannot be read: {source}")]
    Deserialize {
        aggregate_type: String,
        aggregate_id: String,
        sequence: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// An aggregate rebuilt from its events, with the sequence of the last one (0 when none).
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: u64,
}

/// The link between an account and a Teams tenant, maintained with the account's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantLink {
    Set { account: String, tenant: String },
    Clear { account: String },
}

/// Everything one command writes: events of any aggregates, committed together or not at all.
#[derive(Debug, Default)]
pub struct Changes {
    rows: Vec<SerializedEvent>,
    tenant_links: Vec<TenantLink>,
}

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `events` for aggregate `id`, numbered after `after_version` (the version it was
    /// loaded at). If another writer has appended since, the commit fails with `Conflict`.
    pub fn append<A: Aggregate>(
        &mut self,
        id: &str,
        after_version: u64,
        events: &[A::Event],
    ) -> Result<(), StoreError> {
        for (offset, event) in events.iter().enumerate() {
            let payload = serde_json::to_value(event).map_err(StoreError::Serialize)?;
            self.rows.push(SerializedEvent::new(
                id.to_string(),
                (after_version as usize) + offset + 1,
                A::TYPE.to_string(),
                event.event_type(),
                event.event_version(),
                payload,
                Value::Null,
            ));
        }
        Ok(())
    }

    pub fn link_tenant(&mut self, link: TenantLink) {
        self.tenant_links.push(link);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.tenant_links.is_empty()
    }

    pub fn event_count(&self) -> usize {
        self.rows.len()
    }
}

/// The event store. Cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    repository: std::sync::Arc<PostgresEventRepository>,
    upcasters: std::sync::Arc<Vec<Box<dyn EventUpcaster>>>,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        EventStore {
            repository: std::sync::Arc::new(PostgresEventRepository::new(pool.clone())),
            pool,
            // No stored event has been reshaped yet; a new event shape adds its upcaster here.
            upcasters: std::sync::Arc::new(Vec::new()),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rebuilds aggregate `id` from all its events, upcasting older shapes on the way.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let serialized = self.repository.get_events::<A>(id).await?;
        let mut aggregate = A::default();
        let mut version = 0;
        for event in serialized {
            let event = self.upcast(event);
            let sequence = event.sequence;
            let payload: A::Event = serde_json::from_value(event.payload).map_err(|source| {
                StoreError::Deserialize {
                    aggregate_type: A::TYPE.to_string(),
                    aggregate_id: id.to_string(),
                    sequence,
                    source,
                }
            })?;
            aggregate.apply(payload);
            version = sequence as u64;
        }
        Ok(Loaded { aggregate, version })
    }

    /// Rebuilds several aggregates of one type with a single query; ids without events come back
    /// as new aggregates at version 0. The result is in the order of `ids`.
    pub async fn load_many<A: Aggregate>(
        &self,
        ids: &[String],
    ) -> Result<Vec<Loaded<A>>, StoreError> {
        let rows: Vec<(String, i64, String, String, Value)> = sqlx::query_as(
            "SELECT aggregate_id, sequence, event_type, event_version, payload FROM events \
              WHERE aggregate_type = $1 AND aggregate_id = ANY($2) \
              ORDER BY aggregate_id, sequence",
        )
        .bind(A::TYPE)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: std::collections::HashMap<String, Loaded<A>> =
            std::collections::HashMap::new();
        for (aggregate_id, sequence, event_type, event_version, payload) in rows {
            let event = self.upcast(SerializedEvent::new(
                aggregate_id.clone(),
                sequence as usize,
                A::TYPE.to_string(),
                event_type,
                event_version,
                payload,
                Value::Null,
            ));
            let payload: A::Event = serde_json::from_value(event.payload).map_err(|source| {
                StoreError::Deserialize {
                    aggregate_type: A::TYPE.to_string(),
                    aggregate_id: aggregate_id.clone(),
                    sequence: sequence as usize,
                    source,
                }
            })?;
            let loaded = by_id.entry(aggregate_id).or_insert_with(|| Loaded {
                aggregate: A::default(),
                version: 0,
            });
            loaded.aggregate.apply(payload);
            loaded.version = sequence as u64;
        }
        Ok(ids
            .iter()
            .map(|id| {
                by_id.remove(id).unwrap_or_else(|| Loaded {
                    aggregate: A::default(),
                    version: 0,
                })
            })
            .collect())
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        for upcaster in self.upcasters.iter() {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        event
    }

    /// Appends all queued events with `metadata`, in one transaction.
    pub async fn commit(
        &self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let metadata = serde_json::to_value(metadata).map_err(StoreError::Serialize)?;
        let mut types = Vec::with_capacity(changes.rows.len());
        let mut ids = Vec::with_capacity(changes.rows.len());
        let mut sequences = Vec::with_capacity(changes.rows.len());
        let mut event_types = Vec::with_capacity(changes.rows.len());
        let mut versions = Vec::with_capacity(changes.rows.len());
        let mut payloads = Vec::with_capacity(changes.rows.len());
        for row in changes.rows {
            types.push(row.aggregate_type);
            ids.push(row.aggregate_id);
            sequences.push(row.sequence as i64);
            event_types.push(row.event_type);
            versions.push(row.event_version);
            payloads.push(row.payload);
        }
        let mut tx = self.pool.begin().await?;
        // One statement for the whole batch; the metadata is shared by every row.
        let inserted = sqlx::query(
            "INSERT INTO events \
               (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT t, i, s, e, v, p, $7 \
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[]) \
                 AS rows(t, i, s, e, v, p)",
        )
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .bind(&event_types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            return Err(conflict_or(error));
        }
        for link in changes.tenant_links {
            match link {
                TenantLink::Set { account, tenant } => {
                    sqlx::query(
                        "INSERT INTO account_tenants (account_name, tenant_id) VALUES ($1, $2) \
                         ON CONFLICT (account_name) DO UPDATE SET tenant_id = EXCLUDED.tenant_id",
                    )
                    .bind(account)
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await?;
                }
                TenantLink::Clear { account } => {
                    sqlx::query("DELETE FROM account_tenants WHERE account_name = $1")
                        .bind(account)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await.map_err(conflict_or)?;
        Ok(())
    }

    /// The accounts linked to a Teams tenant, by name.
    pub async fn accounts_of_tenant(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let names = sqlx::query_scalar(
            "SELECT account_name FROM account_tenants WHERE tenant_id = $1 ORDER BY account_name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }
}

fn conflict_or(error: sqlx::Error) -> StoreError {
    let unique_violation = error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505");
    if unique_violation {
        StoreError::Conflict
    } else {
        StoreError::Database(error)
    }
}
