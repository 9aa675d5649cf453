//! `boxoffice`: run a node, a local demo cluster, the on-sale benchmark, or admin commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use region_config::NodeConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "A multi-region event-ticketing backend on Raft"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node of a cluster.
    Node {
        /// The node's TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local 3-node cluster with a sample event and print its URLs.
    Demo(node::demo::DemoOptions),
    /// Run the on-sale storm benchmark against a local (or given) cluster.
    Bench(node::bench::BenchOptions),
    /// Measure the CPU and memory that idle Raft groups cost (local 3-node clusters).
    BenchIdle(node::idle_bench::IdleBenchOptions),
    /// Read and booking latency from every region under a simulated WAN (a local cluster).
    BenchRegions(node::region_bench::RegionBenchOptions),
    /// Operate a running cluster: status, groups, placement, leadership.
    Admin(node::admin::AdminOptions),
    /// Write the node configs, TLS certificates and Prometheus config of the
    /// docker-compose cluster.
    ComposeConfig(node::compose::ComposeOptions),
    /// Wait for a cluster and create the demo's sample data in it.
    SeedDemo(node::compose::SeedOptions),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run_node(config: PathBuf) -> anyhow::Result<()> {
    let config = NodeConfig::load(&config)?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        signal.cancel();
    });
    node::server::run(config, shutdown).await
}

fn main() -> anyhow::Result<()> {
    init_tracing();
    transport::tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let binary = std::env::current_exe().context("locating the boxoffice binary")?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Node { config } => run_node(config).await,
            Cmd::Demo(options) => node::demo::run(options, binary).await,
            Cmd::ComposeConfig(options) => {
                for path in node::compose::write(&options)? {
                    eprintln!("wrote {}", path.display());
                }
                Ok(())
            }
            Cmd::SeedDemo(options) => node::compose::seed(&options).await,
            Cmd::Bench(options) => node::bench::run(options, binary).await,
            Cmd::Admin(options) => node::admin::run(options).await,
            Cmd::BenchIdle(options) => node::idle_bench::run(options, binary).await,
            Cmd::BenchRegions(options) => node::region_bench::run(options, binary).await,
        }
    })
}
