//! The router: any node accepts any request and gets it to the leader of the
//! Raft group that owns it.
//!
//! Finding the group: cluster-map commands and map reads go to the metadata
//! group; everything about an event goes to the group the cluster map places
//! the event on. The map is read from this node's own replica of the metadata
//! group (every node has one), so routing costs no network hop. That copy can
//! lag: an event it does not know yet is looked up once more with a
//! linearizable read on the metadata leader before the router answers
//! "unknown event"; a group it does not know yet is retried until the copy
//! catches up. Placements never move today, so a known placement is final.
//!
//! Finding the leader: a hint a peer gave for that group (fresh after an
//! election), else the leader this node's replica of the group knows, else the
//! group's voters from the map in turn (`Router::target`). How attempts are
//! retried, how each reply is read, and when a write's outcome becomes
//! unknown is `retry.rs`, which works against any `LeaderClient` and is tested
//! alone against a scripted cluster on paused time.
//!
//! What the router does not do: decide outcomes (the booking core does),
//! persist anything, or start replicas (the node does, from the map).

mod expiry;
mod leader;
pub mod membership;
mod retry;

use std::time::Duration;

use booking::{
    AccountQuery, CatalogQuery, ClusterMap, Command, CustomerId, EventCommand, EventId, GroupId, META_GROUP,
    MapAnswer, MapCommand, MapQuery, MapSuccess, NodeId, Query, QueryResult, RegionId, Rejection, ReplicaId,
    RequestId, Response, Success,
};
use openraft::async_runtime::WatchReceiver;
use transport::booking_service::{
    BookingPeer, ForwardedWrite, LeaderReply, ManageOp, ManageOutcome, PeerError, ReplicaAnswer,
};
use transport::channels::ChannelPool;
use transport::replicas::{GroupReplica, Groups};

pub use expiry::run_expiry_ticker;
pub use retry::RouteStats;
use retry::{LeaderClient, LeaderMoved, Retrier};

/// How hard the router tries before giving up on a request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up after this long, counted from the first attempt.
    pub deadline: Duration,
    /// Wait for one attempt's reply at most this long.
    pub attempt_timeout: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Why the router could not deliver a definite answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Nothing was applied; retrying later is safe.
    #[error("no leader could be reached: {reason}")]
    Unavailable { reason: String },
    /// The write may or may not have been applied. Retrying with the same
    /// request id returns the original outcome if it was.
    #[error("the outcome of request {request_id} is unknown: {reason}")]
    OutcomeUnknown { request_id: RequestId, reason: String },
}

pub struct Router {
    node_id: u64,
    /// Events created here without a stated home region are homed here.
    region: RegionId,
    groups: Groups,
    pool: ChannelPool,
    /// The retry loop, its policy and the leaders peers named.
    retrier: Retrier,
}

/// Where one attempt goes.
enum Target {
    Local(GroupReplica),
    Remote { addr: String, replica: ReplicaId },
}

impl Router {
    pub fn new(
        node_id: u64,
        region: RegionId,
        groups: Groups,
        pool: ChannelPool,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            node_id,
            region,
            groups,
            pool,
            retrier: Retrier::new(policy),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// What this node's retry loop has done since it started (`/metrics`).
    pub fn route_stats(&self) -> RouteStats {
        self.retrier.stats()
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// The replicas this node hosts.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// This node's copy of the cluster map (possibly behind the metadata
    /// leader), cloned: for callers that keep it. Prefer [`Router::with_local_map`].
    pub fn local_map(&self) -> Option<ClusterMap> {
        self.with_local_map(ClusterMap::clone)
    }

    /// Runs `f` on this node's copy of the cluster map under its read lock,
    /// without copying it: the map holds every placement, so request paths
    /// must never clone it. Keep `f` short; applies on the metadata group wait.
    pub fn with_local_map<T>(&self, f: impl FnOnce(&ClusterMap) -> T) -> Option<T> {
        let meta = self.groups.get(META_GROUP)?;
        let state = meta.state.read();
        Some(f(state.cluster_map()))
    }

    /// The group owning `event_id` in this node's copy of the map.
    pub fn local_placement(&self, event_id: EventId) -> Option<GroupId> {
        self.with_local_map(|map| map.group_of(event_id)).flatten()
    }

    /// The group owning `event_id`, asking the metadata leader if this node's
    /// copy of the map does not know it yet. `None`: no such event.
    pub async fn group_of(&self, event_id: EventId) -> Result<Option<GroupId>, RouteError> {
        if let Some(group) = self.local_placement(event_id) {
            return Ok(Some(group));
        }
        match self
            .query_group(META_GROUP, Query::Map(MapQuery::Placement(event_id)))
            .await?
        {
            QueryResult::Map(MapAnswer::Placement(group)) => Ok(group),
            other => Err(RouteError::Unavailable {
                reason: format!("metadata group answered a placement read with {other:?}"),
            }),
        }
    }

    /// Applies `command` once, on the leader of the group owning it. An event
    /// being created is placed first (in this node's region, on a shared group).
    pub async fn submit(&self, request_id: RequestId, command: Command) -> Result<Response, RouteError> {
        if let Err(rejection) = command.check_shape() {
            return Ok(Err(rejection));
        }
        let group = match &command {
            Command::Map(_) => META_GROUP,
            housekeeping if housekeeping.is_housekeeping() => {
                return Ok(Err(Rejection::InvalidRequest(
                    "housekeeping entries are proposed by group leaders, not routed".to_owned(),
                )));
            }
            Command::Event(event_id, EventCommand::Create { .. }) => {
                let region = self.region.clone();
                match self.place_event(&request_id, *event_id, region, None).await? {
                    Ok(group) => group,
                    Err(rejection) => return Ok(Err(rejection)),
                }
            }
            other => {
                let event_id = other.event_id().expect("every other command names an event");
                match self.group_of(event_id).await? {
                    Some(group) => group,
                    None => return Ok(Err(Rejection::UnknownEvent)),
                }
            }
        };
        self.submit_to_group(group, request_id, command).await
    }

    /// Creates an event: placed on a shared group homed in `home_region`, or
    /// (`dedicated`) on a new group of its own whose voters meet the survival
    /// goal, then created there. `create` must be a `Command::CreateEvent`.
    pub async fn create_event(
        &self,
        request_id: RequestId,
        create: Command,
        home_region: Option<RegionId>,
        dedicated: Option<booking::Survive>,
    ) -> Result<Response, RouteError> {
        let Command::Event(event_id, EventCommand::Create { .. }) = create else {
            return Ok(Err(Rejection::InvalidRequest("not an event creation".to_owned())));
        };
        if let Err(rejection) = create.check_shape() {
            return Ok(Err(rejection));
        }
        let region = home_region.unwrap_or_else(|| self.region.clone());
        let group = match self.place_event(&request_id, event_id, region, dedicated).await? {
            Ok(group) => group,
            Err(rejection) => return Ok(Err(rejection)),
        };
        self.submit_to_group(group, request_id, create).await
    }

    /// Places `event_id` (idempotently: a placed event keeps its group).
    async fn place_event(
        &self,
        request_id: &RequestId,
        event_id: EventId,
        home_region: RegionId,
        dedicated: Option<booking::Survive>,
    ) -> Result<Result<GroupId, Rejection>, RouteError> {
        if let Some(group) = self.local_placement(event_id) {
            return Ok(Ok(group));
        }
        // Its own request ids, derived from the client's (`derived_id`).
        let place_id = derived_id(request_id, event_id, "place");
        if dedicated.is_none()
            && self.with_local_map(|map| map.wants_event_group(home_region.as_str())) == Some(true)
        {
            self.create_event_group(&derived_id(request_id, event_id, "group"), &home_region)
                .await?;
        }
        // A node-surviving placement keeps the older command, so a cluster
        // part-way through an upgrade still understands it.
        let command = Command::Map(match dedicated {
            Some(booking::Survive::Region) => MapCommand::PlaceDedicated {
                event_id,
                home_region,
                survive: booking::Survive::Region,
            },
            other => MapCommand::PlaceEvent {
                event_id,
                home_region,
                dedicated: other.is_some(),
            },
        });
        match self.submit_to_group(META_GROUP, place_id, command).await? {
            Ok(Success::Map(MapSuccess::Placed { group_id, .. })) => Ok(Ok(group_id)),
            Ok(other) => Err(RouteError::Unavailable {
                reason: format!("placement answered {other:?}"),
            }),
            Err(rejection) => Ok(Err(rejection)),
        }
    }

    /// Makes a shared group in `region` for its events, whose only open group
    /// keeps the region's accounts and so has no read replica abroad
    /// (`ClusterMap::wants_event_group`). Two first events at once may make
    /// two; a region that cannot host one (too few nodes) keeps placing on
    /// its accounts group, which is logged.
    async fn create_event_group(&self, request_id: &RequestId, region: &RegionId) -> Result<(), RouteError> {
        let command = Command::Map(MapCommand::CreateGroup {
            home_region: region.clone(),
        });
        match self
            .submit_to_group(META_GROUP, request_id.clone(), command)
            .await?
        {
            Ok(Success::Map(MapSuccess::GroupCreated { group_id, .. })) => {
                tracing::info!(%region, group = group_id, "made a group for the region's events, apart from its accounts");
                Ok(())
            }
            Ok(other) => Err(RouteError::Unavailable {
                reason: format!("creating a group answered {other:?}"),
            }),
            Err(rejection) => {
                tracing::warn!(
                    %region,
                    %rejection,
                    "no group could be made for the region's events: they share its accounts group, \
                     which keeps no read replicas abroad, so other regions read them from their home"
                );
                Ok(())
            }
        }
    }

    /// Applies `command` once on the leader of `group`. A command refused by
    /// its shape alone (`Command::check_shape`) is answered here and never
    /// proposed, so it reaches no log.
    pub async fn submit_to_group(
        &self,
        group: GroupId,
        request_id: RequestId,
        command: Command,
    ) -> Result<Response, RouteError> {
        if let Err(rejection) = command.check_shape() {
            return Ok(Err(rejection));
        }
        let write = ForwardedWrite { request_id, command };
        self.retrier.submit(self, group, write).await
    }

    /// Answers `query` linearizably: from the leader of the owning group, after
    /// it confirmed its leadership with a quorum.
    pub async fn query(&self, query: Query) -> Result<QueryResult, RouteError> {
        match self.group_of_query(&query).await? {
            Some(group) => self.query_group(group, query).await,
            None => Ok(query.nothing()),
        }
    }

    /// Answers `query` from this node's replica of the owning group without
    /// asking anyone: fast, possibly stale. A node without a replica of that
    /// group asks its leader instead.
    pub async fn query_local(&self, query: Query) -> Result<QueryResult, RouteError> {
        let Some(group) = self.local_group(&query) else {
            return Ok(query.nothing());
        };
        match group.and_then(|g| self.groups.get(g)) {
            Some(replica) => Ok(replica.state.query(&query)),
            None => self.query(query).await,
        }
    }

    /// The group whose local replica answers `query` on this node (`Some(None)`:
    /// the event is not placed in this node's map; `None`: the query is
    /// answered by no group, see `Query::nothing`).
    pub fn local_group(&self, query: &Query) -> Option<Option<GroupId>> {
        let group = match query {
            Query::Map(MapQuery::ClusterMap)
            | Query::Map(MapQuery::Placement(_))
            | Query::Account(AccountQuery::EmailClaim(_))
            | Query::Catalog(CatalogQuery::Venue(_))
            | Query::Catalog(CatalogQuery::Venues { .. })
            | Query::Catalog(CatalogQuery::Listing(..))
            | Query::Catalog(CatalogQuery::Search(_))
            | Query::Catalog(CatalogQuery::FxRates) => Some(META_GROUP),
            Query::Account(AccountQuery::Account(customer)) => account_group_of(customer),
            Query::Account(AccountQuery::ByEmail(_)) | Query::Orders(_) => return None,
            Query::Event(event_id, _) => self.local_placement(*event_id),
        };
        Some(group)
    }

    /// The nodes of this node's region, other than itself, with a replica of
    /// `group` (voter or read replica), lowest id first: where a read that
    /// may be served by a replica goes when this node has none.
    pub fn neighbours_with(&self, group: GroupId) -> Vec<NodeId> {
        self.with_local_map(|map| {
            let mut nodes: Vec<NodeId> = map
                .replicas_of(group)
                .map(|(_, node)| node)
                .filter(|node| {
                    *node != self.node_id && map.nodes.get(node).is_some_and(|n| n.region == self.region)
                })
                .collect();
            nodes.sort_unstable();
            nodes.dedup();
            nodes
        })
        .unwrap_or_default()
    }

    /// Reads `query` from node `node`'s own replica of `group`: `Ok(None)`
    /// if it has none (it was moved away since this node's map).
    pub async fn read_from_replica_on(
        &self,
        node: NodeId,
        group: GroupId,
        query: &Query,
    ) -> Result<Option<ReplicaAnswer>, RouteError> {
        let unavailable = |reason: String| RouteError::Unavailable { reason };
        let addr = self
            .with_local_map(|map| map.nodes.get(&node).map(|n| n.grpc_addr.clone()))
            .flatten()
            .ok_or_else(|| unavailable(format!("node {node} is not in the map")))?;
        BookingPeer::new(&self.pool, &addr)
            .map_err(|e| unavailable(e.to_string()))?
            .read_replica(group, query, self.retrier.policy.attempt_timeout)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Has the leader of `group` carry out a membership or leadership change.
    /// The outer error: no leader gave a definitive answer; the inner: the
    /// leader refused (for example, the change would lose quorum).
    pub async fn manage(&self, group: GroupId, op: ManageOp) -> Result<ManageOutcome, RouteError> {
        self.retrier.manage(self, group, op).await
    }

    async fn group_of_query(&self, query: &Query) -> Result<Option<GroupId>, RouteError> {
        match query {
            Query::Account(AccountQuery::Account(customer)) => Ok(account_group_of(customer)),
            // Which region's accounts group to ask is the caller's choice
            // (`query_group`); orders are asked of every data group.
            Query::Account(AccountQuery::ByEmail(_)) | Query::Orders(_) => Ok(None),
            other => match other.event_id() {
                None => Ok(Some(META_GROUP)),
                Some(event_id) => self.group_of(event_id).await,
            },
        }
    }

    /// Answers `query` linearizably from the leader of `group`.
    pub async fn query_group(&self, group: GroupId, query: Query) -> Result<QueryResult, RouteError> {
        self.retrier.query(self, group, query).await
    }

    /// The voters of `group`, preferred leader first: from the map for data
    /// groups, from the local membership for the metadata group.
    fn voters_of(&self, local: Option<&GroupReplica>, group: GroupId) -> Vec<ReplicaId> {
        if group != META_GROUP
            && let Some(voters) = self
                .with_local_map(|map| map.groups.get(&group).map(|g| g.voters.keys().copied().collect()))
                .flatten()
        {
            return voters;
        }
        match local {
            Some(replica) => replica.voter_ids(),
            None => Vec::new(),
        }
    }
}

impl LeaderClient for Router {
    type Target = Target;

    /// The replica to try next for `group`: a fresh hint, else the leader this
    /// node's replica knows, else the map's voters in turn (`round` picks one).
    fn target(&self, group: GroupId, round: usize, hinted: Option<ReplicaId>) -> Result<Target, String> {
        let local = self.groups.get(group);
        let known_leader = || {
            local
                .as_ref()
                .and_then(|r| r.raft.metrics().borrow_watched().current_leader)
        };
        let replica = match hinted.or_else(known_leader) {
            Some(replica) => replica,
            None => {
                let voters = self.voters_of(local.as_ref(), group);
                if voters.is_empty() {
                    return Err(format!("group {group} is not in this node's cluster map yet"));
                }
                voters[round % voters.len()]
            }
        };
        if let Some(local) = local.as_ref()
            && local.replica_id == replica
        {
            return Ok(Target::Local(local.clone()));
        }
        // The address from the local replica's membership, else from the map.
        let from_membership = local.as_ref().and_then(|r| {
            r.raft
                .metrics()
                .borrow_watched()
                .membership_config
                .membership()
                .get_node(&replica)
                .map(|n| n.grpc_addr.clone())
        });
        let addr = from_membership.or_else(|| {
            self.with_local_map(|map| {
                let node = map.node_of_replica(group, replica)?;
                map.nodes.get(&node).map(|n| n.grpc_addr.clone())
            })
            .flatten()
        });
        match addr {
            Some(addr) => Ok(Target::Remote { addr, replica }),
            None => Err(format!("no address known for replica {replica} of group {group}")),
        }
    }

    /// Only an attempt sent to another node can be held by a leader that is
    /// no more, and only this node's own replica of the group can tell.
    fn leader_moved(&self, group: GroupId, target: &Target) -> LeaderMoved {
        let (Target::Remote { replica, .. }, Some(local)) = (target, self.groups.get(group)) else {
            return LeaderMoved::never();
        };
        let tried = *replica;
        // The server metrics change on elections and membership only, not on
        // every entry, so that a busy group's waiters are not woken for each.
        let mut server = local.raft.server_metrics();
        let known = server.borrow_watched().current_leader;
        LeaderMoved::when(async move {
            loop {
                if server.changed().await.is_err() {
                    return std::future::pending().await;
                }
                let leader = server.borrow_watched().current_leader;
                if let Some(leader) = leader
                    && leader != tried
                    && Some(leader) != known
                {
                    return leader;
                }
            }
        })
    }

    async fn submit(
        &self,
        target: Target,
        group: GroupId,
        write: ForwardedWrite,
    ) -> Result<LeaderReply<Response>, PeerError> {
        let timeout = self.retrier.policy.attempt_timeout;
        match target {
            Target::Local(replica) => Ok(leader::submit(&replica, self.groups.clock(), write, timeout).await),
            Target::Remote { addr, .. } => {
                BookingPeer::new(&self.pool, &addr)?
                    .submit(group, &write, timeout)
                    .await
            }
        }
    }

    async fn query(
        &self,
        target: Target,
        group: GroupId,
        query: Query,
    ) -> Result<LeaderReply<QueryResult>, PeerError> {
        match target {
            Target::Local(replica) => Ok(leader::query(&replica, query).await),
            Target::Remote { addr, .. } => {
                BookingPeer::new(&self.pool, &addr)?
                    .query(group, &query, self.retrier.policy.attempt_timeout)
                    .await
            }
        }
    }

    async fn manage(
        &self,
        target: Target,
        group: GroupId,
        op: ManageOp,
    ) -> Result<LeaderReply<ManageOutcome>, PeerError> {
        match target {
            Target::Local(replica) => {
                Ok(leader::manage(&replica, op, self.retrier.policy.attempt_timeout).await)
            }
            // A learner catching up may take long: allow for it.
            Target::Remote { addr, .. } => {
                BookingPeer::new(&self.pool, &addr)?
                    .manage(group, &op, Duration::from_secs(150))
                    .await
            }
        }
    }
}

/// The group a registered customer's account lives in: their id is
/// `u.{group}.{random}`. Guests and other ids have no account.
pub fn account_group_of(customer: &CustomerId) -> Option<GroupId> {
    customer.account_group()
}

impl transport::booking_service::LeaderService for Router {
    async fn submit_as_leader(&self, group_id: u64, write: ForwardedWrite) -> LeaderReply<Response> {
        // A peer's router checked the shape already; a forwarded write is
        // checked again so that no sender can get a malformed command appended.
        if let Err(rejection) = write.command.check_shape() {
            return LeaderReply::Done(Err(rejection));
        }
        match self.groups.get(group_id) {
            Some(replica) => {
                leader::submit(
                    &replica,
                    self.groups.clock(),
                    write,
                    self.retrier.policy.attempt_timeout,
                )
                .await
            }
            None => LeaderReply::Unavailable {
                reason: format!("node {} has no replica of group {group_id}", self.node_id),
            },
        }
    }

    async fn manage_as_leader(&self, group_id: u64, op: ManageOp) -> LeaderReply<ManageOutcome> {
        match self.groups.get(group_id) {
            Some(replica) => leader::manage(&replica, op, self.retrier.policy.attempt_timeout).await,
            None => LeaderReply::Unavailable {
                reason: format!("node {} has no replica of group {group_id}", self.node_id),
            },
        }
    }

    fn read_replica(&self, group_id: u64, query: &Query) -> Option<ReplicaAnswer> {
        let replica = self.groups.get(group_id)?;
        let (closed_ms, index) = replica.closed();
        Some(ReplicaAnswer {
            result: replica.state.query(query),
            closed_ms,
            index,
        })
    }

    async fn query_as_leader(&self, group_id: u64, query: Query) -> LeaderReply<QueryResult> {
        match self.groups.get(group_id) {
            Some(replica) => leader::query(&replica, query).await,
            None => LeaderReply::Unavailable {
                reason: format!("node {} has no replica of group {group_id}", self.node_id),
            },
        }
    }
}

/// A request id of its own for a step `what` of the client's request
/// `request_id` about `event_id`, derived from it so that a retried request
/// retries the step too rather than doing it again. A key too long for the
/// suffix gets a digest of itself instead, so that two different requests
/// never share a step's id.
fn derived_id(request_id: &RequestId, event_id: EventId, what: &str) -> RequestId {
    RequestId::new(&format!("{request_id}/{what}"))
        .or_else(|_| {
            RequestId::new(&format!(
                "{what}/{event_id}/{:016x}",
                leader::fingerprint_bytes(request_id.as_str().as_bytes())
            ))
        })
        .expect("a short ASCII id is valid")
}
