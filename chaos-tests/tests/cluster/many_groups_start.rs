//! Thousands of data groups created at once all get a leader, in waves, while
//! the metadata group keeps the leader it had.
//!
//! Three nodes are laid out with 800 data groups (2,400 data replicas). The
//! map that creates them is applied by every node at once, so every group
//! would elect in the same second. Node liveness must let them elect a wave
//! at a time: every group led within a bound, and the metadata group, which
//! the whole cluster needs for every placement, never losing its leader on
//! the way (no new term, no sample of a node without a leader of it). Before
//! waves were bounded, a cluster of 4,000 groups never settled and its
//! metadata group was still electing at term 263.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use booking::META_GROUP;
use chaos_tests::TestCluster;
use node::launcher;
use region_config::{ClusterLayout, RaftTuning};

const GROUPS: u32 = 800;
/// Every group led within this, from the processes' start (a debug build on
/// two shared cores).
const LED_WITHIN: Duration = Duration::from_secs(200);
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// A `/health` answer slower than this counts as a node that did not answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_hundred_groups_created_at_once_are_all_led() -> anyhow::Result<()> {
    let layout = ClusterLayout {
        groups_per_region: GROUPS,
        replication: 3,
        ..ClusterLayout::default()
    };
    let test = TestCluster::spawn_with_layout(3, RaftTuning::default(), layout).await?;
    let started = Instant::now();
    let nodes = test.cluster.node_ids();
    // The metadata group's term once every node has the map and agrees on
    // its leader (the groups are being created from then on), and what
    // broke it since.
    let mut meta_term: Option<u64> = None;
    let mut broken = Vec::new();
    let mut samples = 0;
    let led_after = loop {
        ensure!(
            started.elapsed() < LED_WITHIN,
            "not every group was led after {LED_WITHIN:?}; {} samples, metadata term {meta_term:?}",
            samples
        );
        tokio::time::sleep(SAMPLE_EVERY).await;
        let mut answers = Vec::new();
        for &id in &nodes {
            match tokio::time::timeout(ANSWER_WITHIN, test.cluster.health(id)).await {
                Ok(Ok(health)) => answers.push((id, health)),
                // Still starting (no listener yet) before the map exists.
                _ if meta_term.is_none() => {}
                Ok(Err(e)) => broken.push(format!(
                    "{:?}: node {id} did not answer: {e:#}",
                    started.elapsed()
                )),
                Err(_) => broken.push(format!(
                    "{:?}: node {id} did not answer within {ANSWER_WITHIN:?}",
                    started.elapsed()
                )),
            }
        }
        let metas: Vec<(u64, &launcher::GroupHealth, u64)> = answers
            .iter()
            .map(|(id, h)| {
                Ok((
                    *id,
                    h.group(META_GROUP).context("no metadata replica")?,
                    h.map_epoch,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        // The baseline: every node has the map and agrees on the metadata
        // group's leader and term (elections while the nodes bootstrap are
        // no storm).
        if meta_term.is_none()
            && metas.len() == nodes.len()
            && metas.iter().all(|(_, m, epoch)| {
                *epoch > 0
                    && m.leader_node.is_some()
                    && (m.term, m.leader_node) == (metas[0].1.term, metas[0].1.leader_node)
            })
        {
            meta_term = Some(metas[0].1.term);
        }
        if let Some(term) = meta_term {
            for (id, meta, _) in &metas {
                if meta.leader_node.is_none() || meta.term != term {
                    broken.push(format!(
                        "{:?}: node {id} sees the metadata group at term {} with leader {:?} (was term {term})",
                        started.elapsed(),
                        meta.term,
                        meta.leader_node
                    ));
                }
            }
        }
        let ready = answers
            .iter()
            .filter(|(_, health)| {
                let data = health.groups.iter().filter(|g| g.group_id != META_GROUP);
                let (count, led) = data.fold((0, 0), |(n, led), g| {
                    (n + 1, led + usize::from(g.leader_node.is_some()))
                });
                health.ready && count == GROUPS as usize && led == count
            })
            .count();
        samples += 1;
        if ready == nodes.len() {
            break started.elapsed();
        }
    };
    eprintln!("{GROUPS} groups led on every node {led_after:?} after start ({samples} samples)");
    ensure!(
        broken.is_empty(),
        "the metadata group did not stay led while the groups elected:\n{}",
        broken.join("\n")
    );
    test.finish().await
}
