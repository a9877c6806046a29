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
use crate::combiner::{self, Job};
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
    /// The write may or may not have been committed: its outcome was lost (the process is
    /// stopping). The caller may retry; the command side's retries are safe.
    #[error("the outcome of the write is unknown: {0}")]
    OutcomeUnknown(&'static str),
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

/// A new aggregate: no events, version 0.
impl<A: Default> Default for Loaded<A> {
    fn default() -> Self {
        Loaded {
            aggregate: A::default(),
            version: 0,
            head: None,
        }
    }
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

    /// Whether a chain hash must be read from the store before the events can be written.
    fn needs_stored_hashes(&self) -> bool {
        self.previous
            .iter()
            .any(|previous| matches!(previous, PreviousHash::Stored))
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
    /// The group commit's queue (`combiner.rs`), started with the first commit.
    combiner: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Job>>>,
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

/// One stored event of a batch being rebuilt: aggregate type, aggregate id, sequence, event
/// type, event version, payload, chain hash.
type EventRow = (String, String, i64, String, String, Value, Option<String>);

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
            combiner: Arc::new(std::sync::OnceLock::new()),
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

    /// Aggregate `id` as this process last read it from the store, without reading: a new
    /// aggregate for one it never saw. Only for writes whose commit checks it is still true
    /// (the next sequence free, an account's version shared).
    pub fn cached<A>(&self, id: &str) -> Option<Loaded<A>>
    where
        A: Aggregate + Clone + 'static,
    {
        let (Cached { aggregate, head }, version) = self.cache.get::<Cached<A>>(A::TYPE, id)?;
        Some(Loaded {
            aggregate,
            version,
            head,
        })
    }

    /// Rebuilds aggregate `first` of type `A` and aggregates `others` of type `B` with one
    /// query, each from its cached state if any (what a command on a number needs: its account
    /// and itself). `others` come back in their order, a repeated id repeated.
    pub async fn load_with<A, B>(
        &self,
        first: &str,
        others: &[String],
    ) -> Result<(Loaded<A>, Vec<Loaded<B>>), StoreError>
    where
        A: Aggregate + Clone + 'static,
        B: Aggregate + Clone + 'static,
    {
        let first_ids = [first];
        let other_ids: Vec<&str> = others.iter().map(String::as_str).collect();
        let mut a = Pending::<A>::start(&self.cache, &first_ids);
        let mut b = Pending::<B>::start(&self.cache, &other_ids);
        let mut types = Vec::new();
        let mut ids = Vec::new();
        let mut after = Vec::new();
        a.wanted(&mut types, &mut ids, &mut after);
        b.wanted(&mut types, &mut ids, &mut after);
        let mut connection = self.pool.acquire().await?;
        let rows = events_after(&mut connection, &types, &ids, &after).await?;
        let (rows_a, rows_b): (Vec<EventRow>, Vec<EventRow>) =
            rows.into_iter().partition(|row| row.0 == A::TYPE);
        a.apply(self, rows_a)?;
        b.apply(self, rows_b)?;
        let mut loaded_a = a.finish(self, &mut connection).await?;
        let loaded_b = b.finish(self, &mut connection).await?;
        Ok((loaded_a.pop().expect("one aggregate"), loaded_b))
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
        let mut pending = Pending::<A>::start(&self.cache, ids);
        let (mut types, mut wanted, mut after) = (Vec::new(), Vec::new(), Vec::new());
        pending.wanted(&mut types, &mut wanted, &mut after);
        let rows = events_after(&mut *connection, &types, &wanted, &after).await?;
        pending.apply(self, rows)?;
        pending.finish(self, connection).await
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
        if changes.needs_stored_hashes() {
            let mut tx = self.pool.begin().await?;
            write(&mut tx, changes, metadata).await?;
            tx.commit().await.map_err(conflict_or)?;
            self.appended.notify_one();
            return Ok(());
        }
        // Written with whatever other commands are committed at the same moment.
        let prepared = Prepared::new(changes, metadata, Vec::new())?;
        let queue = self
            .combiner
            .get_or_init(|| combiner::start(self.pool.clone(), self.appended.clone()));
        let (reply, outcome) = tokio::sync::oneshot::channel();
        match queue.send(Job { prepared, reply }) {
            Ok(()) => outcome.await.unwrap_or(Err(StoreError::OutcomeUnknown(
                "the group commit stopped before answering",
            ))),
            // Its runtime is gone (a store used from another runtime): write it here.
            Err(error) => {
                let mut connection = self.pool.acquire().await?;
                error.0.prepared.append(&mut connection).await?;
                self.appended.notify_one();
                Ok(())
            }
        }
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

/// Writes `changes` on `connection` with one statement (`nmp_append`); outside a transaction
/// the statement commits on its own. A chain hash the changes need from the store is read
/// first (then the caller must have opened a transaction).
async fn write(
    connection: &mut sqlx::PgConnection,
    changes: Changes,
    metadata: &EventMetadata,
) -> Result<(), StoreError> {
    let stored = stored_hashes(&mut *connection, &changes).await?;
    let prepared = Prepared::new(changes, metadata, stored)?;
    prepared.append(connection).await
}

/// One command's changes as `nmp_append` takes them: every event with its chain link in its
/// metadata, the shared account locks, the memberships and the tenant links.
pub(crate) struct Prepared {
    pub(crate) shared_accounts: Vec<String>,
    pub(crate) shared_versions: Vec<i64>,
    pub(crate) types: Vec<String>,
    pub(crate) ids: Vec<String>,
    pub(crate) sequences: Vec<i64>,
    pub(crate) event_types: Vec<String>,
    pub(crate) versions: Vec<String>,
    pub(crate) payloads: Vec<Value>,
    pub(crate) metadata: Vec<Value>,
    pub(crate) members: Memberships,
    pub(crate) tenant_accounts: Vec<String>,
    pub(crate) tenant_ids: Vec<Option<String>>,
}

impl Prepared {
    /// Chains the events (each `Stored` previous hash taken in turn from `stored`) and lays the
    /// changes out in arrays.
    pub(crate) fn new(
        changes: Changes,
        metadata: &EventMetadata,
        stored: Vec<Option<String>>,
    ) -> Result<Prepared, StoreError> {
        let metadata = serde_json::to_value(metadata).map_err(StoreError::Serialize)?;
        let mut stored = stored.into_iter();
        let rows = changes.rows.len();
        let mut chained = Vec::with_capacity(rows);
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
        let mut prepared = Prepared {
            shared_accounts: Vec::new(),
            shared_versions: Vec::new(),
            types: Vec::with_capacity(rows),
            ids: Vec::with_capacity(rows),
            sequences: Vec::with_capacity(rows),
            event_types: Vec::with_capacity(rows),
            versions: Vec::with_capacity(rows),
            payloads: Vec::with_capacity(rows),
            metadata: chained,
            members: Memberships::from(changes.memberships),
            tenant_accounts: Vec::new(),
            tenant_ids: Vec::new(),
        };
        for row in changes.rows {
            prepared.types.push(row.aggregate_type);
            prepared.ids.push(row.aggregate_id);
            prepared.sequences.push(row.sequence as i64);
            prepared.event_types.push(row.event_type);
            prepared.versions.push(row.event_version);
            prepared.payloads.push(row.payload);
        }
        for (account, version) in changes.shared_accounts {
            prepared.shared_accounts.push(account);
            prepared.shared_versions.push(version as i64);
        }
        for link in changes.tenant_links {
            match link {
                TenantLink::Set { account, tenant } => {
                    prepared.tenant_accounts.push(account);
                    prepared.tenant_ids.push(Some(tenant));
                }
                TenantLink::Clear { account } => {
                    prepared.tenant_accounts.push(account);
                    prepared.tenant_ids.push(None);
                }
            }
        }
        Ok(prepared)
    }

    /// The first aggregate written (type and id), which orders commands in a batch.
    pub(crate) fn first_key(&self) -> (&str, &str) {
        match (self.types.first(), self.ids.first()) {
            (Some(t), Some(i)) => (t.as_str(), i.as_str()),
            _ => ("", self.members.first_number()),
        }
    }

    /// Writes these changes with one `nmp_append` statement.
    pub(crate) async fn append(
        &self,
        connection: &mut sqlx::PgConnection,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "SELECT nmp_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&self.shared_accounts)
        .bind(&self.shared_versions)
        .bind(&self.types)
        .bind(&self.ids)
        .bind(&self.sequences)
        .bind(&self.event_types)
        .bind(&self.versions)
        .bind(&self.payloads)
        .bind(&self.metadata)
        .bind(&self.members.numbers)
        .bind(&self.members.accounts)
        .bind(&self.members.services)
        .bind(&self.members.removed)
        .bind(&self.tenant_accounts)
        .bind(&self.tenant_ids)
        .execute(&mut *connection)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }
}

/// Membership changes as `nmp_append` takes them: the last change of each number wins, in
/// number order.
#[derive(Default)]
pub(crate) struct Memberships {
    pub(crate) numbers: Vec<String>,
    pub(crate) accounts: Vec<String>,
    /// `text[]` literals (arrays of arrays must be rectangular).
    pub(crate) services: Vec<String>,
    pub(crate) removed: Vec<String>,
}

impl Memberships {
    fn first_number(&self) -> &str {
        self.numbers
            .first()
            .or(self.removed.first())
            .map_or("", String::as_str)
    }
}

impl From<Vec<MembershipChange>> for Memberships {
    fn from(changes: Vec<MembershipChange>) -> Self {
        let mut last: std::collections::BTreeMap<String, MembershipChange> =
            std::collections::BTreeMap::new();
        for change in changes {
            let number = match &change {
                MembershipChange::Set(member) => member.telephone_number.clone(),
                MembershipChange::Remove(number) => number.clone(),
            };
            last.insert(number, change);
        }
        let mut memberships = Memberships::default();
        for (number, change) in last {
            match change {
                MembershipChange::Set(member) => {
                    memberships.numbers.push(number);
                    memberships.accounts.push(member.account);
                    memberships.services.push(format!(
                        "{{{}}}",
                        member
                            .services
                            .iter()
                            .map(|s| format!("\"{s}\""))
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
                MembershipChange::Remove(_) => memberships.removed.push(number),
            }
        }
        memberships
    }
}

/// Aggregates of one type being rebuilt: each from its cached state if any, by the events
/// after it.
struct Pending<'a, A> {
    /// The ids asked for, each once.
    distinct: Vec<&'a str>,
    position: HashMap<&'a str, usize>,
    /// How often each distinct id was asked for.
    uses: Vec<usize>,
    rebuilds: Vec<Rebuild<A>>,
    /// The ids asked for, in order.
    ids: Vec<&'a str>,
}

impl<'a, A> Pending<'a, A>
where
    A: Aggregate + Clone + 'static,
{
    fn start(cache: &AggregateCache, ids: &[&'a str]) -> Self {
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
        let rebuilds = distinct
            .iter()
            .map(|id| match cache.get::<Cached<A>>(A::TYPE, id) {
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
        Pending {
            distinct,
            position,
            uses,
            rebuilds,
            ids: ids.to_vec(),
        }
    }

    /// Adds what to read: each aggregate's type, id, and the sequence its events start after.
    fn wanted(&self, types: &mut Vec<&'static str>, ids: &mut Vec<&'a str>, after: &mut Vec<i64>) {
        for (id, rebuild) in self.distinct.iter().zip(&self.rebuilds) {
            types.push(A::TYPE);
            ids.push(id);
            // -1, not 0: the schema allows a sequence of 0, and a rebuild from scratch reads all.
            after.push(rebuild.cached_at.map_or(-1, |version| version as i64));
        }
    }

    /// Applies `rows` (of type `A`, by id and sequence) to the aggregates being rebuilt. An
    /// aggregate taken from the cache must continue exactly where it left off; if not, it is
    /// marked stale and left alone.
    fn apply(&mut self, store: &EventStore, rows: Vec<EventRow>) -> Result<(), StoreError> {
        for (_, aggregate_id, sequence, event_type, event_version, payload, hash) in rows {
            let Some(rebuild) = self
                .position
                .get(aggregate_id.as_str())
                .map(|&index| &mut self.rebuilds[index])
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
            let event = store.upcast(SerializedEvent::new(
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

    /// Rebuilds again from scratch what the cache had wrong, keeps the results in the cache,
    /// and answers them in the order asked.
    async fn finish(
        mut self,
        store: &EventStore,
        connection: &mut sqlx::PgConnection,
    ) -> Result<Vec<Loaded<A>>, StoreError> {
        // Cannot happen while events are only ever appended. If stored events were replaced
        // under a running process (a restored database), a cached state that the stored events
        // do not continue is dropped here and the aggregate rebuilt; one they happen to continue
        // is not detected, so processes must be restarted after such a restore.
        let stale: Vec<usize> = (0..self.rebuilds.len())
            .filter(|&i| self.rebuilds[i].stale)
            .collect();
        if !stale.is_empty() {
            let stale_ids: Vec<&str> = stale.iter().map(|&i| self.distinct[i]).collect();
            tracing::warn!(
                aggregate_type = A::TYPE,
                ids = ?stale_ids,
                "cached aggregates do not precede their stored events; rebuilding them"
            );
            for (&index, id) in stale.iter().zip(&stale_ids) {
                store.cache.remove(A::TYPE, id);
                self.rebuilds[index] = Rebuild::from_scratch();
            }
            let types = vec![A::TYPE; stale_ids.len()];
            let rows =
                events_after(connection, &types, &stale_ids, &vec![-1; stale_ids.len()]).await?;
            self.apply(store, rows)?;
        }

        for (id, rebuild) in self.distinct.iter().zip(&self.rebuilds) {
            // Only what was read from the store, and only when it moved on.
            if rebuild.loaded.version > rebuild.cached_at.unwrap_or(0) {
                let cached = Cached {
                    aggregate: rebuild.loaded.aggregate.clone(),
                    head: rebuild.loaded.head.clone(),
                };
                store.cache.put(A::TYPE, id, cached, rebuild.loaded.version);
            }
        }

        let Pending {
            position,
            mut uses,
            rebuilds,
            ids,
            ..
        } = self;
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
}

/// The events of aggregates (`types[i]`, `ids[i]`) with a sequence above `after[i]`, by type,
/// aggregate and sequence (`nmp_events_after`: each aggregate one index lookup, on a plan made
/// once per connection).
async fn events_after(
    connection: &mut sqlx::PgConnection,
    types: &[&str],
    ids: &[&str],
    after: &[i64],
) -> Result<Vec<EventRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as("SELECT * FROM nmp_events_after($1, $2, $3)")
        .bind(types)
        .bind(ids)
        .bind(after)
        .fetch_all(&mut *connection)
        .await?;
    Ok(rows)
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
