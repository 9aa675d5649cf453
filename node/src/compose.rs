//! `boxoffice compose-config` and `boxoffice seed-demo`: the configuration of
//! the container cluster in `docker-compose.yml`, and its sample data.
//!
//! The compose cluster is three regions of three nodes. Each region is its
//! own Docker network (`10.77.R.0/24`, R = 1, 2, 3 in the order the regions
//! are given); a `wan` container sits on all three, forwards between them
//! and delays what it forwards with `tc netem`, so a packet from one region
//! to another crosses a real, slow link, and cutting a region is taking its
//! link down. Node `k` of region `R` (k = 1..3) is node id `3(R-1) + k` at
//! `10.77.R.(10+k)`, HTTP on 8080 and gRPC on 9090; the router is
//! `10.77.R.2` on every network. `docker-compose.yml` spells out the same
//! addresses. On a kernel without `netem` (`--wan-delay simulated`) the
//! router only forwards, and the nodes delay their cross-region calls
//! themselves; cutting a region still cuts its link.
//!
//! `compose-config --out DIR` writes, for the containers to share through a
//! volume: `node-N.toml` for each node, the cluster's TLS certificates under
//! `DIR/tls`, and `prometheus.yml`, which scrapes every node's `/metrics`.
//! It keeps existing certificates, so a re-run does not strand running
//! nodes. The secrets are the demo's published ones: the compose cluster is
//! for trying boxoffice and for the chaos harness, not for customers.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use region_config::{ClusterLayout, MemberConfig, NodeConfig, RaftTuning, RegionId};

use crate::launcher;

/// HTTP port of every node container.
pub const HTTP_PORT: u16 = 8080;
/// gRPC port of every node container.
pub const GRPC_PORT: u16 = 9090;

#[derive(Debug, Clone, clap::Args)]
pub struct ComposeOptions {
    /// Where to write the configuration (a volume the containers share).
    #[arg(long)]
    out: PathBuf,
    /// The regions, in network order (10.77.1.0/24 is the first).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eu-central,us-east,ap-northeast"
    )]
    regions: Vec<String>,
    /// Nodes in each region.
    #[arg(long, default_value_t = 3)]
    nodes_per_region: u8,
    /// The host name users reach the published ports on.
    #[arg(long, default_value = "localhost")]
    public_host: String,
    /// The host port of the first region's first node; each next region's
    /// first node is published one port higher.
    #[arg(long, default_value_t = 8081)]
    first_public_port: u16,
    /// The one-way delay the WAN router adds, which the nodes' Raft timing
    /// is tuned for.
    #[arg(long, default_value_t = 0)]
    wan_ms: u64,
    /// Who adds that delay: the router's `tc netem` (a real slow link), or
    /// the nodes' own simulated WAN (`[wan]`, as `boxoffice demo --wan-ms`)
    /// on kernels without netem.
    #[arg(long, value_enum, default_value_t = WanDelay::Netem)]
    wan_delay: WanDelay,
}

/// Where the compose cluster's WAN delay comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WanDelay {
    Netem,
    Simulated,
}

/// Node `k` (1-based) of region number `r` (1-based): its id and address.
pub fn node_addr(r: u8, k: u8, nodes_per_region: u8) -> (u64, Ipv4Addr) {
    let id = u64::from(r - 1) * u64::from(nodes_per_region) + u64::from(k);
    (id, Ipv4Addr::new(10, 77, r, 10 + k))
}

fn members(regions: &[RegionId], nodes_per_region: u8) -> Vec<MemberConfig> {
    let mut members = Vec::new();
    for (r, region) in (1u8..).zip(regions) {
        for k in 1..=nodes_per_region {
            let (node_id, ip) = node_addr(r, k, nodes_per_region);
            members.push(MemberConfig {
                node_id,
                region: region.clone(),
                grpc_addr: SocketAddr::V4(SocketAddrV4::new(ip, GRPC_PORT)),
                http_addr: SocketAddr::V4(SocketAddrV4::new(ip, HTTP_PORT)),
            });
        }
    }
    members
}

fn parse_regions(names: &[String]) -> anyhow::Result<Vec<RegionId>> {
    Ok(names
        .iter()
        .map(|r| RegionId::new(r))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Writes the cluster's configuration into `opts.out` (see the module doc).
pub fn write(opts: &ComposeOptions) -> anyhow::Result<Vec<PathBuf>> {
    let regions = parse_regions(&opts.regions)?;
    ensure!(
        (1..=9).contains(&regions.len()),
        "one to nine regions, not {}",
        regions.len()
    );
    ensure!(
        (1..=9).contains(&opts.nodes_per_region),
        "one to nine nodes a region"
    );
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let members = members(&regions, opts.nodes_per_region);
    let mut table = launcher::region_table(&regions, &members)?;
    for (i, region) in table.iter_mut().enumerate() {
        let port = opts.first_public_port + i as u16;
        region.http_endpoint = Some(format!("http://{}:{port}", opts.public_host));
    }
    let certs = crate::certs::CertDir::open_or_create(&opts.out.join("tls"))?;
    let tuning = RaftTuning::default().over_wan(opts.wan_ms);
    let mut written = Vec::new();
    for member in &members {
        let id = member.node_id;
        let mut tls = certs.node(id)?;
        // The containers see the volume at the path the node is given here.
        tls.ca_cert = in_volume(&opts.out, &tls.ca_cert)?;
        tls.cert = in_volume(&opts.out, &tls.cert)?;
        tls.key = in_volume(&opts.out, &tls.key)?;
        let config = NodeConfig {
            node_id: id,
            region: member.region.clone(),
            data_dir: PathBuf::from("/data"),
            http_addr: member.http_addr,
            grpc_addr: member.grpc_addr,
            bootstrap: true,
            members: members.clone(),
            raft: tuning.clone(),
            layout: ClusterLayout::default(),
            admin_token: Some(crate::launcher::LOCAL_ADMIN_TOKEN.to_owned()),
            auth: Some(launcher::local_auth()),
            payments: Some(launcher::local_payments()),
            limits: region_config::LimitsConfig::default(),
            notifications: region_config::NotificationsConfig {
                allow_private_webhooks: true,
                ..region_config::NotificationsConfig::default()
            },
            tls: Some(tls),
            http: region_config::HttpConfig::default(),
            login: region_config::LoginLimits::default(),
            allow_insecure_demo_secrets: true,
            regions: table.clone(),
            wan: region_config::WanConfig {
                one_way_ms: if opts.wan_delay == WanDelay::Simulated {
                    opts.wan_ms
                } else {
                    0
                },
                ..region_config::WanConfig::default()
            },
        };
        config.validate()?;
        let path = opts.out.join(format!("node-{id}.toml"));
        std::fs::write(&path, config.to_toml())
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    let prometheus = opts.out.join("prometheus.yml");
    std::fs::write(&prometheus, prometheus_config(&members))
        .with_context(|| format!("cannot write {}", prometheus.display()))?;
    written.push(prometheus);
    Ok(written)
}

/// `path` (under `out`) as the containers see it: the volume is mounted at
/// `/cluster`.
fn in_volume(out: &Path, path: &Path) -> anyhow::Result<PathBuf> {
    let relative = path
        .strip_prefix(out)
        .with_context(|| format!("{} is not under {}", path.display(), out.display()))?;
    Ok(Path::new("/cluster").join(relative))
}

fn prometheus_config(members: &[MemberConfig]) -> String {
    let mut out = String::from(
        "# Written by `boxoffice compose-config`: every node's /metrics, labelled by region.\n\
         global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: boxoffice\n    static_configs:\n",
    );
    for member in members {
        out.push_str(&format!(
            "      - targets: ['{}']\n        labels: {{ region: '{}', node: '{}' }}\n",
            member.http_addr, member.region, member.node_id
        ));
    }
    out
}

#[derive(Debug, Clone, clap::Args)]
pub struct SeedOptions {
    /// A node's HTTP base URL.
    #[arg(long)]
    url: String,
    /// The regions the cluster has (sample events go to those of them the
    /// demo knows).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eu-central,us-east,ap-northeast"
    )]
    regions: Vec<String>,
    /// How long to wait for the cluster to be ready.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

/// Waits for the cluster behind `opts.url`, then creates the demo's sample
/// venues, events, accounts and exchange rates (idempotent: a second run
/// changes nothing).
pub async fn seed(opts: &SeedOptions) -> anyhow::Result<()> {
    let regions = parse_regions(&opts.regions)?;
    let client = api::client::Client::new(vec![opts.url.clone()])?;
    let wait = Duration::from_secs(opts.wait_secs);
    launcher::wait_for_answer(&client, "/health", wait, |h| h["ready"] == true).await?;
    launcher::wait_for_answer(&client, "/v1/regions", wait, launcher::regions_described).await?;
    crate::demo::create_demo_event(&opts.url, &regions).await?;
    eprintln!("sample data created through {}", opts.url);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_networks() {
        assert_eq!(node_addr(1, 1, 3), (1, Ipv4Addr::new(10, 77, 1, 11)));
        assert_eq!(node_addr(2, 3, 3), (6, Ipv4Addr::new(10, 77, 2, 13)));
        assert_eq!(node_addr(3, 1, 3), (7, Ipv4Addr::new(10, 77, 3, 11)));
    }

    #[test]
    fn the_compose_file_names_the_same_addresses() {
        let compose = include_str!("../../docker-compose.yml");
        for r in 1..=3u8 {
            for k in 1..=3u8 {
                let (id, ip) = node_addr(r, k, 3);
                assert!(
                    compose.contains(&format!("ipv4_address: {ip}")),
                    "docker-compose.yml lacks node {id}'s address {ip}"
                );
                assert!(
                    compose.contains(&format!("/cluster/node-{id}.toml")),
                    "docker-compose.yml lacks node {id}'s config"
                );
            }
        }
    }

    #[test]
    fn configs_validate_and_point_into_the_volume() {
        let dir = std::env::temp_dir().join(format!("compose-config-{}", std::process::id()));
        let opts = ComposeOptions {
            out: dir.clone(),
            regions: vec!["eu-central".into(), "us-east".into(), "ap-northeast".into()],
            nodes_per_region: 3,
            public_host: "localhost".into(),
            first_public_port: 8081,
            wan_ms: 75,
            wan_delay: WanDelay::Simulated,
        };
        let written = write(&opts).unwrap();
        assert_eq!(written.len(), 10);
        let config = NodeConfig::load(&dir.join("node-4.toml")).unwrap();
        assert_eq!(config.region.as_str(), "us-east");
        assert_eq!(config.http_addr.to_string(), "10.77.2.11:8080");
        assert_eq!(config.members.len(), 9);
        assert!(config.tls.unwrap().cert.starts_with("/cluster/tls"));
        assert_eq!(config.wan.one_way_ms, 75, "the nodes simulate the delay");
        let us = config
            .regions
            .iter()
            .find(|r| r.id.as_str() == "us-east")
            .unwrap();
        assert_eq!(us.http_endpoint.as_deref(), Some("http://localhost:8082"));
        let prometheus = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
        assert!(prometheus.contains("10.77.3.13:8080"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
