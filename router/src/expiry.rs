//! Expiring holds when nobody writes, and serving waitlists.
//!
//! The state machine frees expired holds whenever it applies an entry, at the
//! entry's time. On a quiet event no entry may come for minutes, so the
//! leader of each group proposes a `Tick` once the earliest hold expiry in
//! that group has passed; every replica then frees the same seats at the same
//! log position. Likewise, when places a waitlisted customer wants are
//! available, the leader proposes `OfferWaitlist` for the event (one offer
//! per entry, so the new hold's id is that entry's index). One loop serves
//! every group this node hosts: checking a group
//! is a lock-free metrics read plus, on leaders, one short state read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booking::{Command, EventCommand, RequestId};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio_util::sync::CancellationToken;
use transport::booking_service::{ForwardedWrite, LeaderReply};

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
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for replica in router.groups().list() {
            let leads = replica.raft.metrics().borrow_watched().state == ServerState::Leader;
            if !leads {
                continue;
            }
            let (due, offers) = {
                let state = replica.state.read();
                let due = state.next_hold_expiry().is_some_and(|at| at <= now_ms);
                (due, state.waitlist_offers_due())
            };
            let mut housekeeping: Vec<Command> = offers
                .into_iter()
                .map(|event_id| Command::Event(event_id, EventCommand::OfferWaitlist))
                .collect();
            if due {
                housekeeping.insert(0, Command::Tick);
            }
            for command in housekeeping {
                ticks += 1;
                // Housekeeping is never de-duplicated, so the id only labels the entry.
                let Ok(request_id) = RequestId::new(&format!("tick-{}-{ticks}", router.node_id())) else {
                    continue;
                };
                let write = ForwardedWrite { request_id, command };
                let reply = crate::leader::submit(
                    &replica,
                    router.groups().clock(),
                    write,
                    router.retrier.policy.attempt_timeout,
                )
                .await;
                if !matches!(reply, LeaderReply::Done(_)) {
                    tracing::debug!(group = replica.group_id, ?reply, "housekeeping entry not applied");
                }
            }
        }
    }
}
