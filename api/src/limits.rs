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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::auth::Caller;

/// Most buckets kept per limit.
const MAX_BUCKETS: usize = 100_000;

/// One limit: `per_minute` requests a minute on average, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// The limits of a node (from its `[limits]` config). `None` turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitConfig {
    pub holds_per_account: Option<Rate>,
    pub holds_per_ip: Option<Rate>,
    pub checkouts_per_account: Option<Rate>,
    pub checkouts_per_ip: Option<Rate>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is there.
    fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let per_sec = f64::from(self.rate.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
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
    holds_per_account: Option<Limiter>,
    holds_per_ip: Option<Limiter>,
    checkouts_per_account: Option<Limiter>,
    checkouts_per_ip: Option<Limiter>,
}

impl RateLimits {
    pub fn new(config: &LimitConfig) -> Self {
        RateLimits {
            holds_per_account: config.holds_per_account.map(Limiter::new),
            holds_per_ip: config.holds_per_ip.map(Limiter::new),
            checkouts_per_account: config.checkouts_per_account.map(Limiter::new),
            checkouts_per_ip: config.checkouts_per_ip.map(Limiter::new),
        }
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
        let now = Instant::now();
        let mut wait = None;
        if let (Some(limiter), Some(customer)) = (per_account, caller.customer_id()) {
            wait = limiter.take(customer.as_str(), now).err();
        }
        if wait.is_none()
            && let (Some(limiter), Some(ip)) = (per_ip, ip)
        {
            wait = limiter.take(&ip.to_string(), now).err();
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
        let limiter = Limiter::new(Rate {
            per_minute: 60,
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(limiter.take("a", t0).is_ok());
        assert!(limiter.take("a", t0).is_ok());
        let wait = limiter.take("a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another key has its own bucket; a second later one token is back.
        assert!(limiter.take("b", t0).is_ok());
        assert!(limiter.take("a", t0 + Duration::from_millis(1_001)).is_ok());
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
        for _ in 0..5 {
            assert!(limits.check(Action::Hold, &Caller::Operator, None).is_ok());
        }
    }
}
