//! One long-lived gRPC channel per peer address, shared by all users.
//!
//! A tonic `Channel` multiplexes concurrent calls over one HTTP/2 connection
//! and reconnects by itself, so we create one lazily per address and hand out
//! clones; no RPC ever opens its own connection. Every channel speaks mutual
//! TLS (`tls`): it presents this node's certificate and accepts only a peer
//! whose certificate the cluster CA signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::wan::{PeerChannel, Wan};

#[derive(Clone)]
pub struct ChannelPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    tls: ClientTlsConfig,
    /// The simulated WAN every call crosses (none in production).
    wan: Wan,
}

impl ChannelPool {
    pub fn new(tls: ClientTlsConfig) -> Self {
        Self {
            channels: Arc::default(),
            tls,
            wan: Wan::default(),
        }
    }

    /// The same pool with its calls crossing `wan`.
    pub fn with_wan(mut self, wan: Wan) -> Self {
        self.wan = wan;
        self
    }

    /// The channel to `addr` (`host:port`), created on first use.
    pub fn get(&self, addr: &str) -> Result<PeerChannel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(PeerChannel::new(channel.clone(), addr, &self.wan));
        }
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(self.tls.clone())?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(PeerChannel::new(channel, addr, &self.wan))
    }
}
