//! Event specifications (what a client sends) and the seat map compiled from them
//! (what the rules use).
//!
//! An [`EventSpec`] is the client-facing description of a venue: price tiers,
//! sections of rows of numbered seats, and general-admission (GA) areas sold by
//! quantity. [`EventSpec::validate`] is the only gate into the state machine; once
//! a spec passed it, [`SeatMap::compile`] turns it into dense indexes:
//!
//! - seat index: position of the seat in spec order (sections, then rows, then
//!   seats left to right). Seat records are keyed by it, so it must never change
//!   for a stored event: the spec is immutable after creation and compiling is a
//!   pure function of it.
//! - tier index and area index: position in `tiers` and `ga_areas`.
//!
//! Seat ids are `"{section}-{row}-{number}"`. Names are 1..=32 characters of
//! `[A-Za-z0-9]`, so the `-` separator is unambiguous. Two seats are adjacent iff
//! they are neighbours in their row's list and their numbers differ by exactly
//! one; a jump in numbering marks an aisle.
//!
//! Stored events are compiled again (and so re-validated) whenever the state is
//! loaded from records. Validation rules may therefore be loosened freely, but
//! tightening one needs a migration and a new `RECORD_FORMAT_VERSION`, or events
//! created under the old rules would stop loading.
//!
//! This module knows nothing about availability, holds or orders.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ids::{Currency, Millis, Money};
use crate::rejection::Rejection;

/// Most seats plus GA places one event may have. Keeps a single event (and its
/// snapshot and view) bounded.
pub const MAX_PLACES_PER_EVENT: u64 = 200_000;
/// Longest event name, in characters.
pub const MAX_EVENT_NAME_CHARS: usize = 200;
/// Longest section, row, tier or area name.
pub const MAX_NAME_LEN: usize = 32;

/// What a client describes when creating an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSpec {
    pub name: String,
    pub currency: Currency,
    pub tiers: Vec<PriceTier>,
    #[serde(default)]
    pub sections: Vec<SectionSpec>,
    #[serde(default)]
    pub ga_areas: Vec<GaAreaSpec>,
    /// `None` means unlimited.
    #[serde(default)]
    pub max_tickets_per_customer: Option<u32>,
    /// Holds are taken from this time on (log time, ms); `None`: at once.
    #[serde(default)]
    pub sales_start_ms: Option<Millis>,
    /// Holds are refused from this time on; `None`: until the event is cancelled.
    #[serde(default)]
    pub sales_end_ms: Option<Millis>,
    /// Most holds one customer may have active at once in this event
    /// (against seat hoarding during an on-sale); `None`: no cap.
    #[serde(default)]
    pub max_active_holds_per_customer: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTier {
    pub name: String,
    pub price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSpec {
    pub name: String,
    pub rows: Vec<RowSpec>,
}

/// A row; `seats` are listed left to right as seen from the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSpec {
    pub name: String,
    pub seats: Vec<SeatSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSpec {
    pub number: u32,
    pub tier: String,
}

/// A general-admission area: `capacity` interchangeable places of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaAreaSpec {
    pub name: String,
    pub capacity: u32,
    pub tier: String,
}

/// Whether `name` has the shape of a section, row, tier or area name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The seat id of seat `number` in `row` of `section`.
pub fn seat_id(section: &str, row: &str, number: u32) -> String {
    format!("{section}-{row}-{number}")
}

impl EventSpec {
    /// A rectangular venue: sections `A`, `B`, … (then `AA`, `AB`, … like
    /// spreadsheet columns), rows `1..=rows`, seats `1..=seats_per_row`. Row `r`
    /// gets tier `(r - 1) * tiers.len() / rows`, so the first tier covers the
    /// front rows. With no tiers the spec is returned but will not validate.
    pub fn grid(
        name: &str,
        currency: Currency,
        sections: u32,
        rows: u32,
        seats_per_row: u32,
        tiers: Vec<PriceTier>,
    ) -> EventSpec {
        let tier_for_row = |row: u32| -> String {
            let index = u64::from(row - 1) * tiers.len() as u64 / u64::from(rows);
            tiers
                .get(index as usize)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        };
        let sections = (0..sections)
            .map(|s| SectionSpec {
                name: spreadsheet_name(s),
                rows: (1..=rows)
                    .map(|r| RowSpec {
                        name: r.to_string(),
                        seats: (1..=seats_per_row)
                            .map(|number| SeatSpec {
                                number,
                                tier: tier_for_row(r),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        EventSpec {
            name: name.to_owned(),
            currency,
            tiers,
            sections,
            ga_areas: Vec::new(),
            max_tickets_per_customer: None,
            sales_start_ms: None,
            sales_end_ms: None,
            max_active_holds_per_customer: None,
        }
    }

    /// A small hall for demos and tests: sections `A` and `B` of 5 rows of 10
    /// seats (rows 1–3 tier `front` at 75.00 EUR, rows 4–5 tier `back` at 45.00),
    /// a standing `floor` of 50 places at 30.00, and at most 8 tickets per customer.
    pub fn demo_venue() -> EventSpec {
        let eur = Currency::EUR;
        let tier = |name: &str, amount_minor| PriceTier {
            name: name.to_owned(),
            price: Money::new(amount_minor, eur),
        };
        let mut spec = EventSpec::grid(
            "Demo Hall",
            eur,
            2,
            5,
            10,
            vec![tier("front", 7500), tier("back", 4500)],
        );
        spec.tiers.push(tier("standing", 3000));
        spec.ga_areas.push(GaAreaSpec {
            name: "floor".to_owned(),
            capacity: 50,
            tier: "standing".to_owned(),
        });
        spec.max_tickets_per_customer = Some(8);
        spec
    }

    /// Seats plus GA places.
    pub fn capacity(&self) -> u64 {
        let seats: u64 = self
            .sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|r| r.seats.len() as u64)
            .sum();
        let places: u64 = self.ga_areas.iter().map(|a| u64::from(a.capacity)).sum();
        seats + places
    }

    /// Checks everything the state machine relies on. Rules: the name has
    /// 1..=200 characters; every section, row, tier and area name is 1..=32
    /// characters of `[A-Za-z0-9]`; tier, section and area names are unique, row
    /// names are unique within their section and seat numbers within their row
    /// (so seat ids are unique); every tier price is in this event's currency and
    /// within `0..=` the currency's [`Currency::max_price_minor`]; every referenced tier exists; sections and
    /// rows are not empty; every GA area has capacity >= 1; the event has
    /// 1..=200_000 places; a per-customer limit, if set, is at least 1.
    pub fn validate(&self) -> Result<(), Rejection> {
        let invalid = |why: String| Err(Rejection::InvalidSpec(why));
        let name_chars = self.name.chars().count();
        if name_chars == 0 || name_chars > MAX_EVENT_NAME_CHARS {
            return invalid("event name must have 1..=200 characters".to_owned());
        }
        if self.max_active_holds_per_customer == Some(0) {
            return invalid("max_active_holds_per_customer must be at least 1 when set".to_owned());
        }
        if self.max_tickets_per_customer == Some(0) {
            return invalid("max_tickets_per_customer must be at least 1 when set".to_owned());
        }
        if let (Some(start), Some(end)) = (self.sales_start_ms, self.sales_end_ms)
            && start >= end
        {
            return invalid("sales_start_ms must be before sales_end_ms".to_owned());
        }
        let Some(max_price) = self.currency.max_price_minor() else {
            return invalid(format!(
                "{} is not an ISO 4217 currency that tickets can be sold in",
                self.currency
            ));
        };
        let mut tiers = BTreeMap::new();
        for tier in &self.tiers {
            check_name("tier", &tier.name)?;
            if tiers.insert(tier.name.as_str(), ()).is_some() {
                return invalid(format!("tier {} is defined twice", tier.name));
            }
            if tier.price.currency != self.currency {
                return invalid(format!(
                    "tier {} is priced in {}, not {}",
                    tier.name, tier.price.currency, self.currency
                ));
            }
            if !(0..=max_price).contains(&tier.price.amount_minor) {
                return invalid(format!(
                    "tier {} price must be within 0..={max_price} (minor units of {}: {} digits)",
                    tier.name,
                    self.currency,
                    self.currency.minor_units().unwrap_or(0)
                ));
            }
        }
        let check_tier = |tier: &str, place: &str| match tiers.contains_key(tier) {
            true => Ok(()),
            false => invalid(format!("{place} refers to unknown tier {tier:?}")),
        };
        let mut sections = BTreeMap::new();
        for section in &self.sections {
            check_name("section", &section.name)?;
            if sections.insert(section.name.as_str(), ()).is_some() {
                return invalid(format!("section {} is defined twice", section.name));
            }
            if section.rows.is_empty() {
                return invalid(format!("section {} has no rows", section.name));
            }
            let mut rows = BTreeMap::new();
            for row in &section.rows {
                check_name("row", &row.name)?;
                if rows.insert(row.name.as_str(), ()).is_some() {
                    return invalid(format!("row {}-{} is defined twice", section.name, row.name));
                }
                if row.seats.is_empty() {
                    return invalid(format!("row {}-{} has no seats", section.name, row.name));
                }
                let mut numbers = BTreeMap::new();
                for seat in &row.seats {
                    let id = seat_id(&section.name, &row.name, seat.number);
                    if numbers.insert(seat.number, ()).is_some() {
                        return invalid(format!("seat {id} is defined twice"));
                    }
                    check_tier(&seat.tier, &format!("seat {id}"))?;
                }
            }
        }
        let mut areas = BTreeMap::new();
        for area in &self.ga_areas {
            check_name("area", &area.name)?;
            if areas.insert(area.name.as_str(), ()).is_some() {
                return invalid(format!("area {} is defined twice", area.name));
            }
            if area.capacity == 0 {
                return invalid(format!("area {} must have capacity >= 1", area.name));
            }
            check_tier(&area.tier, &format!("area {}", area.name))?;
        }
        let capacity = self.capacity();
        if capacity == 0 {
            return invalid("an event needs at least one seat or GA place".to_owned());
        }
        if capacity > MAX_PLACES_PER_EVENT {
            return invalid(format!(
                "{capacity} places exceed the limit of {MAX_PLACES_PER_EVENT}"
            ));
        }
        Ok(())
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Rejection> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Rejection::InvalidSpec(format!(
            "{what} name {name:?} must be 1..=32 characters of [A-Za-z0-9]"
        )))
    }
}

/// `A`..`Z`, then `AA`, `AB`, … (bijective base 26).
fn spreadsheet_name(mut index: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

/// One seat of a compiled map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeatEntry {
    pub id: String,
    pub number: u32,
    pub tier: u32,
}

/// One row of a compiled map: its seats are `seats` (a range of seat indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowEntry {
    pub name: String,
    pub seats: Range<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionEntry {
    pub name: String,
    /// Indexes into `SeatMap::rows`, front row first.
    pub rows: Range<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AreaEntry {
    pub name: String,
    pub capacity: u32,
    pub tier: u32,
}

/// The dense, index-based form of a validated [`EventSpec`]. Derived data: it is
/// never persisted, only rebuilt from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeatMap {
    pub seats: Vec<SeatEntry>,
    pub rows: Vec<RowEntry>,
    pub sections: Vec<SectionEntry>,
    pub areas: Vec<AreaEntry>,
    /// Seats plus GA places per tier.
    pub tier_capacity: Vec<u32>,
    seat_by_id: BTreeMap<String, u32>,
    section_by_name: BTreeMap<String, u32>,
    tier_by_name: BTreeMap<String, u32>,
    area_by_name: BTreeMap<String, u32>,
}

impl SeatMap {
    /// Compiles a spec that passed [`EventSpec::validate`]. Returns the reason if
    /// it did not (a stored event whose spec no longer compiles is corrupt).
    pub fn compile(spec: &EventSpec) -> Result<SeatMap, Rejection> {
        spec.validate()?;
        let tier_by_name: BTreeMap<String, u32> = spec
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i as u32))
            .collect();
        // Validation guarantees that every tier exists and that all counts fit in u32.
        let tier_of = |name: &str| tier_by_name.get(name).copied().unwrap_or(0);
        let mut map = SeatMap {
            seats: Vec::new(),
            rows: Vec::new(),
            sections: Vec::new(),
            areas: Vec::new(),
            tier_capacity: vec![0; spec.tiers.len()],
            seat_by_id: BTreeMap::new(),
            section_by_name: BTreeMap::new(),
            tier_by_name: BTreeMap::new(),
            area_by_name: BTreeMap::new(),
        };
        for section in &spec.sections {
            let first_row = map.rows.len() as u32;
            for row in &section.rows {
                let first_seat = map.seats.len() as u32;
                for seat in &row.seats {
                    let id = seat_id(&section.name, &row.name, seat.number);
                    let tier = tier_of(&seat.tier);
                    map.tier_capacity[tier as usize] += 1;
                    map.seat_by_id.insert(id.clone(), map.seats.len() as u32);
                    map.seats.push(SeatEntry {
                        id,
                        number: seat.number,
                        tier,
                    });
                }
                map.rows.push(RowEntry {
                    name: row.name.clone(),
                    seats: first_seat..map.seats.len() as u32,
                });
            }
            map.section_by_name
                .insert(section.name.clone(), map.sections.len() as u32);
            map.sections.push(SectionEntry {
                name: section.name.clone(),
                rows: first_row..map.rows.len() as u32,
            });
        }
        for area in &spec.ga_areas {
            let tier = tier_of(&area.tier);
            map.tier_capacity[tier as usize] += area.capacity;
            map.area_by_name.insert(area.name.clone(), map.areas.len() as u32);
            map.areas.push(AreaEntry {
                name: area.name.clone(),
                capacity: area.capacity,
                tier,
            });
        }
        map.tier_by_name = tier_by_name;
        Ok(map)
    }

    pub fn capacity(&self) -> u32 {
        self.tier_capacity.iter().sum()
    }

    pub fn seat(&self, id: &str) -> Option<u32> {
        self.seat_by_id.get(id).copied()
    }

    pub fn section(&self, name: &str) -> Option<u32> {
        self.section_by_name.get(name).copied()
    }

    pub fn tier(&self, name: &str) -> Option<u32> {
        self.tier_by_name.get(name).copied()
    }

    pub fn area(&self, name: &str) -> Option<u32> {
        self.area_by_name.get(name).copied()
    }

    /// The rows of a section, front row first.
    pub fn section_rows(&self, section: u32) -> &[RowEntry] {
        let rows = &self.sections[section as usize].rows;
        &self.rows[rows.start as usize..rows.end as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::new("EUR").unwrap()
    }

    fn tier(name: &str, amount_minor: i64) -> PriceTier {
        PriceTier {
            name: name.to_owned(),
            price: Money::new(amount_minor, eur()),
        }
    }

    fn tiny() -> EventSpec {
        EventSpec::grid("Tiny", eur(), 1, 2, 3, vec![tier("std", 1000)])
    }

    fn reason(spec: &EventSpec) -> String {
        match spec.validate() {
            Err(Rejection::InvalidSpec(why)) => why,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn grid_assigns_front_rows_to_the_first_tier() {
        let spec = EventSpec::grid(
            "G",
            eur(),
            1,
            5,
            2,
            vec![tier("a", 3), tier("b", 2), tier("c", 1)],
        );
        let row_tiers: Vec<&str> = spec.sections[0]
            .rows
            .iter()
            .map(|r| r.seats[0].tier.as_str())
            .collect();
        // (r-1)*3/5 for r = 1..=5 is 0, 0, 1, 1, 2.
        assert_eq!(row_tiers, ["a", "a", "b", "b", "c"]);
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn grid_names_sections_like_spreadsheet_columns() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(spreadsheet_name)
            .collect();
        assert_eq!(names, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }

    #[test]
    fn demo_venue_is_valid_and_has_150_places() {
        let spec = EventSpec::demo_venue();
        assert_eq!(spec.validate(), Ok(()));
        let map = SeatMap::compile(&spec).unwrap();
        assert_eq!(map.capacity(), 150);
        // Rows 1-3 front, 4-5 back, in two sections of ten seats per row.
        assert_eq!(map.tier_capacity, [60, 40, 50]);
        assert_eq!(map.seat("B-5-10"), Some(99));
        assert_eq!(map.seat("B-5-11"), None);
    }

    #[test]
    fn the_seat_index_follows_spec_order() {
        let map = SeatMap::compile(&tiny()).unwrap();
        let ids: Vec<&str> = map.seats.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3"]);
        assert_eq!(map.section_rows(0)[1].seats, 3..6);
    }

    #[test]
    fn validation_rejects_duplicates() {
        let mut spec = tiny();
        spec.sections[0].rows[0].seats[1].number = 1;
        assert!(reason(&spec).contains("seat A-1-1 is defined twice"));

        let mut spec = tiny();
        spec.sections.push(spec.sections[0].clone());
        assert!(reason(&spec).contains("section A is defined twice"));

        let mut spec = tiny();
        spec.sections[0].rows[1].name = "1".to_owned();
        assert!(reason(&spec).contains("row A-1 is defined twice"));

        let mut spec = tiny();
        spec.tiers.push(tier("std", 5));
        assert!(reason(&spec).contains("tier std is defined twice"));

        let mut spec = tiny();
        let area = GaAreaSpec {
            name: "floor".to_owned(),
            capacity: 1,
            tier: "std".to_owned(),
        };
        spec.ga_areas = vec![area.clone(), area];
        assert!(reason(&spec).contains("area floor is defined twice"));
    }

    #[test]
    fn validation_rejects_unknown_tiers_and_bad_prices() {
        let mut spec = tiny();
        spec.sections[0].rows[0].seats[0].tier = "vip".to_owned();
        assert!(reason(&spec).contains("unknown tier"));

        let mut spec = tiny();
        spec.ga_areas.push(GaAreaSpec {
            name: "floor".to_owned(),
            capacity: 3,
            tier: "vip".to_owned(),
        });
        assert!(reason(&spec).contains("area floor refers to unknown tier"));

        let mut spec = tiny();
        spec.tiers[0].price.amount_minor = -1;
        assert!(reason(&spec).contains("price"));

        let mut spec = tiny();
        spec.tiers[0].price.amount_minor = 1_000_000_000_000 + 1;
        assert!(reason(&spec).contains("price"), "EUR: ten billion euros at most");
        spec.tiers[0].price.amount_minor = 1_000_000_000_000;
        assert!(spec.validate().is_ok());

        // The bound follows the currency's minor units.
        let in_currency = |code: &str, amount_minor: i64| {
            let mut spec = tiny();
            let currency = Currency::new(code).unwrap();
            spec.currency = currency;
            for tier in &mut spec.tiers {
                tier.price = Money::new(amount_minor, currency);
            }
            spec.validate()
        };
        assert!(in_currency("JPY", 10_000_000_000).is_ok());
        assert!(
            in_currency("JPY", 10_000_000_001).is_err(),
            "JPY has no minor unit"
        );
        assert!(in_currency("KWD", 10_000_000_000_000).is_ok(), "KWD has three");
        for code in ["XAU", "CLF", "ABC"] {
            let refused = in_currency(code, 100).unwrap_err().to_string();
            assert!(refused.contains("not an ISO 4217 currency"), "{code}: {refused}");
        }

        let mut spec = tiny();
        spec.tiers[0].price.currency = Currency::new("USD").unwrap();
        assert!(reason(&spec).contains("priced in USD"));
    }

    #[test]
    fn validation_rejects_bad_names() {
        for bad in ["", "A-1", "with space", &"x".repeat(33), "Ü"] {
            let mut spec = tiny();
            spec.sections[0].name = bad.to_owned();
            assert!(reason(&spec).contains("section name"), "{bad:?}");
        }
        let mut spec = tiny();
        spec.name = String::new();
        assert!(reason(&spec).contains("event name"));
        spec.name = "é".repeat(200);
        assert_eq!(spec.validate(), Ok(()), "the limit counts characters, not bytes");
        spec.name.push('x');
        assert!(reason(&spec).contains("event name"));
    }

    #[test]
    fn validation_rejects_empty_and_oversized_venues() {
        let mut spec = tiny();
        spec.sections.clear();
        assert!(reason(&spec).contains("at least one seat"));

        let mut spec = tiny();
        spec.sections[0].rows[0].seats.clear();
        assert!(reason(&spec).contains("row A-1 has no seats"));

        let mut spec = tiny();
        spec.sections[0].rows.clear();
        assert!(reason(&spec).contains("section A has no rows"));

        let mut spec = tiny();
        spec.ga_areas.push(GaAreaSpec {
            name: "floor".to_owned(),
            capacity: 0,
            tier: "std".to_owned(),
        });
        assert!(reason(&spec).contains("capacity >= 1"));

        // 6 seats + 199_994 places is exactly the limit; one more is too many.
        let mut spec = tiny();
        spec.ga_areas.push(GaAreaSpec {
            name: "floor".to_owned(),
            capacity: 199_994,
            tier: "std".to_owned(),
        });
        assert_eq!(spec.validate(), Ok(()));
        spec.ga_areas[0].capacity += 1;
        assert!(reason(&spec).contains("exceed the limit"));

        // Capacities that would overflow u32 when summed are still caught.
        let mut spec = tiny();
        let big = GaAreaSpec {
            name: "a".to_owned(),
            capacity: u32::MAX,
            tier: "std".to_owned(),
        };
        spec.ga_areas = vec![
            big.clone(),
            GaAreaSpec {
                name: "b".to_owned(),
                ..big
            },
        ];
        assert!(reason(&spec).contains("exceed the limit"));
    }

    #[test]
    fn validation_rejects_a_zero_customer_limit() {
        let mut spec = tiny();
        spec.max_tickets_per_customer = Some(0);
        assert!(reason(&spec).contains("max_tickets_per_customer"));
        spec.max_tickets_per_customer = Some(1);
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn a_grid_without_tiers_does_not_validate() {
        let spec = EventSpec::grid("G", eur(), 1, 1, 1, Vec::new());
        assert!(reason(&spec).contains("unknown tier"));
    }

    #[test]
    fn spec_json_allows_omitting_optional_parts() {
        let json = r#"{"name":"Club","currency":"EUR","tiers":[{"name":"std","price":{"amount_minor":1500,"currency":"EUR"}}],
                       "ga_areas":[{"name":"floor","capacity":100,"tier":"std"}]}"#;
        let spec: EventSpec = serde_json::from_str(json).unwrap();
        assert!(spec.sections.is_empty());
        assert_eq!(spec.max_tickets_per_customer, None);
        assert_eq!(spec.validate(), Ok(()));
    }
}
