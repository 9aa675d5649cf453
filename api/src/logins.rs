//! Login protection: failed-login backoff per account and per address, and a
//! bound on the password hashes a node runs at once.
//!
//! - **Backoff.** Each account (by its normalised address) and each client
//!   address may fail `free_failures` times within the window without delay.
//!   After that, every further attempt must wait twice as long as the one
//!   before (1 s, 2 s, 4 s … up to the window) since the last failure, and an
//!   attempt that comes sooner is answered `429 login_throttled` with
//!   `Retry-After`, *before* any password is hashed, so guessing costs the
//!   guesser time and the node nothing. A success clears the account's
//!   failures (not the address's: one right guess among many proves little).
//!   Failures and throttling are logged under the `boxoffice::security`
//!   target with a digest of the address, never the address itself.
//! - **Concurrency.** argon2id holds 19 MiB per hash for tens of milliseconds;
//!   a burst of logins would otherwise take the node's memory and the blocking
//!   pool (and starve Raft's heartbeats). At most `max_concurrent_hashes` run
//!   at once; a request beyond that is answered `503 too_busy` with
//!   `Retry-After: 1` at once, never queued.
//!
//! Like the rate limits, this state is per node and in memory: a client that
//! spreads its guesses over several nodes gets each node's allowance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Problem;

/// Most failure records kept per kind; beyond it the oldest windows go first.
const MAX_RECORDS: usize = 100_000;
/// The first delay once the free failures are used up; it doubles after each failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);

/// A node's login limits (from its `[login]` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginConfig {
    pub failures_per_account: u32,
    pub failures_per_ip: u32,
    pub window: Duration,
    pub max_concurrent_hashes: u32,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            failures_per_account: 5,
            failures_per_ip: 50,
            window: Duration::from_secs(15 * 60),
            max_concurrent_hashes: 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

#[derive(Debug)]
struct Tracker {
    free: u32,
    window: Duration,
    records: Mutex<HashMap<String, Failures>>,
}

impl Tracker {
    fn new(free: u32, window: Duration) -> Self {
        Tracker {
            free,
            window,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait before its next attempt, if at all.
    fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let failures = records.get(key)?;
        if now.duration_since(failures.first) >= self.window || failures.count < self.free {
            return None;
        }
        let doublings = (failures.count - self.free).min(20);
        let delay = (FIRST_DELAY * 2u32.pow(doublings)).min(self.window);
        let ready = failures.last + delay;
        (ready > now).then(|| ready - now)
    }

    /// Counts a failure of `key`; the failures within the window so far.
    fn fail(&self, key: &str, now: Instant) -> u32 {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= MAX_RECORDS && !records.contains_key(key) {
            let window = self.window;
            records.retain(|_, f| now.duration_since(f.first) < window);
            if records.len() >= MAX_RECORDS {
                // Still full of live windows: forget the oldest one.
                if let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, f)| f.first)
                    .map(|(k, _)| k.clone())
                {
                    records.remove(&oldest);
                }
            }
        }
        let entry = records.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            first: now,
            last: now,
        });
        if now.duration_since(entry.first) >= self.window {
            *entry = Failures {
                count: 0,
                first: now,
                last: now,
            };
        }
        entry.count += 1;
        entry.last = now;
        entry.count
    }

    fn clear(&self, key: &str) {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// `429 {code}` with `Retry-After: secs`.
fn throttled(code: &'static str, detail: String, secs: u64) -> Problem {
    let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, code, detail)
        .with("retry_after_secs", serde_json::json!(secs));
    problem.retry_after = Some(secs);
    problem
}

/// A short digest that names an account in logs without its address.
fn account_key(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The login guard of one node.
#[derive(Debug)]
pub struct Logins {
    accounts: Tracker,
    addresses: Tracker,
    /// Guest codes sent per address (`accounts::guest`): like failures, a
    /// few are free and then each waits longer, so nobody floods a mailbox.
    codes: Tracker,
    hashes: Arc<Semaphore>,
}

impl Logins {
    pub fn new(config: &LoginConfig) -> Self {
        Logins {
            accounts: Tracker::new(config.failures_per_account, config.window),
            addresses: Tracker::new(config.failures_per_ip, config.window),
            codes: Tracker::new(config.failures_per_account, config.window),
            hashes: Arc::new(Semaphore::new(config.max_concurrent_hashes.max(1) as usize)),
        }
    }

    /// Refuses an attempt that comes before its backoff ended.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Problem> {
        self.refuse_early(&self.accounts, email, ip).map_err(|(account, secs)| {
            tracing::warn!(target: "boxoffice::security", account = %account, ip = ?ip, retry_after_secs = secs, "login throttled");
            throttled("login_throttled", format!("too many failed logins; try again in {secs} s"), secs)
        })
    }

    /// Refuses a guest code for `email` that comes before its backoff ended
    /// (per address, and per client address like failed logins).
    pub fn check_code(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Problem> {
        self.refuse_early(&self.codes, email, ip).map_err(|(account, secs)| {
            tracing::warn!(target: "boxoffice::security", account = %account, ip = ?ip, retry_after_secs = secs, "guest codes throttled");
            throttled(
                "rate_limited",
                format!("too many codes sent to this address; try again in {secs} s"),
                secs,
            )
        })
    }

    /// `Err((account digest, seconds to wait))` while `email` (in `by_account`)
    /// or `ip` must still wait.
    fn refuse_early(
        &self,
        by_account: &Tracker,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), (String, u64)> {
        let now = Instant::now();
        let account = account_key(email);
        let wait = by_account
            .wait(&account, now)
            .into_iter()
            .chain(ip.and_then(|ip| self.addresses.wait(&ip.to_string(), now)))
            .max();
        match wait {
            None => Ok(()),
            Some(wait) => Err((account, wait.as_secs() + u64::from(wait.subsec_nanos() > 0))),
        }
    }

    /// Counts a guest code sent to `email`.
    pub fn code_sent(&self, email: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        self.codes.fail(&account_key(email), now);
        if let Some(ip) = ip {
            self.addresses.fail(&ip.to_string(), now);
        }
    }

    /// Records a wrong password (or unknown address).
    pub fn failed(&self, email: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let account = account_key(email);
        let by_account = self.accounts.fail(&account, now);
        let by_address = ip.map(|ip| self.addresses.fail(&ip.to_string(), now));
        tracing::warn!(target: "boxoffice::security", account = %account, ip = ?ip, failures = by_account, address_failures = ?by_address, "login failed");
    }

    /// Records a successful login: the account's failures are forgiven.
    pub fn succeeded(&self, email: &str) {
        self.accounts.clear(&account_key(email));
    }

    /// A permit to hash one password, or `503 too_busy` when the node already
    /// runs as many hashes as it allows. Hold it until the hash is done.
    pub fn hash_permit(&self) -> Result<OwnedSemaphorePermit, Problem> {
        self.hashes.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!(target: "boxoffice::security", "password hashing at capacity; request refused");
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_busy",
                "this node is hashing as many passwords as it can; retry in a second",
            );
            problem.retry_after = Some(1);
            problem
        })
    }
}

impl Default for Logins {
    fn default() -> Self {
        Logins::new(&LoginConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_a_doubling_delay_then_a_fresh_window() {
        let tracker = Tracker::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(tracker.wait("a", t0), None);
        tracker.fail("a", t0);
        assert_eq!(tracker.wait("a", t0), None, "one failure is free");
        tracker.fail("a", t0);
        assert_eq!(tracker.wait("a", t0), Some(FIRST_DELAY));
        assert_eq!(tracker.wait("a", t0 + FIRST_DELAY), None);
        tracker.fail("a", t0 + FIRST_DELAY);
        assert_eq!(tracker.wait("a", t0 + FIRST_DELAY), Some(FIRST_DELAY * 2));
        assert_eq!(tracker.wait("b", t0), None, "another key is not affected");
        // The window passes: everything is forgiven.
        assert_eq!(tracker.wait("a", t0 + Duration::from_secs(61)), None);
        assert_eq!(tracker.fail("a", t0 + Duration::from_secs(61)), 1);
        tracker.clear("a");
        assert_eq!(tracker.wait("a", t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn the_delay_never_exceeds_the_window() {
        let tracker = Tracker::new(1, Duration::from_secs(30));
        let t0 = Instant::now();
        for _ in 0..40 {
            tracker.fail("a", t0);
        }
        assert_eq!(tracker.wait("a", t0), Some(Duration::from_secs(30)));
    }

    #[test]
    fn hashes_beyond_the_cap_are_refused_not_queued() {
        let logins = Logins::new(&LoginConfig {
            max_concurrent_hashes: 2,
            ..LoginConfig::default()
        });
        let first = logins.hash_permit().unwrap();
        let _second = logins.hash_permit().unwrap();
        let refused = logins.hash_permit().unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, "too_busy", Some(1))
        );
        drop(first);
        assert!(logins.hash_permit().is_ok());
    }

    #[test]
    fn a_success_forgives_the_account_but_not_the_address() {
        let logins = Logins::new(&LoginConfig {
            failures_per_account: 1,
            failures_per_ip: 1,
            ..LoginConfig::default()
        });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        logins.failed("a@example.org", Some(ip));
        assert_eq!(
            logins.check("a@example.org", None).unwrap_err().code,
            "login_throttled"
        );
        assert_eq!(
            logins.check("b@example.org", Some(ip)).unwrap_err().code,
            "login_throttled"
        );
        logins.succeeded("a@example.org");
        assert!(logins.check("a@example.org", None).is_ok());
        assert!(logins.check("a@example.org", Some(ip)).is_err());
    }
}
