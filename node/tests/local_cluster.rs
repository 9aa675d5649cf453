//! The launcher against the real binary: three nodes start on ephemeral ports and agree
//! on a leader, a killed follower comes back with its old config and data, and
//! `stop_all` ends every process.
//!
//! Being an integration test of the `node` package, it also makes
//! `cargo test --workspace` (and nextest) build `target/<profile>/boxoffice`, which the
//! chaos tests find through `node::launcher::find_binary`.

use std::path::Path;
use std::time::Duration;

use anyhow::ensure;
use node::launcher::{FIRST_DATA_GROUP, LocalCluster};
use region_config::RaftTuning;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_starts_restarts_and_stops() -> anyhow::Result<()> {
    let binary = Path::new(env!("CARGO_BIN_EXE_boxoffice"));
    let dir = tempfile::tempdir()?;
    let mut cluster = LocalCluster::start(binary, dir.path(), 3, RaftTuning::default())?;
    let leader = cluster.wait_ready(READY_TIMEOUT).await?;
    for id in cluster.node_ids() {
        let health = cluster.health(id).await?;
        ensure!(health.node_id == id, "node {id} calls itself {}", health.node_id);
        ensure!(health.ready, "node {id} is not ready: {health:?}");
        let group = health
            .group(FIRST_DATA_GROUP)
            .ok_or_else(|| anyhow::anyhow!("node {id} runs no replica of the data group"))?;
        ensure!(
            group.leader_node == Some(leader),
            "node {id} follows {:?}",
            group.leader_node
        );
        ensure!(health.leader_id.is_some(), "node {id} knows no metadata leader");
    }

    let follower = cluster
        .node_ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("3 nodes");
    cluster.kill(follower)?;
    ensure!(
        !cluster.running_ids().contains(&follower),
        "killed node still listed"
    );
    ensure!(
        cluster.kill(follower).is_err(),
        "a dead node cannot be killed twice"
    );
    cluster.restart(follower)?;
    cluster.wait_ready(READY_TIMEOUT).await?;
    ensure!(cluster.health(follower).await?.node_id == follower);

    cluster.stop_all().await?;
    ensure!(
        cluster.running_ids().is_empty(),
        "nodes still running after stop_all"
    );
    ensure!(
        cluster.health(leader).await.is_err(),
        "the old leader still answers"
    );
    Ok(())
}
