//! A short randomized chaos run in CI: two seeds, every fault kind at least
//! once in each (the network cuts only as root), the linearizability checker
//! over everything the clients saw. The first seed runs in one region; the
//! second spreads the three nodes over three regions, with the event
//! surviving a region, and loses a whole region too. A longer run is `cargo run --bin chaos -- --duration 120 --seed N`.

use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::chaos::{self, ChaosOptions, Fault};
use chaos_tests::fake_clock::FakeClock;
use chaos_tests::netlab::NetLab;
use chaos_tests::test_seed;

const TEST_TIMEOUT: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_leaves_a_linearizable_history() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .context("the chaos runs did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let first = test_seed();
    // Cutting links needs network namespaces, which need root (CI is);
    // setting clocks needs libfaketime (`./dev test` installs it).
    let network = NetLab::available();
    let clocks = FakeClock::available();
    if !network {
        eprintln!("SKIPPED the network faults: network namespaces need root, ip and iptables");
    }
    if !clocks {
        eprintln!("SKIPPED clock-jump and clock-drift: libfaketime is not installed (Debian's faketime)");
    }
    let runnable: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| (network || !f.needs_network()) && (clocks || !f.needs_fake_clock()))
        .collect();
    for (seed, regions) in [(first, 1), (first.wrapping_add(1), 3)] {
        let faults: Vec<Fault> = runnable
            .iter()
            .copied()
            .filter(|f| regions >= 3 || !f.needs_regions())
            .collect();
        let opts = ChaosOptions {
            faults: faults.clone(),
            regions,
            seed,
            // Every fault once (each at most ~10 s, with calm spells
            // between) is longer than this: one round, ~100 s a seed.
            duration: Duration::from_secs(30),
            clients: 4,
            nodes: 3,
        };
        let report = chaos::run(&opts).await?;
        eprintln!("{}", serde_json::to_string(&report)?);
        ensure!(
            report.timeline_svg.starts_with("<svg") && report.timeline_svg.matches("<rect").count() > 50,
            "seed {seed}: no timeline"
        );
        ensure!(
            report.linearizable,
            "seed {seed}: {}",
            report.violation.unwrap_or_default()
        );
        for &fault in &faults {
            ensure!(
                report.faults.iter().any(|w| w.fault == fault),
                "seed {seed}: {} never ran",
                fault.name()
            );
        }
        ensure!(
            report.ops.ok > 50,
            "seed {seed}: only {} operations succeeded",
            report.ops.ok
        );
        ensure!(
            report.seats_checked > 50,
            "seed {seed}: {} seats checked",
            report.seats_checked
        );
        for window in &report.faults {
            ensure!(
                window.recovery_ms.is_some(),
                "seed {seed}: no write succeeded after {} at {} ms",
                window.fault.name(),
                window.start_ms
            );
        }
    }
    Ok(())
}
