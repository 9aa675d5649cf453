//! `boxoffice demo`: a local cluster with a sample event, for trying the API by hand.
//!
//! It starts N nodes through the [`crate::launcher`], waits for a leader, creates event 1
//! from [`booking::EventSpec::demo_venue`], prints every node's URL and a few commands to
//! paste into a shell, and keeps the nodes running until Ctrl-C (or SIGTERM), when it
//! stops them and returns.
//!
//! The demo prefers fixed, memorable ports (HTTP 8081.., gRPC 9091..) and falls back to
//! ephemeral ones for any port that is busy. Its base directory is wiped on start only
//! if an earlier launcher created it; any other non-empty directory is refused.
//!
//! What it does not do: it keeps no state between runs, and it is not a way to run a
//! production cluster (that is `boxoffice node --config` on each machine).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use api::client::Client;
use region_config::{ClusterLayout, RaftTuning, RegionId};
use reqwest::Method;
use serde_json::json;

use crate::launcher::{self, LocalCluster};

/// The event the demo creates.
const DEMO_EVENT_ID: u64 = 1;

/// How far the gRPC ports sit above the HTTP ports (8081 → 9091).
const GRPC_PORT_OFFSET: u16 = 1010;

/// How long the demo waits for the first leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Number of nodes (node i in the i-th region, round robin: the default is
    /// three regions of three nodes, as `cockroach demo --global`).
    #[arg(long, default_value_t = 9)]
    pub nodes: usize,
    /// Directory for configs, data and logs; an old demo in it is wiped on start.
    #[arg(long, default_value = "./.demo")]
    pub base_dir: PathBuf,
    /// HTTP port of node 1; node i gets this + i - 1 and gRPC port this + 1010 + i - 1.
    /// A busy port is replaced by an ephemeral one.
    #[arg(long, default_value_t = 8081)]
    pub base_http_port: u16,
    /// Regions, comma separated; node i is in the i-th (round robin). Each region
    /// gets its own data groups, led from inside it.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eu-central,us-east,ap-northeast"
    )]
    pub regions: Vec<String>,
    /// Simulate a wide-area network: this one-way delay (milliseconds)
    /// between nodes of different regions, with Raft timeouts stretched to match.
    #[arg(long, default_value_t = 0)]
    pub wan_ms: u64,
}

/// Runs the demo until Ctrl-C or SIGTERM. `binary` is the `boxoffice` executable to
/// start the nodes with (normally the running one).
pub async fn run(opts: DemoOptions, binary: PathBuf) -> anyhow::Result<()> {
    if opts.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let base_dir = launcher::prepare_base_dir(&opts.base_dir)?;
    let base_grpc = opts.base_http_port.saturating_add(GRPC_PORT_OFFSET);
    let addrs = launcher::preferred_addrs(opts.nodes, opts.base_http_port, base_grpc)?;
    let regions = opts
        .regions
        .iter()
        .map(|r| RegionId::new(r))
        .collect::<Result<Vec<_>, _>>()?;
    let layout = ClusterLayout::default();
    let wan_ms = opts.wan_ms;
    let tuning = RaftTuning::default().over_wan(wan_ms);
    let mut cluster =
        LocalCluster::start_configured(&binary, &base_dir, addrs, tuning, layout, &regions, &|config| {
            config.wan.one_way_ms = wan_ms;
        })?;
    if wan_ms > 0 {
        eprintln!("simulating {wan_ms} ms one-way between regions");
    }
    eprintln!("starting {} nodes; logs in {}", opts.nodes, base_dir.display());

    let outcome = serve_until_signal(&mut cluster, &regions).await;
    eprintln!("stopping the demo cluster");
    cluster.stop_all().await?;
    outcome
}

async fn serve_until_signal(cluster: &mut LocalCluster, regions: &[RegionId]) -> anyhow::Result<()> {
    let leader = cluster.wait_ready(READY_TIMEOUT).await?;
    // The sample event is homed by its venue's country, which the region
    // table decides: wait until the nodes have put the table in the map.
    let leader_client = Client::new(vec![cluster.http_url(leader)])?;
    launcher::wait_for_answer(
        &leader_client,
        "/v1/regions",
        READY_TIMEOUT,
        launcher::regions_described,
    )
    .await?;
    create_demo_event(&cluster.http_url(leader), regions).await?;
    print_instructions(cluster, leader);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut watch = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = &mut ctrl_c => return result.context("cannot listen for Ctrl-C"),
            _ = terminate.recv() => return Ok(()),
            _ = watch.tick() => {
                for (id, status) in cluster.reap_exited() {
                    eprintln!(
                        "node {id} exited with {status}; end of {}:\n{}",
                        cluster.log_path(id).display(),
                        cluster.log_tail(id)
                    );
                }
            }
        }
    }
}

/// The demo's sample accounts (local demo only).
const DEMO_PASSWORD: &str = "demo-password";

pub(crate) async fn create_demo_event(leader_url: &str, regions: &[RegionId]) -> anyhow::Result<()> {
    let venue = json!({
        "name": "Demo Hall", "address": "1 Beispielstraße", "city": "Berlin", "country": "DE", "time_zone": "Europe/Berlin",
    });
    let venue_id = demo_post(leader_url, "/v1/venues", "demo-venue-1", venue).await?["venue_id"].clone();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let starts_at_ms = now_ms + 7 * 24 * 3600 * 1000;
    let listing = json!({
        "description": "A sample concert to try the API on", "category": "concert", "performers": ["The Demo Band"],
        "venue_id": venue_id, "starts_at_ms": starts_at_ms, "ends_at_ms": starts_at_ms + 3 * 3600 * 1000,
    });
    let body = json!({ "event_id": DEMO_EVENT_ID, "spec": api::dto::EventSpec::from(booking::EventSpec::demo_venue()), "listing": listing });
    demo_post(leader_url, "/v1/events", "demo-create-event-1", body).await?;
    // One more show homed in each other demo region the cluster has, priced
    // in that region's own currency.
    for (event_id, region, currency, venue) in [
        (
            2,
            "us-east",
            "USD",
            json!({ "name": "Harbor Stage", "address": "2 Pier Road", "city": "New York", "country": "US", "time_zone": "America/New_York" }),
        ),
        (
            3,
            "ap-northeast",
            "JPY",
            json!({ "name": "Bayside Hall", "address": "3-1 Kaigan", "city": "Tokyo", "country": "JP", "time_zone": "Asia/Tokyo" }),
        ),
    ] {
        if !regions.iter().any(|r| r.as_str() == region) {
            continue;
        }
        let venue_id =
            demo_post(leader_url, "/v1/venues", &format!("demo-venue-{event_id}"), venue).await?["venue_id"]
                .clone();
        let listing = json!({
            "description": format!("A sample show homed in {region}"), "category": "concert", "performers": ["The Demo Band"],
            "venue_id": venue_id, "starts_at_ms": starts_at_ms + event_id * 24 * 3600 * 1000,
            "ends_at_ms": starts_at_ms + event_id * 24 * 3600 * 1000 + 3 * 3600 * 1000,
        });
        let spec = demo_spec_in(booking::Currency::new(currency)?)?;
        let body =
            json!({ "event_id": event_id, "spec": api::dto::EventSpec::from(spec), "listing": listing });
        demo_post(
            leader_url,
            "/v1/events",
            &format!("demo-create-event-{event_id}"),
            body,
        )
        .await?;
    }
    let organiser = json!({
        "email": "organiser@demo.boxoffice.dev", "password": DEMO_PASSWORD, "name": "Demo Organiser", "role": "admin",
    });
    demo_post(leader_url, "/v1/admin/users", "demo-organiser-1", organiser).await?;
    let alice = json!({
        "email": "alice@demo.boxoffice.dev", "password": DEMO_PASSWORD, "name": "Alice", "role": "customer",
    });
    demo_post(leader_url, "/v1/admin/users", "demo-alice-1", alice).await?;
    let rates: serde_json::Map<String, serde_json::Value> = DEMO_RATES
        .iter()
        .map(|(quote, rate)| ((*quote).to_owned(), json!(rate)))
        .collect();
    let rates = json!({ "base": "EUR", "rates": rates });
    demo_send(leader_url, Method::PUT, "/v1/admin/fx-rates", "demo-fx-1", rates).await?;
    Ok(())
}

/// The demo's sample exchange rates from the euro (not live ones): what
/// each region's node shows prices in, and what the events abroad are
/// priced at.
const DEMO_RATES: [(&str, &str); 4] = [
    ("USD", "1.0842"),
    ("INR", "90.12"),
    ("JPY", "157.43"),
    ("BRL", "5.87"),
];

/// The demo venue priced in `currency`: its euro prices converted at
/// [`DEMO_RATES`] (as `booking::fx` converts) and rounded down to whole units.
fn demo_spec_in(currency: booking::Currency) -> anyhow::Result<booking::EventSpec> {
    let rates = DEMO_RATES
        .iter()
        .map(|(quote, rate)| {
            Ok(booking::FxRate {
                base: booking::Currency::EUR,
                quote: booking::Currency::new(quote)?,
                rate: booking::Rate::parse(rate)?,
                as_of_ms: 0,
                set_at_ms: 0,
            })
        })
        .collect::<Result<Vec<_>, booking::Rejection>>()?;
    let mut spec = booking::EventSpec::demo_venue();
    let scale = 10i64.pow(u32::from(currency.minor_units().unwrap_or(2)));
    spec.currency = currency;
    for tier in &mut spec.tiers {
        let converted = booking::fx::convert(tier.price, currency, &rates)?
            .amount
            .amount_minor;
        tier.price = booking::Money::new(converted / scale * scale, currency);
    }
    Ok(spec)
}

/// One setup call as the operator; the fixed key makes a restarted demo
/// harmless (and lets the client repeat a try whose answer was lost).
async fn demo_post(
    base: &str,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    demo_send(base, Method::POST, path, key, body).await
}

async fn demo_send(
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(vec![base.to_owned()])?.with_token(Some(launcher::LOCAL_ADMIN_TOKEN));
    let answer = client
        .request(method.clone(), path)
        .key(key)
        .json(&body)
        .try_timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("{method} {base}{path}"))?;
    if !answer.status.is_success() && answer.status != reqwest::StatusCode::CONFLICT {
        bail!(
            "{method} {base}{path} answered {}: {}",
            answer.status,
            answer.text
        );
    }
    Ok(answer.body)
}

fn print_instructions(cluster: &LocalCluster, leader: u64) {
    let urls = cluster.http_urls();
    println!();
    println!(
        "boxoffice demo: {} nodes; the first data group's leader is node {leader}",
        urls.len()
    );
    for id in cluster.node_ids() {
        println!(
            "  node {id} ({}): {}   (log: {})",
            cluster.config(id).region,
            cluster.http_url(id),
            cluster.log_path(id).display()
        );
    }
    let first = &urls[0];
    let second = urls.get(1).unwrap_or(first);
    let third = urls.get(2).unwrap_or(first);
    println!();
    println!("Event {DEMO_EVENT_ID} is on sale. Try, in another shell:");
    println!();
    println!("  # cluster status and the seat map (any node answers)");
    println!("  curl -s {first}/v1/cluster");
    println!(
        "  curl -s -H 'Authorization: Bearer {}' {first}/v1/admin/cluster",
        launcher::LOCAL_ADMIN_TOKEN
    );
    println!("  curl -s '{first}/v1/events?q=concert'      # search, from this node's replica");
    println!("  curl -s {first}/v1/events/{DEMO_EVENT_ID}");
    println!();
    println!("  # the region table; each region's node shows prices in its currency (sample rates)");
    println!("  curl -s {first}/v1/regions");
    println!(
        "  curl -s {second}/v1/events/{DEMO_EVENT_ID} | grep -o '\"display_price\":{{[^}}]*}}' | head -1"
    );
    println!(
        "  curl -s '{first}/v1/events/{DEMO_EVENT_ID}?currency=JPY' | grep -o '\"display_price\":{{[^}}]*}}' | head -1"
    );
    println!();
    println!("  # log in as the sample customer alice (password {DEMO_PASSWORD})");
    println!(
        "  TOKEN=$(curl -s -X POST {first}/v1/auth/login -H 'content-type: application/json' \
         -d '{{\"email\":\"alice@demo.boxoffice.dev\",\"password\":\"{DEMO_PASSWORD}\"}}' \
         | sed -E 's/.*\"access_token\":\"([^\"]*)\".*/\\1/')"
    );
    println!();
    println!("  # hold seat A-1-1 (a retry with the same key is harmless)");
    println!(
        "  HOLD_ID=$(curl -s -X POST {second}/v1/events/{DEMO_EVENT_ID}/holds \
         -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \
         -H 'Idempotency-Key: demo-hold-1' -d '{{\"seats\":[\"A-1-1\"]}}' \
         | sed -E 's/.*\"hold_id\":\"?([^\",}}]*).*/\\1/'); echo \"hold $HOLD_ID\""
    );
    println!();
    println!("  # pay for it: the simulated card processor approves it a moment later");
    println!(
        "  PAYMENT_ID=$(curl -s -X POST {third}/v1/events/{DEMO_EVENT_ID}/holds/$HOLD_ID/checkout \
         -H \"Authorization: Bearer $TOKEN\" -H 'Idempotency-Key: demo-checkout-1' \
         | sed -E 's/.*\"payment_id\":([0-9]+).*/\\1/'); echo \"payment $PAYMENT_ID\""
    );
    println!(
        "  sleep 1; curl -s {first}/v1/events/{DEMO_EVENT_ID}/payments/$PAYMENT_ID -H \"Authorization: Bearer $TOKEN\"   # succeeded, with its order_id"
    );
    println!(
        "  curl -s {second}/v1/me/orders -H \"Authorization: Bearer $TOKEN\"   # the order and its signed tickets"
    );
    println!();
    println!("  # a guest proves their address: the code is \"e-mailed\" to node 1's log");
    println!(
        "  CHALLENGE=$(curl -s -X POST {first}/v1/auth/guest -H 'content-type: application/json' \
         -d '{{\"email\":\"guest@demo.boxoffice.dev\"}}' | sed -E 's/.*\"challenge_id\":\"([^\"]*)\".*/\\1/')"
    );
    println!(
        "  CODE=$(grep -o 'Your boxoffice code: [0-9]*' {} | tail -1 | grep -o '[0-9]*$')",
        cluster.log_path(1).display()
    );
    println!(
        "  curl -s -X POST {first}/v1/auth/guest/verify -H 'content-type: application/json' \
         -d \"{{\\\"challenge_id\\\":\\\"$CHALLENGE\\\",\\\"code\\\":\\\"$CODE\\\"}}\"   # a guest token"
    );
    println!();
    println!("  # the organiser is organiser@demo.boxoffice.dev with the same password");
    println!();
    println!("  # each region answers in its language: German in Frankfurt, Japanese in Tokyo;");
    println!("  # Accept-Language overrides it; the problem code stays the same");
    println!("  curl -s {first}/v1/events/999");
    println!("  curl -s {third}/v1/events/999");
    println!("  curl -s -H 'Accept-Language: en' {third}/v1/events/999");
    println!();
    println!("  # the Berlin seat map from another region's own replica, and how fresh it is");
    println!(
        "  curl -s -D - -o /dev/null '{third}/v1/events/{DEMO_EVENT_ID}?consistency=bounded&max_staleness_ms=2000' | grep -i '^boxoffice-'"
    );
    println!("  curl -s '{third}/v1/events/{DEMO_EVENT_ID}?consistency=local'   # whatever that replica has");
    println!();
    println!("Press Ctrl-C to stop the cluster.");
}
