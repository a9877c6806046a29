//! Loading aggregates and appending events.
//!
//! Loading rebuilds aggregates from their rows in `events` (postgres-es's table, plain event
//! store: no snapshots, which apply events twice in postgres-es 0.5.0), starting from the state
//! kept in the store's in-process aggregate cache (`cache.rs`) when there is one, so that only the events
//! appended since are read. Appending does not go through postgres-es either: it writes one
//! aggregate type per transaction, and nmp must write a number and its account — and up to a
//! hundred numbers of a batch — atomically. `EventStore::commit` therefore inserts the same rows
//! postgres-es would, for any mix of aggregates, in one transaction. The primary key
//! `(aggregate_type, aggregate_id, sequence)` turns a concurrent append into `StoreError::Conflict`.
//! Every appended event's metadata carries its link in the tamper-evidence chain (`chain.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::PgPool;

use crate::cache::{AggregateCache, DEFAULT_CACHE_CAPACITY};
use crate::chain::{CHAIN_KEY, ChainLink, EventContent, event_hash};
use crate::metadata::EventMetadata;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to one of the aggregates first.
    #[error("a concurrent change to the same resource was committed first")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A row the store wrote holds what no writer could have written.
    #[error("corrupt row: {0}")]
    Corrupt(String),
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
    /// The chain hash of the event at `head.version`, as read with it.
    head: Option<ChainHead>,
}

/// The chain hash of the last event an aggregate was rebuilt from.
#[derive(Debug, Clone)]
struct ChainHead {
    version: u64,
    hash: String,
}

impl<A> Loaded<A> {
    /// The chain hash of the event at `version`, when it was read with the aggregate (`None`
    /// for a new aggregate, or once `version` was moved on).
    pub fn last_hash(&self) -> Option<&str> {
        self.head
            .as_ref()
            .filter(|head| head.version == self.version)
            .map(|head| head.hash.as_str())
    }
}

/// What the cache keeps of a rebuilt aggregate.
#[derive(Clone)]
struct Cached<A> {
    aggregate: A,
    head: Option<ChainHead>,
}

/// Where a queued event's `chain.previous` comes from.
#[derive(Debug)]
enum PreviousHash {
    /// Sequence 1: none.
    First,
    /// The aggregate's last event, as loaded.
    Known(String),
    /// The event queued just before it.
    Queued,
    /// The stored event before it, read in the commit's transaction.
    Stored,
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
    /// One per row.
    previous: Vec<PreviousHash>,
    tenant_links: Vec<TenantLink>,
    /// Accounts whose lock the commit shares, each with the version its stream must still be at.
    shared_accounts: Vec<(String, u64)>,
    memberships: Vec<MembershipChange>,
}

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `events` for aggregate `id`, numbered after `after_version` (the version it was
    /// loaded at). If another writer has appended since, the commit fails with `Conflict`. The
    /// chain hash of the event at `after_version` is read when committing; `append_after` saves
    /// that read.
    pub fn append<A: Aggregate>(
        &mut self,
        id: &str,
        after_version: u64,
        events: &[A::Event],
    ) -> Result<(), StoreError> {
        self.queue::<A>(id, after_version, None, events)
    }

    /// Queues `events` for aggregate `id` after the state it was loaded in, as `append` does,
    /// taking the chain hash of its last event from the load when it is known.
    pub fn append_after<A: Aggregate>(
        &mut self,
        id: &str,
        loaded: &Loaded<A>,
        events: &[A::Event],
    ) -> Result<(), StoreError> {
        self.queue::<A>(id, loaded.version, loaded.last_hash(), events)
    }

    fn queue<A: Aggregate>(
        &mut self,
        id: &str,
        after_version: u64,
        last_hash: Option<&str>,
        events: &[A::Event],
    ) -> Result<(), StoreError> {
        for (offset, event) in events.iter().enumerate() {
            let payload = serde_json::to_value(event).map_err(StoreError::Serialize)?;
            self.previous
                .push(match (offset, after_version, last_hash) {
                    (0, 0, _) => PreviousHash::First,
                    (0, _, Some(hash)) => PreviousHash::Known(hash.to_string()),
                    (0, _, None) => PreviousHash::Stored,
                    _ => PreviousHash::Queued,
                });
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

    /// Makes the commit take `account`'s lock in shared mode and fail with `Conflict` unless
    /// the account's stream is still at `version`: a write that decided on the account's state
    /// (its services, whether it is being deleted) commits only if that state still holds, and
    /// never while an exclusive holder (`EventStore::lock_account`) reads its memberships.
    /// Every change of a membership needs it (see `membership.rs`).
    pub fn share_account(&mut self, account: &str, version: u64) {
        match self.shared_accounts.iter().find(|(a, _)| a == account) {
            Some((_, known)) => debug_assert_eq!(*known, version, "one version per account"),
            None => self.shared_accounts.push((account.to_string(), version)),
        }
    }

    /// Records that `account` holds `telephone_number`, using `services` (wire names).
    pub fn set_member(&mut self, account: &str, telephone_number: &str, services: Vec<String>) {
        self.memberships.push(MembershipChange::Set(Member {
            telephone_number: telephone_number.to_string(),
            account: account.to_string(),
            services,
        }));
    }

    /// Records that `telephone_number` belongs to no account any more.
    pub fn remove_member(&mut self, telephone_number: &str) {
        self.memberships
            .push(MembershipChange::Remove(telephone_number.to_string()));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.tenant_links.is_empty() && self.memberships.is_empty()
    }

    pub fn event_count(&self) -> usize {
        self.rows.len()
    }
}

/// The event store. Cheap to clone; clones share the aggregate cache.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    upcasters: Arc<Vec<Arc<dyn EventUpcaster>>>,
    cache: Arc<AggregateCache>,
    /// Signalled after every commit of events, so a relay in the same process publishes them
    /// at once instead of at its next poll.
    appended: Arc<Notify>,
}

/// Where the rebuild of one aggregate stands: its state so far, and the version it was taken
/// from the cache at (`None` when it is rebuilt from its first event).
struct Rebuild<A> {
    loaded: Loaded<A>,
    cached_at: Option<u64>,
    /// The cached state does not precede the stored events; rebuild it from scratch.
    stale: bool,
}

impl<A: Default> Rebuild<A> {
    fn from_scratch() -> Self {
        Rebuild {
            loaded: Loaded {
                aggregate: A::default(),
                version: 0,
                head: None,
            },
            cached_at: None,
            stale: false,
        }
    }
}

/// One stored event of a batch being rebuilt: aggregate id, sequence, type, version, payload,
/// chain hash.
type EventRow = (String, i64, String, String, Value, Option<String>);

impl EventStore {
    /// An event store keeping up to [`DEFAULT_CACHE_CAPACITY`] rebuilt aggregates in memory.
    pub fn new(pool: PgPool) -> Self {
        Self::with_cache_capacity(pool, DEFAULT_CACHE_CAPACITY)
    }

    /// An event store keeping up to `capacity` rebuilt aggregates in memory; 0 keeps none, and
    /// every load replays all events.
    pub fn with_cache_capacity(pool: PgPool, capacity: usize) -> Self {
        EventStore {
            pool,
            // No stored event has been reshaped yet; a new event shape adds its upcaster here.
            upcasters: Arc::new(Vec::new()),
            cache: Arc::new(AggregateCache::new(capacity)),
            appended: Arc::new(Notify::new()),
        }
    }

    /// Signalled (one stored permit, `notify_one`) after each commit of events through this
    /// store or its clones; a relay in the same process waits on it between polls.
    pub fn appended_signal(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// Adds an upcaster for an older event shape. The store starts with an empty cache, so no
    /// state rebuilt without the upcaster is reused.
    pub fn with_upcaster(mut self, upcaster: impl EventUpcaster + 'static) -> Self {
        let mut upcasters = self.upcasters.as_ref().clone();
        upcasters.push(Arc::new(upcaster));
        self.upcasters = Arc::new(upcasters);
        self.cache = Arc::new(AggregateCache::new(self.cache.capacity()));
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many aggregates the cache may hold (0: no cache).
    pub fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// How many aggregates the cache holds now.
    pub fn cached_aggregates(&self) -> usize {
        self.cache.len()
    }

    /// Rebuilds aggregate `id` from its events, upcasting older shapes on the way; a new
    /// aggregate at version 0 when it has none. Starts from the cached state, if any, and reads
    /// only the events after it.
    pub async fn load<A>(&self, id: &str) -> Result<Loaded<A>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        let mut loaded = self.rebuild::<A>(&[id]).await?;
        Ok(loaded.pop().expect("one aggregate per id"))
    }

    /// Rebuilds several aggregates of one type with a single query, each from its cached state if
    /// any; ids without events come back as new aggregates at version 0. The result is in the
    /// order of `ids`, a repeated id repeated.
    pub async fn load_many<A>(&self, ids: &[String]) -> Result<Vec<Loaded<A>>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.rebuild::<A>(&ids).await
    }

    /// Rebuilds aggregates `ids`, each from its cached state if there is one, reading only the
    /// events after it — all in one query. The result is in the order of `ids`.
    async fn rebuild<A>(&self, ids: &[&str]) -> Result<Vec<Loaded<A>>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        let mut connection = self.pool.acquire().await?;
        self.rebuild_on(&mut connection, ids).await
    }

    /// `rebuild`, reading on `connection`.
    async fn rebuild_on<A>(
        &self,
        connection: &mut sqlx::PgConnection,
        ids: &[&str],
    ) -> Result<Vec<Loaded<A>>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        let mut distinct: Vec<&str> = Vec::with_capacity(ids.len());
        let mut position: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
        let mut uses: Vec<usize> = Vec::with_capacity(ids.len());
        for &id in ids {
            let index = *position.entry(id).or_insert_with(|| {
                distinct.push(id);
                uses.push(0);
                distinct.len() - 1
            });
            uses[index] += 1;
        }
        let mut rebuilds: Vec<Rebuild<A>> = distinct
            .iter()
            .map(|id| match self.cache.get::<Cached<A>>(A::TYPE, id) {
                Some((Cached { aggregate, head }, version)) => Rebuild {
                    loaded: Loaded {
                        aggregate,
                        version,
                        head,
                    },
                    cached_at: Some(version),
                    stale: false,
                },
                None => Rebuild::from_scratch(),
            })
            .collect();
        // -1, not 0: the schema allows a sequence of 0, and a rebuild from scratch reads all.
        let after: Vec<i64> = rebuilds
            .iter()
            .map(|r| r.cached_at.map_or(-1, |version| version as i64))
            .collect();
        let rows = self
            .events_after::<A>(&mut *connection, &distinct, &after)
            .await?;
        self.apply_rows(&mut rebuilds, &position, rows)?;

        // Cannot happen while events are only ever appended. If stored events were replaced
        // under a running process (a restored database), a cached state that the stored events
        // do not continue is dropped here and the aggregate rebuilt; one they happen to continue
        // is not detected, so processes must be restarted after such a restore.
        let stale: Vec<usize> = (0..rebuilds.len()).filter(|&i| rebuilds[i].stale).collect();
        if !stale.is_empty() {
            let stale_ids: Vec<&str> = stale.iter().map(|&i| distinct[i]).collect();
            tracing::warn!(
                aggregate_type = A::TYPE,
                ids = ?stale_ids,
                "cached aggregates do not precede their stored events; rebuilding them"
            );
            for (&index, id) in stale.iter().zip(&stale_ids) {
                self.cache.remove(A::TYPE, id);
                rebuilds[index] = Rebuild::from_scratch();
            }
            let rows = self
                .events_after::<A>(&mut *connection, &stale_ids, &vec![-1; stale_ids.len()])
                .await?;
            self.apply_rows(&mut rebuilds, &position, rows)?;
        }

        for (id, rebuild) in distinct.iter().zip(&rebuilds) {
            // Only what was read from the store, and only when it moved on.
            if rebuild.loaded.version > rebuild.cached_at.unwrap_or(0) {
                let cached = Cached {
                    aggregate: rebuild.loaded.aggregate.clone(),
                    head: rebuild.loaded.head.clone(),
                };
                self.cache.put(A::TYPE, id, cached, rebuild.loaded.version);
            }
        }

        let mut rebuilt: Vec<Option<Loaded<A>>> =
            rebuilds.into_iter().map(|r| Some(r.loaded)).collect();
        Ok(ids
            .iter()
            .map(|id| {
                let index = position[id];
                uses[index] -= 1;
                let slot = &mut rebuilt[index];
                // A repeated id gets a copy; its last occurrence takes the original.
                if uses[index] == 0 {
                    slot.take().expect("taken once")
                } else {
                    slot.clone().expect("not taken yet")
                }
            })
            .collect())
    }

    /// The events of aggregates `ids` with a sequence above the matching entry of `after`, by
    /// aggregate and sequence.
    async fn events_after<A: Aggregate>(
        &self,
        connection: &mut sqlx::PgConnection,
        ids: &[&str],
        after: &[i64],
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, \
                    e.metadata->'chain'->>'hash' \
               FROM UNNEST($2::text[], $3::bigint[]) AS wanted(aggregate_id, after_sequence) \
               JOIN events e ON e.aggregate_type = $1 \
                            AND e.aggregate_id = wanted.aggregate_id \
                            AND e.sequence > wanted.after_sequence \
              ORDER BY e.aggregate_id, e.sequence",
        )
        .bind(A::TYPE)
        .bind(ids)
        .bind(after)
        .fetch_all(&mut *connection)
        .await?;
        Ok(rows)
    }

    /// Applies `rows` to the aggregates being rebuilt. An aggregate taken from the cache must
    /// continue exactly where it left off; if not, it is marked stale and left alone.
    fn apply_rows<A: Aggregate>(
        &self,
        rebuilds: &mut [Rebuild<A>],
        position: &HashMap<&str, usize>,
        rows: Vec<EventRow>,
    ) -> Result<(), StoreError> {
        for (aggregate_id, sequence, event_type, event_version, payload, hash) in rows {
            let Some(rebuild) = position
                .get(aggregate_id.as_str())
                .map(|&index| &mut rebuilds[index])
            else {
                continue;
            };
            if rebuild.stale {
                continue;
            }
            if rebuild.cached_at.is_some() && sequence != rebuild.loaded.version as i64 + 1 {
                rebuild.stale = true;
                continue;
            }
            let event = self.upcast(SerializedEvent::new(
                aggregate_id,
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
                    aggregate_id: event.aggregate_id.clone(),
                    sequence: sequence as usize,
                    source,
                }
            })?;
            rebuild.loaded.aggregate.apply(payload);
            rebuild.loaded.version = sequence as u64;
            rebuild.loaded.head = hash.map(|hash| ChainHead {
                version: sequence as u64,
                hash,
            });
        }
        Ok(())
    }

    pub(crate) fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        for upcaster in self.upcasters.iter() {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        event
    }

    /// Appends all queued events with `metadata`, in one transaction; each event's metadata
    /// gets its link in the chain (`chain.previous`, `chain.hash`).
    pub async fn commit(
        &self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        write(&mut tx, changes, metadata).await?;
        tx.commit().await.map_err(conflict_or)?;
        self.appended.notify_one();
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

    /// Begins a transaction holding the locks of `accounts` exclusively (taken in name order):
    /// until it ends no membership of these accounts changes, so what [`AccountLock::members`]
    /// reads stays true up to its commit.
    pub async fn lock_accounts(&self, accounts: &[&str]) -> Result<AccountLock, StoreError> {
        let mut accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
        accounts.sort();
        accounts.dedup();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(nmp_account_lock_key(a)) \
               FROM (SELECT unnest($1::text[]) AS a ORDER BY 1) AS wanted",
        )
        .bind(&accounts)
        .execute(&mut *tx)
        .await?;
        Ok(AccountLock {
            tx,
            accounts,
            store: self.clone(),
        })
    }

    /// How many numbers `account` holds, by the set of services they use (wire names), as
    /// committed now.
    pub async fn member_counts(
        &self,
        account: &str,
    ) -> Result<Vec<(Vec<String>, u64)>, StoreError> {
        member_counts(&self.pool, account).await
    }
}

/// A transaction holding an account's lock exclusively (`EventStore::lock_account`); dropped
/// without `commit`, it rolls back and lets go of the lock.
pub struct AccountLock {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    accounts: Vec<String>,
    store: EventStore,
}

impl AccountLock {
    fn check_held(&self, account: &str) {
        debug_assert!(
            self.accounts.iter().any(|a| a == account),
            "the lock of {account} is not held"
        );
    }

    /// The numbers `account` (one of those locked) holds, by telephone number.
    pub async fn members(&mut self, account: &str) -> Result<Vec<Member>, StoreError> {
        self.check_held(account);
        let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
            "SELECT telephone_number, services FROM account_numbers \
              WHERE account_name = $1 ORDER BY telephone_number",
        )
        .bind(account)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(telephone_number, services)| Member {
                telephone_number,
                account: account.to_string(),
                services,
            })
            .collect())
    }

    /// `EventStore::load_many` on the lock's own connection: a lock holder takes no second
    /// connection, which writers waiting for the lock might hold all of.
    pub async fn load_many<A>(&mut self, ids: &[String]) -> Result<Vec<Loaded<A>>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let store = self.store.clone();
        store.rebuild_on(&mut self.tx, &ids).await
    }

    /// How many numbers `account` (one of those locked) holds, by the set of services they use.
    pub async fn member_counts(
        &mut self,
        account: &str,
    ) -> Result<Vec<(Vec<String>, u64)>, StoreError> {
        self.check_held(account);
        member_counts(&mut *self.tx, account).await
    }

    /// Appends `changes` and ends the transaction.
    pub async fn commit(
        mut self,
        changes: Changes,
        metadata: &EventMetadata,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        write(&mut self.tx, changes, metadata).await?;
        self.tx.commit().await.map_err(conflict_or)?;
        self.store.appended.notify_one();
        Ok(())
    }
}

async fn member_counts<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: &str,
) -> Result<Vec<(Vec<String>, u64)>, StoreError> {
    let rows: Vec<(Vec<String>, i64)> = sqlx::query_as(
        "SELECT services, count(*) FROM account_numbers WHERE account_name = $1 GROUP BY services",
    )
    .bind(account)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(services, count)| (services, count.max(0) as u64))
        .collect())
}

/// A number held by an account, with the services it uses there (wire names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub telephone_number: String,
    pub account: String,
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MembershipChange {
    Set(Member),
    Remove(String),
}

/// Writes `changes` in `tx`: first the shared account locks and their version checks, then the
/// events with their chain links, the memberships and the tenant links.
async fn write(
    tx: &mut sqlx::PgConnection,
    changes: Changes,
    metadata: &EventMetadata,
) -> Result<(), StoreError> {
    let metadata = serde_json::to_value(metadata).map_err(StoreError::Serialize)?;
    if !changes.shared_accounts.is_empty() {
        let (accounts, versions): (Vec<&str>, Vec<i64>) = changes
            .shared_accounts
            .iter()
            .map(|(account, version)| (account.as_str(), *version as i64))
            .unzip();
        sqlx::query("SELECT nmp_share_accounts($1, $2)")
            .bind(&accounts)
            .bind(&versions)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or)?;
    }
    let stored = stored_hashes(&mut *tx, &changes).await?;
    let mut stored = stored.into_iter();
    let mut chained = Vec::with_capacity(changes.rows.len());
    let mut previous_hash: Option<String> = None;
    for (row, previous) in changes.rows.iter().zip(&changes.previous) {
        let previous = match previous {
            PreviousHash::First => None,
            PreviousHash::Known(hash) => Some(hash.clone()),
            PreviousHash::Queued => previous_hash.take(),
            PreviousHash::Stored => stored.next().flatten(),
        };
        let hash = event_hash(
            previous.as_deref(),
            &EventContent {
                aggregate_type: &row.aggregate_type,
                aggregate_id: &row.aggregate_id,
                sequence: row.sequence as i64,
                event_type: &row.event_type,
                event_version: &row.event_version,
                payload: &row.payload,
                metadata: &metadata,
            },
        );
        let mut row_metadata = metadata.clone();
        if let Value::Object(fields) = &mut row_metadata {
            let link = ChainLink {
                previous,
                hash: hash.clone(),
            };
            fields.insert(CHAIN_KEY.to_string(), link.to_value());
        }
        chained.push(row_metadata);
        previous_hash = Some(hash);
    }
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
    // One statement for the whole batch.
    let inserted = sqlx::query(
            "INSERT INTO events \
               (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT t, i, s, e, v, p, m \
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], \
                           $7::jsonb[]) \
                 AS rows(t, i, s, e, v, p, m)",
        )
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .bind(&event_types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&chained)
        .execute(&mut *tx)
        .await;
    if let Err(error) = inserted {
        return Err(conflict_or(error));
    }
    write_memberships(&mut *tx, changes.memberships).await?;
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
    Ok(())
}

/// Applies membership changes in order (a number set then removed in one commit ends removed):
/// the last change of each number wins, written with one upsert and one delete.
async fn write_memberships(
    tx: &mut sqlx::PgConnection,
    changes: Vec<MembershipChange>,
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<String, MembershipChange> = HashMap::with_capacity(changes.len());
    for change in changes {
        let number = match &change {
            MembershipChange::Set(member) => member.telephone_number.clone(),
            MembershipChange::Remove(number) => number.clone(),
        };
        last.insert(number, change);
    }
    let mut last: Vec<(String, MembershipChange)> = last.into_iter().collect();
    // One order for every writer.
    last.sort_by(|a, b| a.0.cmp(&b.0));
    let mut set_numbers = Vec::new();
    let mut set_accounts = Vec::new();
    let mut set_services = Vec::new();
    let mut removed = Vec::new();
    for (number, change) in last {
        match change {
            MembershipChange::Set(member) => {
                set_numbers.push(number);
                set_accounts.push(member.account);
                // Postgres arrays of arrays must be rectangular: services travel as a literal.
                set_services.push(format!(
                    "{{{}}}",
                    member
                        .services
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            MembershipChange::Remove(_) => removed.push(number),
        }
    }
    if !set_numbers.is_empty() {
        sqlx::query(
            "INSERT INTO account_numbers (telephone_number, account_name, services) \
             SELECT n, a, s::text[] FROM UNNEST($1::text[], $2::text[], $3::text[]) AS m(n, a, s) \
             ON CONFLICT (telephone_number) DO UPDATE \
                SET account_name = EXCLUDED.account_name, services = EXCLUDED.services",
        )
        .bind(&set_numbers)
        .bind(&set_accounts)
        .bind(&set_services)
        .execute(&mut *tx)
        .await?;
    }
    if !removed.is_empty() {
        sqlx::query("DELETE FROM account_numbers WHERE telephone_number = ANY($1)")
            .bind(&removed)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The chain hashes of the stored events that queued rows marked `PreviousHash::Stored` follow,
/// in the order of those rows, read with one query in the commit's transaction. `None` for an
/// event without a chain, or one that is not there (`chain::verify` reports either).
async fn stored_hashes(
    tx: &mut sqlx::PgConnection,
    changes: &Changes,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut types = Vec::new();
    let mut ids = Vec::new();
    let mut sequences = Vec::new();
    for (row, previous) in changes.rows.iter().zip(&changes.previous) {
        if matches!(previous, PreviousHash::Stored) {
            types.push(row.aggregate_type.as_str());
            ids.push(row.aggregate_id.as_str());
            sequences.push(row.sequence as i64 - 1);
        }
    }
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT wanted.n, e.metadata->'chain'->>'hash' \
           FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY \
                  AS wanted(aggregate_type, aggregate_id, sequence, n) \
           LEFT JOIN events e ON e.aggregate_type = wanted.aggregate_type \
                             AND e.aggregate_id = wanted.aggregate_id \
                             AND e.sequence = wanted.sequence \
          ORDER BY wanted.n",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .fetch_all(&mut *tx)
    .await?;
    Ok(hashes.into_iter().map(|(_, hash)| hash).collect())
}

fn conflict_or(error: sqlx::Error) -> StoreError {
    // 23505: another writer appended the same sequence first; 40001: an account's stream
    // moved on since the write decided (`nmp_share_accounts`).
    let lost_race = error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505" || code == "40001");
    if lost_race {
        StoreError::Conflict
    } else {
        StoreError::Database(error)
    }
}
