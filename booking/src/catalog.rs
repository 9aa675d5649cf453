//! The catalog: venues and event listings, for browsing and search.
//!
//! The catalog is kept by the metadata group, which every node replicates, so
//! every region can search it from its own replica without a cross-region
//! hop. It holds no personal data. Inventory (seats, holds, orders) stays in
//! each event's own group; a listing describes an event (what, who, where,
//! when) and is written by the edge right after the event is created, and
//! again when the event is cancelled. So a listing can lag its event by one
//! write, never the other way round: nothing is sold from a listing.
//!
//! Search walks the listings in `(starts_at_ms, event_id)` order from a
//! cursor and filters them; a page ends after `limit` matches or after
//! `MAX_SCANNED` listings (the cursor then resumes the scan), so one request
//! costs a bounded amount of work however selective the filter is.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fx::{FxRate, MAX_RATES_PER_REQUEST, Rate};
use crate::ids::{Currency, EventId, Millis, RegionId};
use crate::rejection::Rejection;

/// Longest free text (descriptions), in bytes.
pub const MAX_TEXT: usize = 4_000;
/// Longest short field (names, cities, categories, performers), in bytes.
pub const MAX_SHORT: usize = 200;
/// Most performers on one listing.
pub const MAX_PERFORMERS: usize = 50;
/// Most results a page may ask for.
pub const MAX_PAGE: u32 = 100;
/// Most listings one search page looks at.
pub const MAX_SCANNED: usize = 10_000;

/// What the catalog is asked to do (in the metadata group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogCommand {
    /// Adds a venue.
    CreateVenue { venue: NewVenue },
    /// Writes an event's listing.
    PutListing {
        event_id: EventId,
        listing: NewListing,
        status: ListingStatus,
    },
    /// Follows an event's lifecycle in its listing.
    SetListingStatus {
        event_id: EventId,
        status: ListingStatus,
    },
    /// Sets what one `base` buys of each quote currency (replacing earlier
    /// rates of those pairs), as observed at `as_of_ms`.
    SetFxRates {
        base: Currency,
        rates: Vec<(Currency, Rate)>,
        as_of_ms: Millis,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSuccess {
    VenueCreated(VenueView),
    Listed(ListingView),
    FxRatesSet { base: Currency, count: u32 },
}

pub type CatalogResponse = Result<CatalogSuccess, Rejection>;

/// Reads of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogQuery {
    Venue(u64),
    /// Venues after an id.
    Venues {
        after: u64,
        limit: u32,
    },
    /// An event's listing as of `now_ms`.
    Listing(EventId, Millis),
    /// A page of listings.
    Search(Search),
    /// Every exchange rate, by pair.
    FxRates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogAnswer {
    Venue(Option<VenueView>),
    Venues(Vec<VenueView>),
    Listing(Option<ListingView>),
    Search(SearchPage),
    FxRates(Vec<FxRate>),
}

/// Where the catalog's records are kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CatalogKey {
    Venue(u64),
    Listing(EventId),
    /// The rate of one pair: `(base, quote)`.
    FxRate(Currency, Currency),
}

/// The catalog's stored records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogValue {
    Venue(VenueRecord),
    Listing(ListingRecord),
    FxRate(FxRate),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewVenue {
    pub name: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// An IANA time zone name such as `Europe/Paris`.
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueRecord {
    pub venue: NewVenue,
    pub created_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueView {
    pub venue_id: u64,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub time_zone: String,
    pub created_at_ms: Millis,
}

/// What an organiser says about an event, beyond its seat map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewListing {
    pub name: String,
    pub description: String,
    pub category: String,
    pub performers: Vec<String>,
    pub venue_id: u64,
    pub starts_at_ms: Millis,
    pub ends_at_ms: Millis,
    pub home_region: RegionId,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    /// Not searchable until the event is published.
    Draft,
    OnSale,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingRecord {
    pub listing: NewListing,
    pub status: ListingStatus,
    pub updated_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingView {
    pub event_id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub performers: Vec<String>,
    pub venue: VenueView,
    pub starts_at_ms: Millis,
    pub ends_at_ms: Millis,
    pub home_region: RegionId,
    pub currency: Currency,
    /// `on_sale`, `cancelled`, or `ended` once `ends_at_ms` has passed.
    pub status: String,
    pub updated_at_ms: Millis,
}

/// A search: every field narrows it; text matches name, description,
/// category and performers, case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    pub text: Option<String>,
    pub city: Option<String>,
    pub category: Option<String>,
    /// Events starting at or after this time.
    pub from_ms: Option<Millis>,
    /// Events starting before this time.
    pub to_ms: Option<Millis>,
    /// Resume after this `(starts_at_ms, event_id)`.
    pub after: Option<(Millis, EventId)>,
    pub limit: u32,
    /// The reader's clock, for `ended`.
    pub now_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    pub events: Vec<ListingView>,
    /// Where the next page starts; `None` when the scan reached the end.
    pub next: Option<(Millis, EventId)>,
}

fn check_short(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() || value.len() > MAX_SHORT || value.chars().any(char::is_control) {
        return Err(Rejection::InvalidRequest(format!(
            "{field} must be 1..={MAX_SHORT} bytes of text"
        )));
    }
    Ok(())
}

/// The shape of a rate-setting request (also checked before proposing).
pub fn check_fx_rates(base: Currency, rates: &[(Currency, Rate)]) -> Result<(), Rejection> {
    let sellable = |c: Currency| match c.minor_units() {
        Some(_) => Ok(()),
        None => Err(Rejection::InvalidRequest(format!(
            "{c} is not an ISO 4217 currency that prices can be shown in"
        ))),
    };
    sellable(base)?;
    if rates.is_empty() || rates.len() > MAX_RATES_PER_REQUEST {
        return Err(Rejection::InvalidRequest(format!(
            "give 1..={MAX_RATES_PER_REQUEST} rates"
        )));
    }
    let mut seen = BTreeSet::new();
    for (quote, rate) in rates {
        sellable(*quote)?;
        rate.check()?;
        if *quote == base {
            return Err(Rejection::InvalidRequest(format!(
                "{base} needs no rate to itself"
            )));
        }
        if !seen.insert(*quote) {
            return Err(Rejection::InvalidRequest(format!("{quote} is given twice")));
        }
    }
    Ok(())
}

impl NewVenue {
    pub fn validate(&self) -> Result<(), Rejection> {
        check_short("name", &self.name)?;
        check_short("address", &self.address)?;
        check_short("city", &self.city)?;
        if !crate::places::is_country_code(&self.country) {
            return Err(Rejection::InvalidRequest(
                "country must be an ISO 3166-1 alpha-2 code such as FR".to_owned(),
            ));
        }
        if !crate::places::is_time_zone_name(&self.time_zone) {
            return Err(Rejection::InvalidRequest(
                "time_zone must be an IANA name such as Europe/Paris".to_owned(),
            ));
        }
        Ok(())
    }
}

impl NewListing {
    pub fn validate(&self) -> Result<(), Rejection> {
        check_short("name", &self.name)?;
        check_short("category", &self.category)?;
        if self.description.len() > MAX_TEXT {
            return Err(Rejection::InvalidRequest(format!(
                "description must be at most {MAX_TEXT} bytes"
            )));
        }
        if self.performers.len() > MAX_PERFORMERS {
            return Err(Rejection::InvalidRequest(format!(
                "at most {MAX_PERFORMERS} performers"
            )));
        }
        for performer in &self.performers {
            check_short("performer", performer)?;
        }
        if self.ends_at_ms <= self.starts_at_ms {
            return Err(Rejection::InvalidRequest(
                "ends_at_ms must be after starts_at_ms".to_owned(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    venues: BTreeMap<u64, VenueRecord>,
    listings: BTreeMap<EventId, ListingRecord>,
    /// Derived: listings by start time.
    by_start: BTreeSet<(Millis, EventId)>,
    /// Exchange rates by `(base, quote)`.
    fx: BTreeMap<(Currency, Currency), FxRate>,
}

impl Catalog {
    /// Runs a catalog command, marking what it writes in `dirty`.
    pub fn execute(
        &mut self,
        now: Millis,
        log_index: u64,
        dirty: &mut BTreeSet<CatalogKey>,
        command: &CatalogCommand,
    ) -> CatalogResponse {
        match command {
            CatalogCommand::CreateVenue { venue } => self.create_venue(now, log_index, dirty, venue),
            CatalogCommand::PutListing {
                event_id,
                listing,
                status,
            } => self.put_listing(now, dirty, *event_id, listing, *status),
            CatalogCommand::SetListingStatus { event_id, status } => {
                self.set_status(now, dirty, *event_id, *status)
            }
            CatalogCommand::SetFxRates {
                base,
                rates,
                as_of_ms,
            } => self.set_fx_rates(now, dirty, *base, rates, *as_of_ms),
        }
    }

    pub fn query(&self, query: &CatalogQuery) -> CatalogAnswer {
        match query {
            CatalogQuery::Venue(id) => CatalogAnswer::Venue(self.venue_view(*id)),
            CatalogQuery::Venues { after, limit } => CatalogAnswer::Venues(self.venues(*after, *limit)),
            CatalogQuery::Listing(event_id, now_ms) => {
                CatalogAnswer::Listing(self.listing_view(*event_id, *now_ms))
            }
            CatalogQuery::Search(search) => CatalogAnswer::Search(self.search(search)),
            CatalogQuery::FxRates => CatalogAnswer::FxRates(self.fx.values().cloned().collect()),
        }
    }

    /// Sets exchange rates from `base`. Every currency must be one tickets
    /// can be priced in, and a pair is set from one side only: setting
    /// EUR→JPY while JPY→EUR exists is refused, so the two can never disagree.
    pub fn set_fx_rates(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<CatalogKey>,
        base: Currency,
        rates: &[(Currency, Rate)],
        as_of_ms: Millis,
    ) -> CatalogResponse {
        check_fx_rates(base, rates)?;
        for (quote, _) in rates {
            if self.fx.contains_key(&(*quote, base)) {
                return Err(Rejection::InvalidRequest(format!(
                    "a {quote}->{base} rate is set; set {base}->{quote} by replacing that one"
                )));
            }
        }
        for (quote, rate) in rates {
            let stored = FxRate {
                base,
                quote: *quote,
                rate: *rate,
                as_of_ms,
                set_at_ms: now,
            };
            self.fx.insert((base, *quote), stored);
            dirty.insert(CatalogKey::FxRate(base, *quote));
        }
        Ok(CatalogSuccess::FxRatesSet {
            base,
            count: rates.len() as u32,
        })
    }

    pub fn create_venue(
        &mut self,
        now: Millis,
        log_index: u64,
        dirty: &mut BTreeSet<CatalogKey>,
        venue: &NewVenue,
    ) -> CatalogResponse {
        venue.validate()?;
        self.venues.insert(
            log_index,
            VenueRecord {
                venue: venue.clone(),
                created_at_ms: now,
            },
        );
        dirty.insert(CatalogKey::Venue(log_index));
        Ok(CatalogSuccess::VenueCreated(
            self.venue_view(log_index).expect("just inserted"),
        ))
    }

    /// Writes (or rewrites) an event's listing.
    pub fn put_listing(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<CatalogKey>,
        event_id: EventId,
        listing: &NewListing,
        status: ListingStatus,
    ) -> CatalogResponse {
        listing.validate()?;
        if !self.venues.contains_key(&listing.venue_id) {
            return Err(Rejection::UnknownVenue);
        }
        if let Some(old) = self.listings.get(&event_id) {
            self.by_start.remove(&(old.listing.starts_at_ms, event_id));
        }
        self.by_start.insert((listing.starts_at_ms, event_id));
        self.listings.insert(
            event_id,
            ListingRecord {
                listing: listing.clone(),
                status,
                updated_at_ms: now,
            },
        );
        dirty.insert(CatalogKey::Listing(event_id));
        Ok(CatalogSuccess::Listed(
            self.listing_view(event_id, now).expect("just inserted"),
        ))
    }

    /// Follows the event's lifecycle; an event without a listing has none.
    /// Cancellation is final, whatever arrives after it.
    pub fn set_status(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<CatalogKey>,
        event_id: EventId,
        status: ListingStatus,
    ) -> CatalogResponse {
        let Some(record) = self.listings.get_mut(&event_id) else {
            return Err(Rejection::UnknownEvent);
        };
        if record.status != ListingStatus::Cancelled {
            record.status = status;
        }
        record.updated_at_ms = now;
        dirty.insert(CatalogKey::Listing(event_id));
        Ok(CatalogSuccess::Listed(
            self.listing_view(event_id, now).expect("exists"),
        ))
    }

    pub fn venue_view(&self, venue_id: u64) -> Option<VenueView> {
        let record = self.venues.get(&venue_id)?;
        let v = &record.venue;
        Some(VenueView {
            venue_id,
            name: v.name.clone(),
            address: v.address.clone(),
            city: v.city.clone(),
            country: v.country.clone(),
            time_zone: v.time_zone.clone(),
            created_at_ms: record.created_at_ms,
        })
    }

    /// Venues in id order after `after`, at most `limit`.
    pub fn venues(&self, after: u64, limit: u32) -> Vec<VenueView> {
        self.venues
            .range(after.saturating_add(1)..)
            .take(limit.min(MAX_PAGE) as usize)
            .filter_map(|(&id, _)| self.venue_view(id))
            .collect()
    }

    /// The IANA time zone of an event's venue (its listing's), without
    /// building the whole listing.
    pub fn venue_zone(&self, event_id: EventId) -> Option<&str> {
        let listing = &self.listings.get(&event_id)?.listing;
        Some(&self.venues.get(&listing.venue_id)?.venue.time_zone)
    }

    pub fn listing_view(&self, event_id: EventId, now_ms: Millis) -> Option<ListingView> {
        let record = self.listings.get(&event_id)?;
        let l = &record.listing;
        let status = match record.status {
            ListingStatus::Draft => "draft",
            ListingStatus::Cancelled => "cancelled",
            ListingStatus::OnSale if now_ms >= l.ends_at_ms => "ended",
            ListingStatus::OnSale => "on_sale",
        };
        Some(ListingView {
            event_id,
            name: l.name.clone(),
            description: l.description.clone(),
            category: l.category.clone(),
            performers: l.performers.clone(),
            venue: self.venue_view(l.venue_id)?,
            starts_at_ms: l.starts_at_ms,
            ends_at_ms: l.ends_at_ms,
            home_region: l.home_region.clone(),
            currency: l.currency,
            status: status.to_owned(),
            updated_at_ms: record.updated_at_ms,
        })
    }

    pub fn search(&self, search: &Search) -> SearchPage {
        let lower = |s: &str| s.to_lowercase();
        let text = search.text.as_deref().map(lower);
        let city = search.city.as_deref().map(lower);
        let category = search.category.as_deref().map(lower);
        let start = match search.after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Included((search.from_ms.unwrap_or(0), EventId(0))),
        };
        let limit = search.limit.clamp(1, MAX_PAGE) as usize;
        let mut events = Vec::new();
        let mut scanned = 0;
        for &(starts_at_ms, event_id) in self.by_start.range((start, std::ops::Bound::Unbounded)) {
            if search.to_ms.is_some_and(|to| starts_at_ms >= to) {
                return SearchPage { events, next: None };
            }
            scanned += 1;
            let last = Some((starts_at_ms, event_id));
            if search.from_ms.is_some_and(|from| starts_at_ms < from) {
                continue;
            }
            let Some(view) = self
                .listing_view(event_id, search.now_ms)
                .filter(|v| v.status != "draft")
            else {
                continue;
            };
            let matches = city.as_ref().is_none_or(|c| lower(&view.venue.city) == *c)
                && category.as_ref().is_none_or(|c| lower(&view.category) == *c)
                && text.as_ref().is_none_or(|t| {
                    lower(&view.name).contains(t.as_str())
                        || lower(&view.description).contains(t.as_str())
                        || lower(&view.category).contains(t.as_str())
                        || view.performers.iter().any(|p| lower(p).contains(t.as_str()))
                });
            if matches {
                events.push(view);
            }
            if events.len() == limit || scanned == MAX_SCANNED {
                return SearchPage { events, next: last };
            }
        }
        SearchPage { events, next: None }
    }

    pub fn record(&self, key: &CatalogKey) -> Option<CatalogValue> {
        match key {
            CatalogKey::Venue(id) => self.venues.get(id).cloned().map(CatalogValue::Venue),
            CatalogKey::Listing(id) => self.listings.get(id).cloned().map(CatalogValue::Listing),
            CatalogKey::FxRate(base, quote) => {
                self.fx.get(&(*base, *quote)).cloned().map(CatalogValue::FxRate)
            }
        }
    }

    pub fn append_records(&self, out: &mut Vec<(CatalogKey, CatalogValue)>) {
        for (id, venue) in &self.venues {
            out.push((CatalogKey::Venue(*id), CatalogValue::Venue(venue.clone())));
        }
        for (id, listing) in &self.listings {
            out.push((CatalogKey::Listing(*id), CatalogValue::Listing(listing.clone())));
        }
        for ((base, quote), rate) in &self.fx {
            out.push((
                CatalogKey::FxRate(*base, *quote),
                CatalogValue::FxRate(rate.clone()),
            ));
        }
    }

    /// Loads one record; a value of another kind than its key is refused.
    pub fn load(&mut self, key: &CatalogKey, value: CatalogValue) -> Result<(), String> {
        match (key, value) {
            (CatalogKey::Venue(id), CatalogValue::Venue(venue)) => {
                self.venues.insert(*id, venue);
            }
            (CatalogKey::Listing(id), CatalogValue::Listing(listing)) => {
                self.by_start.insert((listing.listing.starts_at_ms, *id));
                self.listings.insert(*id, listing);
            }
            (CatalogKey::FxRate(base, quote), CatalogValue::FxRate(rate)) => {
                if (rate.base, rate.quote) != (*base, *quote) {
                    return Err(format!("the rate under {key:?} is for another pair"));
                }
                self.fx.insert((*base, *quote), rate);
            }
            (key, _) => return Err(format!("the record under {key:?} is of another kind")),
        }
        Ok(())
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        if self.by_start.len() != self.listings.len() {
            return Err("the start-time index and the listings differ in size".to_owned());
        }
        for (id, record) in &self.listings {
            if !self.by_start.contains(&(record.listing.starts_at_ms, *id)) {
                return Err(format!("listing {id} is indexed at the wrong time"));
            }
            if !self.venues.contains_key(&record.listing.venue_id) {
                return Err(format!("listing {id} names a missing venue"));
            }
        }
        for ((base, quote), rate) in &self.fx {
            if self.fx.contains_key(&(*quote, *base)) {
                return Err(format!("both {base}->{quote} and {quote}->{base} are set"));
            }
            rate.rate.check().map_err(|e| format!("{base}->{quote}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(city: &str) -> NewVenue {
        NewVenue {
            name: "Hall".into(),
            address: "1 Main St".into(),
            city: city.into(),
            country: "FR".into(),
            time_zone: "Europe/Paris".into(),
        }
    }

    fn listing(name: &str, venue_id: u64, starts_at_ms: Millis) -> NewListing {
        NewListing {
            name: name.into(),
            description: "live".into(),
            category: "concert".into(),
            performers: vec!["The Band".into()],
            venue_id,
            starts_at_ms,
            ends_at_ms: starts_at_ms + 100,
            home_region: crate::RegionId::new("eu-west").unwrap(),
            currency: Currency::EUR,
        }
    }

    #[test]
    fn search_filters_pages_and_resumes() {
        let mut catalog = Catalog::default();
        let mut dirty = BTreeSet::new();
        catalog.create_venue(1, 1, &mut dirty, &venue("Paris")).unwrap();
        catalog.create_venue(1, 2, &mut dirty, &venue("Lyon")).unwrap();
        for i in 0..10u64 {
            let venue_id = if i % 2 == 0 { 1 } else { 2 };
            let l = listing(&format!("Show {i}"), venue_id, 1_000 + i);
            catalog
                .put_listing(1, &mut dirty, EventId(i), &l, ListingStatus::OnSale)
                .unwrap();
        }
        let paris = Search {
            city: Some("paris".into()),
            limit: 2,
            ..Search::default()
        };
        let first = catalog.search(&paris);
        assert_eq!(
            first.events.iter().map(|e| e.event_id.0).collect::<Vec<_>>(),
            [0, 2]
        );
        let second = catalog.search(&Search {
            after: first.next,
            ..paris.clone()
        });
        assert_eq!(
            second.events.iter().map(|e| e.event_id.0).collect::<Vec<_>>(),
            [4, 6]
        );
        let windowed = catalog.search(&Search {
            from_ms: Some(1_003),
            to_ms: Some(1_006),
            limit: 10,
            ..Search::default()
        });
        assert_eq!(
            windowed.events.iter().map(|e| e.event_id.0).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(windowed.next, None);
        let text = catalog.search(&Search {
            text: Some("SHOW 7".into()),
            limit: 10,
            ..Search::default()
        });
        assert_eq!(text.events.len(), 1);
        // Time passes: the listing ends.
        let late = catalog.listing_view(EventId(0), 5_000).unwrap();
        assert_eq!(late.status, "ended");
        assert_eq!(catalog.check_invariants(), Ok(()));
    }

    #[test]
    fn bad_venues_and_listings_are_refused() {
        let mut bad = venue("Paris");
        bad.country = "France".into();
        assert!(bad.validate().is_err());
        let mut bad = venue("Paris");
        bad.time_zone = "not a zone".into();
        assert!(bad.validate().is_err());
        let mut catalog = Catalog::default();
        let mut dirty = BTreeSet::new();
        assert_eq!(
            catalog.put_listing(
                1,
                &mut dirty,
                EventId(1),
                &listing("x", 9, 5),
                ListingStatus::OnSale
            ),
            Err(Rejection::UnknownVenue)
        );
        let mut l = listing("x", 9, 5);
        l.ends_at_ms = 5;
        assert!(l.validate().is_err());
    }

    #[test]
    fn exchange_rates_are_set_from_one_side_and_survive_a_reload() {
        let eur = Currency::new("EUR").unwrap();
        let jpy = Currency::new("JPY").unwrap();
        let usd = Currency::new("USD").unwrap();
        let mut catalog = Catalog::default();
        let mut dirty = BTreeSet::new();
        let rate = |text: &str| Rate::parse(text).unwrap();
        let set = catalog
            .set_fx_rates(
                100,
                &mut dirty,
                eur,
                &[(jpy, rate("157.43")), (usd, rate("1.08"))],
                90,
            )
            .unwrap();
        assert_eq!(set, CatalogSuccess::FxRatesSet { base: eur, count: 2 });
        assert_eq!(dirty.len(), 2);

        // The opposite pair may not be set beside it, nor bad currencies or rates.
        let refused = catalog.set_fx_rates(101, &mut dirty, jpy, &[(eur, rate("0.0063"))], 91);
        assert!(refused.unwrap_err().to_string().contains("is set"));
        let gold = Currency::new("XAU").unwrap();
        assert!(
            catalog
                .set_fx_rates(101, &mut dirty, eur, &[(gold, rate("0.0004"))], 91)
                .is_err()
        );
        assert!(
            catalog
                .set_fx_rates(101, &mut dirty, eur, &[(eur, rate("1"))], 91)
                .is_err()
        );
        assert!(catalog.set_fx_rates(101, &mut dirty, eur, &[], 91).is_err());

        // Replacing a rate keeps one record per pair; records load back.
        catalog
            .set_fx_rates(102, &mut dirty, eur, &[(jpy, rate("160"))], 95)
            .unwrap();
        let mut records = Vec::new();
        catalog.append_records(&mut records);
        let mut reloaded = Catalog::default();
        for (key, value) in records {
            reloaded.load(&key, value).unwrap();
        }
        reloaded.check_invariants().unwrap();
        let CatalogAnswer::FxRates(rates) = reloaded.query(&CatalogQuery::FxRates) else {
            panic!("not a rate list")
        };
        assert_eq!(rates.len(), 2);
        let yen = rates.iter().find(|r| r.quote == jpy).unwrap();
        assert_eq!(
            (yen.rate.to_string(), yen.as_of_ms, yen.set_at_ms),
            ("160".to_owned(), 95, 102)
        );
    }
}
