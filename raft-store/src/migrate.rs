//! Reading what releases before the per-kind formats wrote (value format 4).
//!
//! Format 4 stored every record as one flat `Record` enum and every log entry
//! as a flat `Command`, both prefixed with the byte 4. Format 5 nests the
//! vocabulary by domain and stores each record kind on its own, with its own
//! version byte (`booking::RecordKey::version`). A node upgraded in place
//! reads both: a value that starts with 4 is decoded with the frozen v4 types
//! below and converted, and everything it writes is in the new format, so old
//! values disappear as their keys are rewritten, old log entries as the log is
//! purged, and old snapshots as new ones are built. Nothing is rewritten in
//! bulk and nothing needs a separate step.
//!
//! The enums here are copies of the v4 ones, variant for variant and field for
//! field (postcard encodes a variant by its position and fields in order):
//! never reorder or edit them. The types inside them are today's, whose
//! encodings have not changed since v4; if one changes, freeze its v4 shape
//! here too. The fixture test (`tests/fixture_v4.rs`) opens a store written
//! in format 4 and checks that it reads back unchanged.

use booking::accounts::GuestChallenge;
use booking::catalog::{ListingRecord, VenueRecord};
use booking::events::notices::NoticeRecord;
use booking::{
    AccountCommand, AccountRecord, AccountSuccess, AccountValue, AccountView, CatalogCommand, CatalogSuccess,
    CatalogValue, Channel, Command, CustomerId, CustomerRecord, EmailClaim, EventCommand, EventId,
    EventRecord, EventSpec, EventSuccess, EventValue, GaRecord, GroupId, GroupInfo, HoldId, HoldRecord,
    HoldView, ListingStatus, ListingView, MapCommand, MapMeta, MapSuccess, MapValue, Millis, NewAccount,
    NewGuestCheck, NewListing, NewVenue, NodeInfo, NoticeId, NoticeView, NotifyPreference, OrderId,
    OrderRecord, OrderView, PaymentOutcome, PaymentRecord, PaymentView, Record, RecordKey, Rejection,
    ReplicaId, Request, RequestId, RequestRecord, Role, SeatRecord, Selection, SessionGrant, SessionRecord,
    Success, TicketCode, TicketRecord, TokenHash, VenueView, WaitlistRecord, WaitlistView,
};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The Raft types of format 4: today's, but for the entries' payload.
    pub TypeConfigV4:
        D = RequestV4,
        R = Option<booking::Response>,
        NodeId = u64,
        Node = crate::types::NodeAddr,
);

/// A log entry of format 4.
pub type EntryV4 = openraft::alias::EntryOf<TypeConfigV4>;

/// A format-4 log entry in today's shape: the payload converted, the log id
/// and membership (whose encodings did not change) carried over.
pub fn entry_from_v4(old: EntryV4) -> std::io::Result<crate::types::Entry> {
    use openraft::EntryPayload;
    let payload = match old.payload {
        EntryPayload::Blank => EntryPayload::Blank,
        EntryPayload::Normal(request) => EntryPayload::Normal(Request::from(request)),
        EntryPayload::Membership(membership) => EntryPayload::Membership(crate::codec::bridge(&membership)?),
    };
    Ok(crate::types::Entry {
        log_id: crate::codec::bridge(&old.log_id)?,
        payload,
    })
}

/// A log entry's payload in format 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestV4 {
    pub request_id: RequestId,
    pub now_ms: Millis,
    pub fingerprint: u64,
    pub command: CommandV4,
}

impl std::fmt::Display for RequestV4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {} (format 4)", self.request_id, self.now_ms)
    }
}

/// A remembered request in format 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecordV4 {
    pub log_index: u64,
    pub at_ms: Millis,
    pub fingerprint: u64,
    pub response: Result<SuccessV4, Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandV4 {
    CreateEvent {
        event_id: EventId,
        spec: EventSpec,
        ticket_salt: [u8; 16],
        draft: bool,
    },
    PublishEvent {
        event_id: EventId,
    },
    Hold {
        event_id: EventId,
        holder: CustomerId,
        selection: Selection,
        ttl_ms: Option<u64>,
    },
    ExtendHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    ReleaseHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    ConfirmHold {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
    },
    CancelOrder {
        event_id: EventId,
        order_id: OrderId,
        holder: CustomerId,
    },
    CheckIn {
        event_id: EventId,
        code: TicketCode,
    },
    StartPayment {
        event_id: EventId,
        hold_id: HoldId,
        holder: CustomerId,
        method: String,
    },
    SettlePayment {
        event_id: EventId,
        payment_id: u64,
        outcome: PaymentOutcome,
    },
    RefundSettled {
        event_id: EventId,
        payment_id: u64,
    },
    CancelEvent {
        event_id: EventId,
    },
    Map(MapCommand),
    CreateVenue {
        venue: NewVenue,
    },
    PutListing {
        event_id: EventId,
        listing: NewListing,
        status: ListingStatus,
    },
    SetListingStatus {
        event_id: EventId,
        status: ListingStatus,
    },
    ClaimEmail {
        email_key: TokenHash,
        claim: EmailClaim,
    },
    Register {
        customer_id: CustomerId,
        account: NewAccount,
    },
    SetRole {
        customer_id: CustomerId,
        role: Role,
    },
    StartSession {
        customer_id: CustomerId,
        token_hash: TokenHash,
        ttl_ms: u64,
    },
    RotateSession {
        session_id: u64,
        presented: TokenHash,
        next: TokenHash,
        ttl_ms: u64,
    },
    EndSession {
        session_id: u64,
        presented: TokenHash,
    },
    Tick,
    SetNotifications {
        customer_id: CustomerId,
        preference: NotifyPreference,
    },
    SubscribeReminder {
        event_id: EventId,
        customer: CustomerId,
        channel: Option<Channel>,
        remind_at_ms: Millis,
    },
    UnsubscribeReminder {
        event_id: EventId,
        customer: CustomerId,
    },
    JoinWaitlist {
        event_id: EventId,
        customer: CustomerId,
        tier: Option<String>,
        quantity: u32,
    },
    LeaveWaitlist {
        event_id: EventId,
        customer: CustomerId,
    },
    OfferWaitlist {
        event_id: EventId,
    },
    NoticeDelivered {
        event_id: EventId,
        notice_id: NoticeId,
        channel: Channel,
    },
    NoticeFailed {
        event_id: EventId,
        notice_id: NoticeId,
        error: String,
        permanent: bool,
    },
    StartGuestCheck {
        check: NewGuestCheck,
    },
    VerifyGuest {
        challenge_id: u64,
        code_hash: TokenHash,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SuccessV4 {
    EventCreated {
        event_id: EventId,
        capacity: u32,
    },
    Held(HoldView),
    Extended(HoldView),
    Released {
        hold_id: HoldId,
    },
    Confirmed(OrderView),
    Cancelled(OrderView),
    CheckedIn {
        code: TicketCode,
        at_ms: Millis,
    },
    Ticked,
    MapInitialised {
        epoch: u64,
        groups: Vec<GroupId>,
    },
    Placed {
        event_id: EventId,
        group_id: GroupId,
        epoch: u64,
    },
    GroupCreated {
        group_id: GroupId,
        epoch: u64,
    },
    LearnerAdded {
        group_id: GroupId,
        replica_id: ReplicaId,
        epoch: u64,
    },
    MapChanged {
        epoch: u64,
    },
    VenueCreated(VenueView),
    Listed(ListingView),
    EmailClaimed {
        claim: EmailClaim,
        fresh: bool,
    },
    Registered(AccountView),
    AccountUpdated(AccountView),
    SessionStarted(SessionGrant),
    SessionRotated(SessionGrant),
    SessionRevoked {
        session_id: u64,
    },
    SessionEnded {
        session_id: u64,
    },
    PaymentStarted(PaymentView),
    PaymentUpdated(PaymentView),
    EventPublished {
        event_id: EventId,
        at_ms: Millis,
    },
    EventCancelled {
        event_id: EventId,
        orders_cancelled: u32,
        refunds: u32,
    },
    ReminderSet(NoticeView),
    ReminderCancelled {
        event_id: EventId,
    },
    Waitlisted(WaitlistView),
    LeftWaitlist {
        event_id: EventId,
    },
    WaitlistOffered {
        hold: Option<HoldView>,
    },
    NoticeUpdated(NoticeView),
    GuestChallenge {
        challenge_id: u64,
        expires_at_ms: Millis,
    },
    GuestCodeWrong {
        attempts_left: u8,
    },
    GuestVerified(AccountView),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordV4 {
    Clock(Millis),
    Event(EventRecord),
    Seat(SeatRecord),
    Ga(GaRecord),
    Hold(HoldRecord),
    Order(OrderRecord),
    Ticket(TicketRecord),
    Customer(CustomerRecord),
    Request(RequestRecordV4),
    MapMeta(MapMeta),
    MapNode(NodeInfo),
    MapGroup(GroupInfo),
    Placement(GroupId),
    Venue(VenueRecord),
    Listing(ListingRecord),
    Account(AccountRecord),
    Session(SessionRecord),
    EmailClaim(EmailClaim),
    Payment(PaymentRecord),
    Waitlist(WaitlistRecord),
    Notice(NoticeRecord),
    GuestChallenge(GuestChallenge),
}

impl From<RequestV4> for Request {
    fn from(old: RequestV4) -> Request {
        Request {
            request_id: old.request_id,
            now_ms: old.now_ms,
            fingerprint: old.fingerprint,
            command: old.command.into(),
        }
    }
}

impl From<CommandV4> for Command {
    fn from(old: CommandV4) -> Command {
        use CommandV4 as C;
        let event = |id: EventId, command: EventCommand| Command::Event(id, command);
        match old {
            C::CreateEvent {
                event_id,
                spec,
                ticket_salt,
                draft,
            } => event(
                event_id,
                EventCommand::Create {
                    spec,
                    ticket_salt,
                    draft,
                },
            ),
            C::PublishEvent { event_id } => event(event_id, EventCommand::Publish),
            C::Hold {
                event_id,
                holder,
                selection,
                ttl_ms,
            } => event(
                event_id,
                EventCommand::Hold {
                    holder,
                    selection,
                    ttl_ms,
                },
            ),
            C::ExtendHold {
                event_id,
                hold_id,
                holder,
            } => event(event_id, EventCommand::ExtendHold { hold_id, holder }),
            C::ReleaseHold {
                event_id,
                hold_id,
                holder,
            } => event(event_id, EventCommand::ReleaseHold { hold_id, holder }),
            C::ConfirmHold {
                event_id,
                hold_id,
                holder,
            } => event(event_id, EventCommand::ConfirmHold { hold_id, holder }),
            C::CancelOrder {
                event_id,
                order_id,
                holder,
            } => event(event_id, EventCommand::CancelOrder { order_id, holder }),
            C::CheckIn { event_id, code } => event(event_id, EventCommand::CheckIn { code }),
            C::StartPayment {
                event_id,
                hold_id,
                holder,
                method,
            } => event(
                event_id,
                EventCommand::StartPayment {
                    hold_id,
                    holder,
                    method,
                },
            ),
            C::SettlePayment {
                event_id,
                payment_id,
                outcome,
            } => event(event_id, EventCommand::SettlePayment { payment_id, outcome }),
            C::RefundSettled { event_id, payment_id } => {
                event(event_id, EventCommand::RefundSettled { payment_id })
            }
            C::CancelEvent { event_id } => event(event_id, EventCommand::Cancel),
            C::Map(command) => Command::Map(command),
            C::CreateVenue { venue } => Command::Catalog(CatalogCommand::CreateVenue { venue }),
            C::PutListing {
                event_id,
                listing,
                status,
            } => Command::Catalog(CatalogCommand::PutListing {
                event_id,
                listing,
                status,
            }),
            C::SetListingStatus { event_id, status } => {
                Command::Catalog(CatalogCommand::SetListingStatus { event_id, status })
            }
            C::ClaimEmail { email_key, claim } => {
                Command::Account(AccountCommand::ClaimEmail { email_key, claim })
            }
            C::Register { customer_id, account } => {
                Command::Account(AccountCommand::Register { customer_id, account })
            }
            C::SetRole { customer_id, role } => {
                Command::Account(AccountCommand::SetRole { customer_id, role })
            }
            C::StartSession {
                customer_id,
                token_hash,
                ttl_ms,
            } => Command::Account(AccountCommand::StartSession {
                customer_id,
                token_hash,
                ttl_ms,
            }),
            C::RotateSession {
                session_id,
                presented,
                next,
                ttl_ms,
            } => Command::Account(AccountCommand::RotateSession {
                session_id,
                presented,
                next,
                ttl_ms,
            }),
            C::EndSession {
                session_id,
                presented,
            } => Command::Account(AccountCommand::EndSession {
                session_id,
                presented,
            }),
            C::Tick => Command::Tick,
            C::SetNotifications {
                customer_id,
                preference,
            } => Command::Account(AccountCommand::SetNotifications {
                customer_id,
                preference,
            }),
            C::SubscribeReminder {
                event_id,
                customer,
                channel,
                remind_at_ms,
            } => event(
                event_id,
                EventCommand::SubscribeReminder {
                    customer,
                    channel,
                    remind_at_ms,
                },
            ),
            C::UnsubscribeReminder { event_id, customer } => {
                event(event_id, EventCommand::UnsubscribeReminder { customer })
            }
            C::JoinWaitlist {
                event_id,
                customer,
                tier,
                quantity,
            } => event(
                event_id,
                EventCommand::JoinWaitlist {
                    customer,
                    tier,
                    quantity,
                },
            ),
            C::LeaveWaitlist { event_id, customer } => {
                event(event_id, EventCommand::LeaveWaitlist { customer })
            }
            C::OfferWaitlist { event_id } => event(event_id, EventCommand::OfferWaitlist),
            C::NoticeDelivered {
                event_id,
                notice_id,
                channel,
            } => event(event_id, EventCommand::NoticeDelivered { notice_id, channel }),
            C::NoticeFailed {
                event_id,
                notice_id,
                error,
                permanent,
            } => event(
                event_id,
                EventCommand::NoticeFailed {
                    notice_id,
                    error,
                    permanent,
                },
            ),
            C::StartGuestCheck { check } => Command::Account(AccountCommand::StartGuestCheck { check }),
            C::VerifyGuest {
                challenge_id,
                code_hash,
            } => Command::Account(AccountCommand::VerifyGuest {
                challenge_id,
                code_hash,
            }),
        }
    }
}

impl From<SuccessV4> for Success {
    fn from(old: SuccessV4) -> Success {
        use SuccessV4 as S;
        let event = Success::Event;
        let account = Success::Account;
        match old {
            S::EventCreated { event_id, capacity } => event(EventSuccess::Created { event_id, capacity }),
            S::Held(hold) => event(EventSuccess::Held(hold)),
            S::Extended(hold) => event(EventSuccess::Extended(hold)),
            S::Released { hold_id } => event(EventSuccess::Released { hold_id }),
            S::Confirmed(order) => event(EventSuccess::Confirmed(order)),
            S::Cancelled(order) => event(EventSuccess::OrderCancelled(order)),
            S::CheckedIn { code, at_ms } => event(EventSuccess::CheckedIn { code, at_ms }),
            S::Ticked => Success::Ticked,
            S::MapInitialised { epoch, groups } => Success::Map(MapSuccess::Initialised { epoch, groups }),
            S::Placed {
                event_id,
                group_id,
                epoch,
            } => Success::Map(MapSuccess::Placed {
                event_id,
                group_id,
                epoch,
            }),
            S::GroupCreated { group_id, epoch } => Success::Map(MapSuccess::GroupCreated { group_id, epoch }),
            S::LearnerAdded {
                group_id,
                replica_id,
                epoch,
            } => Success::Map(MapSuccess::LearnerAdded {
                group_id,
                replica_id,
                epoch,
            }),
            S::MapChanged { epoch } => Success::Map(MapSuccess::Changed { epoch }),
            S::VenueCreated(venue) => Success::Catalog(CatalogSuccess::VenueCreated(venue)),
            S::Listed(listing) => Success::Catalog(CatalogSuccess::Listed(listing)),
            S::EmailClaimed { claim, fresh } => account(AccountSuccess::EmailClaimed { claim, fresh }),
            S::Registered(view) => account(AccountSuccess::Registered(view)),
            S::AccountUpdated(view) => account(AccountSuccess::Updated(view)),
            S::SessionStarted(grant) => account(AccountSuccess::SessionStarted(grant)),
            S::SessionRotated(grant) => account(AccountSuccess::SessionRotated(grant)),
            S::SessionRevoked { session_id } => account(AccountSuccess::SessionRevoked { session_id }),
            S::SessionEnded { session_id } => account(AccountSuccess::SessionEnded { session_id }),
            S::PaymentStarted(payment) => event(EventSuccess::PaymentStarted(payment)),
            S::PaymentUpdated(payment) => event(EventSuccess::PaymentUpdated(payment)),
            S::EventPublished { event_id, at_ms } => event(EventSuccess::Published { event_id, at_ms }),
            S::EventCancelled {
                event_id,
                orders_cancelled,
                refunds,
            } => event(EventSuccess::Cancelled {
                event_id,
                orders_cancelled,
                refunds,
            }),
            S::ReminderSet(notice) => event(EventSuccess::ReminderSet(notice)),
            S::ReminderCancelled { event_id } => event(EventSuccess::ReminderCancelled { event_id }),
            S::Waitlisted(view) => event(EventSuccess::Waitlisted(view)),
            S::LeftWaitlist { event_id } => event(EventSuccess::LeftWaitlist { event_id }),
            S::WaitlistOffered { hold } => event(EventSuccess::WaitlistOffered { hold }),
            S::NoticeUpdated(notice) => event(EventSuccess::NoticeUpdated(notice)),
            S::GuestChallenge {
                challenge_id,
                expires_at_ms,
            } => account(AccountSuccess::GuestChallenge {
                challenge_id,
                expires_at_ms,
            }),
            S::GuestCodeWrong { attempts_left } => account(AccountSuccess::GuestCodeWrong { attempts_left }),
            S::GuestVerified(view) => account(AccountSuccess::GuestVerified(view)),
        }
    }
}

impl RecordV4 {
    /// The record in today's shape, if it is of the kind `key` names.
    pub fn into_record(self, key: &RecordKey) -> Option<Record> {
        use RecordV4 as R;
        let record = match self {
            R::Clock(ms) => Record::Clock(ms),
            R::Event(v) => Record::Event(EventValue::Event(v)),
            R::Seat(v) => Record::Event(EventValue::Seat(v)),
            R::Ga(v) => Record::Event(EventValue::Ga(v)),
            R::Hold(v) => Record::Event(EventValue::Hold(v)),
            R::Order(v) => Record::Event(EventValue::Order(v)),
            R::Ticket(v) => Record::Event(EventValue::Ticket(v)),
            R::Customer(v) => Record::Event(EventValue::Customer(v)),
            R::Request(v) => Record::Request(RequestRecord {
                log_index: v.log_index,
                at_ms: v.at_ms,
                fingerprint: v.fingerprint,
                outcome: v
                    .response
                    .map(|success| booking::Remembered::of(&Success::from(success))),
            }),
            R::MapMeta(v) => Record::Map(MapValue::Meta(v)),
            R::MapNode(v) => Record::Map(MapValue::Node(v)),
            R::MapGroup(v) => Record::Map(MapValue::Group(v)),
            R::Placement(v) => Record::Map(MapValue::Placement(v)),
            R::Venue(v) => Record::Catalog(CatalogValue::Venue(v)),
            R::Listing(v) => Record::Catalog(CatalogValue::Listing(v)),
            R::Account(v) => Record::Account(AccountValue::Account(v)),
            R::Session(v) => Record::Account(AccountValue::Session(v)),
            R::EmailClaim(v) => Record::Account(AccountValue::EmailClaim(v)),
            R::Payment(v) => Record::Event(EventValue::Payment(v)),
            R::Waitlist(v) => Record::Event(EventValue::Waitlist(v)),
            R::Notice(v) => Record::Event(EventValue::Notice(v)),
            R::GuestChallenge(v) => Record::Account(AccountValue::GuestChallenge(v)),
        };
        record.fits(key).then_some(record)
    }
}
