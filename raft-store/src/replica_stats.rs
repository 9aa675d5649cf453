//! What one replica's state machine did, for `/metrics`: entries applied and
//! how long each batch took, leaderships it saw begin, snapshots built and
//! installed, and the rules' tally (booking outcomes, payment steps, notice
//! deliveries). Shared with the API through [`crate::SharedState`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use booking::Tally;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Debug)]
pub struct ReplicaStats {
    /// Blank entries applied: each is a new leader's first entry of its
    /// term, so this counts leaderships that committed (leader changes).
    pub leaderships: AtomicU64,
    pub snapshots_built: AtomicU64,
    pub snapshots_installed: AtomicU64,
    /// Each apply batch's time, seconds: 10 µs to ~0.65 s, doubling.
    pub apply_seconds: Histogram,
    /// Entries in each apply batch: the commits Raft hands the state
    /// machine at once (1 to 4,096, doubling).
    pub entries_per_apply: Histogram,
    tally: Mutex<Tally>,
}

impl Default for ReplicaStats {
    fn default() -> Self {
        ReplicaStats {
            leaderships: AtomicU64::new(0),
            snapshots_built: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            apply_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 17)),
            entries_per_apply: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            tally: Mutex::new(Tally::default()),
        }
    }
}

impl ReplicaStats {
    /// Adds what the rules did in one batch.
    pub(crate) fn add(&self, batch: Tally) {
        if batch == Tally::default() {
            return;
        }
        *self.tally.lock().unwrap_or_else(|p| p.into_inner()) += batch;
    }

    /// The rules' counts since this replica started.
    pub fn tally(&self) -> Tally {
        *self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
