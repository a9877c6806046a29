//! The aggregate cache of `EventStore`: a load after the first reads only newer events, sees
//! what other writers appended, and keeps within its capacity.

use std::convert::Infallible;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use store::{Changes, EventMetadata, EventStore, Loaded};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh database, dropped by `drop_now` (or, if the test panics, by `Drop`).
struct TestDb {
    name: String,
    url: String,
    pool: PgPool,
}

impl TestDb {
    async fn new() -> TestDb {
        let name = format!("nmp_storetest_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&format!("{SERVER}/postgres"))
            .await
            .expect("server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = format!("{SERVER}/{name}");
        let pool = store::connect(&url, 5).await.expect("connect and migrate");
        TestDb { name, url, pool }
    }

    async fn drop_now(self) {
        self.pool.close().await;
        // `Drop` does the rest.
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime: use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(admin) = PgPool::connect(&format!("{SERVER}/postgres")).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A test aggregate: the values added to it, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    values: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Added { value: i64 },
}

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> String {
        "Added".to_string()
    }
    fn event_version(&self) -> String {
        "2.0".to_string()
    }
}

impl Aggregate for Tally {
    const TYPE: &'static str = "tally";
    type Command = ();
    type Event = TallyEvent;
    type Error = Infallible;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), Infallible> {
        Ok(())
    }

    fn apply(&mut self, event: TallyEvent) {
        match event {
            TallyEvent::Added { value } => self.values.push(value),
        }
    }
}

/// Another aggregate type whose ids collide with `Tally`'s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Other {
    values: Vec<i64>,
}

impl Aggregate for Other {
    const TYPE: &'static str = "other";
    type Command = ();
    type Event = TallyEvent;
    type Error = Infallible;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), _: &EventSink<Self>) -> Result<(), Infallible> {
        Ok(())
    }

    fn apply(&mut self, event: TallyEvent) {
        match event {
            TallyEvent::Added { value } => self.values.push(value + 1000),
        }
    }
}

fn metadata() -> EventMetadata {
    EventMetadata::system("store-test")
}

/// Appends `values` to aggregate `id` after `version`, through `EventStore::commit`.
async fn add<A: Aggregate<Event = TallyEvent>>(
    store: &EventStore,
    id: &str,
    version: u64,
    values: &[i64],
) {
    let events: Vec<TallyEvent> = values
        .iter()
        .map(|&value| TallyEvent::Added { value })
        .collect();
    let mut changes = Changes::new();
    changes.append::<A>(id, version, &events).expect("append");
    store.commit(changes, &metadata()).await.expect("commit");
}

/// Appends an event with plain SQL, as another process (or an older nmp) would.
async fn insert_row(pool: &PgPool, id: &str, sequence: i64, version: &str, payload: Value) {
    sqlx::query(
        "INSERT INTO events \
           (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('tally', $1, $2, 'Added', $3, $4, '{}')",
    )
    .bind(id)
    .bind(sequence)
    .bind(version)
    .bind(payload)
    .execute(pool)
    .await
    .expect("insert");
}

/// Rewrites a stored event in place. nmp never does; here it shows which events a load reads.
async fn tamper(pool: &PgPool, id: &str, sequence: i64, value: i64) {
    sqlx::query(
        "UPDATE events SET payload = $3 \
          WHERE aggregate_type = 'tally' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(id)
    .bind(sequence)
    .bind(json!({"Added": {"value": value}}))
    .execute(pool)
    .await
    .expect("update");
}

fn values(loaded: &Loaded<Tally>) -> (Vec<i64>, u64) {
    (loaded.aggregate.values.clone(), loaded.version)
}

#[tokio::test]
async fn a_second_load_reads_only_the_newer_events() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    add::<Tally>(&store, "a", 0, &[1, 2, 3]).await;

    let first = store.load::<Tally>("a").await.expect("load");
    assert_eq!(values(&first), (vec![1, 2, 3], 3));
    assert_eq!(store.cached_aggregates(), 1);

    // Rewrite an event the cache already holds, and append a new one: only the new one is read.
    tamper(&db.pool, "a", 2, 200).await;
    insert_row(&db.pool, "a", 4, "2.0", json!({"Added": {"value": 4}})).await;
    let second = store.load::<Tally>("a").await.expect("load");
    assert_eq!(values(&second), (vec![1, 2, 3, 4], 4));
    let again = store.load::<Tally>("a").await.expect("load");
    assert_eq!(values(&again), (vec![1, 2, 3, 4], 4));

    // The same through load_many.
    tamper(&db.pool, "a", 3, 300).await;
    add::<Tally>(&store, "a", 4, &[5]).await;
    let many = store
        .load_many::<Tally>(&["a".to_string()])
        .await
        .expect("load_many");
    assert_eq!(values(&many[0]), (vec![1, 2, 3, 4, 5], 5));

    // Without a cache, every event is read again, rewritten ones included.
    let uncached = EventStore::with_cache_capacity(db.pool.clone(), 0);
    assert_eq!(uncached.cache_capacity(), 0);
    let fresh = uncached.load::<Tally>("a").await.expect("load");
    assert_eq!(values(&fresh), (vec![1, 200, 300, 4, 5], 5));
    assert_eq!(uncached.cached_aggregates(), 0);
    db.drop_now().await;
}

#[tokio::test]
async fn events_appended_by_another_store_are_seen() {
    let db = TestDb::new().await;
    let ours = EventStore::new(db.pool.clone());
    // Another process: its own pool and its own cache.
    let theirs = EventStore::new(store::connect(&db.url, 2).await.expect("connect"));
    add::<Tally>(&ours, "a", 0, &[1]).await;
    assert_eq!(
        values(&ours.load::<Tally>("a").await.expect("load")),
        (vec![1], 1)
    );

    let loaded = theirs.load::<Tally>("a").await.expect("load");
    add::<Tally>(&theirs, "a", loaded.version, &[2, 3]).await;
    assert_eq!(
        values(&ours.load::<Tally>("a").await.expect("load")),
        (vec![1, 2, 3], 3)
    );
    let many = ours
        .load_many::<Tally>(&["a".to_string()])
        .await
        .expect("load_many");
    assert_eq!(values(&many[0]), (vec![1, 2, 3], 3));

    // A writer that loaded from its cache still conflicts with one that got there first.
    let stale = theirs.load::<Tally>("a").await.expect("load");
    add::<Tally>(&ours, "a", 3, &[4]).await;
    let mut changes = Changes::new();
    changes
        .append::<Tally>("a", stale.version, &[TallyEvent::Added { value: 99 }])
        .expect("append");
    assert!(matches!(
        theirs.commit(changes, &metadata()).await,
        Err(store::StoreError::Conflict)
    ));
    assert_eq!(
        values(&theirs.load::<Tally>("a").await.expect("load")),
        (vec![1, 2, 3, 4], 4)
    );
    db.drop_now().await;
}

#[tokio::test]
async fn load_many_mixes_cached_uncached_and_unknown_ids_in_order() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    add::<Tally>(&store, "cached", 0, &[1, 2]).await;
    add::<Tally>(&store, "cached-unchanged", 0, &[7]).await;
    add::<Tally>(&store, "uncached", 0, &[10, 20]).await;
    add::<Other>(&store, "cached", 0, &[5]).await;
    store.load::<Tally>("cached").await.expect("load");
    store.load::<Tally>("cached-unchanged").await.expect("load");
    assert_eq!(store.cached_aggregates(), 2);
    // What the cache holds for "cached" is now older than the store...
    add::<Tally>(&store, "cached", 2, &[3]).await;
    // ...and its first events no longer what it was built from, to show they are not re-read.
    tamper(&db.pool, "cached", 1, 100).await;

    let ids: Vec<String> = [
        "uncached",
        "unknown",
        "cached",
        "cached-unchanged",
        "cached",
    ]
    .iter()
    .map(|id| id.to_string())
    .collect();
    let loaded = store.load_many::<Tally>(&ids).await.expect("load_many");
    let got: Vec<(Vec<i64>, u64)> = loaded.iter().map(values).collect();
    assert_eq!(
        got,
        [
            (vec![10, 20], 2),
            (vec![], 0),
            (vec![1, 2, 3], 3),
            (vec![7], 1),
            (vec![1, 2, 3], 3),
        ]
    );
    // Rebuilt aggregates are kept, unknown ids are not.
    assert_eq!(store.cached_aggregates(), 3);

    // The aggregate type is part of the key.
    let others = store
        .load_many::<Other>(&["cached".to_string(), "uncached".to_string()])
        .await
        .expect("load_many");
    assert_eq!(others[0].aggregate.values, [1005]);
    assert_eq!(others[0].version, 1);
    assert_eq!(others[1].version, 0);
    assert_eq!(store.cached_aggregates(), 4);
    db.drop_now().await;
}

#[tokio::test]
async fn eviction_keeps_the_cache_within_capacity_and_evicted_aggregates_load_in_full() {
    let db = TestDb::new().await;
    let store = EventStore::with_cache_capacity(db.pool.clone(), 10);
    assert_eq!(store.cache_capacity(), 10);
    let ids: Vec<String> = (0..35).map(|i| format!("t{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        add::<Tally>(&store, id, 0, &[i as i64, i as i64 + 1]).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let loaded = store.load::<Tally>(id).await.expect("load");
        assert_eq!(values(&loaded), (vec![i as i64, i as i64 + 1], 2));
        assert!(store.cached_aggregates() <= 10);
    }
    let loaded = store.load_many::<Tally>(&ids).await.expect("load_many");
    assert!(store.cached_aggregates() <= 10);
    assert!(store.cached_aggregates() > 0);
    for (i, loaded) in loaded.iter().enumerate() {
        assert_eq!(values(loaded), (vec![i as i64, i as i64 + 1], 2));
    }
    // The first ids were evicted long ago: they are read in full again.
    tamper(&db.pool, "t00", 1, 500).await;
    let loaded = store.load::<Tally>("t00").await.expect("load");
    assert_eq!(values(&loaded), (vec![500, 1], 2));
    db.drop_now().await;
}

/// Reads `Added` events of version 1.0, which called the value `amount`.
struct AmountToValue;

impl EventUpcaster for AmountToValue {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "Added" && event_version == "1.0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let amount = event.payload["Added"]["amount"].clone();
        event.payload = json!({"Added": {"value": amount}});
        event.event_version = "2.0".to_string();
        event
    }
}

#[tokio::test]
async fn upcasters_apply_to_the_events_read_after_the_cached_version() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone()).with_upcaster(AmountToValue);
    insert_row(&db.pool, "a", 1, "1.0", json!({"Added": {"amount": 1}})).await;
    add::<Tally>(&store, "a", 1, &[2]).await;
    assert_eq!(
        values(&store.load::<Tally>("a").await.expect("load")),
        (vec![1, 2], 2)
    );
    insert_row(&db.pool, "a", 3, "1.0", json!({"Added": {"amount": 3}})).await;
    assert_eq!(
        values(&store.load::<Tally>("a").await.expect("load")),
        (vec![1, 2, 3], 3)
    );
    insert_row(&db.pool, "a", 4, "1.0", json!({"Added": {"amount": 4}})).await;
    let many = store
        .load_many::<Tally>(&["a".to_string()])
        .await
        .expect("load_many");
    assert_eq!(values(&many[0]), (vec![1, 2, 3, 4], 4));
    db.drop_now().await;
}

#[tokio::test]
async fn a_cached_state_that_does_not_precede_the_stored_events_is_rebuilt() {
    let db = TestDb::new().await;
    let store = EventStore::new(db.pool.clone());
    add::<Tally>(&store, "a", 0, &[1, 2]).await;
    store.load::<Tally>("a").await.expect("load");
    // The events are replaced behind the cache's back (a restored database): the next event
    // does not follow the cached version, so the aggregate is read in full.
    sqlx::query("DELETE FROM events WHERE aggregate_id = 'a'")
        .execute(&db.pool)
        .await
        .expect("delete");
    insert_row(&db.pool, "a", 1, "2.0", json!({"Added": {"value": 10}})).await;
    insert_row(&db.pool, "a", 2, "2.0", json!({"Added": {"value": 20}})).await;
    insert_row(&db.pool, "a", 4, "2.0", json!({"Added": {"value": 40}})).await;
    assert_eq!(
        values(&store.load::<Tally>("a").await.expect("load")),
        (vec![10, 20, 40], 4)
    );
    add::<Tally>(&store, "b", 0, &[1, 2]).await;
    store.load::<Tally>("b").await.expect("load");
    sqlx::query("DELETE FROM events WHERE aggregate_id = 'b'")
        .execute(&db.pool)
        .await
        .expect("delete");
    insert_row(&db.pool, "b", 1, "2.0", json!({"Added": {"value": 5}})).await;
    insert_row(&db.pool, "b", 4, "2.0", json!({"Added": {"value": 7}})).await;
    let many = store
        .load_many::<Tally>(&["a".to_string(), "b".to_string()])
        .await
        .expect("load_many");
    assert_eq!(values(&many[0]), (vec![10, 20, 40], 4));
    assert_eq!(values(&many[1]), (vec![5, 7], 4));
    db.drop_now().await;
}

#[tokio::test]
async fn concurrent_writers_through_two_caches_lose_nothing() {
    let db = TestDb::new().await;
    let first = EventStore::new(db.pool.clone());
    let second = EventStore::new(store::connect(&db.url, 5).await.expect("connect"));
    let writers = (0..8i64).map(|writer| {
        let store = if writer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move {
            for i in 0..25 {
                let value = writer * 100 + i;
                loop {
                    let loaded = store.load::<Tally>("shared").await.expect("load");
                    let mut changes = Changes::new();
                    changes
                        .append::<Tally>("shared", loaded.version, &[TallyEvent::Added { value }])
                        .expect("append");
                    match store.commit(changes, &metadata()).await {
                        Ok(()) => break,
                        Err(store::StoreError::Conflict) => continue,
                        Err(error) => panic!("{error}"),
                    }
                }
            }
        }
    });
    futures::future::join_all(writers).await;

    let uncached = EventStore::with_cache_capacity(db.pool.clone(), 0);
    let expected = uncached.load::<Tally>("shared").await.expect("load");
    assert_eq!(expected.version, 200);
    let mut sorted = expected.aggregate.values.clone();
    sorted.sort_unstable();
    let all: Vec<i64> = (0..8)
        .flat_map(|writer| (0..25).map(move |i| writer * 100 + i))
        .collect();
    assert_eq!(sorted, all, "every value once");
    for store in [&first, &second] {
        let loaded = store.load::<Tally>("shared").await.expect("load");
        assert_eq!(values(&loaded), values(&expected));
    }
    db.drop_now().await;
}
