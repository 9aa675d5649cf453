//! A Server-Sent Events client for tests: opens a `text/event-stream` response with
//! reqwest and hands out its events one at a time, every wait bounded by a timeout.
//!
//! Parsing follows the WHATWG EventSource rules and lives in [`SseParser`], a pure
//! bytes-in, events-out state machine that is tested without a server. [`SseStream`] only
//! feeds it the chunks reqwest reads and queues what it dispatches.
//!
//! Invariants:
//! - A chunk may end anywhere: inside a line, between the CR and the LF of one line end,
//!   inside a UTF-8 sequence. Bytes are buffered until their line is complete, and only
//!   complete lines are decoded, so no split changes what is parsed.
//! - The buffers are bounded: a line longer than [`MAX_LINE_BYTES`] or an event whose data
//!   grows past [`MAX_DATA_BYTES`] is an error, not an allocation.
//! - An event is dispatched only if it has data, as the spec says; an `id` in a block
//!   without data still moves the last event id.
//!
//! What it does not do: it never reconnects by itself (a test that wants to resume opens a
//! new stream with [`SseStream::last_event_id`], so every reconnect is visible), it ignores
//! `retry`, and it sets no timeout on the request. The `reqwest::Client` it is given must
//! not have a total timeout either (`ClientBuilder::timeout` counts the whole body, which
//! for a stream is its whole life); `read_timeout` is the one that suits streams.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::time::Instant;

/// Longest line accepted, in bytes, without its line end.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Most data one event may carry, in bytes, counting a line feed per `data` line.
pub const MAX_DATA_BYTES: usize = 8 * 1024 * 1024;

/// How long a refused stream's body may take to arrive for the error message: a wrong
/// but endless response must not hang the test.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id as of this event: set by an `id` field in this event or an
    /// earlier one, `None` if never set or reset by an empty `id`.
    pub id: Option<String>,
    /// The `event` field, or `message` when the event has none.
    pub event: String,
    /// The `data` lines joined by `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.data).with_context(|| {
            format!(
                "the data of a {:?} event is not JSON: {:?}",
                self.event, self.data
            )
        })
    }
}

/// The event-stream parser: bytes in, dispatched events out, no I/O.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The bytes of the line being received, before its line end.
    line: Vec<u8>,
    /// The last byte seen was a CR ending a line: an LF right after it (maybe first in
    /// the next chunk) belongs to the same line end.
    after_cr: bool,
    /// Whether a line was processed yet: a byte order mark is dropped from the first only.
    started: bool,
    /// The data buffer: each `data` value followed by a line feed.
    data: String,
    /// The event type buffer (`event` field); empty means `message`.
    event_type: String,
    /// The last event id buffer: set by `id` fields and kept across events.
    id_buffer: String,
    /// The last event id as of the last blank line: what a reconnect would send.
    last_event_id: String,
    /// Comment lines seen (servers send them as heartbeats).
    comments: usize,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser for a stream opened with `Last-Event-ID: last_event_id`: like a browser's
    /// EventSource after a reconnect, events without an `id` field carry the old one.
    pub fn resuming_after(last_event_id: Option<&str>) -> Self {
        let id = last_event_id.unwrap_or_default().to_owned();
        Self {
            id_buffer: id.clone(),
            last_event_id: id,
            ..Self::default()
        }
    }

    /// Feeds the next bytes of the stream; returns the events they complete, in order.
    /// An error (a line or an event too long) leaves the parser unusable for that stream.
    pub fn push(&mut self, bytes: &[u8]) -> anyhow::Result<Vec<SseEvent>> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some((&first, after_first)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = after_first;
                continue;
            }
            let Some(end) = rest.iter().position(|&byte| byte == b'\r' || byte == b'\n') else {
                self.extend_line(rest)?;
                break;
            };
            self.extend_line(&rest[..end])?;
            self.after_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if let Some(event) = self.process_line(&String::from_utf8_lossy(&line))? {
                events.push(event);
            }
            // Hand the allocation back for the next line.
            line.clear();
            self.line = line;
        }
        Ok(events)
    }

    /// The last event id as of the last blank line, `None` if never set or reset.
    pub fn last_event_id(&self) -> Option<&str> {
        non_empty(&self.last_event_id)
    }

    /// How many comment lines (`:` first) were seen.
    pub fn comments_seen(&self) -> usize {
        self.comments
    }

    fn extend_line(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        ensure!(
            self.line.len() + bytes.len() <= MAX_LINE_BYTES,
            "an event-stream line exceeds {MAX_LINE_BYTES} bytes"
        );
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Interprets one complete line; a blank line may dispatch an event.
    fn process_line(&mut self, line: &str) -> anyhow::Result<Option<SseEvent>> {
        let line = if self.started {
            line
        } else {
            self.started = true;
            line.strip_prefix('\u{feff}').unwrap_or(line)
        };
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            self.comments += 1;
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                ensure!(
                    self.data.len() + value.len() < MAX_DATA_BYTES,
                    "an event's data exceeds {MAX_DATA_BYTES} bytes"
                );
                self.data.push_str(value);
                self.data.push('\n');
            }
            // The spec ignores an id with a NUL, which could not be sent back in a header.
            "id" if !value.contains('\0') => self.id_buffer = value.to_owned(),
            // `retry` only matters to a client that reconnects by itself; other fields
            // are ignored by the spec.
            _ => {}
        }
        Ok(None)
    }

    /// The end of a block: records the id, and dispatches the event if it has data.
    fn dispatch(&mut self) -> Option<SseEvent> {
        self.last_event_id.clone_from(&self.id_buffer);
        let event_type = std::mem::take(&mut self.event_type);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return None;
        }
        // Every data line added a line feed; the last one is not part of the data.
        data.truncate(data.len() - 1);
        Some(SseEvent {
            id: self.last_event_id().map(str::to_owned),
            event: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data,
        })
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// An open event stream.
#[derive(Debug)]
pub struct SseStream {
    url: String,
    response: reqwest::Response,
    parser: SseParser,
    /// Events parsed from chunks already read but not yet returned by [`SseStream::next`].
    ready: VecDeque<SseEvent>,
    /// The id carried by the last event returned (or the one the stream was opened after).
    returned_id: Option<String>,
    /// The server ended the response.
    closed: bool,
}

impl SseStream {
    /// Opens `url` as an event stream, resuming after `last_event_id` if given and
    /// authenticated with `bearer` if given. Fails, with the status and the body, unless
    /// the answer is a 200 of type `text/event-stream`.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
        bearer: Option<&str>,
    ) -> anyhow::Result<SseStream> {
        let mut request = http.get(url).header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let is_stream = content_type.to_ascii_lowercase().starts_with("text/event-stream");
        if status != StatusCode::OK || !is_stream {
            let body = match tokio::time::timeout(ERROR_BODY_TIMEOUT, response.text()).await {
                Ok(Ok(body)) => body,
                Ok(Err(err)) => format!("<unreadable body: {err}>"),
                Err(_elapsed) => format!("<no complete body within {ERROR_BODY_TIMEOUT:?}>"),
            };
            bail!("GET {url}: expected 200 text/event-stream, got {status} {content_type:?}: {body}");
        }
        Ok(SseStream {
            url: url.to_owned(),
            response,
            parser: SseParser::resuming_after(last_event_id),
            ready: VecDeque::new(),
            returned_id: last_event_id.map(str::to_owned),
            closed: false,
        })
    }

    /// The next event; `Ok(None)` once the server has ended the stream. An error if no
    /// event is dispatched within `timeout`, or if reading or parsing fails. A timeout
    /// loses nothing: the stream can be asked again.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<SseEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.returned_id.clone_from(&event.id);
                return Ok(Some(event));
            }
            if self.closed {
                return Ok(None);
            }
            // `chunk` takes data only when it returns it, so dropping it at the deadline
            // loses nothing.
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .map_err(|_elapsed| {
                    anyhow!(
                        "timed out after {timeout:?} waiting for an event from {}",
                        self.url
                    )
                })?
                .with_context(|| format!("reading the event stream from {}", self.url))?;
            match chunk {
                Some(bytes) => self.ready.extend(self.parser.push(&bytes)?),
                None => self.closed = true,
            }
        }
    }

    /// The last event id seen: what to send as `Last-Event-ID` to resume after the events
    /// returned so far (or the one this stream was opened with, if none carried an id).
    pub fn last_event_id(&self) -> Option<&str> {
        if self.ready.is_empty() {
            // Everything parsed was returned, so the parser's id (which also follows
            // blocks without data) is exactly what was seen.
            self.parser.last_event_id()
        } else {
            // Events parsed but not yet returned were not seen: resuming after their
            // ids would skip them.
            self.returned_id.as_deref()
        }
    }

    /// How many comment lines (heartbeats) the server has sent so far.
    pub fn comments_seen(&self) -> usize {
        self.parser.comments_seen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    fn event(id: Option<&str>, event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: event.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn data_lines_are_joined_with_line_feeds() {
        let mut parser = SseParser::new();
        let events = parser
            .push(b"data: first\ndata:second\ndata\ndata:  two spaces\n\n")
            .unwrap();
        assert_eq!(events, [event(None, "message", "first\nsecond\n\n two spaces")]);
    }

    #[test]
    fn crlf_lf_and_cr_all_end_lines() {
        let mut parser = SseParser::new();
        let events = parser
            .push(b"event: seat\r\ndata: a\r\rdata: b\n\nid: 3\rdata: c\r\n\r\n")
            .unwrap();
        assert_eq!(
            events,
            [
                event(None, "seat", "a"),
                event(None, "message", "b"),
                event(Some("3"), "message", "c"),
            ]
        );
        // A CR LF split between two chunks is one line end, not a CR and then a blank line.
        assert!(parser.push(b"data: d\r").unwrap().is_empty());
        assert!(parser.push(b"\ndata: e\r").unwrap().is_empty());
        let events = parser.push(b"\n\r\n").unwrap();
        assert_eq!(events, [event(Some("3"), "message", "d\ne")]);
    }

    #[test]
    fn comments_are_counted_and_never_dispatched() {
        let mut parser = SseParser::new();
        let events = parser.push(b": heartbeat\n\n:\n: another\ndata: x\n\n").unwrap();
        assert_eq!(events, [event(None, "message", "x")]);
        assert_eq!(parser.comments_seen(), 3);
    }

    #[test]
    fn an_event_split_anywhere_is_reassembled() {
        let stream = "id: 7\r\nevent: ticket\r\ndata: {\"holder\":\"Zoë\"}\r\n\r\n".as_bytes();
        let expected = [event(Some("7"), "ticket", "{\"holder\":\"Zoë\"}")];
        // Every split point, among them between CR and LF and inside the two bytes of "ë".
        for split in 0..=stream.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&stream[..split]).unwrap();
            events.extend(parser.push(&stream[split..]).unwrap());
            assert_eq!(events, expected, "split at byte {split}");
        }
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in stream {
            events.extend(parser.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(events, expected, "one byte at a time");
        assert_eq!(events[0].json().unwrap()["holder"], "Zoë");
    }

    #[test]
    fn the_id_persists_and_a_block_without_data_only_records_it() {
        let mut parser = SseParser::new();
        assert_eq!(
            parser.push(b"id: 1\ndata: a\n\n").unwrap(),
            [event(Some("1"), "message", "a")]
        );
        assert_eq!(
            parser.push(b"data: b\n\n").unwrap(),
            [event(Some("1"), "message", "b")]
        );
        assert!(parser.push(b"id: 2\nevent: seat\n\n").unwrap().is_empty());
        assert_eq!(parser.last_event_id(), Some("2"));
        // The event type went with the block that had no data.
        assert_eq!(
            parser.push(b"data: c\n\n").unwrap(),
            [event(Some("2"), "message", "c")]
        );
        // An empty id resets it.
        assert_eq!(
            parser.push(b"id\ndata: d\n\n").unwrap(),
            [event(None, "message", "d")]
        );
        assert_eq!(parser.last_event_id(), None);
    }

    #[test]
    fn a_resumed_parser_starts_from_the_given_id() {
        let mut parser = SseParser::resuming_after(Some("41"));
        assert_eq!(parser.last_event_id(), Some("41"));
        assert_eq!(
            parser.push(b"data: x\n\n").unwrap(),
            [event(Some("41"), "message", "x")]
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped() {
        let mut parser = SseParser::new();
        let events = parser.push(b"\xEF\xBB\xBFdata: x\n\n").unwrap();
        assert_eq!(events, [event(None, "message", "x")]);
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut parser = SseParser::new();
        assert!(parser.push(&b"a".repeat(MAX_LINE_BYTES)).unwrap().is_empty());
        assert!(parser.push(b"a").is_err());
    }

    /// Serves one HTTP request on an ephemeral port: writes `pieces` one by one with a
    /// pause between them, then keeps the connection open for `hold_open`. Returns the
    /// URL and a task that yields the request head it read.
    async fn serve_once(pieces: Vec<&'static str>, hold_open: Duration) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}/v1/events/1/stream", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "the client closed before its request was complete");
                head.extend_from_slice(&buffer[..n]);
            }
            for piece in pieces {
                stream.write_all(piece.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(hold_open).await;
            String::from_utf8(head).unwrap()
        });
        (url, server)
    }

    fn http_client() -> reqwest::Client {
        // A proxy from the environment must not come between the test and 127.0.0.1.
        node::launcher::install_crypto_provider();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\n\
        Content-Type: text/event-stream; charset=utf-8\r\n\
        Cache-Control: no-cache\r\n\
        Connection: close\r\n\r\n";

    #[tokio::test]
    async fn a_stream_is_read_to_its_end() {
        let pieces = vec![
            STREAM_HEAD,
            ": hello\n\n",
            "id: 6\ndata: {\"n\":1}\n\n",
            "data: par",
            "tial\n\n: bye\n\n",
        ];
        let (url, server) = serve_once(pieces, Duration::ZERO).await;
        let http = http_client();
        let mut stream = SseStream::open(&http, &url, Some("5"), Some("t0ken"))
            .await
            .unwrap();
        assert_eq!(stream.last_event_id(), Some("5"));
        let wait = Duration::from_secs(5);

        let first = stream.next(wait).await.unwrap().unwrap();
        assert_eq!(first.id.as_deref(), Some("6"));
        assert_eq!(first.json().unwrap()["n"], 1);
        let second = stream.next(wait).await.unwrap().unwrap();
        assert_eq!(second, event(Some("6"), "message", "partial"));
        assert_eq!(stream.next(wait).await.unwrap(), None);
        assert_eq!(stream.last_event_id(), Some("6"));
        assert_eq!(stream.comments_seen(), 2);

        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(head.contains("accept: text/event-stream\r\n"), "{head}");
        assert!(head.contains("last-event-id: 5\r\n"), "{head}");
        assert!(head.contains("authorization: bearer t0ken\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_silent_stream_times_out_and_can_be_asked_again() {
        // The heartbeat comes with the head, so it has surely arrived before the first timeout.
        let head_and_heartbeat = "HTTP/1.1 200 OK\r\n\
            Content-Type: text/event-stream\r\n\r\n\
            : heartbeat\n\n";
        let pieces = vec![head_and_heartbeat];
        let (url, _server) = serve_once(pieces, Duration::from_secs(30)).await;
        let http = http_client();
        let mut stream = SseStream::open(&http, &url, None, None).await.unwrap();
        for _ in 0..2 {
            let err = stream.next(Duration::from_millis(100)).await.unwrap_err();
            assert!(err.to_string().contains("timed out"), "{err:#}");
        }
        assert_eq!(stream.comments_seen(), 1);
        assert_eq!(stream.last_event_id(), None);
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_with_status_and_body() {
        let refusal = "HTTP/1.1 404 Not Found\r\n\
            Content-Type: text/plain\r\n\
            Content-Length: 13\r\n\
            Connection: close\r\n\r\n\
            no such event";
        let (url, _server) = serve_once(vec![refusal], Duration::ZERO).await;
        let err = SseStream::open(&http_client(), &url, None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("404") && err.contains("no such event"), "{err}");
    }
}
