//! The JSON shapes of the HTTP API, apart from the core's records and views.
//!
//! The booking core's views travel between nodes and sit inside
//! de-duplicated outcomes, so their serde shapes belong to the storage and
//! wire formats. What a client sees is defined here, once, and built from a
//! view by conversion: renaming a field of a core type cannot change the API,
//! and an API change never touches a stored byte. `docs/http-api.md` documents
//! these types field by field.
//!
//! Every status enum here converts from its core twin with an exhaustive
//! match, so a new core state fails to compile until the API decides how to
//! spell it. The identifier newtypes (`EventId`, `HoldId`, `CustomerId`,
//! `Currency`, `TicketCode`) are shared: each serializes as the plain number
//! or string it wraps, which is what a client sees.
//!
//! Optional fields serialize as `null` rather than being left out.

use booking::{Currency, CustomerId, EventId, HoldId, Millis, OrderId, RegionId, TicketCode};

use serde::{Deserialize, Serialize};

/// A core enum of unit variants mirrored as an API enum spelled in
/// lower snake case, with conversions both ways (request bodies name them
/// too).
macro_rules! mirrored_enum {
    ($(#[$doc:meta])* $dto:ident from $core:ty { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $dto {
            $($variant),+
        }

        impl From<$core> for $dto {
            fn from(value: $core) -> Self {
                match value {
                    $(<$core>::$variant => $dto::$variant),+
                }
            }
        }

        impl From<$dto> for $core {
            fn from(value: $dto) -> Self {
                match value {
                    $($dto::$variant => <$core>::$variant),+
                }
            }
        }
    };
}

mirrored_enum!(SeatStatus from booking::SeatStatusView { Available, Held, Sold });
mirrored_enum!(HoldStatus from booking::HoldStatus { Active, Released, Expired, Confirmed });
mirrored_enum!(OrderStatus from booking::OrderStatus { Confirmed, Cancelled });
mirrored_enum!(TicketStatus from booking::TicketStatus { Valid, CheckedIn, Void });
mirrored_enum!(PaymentStatus from booking::PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    RefundPending,
    Refunded,
});
mirrored_enum!(Role from booking::Role { Customer, Admin, Operator, Guest });
mirrored_enum!(Channel from booking::Channel { Email, Webhook, Log });
mirrored_enum!(
    /// Why the places of a live seat-map change moved.
    ChangeCause from booking::ChangeCause { Held, Released, Expired, Sold, Returned, Offered }
);

/// `From<$from> for $to`, moving each field: `same` ones as they are,
/// `into` ones through `Into`, `each` ones (lists) element by element, `map`
/// ones (options) inside their `Some`, and `none` ones (fields only the API
/// has) left empty.
macro_rules! convert {
    ($from:path => $to:path {
        $($same:ident),* $(,)?
        $(; into: $($into:ident),+)?
        $(; each: $($each:ident),+)?
        $(; map: $($map:ident),+)?
        $(; none: $($none:ident),+)?
        $(; zoned: $zone:literal)?
    }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                #[allow(unused_mut)]
                let mut out = Self {
                    $($same: v.$same,)*
                    $($($into: v.$into.into(),)+)?
                    $($($each: v.$each.into_iter().map(Into::into).collect(),)+)?
                    $($($map: v.$map.map(Into::into),)+)?
                    $($($none: None,)+)?
                };
                // Times start in this zone (UTC), until the venue's is known.
                $( out.set_zone($zone); )?
                out
            }
        }
    };
}

/// Something that shows times as RFC 3339 beside its epoch milliseconds:
/// in UTC when built, in the venue's zone once [`Zoned::set_zone`] is given
/// it (an IANA name; an unknown one leaves the UTC times).
pub trait Zoned {
    fn set_zone(&mut self, zone: &str);
}

/// `ms` in `zone`, falling back to UTC for a zone the database lacks.
fn zoned(ms: Millis, zone: &str) -> Option<String> {
    local_time(ms, zone).or_else(|| local_time(ms, "UTC"))
}

/// `ms` in `zone` when there is one, else in UTC.
pub fn time_in(ms: Millis, zone: Option<&str>) -> Option<String> {
    zoned(ms, zone.unwrap_or("UTC"))
}

/// An amount in integer minor units of one ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl From<booking::Money> for Money {
    fn from(m: booking::Money) -> Self {
        Money {
            amount_minor: m.amount_minor,
            currency: m.currency,
        }
    }
}

impl From<Money> for booking::Money {
    fn from(m: Money) -> Self {
        booking::Money::new(m.amount_minor, m.currency)
    }
}

// ---------------------------------------------------------------- events

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub event_id: EventId,
    pub name: String,
    pub currency: Currency,
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    pub max_tickets_per_customer: Option<u32>,
    pub sales_start_ms: Option<Millis>,
    pub sales_end_ms: Option<Millis>,
    /// `draft`, `on_sale` or `cancelled`.
    pub status: String,
    pub published_at_ms: Option<Millis>,
    pub cancelled_at_ms: Option<Millis>,
    /// The `_ms` times above in RFC 3339 at the venue's local time.
    pub sales_start: Option<String>,
    pub sales_end: Option<String>,
    pub published_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub tiers: Vec<Tier>,
    pub sections: Vec<Section>,
    pub ga_areas: Vec<GaArea>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tier {
    pub name: String,
    /// What a ticket costs: the event's own currency, what a card is charged.
    pub price: Money,
    pub capacity: u32,
    pub available: u32,
    /// The price in the currency the request asked for (`?currency=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_price: Option<DisplayPrice>,
}

/// A price converted for showing (never for charging): the amount, the rate
/// one unit of the charge currency bought, and when that rate was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DisplayPrice {
    pub amount_minor: i64,
    pub currency: Currency,
    /// A decimal string, exact: `157.43`.
    pub rate: String,
    pub rate_as_of_ms: Millis,
    /// `rate_as_of_ms` in RFC 3339 UTC (a rate belongs to no place); `null`
    /// for a price already in the asked currency (`rate_as_of_ms` 0).
    pub rate_as_of: Option<String>,
    /// The third currency a cross rate went through, when no rate of the
    /// pair itself (or its opposite) is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_via: Option<Currency>,
}

impl From<booking::Converted> for DisplayPrice {
    fn from(c: booking::Converted) -> Self {
        DisplayPrice {
            amount_minor: c.amount.amount_minor,
            currency: c.amount.currency,
            rate: c.rate.to_string(),
            rate_as_of_ms: c.as_of_ms,
            // A price already in the asked currency was converted by no
            // observed rate: it has no time.
            rate_as_of: (c.as_of_ms > 0).then(|| time_in(c.as_of_ms, None)).flatten(),
            rate_via: c.via,
        }
    }
}

/// One exchange rate: one `base` buys `rate` of `quote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FxRate {
    pub base: Currency,
    pub quote: Currency,
    /// A decimal string, exact: `157.43`.
    pub rate: String,
    pub as_of_ms: Millis,
    /// `as_of_ms` and `set_at_ms` in RFC 3339 UTC.
    pub as_of: Option<String>,
    pub set_at_ms: Millis,
    pub set_at: Option<String>,
}

impl From<booking::FxRate> for FxRate {
    fn from(r: booking::FxRate) -> Self {
        FxRate {
            base: r.base,
            quote: r.quote,
            rate: r.rate.to_string(),
            as_of_ms: r.as_of_ms,
            as_of: time_in(r.as_of_ms, None),
            set_at_ms: r.set_at_ms,
            set_at: time_in(r.set_at_ms, None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Section {
    pub name: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Row {
    pub name: String,
    pub seats: Vec<Seat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Seat {
    pub id: String,
    pub number: u32,
    pub tier: String,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GaArea {
    pub name: String,
    pub tier: String,
    pub capacity: u32,
    pub available: u32,
}

convert!(booking::EventView => Event {
    event_id, name, currency, capacity, available, held, sold, max_tickets_per_customer,
    sales_start_ms, sales_end_ms, status, published_at_ms, cancelled_at_ms;
    each: tiers, sections, ga_areas;
    none: sales_start, sales_end, published_at, cancelled_at;
    zoned: "UTC"
});

impl Zoned for Event {
    fn set_zone(&mut self, zone: &str) {
        let at = |ms: Option<Millis>| ms.and_then(|ms| zoned(ms, zone));
        self.sales_start = at(self.sales_start_ms);
        self.sales_end = at(self.sales_end_ms);
        self.published_at = at(self.published_at_ms);
        self.cancelled_at = at(self.cancelled_at_ms);
    }
}
convert!(booking::TierView => Tier { name, capacity, available; into: price; none: display_price });
convert!(booking::SectionView => Section { name; each: rows });
convert!(booking::RowView => Row { name; each: seats });
convert!(booking::SeatView => Seat { id, number, tier; into: status });
convert!(booking::GaAreaView => GaArea { name, tier, capacity, available });

// ---------------------------------------------------------------- event specs (request bodies)

/// The seat map and rules of a new event, as `POST /v1/events` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSpec {
    pub name: String,
    pub currency: Currency,
    pub tiers: Vec<PriceTier>,
    #[serde(default)]
    pub sections: Vec<SectionSpec>,
    #[serde(default)]
    pub ga_areas: Vec<GaAreaSpec>,
    #[serde(default)]
    pub max_tickets_per_customer: Option<u32>,
    #[serde(default)]
    pub sales_start_ms: Option<Millis>,
    #[serde(default)]
    pub sales_end_ms: Option<Millis>,
    #[serde(default)]
    pub max_active_holds_per_customer: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceTier {
    pub name: String,
    pub price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SectionSpec {
    pub name: String,
    pub rows: Vec<RowSpec>,
}

/// A row; `seats` are listed left to right as seen from the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowSpec {
    pub name: String,
    pub seats: Vec<SeatSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatSpec {
    pub number: u32,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GaAreaSpec {
    pub name: String,
    pub capacity: u32,
    pub tier: String,
}

// A spec goes to the core when an event is created, and back for clients
// that build one from the core's helpers (`EventSpec::grid`).
convert!(EventSpec => booking::EventSpec {
    name, currency, max_tickets_per_customer, sales_start_ms, sales_end_ms,
    max_active_holds_per_customer;
    each: tiers, sections, ga_areas
});
convert!(booking::EventSpec => EventSpec {
    name, currency, max_tickets_per_customer, sales_start_ms, sales_end_ms,
    max_active_holds_per_customer;
    each: tiers, sections, ga_areas
});
convert!(PriceTier => booking::PriceTier { name; into: price });
convert!(booking::PriceTier => PriceTier { name; into: price });
convert!(SectionSpec => booking::SectionSpec { name; each: rows });
convert!(booking::SectionSpec => SectionSpec { name; each: rows });
convert!(RowSpec => booking::RowSpec { name; each: seats });
convert!(booking::RowSpec => RowSpec { name; each: seats });
convert!(SeatSpec => booking::SeatSpec { number, tier });
convert!(booking::SeatSpec => SeatSpec { number, tier });
convert!(GaAreaSpec => booking::GaAreaSpec { name, capacity, tier });
convert!(booking::GaAreaSpec => GaAreaSpec { name, capacity, tier });

// ---------------------------------------------------------------- holds, orders, tickets

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hold {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub holder: CustomerId,
    /// Seat ids in seat-map order; empty for a GA hold.
    pub seats: Vec<String>,
    pub ga: Option<GaSelection>,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    /// `created_at_ms` and `expires_at_ms` in RFC 3339 at the venue's local time.
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub extended: bool,
    pub status: HoldStatus,
    pub order_id: Option<OrderId>,
    pub total: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_total: Option<DisplayPrice>,
    /// What is left of an active hold by the answering node's clock
    /// (`GET` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GaSelection {
    pub area: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub order_id: OrderId,
    pub event_id: EventId,
    pub holder: CustomerId,
    pub hold_id: HoldId,
    pub status: OrderStatus,
    pub created_at_ms: Millis,
    pub cancelled_at_ms: Option<Millis>,
    /// The `_ms` times above in RFC 3339 at the venue's local time.
    pub created_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub total: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_total: Option<DisplayPrice>,
    pub tickets: Vec<Ticket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    pub code: TicketCode,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub seat: Option<String>,
    pub ga_area: Option<String>,
    pub tier: String,
    pub price: Money,
    pub status: TicketStatus,
    pub checked_in_at_ms: Option<Millis>,
    /// `checked_in_at_ms` in RFC 3339 at the venue's local time.
    pub checked_in_at: Option<String>,
    /// The signed payload its QR code carries (`GET` of one ticket, when the
    /// node signs tickets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_payload: Option<String>,
}

convert!(booking::HoldView => Hold {
    hold_id, event_id, holder, seats, created_at_ms, expires_at_ms, extended, order_id;
    into: status, total;
    map: ga;
    none: expires_in_ms, display_total, created_at, expires_at;
    zoned: "UTC"
});

impl Zoned for Hold {
    fn set_zone(&mut self, zone: &str) {
        self.created_at = zoned(self.created_at_ms, zone);
        self.expires_at = zoned(self.expires_at_ms, zone);
    }
}
convert!(booking::GaSelectionView => GaSelection { area, quantity });
convert!(booking::OrderView => Order {
    order_id, event_id, holder, hold_id, created_at_ms, cancelled_at_ms;
    into: status, total;
    each: tickets;
    none: display_total, created_at, cancelled_at;
    zoned: "UTC"
});
convert!(booking::TicketView => Ticket {
    code, event_id, order_id, seat, ga_area, tier, checked_in_at_ms;
    into: price, status;
    none: qr_payload, checked_in_at;
    zoned: "UTC"
});

impl Zoned for Order {
    fn set_zone(&mut self, zone: &str) {
        self.created_at = zoned(self.created_at_ms, zone);
        self.cancelled_at = self.cancelled_at_ms.and_then(|ms| zoned(ms, zone));
        for ticket in &mut self.tickets {
            ticket.set_zone(zone);
        }
    }
}

impl Zoned for Ticket {
    fn set_zone(&mut self, zone: &str) {
        self.checked_in_at = self.checked_in_at_ms.and_then(|ms| zoned(ms, zone));
    }
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payment {
    pub payment_id: u64,
    pub event_id: EventId,
    /// What the provider knows the payment as.
    pub reference: String,
    pub hold_id: HoldId,
    pub holder: CustomerId,
    pub amount: Money,
    pub method: String,
    pub status: PaymentStatus,
    pub order_id: Option<OrderId>,
    pub created_at_ms: Millis,
    /// `created_at_ms` in RFC 3339 at the venue's local time.
    pub created_at: Option<String>,
    pub history: Vec<PaymentStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentStep {
    pub at_ms: Millis,
    pub at: Option<String>,
    pub status: PaymentStatus,
    pub detail: Option<String>,
}

convert!(booking::PaymentView => Payment {
    payment_id, event_id, reference, hold_id, holder, method, order_id, created_at_ms;
    into: amount, status;
    each: history;
    none: created_at;
    zoned: "UTC"
});
convert!(booking::PaymentStep => PaymentStep { at_ms, detail; into: status; none: at });

impl Zoned for Payment {
    fn set_zone(&mut self, zone: &str) {
        self.created_at = zoned(self.created_at_ms, zone);
        for step in &mut self.history {
            step.at = zoned(step.at_ms, zone);
        }
    }
}

// ---------------------------------------------------------------- accounts

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    pub customer_id: CustomerId,
    pub email: String,
    pub name: String,
    pub region: RegionId,
    pub role: Role,
    pub created_at_ms: Millis,
    /// `created_at_ms` in RFC 3339 in the home region's time zone.
    pub created_at: Option<String>,
    pub notify: NotifyPreference,
}

/// Where notices go when a notice names no channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotifyPreference {
    pub channel: Channel,
    pub webhook_url: Option<String>,
}

convert!(booking::AccountView => Account {
    customer_id, email, name, region, created_at_ms;
    into: role, notify;
    none: created_at;
    zoned: "UTC"
});

impl Zoned for Account {
    fn set_zone(&mut self, zone: &str) {
        self.created_at = zoned(self.created_at_ms, zone);
    }
}
convert!(booking::NotifyPreference => NotifyPreference { webhook_url; into: channel });

// ---------------------------------------------------------------- catalog

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Venue {
    pub venue_id: u64,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub time_zone: String,
    pub created_at_ms: Millis,
    /// `created_at_ms` in RFC 3339 in the venue's own `time_zone`.
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Listing {
    pub event_id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub performers: Vec<String>,
    pub venue: Venue,
    pub starts_at_ms: Millis,
    /// `starts_at_ms` in RFC 3339 at the venue's local time, with its offset
    /// (`2026-12-08T20:00:00+00:00`).
    pub starts_at: Option<String>,
    pub ends_at_ms: Millis,
    pub ends_at: Option<String>,
    pub home_region: RegionId,
    pub currency: Currency,
    /// The cheapest ticket, in the event's currency (what a card is
    /// charged); `null` when this node has no replica of the event's group.
    pub price_from: Option<Money>,
    /// `price_from` in the request's display currency (see `Tier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_price_from: Option<DisplayPrice>,
    /// `on_sale`, `cancelled`, or `ended` once `ends_at_ms` has passed.
    pub status: String,
    pub updated_at_ms: Millis,
    pub updated_at: Option<String>,
}

impl From<booking::ListingView> for Listing {
    fn from(v: booking::ListingView) -> Self {
        let local = |ms| local_time(ms, &v.venue.time_zone);
        Listing {
            starts_at: local(v.starts_at_ms),
            ends_at: local(v.ends_at_ms),
            updated_at: local(v.updated_at_ms),
            event_id: v.event_id,
            name: v.name,
            description: v.description,
            category: v.category,
            performers: v.performers,
            starts_at_ms: v.starts_at_ms,
            ends_at_ms: v.ends_at_ms,
            home_region: v.home_region,
            currency: v.currency,
            price_from: None,
            display_price_from: None,
            status: v.status,
            updated_at_ms: v.updated_at_ms,
            venue: v.venue.into(),
        }
    }
}

/// Whether the IANA tz database knows `zone`. The state machine checks
/// only a zone's shape (a database update must not change what a replayed
/// log entry does); the edge checks the name itself.
pub fn is_known_zone(zone: &str) -> bool {
    zone.parse::<chrono_tz::Tz>().is_ok()
}

/// `ms` since the epoch as RFC 3339 in time zone `zone` (an IANA name),
/// with the offset that applied then; `None` for a zone the tz database
/// does not know or a time it cannot show.
pub fn local_time(ms: Millis, zone: &str) -> Option<String> {
    let zone: chrono_tz::Tz = zone.parse().ok()?;
    let utc = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(
        utc.with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
    )
}

impl From<booking::VenueView> for Venue {
    fn from(v: booking::VenueView) -> Self {
        let created_at = zoned(v.created_at_ms, &v.time_zone);
        Venue {
            venue_id: v.venue_id,
            name: v.name,
            address: v.address,
            city: v.city,
            country: v.country,
            time_zone: v.time_zone,
            created_at_ms: v.created_at_ms,
            created_at,
        }
    }
}

// ---------------------------------------------------------------- notices and the waitlist

/// A notice's id as clients see it: `{log_index}.{ordinal}`'s two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeId {
    pub log_index: u64,
    pub ordinal: u32,
}

/// What a notice tells its recipient (also the `data` of a notice webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    OrderConfirmed {
        order_id: OrderId,
        total: Money,
        tickets: u32,
    },
    PaymentFailed {
        hold_id: HoldId,
        reason: String,
    },
    HoldExpiring {
        hold_id: HoldId,
        expires_at_ms: Millis,
    },
    EventReminder,
    EventCancelled {
        order_id: Option<OrderId>,
        refunded: bool,
    },
    WaitlistOffer {
        hold_id: HoldId,
        expires_at_ms: Millis,
        places: u32,
    },
}

impl From<booking::NoticeKind> for NoticeKind {
    fn from(k: booking::NoticeKind) -> Self {
        use booking::NoticeKind as Core;
        match k {
            Core::OrderConfirmed {
                order_id,
                total,
                tickets,
            } => NoticeKind::OrderConfirmed {
                order_id,
                total: total.into(),
                tickets,
            },
            Core::PaymentFailed { hold_id, reason } => NoticeKind::PaymentFailed { hold_id, reason },
            Core::HoldExpiring {
                hold_id,
                expires_at_ms,
            } => NoticeKind::HoldExpiring {
                hold_id,
                expires_at_ms,
            },
            Core::EventReminder => NoticeKind::EventReminder,
            Core::EventCancelled { order_id, refunded } => NoticeKind::EventCancelled { order_id, refunded },
            Core::WaitlistOffer {
                hold_id,
                expires_at_ms,
                places,
            } => NoticeKind::WaitlistOffer {
                hold_id,
                expires_at_ms,
                places,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Pending {
        attempts: u32,
        next_attempt_ms: Millis,
        /// `next_attempt_ms` in RFC 3339 at the venue's local time.
        next_attempt_at: Option<String>,
        last_error: Option<String>,
    },
    Delivered {
        at_ms: Millis,
        /// `at_ms` in RFC 3339 at the venue's local time.
        at: Option<String>,
        attempts: u32,
        channel: Channel,
    },
    Failed {
        at_ms: Millis,
        at: Option<String>,
        attempts: u32,
        error: String,
    },
}

impl Delivery {
    fn set_zone(&mut self, zone: &str) {
        match self {
            Delivery::Pending {
                next_attempt_ms,
                next_attempt_at,
                ..
            } => *next_attempt_at = zoned(*next_attempt_ms, zone),
            Delivery::Delivered { at_ms, at, .. } | Delivery::Failed { at_ms, at, .. } => {
                *at = zoned(*at_ms, zone)
            }
        }
    }
}

impl From<booking::Delivery> for Delivery {
    fn from(d: booking::Delivery) -> Self {
        use booking::Delivery as Core;
        match d {
            Core::Pending {
                attempts,
                next_attempt_ms,
                last_error,
            } => Delivery::Pending {
                attempts,
                next_attempt_ms,
                next_attempt_at: None,
                last_error,
            },
            Core::Delivered {
                at_ms,
                attempts,
                channel,
            } => Delivery::Delivered {
                at_ms,
                at: None,
                attempts,
                channel: channel.into(),
            },
            Core::Failed {
                at_ms,
                attempts,
                error,
            } => Delivery::Failed {
                at_ms,
                at: None,
                attempts,
                error,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notice {
    pub event_id: EventId,
    pub notice_id: NoticeId,
    pub recipient: CustomerId,
    pub kind: NoticeKind,
    pub channel: Option<Channel>,
    pub created_at_ms: Millis,
    /// `created_at_ms` in RFC 3339 at the venue's local time.
    pub created_at: Option<String>,
    pub delivery: Delivery,
}

/// A customer's place on an event's waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitlistEntry {
    pub event_id: EventId,
    pub customer_id: CustomerId,
    /// 1 is next in line (among entries that want the same places).
    pub position: u32,
    /// Everyone waiting for this event.
    pub waiting: u32,
    /// The tier wanted; `null`: any.
    pub tier: Option<String>,
    pub quantity: u32,
    pub joined_at_ms: Millis,
    /// `joined_at_ms` in RFC 3339 at the venue's local time.
    pub joined_at: Option<String>,
}

convert!(booking::NoticeId => NoticeId { log_index, ordinal });
convert!(booking::NoticeView => Notice {
    event_id, recipient, created_at_ms;
    into: notice_id, kind, delivery;
    map: channel;
    none: created_at;
    zoned: "UTC"
});
convert!(booking::WaitlistView => WaitlistEntry {
    event_id, customer_id, position, waiting, tier, quantity, joined_at_ms;
    none: joined_at;
    zoned: "UTC"
});

impl Zoned for Notice {
    fn set_zone(&mut self, zone: &str) {
        self.created_at = zoned(self.created_at_ms, zone);
        self.delivery.set_zone(zone);
    }
}

impl Zoned for WaitlistEntry {
    fn set_zone(&mut self, zone: &str) {
        self.joined_at = zoned(self.joined_at_ms, zone);
    }
}

// ---------------------------------------------------------------- live seat maps

/// One `change` of a live seat map (`GET /v1/events/{id}/live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AvailabilityChange {
    pub event_id: EventId,
    pub log_index: u64,
    pub ordinal: u32,
    pub at_ms: Millis,
    /// `at_ms` in RFC 3339 at the venue's local time.
    pub at: Option<String>,
    pub cause: ChangeCause,
    pub seats: Vec<SeatChange>,
    pub areas: Vec<AreaAvailability>,
    pub tiers: Vec<TierAvailability>,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatChange {
    pub seat: String,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AreaAvailability {
    pub area: String,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierAvailability {
    pub tier: String,
    pub available: u32,
}

convert!(booking::AvailabilityChange => AvailabilityChange {
    event_id, log_index, ordinal, at_ms, available;
    into: cause;
    each: seats, areas, tiers;
    none: at;
    zoned: "UTC"
});

impl Zoned for AvailabilityChange {
    fn set_zone(&mut self, zone: &str) {
        self.at = zoned(self.at_ms, zone);
    }
}
convert!(booking::SeatChange => SeatChange { seat; into: status });
convert!(booking::AreaAvailability => AreaAvailability { area, available });
convert!(booking::TierAvailability => TierAvailability { tier, available });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_carry_the_offset_that_applied_then() {
        // 2026-07-01T18:00:00Z, summer; 2026-01-15T18:00:00Z, winter.
        let summer = 1_782_928_800_000;
        let winter = 1_768_500_000_000;
        assert_eq!(
            local_time(summer, "Europe/Dublin").as_deref(),
            Some("2026-07-01T19:00:00+01:00")
        );
        assert_eq!(
            local_time(winter, "Europe/Dublin").as_deref(),
            Some("2026-01-15T18:00:00+00:00")
        );
        assert_eq!(
            local_time(summer, "Asia/Tokyo").as_deref(),
            Some("2026-07-02T03:00:00+09:00")
        );
        assert_eq!(
            local_time(winter + 1, "UTC").as_deref(),
            Some("2026-01-15T18:00:00.001+00:00")
        );
        assert_eq!(local_time(summer, "Europe/Atlantis"), None);
        assert!(is_known_zone("America/Argentina/Buenos_Aires"));
        assert!(!is_known_zone("Mars/Olympus_Mons"));
    }

    #[test]
    fn statuses_are_spelled_in_lower_snake_case() {
        let spelled = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        assert_eq!(
            spelled(serde_json::json!(TicketStatus::from(
                booking::TicketStatus::CheckedIn
            ))),
            "checked_in"
        );
        assert_eq!(
            spelled(serde_json::json!(PaymentStatus::from(
                booking::PaymentStatus::RefundPending
            ))),
            "refund_pending"
        );
        assert_eq!(
            spelled(serde_json::json!(SeatStatus::from(
                booking::SeatStatusView::Available
            ))),
            "available"
        );
    }

    #[test]
    fn a_ga_hold_has_the_documented_shape() {
        let view = booking::HoldView {
            hold_id: HoldId(3),
            event_id: EventId(1),
            holder: CustomerId::new("bob").unwrap(),
            seats: Vec::new(),
            ga: Some(booking::GaSelectionView {
                area: "floor".to_owned(),
                quantity: 2,
            }),
            created_at_ms: 10,
            expires_at_ms: 20,
            extended: false,
            status: booking::HoldStatus::Active,
            order_id: None,
            total: booking::Money::new(6000, Currency::EUR),
        };
        let json = serde_json::to_value(Hold::from(view)).unwrap();
        let expected = serde_json::json!({
            "hold_id": 3, "event_id": 1, "holder": "bob", "seats": [],
            "ga": {"area": "floor", "quantity": 2}, "created_at_ms": 10, "expires_at_ms": 20,
            "created_at": "1970-01-01T00:00:00.010+00:00", "expires_at": "1970-01-01T00:00:00.020+00:00",
            "extended": false, "status": "active", "order_id": null,
            "total": {"amount_minor": 6000, "currency": "EUR"}
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn a_notice_kind_is_tagged_by_its_name() {
        let kind = NoticeKind::from(booking::NoticeKind::HoldExpiring {
            hold_id: HoldId(4),
            expires_at_ms: 99,
        });
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::json!({"hold_expiring": {"hold_id": 4, "expires_at_ms": 99}})
        );
    }

    #[test]
    fn an_event_spec_survives_the_trip_to_the_core_and_back() {
        let core = booking::EventSpec::grid(
            "Gala",
            Currency::EUR,
            2,
            3,
            4,
            vec![booking::PriceTier {
                name: "std".to_owned(),
                price: booking::Money::new(1500, Currency::EUR),
            }],
        );
        let api = EventSpec::from(core.clone());
        assert_eq!(booking::EventSpec::from(api), core);
    }
}

// ---------------------------------------------------------------- lists and pages

/// A page of search results (`GET /v1/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListingPage {
    pub events: Vec<Listing>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// The metadata group's applied index the page was read at.
    pub as_of_index: Option<u64>,
}

/// A page of venues (`GET /v1/venues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VenuePage {
    pub venues: Vec<Venue>,
    pub next_cursor: Option<String>,
    pub as_of_index: Option<u64>,
}

/// Every exchange rate (`GET /v1/fx-rates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FxRates {
    pub rates: Vec<FxRate>,
    pub as_of_index: Option<u64>,
}

/// A customer's orders over every event, newest first (`GET /v1/me/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Orders {
    pub orders: Vec<Order>,
}

/// A customer's notices of one event (`GET /v1/events/{event_id}/notices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notices {
    pub notices: Vec<Notice>,
}

/// A page of an event's holds (staff: `GET /v1/events/{event_id}/holds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldPage {
    pub holds: Vec<Hold>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A page of an event's orders (staff: `GET /v1/events/{event_id}/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next_cursor: Option<String>,
}

/// One seat asked about: its status, and for staff the hold or order that
/// has it and whose it is (`null` for everyone else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeatState {
    pub seat: String,
    pub status: SeatStatus,
    pub hold_id: Option<HoldId>,
    pub order_id: Option<OrderId>,
    pub holder: Option<CustomerId>,
}

/// The seats asked about, in the order asked (`GET /v1/events/{event_id}/seats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Seats {
    pub seats: Vec<SeatState>,
}

// ---------------------------------------------------------------- sessions

/// What a login, registration, refresh or guest verification answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    pub customer_id: CustomerId,
    pub role: Role,
    pub region: RegionId,
    /// Always `Bearer`.
    pub token_type: String,
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
    /// Trade it for a new pair at `/v1/auth/refresh` (not for guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at_ms: Option<Millis>,
    /// `refresh_expires_at_ms` in RFC 3339 in the account's region's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<String>,
    /// The new account (registration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

/// A guest's code is on its way (`POST /v1/auth/guest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuestChallenge {
    /// Send it back with the code to `/v1/auth/guest/verify`.
    pub challenge_id: String,
    pub expires_in: u64,
    pub expires_at_ms: Millis,
    /// How the code was sent: `email`.
    pub sent_to: String,
}

// ---------------------------------------------------------------- small answers

/// An event was created (`POST /v1/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCreated {
    pub event_id: EventId,
    pub capacity: u32,
}

/// An event went on sale (`POST /v1/events/{event_id}/publish`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Published {
    pub event_id: EventId,
    pub published_at_ms: Millis,
    /// `published_at_ms` in RFC 3339 at the venue's local time.
    pub published_at: Option<String>,
}

/// An event was cancelled: its orders too, their payments to be refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCancelled {
    pub event_id: EventId,
    pub orders_cancelled: u32,
    pub refunds: u32,
}

/// A hold was released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Released {
    pub hold_id: HoldId,
}

/// A ticket was admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckedIn {
    pub code: TicketCode,
    pub checked_in_at_ms: Millis,
}

/// A customer left an event's waitlist or cancelled its reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRef {
    pub event_id: EventId,
}

/// Exchange rates were set (`PUT /v1/admin/fx-rates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FxRatesSet {
    pub base: Currency,
    /// How many quote currencies were set.
    pub count: u32,
}
