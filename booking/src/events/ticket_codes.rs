//! Ticket codes: unguessable, yet the same on every replica.
//!
//! A code is `"{event_id}-{12 Crockford base32 characters}"`. The characters are
//! the first 60 bits of SHA-256(salt || event_id || order_id || ordinal), with
//! the integers in big-endian (8, 8 and 4 bytes). The 16-byte salt is drawn
//! randomly by the leader when the event is created and is part of the replicated
//! log entry, so every replica derives the same codes while an outsider who knows
//! event and order ids still cannot predict them.
//!
//! Crockford's alphabet leaves out `I`, `L`, `O` and `U` so that codes read aloud
//! or typed from paper are hard to get wrong.
//!
//! Codes must be unique within an event. With 60 bits a collision is
//! astronomically unlikely, but if one happens the code is lengthened one
//! character at a time (still a pure function of the inputs and the codes that
//! already exist, so replicas agree). If even the whole digest collides, which
//! would mean a SHA-256 collision, the code falls back to appending the order id
//! and ordinal, which are unique by construction.

use sha2::{Digest, Sha256};

use crate::ids::{EventId, OrderId, TicketCode};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of digest in a code, unless a collision forces more.
pub(crate) const CODE_CHARS: usize = 12;
/// Whole 5-bit characters in a 256-bit digest.
const MAX_CODE_CHARS: usize = 256 / 5;

/// The code of ticket `ordinal` of `order_id`. `taken` says whether a candidate
/// is already in use in this event (including by earlier tickets of this order).
pub(crate) fn derive_code(
    salt: &[u8; 16],
    event_id: EventId,
    order_id: OrderId,
    ordinal: u32,
    taken: impl Fn(&str) -> bool,
) -> TicketCode {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(event_id.0.to_be_bytes());
    hasher.update(order_id.0.to_be_bytes());
    hasher.update(ordinal.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    for chars in CODE_CHARS..=MAX_CODE_CHARS {
        let candidate = format!("{event_id}-{}", crockford(&digest, chars));
        if !taken(&candidate) {
            return TicketCode::from_generated(candidate);
        }
    }
    let full = crockford(&digest, MAX_CODE_CHARS);
    TicketCode::from_generated(format!("{event_id}-{full}-{order_id}-{ordinal}"))
}

/// The first `chars` 5-bit groups of `bytes`, most significant bit first.
fn crockford(bytes: &[u8], chars: usize) -> String {
    (0..chars)
        .map(|i| {
            let bit = i * 5;
            // Read the two bytes that contain this group; the second may be past the end.
            let hi = u16::from(bytes[bit / 8]);
            let lo = u16::from(bytes.get(bit / 8 + 1).copied().unwrap_or(0));
            let window = (hi << 8) | lo;
            let group = (window >> (11 - bit % 8)) & 0b11111;
            char::from(CROCKFORD[group as usize])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crockford_reads_five_bits_at_a_time() {
        // 0b00001_00010_00011_00100_00101_00110_00111_01000 = 1..=8
        let bytes = [0b0000_1000, 0b1000_0110, 0b0100_0010, 0b1001_1000, 0b1110_1000];
        assert_eq!(crockford(&bytes, 8), "12345678");
        assert_eq!(crockford(&[0xff; 5], 8), "ZZZZZZZZ");
    }

    #[test]
    fn codes_are_deterministic_and_depend_on_every_input() {
        let salt = [7; 16];
        let code = |salt: &[u8; 16], event, order, ordinal| {
            derive_code(salt, EventId(event), OrderId(order), ordinal, |_| false)
                .as_str()
                .to_owned()
        };
        let base = code(&salt, 1, 2, 0);
        assert_eq!(base, code(&salt, 1, 2, 0));
        assert!(base.starts_with("1-"));
        assert_eq!(base.len(), 2 + CODE_CHARS);
        assert!(base[2..].bytes().all(|b| CROCKFORD.contains(&b)));
        assert_ne!(base, code(&[8; 16], 1, 2, 0));
        assert_ne!(base[2..], code(&salt, 3, 2, 0)[2..]);
        assert_ne!(base, code(&salt, 1, 3, 0));
        assert_ne!(base, code(&salt, 1, 2, 1));
    }

    #[test]
    fn a_collision_lengthens_the_code_deterministically() {
        let salt = [1; 16];
        let short = derive_code(&salt, EventId(9), OrderId(4), 0, |_| false);
        let longer = derive_code(&salt, EventId(9), OrderId(4), 0, |c| c == short.as_str());
        assert_eq!(longer.as_str().len(), short.as_str().len() + 1);
        assert!(longer.as_str().starts_with(short.as_str()));

        let last_resort = derive_code(&salt, EventId(9), OrderId(4), 0, |c| {
            c.len() <= 2 + MAX_CODE_CHARS
        });
        assert!(last_resort.as_str().ends_with("-4-0"));
        assert!(TicketCode::new(last_resort.as_str()).is_ok());
    }
}
