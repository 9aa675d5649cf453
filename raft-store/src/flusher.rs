//! Group commit: one thread makes appended log entries durable.
//!
//! `append` writes entries to RocksDB without syncing and hands the completion
//! callback to this thread. The thread takes every callback that is waiting,
//! syncs the write-ahead log once, and only then reports each append as
//! flushed, in the order they were appended. Under load many appends share one
//! `fsync`; when idle an append waits for exactly one.
//!
//! Why a single long-lived thread: a thread (or blocking task) per append
//! piles up under load, and the Raft core then starves and loses its lease.
//!
//! Invariant: a callback is completed only after a WAL sync that began after
//! the callback's write returned, so nothing is acknowledged before it is on disk.
//! After one failed sync, none succeeds again ([`DiskHealth`]).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use openraft::storage::IOFlushed;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use rocksdb::DB;

use crate::disk_health::DiskHealth;
use crate::types::TypeConfig;

/// Counters of the group commit, for `/metrics` and benchmarks: appends per
/// sync is the batching factor, sync time the disk's share of a write.
#[derive(Debug)]
pub struct WalStats {
    pub syncs: AtomicU64,
    pub appends: AtomicU64,
    /// Log entries written by those appends.
    pub entries: AtomicU64,
    pub sync_micros: AtomicU64,
    /// Each sync's time, seconds: 50 µs to 1.6 s, doubling.
    pub sync_seconds: Histogram,
    /// Appends each sync made durable: 1 to 512, doubling.
    pub appends_per_sync: Histogram,
}

impl Default for WalStats {
    fn default() -> Self {
        WalStats {
            syncs: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            sync_micros: AtomicU64::new(0),
            sync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            appends_per_sync: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

/// Handle to the WAL sync thread. Dropping the last handle stops the thread
/// after it has completed the callbacks it holds, and waits for it: the
/// thread owns a reference to the database, which must be closed before the
/// process exits (RocksDB aborts if it is torn down while a thread still
/// closes a database).
#[derive(Clone)]
pub struct Flusher {
    inner: Arc<Inner>,
    stats: Arc<WalStats>,
    disk: Arc<DiskHealth>,
}

struct Inner {
    tx: Option<mpsc::Sender<IOFlushed<TypeConfig>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; then wait for it.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Flusher {
    pub fn start(db: Arc<DB>, disk: Arc<DiskHealth>) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let stats = Arc::new(WalStats::default());
        let thread_stats = stats.clone();
        let thread_disk = disk.clone();
        let thread = thread::Builder::new().name("wal-sync".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut waiting = vec![first];
                waiting.extend(rx.try_iter());
                let started = Instant::now();
                let result = thread_disk.sync(|| db.flush_wal(true));
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                // The histograms first: a scrape that reads a sync in the
                // counters finds it in the histograms too.
                thread_stats.sync_seconds.observe(micros as f64 / 1e6);
                thread_stats.appends_per_sync.observe(waiting.len() as f64);
                thread_stats.syncs.fetch_add(1, Ordering::Relaxed);
                thread_stats
                    .appends
                    .fetch_add(waiting.len() as u64, Ordering::Relaxed);
                thread_stats.sync_micros.fetch_add(micros, Ordering::Relaxed);
                for callback in waiting {
                    let outcome = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::other(format!("WAL {e}"))),
                    };
                    callback.io_completed(outcome);
                }
            }
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
            }),
            stats,
            disk,
        })
    }

    /// The disk's health, which every synced write goes through.
    pub fn disk(&self) -> &Arc<DiskHealth> {
        &self.disk
    }

    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }

    /// Reports `callback` as flushed after the next WAL sync.
    pub fn sync_then(&self, callback: IOFlushed<TypeConfig>) {
        let tx = self
            .inner
            .tx
            .as_ref()
            .expect("the sender lives until the last handle drops");
        if let Err(mpsc::SendError(callback)) = tx.send(callback) {
            // The thread is gone only if it panicked: never report success then.
            callback.io_completed(Err(io::Error::other("WAL sync thread stopped")));
        }
    }
}
