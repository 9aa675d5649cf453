//! The shapes of the names places go by: ISO 3166-1 countries, IANA time
//! zones and BCP 47 locales. Shape only: a well-formed name nobody uses
//! passes (the tz database and the language registry are not consulted).

/// `FR`, `JP`: two upper-case letters.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The shape of an IANA time zone name (`Area/Location`) or `UTC`.
pub fn is_time_zone_name(zone: &str) -> bool {
    zone == "UTC"
        || (zone.contains('/')
            && zone.len() <= 64
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+')))
}

/// `en`, `en-IE`, `zh-Hant-TW`: a language of 2-3 lower-case letters, then
/// subtags of 2-8 letters or digits.
pub fn is_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()));
    language_ok
        && tag.len() <= 35
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_from_prose() {
        for good in ["FR", "JP"] {
            assert!(is_country_code(good), "{good}");
        }
        for bad in ["fr", "FRA", "France", ""] {
            assert!(!is_country_code(bad), "{bad}");
        }
        for good in [
            "UTC",
            "Europe/Dublin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(is_time_zone_name(good), "{good}");
        }
        for bad in ["Dublin", "Europe/Dub lin", ""] {
            assert!(!is_time_zone_name(bad), "{bad}");
        }
        for good in ["en", "en-IE", "zh-Hant-TW", "ja-JP"] {
            assert!(is_locale(good), "{good}");
        }
        for bad in ["English", "EN", "en_IE", "en-", ""] {
            assert!(!is_locale(bad), "{bad}");
        }
    }
}
