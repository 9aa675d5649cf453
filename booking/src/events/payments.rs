//! Payments: the hold → pay → confirm saga, replicated with the event.
//!
//! A payment lives in its event's group, next to the hold it pays for, so
//! every step of the saga is one atomic entry with the booking change it
//! causes:
//!
//! 1. `StartPayment` records a `pending` payment for an active hold (its total,
//!    the payment method token). The edge then asks the provider to authorise
//!    `reference()`; the provider answers later, by webhook.
//! 2. `SettlePayment` records the provider's answer:
//!    - authorised, and the hold is still active: the hold is confirmed into an
//!      order in the same entry, and the payment is `succeeded`;
//!    - authorised, but the hold ended (expired, released, the event
//!      cancelled): the seats may be sold to someone else, so the money goes
//!      back: `refund_pending`;
//!    - declined: `failed`; the hold stays usable until it expires, and the
//!      customer may start another payment for it.
//! 3. Cancelling a paid order, or the whole event, makes its payment
//!    `refund_pending`. A worker on the group leader asks the provider to
//!    refund and records `RefundSettled`: `refunded`.
//!
//! So no path keeps money without a ticket: a `succeeded` payment always has a
//! live order, and everything else that was authorised is on its way back
//! (checked by `check_invariants`). Provider answers are idempotent: a
//! settled payment ignores further answers and returns its current view.
//!
//! The provider boundary itself (HTTP, signatures, retries) is the edge's.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::keys::{EventKey, EventKeys};
use crate::ids::{CustomerId, EventId, HoldId, Millis, Money, OrderId};

/// Longest payment method token and provider detail kept.
pub const MAX_PAYMENT_TEXT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    RefundPending,
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 5] = [
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::RefundPending,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::RefundPending => "refund_pending",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

/// What the provider said about an authorisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    Authorised,
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentStep {
    pub at_ms: Millis,
    pub status: PaymentStatus,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub hold_id: HoldId,
    pub holder: CustomerId,
    pub amount: Money,
    /// The payment method token the customer gave (never a card number).
    pub method: String,
    pub status: PaymentStatus,
    /// The order the payment bought, once it succeeded.
    pub order_id: Option<OrderId>,
    pub created_at_ms: Millis,
    /// Every status with when and why, oldest first; the last is `status`.
    pub history: Vec<PaymentStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub payment_id: u64,
    pub event_id: EventId,
    /// What the provider knows the payment as.
    pub reference: String,
    pub hold_id: HoldId,
    pub holder: CustomerId,
    pub amount: Money,
    pub method: String,
    pub status: PaymentStatus,
    pub order_id: Option<OrderId>,
    pub created_at_ms: Millis,
    pub history: Vec<PaymentStep>,
}

/// The provider reference of a payment: `bx.{event}.{payment}`.
pub fn reference(event_id: EventId, payment_id: u64) -> String {
    format!("bx.{}.{payment_id}", event_id.0)
}

/// The payment a provider reference names.
pub fn parse_reference(reference: &str) -> Option<(EventId, u64)> {
    let mut parts = reference.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("bx"), Some(event), Some(payment), None) => {
            Some((EventId(event.parse().ok()?), payment.parse().ok()?))
        }
        _ => None,
    }
}

/// Every payment of one group, with indexes for the saga's questions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payments {
    payments: BTreeMap<(EventId, u64), PaymentRecord>,
    /// Derived: payments still waiting for the provider or for a refund.
    open: BTreeSet<(EventId, u64)>,
    /// Derived: the pending or succeeded payment of a hold (at most one).
    by_hold: BTreeMap<(EventId, HoldId), u64>,
    /// Derived: the payment that bought an order.
    by_order: BTreeMap<(EventId, OrderId), u64>,
}

impl Payments {
    pub fn get(&self, event_id: EventId, payment_id: u64) -> Option<&PaymentRecord> {
        self.payments.get(&(event_id, payment_id))
    }

    /// The hold's payment that is pending or succeeded, if any.
    pub fn live_for_hold(&self, event_id: EventId, hold_id: HoldId) -> Option<u64> {
        self.by_hold.get(&(event_id, hold_id)).copied()
    }

    pub fn for_order(&self, event_id: EventId, order_id: OrderId) -> Option<u64> {
        self.by_order.get(&(event_id, order_id)).copied()
    }

    pub fn insert(
        &mut self,
        dirty: &mut EventKeys,
        event_id: EventId,
        payment_id: u64,
        record: PaymentRecord,
    ) {
        dirty.insert((event_id, EventKey::Payment(payment_id)));
        self.index(event_id, payment_id, &record);
        self.payments.insert((event_id, payment_id), record);
    }

    /// Moves a payment to `step.status`, appending `step` to its history; a
    /// payment that bought an order names it.
    pub fn set_status(
        &mut self,
        dirty: &mut EventKeys,
        event_id: EventId,
        payment_id: u64,
        step: PaymentStep,
        order_id: Option<OrderId>,
    ) {
        let key = (event_id, payment_id);
        let mut record = self.payments.remove(&key).expect("caller checked the payment");
        self.unindex(event_id, payment_id, &record);
        record.status = step.status;
        if order_id.is_some() {
            record.order_id = order_id;
        }
        record.history.push(step);
        self.index(event_id, payment_id, &record);
        self.payments.insert(key, record);
        dirty.insert((event_id, EventKey::Payment(payment_id)));
    }

    fn index(&mut self, event_id: EventId, payment_id: u64, record: &PaymentRecord) {
        let key = (event_id, payment_id);
        if matches!(
            record.status,
            PaymentStatus::Pending | PaymentStatus::RefundPending
        ) {
            self.open.insert(key);
        }
        if matches!(record.status, PaymentStatus::Pending | PaymentStatus::Succeeded) {
            self.by_hold.insert((event_id, record.hold_id), payment_id);
        }
        if let Some(order_id) = record.order_id {
            self.by_order.insert((event_id, order_id), payment_id);
        }
    }

    fn unindex(&mut self, event_id: EventId, payment_id: u64, record: &PaymentRecord) {
        self.open.remove(&(event_id, payment_id));
        if self.by_hold.get(&(event_id, record.hold_id)) == Some(&payment_id) {
            self.by_hold.remove(&(event_id, record.hold_id));
        }
        if let Some(order_id) = record.order_id {
            self.by_order.remove(&(event_id, order_id));
        }
    }

    pub fn view(&self, event_id: EventId, payment_id: u64) -> Option<PaymentView> {
        let p = self.payments.get(&(event_id, payment_id))?;
        Some(PaymentView {
            payment_id,
            event_id,
            reference: reference(event_id, payment_id),
            hold_id: p.hold_id,
            holder: p.holder.clone(),
            amount: p.amount,
            method: p.method.clone(),
            status: p.status,
            order_id: p.order_id,
            created_at_ms: p.created_at_ms,
            history: p.history.clone(),
        })
    }

    /// The payment's view after its first `steps` steps: what the answer
    /// that made the last of them showed (`remembered`).
    pub fn view_after(&self, event_id: EventId, payment_id: u64, steps: usize) -> Option<PaymentView> {
        let mut view = self.view(event_id, payment_id)?;
        if steps == 0 || steps > view.history.len() {
            return None;
        }
        view.history.truncate(steps);
        view.status = view.history[steps - 1].status;
        if !view
            .history
            .iter()
            .any(|step| step.status == PaymentStatus::Succeeded)
        {
            view.order_id = None;
        }
        Some(view)
    }

    /// Payments waiting for the provider (pending) or for a refund, oldest first.
    pub fn open(&self) -> impl Iterator<Item = PaymentView> + '_ {
        self.open
            .iter()
            .filter_map(|&(event_id, payment_id)| self.view(event_id, payment_id))
    }

    pub fn record(&self, event_id: EventId, payment_id: u64) -> Option<PaymentRecord> {
        self.payments.get(&(event_id, payment_id)).cloned()
    }

    /// Loads one payment record.
    pub fn load(&mut self, event_id: EventId, payment_id: u64, payment: PaymentRecord) -> Result<(), String> {
        if payment.history.last().map(|step| step.status) != Some(payment.status) {
            return Err("a payment's last history step is not its status".to_owned());
        }
        if matches!(payment.status, PaymentStatus::Pending | PaymentStatus::Succeeded)
            && self.by_hold.contains_key(&(event_id, payment.hold_id))
        {
            return Err(format!("hold {} has two live payments", payment.hold_id));
        }
        self.index(event_id, payment_id, &payment);
        self.payments.insert((event_id, payment_id), payment);
        Ok(())
    }

    /// Every payment's event is named by `event_exists`; the indexes match.
    pub fn payments(&self) -> impl Iterator<Item = (&(EventId, u64), &PaymentRecord)> {
        self.payments.iter()
    }

    pub fn check_indexes(&self) -> Result<(), String> {
        let mut rebuilt = Payments::default();
        for (&(event_id, payment_id), record) in &self.payments {
            rebuilt.index(event_id, payment_id, record);
        }
        if rebuilt.open != self.open || rebuilt.by_hold != self.by_hold || rebuilt.by_order != self.by_order {
            return Err("payment indexes do not match the payments".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip() {
        assert_eq!(
            parse_reference(&reference(EventId(7), 42)),
            Some((EventId(7), 42))
        );
        for bad in ["", "bx.7", "bx.7.x", "xx.7.42", "bx.7.42.1"] {
            assert_eq!(parse_reference(bad), None, "{bad}");
        }
    }
}
