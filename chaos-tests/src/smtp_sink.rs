//! A local SMTP server that records every message it is given, for tests of the mail the
//! cluster sends (ticket confirmations, password resets) and of how the sender retries.
//!
//! [`SmtpSink::start`] listens on an ephemeral port of 127.0.0.1 and speaks the part of
//! RFC 5321 that a plain client uses: `EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA`, `RSET`, `NOOP`
//! and `QUIT`, case-insensitively, with CR LF or bare LF line ends. Each message becomes a
//! [`ReceivedMail`]: its envelope, the two headers tests look for (`Message-ID`, `Subject`)
//! and its body.
//!
//! Invariants:
//! - A message is recorded when its final `.` line arrives, before the `250` that accepts
//!   it is written. A sender killed while it waits for that reply has delivered without
//!   knowing it; its retry then delivers again. That is at-least-once delivery, and
//!   [`SmtpSink::distinct_by_message_id`] is how a test tells duplicates from losses.
//!   [`SmtpSink::stall_replies`] holds the reply back to open that window on purpose.
//! - Memory per connection is bounded: a line longer than [`MAX_LINE_BYTES`] closes the
//!   connection, and a message larger than the advertised `SIZE` is read to its end but
//!   not kept.
//! - The lock on the recorded messages is never held across an `.await`.
//! - Dropping the [`SmtpSink`] stops the listener and every connection it accepted.
//!
//! What it does not do: no TLS (`STARTTLS` is never advertised), no authentication, no
//! `PIPELINING` (so a client waits for each reply, and a stalled reply holds it exactly at
//! the end of `DATA`), no relaying, and no MIME decoding beyond [`ReceivedMail::body_text`].

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The name the sink gives itself in its greeting and its `EHLO` reply.
const SERVER_NAME: &str = "boxoffice-test-sink";

/// Longest line accepted, without its line end. RFC 5321 allows 512 octets for a command
/// and 1000 for a line of text; the margin is for lenient clients, the bound for memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest message kept, line ends included. Advertised as `SIZE` in the `EHLO` reply so
/// that a client which checks sizes learns the limit before it sends.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// The key under which [`SmtpSink::distinct_by_message_id`] counts messages that have no
/// `Message-ID` header.
pub const NO_MESSAGE_ID: &str = "<none>";

/// Interval between two looks at the stall flag while a reply is held back.
const STALL_POLL: Duration = Duration::from_millis(50);

/// Longest a reply is held back: a test that forgets to release the stall still ends.
const MAX_STALL: Duration = Duration::from_secs(60);

/// Interval between two looks at the recorded messages in [`SmtpSink::wait_for`].
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Pause after a failed `accept` (typically out of file descriptors), so that the loop
/// waits for connections to close instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for a bounce (`<>`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets, in the order given.
    pub to: Vec<String>,
    /// The `Message-ID` header, trimmed, angle brackets kept.
    pub message_id: Option<String>,
    /// The `Subject` header, unfolded and trimmed; encoded words (RFC 2047) stay encoded.
    pub subject: Option<String>,
    /// Everything after the first empty line, still in its transfer encoding.
    pub body: String,
    /// The whole message after dot-unstuffing, with every line ended by CR LF.
    pub raw: String,
}

impl ReceivedMail {
    /// Splits `raw` into headers and body and picks out the headers tests look for.
    fn parse(from: String, to: Vec<String>, raw: String) -> Self {
        let (head, body) = split_head_body(&raw);
        let headers = unfold_headers(head);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let message_id = header("Message-ID");
        let subject = header("Subject");
        let body = body.to_owned();
        Self {
            from,
            to,
            message_id,
            subject,
            body,
            raw,
        }
    }

    /// The body with quoted-printable undone: soft line breaks (`=` at the end of a line)
    /// joined and `=XX` escapes decoded, so that a test can search for plain words.
    ///
    /// It is applied to the whole body whatever the parts declare, because a multipart
    /// message mixes encodings; a 7bit body is unchanged unless it happens to contain `=`
    /// followed by two hex digits or by a line end.
    pub fn body_text(&self) -> String {
        decode_quoted_printable(&self.body)
    }
}

/// The state the sink shares with its connection tasks.
#[derive(Debug, Clone, Default)]
struct Shared {
    /// Every delivery, in arrival order, duplicates included.
    mail: Arc<Mutex<Vec<ReceivedMail>>>,
    /// While set, the `250` after `DATA` is held back (see [`SmtpSink::stall_replies`]).
    stall: Arc<AtomicBool>,
}

impl Shared {
    fn mail(&self) -> MutexGuard<'_, Vec<ReceivedMail>> {
        // The only write is a `push`, which cannot be left half done by a panicking
        // connection task, so a poisoned list is still sound to read and extend.
        self.mail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while replies are stalled, for at most [`MAX_STALL`].
    async fn wait_while_stalled(&self) {
        let deadline = Instant::now() + MAX_STALL;
        while self.stall.load(Ordering::Relaxed) && Instant::now() < deadline {
            tokio::time::sleep(STALL_POLL).await;
        }
    }
}

/// A running SMTP sink on 127.0.0.1; dropping it stops the listener and its connections.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Shared,
    accept_loop: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds an ephemeral port on 127.0.0.1 and starts accepting connections.
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the SMTP sink")?;
        let addr = listener
            .local_addr()
            .context("the SMTP sink has no local address")?;
        let shared = Shared::default();
        let accept_loop = tokio::spawn(accept_connections(listener, shared.clone()));
        Ok(SmtpSink {
            addr,
            shared,
            accept_loop,
        })
    }

    /// The address to give the sender as its SMTP relay.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds back (`true`) or releases (`false`) the `250` that accepts a message. The
    /// message is recorded either way; a test kills the sender while the reply is held to
    /// produce a delivery the sender does not know about.
    pub fn stall_replies(&self, on: bool) {
        self.shared.stall.store(on, Ordering::Relaxed);
    }

    /// Every delivery so far, in arrival order, duplicates included.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.mail().clone()
    }

    /// How many deliveries carried each `Message-ID`; messages without one are counted
    /// together under [`NO_MESSAGE_ID`].
    pub fn distinct_by_message_id(&self) -> BTreeMap<String, usize> {
        count_by_message_id(&self.shared.mail())
    }

    /// Waits until at least `count` distinct message ids were received (messages without
    /// a `Message-ID` count as one), then returns every delivery so far.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> anyhow::Result<Vec<ReceivedMail>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mail = self.received();
            let distinct = count_by_message_id(&mail).len();
            if distinct >= count {
                return Ok(mail);
            }
            if Instant::now() >= deadline {
                let subjects: Vec<&str> = mail
                    .iter()
                    .map(|message| message.subject.as_deref().unwrap_or("<no subject>"))
                    .collect();
                bail!(
                    "expected {count} distinct messages within {timeout:?}, the sink saw {distinct} \
                     in {} deliveries; subjects: {subjects:?}",
                    mail.len()
                );
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it aborts them too.
        self.accept_loop.abort();
    }
}

fn count_by_message_id(mail: &[ReceivedMail]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in mail {
        let id = message.message_id.as_deref().unwrap_or(NO_MESSAGE_ID);
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Accepts connections forever, each served by its own task.
async fn accept_connections(listener: TcpListener, shared: Shared) {
    // Owned by this task so that aborting the loop drops the set, which aborts every
    // connection still open (a pooling client keeps its connection between messages).
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                connections.spawn(async move {
                    if let Err(err) = serve_connection(stream, shared).await {
                        eprintln!("smtp sink: connection from {peer} failed: {err}");
                    }
                });
            }
            Err(err) => {
                eprintln!("smtp sink: accept failed: {err}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
        // Forget the connections that ended, so that the set does not grow with each one.
        while connections.try_join_next().is_some() {}
    }
}

/// The transaction in progress: `MAIL` opens it; `RSET`, `EHLO`/`HELO` and the end of
/// `DATA` close it.
#[derive(Debug, Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

/// Serves one client until it quits, closes the connection or breaks the line limit.
async fn serve_connection(stream: TcpStream, shared: Shared) -> io::Result<()> {
    let (read_half, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    let mut envelope = Envelope::default();
    writer
        .write_all(format!("220 {SERVER_NAME} ESMTP\r\n").as_bytes())
        .await?;
    loop {
        match read_line(&mut reader, &mut line).await? {
            LineRead::Complete => {}
            LineRead::Closed => return Ok(()),
            LineRead::TooLong => {
                writer.write_all(b"500 Line too long\r\n").await?;
                return Ok(());
            }
        }
        let command = String::from_utf8_lossy(&line).trim().to_owned();
        let (verb, argument) = command.split_once(' ').unwrap_or((command.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                envelope = Envelope::default();
                format!("250-{SERVER_NAME}\r\n250-8BITMIME\r\n250 SIZE {MAX_MESSAGE_BYTES}")
            }
            "HELO" => {
                envelope = Envelope::default();
                format!("250 {SERVER_NAME}")
            }
            // A `MAIL` inside a transaction starts a new one rather than failing: the
            // sink is lenient with clients, strict only where memory is at stake.
            "MAIL" => match envelope_path(argument, "FROM:") {
                Some(path) => {
                    envelope = Envelope {
                        from: Some(path.to_owned()),
                        to: Vec::new(),
                    };
                    "250 OK".to_owned()
                }
                None => "501 Syntax: MAIL FROM:<address>".to_owned(),
            },
            "RCPT" if envelope.from.is_none() => "503 MAIL first".to_owned(),
            "RCPT" => match envelope_path(argument, "TO:") {
                Some(path) => {
                    envelope.to.push(path.to_owned());
                    "250 OK".to_owned()
                }
                None => "501 Syntax: RCPT TO:<address>".to_owned(),
            },
            "DATA" if envelope.to.is_empty() => "503 RCPT first".to_owned(),
            "DATA" => {
                writer
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                match receive_message(&mut reader, &mut line).await? {
                    MessageRead::Complete(bytes) => {
                        let Envelope { from, to } = std::mem::take(&mut envelope);
                        let raw = String::from_utf8_lossy(&bytes).into_owned();
                        let mail = ReceivedMail::parse(from.unwrap_or_default(), to, raw);
                        // Recorded before the reply: see the module documentation.
                        shared.mail().push(mail);
                        shared.wait_while_stalled().await;
                        "250 OK".to_owned()
                    }
                    MessageRead::TooLarge => {
                        envelope = Envelope::default();
                        format!("552 Message exceeds {MAX_MESSAGE_BYTES} bytes")
                    }
                    MessageRead::LineTooLong => {
                        writer.write_all(b"552 Line too long\r\n").await?;
                        return Ok(());
                    }
                    MessageRead::Closed => return Ok(()),
                }
            }
            "RSET" => {
                envelope = Envelope::default();
                "250 OK".to_owned()
            }
            "NOOP" => "250 OK".to_owned(),
            "QUIT" => {
                writer.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 Command not implemented".to_owned(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address of a `MAIL FROM:` or `RCPT TO:` argument (`keyword` is `FROM:` or `TO:`),
/// without its angle brackets and parameters such as `BODY=8BITMIME`.
fn envelope_path<'a>(argument: &'a str, keyword: &str) -> Option<&'a str> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    match rest.strip_prefix('<') {
        Some(bracketed) => bracketed.split_once('>').map(|(path, _)| path),
        None => rest.split_whitespace().next(),
    }
}

/// How reading one line ended.
enum LineRead {
    /// `line` holds the line, without its line end.
    Complete,
    /// The line was longer than [`MAX_LINE_BYTES`].
    TooLong,
    /// The client closed the connection, possibly in the middle of a line.
    Closed,
}

/// Reads one line ended by LF (a CR before it is dropped too) into `line`.
async fn read_line<R>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<LineRead>
where
    R: AsyncBufRead + Unpin,
{
    line.clear();
    // One byte more than the limit, plus the LF, tells a line at the limit from a longer one.
    let limit = MAX_LINE_BYTES as u64 + 2;
    let mut limited = (&mut *reader).take(limit);
    let n = limited.read_until(b'\n', line).await?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_LINE_BYTES {
            return Ok(LineRead::TooLong);
        }
        Ok(LineRead::Complete)
    } else if n as u64 == limit {
        Ok(LineRead::TooLong)
    } else {
        Ok(LineRead::Closed)
    }
}

/// How reading the text after `DATA` ended.
enum MessageRead {
    /// The message, dot-unstuffed, every line ended by CR LF.
    Complete(Vec<u8>),
    /// The final `.` arrived, but the message was larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// A line was longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// The client closed the connection before the final `.`.
    Closed,
}

/// Reads the message after `354` up to the line that is a single `.`.
async fn receive_message<R>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<MessageRead>
where
    R: AsyncBufRead + Unpin,
{
    let mut message = Vec::new();
    let mut too_large = false;
    loop {
        match read_line(reader, line).await? {
            LineRead::Complete => {}
            LineRead::TooLong => return Ok(MessageRead::LineTooLong),
            LineRead::Closed => return Ok(MessageRead::Closed),
        }
        if line.as_slice() == b"." {
            return Ok(if too_large {
                MessageRead::TooLarge
            } else {
                MessageRead::Complete(message)
            });
        }
        // Dot-stuffing (RFC 5321, 4.5.2): the client doubled every leading dot so that no
        // line of the message reads as the end; undo it.
        let text = line.strip_prefix(b".").unwrap_or(line.as_slice());
        too_large = too_large || message.len() + text.len() + 2 > MAX_MESSAGE_BYTES;
        if too_large {
            // Keep reading to the final `.` so that the client gets its 552 in order,
            // but keep nothing.
            message.clear();
        } else {
            message.extend_from_slice(text);
            message.extend_from_slice(b"\r\n");
        }
    }
}

/// Splits a message at its first empty line: (headers, body). Without an empty line the
/// whole message is headers.
fn split_head_body(raw: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in raw.split_inclusive('\n') {
        let next = offset + line.len();
        if line.trim_end_matches(['\r', '\n']).is_empty() {
            return (&raw[..offset], &raw[next..]);
        }
        offset = next;
    }
    (raw, "")
}

/// The header fields as (name, value) pairs, folded lines joined (RFC 5322, 2.2.3: a line
/// that starts with a space or a tab continues the previous field), values trimmed.
fn unfold_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    headers
        .into_iter()
        .map(|(name, value)| (name, value.trim().to_owned()))
        .collect()
}

/// Undoes quoted-printable (RFC 2045, 6.7) leniently: an `=` that starts neither an escape
/// nor a soft line break is kept as it is.
fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            decoded.push(bytes[i]);
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        if let Some(len) = soft_line_break(rest) {
            i += 1 + len;
        } else if let Some(byte) = rest.get(..2).and_then(hex_pair) {
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(b'=');
            i += 1;
        }
    }
    // Escapes encode bytes, not characters: decode the text only once they are all back.
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The length of a soft line break after its `=`: trailing blanks (which RFC 2045 tells
/// decoders to drop) and the line end.
fn soft_line_break(rest: &[u8]) -> Option<usize> {
    let blanks = rest
        .iter()
        .take_while(|&&byte| byte == b' ' || byte == b'\t')
        .count();
    match &rest[blanks..] {
        [b'\r', b'\n', ..] => Some(blanks + 2),
        [b'\n', ..] => Some(blanks + 1),
        _ => None,
    }
}

/// The byte written as two hex digits, either case.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |byte: u8| {
        char::from(byte)
            .to_digit(16)
            .and_then(|value| u8::try_from(value).ok())
    };
    match pair {
        [high, low] => Some((digit(*high)? << 4) | digit(*low)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    /// A hand-written SMTP client: sends lines as given and reads whole replies.
    struct Client {
        reader: BufReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> Client {
            let stream = TcpStream::connect(sink.addr()).await.unwrap();
            let (read_half, writer) = stream.into_split();
            let mut client = Client {
                reader: BufReader::new(read_half),
                writer,
            };
            let greeting = client.reply().await;
            assert_eq!(greeting, "220 boxoffice-test-sink ESMTP\r\n");
            client
        }

        async fn send(&mut self, text: &str) {
            self.writer.write_all(text.as_bytes()).await.unwrap();
        }

        /// One reply with all its lines (`250-` announces another line, `250 ` is the last).
        async fn reply(&mut self) -> String {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).await.unwrap();
                assert!(n > 0, "the sink closed the connection after {reply:?}");
                reply.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return reply;
                }
            }
        }

        /// Sends `command` and checks that the reply starts with `code`.
        async fn expect(&mut self, command: &str, code: &str) -> String {
            self.send(&format!("{command}\r\n")).await;
            let reply = self.reply().await;
            assert!(
                reply.starts_with(code),
                "{command:?}: expected {code}, got {reply:?}"
            );
            reply
        }

        /// One transaction from `MAIL` to the reply after the final `.`, which `message`
        /// must include.
        async fn deliver(&mut self, message: &str) {
            self.expect("MAIL FROM:<box@boxoffice.test>", "250").await;
            self.expect("RCPT TO:<alice@example.org>", "250").await;
            self.expect("DATA", "354").await;
            self.send(message).await;
            let reply = self.reply().await;
            assert!(reply.starts_with("250"), "after DATA: {reply:?}");
        }
    }

    const TICKETS: &str = concat!(
        "Message-ID:\r\n",
        "\t<tickets-1@boxoffice.test>\r\n",
        "Subject: Your tickets\r\n",
        " for tonight\r\n",
        "From: Box Office <box@boxoffice.test>\r\n",
        "\r\n",
        "Hello Alice,\r\n",
        "..starts with a dot\r\n",
        "..\r\n",
        "See you.\r\n",
        ".\r\n",
    );

    #[tokio::test]
    async fn records_a_delivery_with_its_envelope_and_headers() {
        let sink = SmtpSink::start().await.unwrap();
        let mut client = Client::connect(&sink).await;
        let ehlo = client.expect("EHLO client.test", "250").await;
        assert!(
            ehlo.contains("8BITMIME") && ehlo.contains("SIZE 10485760"),
            "{ehlo:?}"
        );
        assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"), "{ehlo:?}");
        assert!(!ehlo.contains("PIPELINING"), "{ehlo:?}");
        client
            .expect("MAIL FROM:<box@boxoffice.test> BODY=8BITMIME", "250")
            .await;
        client.expect("RCPT TO:<alice@example.org>", "250").await;
        client.expect("rcpt to: <bob@example.org>", "250").await;
        client.expect("DATA", "354").await;
        client.send(TICKETS).await;
        assert!(client.reply().await.starts_with("250 "));
        client.expect("QUIT", "221").await;

        let received = sink.received();
        assert_eq!(received.len(), 1);
        let mail = &received[0];
        assert_eq!(mail.from, "box@boxoffice.test");
        assert_eq!(mail.to, ["alice@example.org", "bob@example.org"]);
        assert_eq!(mail.message_id.as_deref(), Some("<tickets-1@boxoffice.test>"));
        assert_eq!(mail.subject.as_deref(), Some("Your tickets for tonight"));
        assert_eq!(
            mail.body,
            "Hello Alice,\r\n.starts with a dot\r\n.\r\nSee you.\r\n"
        );
        assert!(
            mail.raw.starts_with("Message-ID:\r\n\t<tickets-1@"),
            "{:?}",
            mail.raw
        );
        assert!(
            mail.raw.contains(">\r\n\r\nHello Alice,\r\n.starts with"),
            "{:?}",
            mail.raw
        );
    }

    #[tokio::test]
    async fn commands_out_of_order_or_unknown_are_refused() {
        let sink = SmtpSink::start().await.unwrap();
        let mut client = Client::connect(&sink).await;
        client.expect("HELO client.test", "250").await;
        client.expect("RCPT TO:<alice@example.org>", "503").await;
        client.expect("MAIL FROM:<box@boxoffice.test>", "250").await;
        client.expect("DATA", "503").await;
        client.expect("MAIL FROM:", "501").await;
        client.expect("VRFY alice", "502").await;
        client.expect("noop", "250").await;
        client.expect("RSET", "250").await;
        client.expect("quit", "221").await;
        assert!(sink.received().is_empty());
    }

    #[tokio::test]
    async fn a_message_sent_twice_is_two_deliveries_of_one_id() {
        let sink = SmtpSink::start().await.unwrap();
        let mut first = Client::connect(&sink).await;
        first.expect("EHLO client.test", "250").await;
        first.deliver(TICKETS).await;
        // The sender's retry, on a new connection as after a restart.
        let mut retry = Client::connect(&sink).await;
        retry.expect("EHLO client.test", "250").await;
        retry.expect("RSET", "250").await;
        retry.deliver(TICKETS).await;
        // A message without a Message-ID, sent with bare LF line ends.
        retry.send("mail from:<>\n").await;
        assert!(retry.reply().await.starts_with("250"));
        retry.send("rcpt to:<carol@example.org>\n").await;
        assert!(retry.reply().await.starts_with("250"));
        retry.send("data\n").await;
        assert!(retry.reply().await.starts_with("354"));
        retry.send("Subject: no id\n\nplain body\n.\n").await;
        assert!(retry.reply().await.starts_with("250"));

        let counts = sink.distinct_by_message_id();
        let expected = BTreeMap::from([
            ("<tickets-1@boxoffice.test>".to_owned(), 2),
            (NO_MESSAGE_ID.to_owned(), 1),
        ]);
        assert_eq!(counts, expected);
        let received = sink.wait_for(2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(received.len(), 3);
        let bounce = &received[2];
        assert_eq!(bounce.from, "");
        assert_eq!(bounce.to, ["carol@example.org"]);
        assert_eq!(bounce.subject.as_deref(), Some("no id"));
        assert_eq!(bounce.body, "plain body\r\n");

        let err = sink.wait_for(3, Duration::from_millis(100)).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("saw 2 in 3 deliveries"), "{message}");
        assert!(message.contains("no id"), "{message}");
    }

    #[tokio::test]
    async fn a_stalled_reply_follows_the_recorded_delivery() {
        let sink = SmtpSink::start().await.unwrap();
        sink.stall_replies(true);
        let mut client = Client::connect(&sink).await;
        client.expect("HELO client.test", "250").await;
        client.expect("MAIL FROM:<box@boxoffice.test>", "250").await;
        client.expect("RCPT TO:<alice@example.org>", "250").await;
        client.expect("DATA", "354").await;
        client
            .send("Message-ID: <stalled@boxoffice.test>\r\n\r\nbody\r\n.\r\n")
            .await;

        let received = sink.wait_for(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            received[0].message_id.as_deref(),
            Some("<stalled@boxoffice.test>")
        );
        let early = tokio::time::timeout(Duration::from_millis(200), client.reply()).await;
        assert!(early.is_err(), "the reply was not held back: {early:?}");

        sink.stall_replies(false);
        assert!(client.reply().await.starts_with("250"));
    }

    #[test]
    fn body_text_undoes_quoted_printable() {
        let raw = concat!(
            "Subject: confirmation\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "Your seat is con=\r\n",
            "firmed: caf=C3=a9 at 8=3D9,=\n",
            "see you=20\r\n",
            "soft=  \r\n",
            "break, = not an escape =ZZ=",
        );
        let mail = ReceivedMail::parse("a@b.test".to_owned(), Vec::new(), raw.to_owned());
        assert_eq!(
            mail.body_text(),
            "Your seat is confirmed: café at 8=9,see you \r\nsoftbreak, = not an escape =ZZ="
        );
    }

    #[test]
    fn headers_are_found_in_any_case_and_without_a_body() {
        let mail = ReceivedMail::parse(
            "a@b.test".to_owned(),
            Vec::new(),
            "SUBJECT:  spaced  \r\nmessage-id: <x@y>\r\n".to_owned(),
        );
        assert_eq!(mail.subject.as_deref(), Some("spaced"));
        assert_eq!(mail.message_id.as_deref(), Some("<x@y>"));
        assert_eq!(mail.body, "");
    }
}
