//! One-line summaries of requests, for logs (Raft prints every entry it handles).

use std::fmt;

use crate::command::{Command, Request};

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: ", self.request_id, self.now_ms)?;
        match &self.command {
            Command::CreateEvent { event_id, .. } => write!(f, "create event {event_id}"),
            Command::Hold { event_id, holder, .. } => write!(f, "hold in event {event_id} for {holder}"),
            Command::ExtendHold {
                event_id, hold_id, ..
            } => write!(f, "extend hold {event_id}/{hold_id}"),
            Command::ReleaseHold {
                event_id, hold_id, ..
            } => write!(f, "release hold {event_id}/{hold_id}"),
            Command::ConfirmHold {
                event_id, hold_id, ..
            } => write!(f, "confirm hold {event_id}/{hold_id}"),
            Command::CancelOrder {
                event_id, order_id, ..
            } => write!(f, "cancel order {event_id}/{order_id}"),
            Command::CheckIn { event_id, code } => write!(f, "check in {event_id}/{code}"),
            Command::Tick => write!(f, "tick"),
        }
    }
}
