//! Whether this node's wall clock may stamp commands.
//!
//! A leader puts its wall-clock time in every entry it proposes, and the
//! state machine's clock is the largest such time it has applied (it never
//! goes backwards). So one leader whose clock runs an hour fast would expire
//! every hold at once and drag the log's clock an hour forward for good. The
//! rule that prevents it is CockroachDB's `max-offset`: nodes measure their
//! clock offset from each other, and a node whose clock is further than the
//! configured maximum from a majority of its peers stops stamping anything
//! (its leaders refuse writes and hand their groups over) until it agrees
//! with them again.
//!
//! The offsets come from the liveness pings (`node::liveness`): each answer
//! carries the peer's wall clock, read while it answered. With `sent` and
//! `received` the pinger's own monotonic times, the peer read its clock at
//! some instant of the round trip, so its offset is
//! `peer_ms - (wall at sent + rtt / 2)`, give or take `rtt / 2`. An offset
//! counts as too far only when it is beyond the maximum by more than that
//! uncertainty: a slow network never makes a clock suspect.
//!
//! A jump of this node's own clock (someone set it, a VM resumed) is caught
//! sooner, on the write path itself: the difference between the wall clock
//! and the monotonic clock is remembered at every evaluation, and a write
//! that finds it moved by more than the maximum is refused at once. After a
//! jump the node stays suspect until a peer's answer shows its clock near.
//!
//! A node with no peers (a one-node cluster) has nothing to compare with and
//! is never suspect; a maximum of 0 turns the rule off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a measured offset counts (a few liveness intervals).
pub const SAMPLE_FRESH_FOR: Duration = Duration::from_secs(5);

/// One measurement of a peer's clock against this node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// The peer's clock minus this node's, in ms.
    pub offset_ms: i64,
    /// Half the round trip: the offset is right to within this.
    pub uncertainty_ms: u64,
}

impl Offset {
    /// From one ping: this node's wall clock when it sent, the round trip
    /// (monotonic), and the peer's wall clock in its answer.
    pub fn measure(sent_wall_ms: u64, rtt: Duration, peer_wall_ms: u64) -> Self {
        let half = u64::try_from(rtt.as_millis() / 2).unwrap_or(u64::MAX);
        let midpoint = sent_wall_ms.saturating_add(half);
        Self {
            offset_ms: clamp_i64(i128::from(peer_wall_ms) - i128::from(midpoint)),
            // +1: the clocks are read in whole milliseconds.
            uncertainty_ms: half.saturating_add(1),
        }
    }

    /// Whether the peer's clock is surely more than `max_ms` from ours.
    pub fn beyond(&self, max_ms: u64) -> bool {
        self.offset_ms.unsigned_abs() > max_ms.saturating_add(self.uncertainty_ms)
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset: Offset,
    at: Instant,
}

#[derive(Debug, Default)]
struct Samples {
    by_peer: HashMap<u64, Sample>,
    /// Set by a jump of this node's clock; cleared by the first sample after it.
    jumped: bool,
    /// Why the clock is suspect, for the log and `/health`.
    reason: Option<String>,
}

impl Samples {
    /// Every peer's last offset, by peer id.
    fn offsets(&self) -> Vec<(u64, Offset)> {
        let mut all: Vec<(u64, Offset)> = self.by_peer.iter().map(|(p, s)| (*p, s.offset)).collect();
        all.sort_by_key(|(p, _)| *p);
        all
    }
}

/// What an evaluation found (see [`ClockGuard::evaluate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockVerdict {
    pub suspect: bool,
    pub reason: Option<String>,
    /// Fresh offsets, by peer node.
    pub offsets: Vec<(u64, Offset)>,
}

/// A node's clock check, shared by its liveness loop (which measures) and
/// its leaders (which ask before stamping a write). Cheap to clone.
#[derive(Clone)]
pub struct ClockGuard {
    inner: Arc<Inner>,
}

struct Inner {
    /// 0: the rule is off.
    max_offset_ms: u64,
    suspect: AtomicBool,
    /// Wall minus monotonic (since `epoch`) at the last evaluation, in ms.
    baseline_ms: AtomicI64,
    epoch: Instant,
    samples: Mutex<Samples>,
}

impl std::fmt::Debug for ClockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockGuard")
            .field("max_offset_ms", &self.inner.max_offset_ms)
            .field("suspect", &self.inner.suspect.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClockGuard {
    /// A guard refusing writes when this node's clock is more than
    /// `max_offset_ms` from a majority of its peers (0: never).
    pub fn new(max_offset_ms: u64) -> Self {
        let epoch = Instant::now();
        Self {
            inner: Arc::new(Inner {
                max_offset_ms,
                suspect: AtomicBool::new(false),
                baseline_ms: AtomicI64::new(skew_ms(crate::wall_clock_ms(), Duration::ZERO)),
                epoch,
                samples: Mutex::new(Samples::default()),
            }),
        }
    }

    pub fn max_offset_ms(&self) -> u64 {
        self.inner.max_offset_ms
    }

    /// Records one peer's offset, measured now.
    pub fn record(&self, peer: u64, offset: Offset) {
        let mut samples = self.samples();
        samples.jumped = false;
        samples.by_peer.insert(
            peer,
            Sample {
                offset,
                at: Instant::now(),
            },
        );
    }

    /// Decides whether the clock is suspect from the fresh offsets of
    /// `peers` (every other node in the cluster map) and whether this node's
    /// own clock jumped since the last evaluation; the write path follows
    /// the verdict until the next one.
    pub fn evaluate(&self, peers: &[u64]) -> ClockVerdict {
        self.evaluate_at(
            peers,
            crate::wall_clock_ms(),
            self.inner.epoch.elapsed(),
            Instant::now(),
        )
    }

    fn evaluate_at(&self, peers: &[u64], wall_ms: u64, mono: Duration, now: Instant) -> ClockVerdict {
        let max = self.inner.max_offset_ms;
        let mut samples = self.samples();
        let skew = skew_ms(wall_ms, mono);
        let moved = skew - self.inner.baseline_ms.swap(skew, Ordering::Relaxed);
        if max > 0 && moved.unsigned_abs() > max {
            // Offsets measured before the jump say nothing about the clock now.
            samples.by_peer.clear();
            samples.jumped = true;
            tracing::warn!(moved_ms = moved, "this node's wall clock jumped");
        }
        samples
            .by_peer
            .retain(|peer, s| peers.contains(peer) && now.duration_since(s.at) < SAMPLE_FRESH_FOR);
        let offsets = samples.offsets();
        let far: Vec<&(u64, Offset)> = offsets.iter().filter(|(_, o)| o.beyond(max)).collect();
        let reason = if max == 0 || peers.is_empty() {
            None
        } else if far.len() * 2 > peers.len() {
            let worst = far
                .iter()
                .map(|(_, o)| o.offset_ms)
                .max_by_key(|o| o.unsigned_abs())
                .unwrap_or(0);
            Some(format!(
                "this node's clock is more than {max} ms from {} of its {} peers ({worst:+} ms from the furthest)",
                far.len(),
                peers.len()
            ))
        } else if samples.jumped {
            Some(format!(
                "this node's clock jumped by {moved:+} ms; waiting for a peer to confirm it"
            ))
        } else {
            None
        };
        let suspect = reason.is_some();
        let was = self.inner.suspect.swap(suspect, Ordering::Relaxed);
        if suspect && (!was || samples.reason != reason) {
            tracing::warn!(
                reason = reason.as_deref().unwrap_or_default(),
                "refusing to stamp writes with this node's clock and handing leadership over; \
                 groups with no other voter refuse writes until it is fixed: check NTP on this \
                 node (/health shows the offset to each peer)"
            );
        } else if !suspect && was {
            tracing::info!("this node's clock agrees with its peers again; writes resume");
        }
        samples.reason = reason.clone();
        ClockVerdict {
            suspect,
            reason,
            offsets,
        }
    }

    /// `Err(why)` if this node must not stamp a write with its clock now:
    /// the last evaluation found it suspect, or it jumped since.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(crate::wall_clock_ms(), self.inner.epoch.elapsed())
    }

    fn check_at(&self, wall_ms: u64, mono: Duration) -> Result<(), String> {
        let max = self.inner.max_offset_ms;
        if max == 0 {
            return Ok(());
        }
        if self.inner.suspect.load(Ordering::Relaxed) {
            return Err(self
                .samples()
                .reason
                .clone()
                .unwrap_or_else(|| "this node's clock is suspect".into()));
        }
        let moved = skew_ms(wall_ms, mono) - self.inner.baseline_ms.load(Ordering::Relaxed);
        if moved.unsigned_abs() > max {
            return Err(format!("this node's clock jumped by {moved:+} ms"));
        }
        Ok(())
    }

    /// Whether `peer`'s clock was last measured beyond the maximum from
    /// this node's: leadership is not handed to it.
    pub fn is_far(&self, peer: u64) -> bool {
        let max = self.inner.max_offset_ms;
        max > 0
            && self
                .samples()
                .by_peer
                .get(&peer)
                .is_some_and(|s| s.offset.beyond(max))
    }

    /// Whether the last evaluation found the clock suspect.
    pub fn is_suspect(&self) -> bool {
        self.inner.suspect.load(Ordering::Relaxed)
    }

    /// The fresh offsets and the verdict, without re-evaluating.
    pub fn snapshot(&self) -> ClockVerdict {
        let samples = self.samples();
        ClockVerdict {
            suspect: self.is_suspect(),
            reason: samples.reason.clone(),
            offsets: samples.offsets(),
        }
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.inner.samples.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wall-clock ms minus monotonic ms: constant while the clock runs true.
fn skew_ms(wall_ms: u64, mono: Duration) -> i64 {
    clamp_i64(i128::from(wall_ms) - i128::try_from(mono.as_millis()).unwrap_or(i128::MAX))
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    fn offset(ms: i64) -> Offset {
        Offset {
            offset_ms: ms,
            uncertainty_ms: 2,
        }
    }

    #[test]
    fn an_offset_is_the_peer_clock_against_the_round_trip_midpoint() {
        let o = Offset::measure(10_000, Duration::from_millis(40), 10_520);
        assert_eq!(o.offset_ms, 500);
        assert_eq!(o.uncertainty_ms, 21);
        assert!(!o.beyond(500));
        assert!(!o.beyond(480), "within the round trip's uncertainty");
        assert!(o.beyond(478));
        let behind = Offset::measure(10_000, Duration::ZERO, 9_000);
        assert_eq!(behind.offset_ms, -1_000);
        assert!(behind.beyond(500));
    }

    #[test]
    fn a_clock_far_from_a_majority_of_peers_is_suspect() {
        // The view of the fast node: both peers are an hour behind it.
        let fast = ClockGuard::new(500);
        fast.record(2, offset(-(HOUR_MS as i64)));
        fast.record(3, offset(-(HOUR_MS as i64)));
        let verdict = fast.evaluate(&[2, 3]);
        assert!(verdict.suspect, "{verdict:?}");
        assert!(fast.check().unwrap_err().contains("2 of its 2 peers"));

        // A good node sees one peer far and one near: not its fault.
        let good = ClockGuard::new(500);
        good.record(1, offset(HOUR_MS as i64));
        good.record(3, offset(30));
        assert!(!good.evaluate(&[1, 3]).suspect);
        assert_eq!(good.check(), Ok(()));

        // Back in line: suspicion ends at the next evaluation.
        fast.record(2, offset(10));
        fast.record(3, offset(-10));
        assert!(!fast.evaluate(&[2, 3]).suspect);
        assert_eq!(fast.check(), Ok(()));
    }

    #[test]
    fn one_far_peer_of_two_is_no_majority_but_two_of_three_is() {
        let guard = ClockGuard::new(500);
        guard.record(2, offset(900));
        guard.record(3, offset(0));
        assert!(!guard.evaluate(&[2, 3]).suspect);
        let guard = ClockGuard::new(500);
        for peer in [2, 3] {
            guard.record(peer, offset(-900));
        }
        guard.record(4, offset(0));
        assert!(guard.evaluate(&[2, 3, 4]).suspect);
    }

    #[test]
    fn a_jump_is_refused_at_once_and_until_a_peer_confirms() {
        let guard = ClockGuard::new(500);
        let mono = guard.inner.epoch.elapsed();
        let wall = crate::wall_clock_ms();
        guard.evaluate_at(&[2], wall, mono, Instant::now());
        assert_eq!(
            guard.check_at(wall + 100, mono + Duration::from_millis(100)),
            Ok(())
        );
        // Ten minutes forward in no monotonic time: refused on the write path.
        let jumped = wall + 600_000;
        let err = guard.check_at(jumped, mono).unwrap_err();
        assert!(err.contains("jumped by +600000 ms"), "{err}");
        // The next evaluation notices it too, and stays suspect without samples.
        guard.record(2, offset(0));
        let verdict = guard.evaluate_at(&[2], jumped, mono, Instant::now());
        assert!(verdict.suspect && verdict.offsets.is_empty(), "{verdict:?}");
        // A peer's answer measured after the jump settles it.
        guard.record(2, offset(3));
        assert!(!guard.evaluate_at(&[2], jumped, mono, Instant::now()).suspect);
        assert_eq!(guard.check_at(jumped, mono), Ok(()));
    }

    #[test]
    fn stale_samples_and_departed_peers_do_not_count() {
        let guard = ClockGuard::new(500);
        guard.record(2, offset(HOUR_MS as i64));
        guard.record(3, offset(HOUR_MS as i64));
        let later = Instant::now() + SAMPLE_FRESH_FOR;
        let verdict = guard.evaluate_at(
            &[2, 3],
            crate::wall_clock_ms(),
            guard.inner.epoch.elapsed(),
            later,
        );
        assert!(!verdict.suspect && verdict.offsets.is_empty(), "{verdict:?}");
        guard.record(2, offset(HOUR_MS as i64));
        assert!(!guard.evaluate(&[3]).suspect, "node 2 left the cluster");
    }

    #[test]
    fn a_lone_node_or_a_zero_maximum_is_never_suspect() {
        let lone = ClockGuard::new(500);
        assert!(!lone.evaluate(&[]).suspect);
        let off = ClockGuard::new(0);
        off.record(2, offset(HOUR_MS as i64));
        assert!(!off.evaluate(&[2]).suspect);
        assert_eq!(off.check_at(0, Duration::ZERO), Ok(()));
    }
}
