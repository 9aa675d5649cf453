//! A node whose wall clock the harness sets: libfaketime, preloaded.
//!
//! The node is started through `env LD_PRELOAD=libfaketimeMT.so.1 ...`, so
//! its `clock_gettime(CLOCK_REALTIME)` reads the offset in a file that the
//! harness rewrites (libfaketime re-reads it once a second: re-reading it
//! at every clock read, `FAKETIME_NO_CACHE`, slowed three busy nodes on two
//! cores enough that failovers in chaos runs took over 8 s). Its monotonic
//! clock is left alone (`FAKETIME_DONT_FAKE_MONOTONIC`): timers, timeouts
//! and Raft's election clock run true, as they do when a real wall clock is
//! stepped by an operator or drifts. Needs Debian's `faketime` package.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;

/// Where Debian's `libfaketime` puts its multi-threaded variant, under
/// `/usr/lib/<architecture triple>/`.
fn library() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.exists())
}

/// One node's faked clock: an offset from the true time.
#[derive(Debug)]
pub struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    /// Whether libfaketime is installed here.
    pub fn available() -> bool {
        library().is_some()
    }

    /// A clock reading true time, its offset kept in `file`.
    pub fn new(file: PathBuf) -> anyhow::Result<Self> {
        let clock = Self { file };
        clock.set_offset_secs(0)?;
        Ok(clock)
    }

    /// What to run the node with (see `LocalCluster::set_prefix`); `env`
    /// execs the node, so its pid stays the one the launcher signals.
    pub fn prefix(&self) -> Vec<OsString> {
        let mut file = OsString::from("FAKETIME_TIMESTAMP_FILE=");
        file.push(&self.file);
        let mut preload = OsString::from("LD_PRELOAD=");
        preload.push(library().unwrap_or_default());
        vec![
            "env".into(),
            preload,
            file,
            "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
            "FAKETIME_CACHE_DURATION=1".into(),
        ]
    }

    /// From within a second on, the node's wall clock reads the true time
    /// plus `secs` (either sign).
    pub fn set_offset_secs(&self, secs: i64) -> anyhow::Result<()> {
        self.set_offset_ms(secs.saturating_mul(1000))
    }

    /// [`FakeClock::set_offset_secs`] to the millisecond: many small steps
    /// make a drift.
    pub fn set_offset_ms(&self, ms: i64) -> anyhow::Result<()> {
        // libfaketime's relative form, in seconds with a fraction: "+3600",
        // "-0.250" (the decimal point of the C locale the nodes run in).
        let sign = if ms < 0 { '-' } else { '+' };
        let (whole, fraction) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{sign}{whole}.{fraction:03}\n"))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file).with_context(|| format!("cannot write {}", self.file.display()))
    }
}
