//! The node's live availability hub: what the local replicas' applied
//! entries changed, kept per watched event for clients to follow and resume.
//!
//! Every replica's state machine publishes the changes of each entry while it
//! still holds the state's write lock (`StateMachine::apply`). So a reader
//! that holds the state's read lock sees a state and a hub that agree: every
//! change up to the group's applied index is in the state, and every later
//! change will come through the channel. That is what lets a subscriber take
//! a snapshot of the seat map and then follow changes without a gap or a
//! duplicate.
//!
//! A change's position is `(log index, ordinal)`, the same on every replica
//! of the group. Clients see it as the SSE id `{group}.{index}.{ordinal}`; a
//! snapshot's id is `{group}.{applied}`, meaning "everything through entry
//! `applied`".
//!
//! Bounds: only events someone watches have a buffer; each keeps its last
//! `buffer` changes and is dropped `RETAIN_UNWATCHED` after its last
//! subscriber left. Each subscriber's channel holds at most `buffer`
//! changes; a subscriber that falls further behind is cut off (it sees
//! `Lagged`) rather than growing memory. A client cut off, or one whose last
//! id fell out of the buffer, gets a fresh snapshot when it reconnects.
//!
//! It does not render changes for clients or know about HTTP (`api::live`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use booking::{AvailabilityChange, EventId};
use tokio::sync::broadcast;

/// A change's place in its group's log: (log index, ordinal in the entry).
pub type Position = (u64, u32);

/// How long an event's buffer outlives its last subscriber, so that a client
/// reconnecting after a short break resumes instead of starting over.
pub const RETAIN_UNWATCHED: Duration = Duration::from_secs(600);

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Change(Arc<AvailabilityChange>),
    /// The replica installed a snapshot: changes were skipped, so the
    /// subscriber must read the seat map afresh.
    Reset,
}

/// The position of a change.
pub fn position_of(change: &AvailabilityChange) -> Position {
    (change.log_index, change.ordinal)
}

struct EventFeed {
    group: u64,
    recent: VecDeque<Arc<AvailabilityChange>>,
    /// Every change after this position is in `recent`.
    complete_after: Position,
    sender: broadcast::Sender<FeedItem>,
    last_watched: Instant,
}

#[derive(Default)]
struct Hub {
    events: HashMap<EventId, EventFeed>,
    /// The last applied log index of each local replica, by group.
    applied: HashMap<u64, u64>,
    published: u64,
}

/// Shared by every replica of a node and by its HTTP edge.
#[derive(Clone)]
pub struct FeedHub {
    hub: Arc<Mutex<Hub>>,
    buffer: usize,
}

/// A new subscriber's start: either the changes since its last position, or
/// a snapshot to take (at `position`) because those are not all here.
#[derive(Debug)]
pub struct Subscription {
    pub receiver: broadcast::Receiver<FeedItem>,
    /// `Some`: replay these, then follow the receiver. `None`: send a
    /// snapshot first.
    pub backlog: Option<Vec<Arc<AvailabilityChange>>>,
    /// Where the subscriber stands once the backlog or snapshot is sent:
    /// the receiver's changes at or before it are duplicates.
    pub position: Position,
}

impl FeedHub {
    /// A hub keeping `buffer` changes per watched event (and per subscriber).
    pub fn new(buffer: usize) -> FeedHub {
        FeedHub {
            hub: Arc::new(Mutex::new(Hub::default())),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes one entry's changes and the group's new applied index. The
    /// caller holds the group state's write lock.
    pub(crate) fn publish(&self, group: u64, applied: u64, changes: Vec<AvailabilityChange>) {
        let mut hub = self.lock();
        hub.applied.insert(group, applied);
        if changes.is_empty() || hub.events.is_empty() {
            return;
        }
        for change in changes {
            let Some(feed) = hub.events.get_mut(&change.event_id) else {
                continue;
            };
            let change = Arc::new(change);
            if feed.recent.len() == self.buffer
                && let Some(oldest) = feed.recent.pop_front()
            {
                feed.complete_after = position_of(&oldest);
            }
            feed.recent.push_back(change.clone());
            // No receivers is fine: the buffer still serves resumes.
            let _ = feed.sender.send(FeedItem::Change(change));
        }
        hub.published += 1;
        if hub.published.is_multiple_of(1024) {
            hub.events.retain(|_, feed| {
                feed.sender.receiver_count() > 0 || feed.last_watched.elapsed() < RETAIN_UNWATCHED
            });
        }
    }

    /// A replica installed a snapshot at `applied`: its watched events start
    /// over from there.
    pub(crate) fn reset_group(&self, group: u64, applied: u64) {
        let mut hub = self.lock();
        hub.applied.insert(group, applied);
        for feed in hub.events.values_mut().filter(|feed| feed.group == group) {
            feed.recent.clear();
            feed.complete_after = (applied, u32::MAX);
            let _ = feed.sender.send(FeedItem::Reset);
        }
    }

    /// Whether any event has a feed (someone watches or recently watched).
    pub fn watching_any(&self) -> bool {
        !self.lock().events.is_empty()
    }

    /// The group's applied index as published.
    pub fn applied(&self, group: u64) -> u64 {
        self.lock().applied.get(&group).copied().unwrap_or(0)
    }

    /// Subscribes to `event` of `group`, resuming after `after` if the
    /// changes since are all buffered. The caller must hold the group state's
    /// read lock, and take any snapshot under that same lock.
    pub fn subscribe(&self, group: u64, event: EventId, after: Option<Position>) -> Subscription {
        let mut hub = self.lock();
        let applied = hub.applied.get(&group).copied().unwrap_or(0);
        let buffer = self.buffer;
        let feed = hub.events.entry(event).or_insert_with(|| EventFeed {
            group,
            recent: VecDeque::new(),
            complete_after: (applied, u32::MAX),
            sender: broadcast::channel(buffer).0,
            last_watched: Instant::now(),
        });
        if feed.group != group {
            // The event moved to another group: its old positions mean nothing.
            feed.group = group;
            feed.recent.clear();
            feed.complete_after = (applied, u32::MAX);
        }
        feed.last_watched = Instant::now();
        let receiver = feed.sender.subscribe();
        match after {
            Some(after) if after >= feed.complete_after => {
                let backlog: Vec<_> = feed
                    .recent
                    .iter()
                    .filter(|change| position_of(change) > after)
                    .cloned()
                    .collect();
                let position = backlog.last().map_or(after, |last| position_of(last));
                Subscription {
                    receiver,
                    backlog: Some(backlog),
                    position,
                }
            }
            _ => Subscription {
                receiver,
                backlog: None,
                position: (applied, u32::MAX),
            },
        }
    }

    /// Marks `event` as watched now (a subscriber is still connected).
    pub fn touch(&self, event: EventId) {
        if let Some(feed) = self.lock().events.get_mut(&event) {
            feed.last_watched = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use booking::ChangeCause;

    fn change(event: u64, index: u64, ordinal: u32) -> AvailabilityChange {
        AvailabilityChange {
            event_id: EventId(event),
            log_index: index,
            ordinal,
            at_ms: index,
            cause: ChangeCause::Held,
            seats: Vec::new(),
            areas: Vec::new(),
            tiers: Vec::new(),
            available: 0,
        }
    }

    #[test]
    fn a_subscriber_resumes_from_the_buffer_or_is_told_to_take_a_snapshot() {
        let hub = FeedHub::new(3);
        hub.publish(1, 5, vec![change(7, 5, 0)]);
        // Nobody watched event 7 at index 5: a new subscriber starts from a snapshot at 5.
        let first = hub.subscribe(1, EventId(7), None);
        assert!(first.backlog.is_none());
        assert_eq!(first.position, (5, u32::MAX));
        for index in 6..=9 {
            hub.publish(1, index, vec![change(7, index, 0)]);
        }
        // The buffer holds 7, 8 and 9: resuming after 6 replays them.
        let resumed = hub.subscribe(1, EventId(7), Some((6, 0)));
        let replayed: Vec<u64> = resumed.backlog.unwrap().iter().map(|c| c.log_index).collect();
        assert_eq!(replayed, [7, 8, 9]);
        assert_eq!(resumed.position, (9, 0));
        // After 5 is no longer complete (6 fell out): a snapshot.
        let too_old = hub.subscribe(1, EventId(7), Some((5, u32::MAX)));
        assert!(too_old.backlog.is_none());
        assert_eq!(too_old.position, (9, u32::MAX));
        // Up to date: nothing to replay.
        assert_eq!(
            hub.subscribe(1, EventId(7), Some((9, 0))).backlog.unwrap().len(),
            0
        );
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_buffering_without_bound() {
        let hub = FeedHub::new(2);
        let mut slow = hub.subscribe(1, EventId(7), None).receiver;
        for index in 1..=5 {
            hub.publish(1, index, vec![change(7, index, 0)]);
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn a_snapshot_install_resets_the_group_feeds() {
        let hub = FeedHub::new(8);
        let mut watching = hub.subscribe(1, EventId(7), None).receiver;
        hub.publish(1, 3, vec![change(7, 3, 0)]);
        hub.reset_group(1, 40);
        assert!(matches!(watching.try_recv(), Ok(FeedItem::Change(_))));
        assert!(matches!(watching.try_recv(), Ok(FeedItem::Reset)));
        let again = hub.subscribe(1, EventId(7), Some((3, 0)));
        assert!(
            again.backlog.is_none(),
            "positions before the snapshot cannot be resumed"
        );
        assert_eq!(again.position, (40, u32::MAX));
    }
}
