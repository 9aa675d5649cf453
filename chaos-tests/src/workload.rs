//! The booking workload the chaos tests run while they break things.
//!
//! A client holds a random free seat of one event, confirms it and records the
//! acknowledged order, a bounded number of times. Every write has its own
//! `Idempotency-Key`, reused by its retries, so a retry after an unknown
//! outcome learns the first outcome instead of booking twice. What clients
//! record is what the checkers in [`crate::checks`] hold the cluster to, and
//! every hold and confirm goes into a [`Recorder`] for the linearizability
//! checker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, ensure};
use rand::SeedableRng;
use rand::rngs::StdRng;
use region_config::NodeId;

use crate::checks::ConfirmedOrder;
use crate::history::Recorder;
use crate::{ApiClient, SeatPicker, expect_ok};

/// One booking client of one event.
#[derive(Clone)]
pub struct Booker {
    pub client: ApiClient,
    pub event_id: u64,
    pub picker: Arc<SeatPicker>,
    /// Counts acknowledged confirms across all clients.
    pub confirms: Arc<AtomicU64>,
    /// Nodes the clients send to (client `n` starts at `nodes[n % len]`).
    pub nodes: Vec<NodeId>,
    /// Where every hold and confirm is recorded for the linearizability
    /// checker (`Recorder::check`).
    pub history: Arc<Recorder>,
}

impl Booker {
    /// Client `number`: `holds` hold attempts or until no seat is left.
    pub async fn book(self, number: u64, holds: u64, seed: u64) -> anyhow::Result<Vec<ConfirmedOrder>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let holder = format!("c{number}");
        let home = self.nodes[number as usize % self.nodes.len()];
        let event = self.event_id;
        let mut orders = Vec::new();
        for attempt in 0..holds {
            let Some((index, seat)) = self.picker.pick(&mut rng) else {
                break;
            };
            let seats = vec![seat.to_owned()];
            let key = format!("e{event}-c{number}-a{attempt}");
            let (checked_hold, pending) = self.history.invoke_hold(number, &seats);
            let hold = self
                .client
                .hold_seats(home, event, &holder, &seats, &format!("{key}-hold"))
                .await;
            self.picker.mark_taken(index);
            let hold = match hold {
                Ok(Ok(hold)) => {
                    self.history.complete(pending, Some(true));
                    hold
                }
                Ok(Err(problem)) if problem.code == "seat_unavailable" => {
                    self.history.complete(pending, Some(false));
                    continue;
                }
                Ok(Err(problem)) => {
                    self.history.complete(pending, Some(false));
                    bail!("holding {seat} for {holder}: {problem}")
                }
                Err(e) => {
                    self.history.complete(pending, None);
                    return Err(e);
                }
            };
            let pending = self.history.invoke_confirm(number, checked_hold);
            let order = self
                .client
                .confirm(home, event, &hold.hold_id, &holder, &format!("{key}-confirm"))
                .await;
            self.history.complete(
                pending,
                match &order {
                    Ok(Ok(_)) => Some(true),
                    Ok(Err(_)) => Some(false),
                    Err(_) => None,
                },
            );
            let order = expect_ok(order?, &format!("confirming hold {} of {holder}", hold.hold_id))?;
            ensure!(
                order.seats() == seats,
                "order {} holds {:?}, the hold had {seats:?}",
                order.order_id,
                order.seats()
            );
            orders.push(ConfirmedOrder {
                order_id: order.order_id,
                holder: holder.clone(),
                seats,
            });
            self.confirms.fetch_add(1, Ordering::Relaxed);
        }
        Ok(orders)
    }
}
