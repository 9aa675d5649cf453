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
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Converts every element of a list.
fn all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

/// An amount in integer minor units of one ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub tiers: Vec<Tier>,
    pub sections: Vec<Section>,
    pub ga_areas: Vec<GaArea>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    pub price: Money,
    pub capacity: u32,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub seats: Vec<Seat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    pub id: String,
    pub number: u32,
    pub tier: String,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaArea {
    pub name: String,
    pub tier: String,
    pub capacity: u32,
    pub available: u32,
}

impl From<booking::EventView> for Event {
    fn from(v: booking::EventView) -> Self {
        Event {
            event_id: v.event_id,
            name: v.name,
            currency: v.currency,
            capacity: v.capacity,
            available: v.available,
            held: v.held,
            sold: v.sold,
            max_tickets_per_customer: v.max_tickets_per_customer,
            sales_start_ms: v.sales_start_ms,
            sales_end_ms: v.sales_end_ms,
            status: v.status,
            published_at_ms: v.published_at_ms,
            cancelled_at_ms: v.cancelled_at_ms,
            tiers: all(v.tiers),
            sections: all(v.sections),
            ga_areas: all(v.ga_areas),
        }
    }
}

impl From<booking::TierView> for Tier {
    fn from(v: booking::TierView) -> Self {
        Tier {
            name: v.name,
            price: v.price.into(),
            capacity: v.capacity,
            available: v.available,
        }
    }
}

impl From<booking::SectionView> for Section {
    fn from(v: booking::SectionView) -> Self {
        Section {
            name: v.name,
            rows: all(v.rows),
        }
    }
}

impl From<booking::RowView> for Row {
    fn from(v: booking::RowView) -> Self {
        Row {
            name: v.name,
            seats: all(v.seats),
        }
    }
}

impl From<booking::SeatView> for Seat {
    fn from(v: booking::SeatView) -> Self {
        Seat {
            id: v.id,
            number: v.number,
            tier: v.tier,
            status: v.status.into(),
        }
    }
}

impl From<booking::GaAreaView> for GaArea {
    fn from(v: booking::GaAreaView) -> Self {
        GaArea {
            name: v.name,
            tier: v.tier,
            capacity: v.capacity,
            available: v.available,
        }
    }
}

// ---------------------------------------------------------------- event specs (request bodies)

/// The seat map and rules of a new event, as `POST /v1/events` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaAreaSpec {
    pub name: String,
    pub capacity: u32,
    pub tier: String,
}

impl From<EventSpec> for booking::EventSpec {
    fn from(s: EventSpec) -> Self {
        booking::EventSpec {
            name: s.name,
            currency: s.currency,
            tiers: all(s.tiers),
            sections: all(s.sections),
            ga_areas: all(s.ga_areas),
            max_tickets_per_customer: s.max_tickets_per_customer,
            sales_start_ms: s.sales_start_ms,
            sales_end_ms: s.sales_end_ms,
            max_active_holds_per_customer: s.max_active_holds_per_customer,
        }
    }
}

impl From<booking::EventSpec> for EventSpec {
    fn from(s: booking::EventSpec) -> Self {
        EventSpec {
            name: s.name,
            currency: s.currency,
            tiers: all(s.tiers),
            sections: all(s.sections),
            ga_areas: all(s.ga_areas),
            max_tickets_per_customer: s.max_tickets_per_customer,
            sales_start_ms: s.sales_start_ms,
            sales_end_ms: s.sales_end_ms,
            max_active_holds_per_customer: s.max_active_holds_per_customer,
        }
    }
}

impl From<PriceTier> for booking::PriceTier {
    fn from(t: PriceTier) -> Self {
        booking::PriceTier {
            name: t.name,
            price: t.price.into(),
        }
    }
}

impl From<booking::PriceTier> for PriceTier {
    fn from(t: booking::PriceTier) -> Self {
        PriceTier {
            name: t.name,
            price: t.price.into(),
        }
    }
}

impl From<SectionSpec> for booking::SectionSpec {
    fn from(s: SectionSpec) -> Self {
        booking::SectionSpec {
            name: s.name,
            rows: all(s.rows),
        }
    }
}

impl From<booking::SectionSpec> for SectionSpec {
    fn from(s: booking::SectionSpec) -> Self {
        SectionSpec {
            name: s.name,
            rows: all(s.rows),
        }
    }
}

impl From<RowSpec> for booking::RowSpec {
    fn from(r: RowSpec) -> Self {
        booking::RowSpec {
            name: r.name,
            seats: all(r.seats),
        }
    }
}

impl From<booking::RowSpec> for RowSpec {
    fn from(r: booking::RowSpec) -> Self {
        RowSpec {
            name: r.name,
            seats: all(r.seats),
        }
    }
}

impl From<SeatSpec> for booking::SeatSpec {
    fn from(s: SeatSpec) -> Self {
        booking::SeatSpec {
            number: s.number,
            tier: s.tier,
        }
    }
}

impl From<booking::SeatSpec> for SeatSpec {
    fn from(s: booking::SeatSpec) -> Self {
        SeatSpec {
            number: s.number,
            tier: s.tier,
        }
    }
}

impl From<GaAreaSpec> for booking::GaAreaSpec {
    fn from(a: GaAreaSpec) -> Self {
        booking::GaAreaSpec {
            name: a.name,
            capacity: a.capacity,
            tier: a.tier,
        }
    }
}

impl From<booking::GaAreaSpec> for GaAreaSpec {
    fn from(a: booking::GaAreaSpec) -> Self {
        GaAreaSpec {
            name: a.name,
            capacity: a.capacity,
            tier: a.tier,
        }
    }
}

// ---------------------------------------------------------------- holds, orders, tickets

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub holder: CustomerId,
    /// Seat ids in seat-map order; empty for a GA hold.
    pub seats: Vec<String>,
    pub ga: Option<GaSelection>,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub extended: bool,
    pub status: HoldStatus,
    pub order_id: Option<OrderId>,
    pub total: Money,
    /// What is left of an active hold by the answering node's clock
    /// (`GET` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaSelection {
    pub area: String,
    pub quantity: u32,
}

impl From<booking::HoldView> for Hold {
    fn from(v: booking::HoldView) -> Self {
        Hold {
            hold_id: v.hold_id,
            event_id: v.event_id,
            holder: v.holder,
            seats: v.seats,
            ga: v.ga.map(|g| GaSelection {
                area: g.area,
                quantity: g.quantity,
            }),
            created_at_ms: v.created_at_ms,
            expires_at_ms: v.expires_at_ms,
            extended: v.extended,
            status: v.status.into(),
            order_id: v.order_id,
            total: v.total.into(),
            expires_in_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub event_id: EventId,
    pub holder: CustomerId,
    pub hold_id: HoldId,
    pub status: OrderStatus,
    pub created_at_ms: Millis,
    pub cancelled_at_ms: Option<Millis>,
    pub total: Money,
    pub tickets: Vec<Ticket>,
}

impl From<booking::OrderView> for Order {
    fn from(v: booking::OrderView) -> Self {
        Order {
            order_id: v.order_id,
            event_id: v.event_id,
            holder: v.holder,
            hold_id: v.hold_id,
            status: v.status.into(),
            created_at_ms: v.created_at_ms,
            cancelled_at_ms: v.cancelled_at_ms,
            total: v.total.into(),
            tickets: all(v.tickets),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The signed payload its QR code carries (`GET` of one ticket, when the
    /// node signs tickets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_payload: Option<String>,
}

impl From<booking::TicketView> for Ticket {
    fn from(v: booking::TicketView) -> Self {
        Ticket {
            code: v.code,
            event_id: v.event_id,
            order_id: v.order_id,
            seat: v.seat,
            ga_area: v.ga_area,
            tier: v.tier,
            price: v.price.into(),
            status: v.status.into(),
            checked_in_at_ms: v.checked_in_at_ms,
            qr_payload: None,
        }
    }
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub history: Vec<PaymentStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentStep {
    pub at_ms: Millis,
    pub status: PaymentStatus,
    pub detail: Option<String>,
}

impl From<booking::PaymentView> for Payment {
    fn from(v: booking::PaymentView) -> Self {
        Payment {
            payment_id: v.payment_id,
            event_id: v.event_id,
            reference: v.reference,
            hold_id: v.hold_id,
            holder: v.holder,
            amount: v.amount.into(),
            method: v.method,
            status: v.status.into(),
            order_id: v.order_id,
            created_at_ms: v.created_at_ms,
            history: v
                .history
                .into_iter()
                .map(|s| PaymentStep {
                    at_ms: s.at_ms,
                    status: s.status.into(),
                    detail: s.detail,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- accounts

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub customer_id: CustomerId,
    pub email: String,
    pub name: String,
    pub region: RegionId,
    pub role: Role,
    pub created_at_ms: Millis,
    pub notify: NotifyPreference,
}

/// Where notices go when a notice names no channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyPreference {
    pub channel: Channel,
    pub webhook_url: Option<String>,
}

impl From<booking::AccountView> for Account {
    fn from(v: booking::AccountView) -> Self {
        Account {
            customer_id: v.customer_id,
            email: v.email,
            name: v.name,
            region: v.region,
            role: v.role.into(),
            created_at_ms: v.created_at_ms,
            notify: NotifyPreference {
                channel: v.notify.channel.into(),
                webhook_url: v.notify.webhook_url,
            },
        }
    }
}

// ---------------------------------------------------------------- catalog

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Venue {
    pub venue_id: u64,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub time_zone: String,
    pub created_at_ms: Millis,
}

impl From<booking::VenueView> for Venue {
    fn from(v: booking::VenueView) -> Self {
        Venue {
            venue_id: v.venue_id,
            name: v.name,
            address: v.address,
            city: v.city,
            country: v.country,
            time_zone: v.time_zone,
            created_at_ms: v.created_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub event_id: EventId,
    pub name: String,
    pub description: String,
    pub category: String,
    pub performers: Vec<String>,
    pub venue: Venue,
    pub starts_at_ms: Millis,
    pub ends_at_ms: Millis,
    pub home_region: RegionId,
    pub currency: Currency,
    /// `on_sale`, `cancelled`, or `ended` once `ends_at_ms` has passed.
    pub status: String,
    pub updated_at_ms: Millis,
}

impl From<booking::ListingView> for Listing {
    fn from(v: booking::ListingView) -> Self {
        Listing {
            event_id: v.event_id,
            name: v.name,
            description: v.description,
            category: v.category,
            performers: v.performers,
            venue: v.venue.into(),
            starts_at_ms: v.starts_at_ms,
            ends_at_ms: v.ends_at_ms,
            home_region: v.home_region,
            currency: v.currency,
            status: v.status,
            updated_at_ms: v.updated_at_ms,
        }
    }
}

// ---------------------------------------------------------------- notices and the waitlist

/// A notice's id as clients see it: `{log_index}.{ordinal}`'s two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeId {
    pub log_index: u64,
    pub ordinal: u32,
}

/// What a notice tells its recipient (also the `data` of a notice webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Pending {
        attempts: u32,
        next_attempt_ms: Millis,
        last_error: Option<String>,
    },
    Delivered {
        at_ms: Millis,
        attempts: u32,
        channel: Channel,
    },
    Failed {
        at_ms: Millis,
        attempts: u32,
        error: String,
    },
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
                last_error,
            },
            Core::Delivered {
                at_ms,
                attempts,
                channel,
            } => Delivery::Delivered {
                at_ms,
                attempts,
                channel: channel.into(),
            },
            Core::Failed {
                at_ms,
                attempts,
                error,
            } => Delivery::Failed {
                at_ms,
                attempts,
                error,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub event_id: EventId,
    pub notice_id: NoticeId,
    pub recipient: CustomerId,
    pub kind: NoticeKind,
    pub channel: Option<Channel>,
    pub created_at_ms: Millis,
    pub delivery: Delivery,
}

impl From<booking::NoticeView> for Notice {
    fn from(v: booking::NoticeView) -> Self {
        Notice {
            event_id: v.event_id,
            notice_id: NoticeId {
                log_index: v.notice_id.log_index,
                ordinal: v.notice_id.ordinal,
            },
            recipient: v.recipient,
            kind: v.kind.into(),
            channel: v.channel.map(Channel::from),
            created_at_ms: v.created_at_ms,
            delivery: v.delivery.into(),
        }
    }
}

/// A customer's place on an event's waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl From<booking::WaitlistView> for WaitlistEntry {
    fn from(v: booking::WaitlistView) -> Self {
        WaitlistEntry {
            event_id: v.event_id,
            customer_id: v.customer_id,
            position: v.position,
            waiting: v.waiting,
            tier: v.tier,
            quantity: v.quantity,
            joined_at_ms: v.joined_at_ms,
        }
    }
}

// ---------------------------------------------------------------- live seat maps

/// One `change` of a live seat map (`GET /v1/events/{id}/live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityChange {
    pub event_id: EventId,
    pub log_index: u64,
    pub ordinal: u32,
    pub at_ms: Millis,
    pub cause: ChangeCause,
    pub seats: Vec<SeatChange>,
    pub areas: Vec<AreaAvailability>,
    pub tiers: Vec<TierAvailability>,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatChange {
    pub seat: String,
    pub status: SeatStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaAvailability {
    pub area: String,
    pub available: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierAvailability {
    pub tier: String,
    pub available: u32,
}

impl From<booking::AvailabilityChange> for AvailabilityChange {
    fn from(c: booking::AvailabilityChange) -> Self {
        AvailabilityChange {
            event_id: c.event_id,
            log_index: c.log_index,
            ordinal: c.ordinal,
            at_ms: c.at_ms,
            cause: c.cause.into(),
            seats: c
                .seats
                .into_iter()
                .map(|s| SeatChange {
                    seat: s.seat,
                    status: s.status.into(),
                })
                .collect(),
            areas: c
                .areas
                .into_iter()
                .map(|a| AreaAvailability {
                    area: a.area,
                    available: a.available,
                })
                .collect(),
            tiers: c
                .tiers
                .into_iter()
                .map(|t| TierAvailability {
                    tier: t.tier,
                    available: t.available,
                })
                .collect(),
            available: c.available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
