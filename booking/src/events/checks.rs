//! Shape checks of an event's commands: the limits a hold, a waitlist entry
//! or a payment can be refused for by size or shape alone. The event's rules
//! call them, and so does the edge (`shape`) before proposing, so both give
//! the same answer.

use super::payments::MAX_PAYMENT_TEXT;
use super::vocab::{MAX_HOLD_TTL_MS, MAX_PLACES_PER_HOLD, MIN_HOLD_TTL_MS, Selection};
use crate::layout::{MAX_NAME_LEN, is_valid_name};
use crate::rejection::Rejection;

/// Longest seat id: `{section}-{row}-{number}` with names of at most
/// `MAX_NAME_LEN` characters and a `u32` number.
pub const MAX_SEAT_ID_LEN: usize = 2 * MAX_NAME_LEN + 10 + 2;
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
pub fn check_place_name(what: &str, name: &str) -> Result<(), Rejection> {
    if is_valid_name(name) {
        Ok(())
    } else {
        invalid(format!("{what} name must be 1..=32 characters of [A-Za-z0-9]"))
    }
}

/// A hold's lifetime, defaulted or asked for.
pub fn check_hold_ttl(ttl_ms: u64) -> Result<(), Rejection> {
    if (MIN_HOLD_TTL_MS..=MAX_HOLD_TTL_MS).contains(&ttl_ms) {
        Ok(())
    } else {
        invalid(format!(
            "ttl_ms must be within {MIN_HOLD_TTL_MS}..={MAX_HOLD_TTL_MS}"
        ))
    }
}

/// How many places a waitlist entry may ask for.
pub fn check_waitlist_quantity(quantity: u32) -> Result<(), Rejection> {
    if quantity == 0 || quantity > MAX_PLACES_PER_HOLD {
        return invalid(format!(
            "a waitlist entry asks for 1..={MAX_PLACES_PER_HOLD} places"
        ));
    }
    Ok(())
}

/// A payment method token.
pub fn check_payment_method(method: &str) -> Result<(), Rejection> {
    if method.is_empty() || method.len() > MAX_PAYMENT_TEXT {
        return invalid(format!("payment method must be 1..={MAX_PAYMENT_TEXT} bytes"));
    }
    Ok(())
}
