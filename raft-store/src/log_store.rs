//! One replica's Raft log and Raft metadata (vote, committed, purged) in the
//! node's shared RocksDB, inside that replica's key range (see [`crate::keys`]).
//!
//! Invariants:
//! * entries in the `log` column family are contiguous from `purged + 1` to the
//!   last index (openraft never leaves holes; `truncate_after` and `purge` cut
//!   only at the ends);
//! * `save_vote` and `truncate_after` are synced before they return, because
//!   openraft relies on them surviving a crash before it sends any message;
//! * `append` reports completion through the [`Flusher`] only after a WAL sync.
//!
//! Reads are short point lookups and range scans; they run inline on the
//! calling task rather than on a blocking pool because RocksDB serves them from
//! memory in microseconds.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::codec::{db_err, decode, decode_entry, encode};
use crate::flusher::Flusher;
use crate::keys::{
    META_COMMITTED, META_PURGED, META_VOTE, log_index, log_key, prefixed, replica_end, replica_start,
};
use crate::store::{CF_LOG, CF_META};
use crate::types::{Entry, LogId, TypeConfig, Vote};

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: Flusher,
    replica: u64,
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, flusher: Flusher, replica: u64) -> Self {
        Self { db, flusher, replica }
    }

    /// Read options confined to this replica's key range.
    fn in_range(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(replica_start(self.replica).to_vec());
        opts.set_iterate_upper_bound(replica_end(self.replica).to_vec());
        opts
    }

    fn cf_log(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_LOG)
            .expect("log column family is created at open")
    }

    fn cf_meta(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_META)
            .expect("meta column family is created at open")
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self
            .db
            .get_cf(self.cf_meta(), prefixed(self.replica, key))
            .map_err(db_err)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put_meta_synced<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        // A synced write is a sync: it fails once the disk has failed.
        self.flusher.disk().sync(|| {
            self.db
                .put_cf_opt(self.cf_meta(), prefixed(self.replica, key), encode(value), &opts)
        })
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let mut iter = self
            .db
            .iterator_cf_opt(self.cf_log(), self.in_range(), IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (_, value) = item.map_err(db_err)?;
                let entry: Entry = decode_entry(&value)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }
}

fn range_start(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i + 1,
        Bound::Unbounded => 0,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = log_key(self.replica, range_start(&range));
        let mut entries = Vec::new();
        for item in self.db.iterator_cf_opt(
            self.cf_log(),
            self.in_range(),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item.map_err(db_err)?;
            let index = log_index(&key)?;
            if !range.contains(&index) {
                break;
            }
            entries.push(decode_entry(&value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.get_meta(META_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.put_meta_synced(META_VOTE, vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // A hint for faster recovery: not synced, a lost value only means
        // openraft re-learns the commit index from the leader.
        self.db
            .put_cf(
                self.cf_meta(),
                prefixed(self.replica, META_COMMITTED),
                encode(&committed),
            )
            .map_err(db_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut count = 0;
        for entry in entries {
            batch.put_cf(
                self.cf_log(),
                log_key(self.replica, entry.log_id.index),
                encode(&entry),
            );
            count += 1;
        }
        self.flusher
            .stats()
            .entries
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        // Not synced here: the flusher syncs once for every append waiting.
        self.db.write(batch).map_err(db_err)?;
        self.flusher.sync_then(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf_log(),
            log_key(self.replica, from).as_slice(),
            replica_end(self.replica).as_slice(),
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(db_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record the purge point first in the same batch, so that a crash never
        // leaves a log whose start is unknown.
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf_meta(),
            prefixed(self.replica, META_PURGED),
            encode(&log_id),
        );
        batch.delete_range_cf(
            self.cf_log(),
            log_key(self.replica, 0),
            log_key(self.replica, log_id.index + 1),
        );
        self.db.write(batch).map_err(db_err)
    }
}
