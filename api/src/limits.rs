//! Rate limits on the routes an on-sale storm hits: holds and checkouts.
//!
//! Each limit is a token bucket per key: per account (or guest) and per
//! client IP address, so one customer cannot grab a venue and one address
//! cannot script a thousand accounts. A refused request gets
//! `429 rate_limited` with `Retry-After` and changes nothing. Staff acting
//! for customers (the box office, the operator's token) are not limited.
//!
//! Buckets live in this node's memory: a client spread over several nodes of
//! a region gets each node's allowance (regional endpoints sit behind one
//! load balancer in practice). The table is bounded: when it is full, buckets
//! that are full again (idle clients) are dropped first.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::auth::Caller;

/// Most buckets kept per limit before idle ones are dropped.
const MAX_BUCKETS: usize = 100_000;

/// One limit: `per_minute` requests a minute on average, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let at_least_one = |n: u32| NonZeroU32::new(n.max(1)).expect("at least one");
        Quota::per_minute(at_least_one(self.per_minute)).allow_burst(at_least_one(self.burst))
    }
}

/// The limits of a node (from its `[limits]` config). `None` turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitConfig {
    pub holds_per_account: Option<Rate>,
    pub holds_per_ip: Option<Rate>,
    pub checkouts_per_account: Option<Rate>,
    pub checkouts_per_ip: Option<Rate>,
}

/// One limit's buckets (GCRA, the `governor` crate), one per key.
struct Limiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    buckets: RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<C::Instant>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(rate: Rate) -> Self {
        Limiter::with_clock(rate, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Limiter<K, C> {
    fn with_clock(rate: Rate, clock: C) -> Self {
        Limiter {
            buckets: RateLimiter::dashmap_with_clock(rate.quota(), clock),
        }
    }

    /// Takes a token for `key`, or says how long until one is there.
    fn take(&self, key: &K) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_BUCKETS {
            // Buckets that are full again belong to idle clients: a fresh
            // bucket would answer the same.
            self.buckets.retain_recent();
        }
        self.buckets
            .check_key(key)
            .map_err(|refused| refused.wait_time_from(self.buckets.clock().now()))
    }
}

impl<K: Hash + Eq + Clone, C: Clock> std::fmt::Debug for Limiter<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Hold,
    Checkout,
}

#[derive(Debug)]
pub struct RateLimits {
    holds_per_account: Option<Limiter<String>>,
    holds_per_ip: Option<Limiter<IpAddr>>,
    checkouts_per_account: Option<Limiter<String>>,
    checkouts_per_ip: Option<Limiter<IpAddr>>,
    /// Refusals by action (hold, checkout) and limit (account, ip).
    refused: [[AtomicU64; 2]; 2],
}

impl RateLimits {
    pub fn new(config: &LimitConfig) -> Self {
        RateLimits {
            holds_per_account: config.holds_per_account.map(Limiter::new),
            holds_per_ip: config.holds_per_ip.map(Limiter::new),
            checkouts_per_account: config.checkouts_per_account.map(Limiter::new),
            checkouts_per_ip: config.checkouts_per_ip.map(Limiter::new),
            refused: Default::default(),
        }
    }

    /// Requests refused so far: `(action, limit, count)`, with action `hold`
    /// or `checkout` and limit `account` or `ip`.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        [(Action::Hold, "hold"), (Action::Checkout, "checkout")]
            .into_iter()
            .flat_map(move |(action, name)| {
                ["account", "ip"]
                    .into_iter()
                    .zip(&self.refused[action as usize])
                    .map(move |(limit, n)| (name, limit, n.load(Relaxed)))
            })
    }

    /// Lets the request through or refuses it with `429` and `Retry-After`.
    pub fn check(&self, action: Action, caller: &Caller, ip: Option<IpAddr>) -> Result<(), Problem> {
        if caller.is_staff() {
            return Ok(());
        }
        let (per_account, per_ip) = match action {
            Action::Hold => (&self.holds_per_account, &self.holds_per_ip),
            Action::Checkout => (&self.checkouts_per_account, &self.checkouts_per_ip),
        };
        let mut wait = None;
        if let (Some(limiter), Some(customer)) = (per_account, caller.customer_id()) {
            wait = limiter.take(&customer.as_str().to_owned()).err();
        }
        if wait.is_some() {
            self.refused[action as usize][0].fetch_add(1, Relaxed);
        } else if let (Some(limiter), Some(ip)) = (per_ip, ip) {
            wait = limiter.take(&ip).err();
            if wait.is_some() {
                self.refused[action as usize][1].fetch_add(1, Relaxed);
            }
        }
        match wait {
            None => Ok(()),
            Some(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many {action:?} requests; retry in {secs} s").to_lowercase(),
                )
                .with("retry_after_secs", serde_json::json!(secs));
                problem.retry_after = Some(secs);
                Err(problem)
            }
        }
    }
}

/// The client's address, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use booking::{CustomerId, Role};

    fn customer(id: &str) -> Caller {
        Caller::User {
            customer_id: CustomerId::new(id).unwrap(),
            role: Role::Customer,
            region: "eu-west".into(),
        }
    }

    #[test]
    fn buckets_allow_a_burst_then_refill() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = Limiter::with_clock(
            Rate {
                per_minute: 60,
                burst: 2,
            },
            clock.clone(),
        );
        let (a, b) = ("a".to_owned(), "b".to_owned());
        assert!(limiter.take(&a).is_ok());
        assert!(limiter.take(&a).is_ok());
        let wait = limiter.take(&a).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another key has its own bucket; a second later one token is back,
        // and only one.
        assert!(limiter.take(&b).is_ok());
        clock.advance(Duration::from_millis(1_001));
        assert!(limiter.take(&a).is_ok());
        assert!(limiter.take(&a).is_err());
    }

    #[test]
    fn customers_are_limited_and_staff_are_not() {
        let limits = RateLimits::new(&LimitConfig {
            holds_per_account: Some(Rate {
                per_minute: 1,
                burst: 1,
            }),
            holds_per_ip: None,
            checkouts_per_account: None,
            checkouts_per_ip: None,
        });
        let alice = customer("u.1.alice");
        assert!(limits.check(Action::Hold, &alice, None).is_ok());
        let refused = limits.check(Action::Hold, &alice, None).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert!(refused.retry_after.is_some_and(|s| (1..=60).contains(&s)));
        assert!(limits.check(Action::Hold, &customer("u.1.bob"), None).is_ok());
        assert!(limits.check(Action::Checkout, &alice, None).is_ok());
        let refused: Vec<_> = limits.refusals().filter(|(_, _, n)| *n > 0).collect();
        assert_eq!(refused, [("hold", "account", 1)]);
        for _ in 0..5 {
            assert!(limits.check(Action::Hold, &Caller::Operator, None).is_ok());
        }
    }
}
