//! The `boxoffice` binary's library half: launching local clusters (demo, bench,
//! tests), the on-sale benchmark, and wiring a node together.

pub mod admin;
pub mod bench;
pub mod certs;
pub mod compose;
pub mod demo;
pub mod faults;
pub mod home_leaders;
pub mod idle_bench;
pub mod launcher;
pub mod liveness;
pub mod notifications;
pub mod payments;
pub mod periodic;
pub mod read_replicas;
pub mod region_bench;
pub mod regions;
pub mod replicas;
pub mod server;
