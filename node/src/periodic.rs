//! The clock of a node's background loops: one tick per period, missed ticks
//! skipped (a loop that overran does not then run several times in a row),
//! and an end as soon as shutdown is asked for.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub struct Periodic {
    interval: Interval,
    shutdown: CancellationToken,
}

impl Periodic {
    pub fn new(period: Duration, shutdown: &CancellationToken) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            interval,
            shutdown: shutdown.clone(),
        }
    }

    /// Waits for the next tick: `true` to run the loop body, `false` to stop.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}
