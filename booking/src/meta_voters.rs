//! Which nodes vote in the metadata group.
//!
//! Every node keeps a replica of the metadata group (the cluster map and the
//! catalog), so that it routes and searches from its own copy. Not every
//! node votes: with nine nodes over three regions, a catalog write that had
//! to wait for five of nine acknowledgements would wait for the WAN as often
//! as not, and every election would ask the whole world. As CockroachDB does
//! for its GLOBAL tables, a few voters spread over the regions commit the
//! writes and the other nodes follow as learners.
//!
//! The rule:
//! - **How many.** Five voters once five nodes can vote, three from three,
//!   otherwise every node (one or two).
//! - **Where.** No region holds more than its share, `ceil(voters /
//!   regions)`: five over three regions is 2 + 2 + 1 and three over three is
//!   one each, so losing any one region leaves a majority.
//! - **Which.** Sticky: a current voter keeps its vote while its node is in
//!   the map, not draining, and within its region's share. Newcomers are
//!   taken from the region with the fewest voters, lowest node id first.
//!   Adding a node does not reshuffle the voters; it only fills a gap.
//!
//! The rule is a pure function of the current voters and the nodes, so a
//! cluster's bootstrapping nodes all initialise the group with the same
//! voters, and the metadata leader can re-run it on every change of the map.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::NodeId;

/// The most voters the metadata group has.
pub const MAX_META_VOTERS: usize = 5;

/// How many of `eligible` nodes vote.
pub fn meta_voter_count(eligible: usize) -> usize {
    match eligible {
        n if n >= MAX_META_VOTERS => MAX_META_VOTERS,
        n if n >= 3 => 3,
        n => n,
    }
}

/// The metadata group's voters for `eligible` nodes (id and region: the
/// nodes in the map that are not draining), keeping `current` voters where
/// the rule allows (see the module doc).
///
/// When the regions are too uneven for five within their shares (three
/// nodes in one region, one in each of two others), three voters one a
/// region are chosen instead: surviving a region beats surviving a second
/// node.
pub fn meta_voters<'a>(
    current: &BTreeSet<NodeId>,
    eligible: impl IntoIterator<Item = (NodeId, &'a str)>,
) -> BTreeSet<NodeId> {
    let mut by_region: BTreeMap<&str, BTreeSet<NodeId>> = BTreeMap::new();
    for (node, region) in eligible {
        by_region.entry(region).or_default().insert(node);
    }
    let total: usize = by_region.values().map(BTreeSet::len).sum();
    let want = meta_voter_count(total);
    let mut chosen = spread(current, &by_region, want);
    if chosen.len() < want && want > 3 {
        chosen = spread(current, &by_region, 3);
    }
    chosen
}

/// Up to `want` voters with no region over its share (fewer when the
/// regions cannot give that many within their shares).
fn spread(
    current: &BTreeSet<NodeId>,
    by_region: &BTreeMap<&str, BTreeSet<NodeId>>,
    want: usize,
) -> BTreeSet<NodeId> {
    if want == 0 {
        return BTreeSet::new();
    }
    let share = want.div_ceil(by_region.len());
    // Each region's kept voters: current ones, within the share, lowest ids.
    let mut chosen: BTreeMap<&str, BTreeSet<NodeId>> = by_region
        .iter()
        .map(|(region, nodes)| {
            let kept = nodes.intersection(current).take(share).copied().collect();
            (*region, kept)
        })
        .collect();
    // Too many (a node left and the count fell from five to three): drop
    // from the region with the most, highest id first.
    while chosen.values().map(BTreeSet::len).sum::<usize>() > want {
        let (_, fullest) = chosen
            .iter_mut()
            .max_by_key(|(region, voters)| (voters.len(), std::cmp::Reverse(*region)))
            .expect("some region has voters");
        fullest.pop_last();
    }
    // Too few: take from the region with the fewest that has a node to give.
    while chosen.values().map(BTreeSet::len).sum::<usize>() < want {
        let next = by_region
            .iter()
            .filter_map(|(region, nodes)| {
                let voters = &chosen[region];
                let spare = nodes.iter().find(|n| !voters.contains(n))?;
                (voters.len() < share).then_some((voters.len(), *region, *spare))
            })
            .min();
        let Some((_, region, node)) = next else {
            break;
        };
        chosen.get_mut(region).expect("a known region").insert(node);
    }
    chosen.into_values().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(spec: &[(NodeId, &'static str)]) -> Vec<(NodeId, &'static str)> {
        spec.to_vec()
    }

    fn nine() -> Vec<(NodeId, &'static str)> {
        nodes(&[
            (1, "eu"),
            (2, "eu"),
            (3, "eu"),
            (4, "us"),
            (5, "us"),
            (6, "us"),
            (7, "ap"),
            (8, "ap"),
            (9, "ap"),
        ])
    }

    fn per_region(voters: &BTreeSet<NodeId>, spec: &[(NodeId, &str)]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (node, region) in spec {
            if voters.contains(node) {
                *out.entry(region.to_string()).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn counts_follow_the_cluster_size() {
        let counts: Vec<usize> = (0..=9).map(meta_voter_count).collect();
        assert_eq!(counts, [0, 1, 2, 3, 3, 5, 5, 5, 5, 5]);
    }

    #[test]
    fn nine_nodes_in_three_regions_get_five_voters_spread_two_two_one() {
        let spec = nine();
        let voters = meta_voters(&BTreeSet::new(), spec.clone());
        assert_eq!(voters.len(), 5);
        let spread = per_region(&voters, &spec);
        assert!(spread.values().all(|n| *n <= 2), "{spread:?}");
        assert_eq!(spread.len(), 3, "every region votes: {spread:?}");
        // Any one region lost leaves a majority of the five.
        for lost in ["eu", "us", "ap"] {
            assert!(5 - spread[lost] >= 3, "losing {lost} leaves no majority");
        }
    }

    #[test]
    fn the_same_nodes_give_the_same_voters_whatever_their_order() {
        let mut spec = nine();
        let first = meta_voters(&BTreeSet::new(), spec.clone());
        spec.reverse();
        assert_eq!(meta_voters(&BTreeSet::new(), spec), first);
    }

    #[test]
    fn three_regions_of_one_node_all_vote() {
        let spec = nodes(&[(1, "eu"), (2, "us"), (3, "ap")]);
        assert_eq!(meta_voters(&BTreeSet::new(), spec), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn one_region_of_three_all_vote_and_small_clusters_vote_whole() {
        let three = nodes(&[(1, "eu"), (2, "eu"), (3, "eu")]);
        assert_eq!(meta_voters(&BTreeSet::new(), three), BTreeSet::from([1, 2, 3]));
        let two = nodes(&[(1, "eu"), (2, "us")]);
        assert_eq!(meta_voters(&BTreeSet::new(), two), BTreeSet::from([1, 2]));
        assert!(meta_voters(&BTreeSet::new(), Vec::new()).is_empty());
    }

    #[test]
    fn current_voters_keep_their_votes() {
        let spec = nine();
        // Not the lowest ids, but spread within the shares: nothing moves.
        let current = BTreeSet::from([3, 2, 6, 5, 9]);
        assert_eq!(meta_voters(&current, spec), current);
    }

    #[test]
    fn a_voter_that_leaves_is_replaced_from_its_region() {
        let spec = nine();
        let current = meta_voters(&BTreeSet::new(), spec.clone());
        let gone = *current.iter().next().unwrap();
        let rest: Vec<_> = spec.iter().copied().filter(|(n, _)| *n != gone).collect();
        let next = meta_voters(&current, rest.clone());
        assert_eq!(next.len(), 5);
        assert!(!next.contains(&gone));
        assert_eq!(next.intersection(&current).count(), 4, "only the gap is filled");
        assert!(per_region(&next, &rest).values().all(|n| *n <= 2));
    }

    #[test]
    fn a_region_over_its_share_gives_up_votes_to_a_new_region() {
        // Three voters all in eu; a node in us joins: one eu vote moves there.
        let current = BTreeSet::from([1, 2, 3]);
        let spec = nodes(&[(1, "eu"), (2, "eu"), (3, "eu"), (4, "us")]);
        let next = meta_voters(&current, spec);
        assert_eq!(next, BTreeSet::from([1, 2, 4]));
    }

    #[test]
    fn adding_nodes_fills_up_to_five_without_reshuffling() {
        let current = BTreeSet::from([1, 4, 7]);
        let next = meta_voters(&current, nine());
        assert!(current.is_subset(&next), "{next:?}");
        assert_eq!(next.len(), 5);
    }

    #[test]
    fn uneven_regions_get_three_voters_one_a_region() {
        let spec = nodes(&[(1, "eu"), (2, "eu"), (3, "eu"), (4, "us"), (5, "ap")]);
        let voters = meta_voters(&BTreeSet::new(), spec.clone());
        assert_eq!(voters, BTreeSet::from([1, 4, 5]));
        // Two regions: three voters, two and one.
        let two = nodes(&[(1, "eu"), (2, "eu"), (3, "eu"), (4, "us"), (5, "us")]);
        let voters = meta_voters(&BTreeSet::new(), two.clone());
        assert_eq!(voters.len(), 5, "{voters:?}");
    }

    #[test]
    fn shrinking_below_five_drops_to_three() {
        let current = BTreeSet::from([1, 2, 4, 5, 7]);
        let spec = nodes(&[(1, "eu"), (2, "eu"), (4, "us"), (7, "ap")]);
        let next = meta_voters(&current, spec);
        assert_eq!(next.len(), 3);
        assert!(next.is_subset(&current));
        assert_eq!(next, BTreeSet::from([1, 4, 7]), "one a region");
    }
}
