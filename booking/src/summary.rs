//! One-line summaries of requests, for logs (Raft prints every entry it handles).

use std::fmt;

use crate::cluster_map::MapCommand;
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
            Command::Map(MapCommand::Initialise {
                nodes,
                groups_per_region,
                ..
            }) => write!(
                f,
                "initialise map: {} nodes, {groups_per_region} groups per region",
                nodes.len()
            ),
            Command::Map(MapCommand::PlaceEvent { event_id, .. }) => write!(f, "place event {event_id}"),
            Command::Map(MapCommand::CreateGroup { home_region }) => {
                write!(f, "create a group homed in {home_region}")
            }
            Command::Map(MapCommand::AddNode { node_id, .. }) => write!(f, "add node {node_id}"),
            Command::Map(MapCommand::AddLearner { group_id, node_id }) => {
                write!(f, "add a learner of group {group_id} on node {node_id}")
            }
            Command::Map(MapCommand::PromoteLearner {
                group_id, replica_id, ..
            }) => write!(f, "promote replica {replica_id} of group {group_id}"),
            Command::Map(MapCommand::DrainNode { node_id }) => write!(f, "drain node {node_id}"),
            Command::Map(MapCommand::RemoveNode { node_id }) => write!(f, "remove node {node_id}"),
            // Accounts are personal data: logs name the id, never the e-mail address.
            Command::CreateVenue { venue } => write!(f, "create venue {}", venue.name),
            Command::PutListing { event_id, .. } => write!(f, "list event {event_id}"),
            Command::SetListingStatus { event_id, status } => {
                write!(f, "mark the listing of event {event_id} {status:?}")
            }
            Command::PublishEvent { event_id } => write!(f, "publish event {event_id}"),
            Command::ClaimEmail { claim, .. } => {
                write!(f, "claim an e-mail address for {}", claim.customer_id)
            }
            Command::Register { customer_id, .. } => write!(f, "register {customer_id}"),
            Command::SetRole { customer_id, role } => write!(f, "make {customer_id} {}", role.as_str()),
            Command::StartSession { customer_id, .. } => write!(f, "start a session of {customer_id}"),
            Command::RotateSession { session_id, .. } => write!(f, "rotate session {session_id}"),
            Command::EndSession { session_id, .. } => write!(f, "end session {session_id}"),
            Command::StartPayment {
                event_id, hold_id, ..
            } => write!(f, "pay for hold {event_id}/{hold_id}"),
            Command::SettlePayment {
                event_id,
                payment_id,
                outcome,
            } => write!(f, "settle payment {event_id}/{payment_id}: {outcome:?}"),
            Command::RefundSettled { event_id, payment_id } => {
                write!(f, "refunded payment {event_id}/{payment_id}")
            }
            Command::CancelEvent { event_id } => write!(f, "cancel event {event_id}"),
            Command::Tick => write!(f, "tick"),
            Command::SetNotifications { customer_id, .. } => {
                write!(f, "set how {customer_id} is notified")
            }
            Command::SubscribeReminder {
                event_id, customer, ..
            } => {
                write!(f, "remind {customer} of event {event_id}")
            }
            Command::UnsubscribeReminder { event_id, customer } => {
                write!(f, "stop reminding {customer} of event {event_id}")
            }
            Command::JoinWaitlist {
                event_id, customer, ..
            } => {
                write!(f, "waitlist {customer} for event {event_id}")
            }
            Command::LeaveWaitlist { event_id, customer } => {
                write!(f, "take {customer} off the waitlist of event {event_id}")
            }
            Command::OfferWaitlist { event_id } => {
                write!(f, "offer places of event {event_id} to its waitlist")
            }
            Command::NoticeDelivered {
                event_id,
                notice_id,
                channel,
            } => write!(f, "notice {event_id}/{notice_id} delivered by {channel:?}"),
            Command::NoticeFailed {
                event_id,
                notice_id,
                permanent,
                ..
            } => write!(f, "notice {event_id}/{notice_id} failed (permanent: {permanent})"),
            Command::StartGuestCheck { check } => {
                write!(f, "send a guest code for {}", check.customer_id)
            }
            Command::VerifyGuest { challenge_id, .. } => write!(f, "check guest code {challenge_id}"),
        }
    }
}
