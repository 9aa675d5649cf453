//! `boxoffice bench-regions`: the multi-region read path under a simulated WAN.
//!
//! It starts a local cluster with nodes in several regions and a simulated
//! one-way delay between regions (`[wan]`), puts one event on sale at home
//! in the first region (a venue in its country), and then, while an on-sale
//! books seats through the home region, reads from every node of every
//! region: searches (the catalog replica, through the read cache) and seat
//! maps with `?consistency=bounded` (from the node's own replica of the event
//! group, a voter at home and a read replica abroad, or else borrowed from
//! the one in its region, while it is within the default bound). It also
//! books one seat at a time through a home node and through a node of each
//! other region. It prints, per node, read latency p50/p99, the staleness
//! seen, the read cache's hit ratio over the run, and booking latency;
//! nothing is compared against a threshold.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use api::client::Client;
use region_config::{ClusterLayout, NodeId, RaftTuning, RegionId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::bench::{latency_json as summary, latency_line as line, new_histogram, record};
use crate::launcher::{self, LocalCluster};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Concurrent buyers of the on-sale that runs while the regions read.
const STORM_WORKERS: u32 = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct RegionBenchOptions {
    /// Regions, comma separated; the event is homed in the first.
    #[arg(long, value_delimiter = ',', default_value = "eu-west,us-east,ap-south")]
    pub regions: Vec<String>,
    /// Nodes in each region (with three or more, a group's voters all sit at
    /// home and the other regions read from its read replicas).
    #[arg(long, default_value_t = 3)]
    pub nodes_per_region: usize,
    /// Simulated one-way delay between regions, ms.
    #[arg(long, default_value_t = 150)]
    pub wan_ms: u64,
    /// Searches and seat-map reads per region (each).
    #[arg(long, default_value_t = 500)]
    pub reads: u32,
    /// Single-seat holds per booking client (one at home, one per other region).
    #[arg(long, default_value_t = 20)]
    pub bookings: u32,
    /// Directory of the local cluster; an old one is wiped.
    #[arg(long, default_value = "./.bench-regions")]
    pub base_dir: PathBuf,
}

pub async fn run(opts: RegionBenchOptions, binary: PathBuf) -> anyhow::Result<()> {
    ensure!(!opts.regions.is_empty(), "--regions needs at least one region");
    ensure!(opts.nodes_per_region > 0, "--nodes-per-region must be positive");
    ensure!(
        opts.reads > 0 && opts.bookings > 0,
        "--reads and --bookings must be positive"
    );
    let regions = opts
        .regions
        .iter()
        .map(|r| RegionId::new(r))
        .collect::<Result<Vec<_>, _>>()?;
    let nodes = regions.len() * opts.nodes_per_region;
    let base_dir = launcher::prepare_base_dir(&opts.base_dir)?;
    let addrs = launcher::ephemeral_addrs(nodes)?;
    let tuning = RaftTuning::default().over_wan(opts.wan_ms);
    // Two groups per region: the first keeps the region's accounts (and no
    // replica abroad), the event goes to the second.
    let layout = ClusterLayout {
        groups_per_region: 2,
        ..ClusterLayout::default()
    };
    let wan_ms = opts.wan_ms;
    let mut cluster =
        LocalCluster::start_configured(&binary, &base_dir, addrs, tuning, layout, &regions, &|config| {
            config.wan.one_way_ms = wan_ms;
        })?;
    let outcome = measure(&opts, &regions, &mut cluster).await;
    cluster.stop_all().await?;
    outcome
}

/// Node `id`'s region: the launcher puts node `i + 1` in `regions[i % len]`.
fn region_of(regions: &[RegionId], id: NodeId) -> &RegionId {
    &regions[(id as usize - 1) % regions.len()]
}

async fn measure(
    opts: &RegionBenchOptions,
    regions: &[RegionId],
    cluster: &mut LocalCluster,
) -> anyhow::Result<()> {
    let leader = cluster.wait_ready(READY_TIMEOUT).await?;
    let admin = |id: NodeId| -> anyhow::Result<Client> {
        Ok(Client::new(vec![cluster.http_url(id)])?.with_token(Some(launcher::LOCAL_ADMIN_TOKEN)))
    };
    let first_in = |region: &RegionId| -> NodeId {
        cluster
            .node_ids()
            .into_iter()
            .find(|id| region_of(regions, *id) == region)
            .expect("every region has nodes")
    };
    let home = &regions[0];
    let setup = admin(leader)?;
    launcher::wait_for_answer(&setup, "/v1/regions", READY_TIMEOUT, launcher::regions_described).await?;
    let rates = json!({ "base": "EUR", "rates": { "USD": "1.0842", "INR": "90.12", "JPY": "157.43", "BRL": "5.87" } });
    send(&setup, Method::PUT, "/v1/admin/fx-rates", rates).await?;
    let country = setup.get("/v1/regions").send().await?.body["regions"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["id"] == home.as_str()))
        .and_then(|r| r["countries"][0].as_str().map(str::to_owned))
        .with_context(|| format!("region {home} homes no country; use a known region first"))?;
    let venue = json!({ "name": "Bench Arena", "address": "1 Bench Road", "city": "Home", "country": country, "time_zone": "UTC" });
    let venue_id = send(&setup, Method::POST, "/v1/venues", venue).await?["venue_id"].clone();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let spec = booking::EventSpec::grid(
        "bench-regions",
        booking::Currency::new("EUR")?,
        1,
        40,
        50,
        vec![booking::PriceTier {
            name: "standard".to_owned(),
            price: booking::Money::new(5_000, booking::Currency::new("EUR")?),
        }],
    );
    let listing = json!({ "category": "concert", "venue_id": venue_id, "starts_at_ms": now_ms + 86_400_000, "ends_at_ms": now_ms + 90_000_000 });
    let event = json!({ "event_id": 1, "spec": api::dto::EventSpec::from(spec), "listing": listing });
    send(&setup, Method::POST, "/v1/events", event).await?;
    for region in regions {
        let node = admin(first_in(region))?;
        launcher::wait_for_answer(&node, "/v1/events?q=bench", READY_TIMEOUT, |body| {
            body["events"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await?;
        launcher::wait_for_answer(&node, "/v1/events/1?consistency=local", READY_TIMEOUT, |body| {
            body["capacity"].is_u64()
        })
        .await?;
    }
    println!(
        "bench-regions: {} regions x {} nodes, {} ms one way between regions; event 1 homed in {home}",
        regions.len(),
        opts.nodes_per_region,
        opts.wan_ms
    );
    let nodes: Vec<(NodeId, Client)> = cluster
        .node_ids()
        .into_iter()
        .map(|id| Ok((id, admin(id)?)))
        .collect::<anyhow::Result<_>>()?;
    let group_leader = async || -> anyhow::Result<String> {
        let map = setup.get("/v1/cluster").send().await?.body;
        let group = map["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["events"].as_u64() > Some(0)))
            .and_then(|g| g["group_id"].as_u64())
            .context("no group holds the event")?;
        for (id, node) in &nodes {
            let seen = node.get("/v1/cluster").send().await?.body;
            let leads = seen["replicas"].as_array().is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["group_id"] == group && r["state"] == "leader")
            });
            if leads {
                return Ok(format!(
                    "group {group} led by node {id} ({})",
                    region_of(regions, *id)
                ));
            }
        }
        Ok(format!("group {group} has no leader"))
    };
    println!("  event 1: {}", group_leader().await?);

    // The on-sale at home, running while the regions read: concurrent
    // buyers, since each hold waits for a quorum across the WAN.
    let stop = Arc::new(AtomicBool::new(false));
    let mut storm = Vec::new();
    for worker in 0..STORM_WORKERS {
        let client = admin(first_in(home))?;
        let stop = stop.clone();
        storm.push(tokio::spawn(async move {
            let mut booked = 0u32;
            while !stop.load(Ordering::Relaxed) && booked < 100 {
                let body = json!({ "holder": format!("storm-{worker}-{booked}"), "best": { "section": "A", "quantity": 1 } });
                if send(&client, Method::POST, "/v1/events/1/holds", body).await.is_ok() {
                    booked += 1;
                }
            }
            booked
        }));
    }

    // Every node of every region reads: one holds its region's read replica
    // of the event group (or, at home, a voter), the others borrow from it.
    let mut report = Vec::new();
    for (id, node) in &nodes {
        let (id, region) = (*id, region_of(regions, *id));
        let hits_before = cache_counters(node).await?;
        let mut search = new_histogram();
        let mut seat_map = new_histogram();
        // Observed staleness of the seat maps served by the node's own replica, ms.
        let mut staleness = hdrhistogram::Histogram::<u64>::new(3)?;
        let (mut served_here, mut served_by_itself) = (0u32, 0u32);
        let mut currency = String::new();
        for _ in 0..opts.reads {
            let started = Instant::now();
            let answer = node.get("/v1/events?q=bench").send().await?;
            ensure!(
                answer.status.is_success(),
                "search in {region}: {}",
                answer.status
            );
            record(&mut search, started.elapsed());
            let started = Instant::now();
            let answer = node.get("/v1/events/1?consistency=bounded").send().await?;
            ensure!(
                answer.status.is_success(),
                "seat map in {region}: {}",
                answer.status
            );
            record(&mut seat_map, started.elapsed());
            // This node's own replica or a neighbour's in the same region.
            let served_by = answer.header_number("boxoffice-served-by");
            if served_by.is_some_and(|node| region_of(regions, node) == region) {
                served_here += 1;
            }
            if served_by == Some(id) {
                served_by_itself += 1;
            }
            if let Some(ms) = answer.header_number("boxoffice-staleness-ms") {
                staleness.saturating_record(ms);
            }
            currency = answer.body["tiers"][0]["display_price"]["currency"]
                .as_str()
                .unwrap_or("EUR")
                .to_owned();
        }
        let (hits, misses) = cache_counters(node).await?;
        let hit_ratio = ratio(hits - hits_before.0, misses - hits_before.1);
        let (stale_p50, stale_p99) = (
            staleness.value_at_quantile(0.5),
            staleness.value_at_quantile(0.99),
        );
        println!(
            "  {region:<14} node {id}: search {}; seat map {} ({served_here}/{} from a replica in the region, \
             {served_by_itself} from its own; staleness p50 {stale_p50} ms p99 {stale_p99} ms); shown in {currency}; \
             cache hits {:.0}%",
            line(&search),
            line(&seat_map),
            opts.reads,
            hit_ratio * 100.0
        );
        report.push(json!({
            "region": region, "node": id, "search": summary(&search), "seat_map": summary(&seat_map),
            "seat_map_served_in_region": served_here, "seat_map_served_by_itself": served_by_itself,
            "staleness_ms": { "p50": stale_p50, "p99": stale_p99 },
            "display_currency": currency, "cache_hit_ratio": (hit_ratio * 1000.0).round() / 1000.0,
        }));
    }
    stop.store(true, Ordering::Relaxed);
    let mut stormed = 0;
    for worker in storm {
        stormed += worker.await.context("an on-sale task failed")?;
    }

    let mut bookings = Vec::new();
    for region in regions {
        let id = first_in(region);
        let node = admin(id)?;
        let mut latency = new_histogram();
        for i in 0..opts.bookings {
            let body =
                json!({ "holder": format!("{region}-{i}"), "best": { "section": "A", "quantity": 1 } });
            let started = Instant::now();
            send(&node, Method::POST, "/v1/events/1/holds", body).await?;
            record(&mut latency, started.elapsed());
        }
        let place = if region == home { "home" } else { "remote" };
        println!("  hold through {region:<14} ({place}): {}", line(&latency));
        bookings.push(json!({ "region": region, "place": place, "hold": summary(&latency) }));
    }
    println!("  event 1 after the bookings: {}", group_leader().await?);
    let result = json!({
        "bench": "regions", "regions": regions, "nodes_per_region": opts.nodes_per_region,
        "wan_one_way_ms": opts.wan_ms, "reads_per_region": opts.reads, "on_sale_holds_during_reads": stormed,
        "reads": report, "bookings": bookings,
    });
    println!("{result}");
    Ok(())
}

async fn send(client: &Client, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let answer = client
        .request(method.clone(), path)
        .key(&uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{method} {path}"))?;
    if !answer.status.is_success() {
        bail!("{method} {path} answered {}: {}", answer.status, answer.text);
    }
    Ok(answer.body)
}

/// The node's read-cache hits and misses so far.
async fn cache_counters(client: &Client) -> anyhow::Result<(u64, u64)> {
    let text = client.get("/metrics").send().await?.text;
    let counter = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((
        counter("boxoffice_read_cache_hits_total"),
        counter("boxoffice_read_cache_misses_total"),
    ))
}

fn ratio(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}
