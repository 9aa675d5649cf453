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
//! - [`ids`]: identifiers, `Money` and `Currency`, validated at construction.
//! - [`layout`]: `EventSpec` (what clients send) and the compiled seat map.
//! - [`command`]: `Request`, `Command`, `Success`, `Rejection`.
//! - [`views`]: the read model returned by commands and `GET` routes.
//! - `event`: one event's state and the booking rules.
//! - `best_available`: choosing adjacent seats without leaving orphans.
//! - `ticket_codes`: deterministic, unguessable ticket codes.
//! - [`state`]: `BookingState`: clock, expiry, de-duplication, persistence hooks.
//! - [`records`]: the record-by-record persisted form that `raft-store` writes.
//! - [`cluster_map`]: nodes, Raft groups and event placement, held by the
//!   metadata group with the same machinery (records, de-duplication).
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
pub mod feed;
pub mod ids;
pub mod layout;
pub mod notices;
pub mod payments;
pub mod records;
pub mod shape;
pub mod state;
pub mod views;

mod best_available;
mod event;
mod summary;
mod ticket_codes;

pub use accounts::{
    AccountRecord, AccountView, EmailClaim, NewAccount, NotifyPreference, Role, SessionGrant, SessionRecord,
    TokenHash,
};
pub use catalog::{ListingStatus, ListingView, NewListing, NewVenue, Search, SearchPage, VenueView};
pub use cluster_map::{
    ClusterMap, FIRST_DATA_REPLICA_ID, GroupId, GroupInfo, META_GROUP, MapCommand, MapMeta, NodeId, NodeInfo,
    ReplicaId,
};
pub use command::{Command, Rejection, Request, Response, Selection, Success};
pub use feed::{AvailabilityChange, ChangeCause};
pub use ids::{Currency, CustomerId, EventId, HoldId, Millis, Money, OrderId, RequestId, TicketCode};
pub use layout::{EventSpec, GaAreaSpec, PriceTier, RowSpec, SeatSpec, SectionSpec};
pub use notices::{Channel, Delivery, NoticeId, NoticeKind, NoticeView};
pub use payments::{PaymentOutcome, PaymentRecord, PaymentStatus, PaymentStep, PaymentView};
pub use records::{
    CustomerRecord, EventRecord, GaRecord, HeldPlaces, HoldRecord, HoldState, OrderRecord,
    RECORD_FORMAT_VERSION, Record, RecordKey, RequestRecord, SeatRecord, TicketPlace, TicketRecord,
    WaitlistRecord,
};
pub use state::{BookingState, LoadError};
pub use views::{
    EventView, GaAreaView, GaSelectionView, HoldStatus, HoldView, OrderStatus, OrderView, RowView,
    SeatStatusView, SeatView, SectionView, TicketStatus, TicketView, TierView, WaitlistView,
};
