//! openraft's own storage conformance suite, run against our RocksDB store.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use raft_store::{LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("temp dir");
        let node = raft_store::open(dir.path()).expect("open store");
        // A replica beside others in the same database: the suite also proves
        // that nothing reads or writes outside its own key range.
        let store = node.replica(7).expect("replica store");
        Ok((dir, store.log, store.state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}

/// Two replicas in one database never see each other's log, vote or records,
/// and destroying one leaves the other whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_database_are_isolated() {
    use openraft::RaftLogReader;
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::testing::common::{blank_ent, log_id};
    use raft_store::{Entry, Vote};

    let dir = TempDir::new().expect("temp dir");
    let node = raft_store::open(dir.path()).expect("open store");
    let mut a = node.replica(1 << 40).expect("replica a").log;
    let mut b = node.replica((1 << 40) + 1).expect("replica b").log;
    let entries = |n: u64| -> Vec<Entry> { (1..=n).map(|i| blank_ent::<TypeConfig>(1, 1, i)).collect() };
    a.blocking_append(entries(5)).await.expect("append a");
    b.blocking_append(entries(3)).await.expect("append b");
    a.save_vote(&Vote::new(4, 1)).await.expect("vote a");
    b.truncate_after(Some(log_id::<TypeConfig>(1, 1, 1)))
        .await
        .expect("truncate b");

    assert_eq!(a.try_get_log_entries(0..100).await.unwrap().len(), 5);
    assert_eq!(b.try_get_log_entries(0..100).await.unwrap().len(), 1);
    assert_eq!(b.read_vote().await.unwrap(), None);
    assert_eq!(
        a.get_log_state().await.unwrap().last_log_id.map(|id| id.index),
        Some(5)
    );

    node.destroy_replica((1 << 40) + 1).expect("destroy b");
    let mut b = node.replica((1 << 40) + 1).expect("replica b again").log;
    assert_eq!(b.get_log_state().await.unwrap().last_log_id, None);
    assert_eq!(a.try_get_log_entries(0..100).await.unwrap().len(), 5);
    assert_eq!(a.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
}
