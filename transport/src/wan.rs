//! A simulated wide-area network between regions, for demos and tests on
//! one machine.
//!
//! Each peer address may have a [`Link`]: a one-way delay, applied to the
//! request on its way out and again to the reply, so a call between two
//! regions costs one round trip of the configured latency; and a share of
//! calls that are lost (the request never arrives and no reply comes: the
//! caller's own deadline is what ends it, as with a lost packet on a real
//! link). Every node-to-node call goes through [`PeerChannel`], so Raft
//! traffic, forwarded writes and reads, and quiescence all pay the same.
//! Without links (production), a `PeerChannel` adds nothing but one branch.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::transport::Channel;

/// How calls to one peer travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub one_way: Duration,
    /// Calls lost, in percent (0..=100).
    pub loss_pct: u8,
}

/// The links of this node to its peers, by gRPC address.
#[derive(Clone, Default)]
pub struct Wan {
    links: Arc<HashMap<String, Link>>,
    /// Drives which calls are lost: a counter mixed into a uniform draw, so
    /// no random-number dependency and no shared lock.
    draws: Arc<AtomicU64>,
}

impl Wan {
    pub fn new(links: HashMap<String, Link>) -> Wan {
        let links = links
            .into_iter()
            .filter(|(_, link)| !link.one_way.is_zero() || link.loss_pct > 0)
            .collect();
        Wan {
            links: Arc::new(links),
            draws: Arc::default(),
        }
    }

    pub fn link(&self, addr: &str) -> Option<Link> {
        self.links.get(addr).copied()
    }

    fn lost(&self, link: &Link) -> bool {
        if link.loss_pct == 0 {
            return false;
        }
        // splitmix64 of a counter: uniform enough for a loss rate.
        let mut z = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % 100 < u64::from(link.loss_pct)
    }
}

/// A channel to one peer that crosses its [`Link`], if it has one.
#[derive(Clone)]
pub struct PeerChannel {
    inner: Channel,
    link: Option<Link>,
    wan: Wan,
}

impl PeerChannel {
    pub fn new(inner: Channel, addr: &str, wan: &Wan) -> PeerChannel {
        PeerChannel {
            inner,
            link: wan.link(addr),
            wan: wan.clone(),
        }
    }
}

type ChannelFuture = <Channel as Service<Request<Body>>>::Future;
type Reply = Result<Response<Body>, <Channel as Service<Request<Body>>>::Error>;

/// A call that either goes straight through, or crosses the simulated link.
pub enum PeerCall {
    Direct(ChannelFuture),
    Delayed(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

impl Future for PeerCall {
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        match self.get_mut() {
            PeerCall::Direct(call) => Pin::new(call).poll(cx),
            PeerCall::Delayed(call) => call.as_mut().poll(cx),
        }
    }
}

impl Service<Request<Body>> for PeerChannel {
    type Response = Response<Body>;
    type Error = <Channel as Service<Request<Body>>>::Error;
    type Future = PeerCall;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: Request<Body>) -> PeerCall {
        let Some(link) = self.link else {
            return PeerCall::Direct(self.inner.call(request));
        };
        if self.wan.lost(&link) {
            // Lost on the way: nothing arrives and nothing comes back.
            return PeerCall::Delayed(Box::pin(std::future::pending()));
        }
        // The channel that was made ready is the one that must send; a fresh
        // clone stays behind for the next call.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        PeerCall::Delayed(Box::pin(async move {
            tokio::time::sleep(link.one_way).await;
            let reply = ready.call(request).await;
            tokio::time::sleep(link.one_way).await;
            reply
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_follow_the_configured_share_and_clean_links_are_dropped() {
        let lossy = Link {
            one_way: Duration::ZERO,
            loss_pct: 25,
        };
        let clean = Link {
            one_way: Duration::ZERO,
            loss_pct: 0,
        };
        let wan = Wan::new(HashMap::from([
            ("a:1".to_owned(), lossy),
            ("b:1".to_owned(), clean),
        ]));
        assert_eq!(wan.link("a:1"), Some(lossy));
        assert_eq!(wan.link("b:1"), None, "a link that changes nothing is no link");
        let lost = (0..10_000).filter(|_| wan.lost(&lossy)).count();
        assert!((2_200..=2_800).contains(&lost), "{lost} of 10000 lost at 25%");
        assert!(!(0..1_000).any(|_| wan.lost(&clean)));
    }
}
