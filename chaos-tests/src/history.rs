//! What the booking clients did, on one clock, for the linearizability
//! checker ([`crate::linearizability`]).
//!
//! Each client records every hold and confirm it sends: when it was invoked,
//! when the answer came, and what the answer said (acknowledged, a definite
//! failure, or unknown). After the run, [`Recorder::check`] reads the final
//! seat map through the leader and asks the checker whether one seat store
//! applying each operation atomically between its invocation and its answer
//! could have produced what the clients saw and what the cluster kept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::bail;

use crate::client::EventView;
use crate::linearizability::{self, Entry, History, HoldId, Op, Outcome, Report, SeatStatus};

/// A hold id no client used: the final state's owner of a seat that no
/// recorded operation explains (the checker reports it).
const NOBODY: HoldId = HoldId::MAX;

/// The clients' shared record.
pub struct Recorder {
    started: Instant,
    inner: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    entries: Vec<Entry>,
    next_hold: HoldId,
    /// Seats of each hold, as sent.
    seats: BTreeMap<HoldId, Vec<String>>,
}

/// One operation on its way: created at invocation, finished by its answer.
pub struct Pending {
    client: u64,
    invoke_us: u64,
    op: Op,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            started: Instant::now(),
            inner: Mutex::new(Recorded::default()),
        }
    }
}

impl Recorder {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// A hold of `seats` by `client`, invoked now; its checker id.
    pub fn invoke_hold(&self, client: u64, seats: &[String]) -> (HoldId, Pending) {
        let invoke_us = self.now_us();
        let mut inner = self.inner.lock().expect("recorder lock");
        let hold = inner.next_hold;
        inner.next_hold += 1;
        inner.seats.insert(hold, seats.to_vec());
        let op = Op::Hold {
            hold,
            seats: seats.to_vec(),
        };
        (
            hold,
            Pending {
                client,
                invoke_us,
                op,
            },
        )
    }

    /// A confirm of `hold` by `client`, invoked now.
    pub fn invoke_confirm(&self, client: u64, hold: HoldId) -> Pending {
        Pending {
            client,
            invoke_us: self.now_us(),
            op: Op::Confirm { hold },
        }
    }

    /// A release of `hold` by `client`, invoked now.
    pub fn invoke_release(&self, client: u64, hold: HoldId) -> Pending {
        Pending {
            client,
            invoke_us: self.now_us(),
            op: Op::Release { hold },
        }
    }

    /// Milliseconds since the recorder started: the clock of every entry
    /// (`invoke_us`, `complete_us` are in microseconds of it).
    pub fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    /// The answer to `pending` came now: `Some(true)` acknowledged,
    /// `Some(false)` a definite failure, `None` unknown.
    pub fn complete(&self, pending: Pending, acknowledged: Option<bool>) {
        let (outcome, complete_us) = match acknowledged {
            Some(true) => (Outcome::Ok(None), Some(self.now_us())),
            Some(false) => (Outcome::Failed, Some(self.now_us())),
            None => (Outcome::Unknown, None),
        };
        let entry = Entry {
            client: pending.client,
            invoke_us: pending.invoke_us,
            complete_us,
            op: pending.op,
            outcome,
        };
        self.inner.lock().expect("recorder lock").entries.push(entry);
    }

    /// Every entry so far; every hold may expire (holds have a TTL).
    pub fn history(&self) -> History {
        let inner = self.inner.lock().expect("recorder lock");
        History {
            entries: inner.entries.clone(),
            expirable: inner.seats.keys().copied().collect(),
        }
    }

    /// The final state of every seat of `view` (a linearizable read taken
    /// after every client stopped), with each held or sold seat attributed
    /// to the last acknowledged hold, or confirm, that covered it.
    pub fn final_state(&self, view: &EventView) -> anyhow::Result<BTreeMap<String, SeatStatus>> {
        let inner = self.inner.lock().expect("recorder lock");
        let mut held_by: BTreeMap<&str, HoldId> = BTreeMap::new();
        let mut sold_by: BTreeMap<&str, HoldId> = BTreeMap::new();
        for entry in &inner.entries {
            if !matches!(entry.outcome, Outcome::Ok(_) | Outcome::Unknown) {
                continue;
            }
            match &entry.op {
                Op::Hold { hold, seats } => {
                    for seat in seats {
                        held_by.insert(seat, *hold);
                    }
                }
                Op::Confirm { hold } => {
                    for seat in inner.seats.get(hold).into_iter().flatten() {
                        sold_by.insert(seat, *hold);
                    }
                }
                _ => {}
            }
        }
        let mut state = BTreeMap::new();
        for seat in view.seats() {
            let status = match seat.status.as_str() {
                "available" => SeatStatus::Available,
                "held" => SeatStatus::Held(held_by.get(seat.id.as_str()).copied().unwrap_or(NOBODY)),
                "sold" => SeatStatus::Sold(sold_by.get(seat.id.as_str()).copied().unwrap_or(NOBODY)),
                other => bail!("seat {} has status {other:?}", seat.id),
            };
            state.insert(seat.id.clone(), status);
        }
        Ok(state)
    }

    /// Checks the clients' history against the final `view`: linearizable
    /// per seat, nothing acknowledged lost, no sale unexplained, and the
    /// counts adding up to the capacity. Fails with the checker's summary.
    pub fn check(&self, view: &EventView) -> anyhow::Result<Report> {
        let history = self.history();
        let final_state = self.final_state(view)?;
        let report = linearizability::check_final(&history, &final_state);
        let mut problems = Vec::new();
        if !report.ok() {
            problems.push(report.summary());
        }
        if let Err(e) = linearizability::count_check(&final_state, view.capacity as usize) {
            problems.push(e);
        }
        let counted: BTreeSet<&str> = view.seats().map(|s| s.id.as_str()).collect();
        if counted.len() as u64 != view.capacity {
            problems.push(format!(
                "the seat map lists {} seats, the capacity is {}",
                counted.len(),
                view.capacity
            ));
        }
        if !problems.is_empty() {
            bail!(
                "the history of {} operations fails the checker: {}",
                history.entries.len(),
                problems.join("; ")
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{RowView, SeatView, SectionView};

    fn view(statuses: &[(&str, &str)]) -> EventView {
        let count = |status: &str| statuses.iter().filter(|(_, s)| *s == status).count() as u64;
        EventView {
            event_id: 1,
            capacity: statuses.len() as u64,
            available: count("available"),
            held: count("held"),
            sold: count("sold"),
            sections: vec![SectionView {
                name: "A".into(),
                rows: vec![RowView {
                    name: "1".into(),
                    seats: statuses
                        .iter()
                        .map(|(id, status)| SeatView {
                            id: (*id).into(),
                            status: (*status).into(),
                        })
                        .collect(),
                }],
            }],
        }
    }

    /// Client 0 holds and confirms A-1-1; client 1 fails to hold it.
    fn booked() -> Recorder {
        let recorder = Recorder::default();
        let seat = vec!["A-1-1".to_owned()];
        let (hold, pending) = recorder.invoke_hold(0, &seat);
        recorder.complete(pending, Some(true));
        let (_, lost) = recorder.invoke_hold(1, &seat);
        recorder.complete(lost, Some(false));
        let confirm = recorder.invoke_confirm(0, hold);
        recorder.complete(confirm, Some(true));
        recorder
    }

    #[test]
    fn a_kept_booking_passes() {
        let report = booked().check(&view(&[("A-1-1", "sold"), ("A-1-2", "available")]));
        assert!(report.is_ok(), "{report:?}");
    }

    #[test]
    fn a_lost_booking_fails() {
        let error = booked()
            .check(&view(&[("A-1-1", "available"), ("A-1-2", "available")]))
            .unwrap_err();
        assert!(error.to_string().contains("fails the checker"), "{error}");
    }

    #[test]
    fn a_sale_nobody_made_fails() {
        let error = booked()
            .check(&view(&[("A-1-1", "sold"), ("A-1-2", "sold")]))
            .unwrap_err();
        assert!(error.to_string().contains("fails the checker"), "{error}");
    }
}
