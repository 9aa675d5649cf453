//! Process-level tests: each starts real boxoffice nodes (target/debug/boxoffice)
//! and drives them as clients, operators and faults would. One test binary for
//! them all: each separate binary linked RocksDB and the whole node again, and
//! sixteen such links ran CI's disk dry (the linker died of SIGBUS).

mod accounts;
mod catalog;
mod chaos;
mod checkout;
mod clock;
mod home_leaders;
mod http_errors;
mod kill_leader;
mod live;
mod localized;
mod many_groups_restart;
mod many_groups_start;
mod membership;
mod metrics;
mod multi_group;
mod prices;
mod quiet_groups;
mod read_replicas;
mod replica_repair;
mod restart_all;
mod security;
mod snapshot_catchup;
mod staff_views;
mod survive;
mod upgrade;
mod wan;
