//! Caches of answers this node renders from its own replicas (moka).
//!
//! A search or a local seat map is rendered from a replica at some applied
//! log index. The cache key holds the index the handler read *before* it ran
//! the query, and the answer reflects that index or a later one (a replica
//! only moves forward), so a cached answer is never older than its key says.
//! A request looks up the index its replica has now: once the replica
//! applies one more entry of the group, every older entry stops matching and
//! ages out. Nothing has to be invalidated, and a hit is exactly as fresh as
//! a miss would have been.
//!
//! A `bounded` seat map is kept by time instead, *stamped* with the node,
//! index and closed time it reflects, because during an on-sale its index
//! moves with every hold and an index key would never hit just when readers
//! are most numerous. A stamped answer serves a `bounded` read while its
//! staleness (from its closed time to now) is within that read's bound, which
//! is exactly what a fresh answer would have had to show, and its headers say
//! what it reflects, so a reader sees an older index, never a fresher-looking
//! answer. On a node with its own replica it serves for [`REFRESH_AFTER`]
//! (or as long as the replica has applied nothing newer), then the next read
//! renders afresh. On a node that borrows the seat map from a neighbour's
//! replica (`freshness::Plan::Neighbour`: a round trip and a whole seat map
//! on the wire), the first hit after [`REFRESH_AFTER`] borrows a new one in
//! the background while the old one keeps serving. Either way a busy seat
//! map costs a few renders a second per node, whatever its readers number.
//!
//! Bounds: the total weight (body, key and a fixed overhead per entry) is
//! at most `max_bytes`, which also bounds the number of entries, and an
//! entry lives at most [`TIME_TO_LIVE`]. Hits, misses and evictions are
//! counted for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use moka::notification::RemovalCause;

/// Weight counted for an entry beyond its key and body (moka's own
/// bookkeeping, the key's allocation): what bounds the entry count.
const ENTRY_OVERHEAD: usize = 256;

/// Old keys never match again; this frees their memory sooner than size
/// pressure would.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(30);

/// How long a stamped answer serves before a newer one is made (rendered
/// here, or borrowed in the background while the old one serves within its
/// bound).
pub const REFRESH_AFTER: Duration = Duration::from_millis(200);

/// What an answer was rendered from: its kind, the group whose replica
/// answered and the index it had applied, and the request's own text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: &'static str,
    pub group: u64,
    pub applied: u64,
    /// Another group the answer also depends on and its index (a seat map
    /// shown in another currency depends on the catalog's rates), or zeros.
    pub also: (u64, u64),
    pub request: String,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// A cached body and, when it is kept by time, what it reflects.
#[derive(Clone)]
struct Entry {
    body: Bytes,
    stamp: Option<Arc<Stamp>>,
}

/// What a stamped answer reflects, and whether a newer one is being made.
#[derive(Debug)]
pub struct Stamp {
    /// The node whose replica answered.
    pub node: u64,
    /// The index it had applied.
    pub index: Option<u64>,
    /// Its closed time (Unix ms): the answer reflects every write committed before it.
    pub closed_ms: u64,
    kept_at: Instant,
    refreshing: AtomicBool,
}

impl Stamp {
    /// How long ago the answer was kept.
    pub fn age(&self) -> Duration {
        self.kept_at.elapsed()
    }

    /// Its staleness at `now_ms`.
    pub fn staleness_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.closed_ms)
    }

    /// Whether the caller should make a newer answer now: this one is older
    /// than [`REFRESH_AFTER`] and nobody else is making one. The caller that
    /// gets `true` calls [`Stamp::refresh_done`] when it is done, whether or
    /// not it replaced the entry.
    pub fn claim_refresh(&self) -> bool {
        self.age() >= REFRESH_AFTER
            && self
                .refreshing
                .compare_exchange(false, true, Relaxed, Relaxed)
                .is_ok()
    }

    /// The refresh is over; if it replaced nothing, the next hit may try again.
    pub fn refresh_done(&self) {
        self.refreshing.store(false, Relaxed);
    }
}

pub struct ReadCache {
    /// `None`: caching is off (`max_bytes = 0`).
    entries: Option<moka::sync::Cache<Key, Entry>>,
    counters: Arc<Counters>,
}

/// The cache's figures for `/metrics`.
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl ReadCache {
    pub fn new(max_bytes: u64) -> ReadCache {
        let counters = Arc::new(Counters::default());
        let evicted = counters.clone();
        let entries = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &Key, entry: &Entry| {
                    u32::try_from(key.request.len() + entry.body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(TIME_TO_LIVE)
                .eviction_listener(move |_key, _body, cause| {
                    // Replacements and explicit removals are not evictions;
                    // size pressure and age are.
                    if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                        evicted.evictions.fetch_add(1, Relaxed);
                    }
                })
                .build()
        });
        ReadCache { entries, counters }
    }

    /// The cached body for `key`, counting a hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let found = self
            .entries
            .as_ref()?
            .get(key)
            .filter(|entry| entry.stamp.is_none());
        self.count(found.is_some());
        found.map(|entry| entry.body)
    }

    pub fn put(&self, key: Key, body: Bytes) {
        if let Some(entries) = &self.entries {
            entries.insert(key, Entry { body, stamp: None });
        }
    }

    /// The stamped answer under `key` if `usable` accepts its stamp,
    /// counting a hit or a miss.
    pub fn get_stamped(&self, key: &Key, usable: impl FnOnce(&Stamp) -> bool) -> Option<(Bytes, Arc<Stamp>)> {
        let found = self.entries.as_ref()?.get(key).and_then(|entry| {
            let stamp = entry.stamp?;
            usable(&stamp).then_some((entry.body, stamp))
        });
        self.count(found.is_some());
        found
    }

    /// Keeps `body`, rendered from `node`'s replica at `index` and closed
    /// time `closed_ms`, unless the entry there is already newer (a slow
    /// refresh must not replace a later one).
    pub fn put_stamped(&self, key: Key, body: Bytes, node: u64, index: Option<u64>, closed_ms: u64) {
        let Some(entries) = &self.entries else {
            return;
        };
        let stamp = Arc::new(Stamp {
            node,
            index,
            closed_ms,
            kept_at: Instant::now(),
            refreshing: AtomicBool::new(false),
        });
        entries
            .entry(key)
            .and_upsert_with(|old| match old.map(|old| old.into_value()) {
                Some(old) if old.stamp.as_ref().is_some_and(|s| s.closed_ms > closed_ms) => old,
                _ => Entry {
                    body,
                    stamp: Some(stamp),
                },
            });
    }

    fn count(&self, hit: bool) {
        let counter = if hit {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = match &self.entries {
            Some(cache) => {
                cache.run_pending_tasks();
                (cache.entry_count(), cache.weighted_size())
            }
            None => (0, 0),
        };
        CacheStats {
            hits: self.counters.hits.load(Relaxed),
            misses: self.counters.misses.load(Relaxed),
            evictions: self.counters.evictions.load(Relaxed),
            entries,
            bytes,
        }
    }
}

/// A JSON answer from its serialized body (cached or fresh).
pub fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Serializes `value` for the cache and the answer.
pub fn to_body(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(applied: u64, request: &str) -> Key {
        Key {
            kind: "search",
            group: 0,
            applied,
            also: (0, 0),
            request: request.to_owned(),
        }
    }

    #[test]
    fn a_newer_index_misses_and_hits_and_misses_are_counted() {
        let cache = ReadCache::new(1 << 20);
        assert_eq!(cache.get(&key(5, "q=jazz")), None);
        cache.put(key(5, "q=jazz"), Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(&key(5, "q=jazz")), Some(Bytes::from_static(b"[1]")));
        // The replica applied one more entry: the old answer no longer matches.
        assert_eq!(cache.get(&key(6, "q=jazz")), None);
        assert_eq!(cache.get(&key(5, "q=rock")), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 3));
        assert_eq!(stats.entries, 1);
    }

    #[test]
    fn the_byte_bound_holds_and_evictions_are_counted() {
        let body = Bytes::from(vec![b'x'; 1000]);
        let bound = 20 * (1000 + ENTRY_OVERHEAD as u64 + 8);
        let cache = ReadCache::new(bound);
        for i in 0..200 {
            cache.put(key(i, "q=big"), body.clone());
        }
        let stats = cache.stats();
        assert!(stats.bytes <= bound, "{} bytes kept, bound {bound}", stats.bytes);
        assert!(stats.entries <= 20, "{} entries kept", stats.entries);
        assert!(stats.evictions >= 180, "{} evictions", stats.evictions);
    }

    #[test]
    fn a_stamped_answer_serves_while_usable_and_asks_for_one_refresh() {
        let cache = ReadCache::new(1 << 20);
        let put = |closed_ms: u64| {
            let body = Bytes::from(format!("{closed_ms}"));
            cache.put_stamped(key(0, "e1"), body, 4, Some(closed_ms / 10), closed_ms);
        };
        let within = |max: u64, now: u64| move |s: &Stamp| s.staleness_ms(now) <= max;
        put(10_000);
        // Within the bound it serves, with what it reflects.
        let (body, stamp) = cache
            .get_stamped(&key(0, "e1"), within(500, 10_400))
            .expect("within 500 ms");
        assert_eq!(
            (&body[..], stamp.node, stamp.index, stamp.closed_ms),
            (&b"10000"[..], 4, Some(1000), 10_000)
        );
        // Past the bound it does not, and that is a miss.
        assert!(cache.get_stamped(&key(0, "e1"), within(500, 10_501)).is_none());
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
        // An index-keyed lookup never takes a stamped answer, nor the other way round.
        assert_eq!(cache.get(&key(0, "e1")), None);
        cache.put(key(7, "e1"), Bytes::from_static(b"local"));
        assert!(cache.get_stamped(&key(7, "e1"), |_| true).is_none());
        // Young, it asks for no refresh; once old, exactly one caller gets it.
        assert!(!stamp.claim_refresh());
        std::thread::sleep(REFRESH_AFTER);
        assert!(stamp.age() >= REFRESH_AFTER);
        assert!(stamp.claim_refresh());
        assert!(!stamp.claim_refresh());
        stamp.refresh_done();
        assert!(stamp.claim_refresh());
        // An older answer arriving late does not replace a newer one.
        put(9_000);
        let (body, _) = cache.get_stamped(&key(0, "e1"), |_| true).expect("kept");
        assert_eq!(&body[..], b"10000");
        put(11_000);
        let (body, stamp) = cache.get_stamped(&key(0, "e1"), |_| true).expect("replaced");
        assert_eq!((&body[..], stamp.closed_ms), (&b"11000"[..], 11_000));
        assert!(!stamp.claim_refresh(), "a new answer starts young");
    }

    #[test]
    fn zero_bytes_turns_caching_off() {
        let cache = ReadCache::new(0);
        cache.put(key(1, "q"), Bytes::from_static(b"{}"));
        assert_eq!(cache.get(&key(1, "q")), None);
        assert_eq!(cache.stats().misses, 0);
    }
}
