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

use crate::accounts::{MAX_EMAIL_LEN, MAX_NAME_LEN as MAX_ACCOUNT_NAME_LEN, MAX_PASSWORD_HASH_LEN};
use crate::cluster_map::{MAX_GROUPS_PER_REQUEST, MapCommand, NodeInfo};
use crate::command::{Command, MAX_HOLD_TTL_MS, MAX_PLACES_PER_HOLD, MIN_HOLD_TTL_MS, Rejection, Selection};
use crate::layout::{MAX_NAME_LEN, is_valid_name};
use crate::payments::MAX_PAYMENT_TEXT;

/// Longest seat id: `{section}-{row}-{number}` with names of at most
/// `MAX_NAME_LEN` characters and a `u32` number.
pub const MAX_SEAT_ID_LEN: usize = 2 * MAX_NAME_LEN + 10 + 2;
/// Longest region name (the config's rule).
pub const MAX_REGION_LEN: usize = 32;
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

impl Selection {
    /// The selection's shape, in the order the state machine checks it: count
    /// (1..=50), seat-id length, duplicate seats, names.
    pub fn check_shape(&self) -> Result<(), Rejection> {
        match self {
            Selection::Seats(ids) => {
                check_count(ids.len())?;
                if ids.iter().any(|id| id.len() > MAX_SEAT_ID_LEN) {
                    return invalid(format!("a seat id has at most {MAX_SEAT_ID_LEN} characters"));
                }
                let mut seen = std::collections::BTreeSet::new();
                if let Some(twice) = ids.iter().find(|id| !seen.insert(id.as_str())) {
                    return invalid(format!("seat {twice} is listed twice"));
                }
                Ok(())
            }
            Selection::BestAvailable {
                section,
                tier,
                quantity,
            } => {
                check_count(*quantity as usize)?;
                check_place_name("section", section)?;
                match tier {
                    Some(tier) => check_place_name("tier", tier),
                    None => Ok(()),
                }
            }
            Selection::GeneralAdmission { area, quantity } => {
                check_count(*quantity as usize)?;
                check_place_name("area", area)
            }
        }
    }
}

fn check_count(n: usize) -> Result<(), Rejection> {
    if n == 0 || n > MAX_PLACES_PER_HOLD as usize {
        return invalid(format!("a hold takes 1..={MAX_PLACES_PER_HOLD} places"));
    }
    Ok(())
}

/// A section, tier or area name as a hold or waitlist entry names it.
pub(crate) fn check_place_name(what: &str, name: &str) -> Result<(), Rejection> {
    if is_valid_name(name) {
        Ok(())
    } else {
        invalid(format!("{what} name must be 1..=32 characters of [A-Za-z0-9]"))
    }
}

/// A hold's lifetime, defaulted or asked for.
pub(crate) fn check_hold_ttl(ttl_ms: u64) -> Result<(), Rejection> {
    if (MIN_HOLD_TTL_MS..=MAX_HOLD_TTL_MS).contains(&ttl_ms) {
        Ok(())
    } else {
        invalid(format!(
            "ttl_ms must be within {MIN_HOLD_TTL_MS}..={MAX_HOLD_TTL_MS}"
        ))
    }
}

/// How many places a waitlist entry may ask for.
pub(crate) fn check_waitlist_quantity(quantity: u32) -> Result<(), Rejection> {
    if quantity == 0 || quantity > MAX_PLACES_PER_HOLD {
        return invalid(format!(
            "a waitlist entry asks for 1..={MAX_PLACES_PER_HOLD} places"
        ));
    }
    Ok(())
}

/// A payment method token.
pub(crate) fn check_payment_method(method: &str) -> Result<(), Rejection> {
    if method.is_empty() || method.len() > MAX_PAYMENT_TEXT {
        return invalid(format!("payment method must be 1..={MAX_PAYMENT_TEXT} bytes"));
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.len() > max {
        return invalid(format!("{field} must be at most {max} bytes"));
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), Rejection> {
    let ok = !region.is_empty()
        && region.len() <= MAX_REGION_LEN
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        invalid("a region is 1..=32 characters of [a-z0-9-]")
    }
}

fn check_node(info: &NodeInfo) -> Result<(), Rejection> {
    check_region(&info.region)?;
    check_text("grpc_addr", &info.grpc_addr, MAX_ADDR_LEN)?;
    check_text("http_addr", &info.http_addr, MAX_ADDR_LEN)
}

impl Command {
    /// Every limit the command can be refused for by size or shape alone
    /// (see the module doc). Cheap next to proposing: at most linear in the
    /// command's size.
    pub fn check_shape(&self) -> Result<(), Rejection> {
        match self {
            Command::CreateEvent { spec, .. } => spec.validate(),
            Command::Hold {
                selection, ttl_ms, ..
            } => {
                if let Some(ttl_ms) = ttl_ms {
                    check_hold_ttl(*ttl_ms)?;
                }
                selection.check_shape()
            }
            Command::StartPayment { method, .. } => check_payment_method(method),
            Command::SettlePayment { outcome, .. } => match outcome {
                crate::payments::PaymentOutcome::Declined { reason } => {
                    check_text("reason", reason, MAX_COMMAND_TEXT)
                }
                crate::payments::PaymentOutcome::Authorised => Ok(()),
            },
            Command::JoinWaitlist { tier, quantity, .. } => {
                check_waitlist_quantity(*quantity)?;
                match tier {
                    Some(tier) => check_place_name("tier", tier),
                    None => Ok(()),
                }
            }
            Command::NoticeFailed { error, .. } => check_text("error", error, MAX_COMMAND_TEXT),
            Command::CreateVenue { venue } => venue.validate(),
            Command::PutListing { listing, .. } => listing.validate(),
            Command::ClaimEmail { claim, .. } => check_region(&claim.region),
            Command::Register { account, .. } => {
                crate::accounts::check_email(&account.email).map_err(Rejection::InvalidRequest)?;
                check_text("email", &account.email, MAX_EMAIL_LEN)?;
                check_text("name", &account.name, MAX_ACCOUNT_NAME_LEN)?;
                check_text("password hash", &account.password_hash, MAX_PASSWORD_HASH_LEN)?;
                check_region(&account.region)
            }
            Command::SetNotifications { preference, .. } => preference.validate(),
            Command::StartGuestCheck { check } => {
                crate::accounts::check_email(&check.email).map_err(Rejection::InvalidRequest)?;
                check_region(&check.region)
            }
            Command::Map(map) => match map {
                MapCommand::Initialise {
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
                MapCommand::PlaceEvent { home_region, .. } | MapCommand::CreateGroup { home_region } => {
                    check_region(home_region)
                }
                MapCommand::AddNode { info, .. } => check_node(info),
                MapCommand::AddLearner { .. }
                | MapCommand::PromoteLearner { .. }
                | MapCommand::DrainNode { .. }
                | MapCommand::RemoveNode { .. } => Ok(()),
            },
            // Ids and hashes are bounded by their types; the rest is state.
            Command::PublishEvent { .. }
            | Command::ExtendHold { .. }
            | Command::ReleaseHold { .. }
            | Command::ConfirmHold { .. }
            | Command::CancelOrder { .. }
            | Command::CheckIn { .. }
            | Command::RefundSettled { .. }
            | Command::CancelEvent { .. }
            | Command::SetListingStatus { .. }
            | Command::SetRole { .. }
            | Command::StartSession { .. }
            | Command::RotateSession { .. }
            | Command::EndSession { .. }
            | Command::Tick
            | Command::SubscribeReminder { .. }
            | Command::UnsubscribeReminder { .. }
            | Command::LeaveWaitlist { .. }
            | Command::OfferWaitlist { .. }
            | Command::NoticeDelivered { .. }
            | Command::VerifyGuest { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CustomerId, EventId};

    fn hold(selection: Selection, ttl_ms: Option<u64>) -> Command {
        Command::Hold {
            event_id: EventId(1),
            holder: CustomerId::new("alice").unwrap(),
            selection,
            ttl_ms,
        }
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
        let failed = Command::NoticeFailed {
            event_id: EventId(1),
            notice_id: crate::notices::NoticeId {
                log_index: 1,
                ordinal: 0,
            },
            error: "e".repeat(MAX_COMMAND_TEXT + 1),
            permanent: false,
        };
        assert!(failed.check_shape().is_err());
        let method = Command::StartPayment {
            event_id: EventId(1),
            hold_id: crate::ids::HoldId(1),
            holder: CustomerId::new("alice").unwrap(),
            method: "m".repeat(MAX_PAYMENT_TEXT + 1),
        };
        assert!(method.check_shape().is_err());
        assert!(
            Command::Map(MapCommand::CreateGroup {
                home_region: "EU West".into()
            })
            .check_shape()
            .is_err()
        );
    }
}
