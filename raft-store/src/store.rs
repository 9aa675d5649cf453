//! Opening a node's RocksDB database and, on it, the two openraft storage
//! halves of each Raft replica the node hosts.
//!
//! One database per node, whatever the number of groups: one write-ahead log,
//! so one group-commit sync covers the appends of every group at once, and one
//! set of memtables and background jobs instead of one per group.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

use crate::flusher::{Flusher, WalStats};
use crate::keys::{MAX_REPLICA_ID, replica_end, replica_start};
use crate::log_store::LogStore;
use crate::state_machine::StateMachine;

pub const CF_LOG: &str = "log";
pub const CF_META: &str = "meta";
pub const CF_SM: &str = "sm";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: PathBuf, source: rocksdb::Error },
    #[error("cannot load the state machine from {path}: {source}")]
    Load { path: PathBuf, source: io::Error },
    #[error("replica id {0} is out of range")]
    BadReplica(u64),
}

/// Both storage halves of one Raft replica.
pub struct Store {
    pub log: LogStore,
    pub state_machine: StateMachine,
}

/// A node's database, shared by all its replicas.
#[derive(Clone)]
pub struct NodeStore {
    db: Arc<DB>,
    flusher: Flusher,
    dir: PathBuf,
}

impl NodeStore {
    /// Group-commit counters of the node's write-ahead log.
    pub fn wal_stats(&self) -> &Arc<WalStats> {
        self.flusher.stats()
    }

    /// The storage of replica `replica` (empty if it never existed). Snapshot
    /// files go to `dir/snapshots/replica-<id>`.
    pub fn replica(&self, replica: u64) -> Result<Store, StoreError> {
        if replica > MAX_REPLICA_ID {
            return Err(StoreError::BadReplica(replica));
        }
        let snapshot_dir = self.dir.join("snapshots").join(format!("replica-{replica}"));
        let state_machine = StateMachine::open(self.db.clone(), replica, snapshot_dir).map_err(|source| {
            StoreError::Load {
                path: self.dir.join("db"),
                source,
            }
        })?;
        Ok(Store {
            log: LogStore::new(self.db.clone(), self.flusher.clone(), replica),
            state_machine,
        })
    }

    /// Deletes everything of `replica`: its log, metadata, records and snapshot
    /// files. Only for a replica that no longer runs and was removed from its group.
    pub fn destroy_replica(&self, replica: u64) -> io::Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for name in [CF_LOG, CF_META, CF_SM] {
            let cf = self
                .db
                .cf_handle(name)
                .expect("column families are created at open");
            batch.delete_range_cf(cf, replica_start(replica), replica_end(replica));
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(crate::codec::db_err)?;
        let snapshot_dir = self.dir.join("snapshots").join(format!("replica-{replica}"));
        match std::fs::remove_dir_all(snapshot_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Opens (creating if needed) the node database under `dir`: RocksDB in
/// `dir/db`, snapshot files under `dir/snapshots`.
pub fn open(dir: &Path) -> Result<NodeStore, StoreError> {
    let db_path = dir.join("db");
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Two cores: one background job for flushes, one for compactions.
    opts.set_max_background_jobs(2);
    let cf = |name: &str| {
        let mut cf_opts = Options::default();
        cf_opts.set_write_buffer_size(32 << 20);
        ColumnFamilyDescriptor::new(name, cf_opts)
    };
    let db =
        DB::open_cf_descriptors(&opts, &db_path, [cf(CF_LOG), cf(CF_META), cf(CF_SM)]).map_err(|source| {
            StoreError::Open {
                path: db_path.clone(),
                source,
            }
        })?;
    let db = Arc::new(db);
    let disk = Arc::new(crate::disk_health::DiskHealth::from_env());
    let flusher = Flusher::start(db.clone(), disk).map_err(|source| StoreError::Load {
        path: db_path.clone(),
        source,
    })?;
    Ok(NodeStore {
        db,
        flusher,
        dir: dir.to_owned(),
    })
}
