//! The booking state machine: the deterministic core of boxoffice.
//!
//! Raft replicates a log of [`Request`]s; every replica feeds the committed
//! entries, with their log indexes, to [`BookingState::apply`] and so arrives at
//! the same state and the same [`Response`]s. This crate is that function and
//! nothing more: plain synchronous Rust with no I/O, no clock, no randomness and
//! no threads. Time arrives in the request (`now_ms`, stamped by the leader);
//! randomness arrives in the request too (the ticket salt, drawn by the leader
//! when an event is created).
//!
//! # What it models
//!
//! An *event* has a seat map (sections of rows of numbered seats, plus
//! general-admission areas sold by quantity) with price tiers. A customer *holds*
//! seats for a while (specific seats, the best adjacent seats in a section, or a
//! quantity of GA places), may *extend* the hold once, *release* it, or *confirm*
//! it into an *order* with one *ticket* per place. Holds that are not confirmed in
//! time *expire* and their places go back on sale. Orders can be *cancelled*
//! until one of their tickets is *checked in*; each ticket checks in exactly once.
//!
//! # Map of the crate
//!
//! Leaves first; no module imports one that imports it back.
//!
//! - [`rejection`]: why a command was refused, with the HTTP contract's codes.
//! - [`ids`]: identifiers, `Money` and `Currency`, validated at construction.
//! - [`layout`]: `EventSpec` (what clients send) and the compiled seat map.
//! - The domains, each owning its commands, successes, queries, rules,
//!   records and views: [`events`] (an event's group: seats, holds, orders,
//!   tickets, payments, notices, waitlist, live feed), [`cluster_map`] (nodes,
//!   Raft groups and placement, in the metadata group), [`accounts`]
//!   (accounts, sessions, guests, e-mail claims) and [`catalog`] (venues and
//!   listings).
//! - [`command`], [`query`], [`records`]: the vocabulary that names a
//!   domain's part (`Command::Event(id, EventCommand)` and so on).
//! - [`remembered`]: what de-duplication keeps of an answer (an outcome by id).
//! - [`shape`]: size and shape checks the edge runs before proposing.
//! - [`state`]: `BookingState`: clock, de-duplication, dispatch, persistence.
//!
//! # Invariants, stated as absences
//!
//! - The state machine never reads a clock or an RNG and never iterates a hash
//!   map (`clippy.toml` bans the usual suspects).
//! - A rejected command changes nothing but the clock, hold expiry and the
//!   de-duplication table, which advance before any command runs.
//! - No place is ever both available and held or sold, or held or sold twice:
//!   per tier, available + held + sold = capacity at all times.
//! - Nothing in the state is persisted that cannot be listed by `records()`, and
//!   nothing derived is persisted.

pub mod accounts;
pub mod catalog;
pub mod cluster_map;
pub mod command;
pub mod events;
pub mod fx;
pub mod ids;
pub mod layout;
pub mod meta_voters;
pub mod places;
pub mod query;
pub mod records;
pub mod rejection;
pub mod remembered;
pub mod shape;
pub mod state;

mod summary;

pub use accounts::{
    AccountAnswer, AccountCommand, AccountKey, AccountQuery, AccountRecord, AccountSuccess, AccountValue,
    AccountView, EmailClaim, NewAccount, NewGuestCheck, NotifyPreference, Role, SessionGrant, SessionRecord,
    TokenHash,
};
pub use catalog::{
    CatalogAnswer, CatalogCommand, CatalogKey, CatalogQuery, CatalogSuccess, CatalogValue, ListingStatus,
    ListingView, NewListing, NewVenue, Search, SearchPage, VenueView,
};
pub use cluster_map::{
    ClusterMap, FIRST_DATA_REPLICA_ID, GroupId, GroupInfo, META_GROUP, MapAnswer, MapCommand, MapKey,
    MapMeta, MapQuery, MapSuccess, MapValue, NodeInfo, PlacementPolicy, ReadReplicas, RegionInfo, ReplicaId,
    Survive,
};
pub use command::{Command, Request, Response, Success};
pub use events::feed::{AreaAvailability, AvailabilityChange, ChangeCause, SeatChange, TierAvailability};
pub use events::keys::EventKey;
pub use events::notices::{Channel, Delivery, NoticeId, NoticeKind, NoticeView};
pub use events::payments::{PaymentOutcome, PaymentRecord, PaymentStatus, PaymentStep, PaymentView};
pub use events::records::{
    CustomerRecord, EventRecord, EventValue, GaRecord, HeldPlaces, HoldRecord, HoldState, OrderRecord,
    SeatRecord, TicketPlace, TicketRecord, WaitlistRecord,
};
pub use events::tally::Tally;
pub use events::views::{
    EventView, GaAreaView, GaSelectionView, HoldStatus, HoldView, OrderStatus, OrderView, RowView,
    SeatStatusView, SeatView, SectionView, TicketStatus, TicketView, TierView, WaitlistView,
};
pub use events::vocab::{
    EventAnswer, EventCommand, EventQuery, EventSuccess, ListFilter, MAX_PAGE, MAX_SEATS_PER_READ,
    SeatDetail, Selection,
};
pub use fx::{Converted, FxRate, Rate};
pub use ids::{
    Currency, CustomerId, EventId, HoldId, MAX_REGION_LEN, Millis, Money, NodeId, OrderId, RegionId,
    RequestId, TicketCode,
};
pub use layout::{EventSpec, GaAreaSpec, PriceTier, RowSpec, SeatSpec, SectionSpec};
pub use query::{Query, QueryResult};
pub use records::{FIRST_KIND_VERSION, Record, RecordKey, RequestRecord};
pub use rejection::Rejection;
pub use remembered::{AccountOutcome, CatalogOutcome, EventOutcome, Outcome, Remembered};
pub use state::{BookingState, LoadError};
