//! The cluster map: the nodes, the Raft groups with their replicas, and the
//! group that owns each event.
//!
//! The map is state of the *metadata group* ([`META_GROUP`]), which has a
//! replica on every node, so every node can route from its own copy. It
//! changes only through [`MapCommand`]s applied like any other command:
//! deterministic, de-duplicated by request id, and each change bumps the
//! map's `epoch` by one, so two copies with the same epoch are identical.
//!
//! Placement decisions live here, in one function each: which nodes carry a
//! new group's replicas ([`ClusterMap::choose_nodes`]) and which group takes a
//! new event ([`ClusterMap::choose_group`]). They are pure functions of the map,
//! so every replica of the metadata group decides the same.
//!
//! Replica ids: a node's id is also its replica id in the metadata group; every
//! replica of a data group gets a fresh id from `next_replica_id`, starting at
//! [`FIRST_DATA_REPLICA_ID`], so no two replicas anywhere ever share an id, even
//! when a node leaves a group and later joins it again.
//!
//! What this module does not do: start or stop replicas, or talk to Raft. The
//! node watches the map and makes its replicas match it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Currency, EventId, NodeId, RegionId};
use crate::places::{is_country_code, is_locale, is_time_zone_name};
use crate::rejection::Rejection;

pub type GroupId = u64;
pub type ReplicaId = u64;

/// The group holding the cluster map, with one replica on every node.
pub const META_GROUP: GroupId = 0;
/// Data-group replica ids start here. Node ids must be below it, because a
/// node id doubles as that node's replica id in the metadata group.
pub const FIRST_DATA_REPLICA_ID: ReplicaId = 1 << 40;
/// Most data groups one initialisation or one request may create.
pub const MAX_GROUPS_PER_REQUEST: u32 = 4096;

/// A region as customers meet it: its name, the currency and language its
/// endpoint answers in unless a request asks otherwise, its time zone, and
/// where its public HTTP endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInfo {
    pub name: String,
    pub currency: Currency,
    /// A BCP 47 tag such as `en-IE` or `ja-JP`.
    pub locale: String,
    /// An IANA time zone name such as `Europe/Dublin`, or `UTC`.
    pub time_zone: String,
    /// The region's public base URL (what its load balancer answers on).
    pub http_endpoint: Option<String>,
    /// ISO 3166-1 countries whose venues' events are homed here by default.
    /// A country belongs to one region at most.
    pub countries: Vec<String>,
}

/// Longest region name and endpoint kept.
pub const MAX_REGION_TEXT: usize = 200;

/// Most countries one region lists (there are 249).
pub const MAX_REGION_COUNTRIES: usize = 249;

impl RegionInfo {
    pub fn validate(&self) -> Result<(), Rejection> {
        let invalid = |why: String| Err(Rejection::InvalidRequest(why));
        if self.name.trim().is_empty()
            || self.name.len() > MAX_REGION_TEXT
            || self.name.chars().any(char::is_control)
        {
            return invalid(format!("a region name is 1..={MAX_REGION_TEXT} bytes of text"));
        }
        if self.currency.minor_units().is_none() {
            return invalid(format!(
                "{} is not an ISO 4217 currency prices can be shown in",
                self.currency
            ));
        }
        if !is_locale(&self.locale) {
            return invalid(format!(
                "locale {:?} must be a BCP 47 tag such as en, en-IE or ja-JP",
                self.locale
            ));
        }
        if !is_time_zone_name(&self.time_zone) {
            return invalid(format!(
                "time_zone {:?} must be an IANA name such as Europe/Dublin, or UTC",
                self.time_zone
            ));
        }
        if self.countries.len() > MAX_REGION_COUNTRIES {
            return invalid(format!("a region lists at most {MAX_REGION_COUNTRIES} countries"));
        }
        if let Some(bad) = self.countries.iter().find(|c| !is_country_code(c)) {
            return invalid(format!(
                "country {bad:?} must be an ISO 3166-1 alpha-2 code such as IE"
            ));
        }
        if let Some(url) = &self.http_endpoint {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok
                || url.len() > MAX_REGION_TEXT
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return invalid(format!("http_endpoint {url:?} must be an http(s) URL"));
            }
        }
        Ok(())
    }

    /// What a region gets when nobody described it: its id as its name,
    /// euros, English, UTC.
    pub fn plain(region: &RegionId) -> RegionInfo {
        RegionInfo {
            name: region.to_string(),
            currency: Currency::EUR,
            locale: "en".to_owned(),
            time_zone: "UTC".to_owned(),
            http_endpoint: None,
            countries: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub region: RegionId,
    pub grpc_addr: String,
    pub http_addr: String,
    /// Being removed: takes no new replicas, and its replicas are moving away.
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Where the group's leader should live: the home region of its events.
    pub home_region: RegionId,
    /// Voting replicas, by replica id.
    pub voters: BTreeMap<ReplicaId, NodeId>,
    /// Replicas catching up before they become voters, by replica id.
    pub learners: BTreeMap<ReplicaId, NodeId>,
    /// Set when the group was created for one big on-sale; it takes no other event.
    pub dedicated_to: Option<EventId>,
    /// Events placed on this group (for least-loaded placement).
    pub events: u64,
}

impl GroupInfo {
    /// The replica (voter or learner) this group has on `node`, if any.
    pub fn replica_on(&self, node: NodeId) -> Option<ReplicaId> {
        self.voters
            .iter()
            .chain(&self.learners)
            .find_map(|(&replica, &n)| (n == node).then_some(replica))
    }

    /// Every replica, voters and learners, with its node.
    pub fn replicas(&self) -> impl Iterator<Item = (ReplicaId, NodeId)> + '_ {
        self.voters.iter().chain(&self.learners).map(|(&r, &n)| (r, n))
    }
}

/// The map's counters, stored as one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapMeta {
    /// Bumped by every change; 0 means "not initialised".
    pub epoch: u64,
    pub next_group_id: GroupId,
    pub next_replica_id: ReplicaId,
    /// Voters per data group.
    pub replication: u8,
}

/// Whether data groups keep read replicas: non-voting learners that let a
/// region without a voter of the group serve its reads from a node of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadReplicas {
    /// One learner in every region that holds no voter of the group (but
    /// never for an accounts group: personal data stays in its region).
    #[default]
    EveryRegion,
    /// No learners beyond those of a replica move.
    None,
}

/// What a group's voters must survive (CockroachDB's ZONE and REGION goals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Survive {
    /// All voters in the home region (when it has enough nodes): a write
    /// needs no WAN round trip; losing the home region stops the group.
    #[default]
    Node,
    /// Voters in three regions, the leader at home: a write pays one WAN
    /// round trip, and the group keeps its quorum when any one region is lost.
    Region,
}

/// Cluster-wide placement rules, stored as one record. A map without the
/// record (written before placement rules existed) places as it always did,
/// so replaying an old log gives the old answers; read replicas still
/// default to every region, since they are placed by explicit commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementPolicy {
    pub read_replicas: ReadReplicas,
}

/// A change of the cluster map. Variants are encoded by position: a new one
/// goes at the end, or old logs would read as other commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapCommand {
    /// Sets the map up once: the founding nodes and `groups_per_region` data
    /// groups homed in each region that has a node. Repeating it with any
    /// arguments after it succeeded is rejected (`map_initialised`).
    Initialise {
        nodes: Vec<(NodeId, NodeInfo)>,
        groups_per_region: u32,
        replication: u8,
    },
    /// Places an event on a group. Already placed: the existing placement is
    /// returned. `dedicated`: a new group is created for this event alone.
    PlaceEvent {
        event_id: EventId,
        home_region: RegionId,
        dedicated: bool,
    },
    /// Creates an empty data group homed in `home_region`.
    CreateGroup { home_region: RegionId },
    /// Registers a node joining the cluster (it carries nothing yet).
    AddNode { node_id: NodeId, info: NodeInfo },
    /// Gives `group` a new learner replica on `node_id` (the first step of
    /// moving or adding a replica). Answers the allocated replica id.
    AddLearner { group_id: GroupId, node_id: NodeId },
    /// Records a committed Raft membership change of `group`: `replica`
    /// became a voter and `replaces` (if any) left the group.
    PromoteLearner {
        group_id: GroupId,
        replica_id: ReplicaId,
        replaces: Option<ReplicaId>,
    },
    /// Marks a node as leaving: it takes no new replicas.
    DrainNode { node_id: NodeId },
    /// Forgets a node that carries no replica any more.
    RemoveNode { node_id: NodeId },
    /// Describes a region (adds it to the region table, or replaces its
    /// entry): what its endpoint shows by default.
    SetRegion { region: RegionId, info: RegionInfo },
    /// Sets the cluster's placement rules.
    SetPlacementPolicy { policy: PlacementPolicy },
    /// Adds and drops read replicas (see [`ClusterMap::read_replica_plan`]).
    /// Each add allocates a replica id; an add or drop the map no longer
    /// needs (the group or node went, the replica is there already or gone)
    /// is skipped, so a plan made from a slightly older map is harmless.
    PlaceReadReplicas {
        adds: Vec<(GroupId, NodeId)>,
        drops: Vec<(GroupId, ReplicaId)>,
    },
    /// [`MapCommand::Initialise`] under placement rules, recorded first, so
    /// that the first groups already follow them: each region's accounts
    /// group has its voters in its region only. (A new variant, so that an
    /// old log's `Initialise` still places as it did.)
    Bootstrap {
        nodes: Vec<(NodeId, NodeInfo)>,
        groups_per_region: u32,
        replication: u8,
        policy: PlacementPolicy,
    },
    /// Places an event on a group of its own whose voters meet `survive`
    /// (`Survive::Node` is `PlaceEvent` with `dedicated`).
    PlaceDedicated {
        event_id: EventId,
        home_region: RegionId,
        survive: Survive,
    },
}

/// What a map command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapSuccess {
    Initialised {
        epoch: u64,
        groups: Vec<GroupId>,
    },
    Placed {
        event_id: EventId,
        group_id: GroupId,
        epoch: u64,
    },
    GroupCreated {
        group_id: GroupId,
        epoch: u64,
    },
    LearnerAdded {
        group_id: GroupId,
        replica_id: ReplicaId,
        epoch: u64,
    },
    Changed {
        epoch: u64,
    },
}

pub type MapResponse = Result<MapSuccess, Rejection>;

/// Reads of the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapQuery {
    /// The whole map.
    ClusterMap,
    /// The group owning an event.
    Placement(EventId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapAnswer {
    ClusterMap(Box<ClusterMap>),
    Placement(Option<GroupId>),
}

/// Where the map's records are kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MapKey {
    /// The map's counters.
    Meta,
    Node(NodeId),
    Group(GroupId),
    /// The group that owns an event.
    Placement(EventId),
    Region(RegionId),
    /// A group's read replicas.
    ReadReplicas(GroupId),
    /// The placement rules.
    Policy,
    /// A group that must survive the loss of a region.
    SurvivesRegion(GroupId),
}

/// The map's stored records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapValue {
    Meta(MapMeta),
    Node(NodeInfo),
    Group(GroupInfo),
    Placement(GroupId),
    Region(RegionInfo),
    ReadReplicas(BTreeMap<ReplicaId, NodeId>),
    Policy(PlacementPolicy),
    SurvivesRegion,
}

/// Why the map can be in a bad state after loading records.
pub(crate) type MapLoadError = String;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    pub meta: MapMeta,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub groups: BTreeMap<GroupId, GroupInfo>,
    pub placements: BTreeMap<EventId, GroupId>,
    /// What each described region shows by default (see [`RegionInfo`]).
    pub regions: BTreeMap<RegionId, RegionInfo>,
    /// Per data group, its read replicas: learners that never vote, one in
    /// each region without a voter of the group, by replica id.
    pub read_replicas: BTreeMap<GroupId, BTreeMap<ReplicaId, NodeId>>,
    /// `None`: written before placement rules were recorded.
    pub policy: Option<PlacementPolicy>,
    /// Groups whose voters span three regions ([`Survive::Region`]).
    pub survive_region: std::collections::BTreeSet<GroupId>,
}

impl ClusterMap {
    pub fn epoch(&self) -> u64 {
        self.meta.epoch
    }

    pub fn is_initialised(&self) -> bool {
        self.meta.epoch > 0
    }

    pub fn group_of(&self, event_id: EventId) -> Option<GroupId> {
        self.placements.get(&event_id).copied()
    }

    /// The group that keeps the accounts of `region`: its lowest-id shared
    /// (not dedicated) data group. Groups are never deleted or re-homed, so
    /// the answer never changes once a region has a group.
    pub fn accounts_group(&self, region: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .find(|&(&id, group)| {
                id != META_GROUP && group.home_region == region && group.dedicated_to.is_none()
            })
            .map(|(&id, _)| id)
    }

    /// The node a data-group replica lives on; for the metadata group the
    /// replica id is the node id.
    pub fn node_of_replica(&self, group_id: GroupId, replica: ReplicaId) -> Option<NodeId> {
        if group_id == META_GROUP {
            return self.nodes.contains_key(&replica).then_some(replica);
        }
        self.replicas_of(group_id)
            .find_map(|(r, n)| (r == replica).then_some(n))
    }

    /// The replica of `group_id` on `node`: a voter, a learner being moved
    /// in, or a read replica.
    pub fn replica_on(&self, group_id: GroupId, node: NodeId) -> Option<ReplicaId> {
        self.replicas_of(group_id)
            .find_map(|(r, n)| (n == node).then_some(r))
    }

    /// Every replica of a data group (voters, moving learners, read
    /// replicas) with its node.
    pub fn replicas_of(&self, group_id: GroupId) -> impl Iterator<Item = (ReplicaId, NodeId)> + '_ {
        let group = self.groups.get(&group_id);
        group
            .into_iter()
            .flat_map(|g| g.replicas())
            .chain(self.read_replicas_of(group_id))
    }

    /// The read replicas of `group_id`, with their nodes.
    pub fn read_replicas_of(&self, group_id: GroupId) -> impl Iterator<Item = (ReplicaId, NodeId)> + '_ {
        self.read_replicas
            .get(&group_id)
            .into_iter()
            .flatten()
            .map(|(&r, &n)| (r, n))
    }

    /// The placement rules in force (the defaults for an older map).
    pub fn policy(&self) -> PlacementPolicy {
        self.policy.unwrap_or_default()
    }

    /// The read replicas the map should have and does not, and those it has
    /// and should not, as one command; `None` when it has exactly the right
    /// ones. A pure function of the map: the metadata leader proposes it
    /// whenever nodes, regions or groups change (`node/src/read_replicas.rs`).
    ///
    /// A data group wants one read replica in each region that has an open
    /// (not draining) node and no voter or moving learner of the group, on
    /// that region's least-loaded open node. An accounts group wants none:
    /// personal data stays in its region. A read replica on a draining node,
    /// in a region that now has a voter, or doubling another in its region
    /// goes.
    pub fn read_replica_plan(&self) -> Option<MapCommand> {
        let mut load = self.replica_counts();
        for replicas in self.read_replicas.values() {
            for node in replicas.values() {
                *load.entry(*node).or_default() += 1;
            }
        }
        let mut adds = Vec::new();
        let mut drops = Vec::new();
        let open_regions: std::collections::BTreeSet<&RegionId> = self
            .nodes
            .values()
            .filter(|n| !n.draining)
            .map(|n| &n.region)
            .collect();
        let accounts: std::collections::BTreeSet<GroupId> = open_regions
            .iter()
            .filter_map(|region| self.accounts_group(region.as_str()))
            .collect();
        for (&group_id, group) in &self.groups {
            let wanted =
                self.policy().read_replicas == ReadReplicas::EveryRegion && !accounts.contains(&group_id);
            let voting_regions: std::collections::BTreeSet<&RegionId> = group
                .replicas()
                .filter_map(|(_, node)| self.nodes.get(&node).map(|n| &n.region))
                .collect();
            let mut served: std::collections::BTreeSet<&RegionId> = std::collections::BTreeSet::new();
            for (replica, node) in self.read_replicas_of(group_id) {
                let keep = wanted
                    && self.nodes.get(&node).is_some_and(|info| {
                        !info.draining
                            && !voting_regions.contains(&info.region)
                            && group.replica_on(node).is_none()
                            && served.insert(&info.region)
                    });
                if !keep {
                    drops.push((group_id, replica));
                }
            }
            if !wanted {
                continue;
            }
            for region in &open_regions {
                if voting_regions.contains(region) || served.contains(region) {
                    continue;
                }
                let target = self
                    .nodes
                    .iter()
                    .filter(|(id, n)| !n.draining && n.region == **region && group.replica_on(**id).is_none())
                    .min_by_key(|(id, _)| (load.get(*id).copied().unwrap_or(0), **id))
                    .map(|(id, _)| *id);
                if let Some(node) = target {
                    *load.entry(node).or_default() += 1;
                    adds.push((group_id, node));
                }
            }
        }
        // One entry stays small; the rest follows in the next plan.
        drops.truncate(crate::shape::MAX_READ_REPLICA_CHANGES);
        adds.truncate(crate::shape::MAX_READ_REPLICA_CHANGES - drops.len());
        (!adds.is_empty() || !drops.is_empty()).then_some(MapCommand::PlaceReadReplicas { adds, drops })
    }

    fn place_read_replicas(
        &mut self,
        adds: &[(GroupId, NodeId)],
        drops: &[(GroupId, ReplicaId)],
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.require_initialised()?;
        let mut changed = false;
        for (group_id, replica_id) in drops {
            let Some(replicas) = self.read_replicas.get_mut(group_id) else {
                continue;
            };
            if replicas.remove(replica_id).is_some() {
                if replicas.is_empty() {
                    self.read_replicas.remove(group_id);
                }
                dirty.insert(MapKey::ReadReplicas(*group_id));
                changed = true;
            }
        }
        for &(group_id, node_id) in adds {
            let open = self.nodes.get(&node_id).is_some_and(|n| !n.draining);
            if !open || !self.groups.contains_key(&group_id) || self.replica_on(group_id, node_id).is_some() {
                continue;
            }
            let replica_id = self.meta.next_replica_id;
            self.meta.next_replica_id += 1;
            self.read_replicas
                .entry(group_id)
                .or_default()
                .insert(replica_id, node_id);
            dirty.insert(MapKey::ReadReplicas(group_id));
            changed = true;
        }
        if changed {
            self.bump(dirty);
        }
        Ok(MapSuccess::Changed {
            epoch: self.meta.epoch,
        })
    }

    /// Applies one map command, marking every record it writes in `dirty`.
    pub(crate) fn apply(
        &mut self,
        command: &MapCommand,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        match command {
            MapCommand::Initialise {
                nodes,
                groups_per_region,
                replication,
            } => self.initialise(nodes, *groups_per_region, *replication, None, dirty),
            MapCommand::Bootstrap {
                nodes,
                groups_per_region,
                replication,
                policy,
            } => self.initialise(nodes, *groups_per_region, *replication, Some(*policy), dirty),
            MapCommand::PlaceEvent {
                event_id,
                home_region,
                dedicated,
            } => self.place_event(*event_id, home_region, *dedicated, dirty),
            MapCommand::AddNode { node_id, info } => self.add_node(*node_id, info, dirty),
            MapCommand::AddLearner { group_id, node_id } => self.add_learner(*group_id, *node_id, dirty),
            MapCommand::PromoteLearner {
                group_id,
                replica_id,
                replaces,
            } => self.promote(*group_id, *replica_id, *replaces, dirty),
            MapCommand::DrainNode { node_id } => {
                self.require_initialised()?;
                let node = self
                    .nodes
                    .get_mut(node_id)
                    .ok_or(Rejection::UnknownNode { node_id: *node_id })?;
                if !node.draining {
                    node.draining = true;
                    dirty.insert(MapKey::Node(*node_id));
                    self.bump(dirty);
                }
                Ok(MapSuccess::Changed {
                    epoch: self.meta.epoch,
                })
            }
            MapCommand::RemoveNode { node_id } => {
                self.require_initialised()?;
                if !self.nodes.contains_key(node_id) {
                    return Err(Rejection::UnknownNode { node_id: *node_id });
                }
                let carried = self
                    .groups
                    .values()
                    .filter(|g| g.replicas().any(|(_, n)| n == *node_id))
                    .count() as u32;
                if carried > 0 {
                    return Err(Rejection::NodeHasReplicas {
                        node_id: *node_id,
                        replicas: carried,
                    });
                }
                // Read replicas hold nothing that is not elsewhere: they go
                // with their node (the planner places new ones).
                for (group_id, replicas) in &mut self.read_replicas {
                    if replicas.values().any(|n| n == node_id) {
                        replicas.retain(|_, n| n != node_id);
                        dirty.insert(MapKey::ReadReplicas(*group_id));
                    }
                }
                self.read_replicas.retain(|_, replicas| !replicas.is_empty());
                self.nodes.remove(node_id);
                dirty.insert(MapKey::Node(*node_id));
                self.bump(dirty);
                Ok(MapSuccess::Changed {
                    epoch: self.meta.epoch,
                })
            }
            MapCommand::SetRegion { region, info } => {
                self.require_initialised()?;
                info.validate()?;
                for country in &info.countries {
                    if let Some(other) = self.region_of_country(country).filter(|other| *other != region) {
                        return Err(Rejection::InvalidRequest(format!(
                            "country {country} is already homed in region {other}"
                        )));
                    }
                }
                if self.regions.get(region) != Some(info) {
                    self.regions.insert(region.clone(), info.clone());
                    dirty.insert(MapKey::Region(region.clone()));
                    self.bump(dirty);
                }
                Ok(MapSuccess::Changed {
                    epoch: self.meta.epoch,
                })
            }
            MapCommand::SetPlacementPolicy { policy } => {
                self.require_initialised()?;
                if self.policy != Some(*policy) {
                    self.policy = Some(*policy);
                    dirty.insert(MapKey::Policy);
                    self.bump(dirty);
                }
                Ok(MapSuccess::Changed {
                    epoch: self.meta.epoch,
                })
            }
            MapCommand::PlaceReadReplicas { adds, drops } => self.place_read_replicas(adds, drops, dirty),
            MapCommand::PlaceDedicated {
                event_id,
                home_region,
                survive,
            } => self.place_event_surviving(*event_id, home_region, *survive, dirty),
            MapCommand::CreateGroup { home_region } => {
                self.require_initialised()?;
                self.require_region(home_region.as_str())?;
                let group_id = self.create_group(home_region, None, dirty)?;
                self.bump(dirty);
                Ok(MapSuccess::GroupCreated {
                    group_id,
                    epoch: self.meta.epoch,
                })
            }
        }
    }

    fn require_initialised(&self) -> Result<(), Rejection> {
        if self.is_initialised() {
            Ok(())
        } else {
            Err(Rejection::MapNotInitialised)
        }
    }

    fn require_region(&self, region: &str) -> Result<(), Rejection> {
        if self.nodes.values().any(|n| n.region == region) {
            Ok(())
        } else {
            Err(Rejection::UnknownRegion {
                region: region.to_owned(),
            })
        }
    }

    fn bump(&mut self, dirty: &mut std::collections::BTreeSet<MapKey>) {
        self.meta.epoch += 1;
        dirty.insert(MapKey::Meta);
    }

    fn add_node(
        &mut self,
        node_id: NodeId,
        info: &NodeInfo,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.require_initialised()?;
        if node_id == 0 || node_id >= FIRST_DATA_REPLICA_ID {
            return Err(Rejection::InvalidRequest(
                "node ids must be between 1 and 2^40 - 1".to_owned(),
            ));
        }
        let joining = NodeInfo {
            draining: false,
            ..info.clone()
        };
        match self.nodes.get(&node_id) {
            // Adding the same node again is a no-op, so a retried join is harmless.
            Some(existing) if *existing == joining => Ok(MapSuccess::Changed {
                epoch: self.meta.epoch,
            }),
            Some(_) => Err(Rejection::NodeExists { node_id }),
            None => {
                // Two nodes at one address would each receive the other's
                // traffic: the address names the node that has it.
                if let Some((&other, _)) = self
                    .nodes
                    .iter()
                    .find(|(_, n)| n.grpc_addr == joining.grpc_addr || n.http_addr == joining.http_addr)
                {
                    return Err(Rejection::NodeExists { node_id: other });
                }
                self.nodes.insert(node_id, joining);
                dirty.insert(MapKey::Node(node_id));
                self.bump(dirty);
                Ok(MapSuccess::Changed {
                    epoch: self.meta.epoch,
                })
            }
        }
    }

    fn add_learner(
        &mut self,
        group_id: GroupId,
        node_id: NodeId,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.require_initialised()?;
        let node = self
            .nodes
            .get(&node_id)
            .ok_or(Rejection::UnknownNode { node_id })?;
        if node.draining {
            return Err(Rejection::NodeDraining { node_id });
        }
        let group = self
            .groups
            .get(&group_id)
            .ok_or(Rejection::UnknownGroup { group_id })?;
        if self.read_replicas_of(group_id).any(|(_, n)| n == node_id) {
            return Err(Rejection::InvalidRequest(format!(
                "node {node_id} carries a read replica of group {group_id}; move the voter to another node (the read replica goes by itself once its region holds a voter)"
            )));
        }
        if let Some(replica_id) = group.replica_on(node_id) {
            // Already there (a retried step): answer the same replica.
            return Ok(MapSuccess::LearnerAdded {
                group_id,
                replica_id,
                epoch: self.meta.epoch,
            });
        }
        let replica_id = self.meta.next_replica_id;
        self.meta.next_replica_id += 1;
        self.groups
            .get_mut(&group_id)
            .expect("checked above")
            .learners
            .insert(replica_id, node_id);
        dirty.insert(MapKey::Group(group_id));
        self.bump(dirty);
        Ok(MapSuccess::LearnerAdded {
            group_id,
            replica_id,
            epoch: self.meta.epoch,
        })
    }

    fn promote(
        &mut self,
        group_id: GroupId,
        replica_id: ReplicaId,
        replaces: Option<ReplicaId>,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.require_initialised()?;
        let group = self
            .groups
            .get_mut(&group_id)
            .ok_or(Rejection::UnknownGroup { group_id })?;
        let already_done = group.voters.contains_key(&replica_id)
            && replaces.is_none_or(|old| !group.voters.contains_key(&old));
        if already_done {
            return Ok(MapSuccess::Changed {
                epoch: self.meta.epoch,
            });
        }
        let Some(node) = group.learners.remove(&replica_id) else {
            return Err(Rejection::UnknownReplica { replica_id });
        };
        if let Some(old) = replaces
            && group.voters.remove(&old).is_none()
        {
            group.learners.insert(replica_id, node);
            return Err(Rejection::UnknownReplica { replica_id: old });
        }
        group.voters.insert(replica_id, node);
        dirty.insert(MapKey::Group(group_id));
        self.bump(dirty);
        Ok(MapSuccess::Changed {
            epoch: self.meta.epoch,
        })
    }

    /// Whether `node` may carry a replica of `group_id`: under placement
    /// rules, a region's accounts group (personal data) lives only on nodes
    /// of its region.
    pub fn may_carry(&self, group_id: GroupId, node: NodeId) -> bool {
        let (Some(group), Some(info)) = (self.groups.get(&group_id), self.nodes.get(&node)) else {
            return false;
        };
        let keeps_accounts =
            self.policy.is_some() && self.accounts_group(group.home_region.as_str()) == Some(group_id);
        !keeps_accounts || info.region == group.home_region
    }

    /// The node a replica of `group` should move to from `leaving`: not in
    /// the group yet, not draining, in the home region first, fewest replicas.
    pub fn choose_move_target(&self, group_id: GroupId) -> Option<NodeId> {
        let group = self.groups.get(&group_id)?;
        let mut load: BTreeMap<NodeId, usize> = self.nodes.keys().map(|&id| (id, 0)).collect();
        for g in self.groups.values() {
            for (_, node) in g.replicas() {
                *load.entry(node).or_default() += 1;
            }
        }
        self.nodes
            .iter()
            .filter(|(id, info)| {
                !info.draining && self.replica_on(group_id, **id).is_none() && self.may_carry(group_id, **id)
            })
            .min_by_key(|(id, info)| {
                // A group surviving a region's loss keeps its voters spread:
                // regions without a voter on an open node come first.
                let spread = self.survive_region.contains(&group_id)
                    && group.voters.values().any(|n| {
                        self.nodes
                            .get(n)
                            .is_some_and(|v| !v.draining && v.region == info.region)
                    });
                (spread, info.region != group.home_region, load[*id], **id)
            })
            .map(|(id, _)| *id)
    }

    /// The metadata group's voters this map calls for, keeping `current`
    /// ones where it can (`crate::meta_voters`): nodes being drained give
    /// up their votes.
    pub fn meta_voter_plan(
        &self,
        current: &std::collections::BTreeSet<NodeId>,
    ) -> std::collections::BTreeSet<NodeId> {
        crate::meta_voters::meta_voters(
            current,
            self.nodes
                .iter()
                .filter(|(_, n)| !n.draining)
                .map(|(id, n)| (*id, n.region.as_str())),
        )
    }

    /// Replicas each node carries (voters and learners), for balancing.
    pub fn replica_counts(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> = self.nodes.keys().map(|&id| (id, 0)).collect();
        for g in self.groups.values() {
            for (_, node) in g.replicas() {
                *load.entry(node).or_default() += 1;
            }
        }
        load
    }

    fn initialise(
        &mut self,
        nodes: &[(NodeId, NodeInfo)],
        groups_per_region: u32,
        replication: u8,
        policy: Option<PlacementPolicy>,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        if self.is_initialised() {
            return Err(Rejection::MapInitialised);
        }
        let invalid = |why: &str| Err(Rejection::InvalidRequest(why.to_owned()));
        if nodes.is_empty() {
            return invalid("a cluster needs at least one node");
        }
        if replication == 0 {
            return invalid("replication must be at least 1");
        }
        if groups_per_region > MAX_GROUPS_PER_REQUEST {
            return invalid("too many groups per region");
        }
        let mut by_id = BTreeMap::new();
        for (id, info) in nodes {
            if *id == 0 || *id >= FIRST_DATA_REPLICA_ID {
                return invalid("node ids must be between 1 and 2^40 - 1");
            }
            if by_id.insert(*id, info.clone()).is_some() {
                return invalid("a node id appears twice");
            }
        }
        if by_id.len() < usize::from(replication) {
            return Err(Rejection::NotEnoughNodes {
                needed: u32::from(replication),
                available: by_id.len() as u32,
            });
        }
        self.meta = MapMeta {
            epoch: 0,
            next_group_id: META_GROUP + 1,
            next_replica_id: FIRST_DATA_REPLICA_ID,
            replication,
        };
        for (id, info) in by_id {
            self.nodes.insert(id, info);
            dirty.insert(MapKey::Node(id));
        }
        if let Some(policy) = policy {
            self.policy = Some(policy);
            dirty.insert(MapKey::Policy);
        }
        let mut regions: Vec<RegionId> = self.nodes.values().map(|n| n.region.clone()).collect();
        regions.sort();
        regions.dedup();
        for region in &regions {
            for _ in 0..groups_per_region {
                self.create_group(region, None, dirty)?;
            }
        }
        self.bump(dirty);
        Ok(MapSuccess::Initialised {
            epoch: self.meta.epoch,
            groups: self.groups.keys().copied().collect(),
        })
    }

    fn place_event(
        &mut self,
        event_id: EventId,
        home_region: &RegionId,
        dedicated: bool,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        let survive = dedicated.then_some(Survive::Node);
        self.place(event_id, home_region, survive, dirty)
    }

    fn place_event_surviving(
        &mut self,
        event_id: EventId,
        home_region: &RegionId,
        survive: Survive,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.place(event_id, home_region, Some(survive), dirty)
    }

    /// Places `event_id`: on a shared group (`dedicated: None`) or a new group
    /// of its own whose voters meet the goal.
    fn place(
        &mut self,
        event_id: EventId,
        home_region: &RegionId,
        dedicated: Option<Survive>,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> MapResponse {
        self.require_initialised()?;
        if let Some(group_id) = self.group_of(event_id) {
            return Ok(MapSuccess::Placed {
                event_id,
                group_id,
                epoch: self.meta.epoch,
            });
        }
        self.require_region(home_region.as_str())?;
        let group_id = match dedicated {
            Some(Survive::Node) => self.create_group(home_region, Some(event_id), dirty)?,
            Some(Survive::Region) => self.create_region_surviving_group(home_region, event_id, dirty)?,
            None => self
                .choose_group(home_region.as_str())
                .ok_or(Rejection::NoGroupAvailable)?,
        };
        self.placements.insert(event_id, group_id);
        dirty.insert(MapKey::Placement(event_id));
        let group = self
            .groups
            .get_mut(&group_id)
            .expect("placement chose an existing group");
        group.events += 1;
        dirty.insert(MapKey::Group(group_id));
        self.bump(dirty);
        Ok(MapSuccess::Placed {
            event_id,
            group_id,
            epoch: self.meta.epoch,
        })
    }

    /// The group a new event in `home_region` goes to: among groups open to
    /// any event, those homed in the region, fewest events first (then lowest
    /// id); failing those, the least-loaded open group anywhere.
    ///
    /// Under recorded placement rules (`policy`) with read replicas in a
    /// cluster of several regions, a region's accounts group takes events
    /// only when the region has no other open group: it keeps no read
    /// replicas abroad (personal data stays home), so its events could not be
    /// read from a replica outside their home region.
    pub fn choose_group(&self, home_region: &str) -> Option<GroupId> {
        let open = || self.groups.iter().filter(|(_, g)| g.dedicated_to.is_none());
        let least = |it: &mut dyn Iterator<Item = (&GroupId, &GroupInfo)>| {
            it.min_by_key(|(id, g)| (g.events, **id)).map(|(id, _)| *id)
        };
        let accounts = self
            .readers_abroad()
            .then(|| self.accounts_group(home_region))
            .flatten();
        least(&mut open().filter(|(id, g)| g.home_region == home_region && Some(**id) != accounts))
            .or_else(|| least(&mut open().filter(|(_, g)| g.home_region == home_region)))
            .or_else(|| least(&mut open()))
    }

    /// Recorded placement rules want read replicas abroad, and there is
    /// somewhere abroad: several regions.
    fn readers_abroad(&self) -> bool {
        let regions: std::collections::BTreeSet<&RegionId> = self.nodes.values().map(|n| &n.region).collect();
        self.policy
            .is_some_and(|p| p.read_replicas == ReadReplicas::EveryRegion && regions.len() > 1)
    }

    /// Whether a new shared event in `home_region` should first get a group
    /// made for it ([`MapCommand::CreateGroup`]): the region's only open
    /// group keeps its accounts, which keeps no read replica abroad, so an
    /// event placed there could not be read in any other region. (Decided by
    /// whoever proposes the placement, not when it is applied, so that an old
    /// log's `PlaceEvent` still lands where it did.)
    pub fn wants_event_group(&self, home_region: &str) -> bool {
        self.readers_abroad()
            && self
                .accounts_group(home_region)
                .is_some_and(|accounts| self.choose_group(home_region) == Some(accounts))
    }

    /// The nodes that carry a new group's replicas, preferred leader first.
    /// Every pick prefers nodes in the home region. The preferred leader is the
    /// node that is preferred leader of the fewest groups (so leaders spread
    /// over a region's nodes), the others the nodes with the fewest replicas;
    /// ties go to the lowest id.
    pub fn choose_nodes(&self, home_region: &str) -> Vec<NodeId> {
        let mut load: BTreeMap<NodeId, (usize, usize)> = self.nodes.keys().map(|&id| (id, (0, 0))).collect();
        for group in self.groups.values() {
            for (i, node) in group.voters.values().enumerate() {
                let entry = load.entry(*node).or_default();
                entry.1 += 1;
                if i == 0 {
                    entry.0 += 1;
                }
            }
        }
        let away = |id: &NodeId| self.nodes[id].region != home_region;
        let mut chosen = Vec::new();
        let open = || self.nodes.iter().filter(|(_, n)| !n.draining).map(|(id, _)| id);
        let first = open().min_by_key(|id| (away(id), load[*id].0, load[*id].1, **id));
        if let Some(&first) = first {
            chosen.push(first);
        }
        let mut rest: Vec<NodeId> = open().copied().filter(|id| Some(id) != first).collect();
        rest.sort_by_key(|id| (away(id), load[id].1, *id));
        chosen.extend(rest);
        chosen.truncate(usize::from(self.meta.replication));
        chosen
    }

    /// The voters of a group that survives a region's loss: the home
    /// region's preferred node first, then the least-loaded open node of each
    /// other region (most nodes first), until the replication factor; the
    /// group needs open nodes in three regions.
    pub fn choose_region_surviving_nodes(&self, home_region: &str) -> Result<Vec<NodeId>, Rejection> {
        let ranked = self.choose_nodes(home_region);
        let Some(&first) = ranked.first() else {
            return Err(Rejection::NotEnoughNodes {
                needed: 3,
                available: 0,
            });
        };
        let load = self.replica_counts();
        let mut by_region: BTreeMap<&RegionId, Vec<NodeId>> = BTreeMap::new();
        for (id, info) in self.nodes.iter().filter(|(_, n)| !n.draining) {
            by_region.entry(&info.region).or_default().push(*id);
        }
        if by_region.len() < 3 {
            return Err(Rejection::InvalidRequest(format!(
                "surviving a region's loss needs open nodes in three regions; the cluster has {}",
                by_region.len()
            )));
        }
        let home = self.nodes[&first].region.clone();
        let mut chosen = vec![first];
        let mut covered: std::collections::BTreeSet<RegionId> = [home].into();
        // One per other region, the least-loaded node of each, until full;
        // then, for a replication factor above the region count, any node.
        let mut candidates: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(id, n)| !n.draining && **id != first)
            .map(|(id, _)| *id)
            .collect();
        candidates.sort_by_key(|id| (load.get(id).copied().unwrap_or(0), *id));
        for id in &candidates {
            if chosen.len() == usize::from(self.meta.replication).max(3) {
                break;
            }
            if covered.insert(self.nodes[id].region.clone()) {
                chosen.push(*id);
            }
        }
        for id in &candidates {
            if chosen.len() >= usize::from(self.meta.replication) {
                break;
            }
            if !chosen.contains(id) {
                chosen.push(*id);
            }
        }
        Ok(chosen)
    }

    fn create_region_surviving_group(
        &mut self,
        home_region: &RegionId,
        event_id: EventId,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> Result<GroupId, Rejection> {
        let nodes = self.choose_region_surviving_nodes(home_region.as_str())?;
        let group_id = self.insert_group(home_region, nodes, Some(event_id), dirty);
        self.survive_region.insert(group_id);
        dirty.insert(MapKey::SurvivesRegion(group_id));
        Ok(group_id)
    }

    /// Adds a group with voters on `nodes` (the preferred leader first:
    /// replica ids are allocated in that order).
    fn insert_group(
        &mut self,
        home_region: &RegionId,
        nodes: Vec<NodeId>,
        dedicated_to: Option<EventId>,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> GroupId {
        let group_id = self.meta.next_group_id;
        self.meta.next_group_id += 1;
        let mut voters = BTreeMap::new();
        for node in nodes {
            voters.insert(self.meta.next_replica_id, node);
            self.meta.next_replica_id += 1;
        }
        self.groups.insert(
            group_id,
            GroupInfo {
                home_region: home_region.clone(),
                voters,
                learners: BTreeMap::new(),
                dedicated_to,
                events: 0,
            },
        );
        dirty.insert(MapKey::Group(group_id));
        dirty.insert(MapKey::Meta);
        group_id
    }

    fn create_group(
        &mut self,
        home_region: &RegionId,
        dedicated_to: Option<EventId>,
        dirty: &mut std::collections::BTreeSet<MapKey>,
    ) -> Result<GroupId, Rejection> {
        let mut nodes = self.choose_nodes(home_region.as_str());
        // Under placement rules, the group that will keep the region's
        // accounts (its first shared group) stays in the region with as many
        // voters as the region has nodes, up to the replication factor.
        let keeps_accounts = self.policy.is_some()
            && dedicated_to.is_none()
            && self.accounts_group(home_region.as_str()).is_none();
        if keeps_accounts {
            nodes.retain(|id| self.nodes[id].region == *home_region);
        }
        if nodes.is_empty() || (!keeps_accounts && nodes.len() < usize::from(self.meta.replication)) {
            return Err(Rejection::NotEnoughNodes {
                needed: u32::from(self.meta.replication),
                available: nodes.len() as u32,
            });
        }
        Ok(self.insert_group(home_region, nodes, dedicated_to, dirty))
    }

    pub fn query(&self, query: &MapQuery) -> MapAnswer {
        match query {
            MapQuery::ClusterMap => MapAnswer::ClusterMap(Box::new(self.clone())),
            MapQuery::Placement(event_id) => MapAnswer::Placement(self.group_of(*event_id)),
        }
    }

    // ----- Persistence --------------------------------------------------------

    pub(crate) fn record(&self, key: &MapKey) -> Option<MapValue> {
        match key {
            MapKey::Meta => self.is_initialised().then_some(MapValue::Meta(self.meta)),
            MapKey::Node(id) => self.nodes.get(id).cloned().map(MapValue::Node),
            MapKey::Group(id) => self.groups.get(id).cloned().map(MapValue::Group),
            MapKey::Placement(event) => self.placements.get(event).copied().map(MapValue::Placement),
            MapKey::Region(region) => self.regions.get(region).cloned().map(MapValue::Region),
            MapKey::ReadReplicas(group) => self.read_replicas.get(group).cloned().map(MapValue::ReadReplicas),
            MapKey::Policy => self.policy.map(MapValue::Policy),
            MapKey::SurvivesRegion(group) => self
                .survive_region
                .contains(group)
                .then_some(MapValue::SurvivesRegion),
        }
    }

    pub(crate) fn append_records(&self, out: &mut Vec<(MapKey, MapValue)>) {
        if self.is_initialised() {
            out.push((MapKey::Meta, MapValue::Meta(self.meta)));
        }
        for (id, node) in &self.nodes {
            out.push((MapKey::Node(*id), MapValue::Node(node.clone())));
        }
        for (id, group) in &self.groups {
            out.push((MapKey::Group(*id), MapValue::Group(group.clone())));
        }
        for (event, group) in &self.placements {
            out.push((MapKey::Placement(*event), MapValue::Placement(*group)));
        }
        for (region, info) in &self.regions {
            out.push((MapKey::Region(region.clone()), MapValue::Region(info.clone())));
        }
        for (group, replicas) in &self.read_replicas {
            out.push((
                MapKey::ReadReplicas(*group),
                MapValue::ReadReplicas(replicas.clone()),
            ));
        }
        if let Some(policy) = self.policy {
            out.push((MapKey::Policy, MapValue::Policy(policy)));
        }
        for group in &self.survive_region {
            out.push((MapKey::SurvivesRegion(*group), MapValue::SurvivesRegion));
        }
    }

    /// Takes one stored record; a value of another kind than its key is refused.
    pub(crate) fn load(&mut self, key: &MapKey, record: MapValue) -> Result<(), MapLoadError> {
        match (key, record) {
            (MapKey::Meta, MapValue::Meta(meta)) => {
                if meta.epoch == 0 {
                    return Err("an uninitialised map must have no meta record".to_owned());
                }
                self.meta = meta;
            }
            (MapKey::Node(id), MapValue::Node(node)) => {
                self.nodes.insert(*id, node);
            }
            (MapKey::Group(id), MapValue::Group(group)) => {
                self.groups.insert(*id, group);
            }
            (MapKey::Placement(event), MapValue::Placement(group)) => {
                self.placements.insert(*event, group);
            }
            (MapKey::Region(region), MapValue::Region(info)) => {
                self.regions.insert(region.clone(), info);
            }
            (MapKey::ReadReplicas(group), MapValue::ReadReplicas(replicas)) => {
                self.read_replicas.insert(*group, replicas);
            }
            (MapKey::Policy, MapValue::Policy(policy)) => {
                self.policy = Some(policy);
            }
            (MapKey::SurvivesRegion(group), MapValue::SurvivesRegion) => {
                self.survive_region.insert(*group);
            }
            (key, _) => return Err(format!("the record under {key:?} is of another kind")),
        }
        Ok(())
    }

    /// The region whose table entry lists `country` (an ISO 3166-1 code).
    pub fn region_of_country(&self, country: &str) -> Option<&RegionId> {
        self.regions
            .iter()
            .find(|(_, info)| info.countries.iter().any(|c| c == country))
            .map(|(region, _)| region)
    }

    /// Every cross-reference of the map holds.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.is_initialised() {
            if self.nodes.is_empty()
                && self.groups.is_empty()
                && self.placements.is_empty()
                && self.regions.is_empty()
                && self.read_replicas.is_empty()
                && self.policy.is_none()
                && self.survive_region.is_empty()
            {
                return Ok(());
            }
            return Err("an uninitialised map has contents".to_owned());
        }
        let mut counted: BTreeMap<GroupId, u64> = BTreeMap::new();
        for (event, group) in &self.placements {
            if !self.groups.contains_key(group) {
                return Err(format!("event {event} is placed on missing group {group}"));
            }
            *counted.entry(*group).or_default() += 1;
        }
        let mut seen_replicas = std::collections::BTreeSet::new();
        for (id, group) in &self.groups {
            if *id == META_GROUP || *id >= self.meta.next_group_id {
                return Err(format!("group id {id} is outside the allocated range"));
            }
            if group.events != counted.get(id).copied().unwrap_or(0) {
                return Err(format!("group {id} counts {} events", group.events));
            }
            if let Some(event) = group.dedicated_to
                && self.placements.iter().any(|(e, g)| g == id && *e != event)
            {
                return Err(format!("group {id} is dedicated to {event} but holds others"));
            }
            if group.voters.is_empty() {
                return Err(format!("group {id} has no voter"));
            }
            for (replica, node) in group.voters.iter().chain(&group.learners) {
                if *replica < FIRST_DATA_REPLICA_ID || *replica >= self.meta.next_replica_id {
                    return Err(format!("replica id {replica} is outside the allocated range"));
                }
                if !seen_replicas.insert(*replica) {
                    return Err(format!("replica id {replica} is used twice"));
                }
                if !self.nodes.contains_key(node) {
                    return Err(format!("group {id} has a replica on missing node {node}"));
                }
            }
        }
        if let Some(missing) = self.survive_region.iter().find(|g| !self.groups.contains_key(g)) {
            return Err(format!("missing group {missing} is marked to survive a region"));
        }
        for (id, replicas) in &self.read_replicas {
            let Some(group) = self.groups.get(id) else {
                return Err(format!("read replicas of missing group {id}"));
            };
            for (replica, node) in replicas {
                if *replica < FIRST_DATA_REPLICA_ID || *replica >= self.meta.next_replica_id {
                    return Err(format!("replica id {replica} is outside the allocated range"));
                }
                if !seen_replicas.insert(*replica) {
                    return Err(format!("replica id {replica} is used twice"));
                }
                if !self.nodes.contains_key(node) {
                    return Err(format!("group {id} has a read replica on missing node {node}"));
                }
                if group.replica_on(*node).is_some() {
                    return Err(format!("node {node} carries two replicas of group {id}"));
                }
            }
        }
        let mut homed = BTreeMap::new();
        for (region, info) in &self.regions {
            for country in &info.countries {
                if let Some(other) = homed.insert(country, region) {
                    return Err(format!("country {country} is homed in both {other} and {region}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A node of `region` at addresses no other node of the test has.
    fn node(region: &str) -> NodeInfo {
        static NEXT_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
        let port = NEXT_PORT.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        NodeInfo {
            region: RegionId::new(region).unwrap(),
            grpc_addr: format!("127.0.0.1:{port}"),
            http_addr: format!("127.0.0.1:{}", port + 1),
            draining: false,
        }
    }

    /// A map founded on `nodes` (id, region) with 3 voters per group: by
    /// `Bootstrap` under `policy`, or by the older `Initialise` without one.
    fn founded(
        nodes: &[(NodeId, &str)],
        groups_per_region: u32,
        policy: Option<PlacementPolicy>,
    ) -> ClusterMap {
        let nodes = nodes.iter().map(|(id, region)| (*id, node(region))).collect();
        let command = match policy {
            Some(policy) => MapCommand::Bootstrap {
                nodes,
                groups_per_region,
                replication: 3,
                policy,
            },
            None => MapCommand::Initialise {
                nodes,
                groups_per_region,
                replication: 3,
            },
        };
        let mut map = ClusterMap::default();
        map.apply(&command, &mut BTreeSet::new()).unwrap();
        map
    }

    fn three_regions() -> ClusterMap {
        founded(&[(1, "eu"), (2, "us"), (3, "eu"), (4, "ap")], 2, None)
    }

    #[test]
    fn initialise_homes_groups_in_every_region_with_unique_replicas() {
        let map = three_regions();
        assert_eq!(map.epoch(), 1);
        assert_eq!(map.groups.len(), 6);
        map.check_invariants().unwrap();
        for group in map.groups.values() {
            assert_eq!(group.voters.len(), 3);
            let first_node = group.voters.values().next().unwrap();
            assert_eq!(
                map.nodes[first_node].region, group.home_region,
                "preferred leader at home"
            );
        }
    }

    #[test]
    fn preferred_leaders_spread_over_the_home_region() {
        let map = three_regions();
        let eu_leaders: std::collections::BTreeSet<NodeId> = map
            .groups
            .values()
            .filter(|g| g.home_region == "eu")
            .map(|g| *g.voters.values().next().unwrap())
            .collect();
        assert_eq!(
            eu_leaders,
            [1, 3].into(),
            "the two eu groups lead on the two eu nodes"
        );
    }

    #[test]
    fn placement_is_least_loaded_in_region_and_sticky() {
        let mut map = three_regions();
        let mut dirty = BTreeSet::new();
        let mut place = |map: &mut ClusterMap, e: u64, region: &str, dedicated: bool| match map.apply(
            &MapCommand::PlaceEvent {
                event_id: EventId(e),
                home_region: RegionId::new(region).unwrap(),
                dedicated,
            },
            &mut dirty,
        ) {
            Ok(MapSuccess::Placed { group_id, .. }) => group_id,
            other => panic!("unexpected {other:?}"),
        };
        let a = place(&mut map, 1, "us", false);
        let b = place(&mut map, 2, "us", false);
        assert_ne!(a, b, "the second event goes to the emptier group");
        assert_eq!(map.groups[&a].home_region, "us");
        assert_eq!(place(&mut map, 1, "eu", false), a, "placement never moves");
        let big = place(&mut map, 3, "eu", true);
        assert_eq!(map.groups[&big].dedicated_to, Some(EventId(3)));
        for e in 4..20 {
            assert_ne!(
                place(&mut map, e, "eu", false),
                big,
                "a dedicated group takes no other event"
            );
        }
        map.check_invariants().unwrap();
        let epoch = map.epoch();
        let unknown = map.apply(
            &MapCommand::PlaceEvent {
                event_id: EventId(99),
                home_region: RegionId::new("mars").unwrap(),
                dedicated: false,
            },
            &mut dirty,
        );
        assert_eq!(
            unknown,
            Err(Rejection::UnknownRegion {
                region: "mars".to_owned()
            })
        );
        assert_eq!(map.epoch(), epoch, "a rejection changes nothing");
    }

    #[test]
    fn initialise_refuses_bad_input_and_a_second_time() {
        let mut map = ClusterMap::default();
        let mut dirty = BTreeSet::new();
        let too_few = map.apply(
            &MapCommand::Initialise {
                nodes: vec![(1, node("eu"))],
                groups_per_region: 1,
                replication: 3,
            },
            &mut dirty,
        );
        assert_eq!(
            too_few,
            Err(Rejection::NotEnoughNodes {
                needed: 3,
                available: 1
            })
        );
        assert!(!map.is_initialised());
        let map_again = three_regions();
        let mut map = map_again;
        let again = map.apply(
            &MapCommand::Initialise {
                nodes: vec![(1, node("eu"))],
                groups_per_region: 1,
                replication: 1,
            },
            &mut dirty,
        );
        assert_eq!(again, Err(Rejection::MapInitialised));
    }

    #[test]
    fn a_node_cannot_take_another_nodes_address() {
        let mut map = three_regions();
        let mut dirty = BTreeSet::new();
        let taken = map.nodes[&1].clone();
        for (grpc_addr, http_addr) in [
            (taken.grpc_addr.clone(), "127.0.0.1:65001".to_owned()),
            ("127.0.0.1:65002".to_owned(), taken.http_addr.clone()),
        ] {
            let info = NodeInfo {
                grpc_addr,
                http_addr,
                ..node("eu")
            };
            assert_eq!(
                map.apply(&MapCommand::AddNode { node_id: 9, info }, &mut dirty),
                Err(Rejection::NodeExists { node_id: 1 })
            );
        }
        assert!(!map.nodes.contains_key(&9));
    }

    #[test]
    fn a_replica_moves_through_learner_then_voter() {
        let mut map = three_regions();
        let mut dirty = BTreeSet::new();
        map.apply(
            &MapCommand::AddNode {
                node_id: 9,
                info: node("us"),
            },
            &mut dirty,
        )
        .unwrap();
        let us_group = *map.groups.iter().find(|(_, g)| g.home_region == "us").unwrap().0;
        let target = map.choose_move_target(us_group).unwrap();
        assert_eq!(target, 9, "the new node in the home region, carrying nothing");
        let Ok(MapSuccess::LearnerAdded { replica_id, .. }) = map.apply(
            &MapCommand::AddLearner {
                group_id: us_group,
                node_id: 9,
            },
            &mut dirty,
        ) else {
            panic!("learner not added")
        };
        let old = map.groups[&us_group].replica_on(2).unwrap();
        map.apply(
            &MapCommand::PromoteLearner {
                group_id: us_group,
                replica_id,
                replaces: Some(old),
            },
            &mut dirty,
        )
        .unwrap();
        let group = &map.groups[&us_group];
        assert_eq!(group.voters.len(), 3);
        assert_eq!(group.replica_on(9), Some(replica_id));
        assert_eq!(group.replica_on(2), None);
        map.check_invariants().unwrap();
        // Node 2 still carries other groups, so it cannot go yet.
        assert!(matches!(
            map.apply(&MapCommand::RemoveNode { node_id: 2 }, &mut dirty),
            Err(Rejection::NodeHasReplicas { node_id: 2, .. })
        ));
        map.apply(&MapCommand::DrainNode { node_id: 2 }, &mut dirty)
            .unwrap();
        assert!(
            !map.choose_nodes("us").contains(&2),
            "a draining node takes nothing new"
        );
    }

    #[test]
    fn records_round_trip() {
        let mut map = three_regions();
        let mut dirty = BTreeSet::new();
        map.apply(
            &MapCommand::PlaceEvent {
                event_id: EventId(5),
                home_region: RegionId::new("ap").unwrap(),
                dedicated: false,
            },
            &mut dirty,
        )
        .unwrap();
        map.apply(
            &MapCommand::SetRegion {
                region: RegionId::new("ap").unwrap(),
                info: RegionInfo::plain(&RegionId::new("ap").unwrap()),
            },
            &mut dirty,
        )
        .unwrap();
        let mut records = Vec::new();
        map.append_records(&mut records);
        let mut back = ClusterMap::default();
        for (key, record) in records {
            back.load(&key, record).unwrap();
        }
        assert_eq!(back, map);
        back.check_invariants().unwrap();
    }

    #[test]
    fn regions_are_described_once_the_map_exists_and_checked() {
        let tokyo = RegionId::new("ap-northeast").unwrap();
        let info = RegionInfo {
            name: "Asia Pacific (Tokyo)".to_owned(),
            currency: Currency::new("JPY").unwrap(),
            locale: "ja-JP".to_owned(),
            time_zone: "Asia/Tokyo".to_owned(),
            http_endpoint: Some("https://tokyo.tickets.example".to_owned()),
            countries: vec!["JP".to_owned()],
        };
        let set = |info: &RegionInfo| MapCommand::SetRegion {
            region: tokyo.clone(),
            info: info.clone(),
        };
        let mut dirty = BTreeSet::new();
        let mut empty = ClusterMap::default();
        assert_eq!(
            empty.apply(&set(&info), &mut dirty),
            Err(Rejection::MapNotInitialised)
        );

        let mut map = three_regions();
        let epoch = map.epoch();
        map.apply(&set(&info), &mut dirty).unwrap();
        assert_eq!(map.regions.get(&tokyo), Some(&info));
        assert_eq!(map.epoch(), epoch + 1);
        // The same description again changes nothing.
        map.apply(&set(&info), &mut dirty).unwrap();
        assert_eq!(map.epoch(), epoch + 1);

        for broken in [
            RegionInfo {
                currency: Currency::new("XAU").unwrap(),
                ..info.clone()
            },
            RegionInfo {
                locale: "Japanese".to_owned(),
                ..info.clone()
            },
            RegionInfo {
                time_zone: "Tokyo".to_owned(),
                ..info.clone()
            },
            RegionInfo {
                http_endpoint: Some("ftp://x".to_owned()),
                ..info.clone()
            },
            RegionInfo {
                name: " ".to_owned(),
                ..info.clone()
            },
            RegionInfo {
                countries: vec!["Japan".to_owned()],
                ..info.clone()
            },
        ] {
            assert!(
                matches!(
                    map.apply(&set(&broken), &mut dirty),
                    Err(Rejection::InvalidRequest(_))
                ),
                "{broken:?}"
            );
        }
        assert_eq!(map.region_of_country("JP"), Some(&tokyo));
        assert_eq!(map.region_of_country("IE"), None);

        // A country is homed in one region only; its own region may list it again.
        let eu = RegionId::new("eu").unwrap();
        let claim = |countries: &[&str]| MapCommand::SetRegion {
            region: eu.clone(),
            info: RegionInfo {
                countries: countries.iter().map(|c| (*c).to_owned()).collect(),
                ..RegionInfo::plain(&eu)
            },
        };
        assert!(matches!(
            map.apply(&claim(&["IE", "JP"]), &mut dirty),
            Err(Rejection::InvalidRequest(_))
        ));
        map.apply(&claim(&["IE", "FR"]), &mut dirty).unwrap();
        assert_eq!(map.region_of_country("FR"), Some(&eu));
        map.apply(&set(&info), &mut dirty).unwrap();
        map.check_invariants().unwrap();
    }

    /// Three regions of three nodes each, two groups homed in each region,
    /// under recorded placement rules.
    fn nine_nodes(read_replicas: ReadReplicas) -> ClusterMap {
        let regions = ["eu", "us", "ap"];
        let nodes: Vec<(NodeId, &str)> = (1..=9).map(|id| (id, regions[(id as usize - 1) / 3])).collect();
        let mut map = founded(&nodes, 2, None);
        let mut dirty = BTreeSet::new();
        map.apply(
            &MapCommand::SetPlacementPolicy {
                policy: PlacementPolicy { read_replicas },
            },
            &mut dirty,
        )
        .unwrap();
        map
    }

    /// Applies plans until the map wants no change; returns how many it took.
    fn settle(map: &mut ClusterMap) -> usize {
        let mut rounds = 0;
        while let Some(plan) = map.read_replica_plan() {
            map.apply(&plan, &mut BTreeSet::new()).unwrap();
            map.check_invariants().unwrap();
            rounds += 1;
            assert!(rounds < 5, "the plan does not converge");
        }
        rounds
    }

    fn region_of(map: &ClusterMap, node: NodeId) -> &str {
        map.nodes[&node].region.as_str()
    }

    #[test]
    fn every_region_without_a_voter_gets_one_read_replica_but_accounts_groups_none() {
        let mut map = nine_nodes(ReadReplicas::EveryRegion);
        assert_eq!(settle(&mut map), 1, "one command places them all");
        for (&id, group) in &map.groups {
            let voter_regions: BTreeSet<&str> = group.voters.values().map(|n| region_of(&map, *n)).collect();
            assert_eq!(
                voter_regions,
                [group.home_region.as_str()].into(),
                "voters stay home"
            );
            let readers: Vec<&str> = map
                .read_replicas_of(id)
                .map(|(_, n)| region_of(&map, n))
                .collect();
            if map.accounts_group(group.home_region.as_str()) == Some(id) {
                assert!(readers.is_empty(), "group {id} keeps accounts: no replica abroad");
            } else {
                let mut readers = readers.clone();
                readers.sort();
                let mut expected: Vec<&str> = ["eu", "us", "ap"]
                    .into_iter()
                    .filter(|r| *r != group.home_region.as_str())
                    .collect();
                expected.sort();
                assert_eq!(readers, expected, "group {id}: one read replica per other region");
            }
        }
        // Read replicas spread over each region's nodes.
        let mut per_node: BTreeMap<NodeId, usize> = BTreeMap::new();
        for replicas in map.read_replicas.values() {
            for node in replicas.values() {
                *per_node.entry(*node).or_default() += 1;
            }
        }
        assert!(per_node.values().all(|&n| n == 1), "{per_node:?}");
        // Every node hosting a replica is found by `replica_on`.
        for (&group, replicas) in &map.read_replicas {
            for (&replica, &node) in replicas {
                assert_eq!(map.replica_on(group, node), Some(replica));
                assert_eq!(map.node_of_replica(group, replica), Some(node));
            }
        }
    }

    #[test]
    fn read_replicas_leave_a_draining_node_and_a_removed_one_and_go_when_turned_off() {
        let mut map = nine_nodes(ReadReplicas::EveryRegion);
        settle(&mut map);
        let (&group, replicas) = map.read_replicas.iter().next().unwrap();
        let (&replica, &node) = replicas.iter().next().unwrap();
        let region = map.nodes[&node].region.clone();
        let mut dirty = BTreeSet::new();
        map.apply(&MapCommand::DrainNode { node_id: node }, &mut dirty)
            .unwrap();
        settle(&mut map);
        assert_eq!(map.replica_on(group, node), None, "moved off the draining node");
        let moved: Vec<NodeId> = map.read_replicas_of(group).map(|(_, n)| n).collect();
        assert!(
            moved.iter().any(|n| map.nodes[n].region == region),
            "still one in {region}: {moved:?}"
        );
        assert!(
            map.read_replicas_of(group).all(|(r, _)| r != replica),
            "a new replica id"
        );

        // A node that still carries a read replica is removed with it.
        let (&other_group, other) = map.read_replicas.iter().find(|(g, _)| **g != group).unwrap();
        let (_, &other_node) = other.iter().next().unwrap();
        let voters_elsewhere = map.groups.values().all(|g| g.replica_on(other_node).is_none());
        if voters_elsewhere {
            map.apply(&MapCommand::RemoveNode { node_id: other_node }, &mut dirty)
                .unwrap();
            assert_eq!(map.replica_on(other_group, other_node), None);
            map.check_invariants().unwrap();
            settle(&mut map);
        }

        map.apply(
            &MapCommand::SetPlacementPolicy {
                policy: PlacementPolicy {
                    read_replicas: ReadReplicas::None,
                },
            },
            &mut dirty,
        )
        .unwrap();
        settle(&mut map);
        assert!(map.read_replicas.is_empty());
    }

    #[test]
    fn a_stale_plan_is_harmless_and_records_round_trip() {
        let mut map = nine_nodes(ReadReplicas::EveryRegion);
        let plan = map.read_replica_plan().unwrap();
        map.apply(&plan, &mut BTreeSet::new()).unwrap();
        let before = map.clone();
        // The same plan again (a retried proposal) adds nothing.
        map.apply(&plan, &mut BTreeSet::new()).unwrap();
        assert_eq!(map, before);
        assert_eq!(map.read_replica_plan(), None);

        let mut records = Vec::new();
        map.append_records(&mut records);
        let mut loaded = ClusterMap::default();
        for (key, value) in records {
            assert_eq!(map.record(&key).as_ref(), Some(&value));
            loaded.load(&key, value).unwrap();
        }
        assert_eq!(loaded, map);
    }

    #[test]
    fn under_placement_rules_events_avoid_the_accounts_group() {
        let mut map = nine_nodes(ReadReplicas::EveryRegion);
        let accounts = map.accounts_group("eu").unwrap();
        for e in 0..4 {
            let placed = map.apply(
                &MapCommand::PlaceEvent {
                    event_id: EventId(100 + e),
                    home_region: RegionId::new("eu").unwrap(),
                    dedicated: false,
                },
                &mut BTreeSet::new(),
            );
            let Ok(MapSuccess::Placed { group_id, .. }) = placed else {
                panic!("{placed:?}")
            };
            assert_ne!(group_id, accounts);
        }
        // Without recorded rules (an old map), placement is as it was.
        let old = three_regions();
        assert_eq!(old.choose_group("eu"), old.accounts_group("eu"));
        assert!(!old.wants_event_group("eu"));
        assert!(
            !map.wants_event_group("eu"),
            "eu has a group besides its accounts one"
        );
    }

    #[test]
    fn a_region_with_only_its_accounts_group_gets_a_group_for_events() {
        let regions = ["eu", "us", "ap"];
        let nodes: Vec<(NodeId, &str)> = (1..=9).map(|id| (id, regions[(id as usize - 1) / 3])).collect();
        let mut map = founded(&nodes, 1, Some(PlacementPolicy::default()));
        let accounts = map.accounts_group("eu").unwrap();
        assert!(map.wants_event_group("eu"));
        let created = map.apply(
            &MapCommand::CreateGroup {
                home_region: RegionId::new("eu").unwrap(),
            },
            &mut BTreeSet::new(),
        );
        let Ok(MapSuccess::GroupCreated { group_id, .. }) = created else {
            panic!("{created:?}")
        };
        assert!(!map.wants_event_group("eu"));
        assert!(map.wants_event_group("us"), "other regions are unchanged");
        let placed = map.apply(
            &MapCommand::PlaceEvent {
                event_id: EventId(7),
                home_region: RegionId::new("eu").unwrap(),
                dedicated: false,
            },
            &mut BTreeSet::new(),
        );
        assert!(
            matches!(placed, Ok(MapSuccess::Placed { group_id: placed, .. }) if placed == group_id && placed != accounts),
            "{placed:?}"
        );
        map.check_invariants().unwrap();
        // Without read replicas abroad there is nothing to gain.
        let none = founded(
            &nodes,
            1,
            Some(PlacementPolicy {
                read_replicas: ReadReplicas::None,
            }),
        );
        assert!(!none.wants_event_group("eu"));
    }

    #[test]
    fn under_placement_rules_an_accounts_group_keeps_its_voters_at_home() {
        let four = [(1, "eu"), (2, "eu"), (3, "eu"), (4, "ap")];
        let mut map = founded(&four, 2, Some(PlacementPolicy::default()));
        map.check_invariants().unwrap();
        let ap_accounts = map.accounts_group("ap").unwrap();
        let voters: Vec<NodeId> = map.groups[&ap_accounts].voters.values().copied().collect();
        assert_eq!(voters, vec![4], "ap's personal data stays on ap's only node");
        assert!(!map.may_carry(ap_accounts, 1));
        assert_eq!(
            map.choose_move_target(ap_accounts),
            None,
            "nowhere at home to move to"
        );
        let ap_other = map
            .groups
            .iter()
            .find(|(id, g)| g.home_region == "ap" && **id != ap_accounts)
            .map(|(id, _)| *id)
            .unwrap();
        assert_eq!(
            map.groups[&ap_other].voters.len(),
            3,
            "other groups fill up from abroad"
        );
        let eu_accounts = map.accounts_group("eu").unwrap();
        assert!(
            map.groups[&eu_accounts]
                .voters
                .values()
                .all(|n| map.nodes[n].region == "eu")
        );
        settle(&mut map);
        assert_eq!(map.read_replicas_of(ap_accounts).count(), 0);
        assert_eq!(map.read_replicas_of(eu_accounts).count(), 0);

        // The same founding list without rules places as before: ap's first
        // group fills its voters from abroad.
        let old = founded(&four, 2, None);
        assert_eq!(old.groups[&old.accounts_group("ap").unwrap()].voters.len(), 3);
    }

    #[test]
    fn a_region_surviving_group_spreads_its_voters_and_keeps_them_spread() {
        let six = [(1, "eu"), (2, "eu"), (3, "eu"), (4, "us"), (5, "us"), (6, "ap")];
        let mut map = founded(&six, 1, Some(PlacementPolicy::default()));
        let placed = map.apply(
            &MapCommand::PlaceDedicated {
                event_id: EventId(7),
                home_region: RegionId::new("eu").unwrap(),
                survive: Survive::Region,
            },
            &mut BTreeSet::new(),
        );
        let Ok(MapSuccess::Placed { group_id, .. }) = placed else {
            panic!("{placed:?}")
        };
        map.check_invariants().unwrap();
        let group = &map.groups[&group_id];
        let regions: Vec<&str> = group.voters.values().map(|n| region_of(&map, *n)).collect();
        assert_eq!(regions[0], "eu", "the preferred leader is at home");
        let spread: BTreeSet<&str> = regions.iter().copied().collect();
        assert_eq!(spread, ["eu", "us", "ap"].into());
        assert!(map.survive_region.contains(&group_id));
        assert_eq!(group.dedicated_to, Some(EventId(7)));

        // Its us voter's node drains: the replacement stays in us, not at home.
        let us_voter = *group
            .voters
            .values()
            .find(|n| region_of(&map, **n) == "us")
            .unwrap();
        map.apply(&MapCommand::DrainNode { node_id: us_voter }, &mut BTreeSet::new())
            .unwrap();
        let target = map.choose_move_target(group_id).unwrap();
        assert_eq!(region_of(&map, target), "us");

        let mut records = Vec::new();
        map.append_records(&mut records);
        let mut loaded = ClusterMap::default();
        for (key, value) in records {
            loaded.load(&key, value).unwrap();
        }
        assert_eq!(loaded, map);

        // Two regions cannot survive the loss of one.
        let two = three_regions_minus_ap();
        let refused = two.clone().apply(
            &MapCommand::PlaceDedicated {
                event_id: EventId(8),
                home_region: RegionId::new("eu").unwrap(),
                survive: Survive::Region,
            },
            &mut BTreeSet::new(),
        );
        assert!(
            matches!(refused, Err(Rejection::InvalidRequest(_))),
            "{refused:?}"
        );
    }

    fn three_regions_minus_ap() -> ClusterMap {
        founded(&[(1, "eu"), (2, "us"), (3, "eu")], 1, None)
    }
}
