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
//!
//! **Failpoint.** With `BOXOFFICE_FAILPOINTS=<dir>` in the node's
//! environment (`raft_store::disk_health`), the file `<dir>/wan` holding
//! `ONE_WAY_MS JITTER_MS LOSS_PCT` disturbs every node-to-node call on top of
//! its link: each way delayed by `ONE_WAY_MS` plus up to `JITTER_MS`, and
//! `LOSS_PCT` percent of calls lost. The node reads the file four times a
//! second; without it calls are undisturbed. It is how the chaos harness
//! slows the network: this kernel has no `netem`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    /// What the failpoint adds to every link, when armed.
    disturbance: Option<Arc<Disturbance>>,
}

/// The failpoint file that disturbs every link while it exists.
pub const WAN_FAILPOINT: &str = "wan";

/// A disturbance of every link, set while the node runs (the `wan`
/// failpoint).
#[derive(Debug, Default)]
pub struct Disturbance {
    one_way_ms: AtomicU32,
    jitter_ms: AtomicU32,
    loss_pct: AtomicU32,
}

impl Disturbance {
    /// Sets it from the failpoint file's text (`ONE_WAY_MS JITTER_MS
    /// LOSS_PCT`; empty or absent: none).
    pub fn set_from(&self, text: Option<&str>) -> Result<(), String> {
        let numbers: Vec<u32> = match text.map(str::trim) {
            None | Some("") => vec![0, 0, 0],
            Some(text) => text
                .split_whitespace()
                .map(|n| n.parse().map_err(|_| format!("{n:?} is not a number")))
                .collect::<Result<_, _>>()?,
        };
        let [one_way, jitter, loss] = numbers[..] else {
            return Err(format!("want ONE_WAY_MS JITTER_MS LOSS_PCT, got {text:?}"));
        };
        self.one_way_ms.store(one_way.min(60_000), Ordering::Relaxed);
        self.jitter_ms.store(jitter.min(60_000), Ordering::Relaxed);
        self.loss_pct.store(loss.min(100), Ordering::Relaxed);
        Ok(())
    }

    /// Follows `<dir>/wan` until `stop` resolves.
    pub async fn follow(self: Arc<Self>, file: std::path::PathBuf, stop: impl Future<Output = ()>) {
        let mut last: Option<String> = None;
        let follow = async {
            loop {
                let text = std::fs::read_to_string(&file).ok();
                if text != last {
                    match self.set_from(text.as_deref()) {
                        Ok(()) => {
                            tracing::warn!(disturbance = ?text, "wan failpoint: node-to-node calls disturbed")
                        }
                        Err(why) => {
                            tracing::warn!(%why, file = %file.display(), "wan failpoint: unreadable, ignored")
                        }
                    }
                    last = text;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            () = follow => {}
            () = stop => {}
        }
    }
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
            disturbance: None,
        }
    }

    /// These links, and every call also crossing `disturbance`.
    pub fn disturbed(self, disturbance: Arc<Disturbance>) -> Wan {
        Wan {
            disturbance: Some(disturbance),
            ..self
        }
    }

    pub fn link(&self, addr: &str) -> Option<Link> {
        self.links.get(addr).copied()
    }

    /// The link a call crosses now: its own, plus any disturbance (with a
    /// fresh draw of jitter); `None`: straight through.
    fn crossing(&self, link: Option<Link>) -> Option<Link> {
        let Some(d) = &self.disturbance else {
            return link;
        };
        let (one_way, jitter, loss) = (
            d.one_way_ms.load(Ordering::Relaxed),
            d.jitter_ms.load(Ordering::Relaxed),
            d.loss_pct.load(Ordering::Relaxed),
        );
        if one_way == 0 && jitter == 0 && loss == 0 {
            return link;
        }
        let base = link.unwrap_or(Link {
            one_way: Duration::ZERO,
            loss_pct: 0,
        });
        let jitter = if jitter == 0 {
            0
        } else {
            self.draw() % (u64::from(jitter) + 1)
        };
        Some(Link {
            one_way: base.one_way + Duration::from_millis(u64::from(one_way) + jitter),
            loss_pct: base.loss_pct.max(loss as u8),
        })
    }

    /// splitmix64 of a counter: uniform enough for losses and jitter.
    fn draw(&self) -> u64 {
        let mut z = self
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn lost(&self, link: &Link) -> bool {
        link.loss_pct > 0 && self.draw() % 100 < u64::from(link.loss_pct)
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
        let Some(link) = self.wan.crossing(self.link) else {
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

    #[test]
    fn a_disturbance_adds_to_every_link_while_set() {
        let far = Link {
            one_way: Duration::from_millis(150),
            loss_pct: 5,
        };
        let disturbance = Arc::new(Disturbance::default());
        let wan = Wan::new(HashMap::from([("far:1".to_owned(), far)])).disturbed(disturbance.clone());
        assert_eq!(wan.crossing(None), None, "nothing set: straight through");
        assert_eq!(wan.crossing(Some(far)), Some(far));
        disturbance.set_from(Some("40 10 20\n")).unwrap();
        for _ in 0..200 {
            let near = wan.crossing(None).unwrap();
            assert!((40..=50).contains(&near.one_way.as_millis()), "{near:?}");
            assert_eq!(near.loss_pct, 20);
            let far = wan.crossing(Some(far)).unwrap();
            assert!((190..=200).contains(&far.one_way.as_millis()), "{far:?}");
            assert_eq!(far.loss_pct, 20, "the larger loss");
        }
        assert!(disturbance.set_from(Some("40 10")).is_err());
        assert!(disturbance.set_from(Some("forty 10 20")).is_err());
        disturbance.set_from(None).unwrap();
        assert_eq!(wan.crossing(None), None, "cleared");
    }
}
