//! State-machine snapshots as files built from a consistent RocksDB view.
//!
//! A snapshot file holds every record of one replica's range of the `sm`
//! column family as it stood at one applied log id, with keys stripped of the
//! replica prefix (so another replica of the group can install it); the log id and membership travel beside it in
//! openraft's `SnapshotMeta`. Layout (all integers big-endian):
//!
//! ```text
//! "BOXSNAP\0"  u32 version=1
//! repeated:    u32 key_len, key, u32 value_len, value
//! trailer:     u32 0xFFFF_FFFF, u64 record_count, [u8; 32] SHA-256 of all bytes before the trailer
//! ```
//!
//! A file that fails its checksum or count is refused whole; installing never
//! starts from a partial file. Building reads a RocksDB snapshot taken by the
//! state-machine task between two applies, so the file matches its log id
//! exactly while applies continue.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::RaftSnapshotBuilder;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use sha2::{Digest, Sha256};

use crate::codec::{corrupt, db_err, decode, encode};
use crate::keys::{META_SNAPSHOT, SM_RECORDS_START, prefixed, unprefixed};
use crate::store::{CF_META, CF_SM};
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

const MAGIC: &[u8; 8] = b"BOXSNAP\0";
const VERSION: u32 = 1;
const TRAILER_MARK: u32 = u32::MAX;
/// Largest key or value we accept from a file: a guard against a corrupt
/// length making us allocate gigabytes.
const MAX_ITEM: u32 = 64 << 20;

/// The data of one snapshot: a verified-on-read file on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
}

/// Where a snapshot received from a leader is written before it is installed.
/// `tag` must be unique among concurrent transfers (the caller picks it).
pub fn incoming_path(dir: &Path, tag: &str) -> PathBuf {
    let safe: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("incoming-{safe}.snap"))
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `records` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_file(
    path: &Path,
    records: impl Iterator<Item = io::Result<(Box<[u8]>, Box<[u8]>)>>,
) -> io::Result<u64> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp)?;
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_be_bytes())?;
    let mut count = 0u64;
    for record in records {
        let (key, value) = record?;
        for part in [&key, &value] {
            let len = u32::try_from(part.len()).map_err(|_| corrupt("record too large".into()))?;
            w.write_all(&len.to_be_bytes())?;
            w.write_all(part)?;
        }
        count += 1;
    }
    let digest = w.hasher.finalize();
    let mut inner = w.inner;
    inner.write_all(&TRAILER_MARK.to_be_bytes())?;
    inner.write_all(&count.to_be_bytes())?;
    inner.write_all(&digest)?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(count)
}

/// Reads a snapshot file while hashing what it reads.
struct VerifyingReader<'a> {
    inner: BufReader<File>,
    hasher: Sha256,
    path: &'a Path,
}

impl VerifyingReader<'_> {
    fn take(&mut self, n: usize, hash: bool) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| corrupt(format!("snapshot {} truncated: {e}", self.path.display())))?;
        if hash {
            self.hasher.update(&buf);
        }
        Ok(buf)
    }

    fn take_u32(&mut self, hash: bool) -> io::Result<u32> {
        let bytes = self.take(4, hash)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
    }
}

/// Reads and verifies a whole snapshot file.
pub fn read_file(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut r = VerifyingReader {
        inner: BufReader::with_capacity(1 << 20, File::open(path)?),
        hasher: Sha256::new(),
        path,
    };
    let header = r.take(12, true)?;
    if &header[..8] != MAGIC || header[8..12] != VERSION.to_be_bytes() {
        return Err(corrupt(format!(
            "{} is not a version-1 boxoffice snapshot",
            path.display()
        )));
    }
    let mut records = Vec::new();
    loop {
        let key_len = r.take_u32(false)?;
        if key_len == TRAILER_MARK {
            break;
        }
        r.hasher.update(key_len.to_be_bytes());
        if key_len > MAX_ITEM {
            return Err(corrupt("snapshot key length out of range".into()));
        }
        let key = r.take(key_len as usize, true)?;
        let value_len = r.take_u32(true)?;
        if value_len > MAX_ITEM {
            return Err(corrupt("snapshot value length out of range".into()));
        }
        let value = r.take(value_len as usize, true)?;
        records.push((key, value));
    }
    let count = u64::from_be_bytes(r.take(8, false)?.try_into().expect("8 bytes"));
    let digest = r.take(32, false)?;
    let expected = r.hasher.finalize();
    if count != records.len() as u64 || digest.as_slice() != expected.as_slice() {
        return Err(corrupt(format!("snapshot {} fails its checksum", path.display())));
    }
    Ok(records)
}

/// The stored description of the current snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    file_name: String,
}

/// Returns the latest snapshot this replica built or installed.
pub(crate) fn current(db: &DB, replica: u64, dir: &Path) -> io::Result<Option<Snapshot>> {
    let cf = db.cf_handle(CF_META).expect("meta column family");
    let Some(bytes) = db.get_cf(cf, prefixed(replica, META_SNAPSHOT)).map_err(db_err)? else {
        return Ok(None);
    };
    let current: CurrentSnapshot = decode(&bytes)?;
    Ok(Some(Snapshot {
        meta: current.meta,
        snapshot: SnapshotFile {
            path: dir.join(current.file_name),
        },
    }))
}

/// Serialises every change of the current snapshot: a build runs in its own
/// task and may finish while an install is under way.
pub(crate) type PublishLock = Arc<Mutex<()>>;

/// Makes `file` (already inside `dir`) the current snapshot.
///
/// `state` is written in the same synced batch as the new current-snapshot
/// record, so an install's state and its snapshot record change together.
/// Without `state` (a freshly built snapshot) the file is published only if it
/// is newer than the current one; a build that lost the race to an install
/// deletes its own file instead and returns `false`.
pub(crate) fn publish(
    db: &DB,
    replica: u64,
    dir: &Path,
    lock: &PublishLock,
    meta: &SnapshotMeta,
    file: &Path,
    state: Option<WriteBatch>,
) -> io::Result<bool> {
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| corrupt(format!("bad snapshot path {}", file.display())))?
        .to_owned();
    let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    if state.is_none()
        && let Some(current) = current(db, replica, dir)?
        && current.meta.last_log_id >= meta.last_log_id
    {
        let _ = fs::remove_file(file);
        return Ok(false);
    }
    let cf = db.cf_handle(CF_META).expect("meta column family");
    let mut batch = state.unwrap_or_default();
    let value = encode(&CurrentSnapshot {
        meta: meta.clone(),
        file_name: file_name.clone(),
    });
    batch.put_cf(cf, prefixed(replica, META_SNAPSHOT), value);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts).map_err(db_err)?;
    for old in fs::read_dir(dir)? {
        let old = old?;
        let name = old.file_name();
        // Only finished snapshot files: a build's `.tmp` may be in progress.
        let finished = name
            .to_str()
            .is_some_and(|n| n.starts_with("snap-") && n.ends_with(".snap"));
        if finished && name.to_str() != Some(file_name.as_str()) {
            // A follower may still be streaming the old file: on Unix an
            // unlinked file stays readable through handles already open.
            let _ = fs::remove_file(old.path());
        }
    }
    Ok(true)
}

/// Moves or copies a verified snapshot file into `dir` under a durable name.
/// A file that already is one of ours stays where it is.
pub(crate) fn adopt_file(dir: &Path, file: &Path, index: u64) -> io::Result<PathBuf> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let in_dir = file.parent() == Some(dir);
    if in_dir && name.starts_with("snap-") && name.ends_with(".snap") {
        return Ok(file.to_owned());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let kept = dir.join(format!("snap-{index}-{nanos}.snap"));
    if in_dir {
        fs::rename(file, &kept)?;
    } else {
        fs::copy(file, &kept)?;
        File::open(&kept)?.sync_all()?;
    }
    File::open(dir)?.sync_all()?;
    Ok(kept)
}

/// A RocksDB snapshot that owns a handle to its database.
///
/// The `rocksdb` crate ties a snapshot's lifetime to a borrow of the database;
/// a snapshot builder must outlive the state-machine call that creates it, so
/// we keep the database alive with an `Arc` and erase the borrow.
pub(crate) struct PinnedSnapshot {
    // Field order matters: the snapshot is released before the database handle.
    snapshot: rocksdb::Snapshot<'static>,
    db: Arc<DB>,
}

impl PinnedSnapshot {
    #[allow(
        unsafe_code,
        reason = "extends a RocksDB snapshot borrow that the owned Arc<DB> keeps valid"
    )]
    pub(crate) fn new(db: Arc<DB>) -> Self {
        let snapshot = db.snapshot();
        // SAFETY: the snapshot borrows `*db`, which lives in the heap allocation
        // owned by the `Arc` stored next to it. That allocation never moves and
        // outlives the snapshot, because the snapshot field is dropped first.
        let snapshot =
            unsafe { std::mem::transmute::<rocksdb::Snapshot<'_>, rocksdb::Snapshot<'static>>(snapshot) };
        Self { snapshot, db }
    }
}

/// Builds a snapshot file from a [`PinnedSnapshot`] off the async runtime.
pub struct SnapshotBuilder {
    pub(crate) pinned: Option<PinnedSnapshot>,
    pub(crate) replica: u64,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    pub(crate) dir: PathBuf,
    pub(crate) publish_lock: PublishLock,
    pub(crate) stats: std::sync::Arc<crate::ReplicaStats>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let pinned = self
            .pinned
            .take()
            .ok_or_else(|| io::Error::other("snapshot builder used twice"))?;
        let last_applied = self.last_applied;
        let index = last_applied.as_ref().map_or(0, |id| id.index);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let snapshot_id = format!("{index}-{nanos}");
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: self.membership.clone(),
        };
        let dir = self.dir.clone();
        let lock = self.publish_lock.clone();
        let replica = self.replica;
        let path = dir.join(format!("snap-{snapshot_id}.snap"));
        let meta_for_task = meta.clone();
        let built = tokio::task::spawn_blocking(move || -> io::Result<SnapshotFile> {
            let db = pinned.db.clone();
            let cf = db.cf_handle(CF_SM).expect("sm column family");
            let start = prefixed(replica, SM_RECORDS_START);
            let iter = pinned
                .snapshot
                .iterator_cf_opt(
                    cf,
                    crate::state_machine::replica_range(replica),
                    IteratorMode::From(&start, Direction::Forward),
                )
                .map(|item| {
                    let (key, value) = item.map_err(db_err)?;
                    let key: Box<[u8]> = unprefixed(replica, &key)?.into();
                    Ok((key, value))
                });
            let count = write_file(&path, iter)?;
            drop(pinned);
            if publish(&db, replica, &dir, &lock, &meta_for_task, &path, None)? {
                tracing::info!(snapshot = %snapshot_id, records = count, "snapshot built");
            } else {
                tracing::info!(snapshot = %snapshot_id, "snapshot built but a newer one was installed meanwhile");
            }
            Ok(SnapshotFile { path })
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))??;
        crate::ReplicaStats::count(&self.stats.snapshots_built);
        Ok(Snapshot {
            meta,
            snapshot: built,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type RawRecord = io::Result<(Box<[u8]>, Box<[u8]>)>;

    fn records(n: u8) -> impl Iterator<Item = RawRecord> {
        (0..n).map(|i| {
            Ok((
                vec![0x10, i].into_boxed_slice(),
                vec![i; i as usize].into_boxed_slice(),
            ))
        })
    }

    #[test]
    fn a_written_file_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap-1.snap");
        assert_eq!(write_file(&path, records(20)).unwrap(), 20);
        let back = read_file(&path).unwrap();
        assert_eq!(back.len(), 20);
        assert_eq!(back[7], (vec![0x10, 7], vec![7; 7]));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn any_flipped_or_missing_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap-2.snap");
        write_file(&path, records(5)).unwrap();
        let good = fs::read(&path).unwrap();
        for at in [0, 9, 14, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            let err = read_file(&path).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidData,
                "flip at byte {at} not caught"
            );
        }
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert_eq!(read_file(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
