//! Golden scripts for the booking state machine.
//!
//! Each file in `tests/scripts/` is a sequence of commands; after each command
//! come its expected output lines, each prefixed with `> `. The runner applies
//! the commands to a fresh `BookingState` and compares the output it renders
//! with the expected lines. Run with `UPDATE_GOLDEN=1` to rewrite the expected
//! output instead (then review the diff).
//!
//! Beyond the rendered output, the runner checks after every command, and fails
//! regardless of `UPDATE_GOLDEN`: `check_invariants()` holds; the changes from
//! `take_dirty()`, applied to a mirror of the records, reproduce `records()`; and
//! `from_records(records())` yields the same records again.
//!
//! Command language (one command per line; `#` starts a comment line):
//!
//! ```text
//! create <event> demo                                 the demo hall
//! create <event> grid sections=S rows=R seats=N [tiers=a:7500,b:4500]
//! create <event> rows A/1=1-4,6-9 A/2=1-3@vip [ga=floor:5[@tier]] [tiers=std:1000,vip:2000]
//! hold <event> <holder> seats <seat>...                specific seats
//! best <event> <holder> <section> <quantity> [tier=T]  best available
//! ga <event> <holder> <area> <quantity>                general admission
//! extend|release|confirm <event> <hold> <holder>
//! cancel <event> <order> <holder>
//! checkin <event> <ticket>
//! tick
//! view <event> | show-hold <event> <hold> | show-order <event> <order> | show-ticket <event> <ticket>
//! clock                                                clock and next expiry
//! dirty                                                the records the previous command changed
//! reload                                               replace the state by from_records(records())
//! ```
//!
//! Options on any command: `at=<ms>` or `at=+<ms>` sets the script clock (it
//! stays until changed; it starts at 0), `req=<id>` sets the request id (default
//! `req-<log index>`). Creation options: `max=<n>` (customer limit), `salt=<n>`
//! (first salt byte, default the event id). Holds take `ttl=<ms>` and `as=<name>`;
//! `confirm` takes `as=<name>`, naming the order and its tickets `<name>.0`,
//! `<name>.1`, … Holds and orders may be referred to by name or number. Each
//! command that reaches the state machine gets the next log index, from 1.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use booking::{
    BookingState, Command, Currency, CustomerId, EventCommand, EventId, EventKey, EventSpec, EventSuccess,
    EventValue, GaAreaSpec, HoldId, HoldView, Money, OrderId, OrderView, PriceTier, Record, RecordKey,
    Request, RequestId, Response, RowSpec, SeatSpec, SectionSpec, Selection, Success, TicketCode, TicketView,
};

#[test]
fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scripts exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());

    let mut failures = Vec::new();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let original = std::fs::read_to_string(path).expect("readable script");
        let regenerated = run_script(&name, &original);
        if regenerated == original {
            continue;
        }
        if update {
            std::fs::write(path, &regenerated).expect("writable script");
        } else {
            failures.push(format!("{name}:\n{}", first_difference(&original, &regenerated)));
        }
    }
    assert!(
        failures.is_empty(),
        "golden output differs (rerun with UPDATE_GOLDEN=1 to accept):\n\n{}",
        failures.join("\n\n")
    );
}

/// Shows the first line where expected and actual differ, with some context.
fn first_difference(expected: &str, actual: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let at = expected
        .iter()
        .zip(&actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let from = at.saturating_sub(3);
    let mut out = String::new();
    for (label, lines) in [("expected", &expected), ("actual", &actual)] {
        let _ = writeln!(out, "--- {label} (from line {}):", from + 1);
        for line in lines.iter().skip(from).take(8) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// Runs a script and returns it with freshly rendered output blocks.
fn run_script(name: &str, text: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('>') {
            continue; // Old output; replaced below.
        }
        out.push_str(line);
        out.push('\n');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let where_ = format!("{name}:{}", number + 1);
        let rendered = runner
            .run(trimmed)
            .unwrap_or_else(|e| panic!("{where_}: bad script line {trimmed:?}: {e}"));
        if let Err(broken) = runner.check() {
            panic!("{where_}: after {trimmed:?}: {broken}");
        }
        for output in rendered.lines() {
            out.push_str("> ");
            out.push_str(output);
            out.push('\n');
        }
    }
    out
}

struct Runner {
    state: BookingState,
    next_log_index: u64,
    now: u64,
    /// Named holds and orders, from `as=`.
    ids: BTreeMap<String, u64>,
    /// Named tickets, `<order name>.<ordinal>`.
    tickets: BTreeMap<String, TicketCode>,
    /// What `take_dirty` has reported so far, applied as upserts and deletes.
    mirror: BTreeMap<RecordKey, Record>,
    last_dirty: Vec<(RecordKey, Option<Record>)>,
}

/// A command line split into positional words and `key=value` options.
struct Line<'a> {
    words: Vec<&'a str>,
    options: BTreeMap<&'a str, &'a str>,
}

impl<'a> Line<'a> {
    /// Options are `key=value` tokens whose key is a plain lower-case word;
    /// tokens like `A/1=1-4` are positional.
    fn parse(line: &'a str) -> Line<'a> {
        let mut words = Vec::new();
        let mut options = BTreeMap::new();
        for token in line.split_whitespace() {
            match token.split_once('=') {
                Some((key, value)) if key.bytes().all(|b| b.is_ascii_lowercase()) => {
                    options.insert(key, value);
                }
                _ => words.push(token),
            }
        }
        Line { words, options }
    }

    fn word(&self, index: usize) -> Result<&'a str, String> {
        self.words
            .get(index)
            .copied()
            .ok_or_else(|| format!("missing argument {index}"))
    }

    fn number(&self, index: usize) -> Result<u64, String> {
        let word = self.word(index)?;
        word.parse().map_err(|_| format!("{word:?} is not a number"))
    }
}

impl Runner {
    fn new() -> Self {
        Runner {
            state: BookingState::new(),
            next_log_index: 1,
            now: 0,
            ids: BTreeMap::new(),
            tickets: BTreeMap::new(),
            mirror: BTreeMap::new(),
            last_dirty: Vec::new(),
        }
    }

    fn run(&mut self, text: &str) -> Result<String, String> {
        let line = Line::parse(text);
        if let Some(at) = line.options.get("at") {
            self.now = match at.strip_prefix('+') {
                Some(delta) => self.now + delta.parse::<u64>().map_err(|e| e.to_string())?,
                None => at.parse().map_err(|e: std::num::ParseIntError| e.to_string())?,
            };
        }
        let event = || line.number(1).map(EventId);
        let customer = |index| CustomerId::new(line.word(index)?).map_err(|e| e.to_string());
        let hold = |index| self.reference(line.word(index)?).map(HoldId);
        let order = |index| self.reference(line.word(index)?).map(OrderId);
        let ttl_ms = line
            .options
            .get("ttl")
            .map(|t| t.parse::<u64>())
            .transpose()
            .map_err(|e| e.to_string())?;
        let command = match line.word(0)? {
            "create" => {
                let event_id = event()?;
                let salt = match line.options.get("salt") {
                    Some(salt) => salt.parse::<u8>().map_err(|e| e.to_string())?,
                    None => event_id.0 as u8,
                };
                Command::Event(
                    event_id,
                    EventCommand::Create {
                        spec: build_spec(&line)?,
                        ticket_salt: [salt; 16],
                        draft: false,
                    },
                )
            }
            "hold" => {
                if line.word(3)? != "seats" {
                    return Err("expected `hold <event> <holder> seats <seat>...`".to_owned());
                }
                let seats = line.words[4..].iter().map(|s| s.to_string()).collect();
                Command::Event(
                    event()?,
                    EventCommand::Hold {
                        holder: customer(2)?,
                        selection: Selection::Seats(seats),
                        ttl_ms,
                    },
                )
            }
            "best" => Command::Event(
                event()?,
                EventCommand::Hold {
                    holder: customer(2)?,
                    selection: Selection::BestAvailable {
                        section: line.word(3)?.to_owned(),
                        tier: line.options.get("tier").map(|t| t.to_string()),
                        quantity: line.number(4)? as u32,
                    },
                    ttl_ms,
                },
            ),
            "ga" => Command::Event(
                event()?,
                EventCommand::Hold {
                    holder: customer(2)?,
                    selection: Selection::GeneralAdmission {
                        area: line.word(3)?.to_owned(),
                        quantity: line.number(4)? as u32,
                    },
                    ttl_ms,
                },
            ),
            "extend" => Command::Event(
                event()?,
                EventCommand::ExtendHold {
                    hold_id: hold(2)?,
                    holder: customer(3)?,
                },
            ),
            "release" => Command::Event(
                event()?,
                EventCommand::ReleaseHold {
                    hold_id: hold(2)?,
                    holder: customer(3)?,
                },
            ),
            "confirm" => Command::Event(
                event()?,
                EventCommand::ConfirmHold {
                    hold_id: hold(2)?,
                    holder: customer(3)?,
                },
            ),
            "cancel" => Command::Event(
                event()?,
                EventCommand::CancelOrder {
                    order_id: order(2)?,
                    holder: customer(3)?,
                },
            ),
            "checkin" => Command::Event(
                event()?,
                EventCommand::CheckIn {
                    code: self.ticket(line.word(2)?)?,
                },
            ),
            "tick" => Command::Tick,
            "view" => {
                return Ok(self
                    .state
                    .event_view(event()?)
                    .map_or("none".to_owned(), |v| render_event(&v)));
            }
            "show-hold" => {
                return Ok(self
                    .state
                    .hold_view(event()?, hold(2)?)
                    .map_or("none".to_owned(), |v| render_hold(&v)));
            }
            "show-order" => {
                return Ok(self
                    .state
                    .order_view(event()?, order(2)?)
                    .map_or("none".to_owned(), |v| render_order(&v)));
            }
            "show-ticket" => {
                let code = self.ticket(line.word(2)?)?;
                return Ok(self
                    .state
                    .ticket_view(event()?, &code)
                    .map_or("none".to_owned(), |v| render_ticket(&v)));
            }
            "clock" => {
                let next = self
                    .state
                    .next_hold_expiry()
                    .map_or("none".to_owned(), |t| t.to_string());
                return Ok(format!("clock={} next_expiry={next}", self.state.clock_ms()));
            }
            "dirty" => return Ok(render_dirty(&self.last_dirty)),
            "reload" => {
                let records = self.state.records();
                let count = records.len();
                self.state = BookingState::from_records(records).map_err(|e| e.to_string())?;
                return Ok(format!("reloaded {count} records"));
            }
            other => return Err(format!("unknown command {other:?}")),
        };
        let log_index = self.next_log_index;
        self.next_log_index += 1;
        let request_id = match line.options.get("req") {
            Some(id) => RequestId::new(id).map_err(|e| e.to_string())?,
            None => RequestId::new(&format!("req-{log_index}")).map_err(|e| e.to_string())?,
        };
        let request = Request {
            request_id,
            now_ms: self.now,
            fingerprint: 0,
            command,
        };
        let response = self.state.apply(log_index, &request);
        self.name_results(line.options.get("as").copied(), &response);
        self.last_dirty = self.state.take_dirty();
        for (key, record) in &self.last_dirty {
            match record {
                Some(record) => self.mirror.insert(key.clone(), record.clone()),
                None => self.mirror.remove(key),
            };
        }
        Ok(render_response(&response))
    }

    fn name_results(&mut self, name: Option<&str>, response: &Response) {
        let Some(name) = name else { return };
        match response {
            Ok(Success::Event(EventSuccess::Held(view))) => {
                self.ids.insert(name.to_owned(), view.hold_id.0);
            }
            Ok(Success::Event(EventSuccess::Confirmed(view))) => {
                self.ids.insert(name.to_owned(), view.order_id.0);
                for (ordinal, ticket) in view.tickets.iter().enumerate() {
                    self.tickets
                        .insert(format!("{name}.{ordinal}"), ticket.code.clone());
                }
            }
            _ => {}
        }
    }

    fn reference(&self, word: &str) -> Result<u64, String> {
        match self.ids.get(word) {
            Some(&id) => Ok(id),
            None => word
                .parse()
                .map_err(|_| format!("{word:?} is neither a name nor a number")),
        }
    }

    fn ticket(&self, word: &str) -> Result<TicketCode, String> {
        match self.tickets.get(word) {
            Some(code) => Ok(code.clone()),
            None => TicketCode::new(word).map_err(|e| e.to_string()),
        }
    }

    /// The checks every command must pass, whatever its output.
    fn check(&self) -> Result<(), String> {
        self.state.check_invariants()?;
        let records = self.state.records();
        let mirrored: Vec<(RecordKey, Record)> = self.mirror.clone().into_iter().collect();
        if mirrored != records {
            return Err("take_dirty() replayed onto a mirror does not reproduce records()".to_owned());
        }
        let reloaded = BookingState::from_records(records.clone()).map_err(|e| e.to_string())?;
        if reloaded.records() != records {
            return Err("from_records(records()).records() != records()".to_owned());
        }
        Ok(())
    }
}

fn build_spec(line: &Line<'_>) -> Result<EventSpec, String> {
    let eur = Currency::new("EUR").map_err(|e| e.to_string())?;
    let tiers: Vec<PriceTier> = match line.options.get("tiers") {
        Some(list) => list
            .split(',')
            .map(|tier| {
                let (name, price) = tier.split_once(':').ok_or("tiers are name:price")?;
                let amount = price.parse().map_err(|_| "bad tier price")?;
                Ok(PriceTier {
                    name: name.to_owned(),
                    price: Money::new(amount, eur),
                })
            })
            .collect::<Result<_, &str>>()?,
        None => vec![PriceTier {
            name: "std".to_owned(),
            price: Money::new(1000, eur),
        }],
    };
    let default_tier = tiers.first().map(|t| t.name.clone()).unwrap_or_default();
    let mut spec = match line.word(2)? {
        "demo" => EventSpec::demo_venue(),
        "grid" => {
            let number = |key: &str| -> Result<u32, String> {
                line.options
                    .get(key)
                    .ok_or(format!("grid needs {key}="))?
                    .parse()
                    .map_err(|_| format!("bad {key}"))
            };
            EventSpec::grid(
                "Grid",
                eur,
                number("sections")?,
                number("rows")?,
                number("seats")?,
                tiers,
            )
        }
        "rows" => {
            let mut spec = EventSpec {
                name: "Custom".to_owned(),
                currency: eur,
                tiers,
                sections: Vec::new(),
                ga_areas: Vec::new(),
                max_tickets_per_customer: None,
                sales_start_ms: None,
                sales_end_ms: None,
                max_active_holds_per_customer: None,
            };
            for word in &line.words[3..] {
                let (place, segments) = word.split_once('=').ok_or("rows are SECTION/ROW=SEGMENTS")?;
                let (section, row) = place.split_once('/').ok_or("rows are SECTION/ROW=SEGMENTS")?;
                let mut seats = Vec::new();
                for segment in segments.split(',') {
                    let (range, tier) = segment.split_once('@').unwrap_or((segment, &default_tier));
                    let (first, last) = range.split_once('-').unwrap_or((range, range));
                    let first: u32 = first.parse().map_err(|_| "bad seat number")?;
                    let last: u32 = last.parse().map_err(|_| "bad seat number")?;
                    seats.extend((first..=last).map(|number| SeatSpec {
                        number,
                        tier: tier.to_owned(),
                    }));
                }
                let row = RowSpec {
                    name: row.to_owned(),
                    seats,
                };
                match spec.sections.iter_mut().find(|s| s.name == section) {
                    Some(existing) => existing.rows.push(row),
                    None => spec.sections.push(SectionSpec {
                        name: section.to_owned(),
                        rows: vec![row],
                    }),
                }
            }
            if let Some(ga) = line.options.get("ga") {
                let (area, rest) = ga.split_once(':').ok_or("ga is name:capacity[@tier]")?;
                let (capacity, tier) = rest.split_once('@').unwrap_or((rest, &default_tier));
                let capacity = capacity.parse().map_err(|_| "bad GA capacity")?;
                spec.ga_areas.push(GaAreaSpec {
                    name: area.to_owned(),
                    capacity,
                    tier: tier.to_owned(),
                });
            }
            spec
        }
        other => return Err(format!("unknown venue kind {other:?}")),
    };
    if let Some(max) = line.options.get("max") {
        spec.max_tickets_per_customer = Some(max.parse().map_err(|_| "bad max")?);
    }
    Ok(spec)
}

fn render_response(response: &Response) -> String {
    match response {
        Ok(Success::Event(EventSuccess::Created { event_id, capacity })) => {
            format!("ok event_created event={event_id} capacity={capacity}")
        }
        Ok(Success::Event(EventSuccess::Held(view))) => format!("ok held {}", render_hold(view)),
        Ok(Success::Event(EventSuccess::Extended(view))) => format!("ok extended {}", render_hold(view)),
        Ok(Success::Event(EventSuccess::Released { hold_id })) => format!("ok released hold={hold_id}"),
        Ok(Success::Event(EventSuccess::Confirmed(view))) => format!("ok confirmed {}", render_order(view)),
        Ok(Success::Event(EventSuccess::OrderCancelled(view))) => {
            format!("ok cancelled {}", render_order(view))
        }
        Ok(Success::Event(EventSuccess::CheckedIn { code, at_ms })) => {
            format!("ok checked_in code={code} at={at_ms}")
        }
        Ok(Success::Ticked) => "ok ticked".to_owned(),
        // The golden scripts drive bookings; the cluster map has its own unit tests.
        Ok(other) => format!("ok {other:?}"),
        Err(rejection) => format!("err {}: {rejection}", rejection.code()),
    }
}

fn render_hold(view: &HoldView) -> String {
    let status = match view.status {
        booking::HoldStatus::Active => "active",
        booking::HoldStatus::Released => "released",
        booking::HoldStatus::Expired => "expired",
        booking::HoldStatus::Confirmed => "confirmed",
    };
    let mut out = format!("hold={} holder={} status={status}", view.hold_id, view.holder);
    if !view.seats.is_empty() {
        let _ = write!(out, " seats={}", view.seats.join(","));
    }
    if let Some(ga) = &view.ga {
        let _ = write!(out, " ga={}:{}", ga.area, ga.quantity);
    }
    let _ = write!(
        out,
        " created={} expires={}",
        view.created_at_ms, view.expires_at_ms
    );
    if view.extended {
        out.push_str(" extended");
    }
    if let Some(order) = view.order_id {
        let _ = write!(out, " order={order}");
    }
    let _ = write!(out, " total={}", view.total);
    out
}

fn render_order(view: &OrderView) -> String {
    let status = match view.status {
        booking::OrderStatus::Confirmed => "confirmed",
        booking::OrderStatus::Cancelled => "cancelled",
    };
    let mut out = format!(
        "order={} hold={} holder={} status={status} created={}",
        view.order_id, view.hold_id, view.holder, view.created_at_ms
    );
    if let Some(at) = view.cancelled_at_ms {
        let _ = write!(out, " cancelled={at}");
    }
    let _ = write!(out, " total={}", view.total);
    for ticket in &view.tickets {
        let _ = write!(out, "\n  {}", render_ticket(ticket));
    }
    out
}

fn render_ticket(view: &TicketView) -> String {
    let place = match (&view.seat, &view.ga_area) {
        (Some(seat), _) => format!("seat={seat}"),
        (None, Some(area)) => format!("ga={area}"),
        (None, None) => "nowhere".to_owned(),
    };
    let status = match view.status {
        booking::TicketStatus::Valid => "valid",
        booking::TicketStatus::CheckedIn => "checked_in",
        booking::TicketStatus::Void => "void",
    };
    let mut out = format!(
        "ticket {} order={} {place} tier={} price={} status={status}",
        view.code, view.order_id, view.tier, view.price
    );
    if let Some(at) = view.checked_in_at_ms {
        let _ = write!(out, " checked_in_at={at}");
    }
    out
}

/// The seat map as a picture: one character per seat (`.` available, `h` held,
/// `s` sold), a space where the numbering jumps (an aisle).
fn render_event(view: &booking::EventView) -> String {
    let mut out = format!(
        "event {} {:?} capacity={} available={} held={} sold={} max={}",
        view.event_id,
        view.name,
        view.capacity,
        view.available,
        view.held,
        view.sold,
        view.max_tickets_per_customer
            .map_or("none".to_owned(), |m| m.to_string())
    );
    for tier in &view.tiers {
        let _ = write!(
            out,
            "\ntier {} price={} capacity={} available={}",
            tier.name, tier.price, tier.capacity, tier.available
        );
    }
    for section in &view.sections {
        for row in &section.rows {
            let _ = write!(out, "\nrow {}-{} ", section.name, row.name);
            let mut previous: Option<u32> = None;
            for seat in &row.seats {
                if previous.is_some_and(|p| p.abs_diff(seat.number) != 1) {
                    out.push(' ');
                }
                previous = Some(seat.number);
                out.push(match seat.status {
                    booking::SeatStatusView::Available => '.',
                    booking::SeatStatusView::Held => 'h',
                    booking::SeatStatusView::Sold => 's',
                });
            }
        }
    }
    for area in &view.ga_areas {
        let _ = write!(
            out,
            "\nga {} tier={} capacity={} available={}",
            area.name, area.tier, area.capacity, area.available
        );
    }
    out
}

/// Where a key's kind came in the flat key order the scripts were written
/// with (every event's seats, then every event's holds, …): the scripts
/// list changes kind by kind, whatever the store's key order.
fn kind_rank(key: &RecordKey) -> u8 {
    match key {
        RecordKey::Clock => 0,
        RecordKey::Event(_, kind) => match kind {
            EventKey::Event => 1,
            EventKey::Seat(_) => 2,
            EventKey::Ga(_) => 3,
            EventKey::Hold(_) => 4,
            EventKey::Order(_) => 5,
            EventKey::Ticket(_) => 6,
            EventKey::Customer(_) => 7,
            EventKey::Payment(_) => 8,
            EventKey::Waitlist(_) => 9,
            EventKey::Notice(..) => 10,
        },
        RecordKey::Request(_) => 11,
        RecordKey::Map(_) => 12,
        RecordKey::Catalog(_) => 13,
        RecordKey::Account(_) => 14,
    }
}

fn render_dirty(changes: &[(RecordKey, Option<Record>)]) -> String {
    if changes.is_empty() {
        return "nothing".to_owned();
    }
    let mut changes: Vec<&(RecordKey, Option<Record>)> = changes.iter().collect();
    changes.sort_by(|a, b| (kind_rank(&a.0), &a.0).cmp(&(kind_rank(&b.0), &b.0)));
    let lines: Vec<String> = changes
        .into_iter()
        .map(|(key, record)| {
            let key = match key {
                RecordKey::Clock => "clock".to_owned(),
                RecordKey::Event(e, EventKey::Event) => format!("event {e}"),
                RecordKey::Event(e, EventKey::Seat(s)) => format!("seat {e}/{s}"),
                RecordKey::Event(e, EventKey::Ga(a)) => format!("ga {e}/{a}"),
                RecordKey::Event(e, EventKey::Hold(h)) => format!("hold {e}/{h}"),
                RecordKey::Event(e, EventKey::Order(o)) => format!("order {e}/{o}"),
                RecordKey::Event(e, EventKey::Ticket(t)) => format!("ticket {e}/{t}"),
                RecordKey::Event(e, EventKey::Customer(c)) => format!("customer {e}/{c}"),
                RecordKey::Request(r) => format!("request {r}"),
                other => format!("{other:?}"),
            };
            let value = match record {
                None => "deleted".to_owned(),
                Some(Record::Clock(ms)) => format!("{ms}"),
                Some(Record::Event(EventValue::Event(_))) => "created".to_owned(),
                Some(Record::Event(EventValue::Seat(seat))) => format!("{seat:?}"),
                Some(Record::Event(EventValue::Ga(ga))) => format!("held={} sold={}", ga.held, ga.sold),
                Some(Record::Event(EventValue::Hold(hold))) => format!("{:?}", hold.state),
                Some(Record::Event(EventValue::Order(order))) => match order.cancelled_at_ms {
                    None => "confirmed".to_owned(),
                    Some(at) => format!("cancelled at {at}"),
                },
                Some(Record::Event(EventValue::Ticket(ticket))) => match ticket.checked_in_at_ms {
                    None => "issued".to_owned(),
                    Some(at) => format!("checked in at {at}"),
                },
                Some(Record::Event(EventValue::Customer(customer))) => format!("places={}", customer.places),
                Some(Record::Request(request)) => match &request.outcome {
                    Ok(_) => format!("ok at {}", request.at_ms),
                    Err(rejection) => format!("{} at {}", rejection.code(), request.at_ms),
                },
                Some(other) => format!("{other:?}"),
            };
            format!("{key}: {value}")
        })
        .collect();
    lines.join("\n")
}
