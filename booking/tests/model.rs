//! Model-based property tests: random command sequences are applied both to
//! `BookingState` and to a deliberately plain model of the rules written here
//! (lists and maps recomputed from scratch on every question, no incremental
//! counters, a brute-force best-available search). After every step the two
//! must agree on the outcome, and the real state must pass `check_invariants`.
//!
//! The same run also exercises persistence: a second `BookingState` that is
//! never reloaded must give byte-identical responses to the primary one, which
//! is replaced by `from_records(records())` at random points, and the changes
//! reported by `take_dirty` (drained at random points) must replay to exactly
//! `records()`.

use std::collections::BTreeMap;

use booking::{
    BookingState, Command, Currency, CustomerId, EventCommand, EventId, EventSpec, EventSuccess, GaAreaSpec,
    HoldId, Money, OrderId, PriceTier, Record, RecordKey, Rejection, Request, RequestId, Response, RowSpec,
    SeatSpec, SectionSpec, Selection, Success, TicketCode,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ----- The venue -------------------------------------------------------------

const CUSTOMERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const LIMIT: u32 = 6;
const GA_CAPACITY: u32 = 5;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// (section, row, number, tier), in spec order. Row A-1 has an aisle between 4
/// and 6; row A-2 mixes tiers.
const SEATS: [(&str, &str, u32, &str); 16] = [
    ("A", "1", 1, "front"),
    ("A", "1", 2, "front"),
    ("A", "1", 3, "front"),
    ("A", "1", 4, "front"),
    ("A", "1", 6, "front"),
    ("A", "1", 7, "front"),
    ("A", "1", 8, "front"),
    ("A", "2", 1, "front"),
    ("A", "2", 2, "front"),
    ("A", "2", 3, "back"),
    ("A", "2", 4, "back"),
    ("A", "2", 5, "back"),
    ("A", "2", 6, "back"),
    ("B", "1", 1, "back"),
    ("B", "1", 2, "back"),
    ("B", "1", 3, "back"),
];
const SECTIONS: [&str; 3] = ["A", "B", "C"]; // C does not exist.
const TIERS: [&str; 4] = ["front", "back", "standing", "gold"]; // gold does not exist.

fn price(tier: &str) -> i64 {
    match tier {
        "front" => 5000,
        "back" => 3000,
        _ => 2000,
    }
}

fn seat_id(seat: usize) -> String {
    let (section, row, number, _) = SEATS[seat];
    format!("{section}-{row}-{number}")
}

fn venue() -> EventSpec {
    let eur = Currency::new("EUR").unwrap();
    let mut sections: Vec<SectionSpec> = Vec::new();
    for (section, row, number, tier) in SEATS {
        if sections.last().is_none_or(|s| s.name != section) {
            sections.push(SectionSpec {
                name: section.to_owned(),
                rows: Vec::new(),
            });
        }
        let rows = &mut sections.last_mut().unwrap().rows;
        if rows.last().is_none_or(|r| r.name != row) {
            rows.push(RowSpec {
                name: row.to_owned(),
                seats: Vec::new(),
            });
        }
        rows.last_mut().unwrap().seats.push(SeatSpec {
            number,
            tier: tier.to_owned(),
        });
    }
    EventSpec {
        name: "Model Hall".to_owned(),
        currency: eur,
        tiers: TIERS[..3]
            .iter()
            .map(|t| PriceTier {
                name: t.to_string(),
                price: Money::new(price(t), eur),
            })
            .collect(),
        sections,
        ga_areas: vec![GaAreaSpec {
            name: "floor".to_owned(),
            capacity: GA_CAPACITY,
            tier: "standing".to_owned(),
        }],
        max_tickets_per_customer: Some(LIMIT),
        sales_start_ms: None,
        sales_end_ms: None,
        max_active_holds_per_customer: None,
    }
}

// ----- Generated steps ---------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Seat picks index `SEATS`; `SEATS.len()` stands for a seat that does not exist.
    Hold {
        who: usize,
        seats: Vec<usize>,
        ttl: Option<u64>,
        unknown_event: bool,
    },
    Best {
        who: usize,
        section: usize,
        tier: Option<usize>,
        quantity: u32,
        ttl: Option<u64>,
    },
    Ga {
        who: usize,
        quantity: u32,
        known_area: bool,
        ttl: Option<u64>,
    },
    Extend {
        hold: Pick,
        stranger: Option<usize>,
    },
    Release {
        hold: Pick,
        stranger: Option<usize>,
    },
    Confirm {
        hold: Pick,
        stranger: Option<usize>,
    },
    Cancel {
        order: Pick,
        stranger: Option<usize>,
    },
    CheckIn {
        ticket: Pick,
        bogus: bool,
    },
    Tick,
    CreateAgain,
    /// Replace the primary state by `from_records(records())`.
    Reload,
    /// Drain `take_dirty` into the mirror and compare it with `records()`.
    Flush,
}

/// Which earlier hold, order or ticket a command refers to: usually one of the
/// last few (which are more likely to still be live), sometimes any.
#[derive(Debug, Clone)]
struct Pick {
    recent: bool,
    index: Index,
}

const RECENT: usize = 3;

fn pick() -> impl Strategy<Value = Pick> {
    (prop::bool::weighted(0.7), any::<Index>()).prop_map(|(recent, index)| Pick { recent, index })
}

/// How the leader's clock moves before a step.
#[derive(Debug, Clone)]
enum Clock {
    /// By this much; negative is a new leader with a slower clock.
    By(i64),
    /// To exactly the earliest expiry of an active hold.
    ToNextExpiry,
    /// To exactly 24h (or 24h + 1ms) after a remembered request, which is then
    /// retried: the last moment it is still remembered, or the first it is not.
    ToDedupEdge { request: Index, past: bool },
}

#[derive(Debug, Clone)]
struct Step {
    clock: Clock,
    /// Reuse the request id of an earlier step instead of a fresh one.
    retry: Option<Index>,
    op: Op,
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        4 => Just(None),
        2 => Just(Some(1_000)),
        4 => Just(Some(5_000)),
        4 => Just(Some(60_000)),
        1 => Just(Some(999)),
        1 => Just(Some(1_800_001)),
    ]
}

fn stranger() -> impl Strategy<Value = Option<usize>> {
    prop::option::weighted(0.15, 0..CUSTOMERS.len())
}

fn op() -> impl Strategy<Value = Op> {
    let seat = prop_oneof![20 => 0..SEATS.len(), 1 => Just(SEATS.len())];
    prop_oneof![
        6 => (0..4usize, prop_oneof![12 => prop::collection::vec(seat.clone(), 1..4), 1 => prop::collection::vec(seat, 0..1)], ttl(), prop::bool::weighted(0.03))
            .prop_map(|(who, seats, ttl, unknown_event)| Op::Hold { who, seats, ttl, unknown_event }),
        5 => (0..4usize, prop_oneof![8 => 0..2usize, 1 => Just(2usize)], prop::option::weighted(0.3, 0..4usize), 0..6u32, ttl())
            .prop_map(|(who, section, tier, quantity, ttl)| Op::Best { who, section, tier, quantity, ttl }),
        3 => (0..4usize, 0..7u32, prop::bool::weighted(0.95), ttl())
            .prop_map(|(who, quantity, known_area, ttl)| Op::Ga { who, quantity, known_area, ttl }),
        3 => (pick(), stranger()).prop_map(|(hold, stranger)| Op::Extend { hold, stranger }),
        2 => (pick(), stranger()).prop_map(|(hold, stranger)| Op::Release { hold, stranger }),
        5 => (pick(), stranger()).prop_map(|(hold, stranger)| Op::Confirm { hold, stranger }),
        2 => (pick(), stranger()).prop_map(|(order, stranger)| Op::Cancel { order, stranger }),
        3 => (pick(), prop::bool::weighted(0.1)).prop_map(|(ticket, bogus)| Op::CheckIn { ticket, bogus }),
        1 => Just(Op::Tick),
        1 => Just(Op::CreateAgain),
        1 => Just(Op::Reload),
        2 => Just(Op::Flush),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let clock = prop_oneof![
        30 => (0i64..1_500).prop_map(Clock::By),
        6 => (0i64..20_000).prop_map(Clock::By),
        2 => (-5_000i64..0).prop_map(Clock::By),
        1 => ((DAY_MS as i64 - 2)..(DAY_MS as i64 + 2)).prop_map(Clock::By),
        3 => Just(Clock::ToNextExpiry),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(request, past)| Clock::ToDedupEdge { request, past }),
    ];
    (clock, prop::option::weighted(0.1, any::<Index>()), op()).prop_map(|(clock, retry, op)| Step {
        clock,
        retry,
        op,
    })
}

// ----- The model ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Places {
    Seats(Vec<usize>),
    Ga(u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Active,
    Released,
    Expired,
    Confirmed,
}

#[derive(Debug, Clone)]
struct ModelHold {
    holder: String,
    places: Places,
    ttl: u64,
    expires_at: u64,
    extended: bool,
    status: Status,
}

#[derive(Debug, Clone)]
struct ModelOrder {
    holder: String,
    /// One entry per ticket: the seat, or `None` for a GA place.
    places: Vec<Option<usize>>,
    checked_in: Vec<Option<u64>>,
    cancelled: bool,
}

#[derive(Debug, Default)]
struct Model {
    clock: u64,
    holds: BTreeMap<u64, ModelHold>,
    orders: BTreeMap<u64, ModelOrder>,
    /// Ticket code -> (order, ordinal), learned from the real responses.
    codes: BTreeMap<String, (u64, usize)>,
    /// Request id -> (applied at, outcome).
    dedup: BTreeMap<String, (u64, String)>,
}

/// The parts of a response the model predicts, as a string.
fn summarize(response: &Response) -> String {
    match response {
        Ok(Success::Event(EventSuccess::Created { capacity, .. })) => format!("created cap={capacity}"),
        Ok(Success::Event(EventSuccess::Held(view))) => {
            let places = match &view.ga {
                Some(ga) => format!("ga:{}", ga.quantity),
                None => format!("seats:{}", view.seats.join(",")),
            };
            format!(
                "held {places} exp={} total={}",
                view.expires_at_ms, view.total.amount_minor
            )
        }
        Ok(Success::Event(EventSuccess::Extended(view))) => format!("extended exp={}", view.expires_at_ms),
        Ok(Success::Event(EventSuccess::Released { .. })) => "released".to_owned(),
        Ok(Success::Event(EventSuccess::Confirmed(view))) => format!(
            "confirmed n={} total={}",
            view.tickets.len(),
            view.total.amount_minor
        ),
        Ok(Success::Event(EventSuccess::OrderCancelled(view))) => {
            format!("cancelled n={}", view.tickets.len())
        }
        Ok(Success::Event(EventSuccess::CheckedIn { at_ms, .. })) => format!("checked_in at={at_ms}"),
        Ok(Success::Ticked) => "ticked".to_owned(),
        // The model generates booking commands only.
        Ok(other) => format!("{other:?}"),
        Err(Rejection::SeatUnavailable { seats }) => format!("seat_unavailable {}", seats.join(",")),
        Err(Rejection::CustomerLimit { limit, current }) => format!("customer_limit {limit} {current}"),
        Err(Rejection::NotEnoughSeats { requested }) => format!("not_enough_seats {requested}"),
        Err(Rejection::AlreadyCheckedIn {
            first_checked_in_at_ms,
        }) => {
            format!("already_checked_in {first_checked_in_at_ms}")
        }
        Err(Rejection::UnknownSeat { seat }) => format!("unknown_seat {seat}"),
        Err(rejection) => rejection.code().to_owned(),
    }
}

impl Model {
    fn seat_taken(&self, seat: usize) -> bool {
        let held = self.holds.values().any(|h| {
            h.status == Status::Active && matches!(&h.places, Places::Seats(s) if s.contains(&seat))
        });
        let sold = self
            .orders
            .values()
            .any(|o| !o.cancelled && o.places.contains(&Some(seat)));
        held || sold
    }

    fn ga_taken(&self) -> u32 {
        let held: u32 = self
            .holds
            .values()
            .filter(|h| h.status == Status::Active)
            .map(|h| match h.places {
                Places::Ga(q) => q,
                Places::Seats(_) => 0,
            })
            .sum();
        let sold = self
            .orders
            .values()
            .filter(|o| !o.cancelled)
            .flat_map(|o| &o.places)
            .filter(|p| p.is_none())
            .count();
        held + sold as u32
    }

    fn customer_places(&self, who: &str) -> u32 {
        let held: u32 = self
            .holds
            .values()
            .filter(|h| h.status == Status::Active && h.holder == who)
            .map(|h| match &h.places {
                Places::Ga(q) => *q,
                Places::Seats(s) => s.len() as u32,
            })
            .sum();
        let bought: usize = self
            .orders
            .values()
            .filter(|o| !o.cancelled && o.holder == who)
            .map(|o| o.places.len())
            .sum();
        held + bought as u32
    }

    fn adjacent(a: usize, b: usize) -> bool {
        SEATS[a].2.abs_diff(SEATS[b].2) == 1
    }

    /// Brute force: try every window of every row, count the free neighbours on
    /// each side by walking outwards.
    fn best(&self, section: &str, tier: Option<&str>, quantity: usize) -> Option<Vec<usize>> {
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for (seat, &(s, row, _, _)) in SEATS.iter().enumerate() {
            if s != section {
                continue;
            }
            match rows.last_mut() {
                Some(last) if SEATS[last[0]].1 == row => last.push(seat),
                _ => rows.push(vec![seat]),
            }
        }
        let free = |seat: usize| !self.seat_taken(seat);
        let mut fallback = None;
        for row in rows {
            if row.len() < quantity {
                continue;
            }
            let mut first_any = None;
            for start in 0..=row.len() - quantity {
                let window = &row[start..start + quantity];
                let usable = window
                    .iter()
                    .all(|&s| free(s) && tier.is_none_or(|t| SEATS[s].3 == t))
                    && window.windows(2).all(|w| Self::adjacent(w[0], w[1]));
                if !usable {
                    continue;
                }
                let mut left = 0;
                let mut i = start;
                while i > 0 && free(row[i - 1]) && Self::adjacent(row[i - 1], row[i]) {
                    left += 1;
                    i -= 1;
                }
                let mut right = 0;
                let mut j = start + quantity - 1;
                while j + 1 < row.len() && free(row[j + 1]) && Self::adjacent(row[j], row[j + 1]) {
                    right += 1;
                    j += 1;
                }
                if left != 1 && right != 1 {
                    return Some(window.to_vec());
                }
                first_any.get_or_insert_with(|| window.to_vec());
            }
            if fallback.is_none() {
                fallback = first_any;
            }
        }
        fallback
    }

    fn total(places: &Places) -> i64 {
        match places {
            Places::Seats(seats) => seats.iter().map(|&s| price(SEATS[s].3)).sum(),
            Places::Ga(q) => i64::from(*q) * price("standing"),
        }
    }

    fn next_expiry(&self) -> Option<u64> {
        self.holds
            .values()
            .filter(|h| h.status == Status::Active)
            .map(|h| h.expires_at)
            .min()
    }

    /// Time, expiry and dedup pruning: what happens before any command.
    fn advance(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        for hold in self.holds.values_mut() {
            if hold.status == Status::Active && hold.expires_at <= self.clock {
                hold.status = Status::Expired;
            }
        }
        let clock = self.clock;
        self.dedup.retain(|_, (at, _)| clock - *at <= DAY_MS);
    }

    fn hold(&mut self, log_index: u64, who: &str, wanted: Wanted, ttl: Option<u64>) -> String {
        let ttl = ttl.unwrap_or(600_000);
        if !(1_000..=1_800_000).contains(&ttl) {
            return "invalid_request".to_owned();
        }
        // Shape, then names, then the limit, then availability.
        let count = match &wanted {
            Wanted::Seats(seats) => {
                if seats.is_empty() || seats.len() > 50 {
                    return "invalid_request".to_owned();
                }
                if (1..seats.len()).any(|i| seats[..i].contains(&seats[i])) {
                    return "invalid_request".to_owned();
                }
                if seats.contains(&SEATS.len()) {
                    return "unknown_seat Z-9-9".to_owned();
                }
                seats.len() as u32
            }
            Wanted::Best {
                section,
                tier,
                quantity,
            } => {
                if *quantity == 0 || *quantity > 50 {
                    return "invalid_request".to_owned();
                }
                if *section == "C" {
                    return "unknown_section".to_owned();
                }
                if *tier == Some("gold") {
                    return "unknown_tier".to_owned();
                }
                *quantity
            }
            Wanted::Ga { quantity, known_area } => {
                if *quantity == 0 || *quantity > 50 {
                    return "invalid_request".to_owned();
                }
                if !known_area {
                    return "unknown_area".to_owned();
                }
                *quantity
            }
        };
        let current = self.customer_places(who);
        if current + count > LIMIT {
            return format!("customer_limit {LIMIT} {current}");
        }
        let places = match wanted {
            Wanted::Seats(seats) => {
                let taken: Vec<String> = seats
                    .iter()
                    .filter(|&&s| self.seat_taken(s))
                    .map(|&s| seat_id(s))
                    .collect();
                if !taken.is_empty() {
                    return format!("seat_unavailable {}", taken.join(","));
                }
                let mut seats = seats;
                seats.sort();
                Places::Seats(seats)
            }
            Wanted::Best {
                section,
                tier,
                quantity,
            } => match self.best(section, tier, quantity as usize) {
                Some(seats) => Places::Seats(seats),
                None => return format!("not_enough_seats {quantity}"),
            },
            Wanted::Ga { quantity, .. } => {
                if quantity > GA_CAPACITY - self.ga_taken() {
                    return format!("not_enough_seats {quantity}");
                }
                Places::Ga(quantity)
            }
        };
        let described = match &places {
            Places::Seats(seats) => format!(
                "seats:{}",
                seats.iter().map(|&s| seat_id(s)).collect::<Vec<_>>().join(",")
            ),
            Places::Ga(q) => format!("ga:{q}"),
        };
        let expires_at = self.clock + ttl;
        let total = Self::total(&places);
        self.holds.insert(
            log_index,
            ModelHold {
                holder: who.to_owned(),
                places,
                ttl,
                expires_at,
                extended: false,
                status: Status::Active,
            },
        );
        format!("held {described} exp={expires_at} total={total}")
    }

    /// The hold if `who` may act on it now, or the rejection.
    fn usable_hold(&mut self, hold_id: u64, who: &str) -> Result<&mut ModelHold, String> {
        let hold = self.holds.get_mut(&hold_id).ok_or("unknown_hold")?;
        if hold.holder != who {
            return Err("wrong_holder".to_owned());
        }
        match hold.status {
            Status::Active => Ok(hold),
            Status::Expired => Err("hold_expired".to_owned()),
            Status::Released | Status::Confirmed => Err("hold_not_active".to_owned()),
        }
    }

    fn extend(&mut self, hold_id: u64, who: &str) -> String {
        match self.usable_hold(hold_id, who) {
            Err(rejection) => rejection,
            Ok(hold) if hold.extended => "extension_used".to_owned(),
            Ok(hold) => {
                hold.extended = true;
                hold.expires_at += hold.ttl;
                format!("extended exp={}", hold.expires_at)
            }
        }
    }

    fn release(&mut self, hold_id: u64, who: &str) -> String {
        match self.usable_hold(hold_id, who) {
            Err(rejection) => rejection,
            Ok(hold) => {
                hold.status = Status::Released;
                "released".to_owned()
            }
        }
    }

    fn confirm(&mut self, log_index: u64, hold_id: u64, who: &str) -> String {
        let hold = match self.usable_hold(hold_id, who) {
            Err(rejection) => return rejection,
            Ok(hold) => hold,
        };
        hold.status = Status::Confirmed;
        let places: Vec<Option<usize>> = match &hold.places {
            Places::Seats(seats) => seats.iter().map(|&s| Some(s)).collect(),
            Places::Ga(q) => vec![None; *q as usize],
        };
        let total = Self::total(&hold.places);
        let n = places.len();
        let order = ModelOrder {
            holder: who.to_owned(),
            checked_in: vec![None; n],
            places,
            cancelled: false,
        };
        self.orders.insert(log_index, order);
        format!("confirmed n={n} total={total}")
    }

    fn cancel(&mut self, order_id: u64, who: &str) -> String {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return "unknown_order".to_owned();
        };
        if order.holder != who {
            return "wrong_holder".to_owned();
        }
        if order.cancelled {
            return "order_not_active".to_owned();
        }
        if order.checked_in.iter().any(Option::is_some) {
            return "order_checked_in".to_owned();
        }
        order.cancelled = true;
        format!("cancelled n={}", order.places.len())
    }

    fn check_in(&mut self, code: &str) -> String {
        let Some(&(order_id, ordinal)) = self.codes.get(code) else {
            return "unknown_ticket".to_owned();
        };
        let order = self
            .orders
            .get_mut(&order_id)
            .expect("codes only name known orders");
        if order.cancelled {
            return "ticket_void".to_owned();
        }
        if let Some(first) = order.checked_in[ordinal] {
            return format!("already_checked_in {first}");
        }
        order.checked_in[ordinal] = Some(self.clock);
        format!("checked_in at={}", self.clock)
    }
}

/// The model's outcome for a command, computed only if the request id turns out
/// not to be a retry (a retry must not touch the model).
type Prediction = Box<dyn FnOnce(&mut Model) -> String>;

enum Wanted {
    Seats(Vec<usize>),
    Best {
        section: &'static str,
        tier: Option<&'static str>,
        quantity: u32,
    },
    Ga {
        quantity: u32,
        known_area: bool,
    },
}

// ----- The driver ----------------------------------------------------------------

fn customer(index: usize) -> CustomerId {
    CustomerId::new(CUSTOMERS[index]).unwrap()
}

struct Run {
    primary: BookingState,
    reference: BookingState,
    model: Model,
    mirror: BTreeMap<RecordKey, Record>,
    leader_now: i64,
    /// Every request id used so far, for retries.
    request_ids: Vec<String>,
    hold_ids: Vec<u64>,
    order_ids: Vec<u64>,
    ticket_codes: Vec<String>,
}

impl Run {
    fn new() -> Run {
        let mut run = Run {
            primary: BookingState::new(),
            reference: BookingState::new(),
            model: Model::default(),
            mirror: BTreeMap::new(),
            leader_now: 1_000,
            request_ids: Vec::new(),
            hold_ids: Vec::new(),
            order_ids: Vec::new(),
            ticket_codes: Vec::new(),
        };
        let create = Command::Event(
            EventId(1),
            EventCommand::Create {
                spec: venue(),
                ticket_salt: [42; 16],
                draft: false,
            },
        );
        let response = run.apply_both(1, "create", create);
        assert_eq!(
            summarize(&response),
            format!("created cap={}", SEATS.len() as u32 + GA_CAPACITY)
        );
        run.model.advance(1_000);
        run.model
            .dedup
            .insert("create".to_owned(), (1_000, summarize(&response)));
        run.request_ids.push("create".to_owned());
        run
    }

    fn apply_both(&mut self, log_index: u64, request_id: &str, command: Command) -> Response {
        let request = Request {
            request_id: RequestId::new(request_id).unwrap(),
            now_ms: self.leader_now.max(0) as u64,
            fingerprint: 0,
            command,
        };
        // Log entries are stored with postcard by raft-store.
        let bytes = postcard::to_stdvec(&request).expect("requests serialize");
        assert_eq!(
            postcard::from_bytes::<Request>(&bytes).expect("requests deserialize"),
            request
        );
        let response = self.primary.apply(log_index, &request);
        let again = self.reference.apply(log_index, &request);
        assert_eq!(
            response, again,
            "a reloaded state answered differently from one that never was"
        );
        response
    }

    fn flush(&mut self) {
        for (key, record) in self.primary.take_dirty() {
            match record {
                Some(record) => self.mirror.insert(key, record),
                None => self.mirror.remove(&key),
            };
        }
        let mirrored: Vec<(RecordKey, Record)> = self.mirror.clone().into_iter().collect();
        assert!(
            mirrored == self.primary.records(),
            "take_dirty() replayed onto a mirror differs from records()"
        );
    }

    fn pick<T: Clone>(list: &[T], index: &Index, missing: T) -> T {
        if list.is_empty() {
            missing
        } else {
            list[index.index(list.len())].clone()
        }
    }

    fn pick_recent<T: Clone>(list: &[T], pick: &Pick, missing: T) -> T {
        let from = if pick.recent {
            list.len().saturating_sub(RECENT)
        } else {
            0
        };
        Self::pick(&list[from..], &pick.index, missing)
    }

    fn step(&mut self, log_index: u64, step: &Step) {
        let mut edge_request = None;
        match &step.clock {
            Clock::By(dt) => self.leader_now += dt,
            Clock::ToNextExpiry => {
                if let Some(next) = self.model.next_expiry() {
                    self.leader_now = next as i64;
                }
            }
            Clock::ToDedupEdge { request, past } => {
                let remembered: Vec<(&String, &(u64, String))> = self.model.dedup.iter().collect();
                if !remembered.is_empty() {
                    let (request_id, (at, _)) = remembered[request.index(remembered.len())];
                    self.leader_now = (at + DAY_MS + u64::from(*past)) as i64;
                    edge_request = Some(request_id.clone());
                }
            }
        }
        let fresh = format!("r{log_index}");
        let request_id = match (&step.retry, edge_request) {
            (_, Some(edge)) => edge,
            (Some(index), None) => Self::pick(&self.request_ids, index, fresh),
            (None, None) => fresh,
        };
        let hold_ref = |run: &Run, pick: &Pick, stranger: Option<usize>| {
            let hold_id = Self::pick_recent(&run.hold_ids, pick, 999_999);
            let who = match stranger {
                Some(c) => CUSTOMERS[c].to_owned(),
                None => run
                    .model
                    .holds
                    .get(&hold_id)
                    .map_or("alice".to_owned(), |h| h.holder.clone()),
            };
            (hold_id, who)
        };
        let (command, expected_without_dedup): (Command, Prediction) = match &step.op {
            Op::Reload => {
                // raft-store drains take_dirty after every entry, so a reload never
                // loses pending changes; do the same before replacing the state.
                self.flush();
                let records = self.primary.records();
                self.primary = BookingState::from_records(records.clone()).expect("records() always loads");
                assert!(
                    self.primary.records() == records,
                    "from_records(records()) changed the records"
                );
                return;
            }
            Op::Flush => {
                self.flush();
                return;
            }
            Op::Hold {
                who,
                seats,
                ttl,
                unknown_event,
            } => {
                let ids = seats
                    .iter()
                    .map(|&s| {
                        if s == SEATS.len() {
                            "Z-9-9".to_owned()
                        } else {
                            seat_id(s)
                        }
                    })
                    .collect();
                let command = Command::Event(
                    EventId(if *unknown_event { 2 } else { 1 }),
                    EventCommand::Hold {
                        holder: customer(*who),
                        selection: Selection::Seats(ids),
                        ttl_ms: *ttl,
                    },
                );
                let (who, seats, ttl, unknown_event) = (CUSTOMERS[*who], seats.clone(), *ttl, *unknown_event);
                (
                    command,
                    Box::new(move |m: &mut Model| {
                        if unknown_event {
                            "unknown_event".to_owned()
                        } else {
                            m.hold(log_index, who, Wanted::Seats(seats), ttl)
                        }
                    }),
                )
            }
            Op::Best {
                who,
                section,
                tier,
                quantity,
                ttl,
            } => {
                let section = SECTIONS[*section];
                let tier = tier.map(|t| TIERS[t]);
                let command = Command::Event(
                    EventId(1),
                    EventCommand::Hold {
                        holder: customer(*who),
                        selection: Selection::BestAvailable {
                            section: section.to_owned(),
                            tier: tier.map(str::to_owned),
                            quantity: *quantity,
                        },
                        ttl_ms: *ttl,
                    },
                );
                let (who, quantity, ttl) = (CUSTOMERS[*who], *quantity, *ttl);
                (
                    command,
                    Box::new(move |m: &mut Model| {
                        m.hold(
                            log_index,
                            who,
                            Wanted::Best {
                                section,
                                tier,
                                quantity,
                            },
                            ttl,
                        )
                    }),
                )
            }
            Op::Ga {
                who,
                quantity,
                known_area,
                ttl,
            } => {
                let command = Command::Event(
                    EventId(1),
                    EventCommand::Hold {
                        holder: customer(*who),
                        selection: Selection::GeneralAdmission {
                            area: if *known_area { "floor" } else { "stage" }.to_owned(),
                            quantity: *quantity,
                        },
                        ttl_ms: *ttl,
                    },
                );
                let (who, quantity, known_area, ttl) = (CUSTOMERS[*who], *quantity, *known_area, *ttl);
                (
                    command,
                    Box::new(move |m: &mut Model| {
                        m.hold(log_index, who, Wanted::Ga { quantity, known_area }, ttl)
                    }),
                )
            }
            Op::Extend { hold, stranger } => {
                let (hold_id, who) = hold_ref(self, hold, *stranger);
                let command = Command::Event(
                    EventId(1),
                    EventCommand::ExtendHold {
                        hold_id: HoldId(hold_id),
                        holder: CustomerId::new(&who).unwrap(),
                    },
                );
                (command, Box::new(move |m: &mut Model| m.extend(hold_id, &who)))
            }
            Op::Release { hold, stranger } => {
                let (hold_id, who) = hold_ref(self, hold, *stranger);
                let command = Command::Event(
                    EventId(1),
                    EventCommand::ReleaseHold {
                        hold_id: HoldId(hold_id),
                        holder: CustomerId::new(&who).unwrap(),
                    },
                );
                (command, Box::new(move |m: &mut Model| m.release(hold_id, &who)))
            }
            Op::Confirm { hold, stranger } => {
                let (hold_id, who) = hold_ref(self, hold, *stranger);
                let command = Command::Event(
                    EventId(1),
                    EventCommand::ConfirmHold {
                        hold_id: HoldId(hold_id),
                        holder: CustomerId::new(&who).unwrap(),
                    },
                );
                (
                    command,
                    Box::new(move |m: &mut Model| m.confirm(log_index, hold_id, &who)),
                )
            }
            Op::Cancel { order, stranger } => {
                let order_id = Self::pick_recent(&self.order_ids, order, 999_999);
                let who = match stranger {
                    Some(c) => CUSTOMERS[*c].to_owned(),
                    None => self
                        .model
                        .orders
                        .get(&order_id)
                        .map_or("alice".to_owned(), |o| o.holder.clone()),
                };
                let command = Command::Event(
                    EventId(1),
                    EventCommand::CancelOrder {
                        order_id: OrderId(order_id),
                        holder: CustomerId::new(&who).unwrap(),
                    },
                );
                (command, Box::new(move |m: &mut Model| m.cancel(order_id, &who)))
            }
            Op::CheckIn { ticket, bogus } => {
                let code = if *bogus {
                    "1-0000000000000".to_owned()
                } else {
                    Self::pick_recent(&self.ticket_codes, ticket, "1-ZZZZZZZZZZZZ".to_owned())
                };
                let command = Command::Event(
                    EventId(1),
                    EventCommand::CheckIn {
                        code: TicketCode::new(&code).unwrap(),
                    },
                );
                (command, Box::new(move |m: &mut Model| m.check_in(&code)))
            }
            Op::Tick => (Command::Tick, Box::new(|_: &mut Model| "ticked".to_owned())),
            Op::CreateAgain => (
                Command::Event(
                    EventId(1),
                    EventCommand::Create {
                        spec: venue(),
                        ticket_salt: [0; 16],
                        draft: false,
                    },
                ),
                Box::new(|_: &mut Model| "event_exists".to_owned()),
            ),
        };
        let is_tick = matches!(command, Command::Tick);

        // The model's view of the four apply steps.
        self.model.advance(self.leader_now.max(0) as u64);
        let orders_before = self.model.orders.len();
        let expected = if is_tick {
            "ticked".to_owned()
        } else if let Some((_, stored)) = self.model.dedup.get(&request_id) {
            stored.clone()
        } else {
            let outcome = expected_without_dedup(&mut self.model);
            self.model
                .dedup
                .insert(request_id.clone(), (self.model.clock, outcome.clone()));
            outcome
        };

        let response = self.apply_both(log_index, &request_id, command);
        assert_eq!(
            summarize(&response),
            expected,
            "step {log_index} ({:?}) request {request_id}",
            step.op
        );
        if let Err(broken) = self.primary.check_invariants() {
            panic!(
                "invariant broken after step {log_index} ({:?}): {broken}",
                step.op
            );
        }
        assert_eq!(self.primary.clock_ms(), self.model.clock);
        assert_eq!(self.primary.next_hold_expiry(), self.model.next_expiry());

        if !is_tick {
            self.request_ids.push(request_id);
        }
        // Learn new ids only from commands the model actually executed.
        if let Ok(Success::Event(EventSuccess::Held(view))) = &response
            && view.hold_id == HoldId(log_index)
        {
            self.hold_ids.push(log_index);
        }
        if self.model.orders.len() > orders_before
            && let Ok(Success::Event(EventSuccess::Confirmed(view))) = &response
        {
            self.order_ids.push(log_index);
            for (ordinal, ticket) in view.tickets.iter().enumerate() {
                self.model
                    .codes
                    .insert(ticket.code.as_str().to_owned(), (log_index, ordinal));
                self.ticket_codes.push(ticket.code.as_str().to_owned());
            }
        }
    }

    fn finish(&mut self) {
        self.flush();
        let records = self.primary.records();
        assert!(
            records == self.reference.records(),
            "the reloaded and the never-reloaded state diverged"
        );
        let reloaded = BookingState::from_records(records.clone()).expect("records() always loads");
        assert!(reloaded.records() == records);
        // Records survive both serializations they meet: postcard (raft-store's
        // values) and JSON (debugging, the HTTP edge).
        for (key, record) in &records {
            let bytes = postcard::to_stdvec(record).expect("records serialize");
            let decoded: Record = postcard::from_bytes(&bytes).expect("records deserialize");
            assert!(&decoded == record, "{key:?} changed in a postcard round trip");
        }
        let json = serde_json::to_string(&records).expect("records serialize");
        let decoded: Vec<(RecordKey, Record)> = serde_json::from_str(&json).expect("records deserialize");
        assert!(decoded == records, "records changed in a JSON round trip");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn booking_state_agrees_with_the_model(steps in prop::collection::vec(step(), 100..300)) {
        let mut run = Run::new();
        for (i, step) in steps.iter().enumerate() {
            run.step(i as u64 + 2, step);
        }
        run.finish();
    }
}

/// The persistence hook on its own: take_dirty drained only once, at the end of
/// a long deterministic run, replays onto an empty map to exactly `records()`.
#[test]
fn take_dirty_accumulated_over_a_run_equals_records() {
    let mut state = BookingState::new();
    let mut index = 0;
    let mut apply = |state: &mut BookingState, now_ms: u64, command: Command| {
        index += 1;
        let request = Request {
            request_id: RequestId::new(&format!("q{index}")).unwrap(),
            now_ms,
            fingerprint: 0,
            command,
        };
        state.apply(index, &request)
    };
    let hold = |who: usize, seats: &[&str], ttl_ms| {
        Command::Event(
            EventId(1),
            EventCommand::Hold {
                holder: customer(who),
                selection: Selection::Seats(seats.iter().map(|s| s.to_string()).collect()),
                ttl_ms,
            },
        )
    };
    apply(
        &mut state,
        1_000,
        Command::Event(
            EventId(1),
            EventCommand::Create {
                spec: venue(),
                ticket_salt: [1; 16],
                draft: false,
            },
        ),
    )
    .unwrap();
    apply(&mut state, 1_000, hold(0, &["A-1-1", "A-1-2"], Some(1_000))).unwrap();
    apply(&mut state, 1_500, hold(1, &["B-1-1"], None)).unwrap();
    let Ok(Success::Event(EventSuccess::Confirmed(order))) = apply(
        &mut state,
        1_600,
        Command::Event(
            EventId(1),
            EventCommand::ConfirmHold {
                hold_id: HoldId(3),
                holder: customer(1),
            },
        ),
    ) else {
        panic!("confirm failed");
    };
    let code = order.tickets[0].code.clone();
    // Hold 2 expires here; the check-in lands in the same entry.
    apply(
        &mut state,
        5_000,
        Command::Event(EventId(1), EventCommand::CheckIn { code }),
    )
    .unwrap();
    apply(&mut state, 6_000, hold(2, &["A-1-1"], None)).unwrap();
    apply(
        &mut state,
        6_500,
        Command::Event(
            EventId(1),
            EventCommand::ConfirmHold {
                hold_id: HoldId(6),
                holder: customer(2),
            },
        ),
    )
    .unwrap();
    apply(
        &mut state,
        7_000,
        Command::Event(
            EventId(1),
            EventCommand::CancelOrder {
                order_id: OrderId(7),
                holder: customer(2),
            },
        ),
    )
    .unwrap();
    apply(&mut state, 7_000, hold(3, &["A-1-1", "A-1-2", "A-1-3"], None)).unwrap();
    // A day later the early requests are forgotten, which deletes their records.
    apply(&mut state, 7_000 + DAY_MS + 1, Command::Tick).unwrap();

    let mut replayed = BTreeMap::new();
    for (key, record) in state.take_dirty() {
        match record {
            Some(record) => replayed.insert(key, record),
            None => replayed.remove(&key),
        };
    }
    let replayed: Vec<(RecordKey, Record)> = replayed.into_iter().collect();
    assert_eq!(replayed, state.records());
    assert!(state.take_dirty().is_empty(), "take_dirty drains");
    // A day after the last request every request record was pruned.
    assert!(
        !replayed
            .iter()
            .any(|(key, _)| matches!(key, RecordKey::Request(_)))
    );
}
