//! Stopping the node when a replica's Raft stops on its own.
//!
//! openraft stops a replica for good when its storage fails (a RocksDB write
//! or read error in the log or in apply, a record that does not decode) or
//! its core panics. All of a node's replicas share one database, so such a
//! fault is the node's, not one group's: carrying on would leave the node
//! answering for some groups and silently dead for others. This loop finds
//! any replica stopped that way and stops the whole node, which then exits
//! with an error naming it; restarted, the node re-applies its log from what
//! is on disk (applied state is written with the entries it covers, so
//! nothing acknowledged is lost and nothing half-applied is kept).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::Fatal;
use tokio_util::sync::CancellationToken;
use transport::replicas::Groups;

use crate::periodic::Periodic;

/// How often replicas are looked at (a read of each one's metrics).
const INTERVAL: Duration = Duration::from_secs(1);

/// The first fault found, for the node's exit error.
#[derive(Clone, Default)]
pub struct FirstFault(Arc<Mutex<Option<String>>>);

impl FirstFault {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, fault: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(fault);
    }
}

/// Until `shutdown`: if a replica stopped for a storage error or a panic,
/// records why and cancels `shutdown` (the node's own token).
pub async fn watch(groups: Groups, fault: FirstFault, shutdown: CancellationToken) {
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    while clock.next().await {
        for replica in groups.list() {
            let why = match &replica.raft.metrics().borrow_watched().running_state {
                Ok(()) | Err(Fatal::Stopped) => continue,
                Err(fatal) => fatal.to_string(),
            };
            let message = format!(
                "replica {} of group {} stopped: {why}",
                replica.replica_id, replica.group_id
            );
            tracing::error!(group = replica.group_id, replica = replica.replica_id, %why,
                "a replica's Raft stopped on a storage fault or a panic; stopping the node");
            fault.set(message);
            shutdown.cancel();
            return;
        }
    }
}
