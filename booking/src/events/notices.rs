//! The notification outbox, replicated with the event it is about.
//!
//! A notice is written by the same entry as the change it reports: the entry
//! that confirms an order also writes "order confirmed", the entry that
//! records a declined payment writes "payment failed", and so on. So a
//! notice exists if and only if its change happened, on every replica, and a
//! crash can lose neither.
//!
//! Delivery is the group leader's (`node::notifications`): it reads the due
//! notices, delivers each through a channel, and records the outcome with
//! `NoticeDelivered` or `NoticeFailed`. Because the outcome is replicated, a
//! new leader carries on where the old one stopped: it redelivers at most the
//! notices that were in flight when the old leader died (delivery is at least
//! once; each notice has a stable id that receivers use to drop duplicates),
//! and it keeps the backoff of failing ones instead of retrying them all at
//! once.
//!
//! Some notices are scheduled rather than immediate: "hold about to expire"
//! is due shortly before the hold's expiry and is withdrawn when the hold
//! ends first, and an event reminder is due at the time the customer's
//! subscription named. `next_attempt_ms` is when a pending notice is due.
//!
//! Notices are only written for customers with an account (an address on
//! file); staff bookings for a named holder and guests are not notified.
//! Settled notices (delivered or given up) are kept for
//! [`NOTICE_RETENTION_MS`] of log time, then forgotten.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::keys::{EventKey, EventKeys};
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId};

/// How long a delivered or abandoned notice is kept, in log time.
pub const NOTICE_RETENTION_MS: Millis = 7 * 24 * 60 * 60 * 1000;
/// Delivery attempts before a notice is given up.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// First retry delay; each further failure doubles it, up to the maximum.
pub const FIRST_RETRY_MS: Millis = 1_000;
pub const MAX_RETRY_MS: Millis = 5 * 60 * 1000;
/// Longest error text kept with a failed attempt.
pub const MAX_NOTICE_ERROR: usize = 300;
/// "Hold about to expire" is due this long before the expiry, or a quarter of
/// the hold's lifetime before it if that is shorter.
pub const HOLD_WARNING_LEAD_MS: Millis = 2 * 60 * 1000;

/// A notice's id: the log index of the entry that wrote it and its ordinal
/// in that entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NoticeId {
    pub log_index: u64,
    pub ordinal: u32,
}

impl std::fmt::Display for NoticeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.log_index, self.ordinal)
    }
}

/// What a notice tells its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    OrderConfirmed {
        order_id: OrderId,
        total: Money,
        tickets: u32,
    },
    PaymentFailed {
        hold_id: HoldId,
        reason: String,
    },
    HoldExpiring {
        hold_id: HoldId,
        expires_at_ms: Millis,
    },
    EventReminder,
    /// The organiser cancelled the event; `order_id` was cancelled and, if it
    /// was paid, refunded. Waitlisted and subscribed customers without an
    /// order are told too (`order_id` is `None`).
    EventCancelled {
        order_id: Option<OrderId>,
        refunded: bool,
    },
    /// Places freed up and are held for the customer until `expires_at_ms`.
    WaitlistOffer {
        hold_id: HoldId,
        expires_at_ms: Millis,
        places: u32,
    },
}

impl NoticeKind {
    /// The stable name used in webhooks, logs and the API.
    pub fn name(&self) -> &'static str {
        match self {
            NoticeKind::OrderConfirmed { .. } => "order_confirmed",
            NoticeKind::PaymentFailed { .. } => "payment_failed",
            NoticeKind::HoldExpiring { .. } => "hold_expiring",
            NoticeKind::EventReminder => "event_reminder",
            NoticeKind::EventCancelled { .. } => "event_cancelled",
            NoticeKind::WaitlistOffer { .. } => "waitlist_offer",
        }
    }
}

/// How a notice reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    /// A signed HTTP POST to the customer's webhook URL.
    Webhook,
    /// The node's log: nothing leaves the cluster (the demo's default sink).
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Pending {
        attempts: u32,
        next_attempt_ms: Millis,
        last_error: Option<String>,
    },
    Delivered {
        at_ms: Millis,
        attempts: u32,
        channel: Channel,
    },
    /// Given up: too many failed attempts, or nowhere to deliver to.
    Failed {
        at_ms: Millis,
        attempts: u32,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub recipient: CustomerId,
    pub kind: NoticeKind,
    /// The channel the customer chose for this notice (a reminder
    /// subscription names one); `None`: their account's preference.
    pub channel: Option<Channel>,
    pub created_at_ms: Millis,
    pub delivery: Delivery,
}

/// A notice as the dispatcher and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeView {
    pub event_id: EventId,
    pub notice_id: NoticeId,
    pub recipient: CustomerId,
    pub kind: NoticeKind,
    pub channel: Option<Channel>,
    pub created_at_ms: Millis,
    pub delivery: Delivery,
}

impl NoticeView {
    /// The id receivers de-duplicate by: the same on every replica and on
    /// every delivery attempt. Shaped like an RFC 5322 Message-ID body.
    pub fn message_id(&self) -> String {
        format!(
            "notice.{}.{}.{}@boxoffice",
            self.event_id.0, self.notice_id.log_index, self.notice_id.ordinal
        )
    }
}

type Key = (EventId, NoticeId);

/// A notice to write: to whom, what, through which channel and when.
#[derive(Debug, Clone)]
pub(crate) struct NewNotice {
    pub recipient: CustomerId,
    pub kind: NoticeKind,
    pub channel: Option<Channel>,
    pub due_ms: Millis,
}

/// The outbox of one group, with indexes for the dispatcher and the rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notices {
    notices: BTreeMap<Key, NoticeRecord>,
    /// Derived: pending notices by when they are due.
    due: BTreeSet<(Millis, Key)>,
    /// Derived: settled notices by when they settled, for forgetting them.
    settled: BTreeSet<(Millis, Key)>,
    /// Derived: the pending "about to expire" notice of each active hold.
    hold_warnings: BTreeMap<(EventId, HoldId), NoticeId>,
    /// Derived: the pending reminder of each subscribed customer.
    reminders: BTreeMap<(EventId, CustomerId), NoticeId>,
    /// The entry being applied and how many notices it wrote; not state.
    writing: (u64, u32),
}

impl Notices {
    /// Adds a notice written by entry `log_index` at `now`.
    pub fn add(
        &mut self,
        dirty: &mut EventKeys,
        event_id: EventId,
        log_index: u64,
        now: Millis,
        notice: NewNotice,
    ) -> NoticeId {
        if self.writing.0 != log_index {
            self.writing = (log_index, 0);
        }
        let notice_id = NoticeId {
            log_index,
            ordinal: self.writing.1,
        };
        self.writing.1 += 1;
        let record = NoticeRecord {
            recipient: notice.recipient,
            kind: notice.kind,
            channel: notice.channel,
            created_at_ms: now,
            delivery: Delivery::Pending {
                attempts: 0,
                next_attempt_ms: notice.due_ms,
                last_error: None,
            },
        };
        self.put(dirty, (event_id, notice_id), record);
        notice_id
    }

    /// Withdraws a pending notice that no longer applies; settled ones stay.
    pub fn withdraw(&mut self, dirty: &mut EventKeys, event_id: EventId, notice_id: NoticeId) {
        let key = (event_id, notice_id);
        if let Some(record) = self.notices.get(&key)
            && matches!(record.delivery, Delivery::Pending { .. })
        {
            let record = self.notices.remove(&key).expect("looked up above");
            self.unindex(key, &record);
            dirty.insert((event_id, EventKey::Notice(notice_id.log_index, notice_id.ordinal)));
        }
    }

    pub fn hold_warning(&self, event_id: EventId, hold_id: HoldId) -> Option<NoticeId> {
        self.hold_warnings.get(&(event_id, hold_id)).copied()
    }

    pub fn reminder(&self, event_id: EventId, customer: &CustomerId) -> Option<NoticeId> {
        self.reminders.get(&(event_id, customer.clone())).copied()
    }

    /// The pending hold warnings of an event, and its subscribers with their
    /// pending reminders.
    pub fn scheduled_of(&self, event_id: EventId) -> (Vec<NoticeId>, Vec<(CustomerId, NoticeId)>) {
        let warnings = self
            .hold_warnings
            .range((event_id, HoldId(0))..=(event_id, HoldId(u64::MAX)))
            .map(|(_, &notice)| notice)
            .collect();
        let reminders = self
            .reminders
            .iter()
            .filter(|((event, _), _)| *event == event_id)
            .map(|((_, customer), &notice)| (customer.clone(), notice))
            .collect();
        (warnings, reminders)
    }

    pub fn get(&self, event_id: EventId, notice_id: NoticeId) -> Option<&NoticeRecord> {
        self.notices.get(&(event_id, notice_id))
    }

    /// Records a delivery, and says whether it did. A notice already
    /// settled stays as it was.
    pub fn delivered(
        &mut self,
        dirty: &mut EventKeys,
        event_id: EventId,
        notice_id: NoticeId,
        now: Millis,
        channel: Channel,
    ) -> bool {
        let key = (event_id, notice_id);
        let Some(record) = self.notices.get(&key) else {
            return false;
        };
        if let Delivery::Pending { attempts, .. } = record.delivery {
            let mut record = record.clone();
            record.delivery = Delivery::Delivered {
                at_ms: now,
                attempts: attempts + 1,
                channel,
            };
            self.put(dirty, key, record);
            return true;
        }
        false
    }

    /// Records a failed attempt: retried with backoff, or given up after
    /// `MAX_DELIVERY_ATTEMPTS` or at once if `permanent`. Says which
    /// (`Some(true)`: given up), or `None` if the notice was not pending.
    pub fn failed(
        &mut self,
        dirty: &mut EventKeys,
        event_id: EventId,
        notice_id: NoticeId,
        now: Millis,
        error: &str,
        permanent: bool,
    ) -> Option<bool> {
        let key = (event_id, notice_id);
        let record = self.notices.get(&key)?;
        let Delivery::Pending { attempts, .. } = record.delivery else {
            return None;
        };
        let attempts = attempts + 1;
        let mut error = error.to_owned();
        if error.len() > MAX_NOTICE_ERROR {
            let mut end = MAX_NOTICE_ERROR;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        let mut record = record.clone();
        let given_up = permanent || attempts >= MAX_DELIVERY_ATTEMPTS;
        record.delivery = if given_up {
            Delivery::Failed {
                at_ms: now,
                attempts,
                error,
            }
        } else {
            Delivery::Pending {
                attempts,
                next_attempt_ms: now.saturating_add(retry_delay(attempts)),
                last_error: Some(error),
            }
        };
        self.put(dirty, key, record);
        Some(given_up)
    }

    /// Forgets notices settled more than `NOTICE_RETENTION_MS` before `now`.
    pub fn forget_settled(&mut self, dirty: &mut EventKeys, now: Millis) {
        while let Some(&(at_ms, key)) = self.settled.first() {
            if now.saturating_sub(at_ms) <= NOTICE_RETENTION_MS {
                break;
            }
            let record = self.notices.remove(&key).expect("indexed notices exist");
            self.unindex(key, &record);
            dirty.insert((key.0, EventKey::Notice(key.1.log_index, key.1.ordinal)));
        }
    }

    /// Pending notices due at `now`, soonest first, at most `limit`.
    pub fn due(&self, now: Millis, limit: usize) -> Vec<NoticeView> {
        self.due
            .iter()
            .take_while(|(due_ms, _)| *due_ms <= now)
            .take(limit)
            .filter_map(|&(_, (event_id, notice_id))| self.view(event_id, notice_id))
            .collect()
    }

    /// A customer's notices about an event, oldest first.
    pub fn of(&self, event_id: EventId, customer: &CustomerId) -> Vec<NoticeView> {
        self.notices
            .range(
                (
                    event_id,
                    NoticeId {
                        log_index: 0,
                        ordinal: 0,
                    },
                )..,
            )
            .take_while(|((event, _), _)| *event == event_id)
            .filter(|(_, record)| &record.recipient == customer)
            .filter_map(|(&(event, notice), _)| self.view(event, notice))
            .collect()
    }

    pub fn view(&self, event_id: EventId, notice_id: NoticeId) -> Option<NoticeView> {
        let record = self.notices.get(&(event_id, notice_id))?;
        Some(NoticeView {
            event_id,
            notice_id,
            recipient: record.recipient.clone(),
            kind: record.kind.clone(),
            channel: record.channel,
            created_at_ms: record.created_at_ms,
            delivery: record.delivery.clone(),
        })
    }

    fn put(&mut self, dirty: &mut EventKeys, key: Key, record: NoticeRecord) {
        if let Some(old) = self.notices.remove(&key) {
            self.unindex(key, &old);
        }
        self.index(key, &record);
        self.notices.insert(key, record);
        dirty.insert((key.0, EventKey::Notice(key.1.log_index, key.1.ordinal)));
    }

    fn index(&mut self, key: Key, record: &NoticeRecord) {
        match record.delivery {
            Delivery::Pending { next_attempt_ms, .. } => {
                self.due.insert((next_attempt_ms, key));
                match record.kind {
                    NoticeKind::HoldExpiring { hold_id, .. } => {
                        self.hold_warnings.insert((key.0, hold_id), key.1);
                    }
                    NoticeKind::EventReminder => {
                        self.reminders.insert((key.0, record.recipient.clone()), key.1);
                    }
                    _ => {}
                }
            }
            Delivery::Delivered { at_ms, .. } | Delivery::Failed { at_ms, .. } => {
                self.settled.insert((at_ms, key));
            }
        }
    }

    fn unindex(&mut self, key: Key, record: &NoticeRecord) {
        match record.delivery {
            Delivery::Pending { next_attempt_ms, .. } => {
                self.due.remove(&(next_attempt_ms, key));
                match record.kind {
                    NoticeKind::HoldExpiring { hold_id, .. } => {
                        self.hold_warnings.remove(&(key.0, hold_id));
                    }
                    NoticeKind::EventReminder => {
                        self.reminders.remove(&(key.0, record.recipient.clone()));
                    }
                    _ => {}
                }
            }
            Delivery::Delivered { at_ms, .. } | Delivery::Failed { at_ms, .. } => {
                self.settled.remove(&(at_ms, key));
            }
        }
    }

    pub fn record(&self, event_id: EventId, notice_id: NoticeId) -> Option<NoticeRecord> {
        self.notices.get(&(event_id, notice_id)).cloned()
    }

    /// Every notice with its key.
    pub fn all(&self) -> impl Iterator<Item = (&Key, &NoticeRecord)> {
        self.notices.iter()
    }

    /// Loads one notice.
    pub fn load(&mut self, event_id: EventId, notice_id: NoticeId, notice: NoticeRecord) {
        let key = (event_id, notice_id);
        self.index(key, &notice);
        self.notices.insert(key, notice);
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.notices.keys()
    }

    pub fn check_indexes(&self) -> Result<(), String> {
        let mut rebuilt = Notices::default();
        for (&key, record) in &self.notices {
            rebuilt.index(key, record);
        }
        if rebuilt.due != self.due
            || rebuilt.settled != self.settled
            || rebuilt.hold_warnings != self.hold_warnings
            || rebuilt.reminders != self.reminders
        {
            return Err("notice indexes do not match the notices".to_owned());
        }
        Ok(())
    }
}

/// The delay before retry number `attempts` (1 after the first failure).
pub fn retry_delay(attempts: u32) -> Millis {
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_RETRY_MS.saturating_mul(1 << doublings).min(MAX_RETRY_MS)
}

/// When to warn about a hold of `ttl_ms` that expires at `expires_at_ms`.
pub fn hold_warning_due(expires_at_ms: Millis, ttl_ms: u64) -> Millis {
    expires_at_ms.saturating_sub(HOLD_WARNING_LEAD_MS.min(ttl_ms / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> CustomerId {
        CustomerId::new("u.1.alice").unwrap()
    }

    fn new(kind: NoticeKind, due_ms: Millis) -> NewNotice {
        NewNotice {
            recipient: alice(),
            kind,
            channel: None,
            due_ms,
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        assert_eq!(retry_delay(1), 1_000);
        assert_eq!(retry_delay(2), 2_000);
        assert_eq!(retry_delay(4), 8_000);
        assert_eq!(retry_delay(30), MAX_RETRY_MS);

        let mut notices = Notices::default();
        let mut dirty = BTreeSet::new();
        let event = EventId(1);
        let id = notices.add(&mut dirty, event, 5, 100, new(NoticeKind::EventReminder, 100));
        assert_eq!(notices.due(100, 10).len(), 1);
        notices.failed(&mut dirty, event, id, 200, "connection refused", false);
        assert!(notices.due(200, 10).is_empty(), "backing off");
        assert_eq!(notices.due(1_200, 10).len(), 1);
        for attempt in 2..=MAX_DELIVERY_ATTEMPTS {
            notices.failed(
                &mut dirty,
                event,
                id,
                10_000_000 * u64::from(attempt),
                "still down",
                false,
            );
        }
        assert!(matches!(
            notices.get(event, id).unwrap().delivery,
            Delivery::Failed {
                attempts: MAX_DELIVERY_ATTEMPTS,
                ..
            }
        ));
        assert!(notices.due(u64::MAX, 10).is_empty());
        notices.check_indexes().unwrap();
    }

    #[test]
    fn delivery_is_recorded_once_and_forgotten_after_retention() {
        let mut notices = Notices::default();
        let mut dirty = BTreeSet::new();
        let event = EventId(1);
        let first = notices.add(&mut dirty, event, 9, 0, new(NoticeKind::EventReminder, 0));
        let cancelled = NoticeKind::EventCancelled {
            order_id: None,
            refunded: false,
        };
        let second = notices.add(&mut dirty, event, 9, 0, new(cancelled, 0));
        assert_eq!(first.ordinal + 1, second.ordinal, "one entry, two ordinals");
        notices.delivered(&mut dirty, event, first, 10, Channel::Email);
        notices.delivered(&mut dirty, event, first, 20, Channel::Log);
        assert!(matches!(
            notices.get(event, first).unwrap().delivery,
            Delivery::Delivered {
                at_ms: 10,
                attempts: 1,
                channel: Channel::Email
            }
        ));
        assert_eq!(
            notices.reminder(event, &alice()),
            None,
            "a delivered reminder is not pending"
        );
        notices.forget_settled(&mut dirty, NOTICE_RETENTION_MS + 11);
        assert!(notices.get(event, first).is_none());
        assert!(
            notices.get(event, second).is_some(),
            "pending notices are never forgotten"
        );
        notices.check_indexes().unwrap();
    }

    #[test]
    fn withdrawing_leaves_settled_notices_alone() {
        let mut notices = Notices::default();
        let mut dirty = BTreeSet::new();
        let event = EventId(2);
        let kind = NoticeKind::HoldExpiring {
            hold_id: HoldId(3),
            expires_at_ms: 500,
        };
        let id = notices.add(&mut dirty, event, 3, 0, new(kind, 400));
        assert_eq!(notices.hold_warning(event, HoldId(3)), Some(id));
        notices.withdraw(&mut dirty, event, id);
        assert!(notices.get(event, id).is_none());
        assert_eq!(notices.hold_warning(event, HoldId(3)), None);
        notices.check_indexes().unwrap();
    }
}
