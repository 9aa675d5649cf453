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
//! Bounds: the total weight (body, key and a fixed overhead per entry) is
//! at most `max_bytes`, which also bounds the number of entries, and an
//! entry lives at most [`TIME_TO_LIVE`]. Hits, misses and evictions are
//! counted for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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

pub struct ReadCache {
    /// `None`: caching is off (`max_bytes = 0`).
    entries: Option<moka::sync::Cache<Key, Bytes>>,
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
                .weigher(|key: &Key, body: &Bytes| {
                    u32::try_from(key.request.len() + body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
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
        let entries = self.entries.as_ref()?;
        let found = entries.get(key);
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Relaxed);
        found
    }

    pub fn put(&self, key: Key, body: Bytes) {
        if let Some(entries) = &self.entries {
            entries.insert(key, body);
        }
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
    fn zero_bytes_turns_caching_off() {
        let cache = ReadCache::new(0);
        cache.put(key(1, "q"), Bytes::from_static(b"{}"));
        assert_eq!(cache.get(&key(1, "q")), None);
        assert_eq!(cache.stats().misses, 0);
    }
}
