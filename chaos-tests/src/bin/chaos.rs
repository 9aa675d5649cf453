//! `chaos`: one chaos run from the command line (see `chaos_tests::chaos`).
//!
//!   cargo run --bin chaos -- --faults all --seed 7 --duration 60 --clients 6 --nodes 3 \
//!       --regions 3 --report run.json --timeline run.svg
//!
//! Exits 1 when the checker finds a violation; the JSON report says which.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chaos_tests::chaos::{self, ChaosOptions, Fault};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "chaos",
    about = "Break a local boxoffice cluster under load and check what clients saw"
)]
struct Args {
    /// Comma-separated faults (kill-leader, kill-node, pause, pause-leader, restart-all,
    /// isolate-leader, split, one-way-cut, drop-responses, transfer-crash, clock-jump,
    /// disk-fail, clock-drift, wan-delay, region-loss; the cuts need root, the clock faults
    /// libfaketime, region-loss --regions 3) or `all` (without region-loss under three regions).
    #[arg(long, default_value = "all")]
    faults: String,
    /// The seed of the fault schedule and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    #[arg(long, default_value_t = 4)]
    clients: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Regions the nodes are spread over; with three or more the event survives a region.
    #[arg(long, default_value_t = 1)]
    regions: usize,
    /// Where the cluster runs: local processes (compose: deploy/compose.sh test).
    #[arg(long, default_value = "local")]
    target: String,
    /// Where to write the JSON report (default: print it).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Where to write the SVG timeline of the run.
    #[arg(long)]
    timeline: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.target == "local",
        "--target {} is not supported by this binary: the compose cluster is driven by deploy/compose.sh",
        args.target
    );
    let mut faults = Fault::parse_list(&args.faults)?;
    if args.faults == "all" && args.regions < 3 {
        eprintln!("region-loss left out: it needs --regions 3 or more");
        faults.retain(|f| !f.needs_regions());
    }
    let opts = ChaosOptions {
        faults,
        regions: args.regions,
        seed: args.seed,
        duration: Duration::from_secs(args.duration),
        clients: args.clients,
        nodes: args.nodes,
    };
    let report = chaos::run(&opts).await?;
    let json = serde_json::to_string_pretty(&report)?;
    match &args.report {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?
        }
        None => println!("{json}"),
    }
    if let Some(path) = &args.timeline {
        std::fs::write(path, &report.timeline_svg)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "seed {}: {} ok, {} failed, {} unknown; {} faults; {}",
        report.seed,
        report.ops.ok,
        report.ops.failed,
        report.ops.unknown,
        report.faults.len(),
        if report.linearizable {
            "linearizable"
        } else {
            "VIOLATION"
        }
    );
    if !report.linearizable {
        std::process::exit(1);
    }
    Ok(())
}
