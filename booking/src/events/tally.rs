//! What a replica's rules did, counted for `/metrics`: not part of the state.
//!
//! The counts are kept beside the state while entries apply and drained by
//! the state machine after each batch (`BookingState::take_tally`), so a
//! snapshot install or a restart never moves them backwards. Every replica of
//! a group counts the same entries, since they apply the same log; a
//! repeated request (answered from the de-duplication table) is not counted
//! again.

use super::payments::PaymentStatus;

/// Booking outcomes, payment steps and notice deliveries since the last drain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Holds taken (a waitlist offer's too).
    pub held: u64,
    /// Holds refused because the places were taken or too few were left.
    pub conflict: u64,
    pub expired: u64,
    pub released: u64,
    /// Orders made (directly or by a settled payment).
    pub confirmed: u64,
    /// Orders cancelled (by the customer, staff or the event's cancellation).
    pub cancelled: u64,
    pub checked_in: u64,
    /// Payments that entered each status, in [`PaymentStatus::ALL`] order
    /// (entering `pending` is starting one).
    pub payments: [u64; PaymentStatus::ALL.len()],
    pub notices_delivered: u64,
    /// Failed attempts that will be tried again.
    pub notices_retried: u64,
    /// Failed attempts after which the notice is given up.
    pub notices_failed: u64,
}

impl Tally {
    /// The booking outcomes by name, as metrics label them.
    pub fn bookings(&self) -> [(&'static str, u64); 7] {
        [
            ("held", self.held),
            ("conflict", self.conflict),
            ("expired", self.expired),
            ("released", self.released),
            ("confirmed", self.confirmed),
            ("cancelled", self.cancelled),
            ("checked_in", self.checked_in),
        ]
    }

    /// The payment steps by status name.
    pub fn payment_steps(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PaymentStatus::ALL
            .iter()
            .zip(self.payments)
            .map(|(status, n)| (status.as_str(), n))
    }

    /// The notice outcomes by name.
    pub fn notices(&self) -> [(&'static str, u64); 3] {
        [
            ("delivered", self.notices_delivered),
            ("retried", self.notices_retried),
            ("failed", self.notices_failed),
        ]
    }

    pub(crate) fn count_payment(&mut self, status: PaymentStatus) {
        self.payments[status as usize] += 1;
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        // Destructured, so that a new count cannot be forgotten here.
        let Tally {
            held,
            conflict,
            expired,
            released,
            confirmed,
            cancelled,
            checked_in,
            payments,
            notices_delivered,
            notices_retried,
            notices_failed,
        } = other;
        self.held += held;
        self.conflict += conflict;
        self.expired += expired;
        self.released += released;
        self.confirmed += confirmed;
        self.cancelled += cancelled;
        self.checked_in += checked_in;
        for (total, n) in self.payments.iter_mut().zip(payments) {
            *total += n;
        }
        self.notices_delivered += notices_delivered;
        self.notices_retried += notices_retried;
        self.notices_failed += notices_failed;
    }
}
