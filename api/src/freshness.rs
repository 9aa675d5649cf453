//! Read levels: how fresh an answer must be, where it is served from, and
//! what the answer says about its freshness.
//!
//! `?consistency=` picks one of three levels:
//!
//! - `linearizable`: the group's leader answers after confirming its
//!   leadership with a quorum. Nothing acknowledged before the request is
//!   missing from the answer.
//! - `bounded` (with `max_staleness_ms`, default [`DEFAULT_MAX_STALENESS_MS`]):
//!   this node's replica answers if it can show that it is at most that far
//!   behind (its *closed time*, `transport::replicas::GroupReplica::closed`);
//!   otherwise the leader answers (`fallback=leader`, the default) or the
//!   request fails with 503 `replica_too_stale` (`fallback=none`).
//! - `local`: this node's replica answers with whatever it has; a node
//!   without a replica of the group asks the leader.
//!
//! An answer from a replica of this node says so in headers: the level, the
//! node, the log index it reflects, its closed time and the staleness that
//! follows from it ([`Freshness::apply`]). They are headers, not body fields,
//! so that a cached body (`cache`) stays byte-identical while its staleness
//! grows.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use booking::{Query, QueryResult};
use serde_json::json;

use crate::{AppState, Problem, ReadOptions};

/// The bound a `bounded` read uses when it names none.
pub const DEFAULT_MAX_STALENESS_MS: u64 = 5_000;

pub const READ_LEVEL: HeaderName = HeaderName::from_static("boxoffice-read-level");
pub const SERVED_BY: HeaderName = HeaderName::from_static("boxoffice-served-by");
pub const AS_OF_INDEX: HeaderName = HeaderName::from_static("boxoffice-as-of-index");
pub const AS_OF: HeaderName = HeaderName::from_static("boxoffice-as-of");
pub const AS_OF_MS: HeaderName = HeaderName::from_static("boxoffice-as-of-ms");
pub const STALENESS_MS: HeaderName = HeaderName::from_static("boxoffice-staleness-ms");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Linearizable,
    Bounded {
        max_staleness_ms: u64,
        fallback_to_leader: bool,
    },
    Local,
}

impl Level {
    /// The level `options` ask for, or `default`.
    pub(crate) fn asked(options: &ReadOptions, default: Level) -> Result<Level, Problem> {
        let level = match options.consistency.as_deref() {
            None => default,
            Some("linearizable") => Level::Linearizable,
            Some("local") => Level::Local,
            Some("bounded") => Level::Bounded {
                max_staleness_ms: DEFAULT_MAX_STALENESS_MS,
                fallback_to_leader: true,
            },
            Some(other) => {
                return Err(Problem::invalid_field(
                    "consistency",
                    format!("must be 'linearizable', 'bounded' or 'local', got {other:?}"),
                ));
            }
        };
        let Level::Bounded {
            max_staleness_ms,
            fallback_to_leader,
        } = level
        else {
            if options.max_staleness_ms.is_some() || options.fallback.is_some() {
                return Err(Problem::invalid_field(
                    "consistency",
                    "max_staleness_ms and fallback apply to consistency=bounded only",
                ));
            }
            return Ok(level);
        };
        let fallback_to_leader = match options.fallback.as_deref() {
            None => fallback_to_leader,
            Some("leader") => true,
            Some("none") => false,
            Some(other) => {
                return Err(Problem::invalid_field(
                    "fallback",
                    format!("must be 'leader' or 'none', got {other:?}"),
                ));
            }
        };
        Ok(Level::Bounded {
            max_staleness_ms: options.max_staleness_ms.unwrap_or(max_staleness_ms),
            fallback_to_leader,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Linearizable => "linearizable",
            Level::Bounded { .. } => "bounded",
            Level::Local => "local",
        }
    }
}

/// What an answer reflects. `served_by` is set when this node's replica answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub level: &'static str,
    pub served_by: Option<u64>,
    /// The log index the replica had applied before the query ran.
    pub index: Option<u64>,
    /// The replica's closed time (Unix ms): it reflects every write committed before it.
    pub closed_ms: Option<u64>,
    pub staleness_ms: Option<u64>,
}

impl Freshness {
    fn leader(level: Level) -> Self {
        Self {
            level: level.name(),
            served_by: None,
            index: None,
            closed_ms: None,
            staleness_ms: None,
        }
    }

    /// `response` with the freshness headers.
    pub(crate) fn respond(&self, mut response: Response) -> Response {
        self.apply(&mut response);
        response
    }

    /// Writes the freshness headers onto `response`.
    pub(crate) fn apply(&self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(READ_LEVEL, HeaderValue::from_static(self.level));
        let mut number = |name: HeaderName, value: Option<u64>| {
            if let Some(value) = value {
                headers.insert(name, HeaderValue::from(value));
            }
        };
        number(SERVED_BY, self.served_by);
        number(AS_OF_INDEX, self.index);
        number(AS_OF_MS, self.closed_ms);
        number(STALENESS_MS, self.staleness_ms);
        if let Some(text) = self
            .closed_ms
            .and_then(|ms| crate::dto::local_time(ms, "UTC"))
            .and_then(|t| HeaderValue::from_str(&t).ok())
        {
            headers.insert(AS_OF, text);
        }
    }
}

/// What this node's replica of `group` can say about itself now.
fn local_freshness(state: &AppState, replica: &transport::replicas::GroupReplica, level: Level) -> Freshness {
    let (closed_ms, index) = replica.closed();
    replica_freshness(state.router.node_id(), closed_ms, index, level)
}

/// What an answer kept by time (`cache::Stamp`) says about itself now: what
/// the replica that answered said then, grown older.
pub(crate) fn of_stamp(level: Level, stamp: &crate::cache::Stamp) -> Freshness {
    replica_freshness(stamp.node, stamp.closed_ms, stamp.index, level)
}

fn replica_freshness(node: u64, closed_ms: u64, index: Option<u64>, level: Level) -> Freshness {
    let closed_ms = (closed_ms > 0).then_some(closed_ms);
    Freshness {
        level: level.name(),
        served_by: Some(node),
        index,
        closed_ms,
        staleness_ms: closed_ms.map(|closed| transport::wall_clock_ms().saturating_sub(closed)),
    }
}

/// Whether `freshness` passes `level`'s bound (always, but for `bounded`).
fn within(level: Level, freshness: &Freshness) -> bool {
    match level {
        Level::Bounded { max_staleness_ms, .. } => {
            freshness.staleness_ms.is_some_and(|s| s <= max_staleness_ms)
        }
        Level::Linearizable | Level::Local => true,
    }
}

/// Where a read is answered.
pub(crate) enum Plan {
    /// By this node's replica, which is fresh enough for the level.
    Here(transport::replicas::GroupReplica, Freshness),
    /// By the replica of a node in this node's region (lowest id first),
    /// while this node has none: a region's read replica of a group sits on
    /// one of its nodes.
    Neighbour(Vec<u64>, booking::GroupId, Level),
    /// By the group's leader (through the router).
    Leader(Freshness),
    /// By nobody: the query has an empty answer (`Query::nothing`).
    Nothing(Freshness),
}

/// Decides where `query` is answered at `level`.
pub(crate) fn plan(state: &AppState, level: Level, query: &Query) -> Result<Plan, Problem> {
    let router = &state.router;
    let Some(group) = router.local_group(query) else {
        return Ok(Plan::Nothing(Freshness::leader(level)));
    };
    if level == Level::Linearizable {
        return Ok(Plan::Leader(Freshness::leader(level)));
    }
    // (An event this node's map has not placed yet is the leader's to answer.)
    let Some(group) = group else {
        return Ok(Plan::Leader(Freshness::leader(level)));
    };
    let Some(replica) = router.groups().get(group) else {
        let neighbours = router.neighbours_with(group);
        if !neighbours.is_empty() {
            return Ok(Plan::Neighbour(neighbours, group, level));
        }
        let nobody = Freshness::leader(level);
        return beyond_bound(
            level,
            group,
            &nobody,
            "this node's region has no replica of the group",
        )
        .map(Plan::Leader);
    };
    let freshness = local_freshness(state, &replica, level);
    if !within(level, &freshness) {
        return beyond_bound(
            level,
            group,
            &freshness,
            "this node's replica cannot show it is within the bound",
        )
        .map(Plan::Leader);
    }
    Ok(Plan::Here(replica, freshness))
}

/// A replica missed a bounded read's bound: the leader's turn, or (with
/// `fallback=none`) a refusal.
fn beyond_bound(
    level: Level,
    group: booking::GroupId,
    freshness: &Freshness,
    why: &str,
) -> Result<Freshness, Problem> {
    match level {
        Level::Bounded {
            max_staleness_ms,
            fallback_to_leader: false,
        } => Err(too_stale(group, freshness.staleness_ms, max_staleness_ms, why)),
        _ => Ok(Freshness::leader(level)),
    }
}

/// Answers `query` the way `plan` says.
pub(crate) async fn answer(
    state: &AppState,
    plan: Plan,
    query: Query,
) -> Result<(QueryResult, Freshness), Problem> {
    match plan {
        Plan::Here(replica, freshness) => Ok((replica.state.query(&query), freshness)),
        Plan::Nothing(freshness) => Ok((query.nothing(), freshness)),
        Plan::Leader(freshness) => Ok((state.router.query(query).await?, freshness)),
        Plan::Neighbour(nodes, group, level) => {
            let mut last = Freshness::leader(level);
            for node in nodes {
                // A neighbour that cannot answer is skipped; the leader is the last resort.
                let Ok(Some(reply)) = state.router.read_from_replica_on(node, group, &query).await else {
                    continue;
                };
                let freshness = replica_freshness(node, reply.closed_ms, reply.index, level);
                if within(level, &freshness) {
                    return Ok((reply.result, freshness));
                }
                last = freshness;
            }
            let freshness = beyond_bound(
                level,
                group,
                &last,
                "no replica in this node's region can show it is within the bound",
            )?;
            Ok((state.router.query(query).await?, freshness))
        }
    }
}

/// A read's outcome when cached answers may stand in.
pub(crate) enum Served {
    /// This node's replica answered before and `key` still names that answer.
    Cached(Response),
    Answer(QueryResult, Freshness),
}

/// Like [`answer`], but a `Here` plan whose `key` is in the read cache is
/// answered from it, with this moment's freshness headers.
pub(crate) async fn answer_unless_cached(
    state: &AppState,
    plan: Plan,
    query: Query,
    key: Option<&crate::cache::Key>,
) -> Result<Served, Problem> {
    if let Plan::Here(_, freshness) = &plan
        && let Some(body) = key.and_then(|key| state.cache.get(key))
    {
        return Ok(Served::Cached(
            freshness.respond(crate::cache::json_response(body)),
        ));
    }
    let (answer, freshness) = answer(state, plan, query).await?;
    Ok(Served::Answer(answer, freshness))
}

/// Runs `query` at `level` and says where its answer came from.
pub(crate) async fn read(
    state: &AppState,
    level: Level,
    query: Query,
) -> Result<(QueryResult, Freshness), Problem> {
    let plan = plan(state, level, &query)?;
    answer(state, plan, query).await
}

fn too_stale(group: booking::GroupId, staleness: Option<u64>, max: u64, why: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "replica_too_stale",
        format!("{why} (max_staleness_ms {max}); retry, or read with fallback=leader"),
    )
    .with("group_id", json!(group))
    .with("staleness_ms", json!(staleness))
    .with("max_staleness_ms", json!(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(consistency: Option<&str>, max: Option<u64>, fallback: Option<&str>) -> ReadOptions {
        ReadOptions {
            consistency: consistency.map(str::to_owned),
            max_staleness_ms: max,
            fallback: fallback.map(str::to_owned),
            currency: None,
        }
    }

    #[test]
    fn levels_are_parsed_with_their_defaults_and_refused_when_they_do_not_fit() {
        let asked = |c, m, f| Level::asked(&options(c, m, f), Level::Linearizable);
        assert_eq!(asked(None, None, None).unwrap(), Level::Linearizable);
        assert_eq!(asked(Some("local"), None, None).unwrap(), Level::Local);
        assert_eq!(
            asked(Some("bounded"), None, None).unwrap(),
            Level::Bounded {
                max_staleness_ms: DEFAULT_MAX_STALENESS_MS,
                fallback_to_leader: true
            }
        );
        assert_eq!(
            asked(Some("bounded"), Some(250), Some("none")).unwrap(),
            Level::Bounded {
                max_staleness_ms: 250,
                fallback_to_leader: false
            }
        );
        for (c, m, f) in [
            (Some("eventual"), None, None),
            (Some("local"), Some(10), None),
            (None, None, Some("none")),
            (Some("bounded"), None, Some("anywhere")),
        ] {
            let refused = asked(c, m, f).unwrap_err();
            assert_eq!(refused.code, "invalid_request", "{c:?} {m:?} {f:?}");
        }
        // A route whose default is bounded takes a bound without naming the level.
        let search_default = Level::Bounded {
            max_staleness_ms: DEFAULT_MAX_STALENESS_MS,
            fallback_to_leader: true,
        };
        assert_eq!(
            Level::asked(&options(None, Some(100), None), search_default).unwrap(),
            Level::Bounded {
                max_staleness_ms: 100,
                fallback_to_leader: true
            }
        );
    }
}
