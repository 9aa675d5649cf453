//! Opening a node's RocksDB database and the two openraft storage halves on it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

use crate::flusher::{Flusher, WalStats};
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
}

/// Both storage halves of one Raft replica, sharing one database.
pub struct Store {
    pub log: LogStore,
    pub state_machine: StateMachine,
    /// Group-commit counters of this database's write-ahead log.
    pub wal_stats: Arc<WalStats>,
}

/// Opens (creating if needed) the database under `dir`: RocksDB in `dir/db`,
/// snapshot files in `dir/snapshots`.
pub fn open(dir: &Path) -> Result<Store, StoreError> {
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
    let load_err = |source| StoreError::Load {
        path: db_path.clone(),
        source,
    };
    let flusher = Flusher::start(db.clone()).map_err(load_err)?;
    let state_machine = StateMachine::open(db.clone(), dir.join("snapshots")).map_err(load_err)?;
    Ok(Store {
        wal_stats: flusher.stats().clone(),
        log: LogStore::new(db, flusher),
        state_machine,
    })
}
