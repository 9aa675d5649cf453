//! A linearizability checker for the seat histories the chaos clients record, and the
//! whole-history invariants that go with it.
//!
//! Clients record every operation they issue on seats ([`Op`]) with the time it was
//! invoked, the time its reply arrived (one clock for all clients) and what the reply
//! said ([`Outcome`]). [`check`] decides whether such a [`History`] could have been
//! produced by one seat map that applies each operation atomically at some instant
//! between its invocation and its completion (linearizability, Herlihy & Wing), and
//! checks invariants that hold over the whole history: no oversell, no acknowledged
//! booking lost, no sale from nowhere. [`count_check`] checks a final seat count.
//!
//! # The model
//!
//! Every seat starts [`SeatStatus::Available`]. Per seat:
//!
//! * `Hold h` of seats `S` takes every seat of `S` from `Available` to `Held(h)`, all of
//!   them at one instant and only if every one is `Available` at that instant;
//!   otherwise it fails and changes nothing.
//! * `Confirm h` turns the seats that are `Held(h)` into `Sold(h)`; `Sold` is final.
//!   On a seat that is not `Held(h)` it does nothing. An *acknowledged* confirm needs
//!   every seat of `h` to be `Held(h)` (or already `Sold(h)`, for a repeated confirm).
//! * `Release h` turns the seats that are `Held(h)` back into `Available`; elsewhere it
//!   does nothing.
//! * `Read` returns the seat's status at its linearization point.
//! * A hold listed in [`History::expirable`] may expire at any moment after it took
//!   effect: its held seats silently become `Available`. A confirm of an expired hold
//!   fails and changes nothing.
//!
//! What each outcome asserts: an acknowledged operation took effect once, at some
//! instant between its invocation and its completion. A failed operation had no
//! effect; a failed hold of a *single* seat also says that the seat was not
//! `Available` at some instant of its interval. A failed hold of several seats only says
//! that one of them was not available, which is a claim about several seats at once;
//! the per-seat check ignores it (no effect, no constraint). Failed confirms, releases
//! and reads assert nothing.
//!
//! Operation `a` precedes operation `b` in real time when `a` completed strictly before
//! `b` was invoked; operations whose intervals touch or overlap are concurrent and may
//! be linearized in either order.
//!
//! # Per-seat projection, and why it is sound
//!
//! [`check`] splits the history by seat. Each operation is projected onto the seats it
//! touches: a hold onto its seats, a confirm or release of hold `h` onto the seats of
//! `h` as listed by the `Hold` entries of `h` (onto no seat if there is none), a read
//! onto its seat. The projection of an operation onto one seat asks *less* than the
//! operation does: it keeps the operation's real-time interval and its effect on that
//! seat, and drops everything that concerns several seats at once (that the seats of a
//! hold change together, that a failed multi-seat hold met one unavailable seat, that a
//! hold expires on all its seats at once).
//!
//! If the whole history is linearizable, take its linearization and keep only the
//! operations that touch seat `s`: it respects real time, and each kept operation sees
//! and produces exactly the statuses of `s` it did in the whole linearization, so it is
//! a valid linearization of the projection onto `s`. Hence a linearizable history
//! projects to linearizable per-seat histories, and **a seat whose projection is not
//! linearizable is a real violation** (the per-seat check has no false alarms). The
//! converse does not hold: some multi-seat anomalies are invisible per seat (see
//! *Limitations*); a torn multi-seat hold is still caught as soon as a later operation
//! on one of its seats contradicts it.
//!
//! # Unknown outcomes and expiry
//!
//! The search runs on a *set* of possible statuses rather than a single status, as
//! Porcupine does for nondeterministic models. Applying an operation maps every
//! possible status and keeps those that satisfy the operation's constraints; an
//! operation can be linearized at a point when the resulting set is not empty.
//!
//! * An operation with an unknown outcome (timeout, connection lost) may have taken
//!   effect at any instant after its invocation, or never. It gets an infinite
//!   completion time, so it never forces anything to follow it, and its step yields
//!   the union of "it took effect here" and "it did not take effect". It need not be
//!   linearized at all: a search that has placed every operation with a definite
//!   outcome succeeds, the remaining unknown ones being placed at the end as no-ops.
//! * Expiry is closed over after every step: when some possible status is `Held(h)`
//!   with `h` expirable, `Available` is possible too. This covers an expiry at any
//!   instant between two linearized operations.
//!
//! # The search
//!
//! Per seat, this is the algorithm of Wing & Gong with Lowe's memoization, as in the
//! Porcupine checker. Operations are sorted by invocation and kept in a doubly linked
//! list of those not yet linearized. An operation may be linearized next when no
//! pending operation completed before it was invoked; these candidates form a prefix of
//! the list. The search tries them in order, linearizes the first one that fits and
//! whose resulting configuration (set of linearized operations as a bitset, set of
//! possible statuses) has not been seen before, and backtracks when no candidate fits.
//! Seen configurations are remembered, so each is explored once. The search uses an
//! explicit stack (no recursion, so long histories cannot overflow the thread's
//! stack) and stops after a budget of steps with [`Verdict::Unknown`].
//!
//! One reduction keeps read-heavy histories cheap: an operation that may come next and
//! leaves the possible statuses unchanged while it could only narrow them anywhere
//! later (a read or failed hold every possible status satisfies; anything without
//! effect once the seat can only be sold) is linearized at once, without trying the
//! alternatives, since any successful continuation can be rearranged to start with it.
//! Without it, one write linearized too early makes the search try every subset of the
//! reads concurrent with it before backtracking.
//!
//! When a seat is not linearizable, its [`Evidence`] records the deepest point the
//! search reached: the longest prefix it could linearize and the operations none of
//! which could come next there.
//!
//! # Invariants
//!
//! Besides linearizability, [`Report::invariant_violations`] lists breaches of:
//!
//! * no oversell: no seat is sold to two different holds, counting acknowledged
//!   confirms, reads that returned `Sold` and the final state;
//! * no acknowledged booking lost: every seat of an acknowledged confirm of `h` is
//!   `Sold(h)` in the final state, when that state is known;
//! * no sale (or hold) from nowhere: every `Sold(h)` observed by a read or in the final
//!   state is explained by an acknowledged or unknown confirm of `h` covering the seat,
//!   and every observed `Held(h)` by such a hold `h`;
//! * a well-formed history (completion times, read results, unique hold ids).
//!
//! The final state is either given ([`check_final`]) or taken from the reads that were
//! invoked after every write with a definite outcome had completed
//! ([`final_state_from_reads`]).
//!
//! # Limitations
//!
//! * Multi-seat atomicity is checked only through its per-seat consequences; a failed
//!   multi-seat hold is not checked at all.
//! * Hold ids must be unique per `Hold` entry (a retried hold needs a new id, or its
//!   retries must be recorded as one entry); duplicates are reported as malformed.
//! * Every seat is assumed `Available` before the history starts.
//! * The search is exponential in the worst case, notably with many unknown
//!   operations concurrent with a contradiction; the step budget (per seat) bounds it,
//!   and memory grows with the number of steps (one memo entry per successful step).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::{self, Write as _};

/// The id of a hold, unique per `Hold` entry of a history.
pub type HoldId = u64;

/// The budget of [`check`] and [`check_final`]: steps of the search, per seat.
pub const DEFAULT_MAX_STEPS: u64 = 1_000_000;

/// The completion time of an operation that may take effect at any time.
const NEVER: u64 = u64::MAX;

/// How many operations or sources an explanation lists before it says "and N more".
const MAX_LISTED: usize = 8;

/// The status of one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeatStatus {
    /// Free to be held.
    Available,
    /// Held by the hold, until it is confirmed, released or expires.
    Held(HoldId),
    /// Sold to the hold. Final.
    Sold(HoldId),
}

/// An operation a client issued.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Hold these seats atomically for hold `hold` (all or none).
    Hold {
        /// The new hold's id.
        hold: HoldId,
        /// The seats it takes.
        seats: Vec<String>,
    },
    /// Confirm (pay for) hold `hold`: its held seats become sold.
    Confirm {
        /// The hold confirmed.
        hold: HoldId,
    },
    /// Release hold `hold`: its held seats become available.
    Release {
        /// The hold released.
        hold: HoldId,
    },
    /// A linearizable read of one seat's status.
    Read {
        /// The seat read.
        seat: String,
    },
}

/// What the client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Acknowledged. For Read, carries the status read (`Some`); None for the others.
    Ok(Option<SeatStatus>),
    /// A definite failure: the operation had no effect.
    Failed,
    /// The client does not know (timeout, connection lost): it may have taken effect at
    /// any time after invoke, or never.
    Unknown,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The client that issued it (used in explanations only).
    pub client: u64,
    /// When the client sent it, in microseconds on the clock all clients share.
    pub invoke_us: u64,
    /// When the reply arrived; `None` for [`Outcome::Unknown`] (and ignored for it).
    pub complete_us: Option<u64>,
    /// What it asked for.
    pub op: Op,
    /// What the client was told.
    pub outcome: Outcome,
}

/// Everything the clients recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every operation of every client, in any order.
    pub entries: Vec<Entry>,
    /// Holds the server may expire on its own (a TTL): their held seats may become
    /// `Available` at any moment after the hold took effect.
    pub expirable: BTreeSet<HoldId>,
}

/// The result of checking one seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some linearization of the seat's operations fits the model.
    Linearizable,
    /// None does.
    Violation(Evidence),
    /// The search ran out of its budget after `steps` steps without deciding.
    Unknown {
        /// The steps taken (the budget).
        steps: u64,
    },
}

/// Why a seat is not linearizable: the deepest point the search reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The seat whose operations cannot be linearized.
    pub seat: String,
    /// The longest prefix of ops (indices into `history.entries`) that could be
    /// linearized, in linearization order.
    pub linearized: Vec<usize>,
    /// The ops (indices) none of which could be placed next.
    pub stuck_at: Vec<usize>,
    /// The same, in words, with the statuses the seat could have at that point.
    pub explanation: String,
}

/// The result of a check: one verdict per seat and the invariants broken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every seat named in the history.
    pub seats: BTreeMap<String, Verdict>,
    /// Whole-history invariants broken, one sentence each.
    pub invariant_violations: Vec<String>,
}

impl Report {
    /// True when every seat is linearizable and no invariant is broken. An undecided
    /// seat ([`Verdict::Unknown`]) is not ok.
    pub fn ok(&self) -> bool {
        self.invariant_violations.is_empty() && self.seats.values().all(|v| *v == Verdict::Linearizable)
    }

    /// True when a violation was found (as opposed to a seat left undecided).
    pub fn violated(&self) -> bool {
        !self.invariant_violations.is_empty() || self.violations().next().is_some()
    }

    /// The evidence of every seat that is not linearizable.
    pub fn violations(&self) -> impl Iterator<Item = &Evidence> {
        self.seats.values().filter_map(|verdict| match verdict {
            Verdict::Violation(evidence) => Some(evidence),
            _ => None,
        })
    }

    /// A human-readable account: counts, then every violation and undecided seat.
    pub fn summary(&self) -> String {
        let violations = self.violations().count();
        let undecided = self
            .seats
            .values()
            .filter(|v| matches!(v, Verdict::Unknown { .. }))
            .count();
        let linearizable = self.seats.len() - violations - undecided;
        let mut text = format!(
            "{} seat(s): {linearizable} linearizable, {violations} not linearizable, {undecided} undecided; \
             {} invariant violation(s)",
            self.seats.len(),
            self.invariant_violations.len()
        );
        for (seat, verdict) in &self.seats {
            match verdict {
                Verdict::Linearizable => {}
                Verdict::Violation(evidence) => {
                    let _ = write!(text, "\n{}", evidence.explanation);
                }
                Verdict::Unknown { steps } => {
                    let _ = write!(
                        text,
                        "\nseat {seat}: undecided, the search stopped after {steps} steps"
                    );
                }
            }
        }
        for violation in &self.invariant_violations {
            let _ = write!(text, "\ninvariant: {violation}");
        }
        text
    }
}

/// Checks `history` with the default budget; the final state comes from the reads
/// at its end ([`final_state_from_reads`]).
pub fn check(history: &History) -> Report {
    check_with_budget(history, DEFAULT_MAX_STEPS)
}

/// [`check`] with a budget of `max_steps` search steps per seat.
pub fn check_with_budget(history: &History, max_steps: u64) -> Report {
    let statuses = final_state_from_reads(history);
    let final_state = FinalState {
        statuses: &statuses,
        source: "final read",
        complete: false,
    };
    run(history, &final_state, max_steps)
}

/// Checks `history` against an explicitly known final state (every seat's status
/// after all operations, e.g. read from the cluster once it is quiet). A seat with an
/// acknowledged confirm that is missing from `final_state` counts as a lost booking.
pub fn check_final(history: &History, final_state: &BTreeMap<String, SeatStatus>) -> Report {
    check_final_with_budget(history, final_state, DEFAULT_MAX_STEPS)
}

/// [`check_final`] with a budget of `max_steps` search steps per seat.
pub fn check_final_with_budget(
    history: &History,
    final_state: &BTreeMap<String, SeatStatus>,
    max_steps: u64,
) -> Report {
    let final_state = FinalState {
        statuses: final_state,
        source: "final state",
        complete: true,
    };
    run(history, &final_state, max_steps)
}

/// The final status of each seat that was read at the end of the history: the last
/// acknowledged read of the seat among those invoked after every write with a definite
/// outcome had completed. Reads and unknown operations do not delay it (reads change
/// nothing, so a final sweep of concurrent reads counts; an unknown operation may
/// still land later, which is why only the last such read of a seat is used).
pub fn final_state_from_reads(history: &History) -> BTreeMap<String, SeatStatus> {
    let last_write = history
        .entries
        .iter()
        .filter(|e| !matches!(e.op, Op::Read { .. }) && e.outcome != Outcome::Unknown)
        .map(|e| e.complete_us.unwrap_or(NEVER))
        .max();
    let mut latest: BTreeMap<&str, (u64, usize, SeatStatus)> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        let (Op::Read { seat }, Outcome::Ok(Some(status))) = (&entry.op, entry.outcome) else {
            continue;
        };
        if last_write.is_some_and(|write| entry.invoke_us <= write) {
            continue;
        }
        let candidate = (entry.invoke_us, index, status);
        let slot = latest.entry(seat).or_insert(candidate);
        if (candidate.0, candidate.1) > (slot.0, slot.1) {
            *slot = candidate;
        }
    }
    latest
        .into_iter()
        .map(|(seat, (_, _, status))| (seat.to_string(), status))
        .collect()
}

/// Checks that the final state counts `capacity` seats:
/// `available + held + sold == capacity`.
///
/// # Errors
///
/// The three counts and their total, when the total is not `capacity`.
pub fn count_check(final_state: &BTreeMap<String, SeatStatus>, capacity: usize) -> Result<(), String> {
    let (mut available, mut held, mut sold) = (0usize, 0usize, 0usize);
    for status in final_state.values() {
        match status {
            SeatStatus::Available => available += 1,
            SeatStatus::Held(_) => held += 1,
            SeatStatus::Sold(_) => sold += 1,
        }
    }
    let total = available + held + sold;
    if total == capacity {
        Ok(())
    } else {
        Err(format!(
            "capacity is {capacity} but the final state has {available} available + {held} held + \
             {sold} sold = {total} seat(s)"
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Running a check
// ---------------------------------------------------------------------------------------

/// The final state the invariants are checked against.
struct FinalState<'a> {
    statuses: &'a BTreeMap<String, SeatStatus>,
    /// How explanations name it.
    source: &'static str,
    /// Whether it lists every seat (a missing seat is then an error).
    complete: bool,
}

fn run(history: &History, final_state: &FinalState<'_>, max_steps: u64) -> Report {
    let holds = HoldSeats::of(history);
    let seats = project(history, &holds)
        .into_iter()
        .map(|(seat, ops)| {
            let verdict = check_seat(history, &seat, &ops, max_steps);
            (seat, verdict)
        })
        .collect();
    let invariant_violations = invariants(history, &holds, final_state);
    Report {
        seats,
        invariant_violations,
    }
}

/// The seats of every hold, as listed by its `Hold` entries.
struct HoldSeats(BTreeMap<HoldId, BTreeSet<String>>);

impl HoldSeats {
    fn of(history: &History) -> Self {
        let mut seats: BTreeMap<HoldId, BTreeSet<String>> = BTreeMap::new();
        for entry in &history.entries {
            if let Op::Hold { hold, seats: listed } = &entry.op {
                seats.entry(*hold).or_default().extend(listed.iter().cloned());
            }
        }
        HoldSeats(seats)
    }

    /// The seats of `hold`; none if no `Hold` entry names it.
    fn seats(&self, hold: HoldId) -> impl Iterator<Item = &String> {
        self.0.get(&hold).into_iter().flatten()
    }

    fn covers(&self, hold: HoldId, seat: &str) -> bool {
        self.0.get(&hold).is_some_and(|seats| seats.contains(seat))
    }
}

// ---------------------------------------------------------------------------------------
// Projection onto seats
// ---------------------------------------------------------------------------------------

/// What one operation does to one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Needs `Available`, makes `Held(h)`.
    Hold(HoldId),
    /// A failed single-seat hold: needs anything but `Available`, changes nothing.
    Refused,
    /// Needs `Held(h)` or `Sold(h)`, makes `Sold(h)`.
    Confirm(HoldId),
    /// Makes `Held(h)` `Available`, leaves anything else.
    Release(HoldId),
    /// Needs exactly this status.
    Read(SeatStatus),
}

impl Action {
    /// The status after the action, when it succeeds from `status`; `None` when its
    /// constraint rules `status` out.
    fn apply(self, status: SeatStatus) -> Option<SeatStatus> {
        use SeatStatus::{Available, Held, Sold};
        match (self, status) {
            (Action::Hold(hold), Available) => Some(Held(hold)),
            (Action::Hold(_), _) => None,
            (Action::Refused, Available) => None,
            (Action::Refused, other) => Some(other),
            (Action::Confirm(hold), Held(h) | Sold(h)) if h == hold => Some(Sold(hold)),
            (Action::Confirm(_), _) => None,
            (Action::Release(hold), Held(h)) if h == hold => Some(Available),
            (Action::Release(_), other) => Some(other),
            (Action::Read(read), actual) => (read == actual).then_some(actual),
        }
    }
}

/// One operation of the history projected onto one seat.
#[derive(Debug, Clone)]
struct SeatOp {
    /// Its index in `history.entries`.
    entry: usize,
    invoke: u64,
    /// [`NEVER`] for an unknown outcome.
    complete: u64,
    action: Action,
    /// Definite outcome: it must be linearized, with its effect. An uncertain one may
    /// take effect or not, and may be left out.
    certain: bool,
}

/// Every seat named in the history, with the operations projected onto it, sorted by
/// invocation.
fn project(history: &History, holds: &HoldSeats) -> BTreeMap<String, Vec<SeatOp>> {
    let mut per_seat: BTreeMap<String, Vec<SeatOp>> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        for seat in named_seats(&entry.op) {
            per_seat.entry(seat.clone()).or_default();
        }
        let (invoke, complete) = interval(entry);
        for (seat, action, certain) in project_entry(entry, holds) {
            let op = SeatOp {
                entry: index,
                invoke,
                complete,
                action,
                certain,
            };
            per_seat.entry(seat.to_string()).or_default().push(op);
        }
    }
    for ops in per_seat.values_mut() {
        ops.sort_by_key(|op| (op.invoke, op.complete, op.entry));
    }
    per_seat
}

/// The seats an operation names itself (not those of the hold it confirms).
fn named_seats(op: &Op) -> &[String] {
    match op {
        Op::Hold { seats, .. } => seats,
        Op::Read { seat } => std::slice::from_ref(seat),
        Op::Confirm { .. } | Op::Release { .. } => &[],
    }
}

/// Invocation and completion; an unknown outcome never completes, and a definite one
/// recorded without a completion (malformed) is treated the same way.
fn interval(entry: &Entry) -> (u64, u64) {
    let complete = match entry.outcome {
        Outcome::Unknown => NEVER,
        Outcome::Ok(_) | Outcome::Failed => entry.complete_us.map_or(NEVER, |c| c.max(entry.invoke_us)),
    };
    (entry.invoke_us, complete)
}

/// The (seat, action, certain) triples of one entry; operations with neither an
/// effect nor a constraint on a seat are left out.
fn project_entry<'h>(entry: &'h Entry, holds: &'h HoldSeats) -> Vec<(&'h str, Action, bool)> {
    let certain = match entry.outcome {
        Outcome::Ok(_) => true,
        Outcome::Unknown => false,
        Outcome::Failed => return project_failure(&entry.op),
    };
    match &entry.op {
        Op::Hold { hold, seats } => {
            let distinct: BTreeSet<&str> = seats.iter().map(String::as_str).collect();
            distinct
                .into_iter()
                .map(|seat| (seat, Action::Hold(*hold), certain))
                .collect()
        }
        Op::Confirm { hold } => holds
            .seats(*hold)
            .map(|seat| (seat.as_str(), Action::Confirm(*hold), certain))
            .collect(),
        Op::Release { hold } => holds
            .seats(*hold)
            .map(|seat| (seat.as_str(), Action::Release(*hold), certain))
            .collect(),
        Op::Read { seat } => match entry.outcome {
            Outcome::Ok(Some(status)) => vec![(seat.as_str(), Action::Read(status), true)],
            // An unknown read, or an acknowledged one without a status (malformed,
            // reported by the invariants), says nothing.
            _ => Vec::new(),
        },
    }
}

/// A failed operation constrains a seat only when it is a hold of that seat alone.
fn project_failure(op: &Op) -> Vec<(&str, Action, bool)> {
    let Op::Hold { seats, .. } = op else {
        return Vec::new();
    };
    let distinct: BTreeSet<&str> = seats.iter().map(String::as_str).collect();
    match distinct.into_iter().collect::<Vec<_>>()[..] {
        [seat] => vec![(seat, Action::Refused, true)],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The model on sets of statuses
// ---------------------------------------------------------------------------------------

/// The statuses a seat may have at a point of the search: sorted, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct StateSet(Vec<SeatStatus>);

impl StateSet {
    fn initial() -> Self {
        StateSet(vec![SeatStatus::Available])
    }

    fn from_statuses(mut statuses: Vec<SeatStatus>) -> Self {
        statuses.sort_unstable();
        statuses.dedup();
        StateSet(statuses)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every possible status is final.
    fn all_sold(&self) -> bool {
        self.0.iter().all(|status| matches!(status, SeatStatus::Sold(_)))
    }
}

impl fmt::Display for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(|status| format!("{status:?}")).collect();
        write!(f, "{{{}}}", names.join(", "))
    }
}

/// The statuses possible after `op` is linearized on a seat that may be any of
/// `states`, closed under expiry. Empty when `op` cannot be linearized there.
fn step(states: &StateSet, op: &SeatOp, expirable: &BTreeSet<HoldId>) -> StateSet {
    let mut next = Vec::with_capacity(states.0.len() * 2 + 1);
    if !op.certain {
        // It may not have taken effect (or not here).
        next.extend_from_slice(&states.0);
    }
    next.extend(states.0.iter().filter_map(|&status| op.action.apply(status)));
    if next.iter().any(|&status| may_expire(status, expirable)) {
        next.push(SeatStatus::Available);
    }
    StateSet::from_statuses(next)
}

fn may_expire(status: SeatStatus, expirable: &BTreeSet<HoldId>) -> bool {
    matches!(status, SeatStatus::Held(hold) if expirable.contains(&hold))
}

// ---------------------------------------------------------------------------------------
// The search
// ---------------------------------------------------------------------------------------

/// A set of operations, by position in the seat's sorted operations.
#[derive(Debug, Clone)]
struct Bitset {
    words: Vec<u64>,
}

/// A [`Bitset`] run-length encoded for the memo: (run length, word) pairs with the
/// trailing zero words dropped. Canonical, so equal sets have equal keys, and short,
/// since linearized sets are mostly a prefix of the operations.
type MemoBits = Box<[(u32, u64)]>;

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn set(&mut self, bit: usize) {
        self.words[bit / 64] |= 1u64 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1u64 << (bit % 64));
    }

    fn key(&self) -> MemoBits {
        let mut runs: Vec<(u32, u64)> = Vec::new();
        for &word in &self.words {
            match runs.last_mut() {
                Some((count, last)) if *last == word => *count += 1,
                _ => runs.push((1, word)),
            }
        }
        if runs.last().is_some_and(|&(_, word)| word == 0) {
            runs.pop();
        }
        runs.into_boxed_slice()
    }
}

/// A linearized operation on the search stack, with what is needed to undo it.
struct Frame {
    op: usize,
    /// The possible statuses before it.
    before: StateSet,
    /// The least completion time among the pending operations before it in the list,
    /// when it was linearized.
    window_min: u64,
    /// Linearized by [`Search::forced_step`], not as one choice among others.
    forced: bool,
}

/// What [`Search::forced_step`] found.
enum Forced {
    /// No forced operation: branch over the candidates.
    Nothing,
    /// This one, leading to a new configuration.
    Step(usize),
    /// One whose configuration was already explored: this one fails too.
    Explored,
}

/// A point where no candidate could be linearized.
struct Stuck {
    /// Positions linearized so far, in order.
    linearized: Vec<usize>,
    /// Positions that could have come next by real time.
    window: Vec<usize>,
    /// The candidate that completed first: later operations must follow it.
    bound: Option<usize>,
    /// How many pending operations are outside the window.
    waiting: usize,
    states: StateSet,
}

enum SearchEnd {
    Linearizable,
    Violation(Stuck),
    Budget(u64),
}

/// The Wing-Gong-Lowe search over one seat's operations.
struct Search<'a> {
    ops: &'a [SeatOp],
    expirable: &'a BTreeSet<HoldId>,
    /// The pending operations, as a doubly linked list in invocation order.
    head: Option<usize>,
    next: Vec<Option<usize>>,
    prev: Vec<Option<usize>>,
    linearized: Bitset,
    /// Certain operations not linearized yet; the search succeeds when none is left.
    pending_certain: usize,
    /// Configurations already reached (and, once left, known to fail).
    memo: HashSet<(MemoBits, StateSet)>,
    stack: Vec<Frame>,
    deepest: Option<Stuck>,
}

fn check_seat(history: &History, seat: &str, ops: &[SeatOp], max_steps: u64) -> Verdict {
    match Search::new(ops, &history.expirable).run(max_steps) {
        SearchEnd::Linearizable => Verdict::Linearizable,
        SearchEnd::Budget(steps) => Verdict::Unknown { steps },
        SearchEnd::Violation(stuck) => Verdict::Violation(evidence(history, seat, ops, &stuck)),
    }
}

impl<'a> Search<'a> {
    fn new(ops: &'a [SeatOp], expirable: &'a BTreeSet<HoldId>) -> Self {
        let len = ops.len();
        Search {
            ops,
            expirable,
            head: (len > 0).then_some(0),
            next: (0..len).map(|i| (i + 1 < len).then_some(i + 1)).collect(),
            prev: (0..len).map(|i| i.checked_sub(1)).collect(),
            linearized: Bitset::new(len),
            pending_certain: ops.iter().filter(|op| op.certain).count(),
            memo: HashSet::new(),
            stack: Vec::new(),
            deepest: None,
        }
    }

    /// Runs the search. At every new configuration it first looks for a forced
    /// operation ([`Self::forced_step`]); otherwise `cursor` walks the pending list from
    /// its head, `window_min` being the least completion among the pending operations it
    /// has passed, so the operation at the cursor may come next iff it was invoked by
    /// then.
    fn run(mut self, max_steps: u64) -> SearchEnd {
        let mut states = StateSet::initial();
        let mut cursor = self.head;
        let mut window_min = NEVER;
        let mut fresh = true;
        let mut steps = 0u64;
        loop {
            if self.pending_certain == 0 {
                return SearchEnd::Linearizable;
            }
            if steps >= max_steps {
                return SearchEnd::Budget(steps);
            }
            steps += 1;
            if std::mem::take(&mut fresh) {
                match self.forced_step(&states) {
                    Forced::Nothing => {}
                    Forced::Step(op) => {
                        let after = states.clone();
                        self.descend(op, &mut states, after, NEVER, true);
                        (cursor, window_min, fresh) = (self.head, NEVER, true);
                        continue;
                    }
                    // This configuration cannot succeed: backtrack below.
                    Forced::Explored => cursor = None,
                }
            }
            match cursor {
                Some(op) if self.ops[op].invoke <= window_min => {
                    if let Some(after) = self.try_step(op, &states) {
                        self.descend(op, &mut states, after, window_min, false);
                        (cursor, window_min, fresh) = (self.head, NEVER, true);
                    } else {
                        window_min = window_min.min(self.ops[op].complete);
                        cursor = self.next[op];
                    }
                }
                _ => {
                    let Some((op, before_min)) = self.backtrack(&mut states) else {
                        let stuck = self.deepest.take().unwrap_or_else(|| self.snapshot(&states));
                        return SearchEnd::Violation(stuck);
                    };
                    window_min = before_min.min(self.ops[op].complete);
                    cursor = self.next[op];
                }
            }
        }
    }

    /// Linearizes `op`, the statuses becoming `after`.
    fn descend(&mut self, op: usize, states: &mut StateSet, after: StateSet, window_min: u64, forced: bool) {
        let before = std::mem::replace(states, after);
        self.stack.push(Frame {
            op,
            before,
            window_min,
            forced,
        });
        self.lift(op);
    }

    /// Gives up the current configuration: undoes linearized operations up to and
    /// including the last one that was a free choice, and returns it with the
    /// `window_min` of its scan, so the scan resumes after it. `None` when no choice is
    /// left: the history is not linearizable.
    fn backtrack(&mut self, states: &mut StateSet) -> Option<(usize, u64)> {
        self.note_stuck(states);
        while let Some(frame) = self.stack.pop() {
            self.unlift(frame.op);
            *states = frame.before;
            if !frame.forced {
                return Some((frame.op, frame.window_min));
            }
            // A forced operation was the only continuation worth trying: its parent
            // configuration fails with it.
        }
        None
    }

    /// An operation that may come next and can be linearized now without losing any
    /// linearization: it leaves the possible statuses as they are, and it could only
    /// narrow them wherever it were placed later. Then if the configuration has a
    /// successful continuation, it has one that starts with this operation (move the
    /// operation to the front: real time allows it, the operations it overtakes see the
    /// same statuses, and the ones after it see a superset of what they saw, and every
    /// step is monotone in the set), so the search need not try the alternatives.
    ///
    /// Two kinds qualify: an acknowledged read or failed single-seat hold (they only
    /// filter) whose constraint every possible status meets; and any operation with no
    /// effect when every possible status is `Sold` (final: nothing can change it).
    fn forced_step(&mut self, states: &StateSet) -> Forced {
        let mut min_complete = NEVER;
        let mut cursor = self.head;
        while let Some(op) = cursor {
            let candidate = &self.ops[op];
            if candidate.invoke > min_complete {
                break;
            }
            min_complete = min_complete.min(candidate.complete);
            if self.is_forced(candidate, states) {
                self.linearized.set(op);
                let key = self.linearized.key();
                self.linearized.clear(op);
                return if self.memo.insert((key, states.clone())) {
                    Forced::Step(op)
                } else {
                    Forced::Explored
                };
            }
            cursor = self.next[op];
        }
        Forced::Nothing
    }

    fn is_forced(&self, op: &SeatOp, states: &StateSet) -> bool {
        let filter = op.certain && matches!(op.action, Action::Read(_) | Action::Refused);
        (filter || states.all_sold()) && step(states, op, self.expirable) == *states
    }

    /// The statuses after linearizing `op` next, if that fits the model and leads to a
    /// configuration not seen before (which it records).
    fn try_step(&mut self, op: usize, states: &StateSet) -> Option<StateSet> {
        let after = step(states, &self.ops[op], self.expirable);
        if after.is_empty() {
            return None;
        }
        self.linearized.set(op);
        let key = self.linearized.key();
        self.linearized.clear(op);
        self.memo.insert((key, after.clone())).then_some(after)
    }

    /// Marks `op` linearized and removes it from the pending list.
    fn lift(&mut self, op: usize) {
        self.linearized.set(op);
        if self.ops[op].certain {
            self.pending_certain -= 1;
        }
        match self.prev[op] {
            Some(prev) => self.next[prev] = self.next[op],
            None => self.head = self.next[op],
        }
        if let Some(next) = self.next[op] {
            self.prev[next] = self.prev[op];
        }
    }

    /// Undoes the last [`Self::lift`], which was of `op`; its own links are intact.
    fn unlift(&mut self, op: usize) {
        self.linearized.clear(op);
        if self.ops[op].certain {
            self.pending_certain += 1;
        }
        match self.prev[op] {
            Some(prev) => self.next[prev] = Some(op),
            None => self.head = Some(op),
        }
        if let Some(next) = self.next[op] {
            self.prev[next] = Some(op);
        }
    }

    /// Remembers this dead end if it is deeper than any before.
    fn note_stuck(&mut self, states: &StateSet) {
        let depth = self.stack.len();
        if self
            .deepest
            .as_ref()
            .is_some_and(|deepest| deepest.linearized.len() >= depth)
        {
            return;
        }
        self.deepest = Some(self.snapshot(states));
    }

    fn snapshot(&self, states: &StateSet) -> Stuck {
        let mut window = Vec::new();
        let mut bound = None;
        let mut min_complete = NEVER;
        let mut waiting = 0;
        let mut cursor = self.head;
        while let Some(op) = cursor {
            let candidate = &self.ops[op];
            if candidate.invoke <= min_complete {
                window.push(op);
                if candidate.complete < min_complete {
                    min_complete = candidate.complete;
                    bound = Some(op);
                }
            } else {
                waiting += 1;
            }
            cursor = self.next[op];
        }
        Stuck {
            linearized: self.stack.iter().map(|frame| frame.op).collect(),
            window,
            bound,
            waiting,
            states: states.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Evidence
// ---------------------------------------------------------------------------------------

fn evidence(history: &History, seat: &str, ops: &[SeatOp], stuck: &Stuck) -> Evidence {
    Evidence {
        seat: seat.to_string(),
        linearized: stuck.linearized.iter().map(|&op| ops[op].entry).collect(),
        stuck_at: stuck.window.iter().map(|&op| ops[op].entry).collect(),
        explanation: explain(history, seat, ops, stuck),
    }
}

fn explain(history: &History, seat: &str, ops: &[SeatOp], stuck: &Stuck) -> String {
    let mut text = format!("seat {seat} is not linearizable: ");
    match stuck.linearized.last() {
        None => text.push_str("not even a first operation can be linearized"),
        Some(&last) => {
            let _ = write!(
                text,
                "at most {} of its {} operations can be linearized, the last being {}",
                stuck.linearized.len(),
                ops.len(),
                describe(history, ops[last].entry)
            );
        }
    }
    let _ = write!(
        text,
        "; the seat is then {}, and none of the operations that may come next fits:",
        stuck.states
    );
    for &op in stuck.window.iter().take(MAX_LISTED) {
        let why = reason(&ops[op], &stuck.states, &history.expirable);
        let _ = write!(text, "\n  - {}: {why}", describe(history, ops[op].entry));
    }
    if stuck.window.len() > MAX_LISTED {
        let _ = write!(text, "\n  - and {} more", stuck.window.len() - MAX_LISTED);
    }
    if let Some(bound) = stuck.bound
        && stuck.waiting > 0
    {
        let _ = write!(
            text,
            "\n  ({} later operation(s) were invoked after {} completed, so they must follow it)",
            stuck.waiting,
            describe(history, ops[bound].entry)
        );
    }
    text
}

/// Why `op` cannot be linearized on a seat that may be any of `states`.
fn reason(op: &SeatOp, states: &StateSet, expirable: &BTreeSet<HoldId>) -> String {
    if !step(states, op, expirable).is_empty() {
        return "it fits here, but every continuation from here was already explored and failed".to_string();
    }
    let need = match op.action {
        Action::Hold(hold) => format!("holding the seat for hold {hold} needs it Available"),
        Action::Refused => "a failed hold of this seat alone needs it not Available".to_string(),
        Action::Confirm(hold) => {
            format!("an acknowledged confirm needs the seat Held({hold}) or Sold({hold})")
        }
        Action::Release(hold) => format!("releasing hold {hold} needs a possible status"),
        Action::Read(status) => format!("it read {status:?}"),
    };
    format!("{need}, but the seat can only be {states}")
}

/// One entry, readably: `#3 client 2 read A -> Held(1) [40..50us]`.
fn describe(history: &History, index: usize) -> String {
    let entry = &history.entries[index];
    let op = match &entry.op {
        Op::Hold { hold, seats } => format!("hold {hold} of [{}]", seats.join(", ")),
        Op::Confirm { hold } => format!("confirm of hold {hold}"),
        Op::Release { hold } => format!("release of hold {hold}"),
        Op::Read { seat } => format!("read {seat}"),
    };
    let outcome = match (&entry.op, entry.outcome) {
        (Op::Read { .. }, Outcome::Ok(Some(status))) => format!("{status:?}"),
        (_, Outcome::Ok(_)) => "ok".to_string(),
        (_, Outcome::Failed) => "failed".to_string(),
        (_, Outcome::Unknown) => "unknown".to_string(),
    };
    let end = entry
        .complete_us
        .map_or_else(|| "?".to_string(), |c| c.to_string());
    format!(
        "#{index} client {} {op} -> {outcome} [{}..{end}us]",
        entry.client, entry.invoke_us
    )
}

// ---------------------------------------------------------------------------------------
// Whole-history invariants
// ---------------------------------------------------------------------------------------

fn invariants(history: &History, holds: &HoldSeats, final_state: &FinalState<'_>) -> Vec<String> {
    let mut found = malformed(history);
    found.extend(oversells(history, holds, final_state));
    found.extend(lost_bookings(history, holds, final_state));
    found.extend(unexplained(history, holds, final_state));
    found
}

/// Entries the checker cannot interpret as recorded.
fn malformed(history: &History) -> Vec<String> {
    let mut found = Vec::new();
    let mut hold_entries: BTreeMap<HoldId, Vec<usize>> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        if let Op::Hold { hold, .. } = entry.op {
            hold_entries.entry(hold).or_default().push(index);
        }
        let definite = entry.outcome != Outcome::Unknown;
        match entry.complete_us {
            None if definite => found.push(format!(
                "malformed entry #{index}: a definite outcome without a completion time"
            )),
            Some(complete) if definite && complete < entry.invoke_us => found.push(format!(
                "malformed entry #{index}: completed at {complete}us, before its invocation at {}us",
                entry.invoke_us
            )),
            _ => {}
        }
        if matches!((&entry.op, entry.outcome), (Op::Read { .. }, Outcome::Ok(None))) {
            found.push(format!(
                "malformed entry #{index}: an acknowledged read without the status it read"
            ));
        }
    }
    for (hold, entries) in hold_entries.iter().filter(|(_, entries)| entries.len() > 1) {
        let names: Vec<String> = entries.iter().map(|index| format!("#{index}")).collect();
        found.push(format!(
            "malformed history: hold {hold} has {} Hold entries ({}); hold ids must be unique",
            entries.len(),
            names.join(", ")
        ));
    }
    found
}

/// Every status observed by an acknowledged read or in the final state, with where.
fn observations<'h>(
    history: &'h History,
    final_state: &'h FinalState<'_>,
) -> Vec<(&'h str, SeatStatus, String)> {
    let mut seen = Vec::new();
    for (index, entry) in history.entries.iter().enumerate() {
        if let (Op::Read { seat }, Outcome::Ok(Some(status))) = (&entry.op, entry.outcome) {
            seen.push((seat.as_str(), status, format!("read #{index}")));
        }
    }
    for (seat, &status) in final_state.statuses {
        seen.push((seat.as_str(), status, final_state.source.to_string()));
    }
    seen
}

/// No seat sold to two different holds.
fn oversells(history: &History, holds: &HoldSeats, final_state: &FinalState<'_>) -> Vec<String> {
    let mut sold: BTreeMap<&str, BTreeMap<HoldId, Vec<String>>> = BTreeMap::new();
    for (index, entry) in history.entries.iter().enumerate() {
        if let (Op::Confirm { hold }, Outcome::Ok(_)) = (&entry.op, entry.outcome) {
            for seat in holds.seats(*hold) {
                let sources = sold.entry(seat.as_str()).or_default().entry(*hold).or_default();
                sources.push(format!("acknowledged confirm #{index}"));
            }
        }
    }
    for (seat, status, source) in observations(history, final_state) {
        if let SeatStatus::Sold(hold) = status {
            sold.entry(seat)
                .or_default()
                .entry(hold)
                .or_default()
                .push(source);
        }
    }
    sold.iter()
        .filter(|(_, by_hold)| by_hold.len() > 1)
        .map(|(seat, by_hold)| {
            let parts: Vec<String> = by_hold
                .iter()
                .map(|(hold, sources)| format!("hold {hold} ({})", listing(sources)))
                .collect();
            format!(
                "oversell: seat {seat} is sold to {} holds: {}",
                by_hold.len(),
                parts.join("; ")
            )
        })
        .collect()
}

/// Every seat of an acknowledged confirm of `h` is `Sold(h)` in the final state.
fn lost_bookings(history: &History, holds: &HoldSeats, final_state: &FinalState<'_>) -> Vec<String> {
    let mut found = Vec::new();
    for (index, entry) in history.entries.iter().enumerate() {
        let (Op::Confirm { hold }, Outcome::Ok(_)) = (&entry.op, entry.outcome) else {
            continue;
        };
        let hold = *hold;
        for seat in holds.seats(hold) {
            match final_state.statuses.get(seat) {
                Some(SeatStatus::Sold(owner)) if *owner == hold => {}
                Some(status) => found.push(format!(
                    "acknowledged booking lost: confirm #{index} of hold {hold} was acknowledged, \
                     but seat {seat} is {status:?} in the {}",
                    final_state.source
                )),
                None if final_state.complete => found.push(format!(
                    "acknowledged booking lost: confirm #{index} of hold {hold} was acknowledged, \
                     but seat {seat} is missing from the {}",
                    final_state.source
                )),
                None => {}
            }
        }
    }
    found
}

/// Every observed `Sold(h)` has a confirm of `h`, every observed `Held(h)` a hold `h`,
/// acknowledged or unknown, covering the seat.
fn unexplained(history: &History, holds: &HoldSeats, final_state: &FinalState<'_>) -> Vec<String> {
    let mut confirmed: BTreeSet<HoldId> = BTreeSet::new();
    let mut held: BTreeSet<(HoldId, &str)> = BTreeSet::new();
    for entry in history.entries.iter().filter(|e| e.outcome != Outcome::Failed) {
        match &entry.op {
            Op::Confirm { hold } => {
                confirmed.insert(*hold);
            }
            Op::Hold { hold, seats } => held.extend(seats.iter().map(|seat| (*hold, seat.as_str()))),
            Op::Release { .. } | Op::Read { .. } => {}
        }
    }
    let mut seen: BTreeMap<(&str, SeatStatus), Vec<String>> = BTreeMap::new();
    for (seat, status, source) in observations(history, final_state) {
        seen.entry((seat, status)).or_default().push(source);
    }
    let mut found = Vec::new();
    for ((seat, status), sources) in &seen {
        match *status {
            SeatStatus::Sold(hold) if !(confirmed.contains(&hold) && holds.covers(hold, seat)) => {
                found.push(format!(
                    "sale from nowhere: seat {seat} is Sold({hold}) ({}), but no acknowledged or \
                     unknown confirm of a hold {hold} covering it was recorded",
                    listing(sources)
                ));
            }
            SeatStatus::Held(hold) if !held.contains(&(hold, *seat)) => {
                found.push(format!(
                    "hold from nowhere: seat {seat} is Held({hold}) ({}), but no acknowledged or \
                     unknown hold {hold} of it was recorded",
                    listing(sources)
                ));
            }
            _ => {}
        }
    }
    found
}

/// `a, b, c and 4 more`.
fn listing(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX_LISTED {
        let _ = write!(text, " and {} more", items.len() - MAX_LISTED);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use SeatStatus::{Available, Held, Sold};

    const OK: Outcome = Outcome::Ok(None);
    const FAILED: Outcome = Outcome::Failed;

    fn entry(client: u64, invoke: u64, complete: Option<u64>, op: Op, outcome: Outcome) -> Entry {
        Entry {
            client,
            invoke_us: invoke,
            complete_us: complete,
            op,
            outcome,
        }
    }

    fn hold_op(id: HoldId, seats: &[&str]) -> Op {
        Op::Hold {
            hold: id,
            seats: seats.iter().map(|seat| seat.to_string()).collect(),
        }
    }

    fn hold(client: u64, id: HoldId, seats: &[&str], invoke: u64, complete: u64, outcome: Outcome) -> Entry {
        entry(client, invoke, Some(complete), hold_op(id, seats), outcome)
    }

    fn unknown_hold(client: u64, id: HoldId, seats: &[&str], invoke: u64) -> Entry {
        entry(client, invoke, None, hold_op(id, seats), Outcome::Unknown)
    }

    fn confirm(client: u64, id: HoldId, invoke: u64, complete: u64, outcome: Outcome) -> Entry {
        entry(client, invoke, Some(complete), Op::Confirm { hold: id }, outcome)
    }

    fn unknown_confirm(client: u64, id: HoldId, invoke: u64) -> Entry {
        entry(client, invoke, None, Op::Confirm { hold: id }, Outcome::Unknown)
    }

    fn release(client: u64, id: HoldId, invoke: u64, complete: u64, outcome: Outcome) -> Entry {
        entry(client, invoke, Some(complete), Op::Release { hold: id }, outcome)
    }

    fn unknown_release(client: u64, id: HoldId, invoke: u64) -> Entry {
        entry(client, invoke, None, Op::Release { hold: id }, Outcome::Unknown)
    }

    fn read(client: u64, seat: &str, invoke: u64, complete: u64, status: SeatStatus) -> Entry {
        let op = Op::Read {
            seat: seat.to_string(),
        };
        entry(client, invoke, Some(complete), op, Outcome::Ok(Some(status)))
    }

    fn history(entries: Vec<Entry>) -> History {
        History {
            entries,
            expirable: BTreeSet::new(),
        }
    }

    fn final_state(statuses: &[(&str, SeatStatus)]) -> BTreeMap<String, SeatStatus> {
        statuses
            .iter()
            .map(|(seat, status)| (seat.to_string(), *status))
            .collect()
    }

    fn assert_passes(history: &History) -> Report {
        let report = check(history);
        assert!(report.ok(), "expected a pass:\n{}", report.summary());
        report
    }

    fn violation<'r>(report: &'r Report, seat: &str) -> &'r Evidence {
        match report.seats.get(seat) {
            Some(Verdict::Violation(evidence)) => evidence,
            other => panic!(
                "expected a violation on seat {seat}, got {other:?}\n{}",
                report.summary()
            ),
        }
    }

    fn has_invariant(report: &Report, words: &str) -> bool {
        report
            .invariant_violations
            .iter()
            .any(|violation| violation.contains(words))
    }

    // --- histories that must pass ---

    #[test]
    fn sequential_hold_confirm_read_passes() {
        let report = assert_passes(&history(vec![
            read(1, "A", 0, 5, Available),
            hold(1, 1, &["A"], 10, 20, OK),
            read(1, "A", 30, 40, Held(1)),
            confirm(1, 1, 50, 60, OK),
            read(1, "A", 70, 80, Sold(1)),
        ]));
        assert_eq!(report.seats.len(), 1);
        assert_eq!(report.seats.get("A"), Some(&Verdict::Linearizable));
    }

    #[test]
    fn concurrent_single_seat_holds_one_wins_passes() {
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 50, OK),
            hold(2, 2, &["A"], 10, 40, FAILED),
            confirm(1, 1, 60, 70, OK),
            read(3, "A", 80, 90, Sold(1)),
        ]));
        // The later-invoked hold wins: the failed one must be placed after it.
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 50, FAILED),
            hold(2, 2, &["A"], 10, 40, OK),
            confirm(2, 2, 60, 70, OK),
            read(3, "A", 80, 90, Sold(2)),
        ]));
    }

    #[test]
    fn concurrent_overlapping_reads_during_a_hold_pass() {
        // The first-invoked read sees the hold, a later one does not: the search must
        // reorder them.
        assert_passes(&history(vec![
            read(2, "A", 0, 100, Held(1)),
            hold(1, 1, &["A"], 10, 90, OK),
            read(3, "A", 20, 30, Available),
            read(4, "A", 40, 50, Available),
            read(5, "A", 60, 70, Held(1)),
            read(6, "A", 80, 120, Held(1)),
        ]));
    }

    #[test]
    fn unknown_hold_that_took_effect_passes() {
        assert_passes(&history(vec![
            unknown_hold(1, 1, &["A"], 10),
            read(2, "A", 100, 110, Held(1)),
            hold(3, 2, &["A"], 120, 130, FAILED),
        ]));
    }

    #[test]
    fn unknown_hold_that_never_happened_passes() {
        assert_passes(&history(vec![
            unknown_hold(1, 1, &["A"], 10),
            read(2, "A", 100, 110, Available),
            hold(3, 2, &["A"], 120, 130, OK),
            read(2, "A", 140, 150, Held(2)),
        ]));
    }

    #[test]
    fn unknown_hold_may_land_long_after_the_client_gave_up() {
        assert_passes(&history(vec![
            unknown_hold(1, 1, &["A"], 10),
            read(2, "A", 100, 110, Available),
            read(2, "A", 200, 210, Held(1)),
        ]));
    }

    #[test]
    fn unknown_release_may_land_after_later_operations() {
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            unknown_release(1, 1, 20),
            read(2, "A", 30, 40, Held(1)),
            read(2, "A", 50, 60, Available),
        ]));
    }

    #[test]
    fn expirable_hold_may_become_available_without_release() {
        let mut h = history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            read(2, "A", 20, 30, Held(1)),
            read(2, "A", 40, 50, Available),
            hold(3, 2, &["A"], 60, 70, OK),
            confirm(1, 1, 80, 90, FAILED),
            read(2, "A", 100, 110, Held(2)),
        ]);
        h.expirable.insert(1);
        assert_passes(&h);
    }

    #[test]
    fn multi_seat_hold_passes() {
        assert_passes(&history(vec![
            hold(1, 1, &["A", "B"], 0, 10, OK),
            read(2, "A", 20, 30, Held(1)),
            read(3, "B", 20, 30, Held(1)),
            hold(4, 2, &["B", "C"], 25, 35, FAILED),
            confirm(1, 1, 40, 50, OK),
            read(2, "A", 60, 70, Sold(1)),
            read(3, "B", 60, 70, Sold(1)),
            read(4, "C", 60, 70, Available),
        ]));
    }

    #[test]
    fn unknown_confirm_later_seen_sold_passes() {
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            unknown_confirm(1, 1, 20),
            read(2, "A", 100, 110, Sold(1)),
        ]));
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            unknown_confirm(1, 1, 20),
            read(2, "A", 100, 110, Held(1)),
        ]));
    }

    #[test]
    fn failed_multi_seat_hold_adds_no_constraint() {
        // Both seats were available: per seat, nothing says this hold could fail, and
        // nothing may be concluded from it.
        assert_passes(&history(vec![
            hold(1, 1, &["A", "B"], 0, 10, FAILED),
            read(2, "A", 20, 30, Available),
        ]));
    }

    #[test]
    fn release_then_hold_again_passes() {
        assert_passes(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            release(1, 1, 20, 30, OK),
            release(1, 1, 35, 38, OK),
            read(2, "A", 40, 50, Available),
            hold(2, 2, &["A"], 60, 70, OK),
            confirm(2, 2, 80, 90, OK),
            confirm(2, 2, 95, 99, OK),
        ]));
    }

    #[test]
    fn confirm_without_a_hold_entry_applies_to_no_seat() {
        let report = assert_passes(&history(vec![
            confirm(1, 9, 0, 10, OK),
            read(2, "A", 20, 30, Available),
        ]));
        assert_eq!(report.seats.keys().collect::<Vec<_>>(), vec!["A"]);
    }

    #[test]
    fn consistent_explicit_final_state_passes() {
        let h = history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            confirm(1, 1, 20, 30, OK),
            hold(2, 2, &["B"], 0, 10, OK),
        ]);
        let report = check_final(
            &h,
            &final_state(&[("A", Sold(1)), ("B", Held(2)), ("C", Available)]),
        );
        assert!(report.ok(), "{}", report.summary());
    }

    // --- histories with injected bugs that must fail ---

    #[test]
    fn stale_read_after_confirm_is_a_violation() {
        for stale in [Held(1), Available] {
            let h = history(vec![
                hold(1, 1, &["A"], 0, 10, OK),
                confirm(1, 1, 20, 30, OK),
                read(2, "A", 40, 50, stale),
            ]);
            let report = check(&h);
            let evidence = violation(&report, "A");
            assert_eq!(evidence.seat, "A");
            assert_eq!(evidence.linearized, vec![0, 1]);
            assert_eq!(evidence.stuck_at, vec![2]);
            assert!(
                evidence.explanation.contains("#2 client 2 read A"),
                "{}",
                evidence.explanation
            );
            assert!(
                evidence.explanation.contains("{Sold(1)}"),
                "{}",
                evidence.explanation
            );
            assert!(!report.ok());
        }
    }

    #[test]
    fn lost_confirm_is_reported() {
        // Final state given explicitly: the per-seat history alone is fine.
        let h = history(vec![hold(1, 1, &["A"], 0, 10, OK), confirm(1, 1, 20, 30, OK)]);
        let report = check_final(&h, &final_state(&[("A", Available)]));
        assert_eq!(report.seats.get("A"), Some(&Verdict::Linearizable));
        assert!(
            has_invariant(&report, "acknowledged booking lost"),
            "{}",
            report.summary()
        );
        assert!(!report.ok());

        // A seat missing from a complete final state is lost too.
        let report = check_final(&h, &BTreeMap::new());
        assert!(
            has_invariant(&report, "missing from the final state"),
            "{}",
            report.summary()
        );

        // Final state from a final read: both the seat and the invariant fail.
        let mut entries = h.entries.clone();
        entries.push(read(2, "A", 40, 50, Available));
        let report = check(&history(entries));
        violation(&report, "A");
        assert!(
            has_invariant(&report, "acknowledged booking lost"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn oversell_is_a_violation() {
        let report = check(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            confirm(1, 1, 20, 30, OK),
            hold(2, 2, &["A"], 40, 50, OK),
            confirm(2, 2, 60, 70, OK),
        ]));
        let evidence = violation(&report, "A");
        assert_eq!(evidence.linearized, vec![0, 1]);
        assert_eq!(evidence.stuck_at, vec![2]);
        assert!(has_invariant(&report, "oversell: seat A"), "{}", report.summary());
    }

    #[test]
    fn reads_of_two_different_sales_are_an_oversell() {
        let report = check(&history(vec![
            unknown_hold(1, 1, &["A"], 0),
            unknown_confirm(1, 1, 5),
            unknown_hold(2, 2, &["A"], 0),
            unknown_confirm(2, 2, 5),
            read(3, "A", 40, 50, Sold(1)),
            read(3, "A", 60, 70, Sold(2)),
        ]));
        violation(&report, "A");
        assert!(has_invariant(&report, "oversell: seat A"), "{}", report.summary());
    }

    #[test]
    fn torn_multi_seat_hold_is_a_violation_on_the_missing_seat() {
        let report = check(&history(vec![
            hold(1, 1, &["A", "B"], 0, 10, OK),
            read(2, "A", 20, 30, Held(1)),
            read(3, "B", 20, 30, Available),
        ]));
        assert_eq!(report.seats.get("A"), Some(&Verdict::Linearizable));
        let evidence = violation(&report, "B");
        assert_eq!(evidence.linearized, vec![0]);
        assert_eq!(evidence.stuck_at, vec![2]);
    }

    #[test]
    fn read_of_a_hold_before_it_was_invoked_is_a_violation() {
        let report = check(&history(vec![
            read(2, "A", 0, 10, Held(1)),
            hold(1, 1, &["A"], 20, 30, OK),
        ]));
        let evidence = violation(&report, "A");
        assert!(evidence.linearized.is_empty());
        assert_eq!(evidence.stuck_at, vec![0]);
        assert!(
            evidence.explanation.contains("not even a first operation"),
            "{}",
            evidence.explanation
        );
    }

    #[test]
    fn sale_from_nowhere_is_reported() {
        let h = history(vec![hold(1, 7, &["A"], 0, 10, OK)]);
        let report = check_final(&h, &final_state(&[("A", Sold(7))]));
        assert_eq!(report.seats.get("A"), Some(&Verdict::Linearizable));
        assert!(
            has_invariant(&report, "sale from nowhere: seat A is Sold(7)"),
            "{}",
            report.summary()
        );

        // Seen by a read instead: the seat fails too.
        let report = check(&history(vec![
            hold(1, 7, &["A"], 0, 10, OK),
            read(2, "A", 20, 30, Sold(7)),
        ]));
        violation(&report, "A");
        assert!(
            has_invariant(&report, "sale from nowhere"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn hold_that_is_not_expirable_cannot_vanish() {
        let report = check(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            read(2, "A", 20, 30, Held(1)),
            read(2, "A", 40, 50, Available),
        ]));
        let evidence = violation(&report, "A");
        assert_eq!(evidence.stuck_at, vec![2]);
    }

    #[test]
    fn acknowledged_confirm_of_an_expired_hold_is_a_violation() {
        let mut h = history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            read(2, "A", 20, 30, Available),
            confirm(1, 1, 40, 50, OK),
        ]);
        h.expirable.insert(1);
        let evidence = violation(&check(&h), "A").clone();
        assert_eq!(evidence.linearized, vec![0, 1]);
        assert_eq!(evidence.stuck_at, vec![2]);
    }

    #[test]
    fn failed_single_seat_hold_of_an_available_seat_is_a_violation() {
        let report = check(&history(vec![
            read(2, "A", 0, 10, Available),
            hold(1, 1, &["A"], 20, 30, FAILED),
            read(2, "A", 40, 50, Available),
        ]));
        violation(&report, "A");
    }

    #[test]
    fn malformed_entries_are_reported() {
        let mut unread = read(1, "A", 0, 10, Available);
        unread.outcome = Outcome::Ok(None);
        let mut endless = hold(1, 1, &["A"], 20, 30, OK);
        endless.complete_us = None;
        let report = check(&history(vec![
            unread,
            endless,
            hold(2, 1, &["B"], 40, 50, FAILED),
        ]));
        assert!(
            has_invariant(&report, "malformed entry #0"),
            "{}",
            report.summary()
        );
        assert!(
            has_invariant(&report, "malformed entry #1"),
            "{}",
            report.summary()
        );
        assert!(
            has_invariant(&report, "hold 1 has 2 Hold entries"),
            "{}",
            report.summary()
        );
    }

    // --- the search itself ---

    #[test]
    fn exhausted_budget_is_unknown() {
        let h = history(vec![
            read(2, "A", 0, 100, Held(1)),
            hold(1, 1, &["A"], 10, 90, OK),
            read(3, "A", 20, 30, Available),
        ]);
        let report = check_with_budget(&h, 3);
        assert_eq!(report.seats.get("A"), Some(&Verdict::Unknown { steps: 3 }));
        assert!(!report.ok());
        assert!(!report.violated());
        assert!(report.summary().contains("undecided"), "{}", report.summary());
        assert!(check(&h).ok());
    }

    fn deep_sequential_history(cycles: u64) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut t = 0;
        let mut at = |entries: &mut Vec<Entry>, make: &dyn Fn(u64, u64) -> Entry| {
            entries.push(make(t, t + 1));
            t += 2;
        };
        for id in 1..=cycles {
            at(&mut entries, &|a, b| hold(1, id, &["A"], a, b, OK));
            at(&mut entries, &|a, b| read(2, "A", a, b, Held(id)));
            at(&mut entries, &|a, b| release(1, id, a, b, OK));
            at(&mut entries, &|a, b| read(2, "A", a, b, Available));
        }
        entries
    }

    #[test]
    fn ten_thousand_sequential_ops_do_not_overflow_the_stack() {
        let entries = deep_sequential_history(2_500);
        assert_eq!(entries.len(), 10_000);
        let start = Instant::now();
        assert_passes(&history(entries.clone()));
        println!("10,000 sequential ops: linearizable in {:?}", start.elapsed());

        let mut broken = entries;
        let last = broken.len() - 1;
        broken[last] = read(
            2,
            "A",
            broken[last].invoke_us,
            broken[last].invoke_us + 1,
            Held(2_500),
        );
        let start = Instant::now();
        let report = check(&history(broken));
        println!("10,000 sequential ops: violation found in {:?}", start.elapsed());
        let evidence = violation(&report, "A");
        assert_eq!(evidence.linearized.len(), last);
        assert_eq!(evidence.stuck_at, vec![last]);
    }

    #[test]
    fn two_thousand_concurrent_ops_check_quickly() {
        // One hold (taking effect at 20us) and its confirm (at 70us); 19 other clients
        // read or try to hold, each seeing the true status at the middle of its
        // interval.
        let truth = |t: u64| match t {
            0..20 => Available,
            20..70 => Held(1),
            _ => Sold(1),
        };
        let mut entries = vec![hold(0, 1, &["A"], 0, 40, OK), confirm(0, 1, 50, 90, OK)];
        let mut next_hold = 1_000;
        for client in 1..20u64 {
            let mut t = client;
            for k in 0..105u64 {
                let duration = 30 + (client * 7 + k * 13) % 50;
                let status = truth(t + duration / 2);
                if (client + k) % 3 == 0 && status != Available {
                    entries.push(hold(client, next_hold, &["A"], t, t + duration, FAILED));
                    next_hold += 1;
                } else {
                    entries.push(read(client, "A", t, t + duration, status));
                }
                t += duration + 1 + (client + k) % 3;
            }
        }
        assert!(entries.len() >= 1_990, "{}", entries.len());
        let h = history(entries);
        let start = Instant::now();
        let report = check(&h);
        println!(
            "{} concurrent ops on one seat checked in {:?}",
            h.entries.len(),
            start.elapsed()
        );
        assert!(report.ok(), "{}", report.summary());

        // The same history with one stale read near the end must fail.
        let mut broken = h.clone();
        let index = broken.entries.len() - 2;
        broken.entries[index].outcome = Outcome::Ok(Some(Held(1)));
        let start = Instant::now();
        let report = check(&broken);
        println!("... and with a stale read in {:?}", start.elapsed());
        let evidence = violation(&report, "A");
        assert!(evidence.stuck_at.contains(&index), "{evidence:?}");
    }

    /// A tiny deterministic random generator (no crates in this file).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }

        fn chance(&mut self, one_in: u64) -> bool {
            self.below(one_in) == 0
        }
    }

    /// The per-seat question answered by trying every order real time allows.
    fn brute_force(
        ops: &[SeatOp],
        expirable: &BTreeSet<HoldId>,
        done: &mut [bool],
        states: &StateSet,
    ) -> bool {
        if ops.iter().zip(done.iter()).all(|(op, &done)| done || !op.certain) {
            return true;
        }
        for i in 0..ops.len() {
            let pending = |j: usize| !done[j];
            if !pending(i) || (0..ops.len()).any(|j| pending(j) && ops[j].complete < ops[i].invoke) {
                continue;
            }
            let after = step(states, &ops[i], expirable);
            if after.is_empty() {
                continue;
            }
            done[i] = true;
            let found = brute_force(ops, expirable, done, &after);
            done[i] = false;
            if found {
                return true;
            }
        }
        false
    }

    fn random_status(rng: &mut Lcg) -> SeatStatus {
        match rng.below(3) {
            0 => Available,
            1 => Held(1 + rng.below(3)),
            _ => Sold(1 + rng.below(3)),
        }
    }

    fn random_outcome(rng: &mut Lcg) -> Outcome {
        match rng.below(3) {
            0 => OK,
            1 => FAILED,
            _ => Outcome::Unknown,
        }
    }

    /// Random, mostly wrong, small histories on seats A and B.
    fn random_history(rng: &mut Lcg) -> History {
        let mut h = history(Vec::new());
        let mut next_hold = 1;
        for _ in 0..3 + rng.below(5) {
            let invoke = rng.below(50);
            let complete = invoke + rng.below(30);
            let (op, outcome) = match rng.below(4) {
                0 if next_hold <= 3 => {
                    let seats: &[&str] = [&["A"][..], &["B"], &["A", "B"]][rng.below(3) as usize];
                    next_hold += 1;
                    (hold_op(next_hold - 1, seats), random_outcome(rng))
                }
                1 => (
                    Op::Confirm {
                        hold: 1 + rng.below(3),
                    },
                    random_outcome(rng),
                ),
                2 => (
                    Op::Release {
                        hold: 1 + rng.below(3),
                    },
                    random_outcome(rng),
                ),
                _ => {
                    let seat = if rng.chance(2) { "A" } else { "B" };
                    (
                        Op::Read {
                            seat: seat.to_string(),
                        },
                        Outcome::Ok(Some(random_status(rng))),
                    )
                }
            };
            let complete = (outcome != Outcome::Unknown).then_some(complete);
            h.entries.push(entry(rng.below(4), invoke, complete, op, outcome));
        }
        h.expirable.extend((1..=3).filter(|_| rng.chance(3)));
        h
    }

    #[test]
    fn search_agrees_with_brute_force_on_random_histories() {
        let mut rng = Lcg(7);
        let (mut passed, mut failed) = (0, 0);
        for round in 0..3_000 {
            let h = random_history(&mut rng);
            let report = check(&h);
            for (seat, ops) in project(&h, &HoldSeats::of(&h)) {
                let expected = brute_force(
                    &ops,
                    &h.expirable,
                    &mut vec![false; ops.len()],
                    &StateSet::initial(),
                );
                match report.seats.get(&seat) {
                    Some(Verdict::Linearizable) if expected => passed += 1,
                    Some(Verdict::Violation(_)) if !expected => failed += 1,
                    other => panic!(
                        "round {round}, seat {seat}: brute force says {expected}, search {other:?}\n{h:#?}"
                    ),
                }
            }
        }
        println!("random histories: {passed} linearizable seats, {failed} violations, all agreeing");
        assert!(passed > 100 && failed > 100, "{passed} {failed}");
    }

    /// Makes the seats of `hold` that it still holds available (release or expiry).
    fn free_held(truth: &mut BTreeMap<String, SeatStatus>, hold: HoldId, seats: &[&str]) {
        for seat in seats {
            if truth[*seat] == Held(hold) {
                truth.insert(seat.to_string(), Available);
            }
        }
    }

    /// Runs a correct seat map at distinct instants, records each operation with an
    /// interval around its instant, sometimes loses replies, and expires holds.
    fn simulated_history(rng: &mut Lcg, operations: u64) -> (History, BTreeMap<String, SeatStatus>) {
        let seats = ["A", "B", "C"];
        let mut truth: BTreeMap<String, SeatStatus> =
            final_state(&[("A", Available), ("B", Available), ("C", Available)]);
        let mut h = history(Vec::new());
        let mut holds: Vec<(HoldId, Vec<&str>)> = Vec::new();
        for i in 0..operations {
            let at = 100 + 10 * i;
            // An expiry between operations.
            if let Some((hold, held)) = holds.get(rng.below(holds.len() as u64 + 1) as usize)
                && h.expirable.contains(hold)
                && rng.chance(3)
            {
                free_held(&mut truth, *hold, held);
            }
            let lost = rng.chance(8);
            let (op, mut outcome) = match rng.below(5) {
                0 => {
                    let chosen: Vec<&str> = seats.iter().copied().filter(|_| rng.chance(2)).collect();
                    let chosen = if chosen.is_empty() {
                        vec![seats[rng.below(3) as usize]]
                    } else {
                        chosen
                    };
                    let hold = holds.len() as u64 + 1;
                    let free = chosen.iter().all(|seat| truth[*seat] == Available);
                    if free && !lost {
                        for seat in &chosen {
                            truth.insert(seat.to_string(), Held(hold));
                        }
                    }
                    if rng.chance(2) {
                        h.expirable.insert(hold);
                    }
                    holds.push((hold, chosen.clone()));
                    (hold_op(hold, &chosen), if free { OK } else { FAILED })
                }
                1 | 2 if !holds.is_empty() => {
                    let (hold, held) = holds[rng.below(holds.len() as u64) as usize].clone();
                    if rng.chance(2) {
                        let ok = held
                            .iter()
                            .all(|seat| matches!(truth[*seat], Held(x) | Sold(x) if x == hold));
                        if ok && !lost {
                            for seat in &held {
                                truth.insert(seat.to_string(), Sold(hold));
                            }
                        }
                        (Op::Confirm { hold }, if ok { OK } else { FAILED })
                    } else {
                        if !lost {
                            free_held(&mut truth, hold, &held);
                        }
                        (Op::Release { hold }, OK)
                    }
                }
                _ => {
                    let seat = seats[rng.below(3) as usize];
                    (
                        Op::Read {
                            seat: seat.to_string(),
                        },
                        Outcome::Ok(Some(truth[seat])),
                    )
                }
            };
            if lost || (rng.chance(10) && !matches!(op, Op::Read { .. })) {
                outcome = Outcome::Unknown;
            }
            let invoke = at - rng.below(30);
            let complete = (outcome != Outcome::Unknown).then(|| at + rng.below(30));
            h.entries.push(entry(rng.below(5), invoke, complete, op, outcome));
        }
        // A final sweep of reads, after everything.
        let end = 200 + 10 * operations;
        for seat in seats {
            h.entries.push(read(9, seat, end, end + 5, truth[seat]));
        }
        (h, truth)
    }

    #[test]
    fn simulated_correct_executions_always_pass() {
        let mut rng = Lcg(11);
        for round in 0..300 {
            let (h, truth) = simulated_history(&mut rng, 40);
            let report = check(&h);
            assert!(report.ok(), "round {round}:\n{}\n{h:#?}", report.summary());
            let report = check_final(&h, &truth);
            assert!(report.ok(), "round {round}:\n{}", report.summary());
            assert_eq!(final_state_from_reads(&h), truth);
            assert_eq!(count_check(&truth, 3), Ok(()));
        }
    }

    // --- final state and counts ---

    #[test]
    fn final_state_comes_from_reads_after_the_last_write() {
        let h = history(vec![
            read(2, "B", 0, 5, Available),
            hold(1, 1, &["A"], 0, 10, OK),
            read(2, "A", 20, 30, Held(1)),
            read(3, "A", 25, 35, Held(1)),
            unknown_hold(4, 2, &["B"], 40),
        ]);
        assert_eq!(final_state_from_reads(&h), final_state(&[("A", Held(1))]));
    }

    #[test]
    fn count_check_compares_with_capacity() {
        let state = final_state(&[("A", Available), ("B", Held(1)), ("C", Sold(2))]);
        assert_eq!(count_check(&state, 3), Ok(()));
        let error = count_check(&state, 4).unwrap_err();
        assert!(error.contains("1 available + 1 held + 1 sold = 3"), "{error}");
    }

    #[test]
    fn summary_names_each_failure() {
        let report = check(&history(vec![
            hold(1, 1, &["A"], 0, 10, OK),
            confirm(1, 1, 20, 30, OK),
            read(2, "A", 40, 50, Available),
            read(2, "B", 40, 50, Available),
        ]));
        let summary = report.summary();
        assert!(
            summary.starts_with("2 seat(s): 1 linearizable, 1 not linearizable"),
            "{summary}"
        );
        assert!(summary.contains("seat A is not linearizable"), "{summary}");
        assert!(
            summary.contains("invariant: acknowledged booking lost"),
            "{summary}"
        );
    }
}
