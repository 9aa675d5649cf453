//! Exchange rates and price conversion, in integers.
//!
//! A rate says how many units of `quote` one unit of `base` buys, as an exact
//! decimal (`mantissa × 10^-scale`, written like `157.4321`). Rates are set by
//! an operator and kept in the catalog (the metadata group), so every region
//! converts with the same numbers from its own replica.
//!
//! Conversion never uses floating point. An amount in the source currency's
//! minor units is multiplied by the rate and rescaled to the target
//! currency's minor units (ISO 4217: JPY 0, EUR 2, KWD 3) in 128-bit
//! integers, and rounded once, **half to even** (banker's rounding: 0.5 goes
//! to the even neighbour, so rounding errors do not drift one way over many
//! prices). A pair is converted with its own rate, or with the exact inverse
//! of the opposite pair's. Failing both, it goes through one third currency
//! (a cross rate: USD→JPY from EUR→USD and EUR→JPY), the two legs multiplied
//! as exact fractions before the one rounding; of several such currencies the
//! one whose older leg is the most recent wins (then the lowest code). With no
//! route at all, conversion fails (never a zero).
//!
//! A displayed conversion is a courtesy: what a card is charged is always the
//! event's own price in its own currency.

use serde::{Deserialize, Serialize};

use crate::ids::{Currency, Millis, Money};
use crate::rejection::Rejection;

/// Most digits after the decimal point of a rate.
pub const MAX_RATE_SCALE: u8 = 12;
/// Largest mantissa of a rate (so products stay far inside `i128`).
pub const MAX_RATE_MANTISSA: u64 = 1_000_000_000_000_000;
/// Most rates one request may set.
pub const MAX_RATES_PER_REQUEST: usize = 200;

/// An exact positive decimal: `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub mantissa: u64,
    pub scale: u8,
}

impl Rate {
    /// Parses `157.4321` or `2`: digits, at most one point, positive.
    pub fn parse(text: &str) -> Result<Rate, Rejection> {
        let bad = || {
            Rejection::InvalidRequest(format!(
                "rate {text:?} must be a positive decimal such as 157.4321 (at most {MAX_RATE_SCALE} decimals)"
            ))
        };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (text.contains('.') && fraction.is_empty())
            || fraction.len() > usize::from(MAX_RATE_SCALE)
        {
            return Err(bad());
        }
        let digits = format!("{whole}{fraction}");
        let mantissa: u64 = digits.parse().map_err(|_| bad())?;
        let rate = Rate {
            mantissa,
            scale: fraction.len() as u8,
        };
        rate.check().map_err(|_| bad())?;
        Ok(rate)
    }

    /// The shape every stored rate has: positive, bounded.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.mantissa == 0 || self.mantissa > MAX_RATE_MANTISSA || self.scale > MAX_RATE_SCALE {
            return Err(Rejection::InvalidRequest(format!(
                "a rate is positive, with a mantissa of at most {MAX_RATE_MANTISSA} and at most {MAX_RATE_SCALE} decimals"
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mantissa.to_string();
        let scale = usize::from(self.scale);
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{whole}.{fraction}")
    }
}

/// One stored rate: one `base` buys `rate` of `quote`, as of `as_of_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRate {
    pub base: Currency,
    pub quote: Currency,
    pub rate: Rate,
    /// When the rate was observed (the operator says).
    pub as_of_ms: Millis,
    /// When it was written (the log's time).
    pub set_at_ms: Millis,
}

/// How a price was converted, for showing beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converted {
    pub amount: Money,
    /// One unit of the source buys this many of the target (rounded to
    /// [`MAX_RATE_SCALE`] decimals when it is not a stored rate as it is).
    pub rate: Rate,
    /// The stored rate it came from: the pair's own, or the inverse of the
    /// opposite pair's.
    pub inverse: bool,
    /// The third currency a cross rate went through.
    pub via: Option<Currency>,
    /// When the rate was observed; for a cross rate, its older leg's time.
    pub as_of_ms: Millis,
}

/// `n / d` rounded half to even, for `d > 0`.
fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

fn pow10(exp: u32) -> i128 {
    10_i128.pow(exp)
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// A rate from one currency to another as the exact fraction `num / den` of
/// target per source unit, with the time it was observed.
#[derive(Debug, Clone, Copy)]
struct Leg {
    num: i128,
    den: i128,
    as_of_ms: Millis,
    /// The stored rate as it is, when the leg is exactly one stored rate.
    stored: Option<Rate>,
}

impl Leg {
    /// `from → to` from the pair's own rate, else the opposite pair's inverted.
    fn find(rates: &[FxRate], from: Currency, to: Currency) -> Option<Leg> {
        let stored = |base, quote| rates.iter().find(|r| r.base == base && r.quote == quote);
        if let Some(direct) = stored(from, to) {
            let r = direct.rate;
            return Some(Leg {
                num: i128::from(r.mantissa),
                den: pow10(u32::from(r.scale)),
                as_of_ms: direct.as_of_ms,
                stored: Some(r),
            });
        }
        stored(to, from).map(|opposite| {
            let r = opposite.rate;
            Leg {
                num: pow10(u32::from(r.scale)),
                den: i128::from(r.mantissa),
                as_of_ms: opposite.as_of_ms,
                stored: None,
            }
        })
    }

    /// This leg followed by `next`, as one reduced fraction (`None`: it
    /// would not fit, which bounded rates never reach).
    fn then(self, next: Leg) -> Option<Leg> {
        let (num, den) = (self.num.checked_mul(next.num)?, self.den.checked_mul(next.den)?);
        let common = gcd(num, den);
        Some(Leg {
            num: num / common,
            den: den / common,
            as_of_ms: self.as_of_ms.min(next.as_of_ms),
            stored: None,
        })
    }

    /// The rate to show: the stored one, or this fraction to
    /// [`MAX_RATE_SCALE`] decimals.
    fn shown(&self) -> Rate {
        self.stored.unwrap_or_else(|| {
            let mantissa = div_half_even(self.num * pow10(u32::from(MAX_RATE_SCALE)), self.den);
            Rate {
                mantissa: u64::try_from(mantissa).unwrap_or(u64::MAX),
                scale: MAX_RATE_SCALE,
            }
        })
    }
}

/// The cross route from `source` to `target` through one third currency
/// that both have a rate with: the freshest (its older leg the most recent),
/// then the lowest code.
fn cross(rates: &[FxRate], source: Currency, target: Currency) -> Option<(Currency, Leg)> {
    let pivots: std::collections::BTreeSet<Currency> = rates
        .iter()
        .flat_map(|r| [r.base, r.quote])
        .filter(|&c| c != source && c != target)
        .collect();
    pivots
        .into_iter()
        .filter_map(|pivot| {
            let leg = Leg::find(rates, source, pivot)?.then(Leg::find(rates, pivot, target)?)?;
            Some((pivot, leg))
        })
        .min_by_key(|(pivot, leg)| (std::cmp::Reverse(leg.as_of_ms), *pivot))
}

/// Converts `amount` to `target` with the stored `rates`: the pair's own
/// rate, else the exact inverse of the opposite pair's, else a cross rate
/// through one third currency.
pub fn convert(amount: Money, target: Currency, rates: &[FxRate]) -> Result<Converted, Rejection> {
    let source = amount.currency;
    let units = |c: Currency| {
        c.minor_units().ok_or_else(|| {
            Rejection::InvalidRequest(format!("{c} is not an ISO 4217 currency with minor units"))
        })
    };
    let (from_units, to_units) = (u32::from(units(source)?), u32::from(units(target)?));
    if source == target {
        return Ok(Converted {
            amount,
            rate: Rate {
                mantissa: 1,
                scale: 0,
            },
            inverse: false,
            via: None,
            as_of_ms: 0,
        });
    }
    let (leg, via) = match Leg::find(rates, source, target) {
        Some(leg) => (leg, None),
        None => match cross(rates, source, target) {
            Some((pivot, leg)) => (leg, Some(pivot)),
            None => {
                return Err(Rejection::FxRateMissing {
                    from: source.to_string(),
                    to: target.to_string(),
                });
            }
        },
    };
    let too_large = || Rejection::InvalidRequest(format!("{amount:?} converted to {target} does not fit"));
    // minor_to = minor_from × rate × 10^to_units / 10^from_units
    let n = i128::from(amount.amount_minor)
        .checked_mul(leg.num)
        .and_then(|n| n.checked_mul(pow10(to_units)))
        .ok_or_else(too_large)?;
    let d = leg.den.checked_mul(pow10(from_units)).ok_or_else(too_large)?;
    let amount_minor = i64::try_from(div_half_even(n, d)).map_err(|_| too_large())?;
    Ok(Converted {
        amount: Money::new(amount_minor, target),
        rate: leg.shown(),
        inverse: via.is_none() && leg.stored.is_none(),
        via,
        as_of_ms: leg.as_of_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::new(code).unwrap()
    }

    fn table(rates: &[(&str, &str, &str)]) -> Vec<FxRate> {
        rates
            .iter()
            .map(|(b, q, r)| FxRate {
                base: c(b),
                quote: c(q),
                rate: Rate::parse(r).unwrap(),
                as_of_ms: 7,
                set_at_ms: 8,
            })
            .collect()
    }

    #[test]
    fn rates_parse_and_print_exactly() {
        for text in ["157.4321", "2", "0.000001", "1.5", "10.25"] {
            assert_eq!(Rate::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "0",
            "0.0",
            "-1",
            "1.",
            ".5",
            "1e3",
            "1,5",
            "1.2.3",
            "0.0000000000001",
            "abc",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn conversion_rescales_between_minor_units() {
        let fx = table(&[
            ("EUR", "JPY", "157.43"),
            ("EUR", "KWD", "0.3312"),
            ("USD", "EUR", "0.92"),
        ]);
        // 75.00 EUR = 11807.25 JPY -> 11807 (JPY has no minor unit).
        let yen = convert(Money::new(7500, c("EUR")), c("JPY"), &fx).unwrap();
        assert_eq!(yen.amount, Money::new(11_807, c("JPY")));
        assert!(!yen.inverse);
        assert_eq!(yen.as_of_ms, 7);
        // 75.00 EUR = 24.840 KWD (three decimals).
        let dinar = convert(Money::new(7500, c("EUR")), c("KWD"), &fx).unwrap();
        assert_eq!(dinar.amount, Money::new(24_840, c("KWD")));
        // The same currency is the amount itself.
        let same = convert(Money::new(7500, c("EUR")), c("EUR"), &fx).unwrap();
        assert_eq!(same.amount, Money::new(7500, c("EUR")));
    }

    #[test]
    fn rounding_is_half_to_even() {
        // 1 EUR at 0.5 per unit: 0.005 -> 0.00 (even), 0.015 -> 0.02 (even), 0.025 -> 0.02.
        let fx = table(&[("EUR", "USD", "0.5")]);
        let usd = |cents: i64| {
            convert(Money::new(cents, c("EUR")), c("USD"), &fx)
                .unwrap()
                .amount
                .amount_minor
        };
        assert_eq!(usd(1), 0, "0.005 rounds to even 0.00");
        assert_eq!(usd(3), 2, "0.015 rounds to even 0.02");
        assert_eq!(usd(5), 2, "0.025 rounds to even 0.02");
        assert_eq!(usd(7), 4, "0.035 rounds to even 0.04");
        assert_eq!(usd(-3), -2, "refunds round the same way");
        assert_eq!(div_half_even(7, 2), 4);
        assert_eq!(div_half_even(5, 2), 2);
        assert_eq!(div_half_even(-5, 2), -2);
    }

    #[test]
    fn the_opposite_pair_is_used_inverted_and_a_missing_pair_is_an_error() {
        let fx = table(&[("EUR", "JPY", "160")]);
        // 16000 JPY at 1/160 = 100.00 EUR.
        let eur = convert(Money::new(16_000, c("JPY")), c("EUR"), &fx).unwrap();
        assert_eq!(eur.amount, Money::new(10_000, c("EUR")));
        assert!(eur.inverse);
        assert_eq!(eur.rate.to_string(), "0.006250000000");
        let missing = convert(Money::new(100, c("USD")), c("JPY"), &fx).unwrap_err();
        assert!(matches!(missing, Rejection::FxRateMissing { .. }), "{missing:?}");
    }

    #[test]
    fn a_pair_without_a_rate_crosses_through_a_third_currency() {
        // EUR-based rates only: 1 EUR = 1.25 USD = 160 JPY, so 1 USD = 128 JPY.
        let fx = table(&[("EUR", "USD", "1.25"), ("EUR", "JPY", "160")]);
        let yen = convert(Money::new(10_000, c("USD")), c("JPY"), &fx).unwrap();
        assert_eq!(yen.amount, Money::new(12_800, c("JPY")), "100.00 USD");
        assert_eq!(yen.via, Some(c("EUR")));
        assert!(!yen.inverse);
        assert_eq!(yen.rate.to_string(), "128.000000000000");
        // And back: 12800 JPY = 100.00 USD exactly (1/128 is 0.0078125).
        let usd = convert(Money::new(12_800, c("JPY")), c("USD"), &fx).unwrap();
        assert_eq!(usd.amount, Money::new(10_000, c("USD")));
        assert_eq!(usd.rate.to_string(), "0.007812500000");
        // The legs are multiplied exactly and rounded once: 1 EUR = 3 GBP,
        // 1 EUR = 7 CHF, so 1.00 GBP = 7/3 CHF = 2.333… -> 2.33, where
        // rounding the leg 1/3 first to 0.33 would give 2.31.
        let fx = table(&[("EUR", "GBP", "3"), ("EUR", "CHF", "7")]);
        let chf = convert(Money::new(100, c("GBP")), c("CHF"), &fx).unwrap();
        assert_eq!(chf.amount, Money::new(233, c("CHF")));
        // A direct rate wins over any cross.
        let fx = table(&[
            ("EUR", "USD", "1.25"),
            ("EUR", "JPY", "160"),
            ("USD", "JPY", "150"),
        ]);
        let yen = convert(Money::new(100, c("USD")), c("JPY"), &fx).unwrap();
        assert_eq!((yen.amount.amount_minor, yen.via), (150, None));
    }

    #[test]
    fn of_several_crosses_the_freshest_wins_and_carries_its_older_legs_time() {
        let rate = |b: &str, q: &str, r: &str, as_of_ms| FxRate {
            base: c(b),
            quote: c(q),
            rate: Rate::parse(r).unwrap(),
            as_of_ms,
            set_at_ms: 0,
        };
        let fx = vec![
            rate("EUR", "USD", "1.25", 100),
            rate("EUR", "JPY", "160", 900),
            rate("GBP", "USD", "1.5", 500),
            rate("GBP", "JPY", "200", 600),
        ];
        // Through EUR the older leg is 100; through GBP it is 500: GBP wins.
        let yen = convert(Money::new(300, c("USD")), c("JPY"), &fx).unwrap();
        assert_eq!(yen.via, Some(c("GBP")));
        assert_eq!(yen.as_of_ms, 500);
        assert_eq!(
            yen.amount,
            Money::new(400, c("JPY")),
            "3.00 USD = 2 GBP = 400 JPY"
        );
        // Two hops are not searched: CHF links only to GBP, which has no JPY rate here.
        let fx = vec![rate("CHF", "GBP", "0.9", 1), rate("EUR", "JPY", "160", 1)];
        assert!(matches!(
            convert(Money::new(100, c("CHF")), c("JPY"), &fx),
            Err(Rejection::FxRateMissing { .. })
        ));
    }

    #[test]
    fn the_largest_prices_convert_without_overflow() {
        let fx = table(&[("KWD", "JPY", "999999999.999999")]);
        let max = c("KWD").max_price_minor().unwrap() * 50;
        match convert(Money::new(max, c("KWD")), c("JPY"), &fx) {
            Ok(_) | Err(Rejection::InvalidRequest(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}
