//! The openraft state machine: a thin adapter around [`booking::BookingState`].
//!
//! `apply` hands each committed request, with its log index, to the booking
//! core and writes the records it changed to this replica's range of the `sm`
//! column family together
//! with the applied log id, in one RocksDB batch per call. The write is not
//! synced: the log holds every applied entry until a snapshot covers it, and a
//! crash merely replays the tail. The in-memory [`BookingState`] is an index
//! over RocksDB, rebuilt from it at start and after a snapshot install.
//!
//! Architecture invariant: nothing here reads a clock or decides an outcome;
//! a storage error panics the apply path (via openraft's fatal error) rather
//! than letting this replica diverge.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use booking::{BookingState, Query, QueryResult};
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::{DB, Direction, IteratorMode, ReadOptions, WriteBatch};

use crate::codec::{db_err, decode, decode_record, encode, encode_record};
use crate::feed::FeedHub;
use crate::keys::{
    SM_APPLIED, SM_RECORDS_START, decode_record_key, prefixed, record_key, replica_end, replica_start,
    unprefixed,
};
use crate::replica_stats::ReplicaStats;
use crate::snapshot::{self, PinnedSnapshot, PublishLock, SnapshotBuilder, SnapshotFile};
use crate::store::CF_SM;
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// Read access to the applied booking state, shared with the API layer.
#[derive(Clone)]
pub struct SharedState {
    state: Arc<RwLock<BookingState>>,
    stats: Arc<ReplicaStats>,
}

impl SharedState {
    /// Locks the state for reading. Keep the guard short: applies wait for it.
    /// What this replica's state machine did, for metrics.
    pub fn stats(&self) -> &Arc<ReplicaStats> {
        &self.stats
    }

    pub fn read(&self) -> RwLockReadGuard<'_, BookingState> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers `query` from this replica's applied state, as it is now.
    pub fn query(&self, query: &Query) -> QueryResult {
        self.read().query(query)
    }
}

pub struct StateMachine {
    db: Arc<DB>,
    replica: u64,
    state: Arc<RwLock<BookingState>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_dir: PathBuf,
    publish_lock: PublishLock,
    /// Where this replica's availability changes go, and its group.
    feed: Option<(FeedHub, u64)>,
    stats: Arc<ReplicaStats>,
}

type AppliedMeta = (Option<LogId>, StoredMembership);

/// Read options confined to `replica`'s key range.
pub(crate) fn replica_range(replica: u64) -> ReadOptions {
    let mut opts = ReadOptions::default();
    opts.set_iterate_lower_bound(replica_start(replica).to_vec());
    opts.set_iterate_upper_bound(replica_end(replica).to_vec());
    opts
}

fn load_records(db: &DB, replica: u64) -> io::Result<BookingState> {
    let cf = db.cf_handle(CF_SM).expect("sm column family");
    let mut records = Vec::new();
    let start = prefixed(replica, SM_RECORDS_START);
    for item in db.iterator_cf_opt(
        cf,
        replica_range(replica),
        IteratorMode::From(&start, Direction::Forward),
    ) {
        let (key, value) = item.map_err(db_err)?;
        let key = decode_record_key(unprefixed(replica, &key)?)?;
        let record = decode_record(&key, &value)?;
        records.push((key, record));
    }
    BookingState::from_records(records).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl StateMachine {
    pub(crate) fn open(db: Arc<DB>, replica: u64, snapshot_dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&snapshot_dir)?;
        let cf = db.cf_handle(CF_SM).expect("sm column family");
        let (last_applied, membership): AppliedMeta =
            match db.get_cf(cf, prefixed(replica, SM_APPLIED)).map_err(db_err)? {
                Some(bytes) => decode(&bytes)?,
                None => (None, StoredMembership::default()),
            };
        let state = load_records(&db, replica)?;
        Ok(Self {
            db,
            replica,
            state: Arc::new(RwLock::new(state)),
            last_applied,
            membership,
            snapshot_dir,
            publish_lock: PublishLock::default(),
            feed: None,
            stats: Arc::default(),
        })
    }

    /// Publishes this replica's availability changes to `hub` as group
    /// `group`'s. Call before handing the state machine to Raft.
    pub fn attach_feed(&mut self, hub: FeedHub, group: u64) {
        self.write_state().record_changes();
        if let Some(applied) = self.last_applied {
            hub.publish(group, applied.index, Vec::new());
        }
        self.feed = Some((hub, group));
    }

    pub fn shared(&self) -> SharedState {
        SharedState {
            state: self.state.clone(),
            stats: self.stats.clone(),
        }
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.snapshot_dir.clone()
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, BookingState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<AppliedMeta, io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let started = std::time::Instant::now();
        let mut applied = 0u64;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            let response = match entry.payload {
                EntryPayload::Normal(request) => {
                    let mut state = self.write_state();
                    // Changes are built only while someone watches an event of
                    // this node; a subscriber arriving later starts from a
                    // snapshot taken under the state lock, so nothing is lost.
                    if let Some((hub, _)) = &self.feed {
                        if hub.watching_any() {
                            state.record_changes();
                        } else {
                            state.stop_recording_changes();
                        }
                    }
                    let response = state.apply(index, &request);
                    // Published under the write lock: see `feed`.
                    if let Some((hub, group)) = &self.feed {
                        hub.publish(*group, index, state.take_changes());
                    }
                    Some(response)
                }
                EntryPayload::Blank => {
                    ReplicaStats::count(&self.stats.leaderships);
                    None
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    None
                }
            };
            if response.is_none()
                && let Some((hub, group)) = &self.feed
            {
                let _state = self.write_state();
                hub.publish(*group, index, Vec::new());
            }
            self.last_applied = Some(entry.log_id);
            applied += 1;
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        if applied > 0 {
            let (dirty, tally) = {
                let mut state = self.write_state();
                (state.take_dirty(), state.take_tally())
            };
            self.stats.add(tally);
            let cf = self.db.cf_handle(CF_SM).expect("sm column family");
            let mut batch = WriteBatch::default();
            for (key, record) in dirty {
                let stored = prefixed(self.replica, &record_key(&key));
                match record {
                    Some(record) => batch.put_cf(cf, stored, encode_record(&key, &record)),
                    None => batch.delete_cf(cf, stored),
                }
            }
            let meta: AppliedMeta = (self.last_applied, self.membership.clone());
            batch.put_cf(cf, prefixed(self.replica, SM_APPLIED), encode(&meta));
            self.db.write(batch).map_err(db_err)?;
            self.stats.apply_seconds.observe(started.elapsed().as_secs_f64());
            self.stats.entries_per_apply.observe(applied as f64);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            pinned: Some(PinnedSnapshot::new(self.db.clone())),
            replica: self.replica,
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            dir: self.snapshot_dir.clone(),
            publish_lock: self.publish_lock.clone(),
            stats: self.stats.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let db = self.db.clone();
        let replica = self.replica;
        let dir = self.snapshot_dir.clone();
        let lock = self.publish_lock.clone();
        let meta_owned = meta.clone();
        let state = tokio::task::spawn_blocking(move || -> io::Result<BookingState> {
            let raw = snapshot::read_file(&snapshot.path)?;
            let mut records = Vec::with_capacity(raw.len());
            for (key, value) in &raw {
                let key = decode_record_key(key)?;
                let record = decode_record(&key, value)?;
                records.push((key, record));
            }
            let state = BookingState::from_records(records)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;

            // First make the file durable under its final name, then switch the
            // state and the current-snapshot record in one synced batch: a crash
            // at any point leaves either the old state with the old snapshot or
            // the new state with a snapshot file that exists.
            let index = meta_owned.last_log_id.as_ref().map_or(0, |id| id.index);
            let kept = snapshot::adopt_file(&dir, &snapshot.path, index)?;

            let cf = db.cf_handle(CF_SM).expect("sm column family");
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, replica_start(replica), replica_end(replica));
            for (key, value) in raw {
                batch.put_cf(cf, prefixed(replica, &key), value);
            }
            let applied: AppliedMeta = (meta_owned.last_log_id, meta_owned.last_membership.clone());
            batch.put_cf(cf, prefixed(replica, SM_APPLIED), encode(&applied));
            snapshot::publish(&db, replica, &dir, &lock, &meta_owned, &kept, Some(batch))?;
            Ok(state)
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot install task failed: {e}")))??;

        {
            let mut current = self.write_state();
            *current = state;
            if let Some((hub, group)) = &self.feed {
                current.record_changes();
                hub.reset_group(*group, meta.last_log_id.as_ref().map_or(0, |id| id.index));
            }
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        ReplicaStats::count(&self.stats.snapshots_installed);
        tracing::info!(last_log_id = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        snapshot::current(&self.db, self.replica, &self.snapshot_dir)
    }
}
