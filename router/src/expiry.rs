//! Expiring holds when nobody writes.
//!
//! The state machine frees expired holds whenever it applies an entry, at the
//! entry's time. On a quiet event no entry may come for minutes, so the
//! leader proposes a `Tick` once the earliest hold expiry has passed; every
//! replica then frees the same seats at the same log position.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booking::{Command, RequestId};
use tokio_util::sync::CancellationToken;

use crate::Router;

/// Runs until `shutdown` is cancelled.
pub async fn run_expiry_ticker(router: std::sync::Arc<Router>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if !router.raft().is_leader() {
            continue;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let due = router
            .state
            .read()
            .next_hold_expiry()
            .is_some_and(|at| at <= now_ms);
        if !due {
            continue;
        }
        ticks += 1;
        // Ticks are never de-duplicated, so the id only labels the entry.
        let Ok(id) = RequestId::new(&format!("tick-{}-{ticks}", router.node_id())) else {
            continue;
        };
        if let Err(e) = router.submit(id, Command::Tick).await {
            tracing::debug!(error = %e, "expiry tick not applied");
        }
    }
}
