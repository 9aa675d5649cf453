//! A local HTTP endpoint that records the webhook POSTs it receives, for
//! tests of customer notifications.
//!
//! It speaks just enough HTTP/1.1 for one request per connection: it reads
//! the head and a `Content-Length` body, records them, and answers with the
//! status the test chose (`set_status`), so a test can make deliveries fail
//! and then succeed. It does not do keep-alive, chunked bodies or TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request accepted; larger ones are dropped unanswered.
const MAX_REQUEST: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedHook {
    pub path: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ReceivedHook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug)]
pub struct WebhookSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedHook>>>,
    status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookSink {
    pub async fn start() -> anyhow::Result<WebhookSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (seen, answer) = (received.clone(), status.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, answer) = (seen.clone(), answer.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &seen, &answer).await;
                });
            }
        });
        Ok(WebhookSink {
            addr,
            received,
            status,
            task,
        })
    }

    /// The URL of `path` on this sink.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status later requests are answered with.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub fn received(&self) -> Vec<ReceivedHook> {
        self.received.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until at least `count` requests arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> anyhow::Result<Vec<ReceivedHook>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= count {
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!(
                    "{} webhook requests within {timeout:?}, wanted {count}",
                    got.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn serve(
    mut socket: TcpStream,
    seen: &Mutex<Vec<ReceivedHook>>,
    answer: &AtomicU16,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the client closed before the head ended");
        buffer.extend_from_slice(&chunk[..n]);
        anyhow::ensure!(buffer.len() <= MAX_REQUEST, "request too large");
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().context("a request line")?;
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(length <= MAX_REQUEST, "body too large");
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the client closed before the body ended");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(ReceivedHook {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = answer.load(Ordering::Relaxed);
    let reply = format!("HTTP/1.1 {status} Test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    socket.write_all(reply.as_bytes()).await?;
    socket.shutdown().await?;
    Ok(())
}
