//! Getting one request to a group's leader: the retry loop, the reading of
//! each reply, and the hints peers give, apart from how a target is found and
//! reached (the [`LeaderClient`]), so that the loop can be tested alone
//! against a scripted cluster.
//!
//! The rules:
//! - "not leader" with a name redirects there at once, at most three times
//!   in a row (two nodes with stale views could name each other forever);
//!   then the loop backs off like any other retry;
//! - an unreachable peer, a leader without quorum, or a missing leader is
//!   retried with exponential backoff and jitter until the deadline;
//! - every attempt of one write carries the same request id, so a retry
//!   never takes a second effect;
//! - a write attempt that may have reached a leader (no reply in time, the
//!   leader lost leadership mid-flight) makes the write's outcome unknown if
//!   the deadline then passes: the caller is told so, never that it failed;
//! - reads and membership steps can run twice without harm, so for them
//!   nothing is ever unknown: giving up means "unavailable";
//! - while no attempt of a write may have taken effect, no attempt is
//!   started that could not finish before the deadline (by the longest one
//!   so far), so that the deadline never makes a write that was never sent
//!   unknown.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use booking::{GroupId, Query, QueryResult, ReplicaId, Response};
use tokio::time::Instant;
use transport::booking_service::{ForwardedWrite, LeaderReply, ManageOp, ManageOutcome, PeerError};

use crate::{RetryPolicy, RouteError};

/// How the retry loop finds and reaches a group's replicas.
pub(crate) trait LeaderClient: Sync {
    /// Where one attempt goes.
    type Target: Send;

    /// The replica to try for `group`: the one a peer just named (`hint`),
    /// else the best guess for attempt `round` (the loop counts rounds so a
    /// guess can move on to the next voter).
    fn target(&self, group: GroupId, round: usize, hint: Option<ReplicaId>) -> Result<Self::Target, String>;

    fn submit(
        &self,
        target: Self::Target,
        group: GroupId,
        write: ForwardedWrite,
    ) -> impl Future<Output = Result<LeaderReply<Response>, PeerError>> + Send;

    fn query(
        &self,
        target: Self::Target,
        group: GroupId,
        query: Query,
    ) -> impl Future<Output = Result<LeaderReply<QueryResult>, PeerError>> + Send;

    fn manage(
        &self,
        target: Self::Target,
        group: GroupId,
        op: ManageOp,
    ) -> impl Future<Output = Result<LeaderReply<ManageOutcome>, PeerError>> + Send;

    /// Watches for the group's leader moving away from `target` (see
    /// [`LeaderMoved`]). Called before the attempt, so that no change made
    /// while it is in flight is missed.
    fn leader_moved(&self, group: GroupId, target: &Self::Target) -> LeaderMoved;
}

/// Whether a request's attempts can leave its outcome unknown, so that the
/// retry loop must take care not to make it so ([`Retrier::with_retries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Certainty {
    /// A write: an attempt cut in flight may have taken effect.
    Guard,
    /// A read or an idempotent step: never unknown.
    Always,
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Try again; `uncertain` if this attempt may have taken effect.
    Retry {
        uncertain: bool,
        reason: String,
    },
}

/// What the retry loop has done since the node started, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    redirects: AtomicU64,
    unknown: AtomicU64,
    unavailable: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Attempts sent to a replica believed to lead (this node's or a peer's).
    pub attempts: u64,
    /// Times a request went round again: after an attempt that did not
    /// settle it, or when no replica to try was known.
    pub retries: u64,
    /// Retries sent straight to the leader a peer named.
    pub redirects: u64,
    /// Writes given up with their outcome unknown.
    pub outcome_unknown: u64,
    /// Requests given up as unavailable (certainly without effect).
    pub unavailable: u64,
}

/// The retry loop with its policy and the leaders peers have named.
pub(crate) struct Retrier {
    pub(crate) policy: RetryPolicy,
    /// Per group, the leader replica a peer named most recently; used before
    /// the client's own guess, which lags behind a fresh election.
    hints: Mutex<HashMap<GroupId, ReplicaId>>,
    counters: Counters,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retrier {
            policy,
            hints: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    pub(crate) fn stats(&self) -> RouteStats {
        let c = &self.counters;
        RouteStats {
            attempts: c.attempts.load(Relaxed),
            retries: c.retries.load(Relaxed),
            redirects: c.redirects.load(Relaxed),
            outcome_unknown: c.unknown.load(Relaxed),
            unavailable: c.unavailable.load(Relaxed),
        }
    }

    /// Counts how a request was given up.
    fn gave_up(&self, uncertain: bool) {
        let counter = if uncertain {
            &self.counters.unknown
        } else {
            &self.counters.unavailable
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Applies `write` once on the leader of `group`.
    pub(crate) async fn submit<C: LeaderClient>(
        &self,
        client: &C,
        group: GroupId,
        write: ForwardedWrite,
    ) -> Result<Response, RouteError> {
        let outcome = self
            .with_retries(client, group, Certainty::Guard, |target| {
                let write = write.clone();
                async move { self.interpret(group, client.submit(target, group, write).await) }
            })
            .await;
        outcome.map_err(|(uncertain, reason)| {
            self.gave_up(uncertain);
            if uncertain {
                RouteError::OutcomeUnknown {
                    request_id: write.request_id.clone(),
                    reason,
                }
            } else {
                RouteError::Unavailable { reason }
            }
        })
    }

    /// Answers `query` from the leader of `group`. A read has no effect, so an
    /// unanswered one is simply retried.
    pub(crate) async fn query<C: LeaderClient>(
        &self,
        client: &C,
        group: GroupId,
        query: Query,
    ) -> Result<QueryResult, RouteError> {
        let outcome = self
            .with_retries(client, group, Certainty::Always, |target| {
                let query = query.clone();
                async move { self.certain(self.interpret(group, client.query(target, group, query).await)) }
            })
            .await;
        outcome.map_err(|(_, reason)| {
            self.gave_up(false);
            RouteError::Unavailable { reason }
        })
    }

    /// Has the leader of `group` carry out `op`. Every operation is idempotent
    /// in its target state, so an unanswered one is simply tried again.
    pub(crate) async fn manage<C: LeaderClient>(
        &self,
        client: &C,
        group: GroupId,
        op: ManageOp,
    ) -> Result<ManageOutcome, RouteError> {
        let outcome = self
            .with_retries(client, group, Certainty::Always, |target| {
                let op = op.clone();
                async move { self.certain(self.interpret(group, client.manage(target, group, op).await)) }
            })
            .await;
        outcome.map_err(|(_, reason)| {
            self.gave_up(false);
            RouteError::Unavailable { reason }
        })
    }

    fn interpret<T>(&self, group: GroupId, reply: Result<LeaderReply<T>, PeerError>) -> Attempt<T> {
        let retry = |uncertain, reason| Attempt::Retry { uncertain, reason };
        match reply {
            Ok(LeaderReply::Done(value)) => Attempt::Done(value),
            Ok(LeaderReply::NotLeader { leader_id }) => {
                match leader_id {
                    Some(leader) => self.hint(group, leader),
                    None => drop(self.take_hint(group)),
                }
                retry(false, "leader changed".into())
            }
            Ok(LeaderReply::OutcomeUnknown { reason }) => retry(true, reason),
            Ok(LeaderReply::Unavailable { reason }) => retry(false, reason),
            Err(PeerError::Unreachable(reason)) => retry(false, reason),
            Err(PeerError::NoReply(reason)) => retry(true, reason),
        }
    }

    /// An attempt of a request that may run twice without harm: it never
    /// makes the outcome unknown.
    fn certain<T>(&self, attempt: Attempt<T>) -> Attempt<T> {
        match attempt {
            Attempt::Retry { reason, .. } => Attempt::Retry {
                uncertain: false,
                reason,
            },
            done => done,
        }
    }

    fn take_hint(&self, group: GroupId) -> Option<ReplicaId> {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group)
    }

    fn has_hint(&self, group: GroupId) -> bool {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&group)
    }

    /// Runs `attempt` against successive targets until it is done or the
    /// deadline passes. Returns `(uncertain, last reason)` on giving up.
    ///
    /// The deadline is hard: an attempt still in flight when it passes is
    /// abandoned (a write's outcome is then unknown), and no backoff sleeps
    /// past it. An attempt is also abandoned as soon as this node learns that
    /// the group's leader moved away from the replica it went to (a leader
    /// paused or cut off holds requests until they time out); the write is
    /// then retried on the new leader at once, with the same request id.
    ///
    /// Under [`Certainty::Guard`], while every attempt so far certainly took
    /// no effect, no attempt is started that could not finish before the
    /// deadline (judged by the longest attempt so far): cut in flight, it
    /// would turn a write that was never sent into an unknown outcome. (A
    /// round trip to a dead peer across a WAN takes that long to be refused.)
    async fn with_retries<C, T, F, Fut>(
        &self,
        client: &C,
        group: GroupId,
        certainty: Certainty,
        mut attempt: F,
    ) -> Result<T, (bool, String)>
    where
        C: LeaderClient,
        F: FnMut(C::Target) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let deadline = Instant::now() + self.policy.deadline;
        let mut backoff = self.policy.first_backoff;
        let mut uncertain = false;
        let mut reason;
        let mut redirects = 0;
        let mut round = 0;
        let mut longest = Duration::ZERO;
        loop {
            // Resolves if the leader moves away from this round's target.
            let mut moved: Option<LeaderMoved> = None;
            match client.target(group, round, self.take_hint(group)) {
                Ok(target) => {
                    let mut watch = client.leader_moved(group, &target);
                    let began = Instant::now();
                    self.counters.attempts.fetch_add(1, Relaxed);
                    let outcome = tokio::select! {
                        biased;
                        outcome = tokio::time::timeout_at(deadline, attempt(target)) => match outcome {
                            Ok(outcome) => outcome,
                            Err(_) => Attempt::Retry {
                                uncertain: true,
                                reason: "the request deadline passed with an attempt in flight".into(),
                            },
                        },
                        leader = watch.wait() => {
                            self.hint(group, leader);
                            Attempt::Retry {
                                uncertain: true,
                                reason: format!("the leader moved to replica {leader} with the request in flight"),
                            }
                        }
                    };
                    longest = longest.max(began.elapsed());
                    match outcome {
                        Attempt::Done(value) => return Ok(value),
                        Attempt::Retry {
                            uncertain: maybe,
                            reason: why,
                        } => {
                            uncertain |= maybe;
                            reason = why;
                            if self.has_hint(group) && redirects < 3 && Instant::now() < deadline {
                                redirects += 1;
                                self.counters.retries.fetch_add(1, Relaxed);
                                self.counters.redirects.fetch_add(1, Relaxed);
                                continue;
                            }
                            redirects = 0;
                            moved = Some(watch);
                        }
                    }
                }
                Err(why) => reason = why,
            }
            round += 1;
            let jitter = rand::random_range(0.5..1.5);
            // Never past the deadline: at it, the sleep ends at once.
            let pause = tokio::time::sleep_until(deadline.min(Instant::now() + backoff.mul_f64(jitter)));
            match moved {
                // A leader elected while backing off is tried at once.
                Some(mut watch) => {
                    tokio::select! {
                        _ = pause => {}
                        leader = watch.wait() => self.hint(group, leader),
                    }
                }
                None => pause.await,
            }
            if Instant::now() >= deadline {
                return Err((uncertain, reason));
            }
            if certainty == Certainty::Guard && !uncertain && Instant::now() + longest > deadline {
                return Err((false, reason));
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
            self.counters.retries.fetch_add(1, Relaxed);
        }
    }

    fn hint(&self, group: GroupId, leader: ReplicaId) {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, leader);
    }
}

/// Resolves with the new leader once this node learns that a group's leader
/// is a replica other than the one an attempt went to; never resolves when
/// this node cannot tell (it hosts no replica of the group).
pub(crate) struct LeaderMoved(Option<Pin<Box<dyn Future<Output = ReplicaId> + Send>>>);

impl LeaderMoved {
    pub(crate) fn never() -> Self {
        LeaderMoved(None)
    }

    pub(crate) fn when(future: impl Future<Output = ReplicaId> + Send + 'static) -> Self {
        LeaderMoved(Some(Box::pin(future)))
    }

    /// Resolves once; pending forever after that.
    async fn wait(&mut self) -> ReplicaId {
        match self.0.as_mut() {
            Some(future) => {
                let leader = future.await;
                self.0 = None;
                leader
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use booking::{Command, CustomerId, RequestId, Success};

    use super::*;

    /// What a scripted replica answers to one attempt.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Step {
        Done,
        NotLeader(Option<ReplicaId>),
        /// The leader lost leadership with the write in flight.
        LostLeadership,
        /// Reached, but no quorum.
        Unavailable,
        /// Never reached.
        Unreachable,
        /// Sent, but no reply within the attempt timeout.
        NoReply,
    }

    /// A group of voters whose answers follow a script: one step per attempt,
    /// then `then` forever. Each attempt takes `attempt_time` of (paused) time.
    struct Scripted {
        voters: Vec<ReplicaId>,
        steps: Mutex<VecDeque<Step>>,
        then: Step,
        attempt_time: Duration,
        /// Per attempt: the replica tried and the request id it carried.
        seen: Mutex<Vec<(ReplicaId, Option<RequestId>)>>,
        /// When (virtual time) this node learns that the leader moved, and where.
        moves: Option<(Instant, ReplicaId)>,
    }

    impl Scripted {
        fn new(steps: &[Step], then: Step) -> Self {
            Scripted {
                voters: vec![1, 2, 3],
                steps: Mutex::new(steps.iter().copied().collect()),
                then,
                attempt_time: Duration::ZERO,
                seen: Mutex::new(Vec::new()),
                moves: None,
            }
        }

        async fn answer<T>(
            &self,
            target: ReplicaId,
            id: Option<RequestId>,
            done: T,
        ) -> Result<LeaderReply<T>, PeerError> {
            self.seen.lock().unwrap().push((target, id));
            let step = self.steps.lock().unwrap().pop_front().unwrap_or(self.then);
            tokio::time::sleep(self.attempt_time).await;
            match step {
                Step::Done => Ok(LeaderReply::Done(done)),
                Step::NotLeader(leader_id) => Ok(LeaderReply::NotLeader { leader_id }),
                Step::LostLeadership => Ok(LeaderReply::OutcomeUnknown {
                    reason: "lost leadership".into(),
                }),
                Step::Unavailable => Ok(LeaderReply::Unavailable {
                    reason: "no quorum".into(),
                }),
                Step::Unreachable => Err(PeerError::Unreachable("refused".into())),
                Step::NoReply => Err(PeerError::NoReply("timed out".into())),
            }
        }

        fn targets(&self) -> Vec<ReplicaId> {
            self.seen.lock().unwrap().iter().map(|(t, _)| *t).collect()
        }
    }

    impl LeaderClient for Scripted {
        type Target = ReplicaId;

        fn target(
            &self,
            _group: GroupId,
            round: usize,
            hint: Option<ReplicaId>,
        ) -> Result<ReplicaId, String> {
            Ok(hint.unwrap_or(self.voters[round % self.voters.len()]))
        }

        async fn submit(
            &self,
            target: ReplicaId,
            _group: GroupId,
            write: ForwardedWrite,
        ) -> Result<LeaderReply<Response>, PeerError> {
            self.answer(target, Some(write.request_id), Ok(Success::Ticked))
                .await
        }

        async fn query(
            &self,
            target: ReplicaId,
            _group: GroupId,
            query: Query,
        ) -> Result<LeaderReply<QueryResult>, PeerError> {
            self.answer(target, None, query.nothing()).await
        }

        async fn manage(
            &self,
            target: ReplicaId,
            _group: GroupId,
            _op: ManageOp,
        ) -> Result<LeaderReply<ManageOutcome>, PeerError> {
            self.answer(target, None, Ok(())).await
        }

        fn leader_moved(&self, _group: GroupId, target: &ReplicaId) -> LeaderMoved {
            match self.moves {
                Some((at, leader)) if leader != *target && Instant::now() < at => {
                    LeaderMoved::when(async move {
                        tokio::time::sleep_until(at).await;
                        leader
                    })
                }
                _ => LeaderMoved::never(),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Write,
        Read,
        Manage,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        Done,
        Unavailable,
        OutcomeUnknown,
    }

    struct Case {
        name: &'static str,
        kind: Kind,
        steps: &'static [Step],
        then: Step,
        attempt_time: Duration,
        expect: Expect,
        /// The replicas tried, in order; `None`: not checked.
        targets: Option<&'static [ReplicaId]>,
        /// Whether the loop backed off at least once (virtual time passed
        /// beyond the attempts' own).
        backed_off: bool,
    }

    const POLICY: RetryPolicy = RetryPolicy {
        deadline: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(5),
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
    };

    fn cases() -> Vec<Case> {
        use Step::*;
        let case = |name, kind, steps, then, expect| Case {
            name,
            kind,
            steps,
            then,
            attempt_time: Duration::ZERO,
            expect,
            targets: None,
            backed_off: false,
        };
        vec![
            Case {
                targets: Some(&[1, 2]),
                ..case(
                    "a named leader is tried at once",
                    Kind::Write,
                    &[NotLeader(Some(2))],
                    Done,
                    Expect::Done,
                )
            },
            Case {
                // 1 names 2, 2 names 3, 3 names 1, 1 names 2 again: three
                // redirects are followed, the fourth waits a backoff first.
                targets: Some(&[1, 2, 3, 1, 2]),
                backed_off: true,
                ..case(
                    "stale hints that point in a ring are followed three times, then backed off",
                    Kind::Write,
                    &[
                        NotLeader(Some(2)),
                        NotLeader(Some(3)),
                        NotLeader(Some(1)),
                        NotLeader(Some(2)),
                    ],
                    Done,
                    Expect::Done,
                )
            },
            Case {
                // 1 names 3; 3 knows no leader, which drops the hint: the
                // next round's guess is the second voter.
                targets: Some(&[1, 3, 2]),
                backed_off: true,
                ..case(
                    "a not-leader without a name falls back to the voters in turn",
                    Kind::Write,
                    &[NotLeader(Some(3)), NotLeader(None)],
                    Done,
                    Expect::Done,
                )
            },
            Case {
                targets: Some(&[1, 2, 3, 1]),
                backed_off: true,
                ..case(
                    "unreachable voters are tried in turn",
                    Kind::Write,
                    &[Unreachable, Unreachable, Unreachable],
                    Done,
                    Expect::Done,
                )
            },
            Case {
                attempt_time: POLICY.attempt_timeout,
                ..case(
                    "a write that times out until the deadline has an unknown outcome",
                    Kind::Write,
                    &[],
                    NoReply,
                    Expect::OutcomeUnknown,
                )
            },
            case(
                "a write that lost its leader stays unknown even if later tries never arrive",
                Kind::Write,
                &[LostLeadership],
                Unreachable,
                Expect::OutcomeUnknown,
            ),
            case(
                "a write that never reached anyone is unavailable",
                Kind::Write,
                &[],
                Unreachable,
                Expect::Unavailable,
            ),
            case(
                "a write refused for want of quorum is unavailable",
                Kind::Write,
                &[],
                Unavailable,
                Expect::Unavailable,
            ),
            Case {
                backed_off: true,
                ..case(
                    "an unknown attempt followed by an answer is answered",
                    Kind::Write,
                    &[NoReply, LostLeadership],
                    Done,
                    Expect::Done,
                )
            },
            Case {
                attempt_time: POLICY.attempt_timeout,
                ..case(
                    "a read that times out until the deadline is unavailable, never unknown",
                    Kind::Read,
                    &[],
                    NoReply,
                    Expect::Unavailable,
                )
            },
            case(
                "a membership step that lost its leader is unavailable, never unknown",
                Kind::Manage,
                &[],
                LostLeadership,
                Expect::Unavailable,
            ),
            Case {
                targets: Some(&[1, 3]),
                ..case(
                    "a read follows a named leader",
                    Kind::Read,
                    &[NotLeader(Some(3))],
                    Done,
                    Expect::Done,
                )
            },
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_loop_follows_its_rules() {
        let request_id = RequestId::new("client-key-1").unwrap();
        let write = ForwardedWrite {
            request_id: request_id.clone(),
            command: Command::Tick,
        };
        for case in cases() {
            let name = case.name;
            let retrier = Retrier::new(POLICY);
            let mut cluster = Scripted::new(case.steps, case.then);
            cluster.attempt_time = case.attempt_time;
            let started = Instant::now();
            let got = match case.kind {
                Kind::Write => match retrier.submit(&cluster, 1, write.clone()).await {
                    Ok(_) => Expect::Done,
                    Err(RouteError::Unavailable { .. }) => Expect::Unavailable,
                    Err(RouteError::OutcomeUnknown { request_id: id, .. }) => {
                        assert_eq!(id, request_id, "{name}: the unknown outcome names the request");
                        Expect::OutcomeUnknown
                    }
                },
                Kind::Read => {
                    let query = Query::Orders(CustomerId::new("alice").unwrap());
                    match retrier.query(&cluster, 1, query).await {
                        Ok(_) => Expect::Done,
                        Err(RouteError::Unavailable { .. }) => Expect::Unavailable,
                        Err(RouteError::OutcomeUnknown { .. }) => Expect::OutcomeUnknown,
                    }
                }
                Kind::Manage => {
                    let op = ManageOp::SetVoters {
                        voters: [1, 2, 3].into(),
                    };
                    match retrier.manage(&cluster, 1, op).await {
                        Ok(_) => Expect::Done,
                        Err(RouteError::Unavailable { .. }) => Expect::Unavailable,
                        Err(RouteError::OutcomeUnknown { .. }) => Expect::OutcomeUnknown,
                    }
                }
            };
            let elapsed = started.elapsed();
            assert_eq!(got, case.expect, "{name}");
            if let Some(targets) = case.targets {
                assert_eq!(cluster.targets(), targets, "{name}: replicas tried");
            }
            let tries = cluster.targets().len() as u32;
            let attempts_alone = case.attempt_time * tries;
            if case.backed_off {
                assert!(
                    elapsed > attempts_alone,
                    "{name}: expected a backoff, took {elapsed:?}"
                );
            } else if case.expect == Expect::Done {
                assert_eq!(elapsed, attempts_alone, "{name}: expected no backoff");
            }
            if case.expect != Expect::Done {
                // Gave up at the deadline: not before, and not after (the
                // deadline is hard, even with an attempt in flight).
                assert_eq!(elapsed, POLICY.deadline, "{name}: gave up after {elapsed:?}");
            }
            // The counters for /metrics saw the same: every attempt, every
            // round after the first, and how the request ended.
            let stats = retrier.stats();
            let tries = u64::from(tries);
            assert_eq!(stats.attempts, tries, "{name}: attempts counted");
            assert_eq!(stats.retries, tries - 1, "{name}: retries counted");
            assert!(stats.redirects <= stats.retries, "{name}: redirects counted");
            assert_eq!(
                (stats.outcome_unknown, stats.unavailable),
                match case.expect {
                    Expect::Done => (0, 0),
                    Expect::OutcomeUnknown => (1, 0),
                    Expect::Unavailable => (0, 1),
                },
                "{name}: how it ended, counted"
            );
            if case.kind == Kind::Write {
                let ids = cluster.seen.lock().unwrap();
                assert!(
                    ids.iter().all(|(_, id)| id.as_ref() == Some(&request_id)),
                    "{name}: every attempt carries the client's request id"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_held_by_a_leader_that_is_no_more_moves_to_the_new_one() {
        let write = ForwardedWrite {
            request_id: RequestId::new("client-key-2").unwrap(),
            command: Command::Tick,
        };
        // Replica 1 (paused) holds the write for the whole attempt timeout;
        // one second in, this node sees replica 3 elected.
        let mut cluster = Scripted::new(&[Step::NoReply], Step::Done);
        cluster.attempt_time = POLICY.attempt_timeout;
        let started = Instant::now();
        cluster.moves = Some((started + Duration::from_secs(1), 3));
        let retrier = Retrier::new(POLICY);
        assert!(retrier.submit(&cluster, 1, write.clone()).await.is_ok());
        assert_eq!(cluster.targets(), [1, 3], "the write went to the new leader");
        // One second waiting on 1, then 3's own (scripted) attempt time:
        // not the old leader's full timeout first.
        assert_eq!(started.elapsed(), Duration::from_secs(1) + POLICY.attempt_timeout);

        // A leader elected while the loop backs off is tried at once.
        let mut cluster = Scripted::new(&[Step::Unreachable], Step::Done);
        cluster.moves = Some((Instant::now() + Duration::from_millis(5), 2));
        let started = Instant::now();
        assert!(retrier.submit(&cluster, 1, write).await.is_ok());
        assert_eq!(cluster.targets(), [1, 2]);
        assert_eq!(started.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_was_never_sent_is_not_made_unknown_by_the_deadline() {
        let write = ForwardedWrite {
            request_id: RequestId::new("client-key-4").unwrap(),
            command: Command::Tick,
        };
        // Every attempt takes 300 ms to be refused (a dead peer across a
        // WAN): the loop starts none it could not finish, so the deadline
        // never cuts one in flight and the write stays certainly not done.
        let mut cluster = Scripted::new(&[], Step::Unreachable);
        cluster.attempt_time = Duration::from_millis(300);
        let started = Instant::now();
        let got = Retrier::new(POLICY).submit(&cluster, 1, write.clone()).await;
        assert!(matches!(got, Err(RouteError::Unavailable { .. })), "{got:?}");
        let elapsed = started.elapsed();
        assert!(
            elapsed <= POLICY.deadline && elapsed + Duration::from_millis(300) > POLICY.deadline,
            "gave up after {elapsed:?}: not within one attempt of the deadline"
        );
        // Once an attempt may have taken effect, the loop tries on until the
        // deadline itself: nothing is lost by it.
        let mut cluster = Scripted::new(&[Step::NoReply], Step::Unreachable);
        cluster.attempt_time = Duration::from_millis(300);
        let started = Instant::now();
        let got = Retrier::new(POLICY).submit(&cluster, 1, write).await;
        assert!(matches!(got, Err(RouteError::OutcomeUnknown { .. })), "{got:?}");
        assert_eq!(started.elapsed(), POLICY.deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_cuts_an_attempt_in_flight() {
        let write = ForwardedWrite {
            request_id: RequestId::new("client-key-3").unwrap(),
            command: Command::Tick,
        };
        // Each attempt would take 7 s: the second is cut at the deadline.
        let mut cluster = Scripted::new(&[], Step::NoReply);
        cluster.attempt_time = Duration::from_secs(7);
        let started = Instant::now();
        let got = Retrier::new(POLICY).submit(&cluster, 1, write).await;
        assert!(matches!(got, Err(RouteError::OutcomeUnknown { .. })), "{got:?}");
        assert_eq!(started.elapsed(), POLICY.deadline);
        assert_eq!(cluster.targets().len(), 2);
    }
}
