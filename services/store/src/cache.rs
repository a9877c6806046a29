//! An in-process cache of rebuilt aggregates, so that loading one replays only the events
//! appended since it was last rebuilt.
//!
//! Stored events are never rewritten, so an aggregate rebuilt from its events `1..=v` stays a
//! valid starting point: a load takes it and applies the events with a sequence above `v`, which
//! it always reads from the database — events appended by other processes are therefore seen.
//! Only states rebuilt from stored events are put here, never the outcome of a command, which
//! may still fail to commit.
//!
//! The cache holds at most `capacity` aggregates. When it is full, the least recently used
//! tenth is dropped in one sweep, so the cost of finding them is spread over many inserts.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many aggregates an `EventStore` keeps unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 50_000;

type Shared = Arc<dyn Any + Send + Sync>;

struct Entry {
    aggregate: Shared,
    version: u64,
    last_used: u64,
}

#[derive(Default)]
struct Entries {
    /// By aggregate type, then id: a lookup needs no allocation.
    by_type: HashMap<&'static str, HashMap<String, Entry>>,
    len: usize,
    /// Counts every use; an entry's `last_used` is the count at its latest use.
    clock: u64,
}

impl Entries {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Drops the `count` least recently used entries.
    fn evict_oldest(&mut self, count: usize) {
        if count >= self.len {
            self.by_type.clear();
            self.len = 0;
            return;
        }
        let mut uses: Vec<u64> = self
            .by_type
            .values()
            .flat_map(|entries| entries.values().map(|entry| entry.last_used))
            .collect();
        // Uses are distinct, so exactly `count` entries are at or below the threshold.
        let (_, threshold, _) = uses.select_nth_unstable(count - 1);
        let threshold = *threshold;
        for entries in self.by_type.values_mut() {
            entries.retain(|_, entry| entry.last_used > threshold);
        }
        self.by_type.retain(|_, entries| !entries.is_empty());
        self.len = self.by_type.values().map(HashMap::len).sum();
    }
}

/// Aggregates of any type, each with the sequence of the last event it was rebuilt from.
pub(crate) struct AggregateCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl AggregateCache {
    /// A cache of at most `capacity` aggregates; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> Self {
        AggregateCache {
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The map stays consistent even if a holder panicked: every change is a single call.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the cached state of aggregate `id` of `aggregate_type`, and its version.
    pub(crate) fn get<A>(&self, aggregate_type: &'static str, id: &str) -> Option<(A, u64)>
    where
        A: Clone + Send + Sync + 'static,
    {
        if self.capacity == 0 {
            return None;
        }
        let (shared, version) = {
            let mut entries = self.lock();
            let now = entries.tick();
            let entry = entries.by_type.get_mut(aggregate_type)?.get_mut(id)?;
            entry.last_used = now;
            (Arc::clone(&entry.aggregate), entry.version)
        };
        // Cloned outside the lock: a large aggregate must not hold up other loads.
        let aggregate = shared.downcast::<A>().ok()?;
        Some((A::clone(&aggregate), version))
    }

    /// Keeps `aggregate`, rebuilt from the events up to sequence `version`, unless a state at
    /// least as recent is already cached.
    pub(crate) fn put<A>(&self, aggregate_type: &'static str, id: &str, aggregate: A, version: u64)
    where
        A: Send + Sync + 'static,
    {
        if self.capacity == 0 {
            return;
        }
        let aggregate: Shared = Arc::new(aggregate);
        let mut entries = self.lock();
        let now = entries.tick();
        let existing = entries
            .by_type
            .get_mut(aggregate_type)
            .and_then(|of_type| of_type.get_mut(id));
        if let Some(entry) = existing {
            // A slower concurrent load must not put back an older state; a different Rust type
            // under the same aggregate type name is simply replaced.
            if entry.version < version || !entry.aggregate.is::<A>() {
                entry.aggregate = aggregate;
                entry.version = version;
            }
            entry.last_used = now;
            return;
        }
        if entries.len >= self.capacity {
            entries.evict_oldest(self.capacity.div_ceil(10));
        }
        entries.by_type.entry(aggregate_type).or_default().insert(
            id.to_string(),
            Entry {
                aggregate,
                version,
                last_used: now,
            },
        );
        entries.len += 1;
    }

    /// Forgets aggregate `id` of `aggregate_type`.
    pub(crate) fn remove(&self, aggregate_type: &'static str, id: &str) {
        let mut entries = self.lock();
        let removed = entries
            .by_type
            .get_mut(aggregate_type)
            .and_then(|of_type| of_type.remove(id));
        if removed.is_some() {
            entries.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_aggregate_comes_back_with_its_version() {
        let cache = AggregateCache::new(10);
        cache.put("tally", "a", vec![1, 2, 3], 3);
        assert_eq!(
            cache.get::<Vec<i32>>("tally", "a"),
            Some((vec![1, 2, 3], 3))
        );
        assert_eq!(cache.get::<Vec<i32>>("tally", "b"), None);
        assert_eq!(
            cache.get::<Vec<i32>>("other", "a"),
            None,
            "the type is part of the key"
        );
    }

    #[test]
    fn an_older_state_does_not_replace_a_newer_one() {
        let cache = AggregateCache::new(10);
        cache.put("tally", "a", vec![1, 2], 2);
        cache.put("tally", "a", vec![1], 1);
        assert_eq!(cache.get::<Vec<i32>>("tally", "a"), Some((vec![1, 2], 2)));
        cache.put("tally", "a", vec![1, 2, 3], 3);
        assert_eq!(
            cache.get::<Vec<i32>>("tally", "a"),
            Some((vec![1, 2, 3], 3))
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn another_rust_type_under_the_same_name_is_a_miss_and_is_replaced() {
        let cache = AggregateCache::new(10);
        cache.put("tally", "a", vec![1, 2], 2);
        assert_eq!(cache.get::<String>("tally", "a"), None);
        cache.put("tally", "a", "x".to_string(), 1);
        assert_eq!(
            cache.get::<String>("tally", "a"),
            Some(("x".to_string(), 1))
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_drops_the_least_recently_used() {
        let cache = AggregateCache::new(20);
        for i in 0..20 {
            cache.put("tally", &i.to_string(), i, 1);
        }
        assert_eq!(cache.len(), 20);
        // Use the first five again: they are now the most recent.
        for i in 0..5 {
            assert!(cache.get::<i32>("tally", &i.to_string()).is_some());
        }
        cache.put("tally", "new", 99, 1);
        assert!(cache.len() <= 20);
        assert_eq!(cache.len(), 19, "a tenth (2) dropped, one added");
        for i in 0..5 {
            assert!(
                cache.get::<i32>("tally", &i.to_string()).is_some(),
                "{i} kept"
            );
        }
        assert!(
            cache.get::<i32>("tally", "5").is_none(),
            "least recent dropped"
        );
        assert!(
            cache.get::<i32>("tally", "6").is_none(),
            "least recent dropped"
        );
        assert!(cache.get::<i32>("tally", "7").is_some());
        assert!(cache.get::<i32>("tally", "new").is_some());
        for i in 0..1000 {
            cache.put(if i % 2 == 0 { "a" } else { "b" }, &i.to_string(), i, 1);
            assert!(cache.len() <= 20);
        }
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache = AggregateCache::new(0);
        cache.put("tally", "a", 1, 1);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get::<i32>("tally", "a"), None);
    }

    #[test]
    fn capacity_one_keeps_the_latest() {
        let cache = AggregateCache::new(1);
        cache.put("tally", "a", 1, 1);
        cache.put("tally", "b", 2, 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get::<i32>("tally", "b"), Some((2, 1)));
        cache.remove("tally", "b");
        assert_eq!(cache.len(), 0);
    }
}
