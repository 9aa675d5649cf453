//! One-line summaries of requests, for logs (Raft prints every entry it handles).
//!
//! Accounts are personal data: summaries name ids, never e-mail addresses.

use std::fmt;

use crate::accounts::AccountCommand;
use crate::catalog::CatalogCommand;
use crate::cluster_map::MapCommand;
use crate::command::{Command, Request};
use crate::events::vocab::EventCommand;

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: ", self.request_id, self.now_ms)?;
        match &self.command {
            Command::Event(event_id, command) => event(f, *event_id, command),
            Command::Map(command) => map(f, command),
            Command::Account(command) => account(f, command),
            Command::Catalog(command) => catalog(f, command),
            Command::Tick => write!(f, "tick"),
        }
    }
}

fn event(f: &mut fmt::Formatter<'_>, e: crate::ids::EventId, command: &EventCommand) -> fmt::Result {
    match command {
        EventCommand::Create { .. } => write!(f, "create event {e}"),
        EventCommand::Publish => write!(f, "publish event {e}"),
        EventCommand::Hold { holder, .. } => write!(f, "hold in event {e} for {holder}"),
        EventCommand::ExtendHold { hold_id, .. } => write!(f, "extend hold {e}/{hold_id}"),
        EventCommand::ReleaseHold { hold_id, .. } => write!(f, "release hold {e}/{hold_id}"),
        EventCommand::ConfirmHold { hold_id, .. } => write!(f, "confirm hold {e}/{hold_id}"),
        EventCommand::CancelOrder { order_id, .. } => write!(f, "cancel order {e}/{order_id}"),
        EventCommand::CheckIn { code } => write!(f, "check in {e}/{code}"),
        EventCommand::StartPayment { hold_id, .. } => write!(f, "pay for hold {e}/{hold_id}"),
        EventCommand::SettlePayment { payment_id, outcome } => {
            write!(f, "settle payment {e}/{payment_id}: {outcome:?}")
        }
        EventCommand::RefundSettled { payment_id } => write!(f, "refunded payment {e}/{payment_id}"),
        EventCommand::Cancel => write!(f, "cancel event {e}"),
        EventCommand::SubscribeReminder { customer, .. } => write!(f, "remind {customer} of event {e}"),
        EventCommand::UnsubscribeReminder { customer } => {
            write!(f, "stop reminding {customer} of event {e}")
        }
        EventCommand::JoinWaitlist { customer, .. } => write!(f, "waitlist {customer} for event {e}"),
        EventCommand::LeaveWaitlist { customer } => {
            write!(f, "take {customer} off the waitlist of event {e}")
        }
        EventCommand::OfferWaitlist => write!(f, "offer places of event {e} to its waitlist"),
        EventCommand::NoticeDelivered { notice_id, channel } => {
            write!(f, "notice {e}/{notice_id} delivered by {channel:?}")
        }
        EventCommand::NoticeFailed {
            notice_id, permanent, ..
        } => write!(f, "notice {e}/{notice_id} failed (permanent: {permanent})"),
    }
}

fn map(f: &mut fmt::Formatter<'_>, command: &MapCommand) -> fmt::Result {
    match command {
        MapCommand::Initialise {
            nodes,
            groups_per_region,
            ..
        }
        | MapCommand::Bootstrap {
            nodes,
            groups_per_region,
            ..
        } => write!(
            f,
            "initialise map: {} nodes, {groups_per_region} groups per region",
            nodes.len()
        ),
        MapCommand::PlaceEvent { event_id, .. } => write!(f, "place event {event_id}"),
        MapCommand::CreateGroup { home_region } => write!(f, "create a group homed in {home_region}"),
        MapCommand::AddNode { node_id, .. } => write!(f, "add node {node_id}"),
        MapCommand::AddLearner { group_id, node_id } => {
            write!(f, "add a learner of group {group_id} on node {node_id}")
        }
        MapCommand::PromoteLearner {
            group_id, replica_id, ..
        } => write!(f, "promote replica {replica_id} of group {group_id}"),
        MapCommand::DrainNode { node_id } => write!(f, "drain node {node_id}"),
        MapCommand::SetRegion { region, .. } => write!(f, "describe region {region}"),
        MapCommand::RemoveNode { node_id } => write!(f, "remove node {node_id}"),
        MapCommand::SetPlacementPolicy { policy } => {
            write!(
                f,
                "set placement rules (read replicas: {:?})",
                policy.read_replicas
            )
        }
        MapCommand::PlaceDedicated {
            event_id, survive, ..
        } => {
            write!(
                f,
                "place event {event_id} on a group of its own (survive: {survive:?})"
            )
        }
        MapCommand::PlaceReadReplicas { adds, drops } => {
            write!(f, "place {} read replicas, drop {}", adds.len(), drops.len())
        }
    }
}

fn account(f: &mut fmt::Formatter<'_>, command: &AccountCommand) -> fmt::Result {
    match command {
        AccountCommand::ClaimEmail { claim, .. } => {
            write!(f, "claim an e-mail address for {}", claim.customer_id)
        }
        AccountCommand::Register { customer_id, .. } => write!(f, "register {customer_id}"),
        AccountCommand::SetRole { customer_id, role } => write!(f, "make {customer_id} {}", role.as_str()),
        AccountCommand::StartSession { customer_id, .. } => write!(f, "start a session of {customer_id}"),
        AccountCommand::RotateSession { session_id, .. } => write!(f, "rotate session {session_id}"),
        AccountCommand::EndSession { session_id, .. } => write!(f, "end session {session_id}"),
        AccountCommand::SetNotifications { customer_id, .. } => {
            write!(f, "set how {customer_id} is notified")
        }
        AccountCommand::StartGuestCheck { check } => {
            write!(f, "send a guest code for {}", check.customer_id)
        }
        AccountCommand::VerifyGuest { challenge_id, .. } => write!(f, "check guest code {challenge_id}"),
    }
}

fn catalog(f: &mut fmt::Formatter<'_>, command: &CatalogCommand) -> fmt::Result {
    match command {
        CatalogCommand::CreateVenue { venue } => write!(f, "create venue {}", venue.name),
        CatalogCommand::PutListing { event_id, .. } => write!(f, "list event {event_id}"),
        CatalogCommand::SetListingStatus { event_id, status } => {
            write!(f, "mark the listing of event {event_id} {status:?}")
        }
        CatalogCommand::SetFxRates { base, rates, .. } => {
            write!(f, "set {} exchange rates from {base}", rates.len())
        }
    }
}
