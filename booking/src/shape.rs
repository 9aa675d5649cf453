//! Shape checks: every limit a command can be refused for by its size or
//! shape alone, whatever the state.
//!
//! The edge calls [`Command::check_shape`] before a command is proposed, so an
//! oversized or malformed command is refused before it is appended to any log
//! (a hold naming 700k seats would otherwise be fsynced on every replica and
//! only then refused). The state machine keeps its own checks, and where a
//! check is about shape it calls the very functions below, so both places
//! answer the same rejection for the same input.
//!
//! A check here may never look at state: "that seat does not exist" or "the
//! event is sold out" are the state machine's to say. So a command that passes
//! can still be rejected when applied; one that fails here would have been
//! rejected for the same reason (possibly after another rejection that the
//! state could produce first, such as `unknown_event`).

use crate::accounts::{
    AccountCommand, MAX_EMAIL_LEN, MAX_NAME_LEN as MAX_ACCOUNT_NAME_LEN, MAX_PASSWORD_HASH_LEN,
};
use crate::catalog::CatalogCommand;
use crate::cluster_map::{MAX_GROUPS_PER_REQUEST, MapCommand, NodeInfo};
use crate::command::Command;
use crate::events::checks::{
    check_hold_ttl, check_payment_method, check_place_name, check_waitlist_quantity,
};
use crate::events::payments::PaymentOutcome;
use crate::events::vocab::EventCommand;
use crate::rejection::Rejection;

/// Longest node address kept in the cluster map.
pub const MAX_ADDR_LEN: usize = 256;
/// Most nodes one map command may name.
pub const MAX_NODES_PER_REQUEST: usize = 1024;
/// Longest free text a client's command may carry into the log (a provider's
/// decline reason, a delivery error): longer text is refused, not truncated.
pub const MAX_COMMAND_TEXT: usize = 2_000;

fn invalid(why: impl Into<String>) -> Result<(), Rejection> {
    Err(Rejection::InvalidRequest(why.into()))
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.len() > max {
        return invalid(format!("{field} must be at most {max} bytes"));
    }
    Ok(())
}

/// Read-replica changes in one command: a plan larger than this is proposed
/// in parts (one entry stays small).
pub const MAX_READ_REPLICA_CHANGES: usize = 512;

fn check_node(info: &NodeInfo) -> Result<(), Rejection> {
    check_text("grpc_addr", &info.grpc_addr, MAX_ADDR_LEN)?;
    check_text("http_addr", &info.http_addr, MAX_ADDR_LEN)
}

impl Command {
    /// Every limit the command can be refused for by size or shape alone
    /// (see the module doc). Cheap next to proposing: at most linear in the
    /// command's size.
    pub fn check_shape(&self) -> Result<(), Rejection> {
        match self {
            Command::Event(_, command) => event_shape(command),
            Command::Map(command) => map_shape(command),
            Command::Account(command) => account_shape(command),
            Command::Catalog(command) => match command {
                CatalogCommand::CreateVenue { venue } => venue.validate(),
                CatalogCommand::PutListing { listing, .. } => listing.validate(),
                CatalogCommand::SetListingStatus { .. } => Ok(()),
                CatalogCommand::SetFxRates { base, rates, .. } => {
                    crate::catalog::check_fx_rates(*base, rates)
                }
            },
            Command::Tick => Ok(()),
        }
    }
}

fn event_shape(command: &EventCommand) -> Result<(), Rejection> {
    match command {
        EventCommand::Create { spec, .. } => spec.validate(),
        EventCommand::Hold {
            selection, ttl_ms, ..
        } => {
            if let Some(ttl_ms) = ttl_ms {
                check_hold_ttl(*ttl_ms)?;
            }
            selection.check_shape()
        }
        EventCommand::StartPayment { method, .. } => check_payment_method(method),
        EventCommand::SettlePayment { outcome, .. } => match outcome {
            PaymentOutcome::Declined { reason } => check_text("reason", reason, MAX_COMMAND_TEXT),
            PaymentOutcome::Authorised => Ok(()),
        },
        EventCommand::JoinWaitlist { tier, quantity, .. } => {
            check_waitlist_quantity(*quantity)?;
            match tier {
                Some(tier) => check_place_name("tier", tier),
                None => Ok(()),
            }
        }
        EventCommand::NoticeFailed { error, .. } => check_text("error", error, MAX_COMMAND_TEXT),
        // Ids are bounded by their types; the rest is state.
        EventCommand::Publish
        | EventCommand::ExtendHold { .. }
        | EventCommand::ReleaseHold { .. }
        | EventCommand::ConfirmHold { .. }
        | EventCommand::CancelOrder { .. }
        | EventCommand::CheckIn { .. }
        | EventCommand::RefundSettled { .. }
        | EventCommand::Cancel
        | EventCommand::SubscribeReminder { .. }
        | EventCommand::UnsubscribeReminder { .. }
        | EventCommand::LeaveWaitlist { .. }
        | EventCommand::OfferWaitlist
        | EventCommand::NoticeDelivered { .. } => Ok(()),
    }
}

fn map_shape(command: &MapCommand) -> Result<(), Rejection> {
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
        } => {
            if nodes.len() > MAX_NODES_PER_REQUEST {
                return invalid(format!("at most {MAX_NODES_PER_REQUEST} nodes per request"));
            }
            if *groups_per_region > MAX_GROUPS_PER_REQUEST {
                return invalid("too many groups per region");
            }
            nodes.iter().try_for_each(|(_, info)| check_node(info))
        }
        MapCommand::AddNode { info, .. } => check_node(info),
        MapCommand::SetRegion { info, .. } => info.validate(),
        // Regions are `RegionId`s: their shape was checked when they were made.
        MapCommand::PlaceEvent { .. }
        | MapCommand::CreateGroup { .. }
        | MapCommand::AddLearner { .. }
        | MapCommand::PromoteLearner { .. }
        | MapCommand::DrainNode { .. }
        | MapCommand::RemoveNode { .. }
        | MapCommand::SetPlacementPolicy { .. }
        | MapCommand::PlaceDedicated { .. } => Ok(()),
        MapCommand::PlaceReadReplicas { adds, drops } => {
            if adds.len() + drops.len() > MAX_READ_REPLICA_CHANGES {
                return Err(Rejection::InvalidRequest(format!(
                    "at most {MAX_READ_REPLICA_CHANGES} read-replica changes per command"
                )));
            }
            Ok(())
        }
    }
}

fn account_shape(command: &AccountCommand) -> Result<(), Rejection> {
    match command {
        AccountCommand::Register { account, .. } => {
            crate::accounts::check_email(&account.email).map_err(Rejection::InvalidRequest)?;
            check_text("email", &account.email, MAX_EMAIL_LEN)?;
            check_text("name", &account.name, MAX_ACCOUNT_NAME_LEN)?;
            check_text("password hash", &account.password_hash, MAX_PASSWORD_HASH_LEN)
        }
        AccountCommand::SetNotifications { preference, .. } => preference.validate(),
        AccountCommand::StartGuestCheck { check } => {
            crate::accounts::check_email(&check.email).map_err(Rejection::InvalidRequest)
        }
        AccountCommand::ClaimEmail { .. }
        | AccountCommand::SetRole { .. }
        | AccountCommand::StartSession { .. }
        | AccountCommand::RotateSession { .. }
        | AccountCommand::EndSession { .. }
        | AccountCommand::VerifyGuest { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::checks::MAX_SEAT_ID_LEN;
    use crate::events::payments::MAX_PAYMENT_TEXT;
    use crate::events::vocab::Selection;
    use crate::ids::{CustomerId, EventId};

    fn hold(selection: Selection, ttl_ms: Option<u64>) -> Command {
        Command::Event(
            EventId(1),
            EventCommand::Hold {
                holder: CustomerId::new("alice").unwrap(),
                selection,
                ttl_ms,
            },
        )
    }

    #[test]
    fn oversized_and_malformed_holds_are_refused_by_shape() {
        let many: Vec<String> = (0..698_000).map(|i| format!("A-1-{i}")).collect();
        let code = |c: &Command| c.check_shape().map_err(|r| r.code());
        assert_eq!(code(&hold(Selection::Seats(many), None)), Err("invalid_request"));
        assert_eq!(
            code(&hold(Selection::Seats(vec![]), None)),
            Err("invalid_request")
        );
        let twice = Selection::Seats(vec!["A-1-1".into(), "A-1-1".into()]);
        assert_eq!(code(&hold(twice, None)), Err("invalid_request"));
        let long_id = Selection::Seats(vec!["x".repeat(MAX_SEAT_ID_LEN + 1)]);
        assert_eq!(code(&hold(long_id, None)), Err("invalid_request"));
        let bad_section = Selection::BestAvailable {
            section: "A B".into(),
            tier: None,
            quantity: 2,
        };
        assert_eq!(code(&hold(bad_section, None)), Err("invalid_request"));
        let ga = Selection::GeneralAdmission {
            area: "floor".into(),
            quantity: 51,
        };
        assert_eq!(code(&hold(ga, None)), Err("invalid_request"));
        let fine = Selection::Seats(vec!["A-1-1".into(), "A-1-2".into()]);
        assert_eq!(code(&hold(fine.clone(), Some(60_000))), Ok(()));
        assert_eq!(code(&hold(fine, Some(10))), Err("invalid_request"));
    }

    #[test]
    fn long_free_text_is_refused() {
        let failed = Command::Event(
            EventId(1),
            EventCommand::NoticeFailed {
                notice_id: crate::events::notices::NoticeId {
                    log_index: 1,
                    ordinal: 0,
                },
                error: "e".repeat(MAX_COMMAND_TEXT + 1),
                permanent: false,
            },
        );
        assert!(failed.check_shape().is_err());
        let method = Command::Event(
            EventId(1),
            EventCommand::StartPayment {
                hold_id: crate::ids::HoldId(1),
                holder: CustomerId::new("alice").unwrap(),
                method: "m".repeat(MAX_PAYMENT_TEXT + 1),
            },
        );
        assert!(method.check_shape().is_err());
        // A malformed region cannot be made, nor decoded into a command.
        assert!(crate::RegionId::new("EU West").is_err());
        assert!(serde_json::from_str::<crate::RegionId>("\"EU West\"").is_err());
    }
}
