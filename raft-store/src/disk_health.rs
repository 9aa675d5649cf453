//! Whether the node's disk can still be trusted to keep what it was given.
//!
//! A sync that failed leaves the kernel's page cache in an unknown state: the
//! pages it could not write may have been dropped and marked clean, so a
//! later sync can succeed without the data ever reaching the disk
//! (PostgreSQL's "fsyncgate", 2018). So one failure is final: every later
//! sync of this process is reported as failed too, openraft stops each
//! replica at its next write, and the node exits (`node::faults`). Restarted,
//! it reads back only what the disk really holds, and Raft fetches the rest
//! from the other replicas; nothing unsynced was ever acknowledged.
//!
//! **Failpoint.** With `BOXOFFICE_FAILPOINTS=<dir>` in its environment, a
//! node fails every sync while the file `<dir>/wal-sync` exists: the chaos
//! harness's stand-in for a disk that fails (a full disk cannot be faked on
//! a tmpfs, where RocksDB preallocates its log tens of megabytes ahead).
//! Without the variable nothing is looked up.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that arms the failpoints, naming their directory.
pub const FAILPOINTS_ENV: &str = "BOXOFFICE_FAILPOINTS";

/// The failpoint file that fails every sync while it exists.
pub const WAL_SYNC_FAILPOINT: &str = "wal-sync";

#[derive(Debug, Default)]
pub struct DiskHealth {
    failed: AtomicBool,
    /// `<dir>/wal-sync` when the failpoints are armed.
    failpoint: Option<PathBuf>,
}

impl DiskHealth {
    /// A healthy disk, with the failpoint armed if the environment says so.
    pub fn from_env() -> Self {
        let failpoint =
            std::env::var_os(FAILPOINTS_ENV).map(|dir| PathBuf::from(dir).join(WAL_SYNC_FAILPOINT));
        if let Some(path) = &failpoint {
            tracing::warn!(path = %path.display(), "disk failpoint armed: syncs fail while this file exists");
        }
        Self {
            failed: AtomicBool::new(false),
            failpoint,
        }
    }

    /// Runs `sync` unless the disk already failed (or the failpoint is set),
    /// and remembers a failure for good.
    pub fn sync<E: std::fmt::Display>(&self, sync: impl FnOnce() -> Result<(), E>) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an earlier sync failed: the disk is not trusted again until the node restarts",
            ));
        }
        let outcome = if self.failpoint.as_ref().is_some_and(|path| path.exists()) {
            Err(io::Error::other("sync failed: failpoint wal-sync is set"))
        } else {
            sync().map_err(|e| io::Error::other(format!("sync failed: {e}")))
        };
        if let Err(e) = &outcome
            && !self.failed.swap(true, Ordering::AcqRel)
        {
            tracing::error!(
                error = %e,
                "a sync failed: this node acknowledges no more writes and stops. Check the disk \
                 (kernel log, free space, the device's health), then start the node again: it keeps \
                 only what the disk holds and fetches the rest from its peers"
            );
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(disk: &DiskHealth) -> io::Result<()> {
        disk.sync(|| Ok::<(), String>(()))
    }

    #[test]
    fn one_failed_sync_fails_every_later_one() {
        let disk = DiskHealth::default();
        ok(&disk).unwrap();
        assert!(!disk.failed.load(Ordering::Acquire));
        assert!(disk.sync(|| Err("IO error: No space left on device")).is_err());
        assert!(disk.failed.load(Ordering::Acquire));
        // The disk now answers fine, but its word is no longer taken.
        let mut ran = false;
        assert!(
            disk.sync(|| {
                ran = true;
                Ok::<(), String>(())
            })
            .is_err()
        );
        assert!(!ran, "a sync after a failure is not even tried");
    }

    #[test]
    fn the_failpoint_fails_syncs_while_its_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskHealth {
            failed: AtomicBool::new(false),
            failpoint: Some(dir.path().join(WAL_SYNC_FAILPOINT)),
        };
        ok(&disk).unwrap();
        std::fs::write(dir.path().join(WAL_SYNC_FAILPOINT), b"").unwrap();
        let mut ran = false;
        let failed = disk.sync(|| {
            ran = true;
            Ok::<(), String>(())
        });
        assert!(failed.is_err() && !ran, "{failed:?}");
        std::fs::remove_file(dir.path().join(WAL_SYNC_FAILPOINT)).unwrap();
        assert!(ok(&disk).is_err(), "and it stays failed");
    }
}
