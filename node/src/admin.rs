//! `boxoffice admin …`: the operator's command line over the admin HTTP API.
//!
//! `status` asks every node in the cluster map for its replicas and prints one
//! line per group from its leader's point of view (term, commit and applied
//! index, each follower's lag), so a lagging or leaderless group stands out.
//! The other commands are one admin call each, to any node: the node forwards
//! leadership and membership changes to the group leaders concerned. Adding or
//! removing a node moves replicas and can take minutes; the call waits.
//!
//! What it does not do: keep state, or change anything without being asked.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use api::client::Client;
use serde_json::{Value, json};

#[derive(Debug, Clone, clap::Args)]
pub struct AdminOptions {
    /// Any node's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081", global = true)]
    pub url: String,
    /// The admin bearer token (or set BOXOFFICE_ADMIN_TOKEN).
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", global = true, default_value = "")]
    pub token: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Nodes, groups, leaders, terms, indexes and replication lag.
    Status {
        /// Print the merged status as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a data group homed in a region.
    CreateGroup {
        #[arg(long)]
        home_region: String,
    },
    /// Place an event on a group before creating it.
    PlaceEvent {
        #[arg(long)]
        event_id: u64,
        #[arg(long)]
        home_region: String,
        /// Give the event a group of its own.
        #[arg(long)]
        dedicated: bool,
    },
    /// Hand a group's leadership to its replica on another node.
    TransferLeader {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        to_node: u64,
    },
    /// Add a running node (started without bootstrap) and move its share of replicas to it.
    AddNode {
        #[arg(long)]
        node_id: u64,
        #[arg(long)]
        region: String,
        #[arg(long)]
        grpc_addr: String,
        #[arg(long)]
        http_addr: String,
    },
    /// Move every replica off a node and remove it from the cluster.
    RemoveNode {
        #[arg(long)]
        node_id: u64,
    },
    /// Create an account with a role: how the first organiser (admin) is made.
    CreateUser {
        #[arg(long)]
        email: String,
        /// The password (or set BOXOFFICE_USER_PASSWORD).
        #[arg(long, env = "BOXOFFICE_USER_PASSWORD")]
        password: String,
        #[arg(long)]
        name: String,
        /// customer, admin or operator.
        #[arg(long, default_value = "admin")]
        role: String,
        /// The account's home region; default: the node's region.
        #[arg(long)]
        region: Option<String>,
    },
    /// Set exchange rates for display prices: what one BASE buys of each
    /// quote, e.g. `fx-rates --base EUR JPY=157.43 USD=1.0842`.
    FxRates {
        #[arg(long)]
        base: String,
        /// QUOTE=RATE pairs; a rate is a decimal string.
        #[arg(required = true, value_parser = parse_rate_pair)]
        rates: Vec<(String, String)>,
        /// When the rates were observed (epoch ms); default: now.
        #[arg(long)]
        as_of_ms: Option<u64>,
    },
    /// Make the cluster CA (once) and node certificates for node-to-node
    /// mutual TLS, and print each node's `[tls]` section. Runs offline.
    GenCerts {
        /// Where the CA and the certificates are kept (created if missing;
        /// an existing CA is reused).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Node ids to issue certificates for, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
    },
}

/// `JPY=157.43` as `("JPY", "157.43")`; the server checks both parts.
fn parse_rate_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((quote, rate)) if !quote.is_empty() && !rate.is_empty() => {
            Ok((quote.to_owned(), rate.to_owned()))
        }
        _ => Err(format!("{text:?} is not QUOTE=RATE, e.g. JPY=157.43")),
    }
}

/// `gen-certs`: the CA and the node certificates, and each node's `[tls]`.
fn gen_certs(dir: &std::path::Path, nodes: &[u64]) -> anyhow::Result<()> {
    let certs = crate::certs::CertDir::open_or_create(dir)?;
    for &node_id in nodes {
        let tls = certs.node(node_id)?;
        println!("# node {node_id}");
        println!("[tls]");
        println!("ca_cert = {:?}", tls.ca_cert.display().to_string());
        println!("cert = {:?}", tls.cert.display().to_string());
        println!("key = {:?}\n", tls.key.display().to_string());
    }
    eprintln!(
        "the CA key is {}: keep it off the nodes (it is only needed to issue certificates)",
        dir.join("ca.key").display()
    );
    Ok(())
}

/// Calls one node's admin API with the admin token.
struct Admin {
    http: reqwest::Client,
    token: String,
}

impl Admin {
    /// One call to the node at `base`. The fresh key makes the call safe to
    /// repeat, but it is sent once: the operator asked that node, and a
    /// membership change may legitimately take minutes.
    async fn call(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let client =
            Client::with_http(self.http.clone(), vec![base.to_owned()])?.with_token(Some(&self.token));
        let mut request = client
            .request(method.clone(), path)
            .key(&uuid::Uuid::new_v4().to_string())
            .once()
            .try_timeout(ADMIN_CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("{method} {base}{path}"))?;
        answer.success().with_context(|| format!("{method} {base}{path}"))
    }
}

/// Moving replicas for add-node/remove-node takes a while.
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(900);

pub async fn run(opts: AdminOptions) -> anyhow::Result<()> {
    if let AdminCommand::GenCerts { dir, nodes } = &opts.command {
        return gen_certs(dir, nodes);
    }
    let admin = Admin {
        http: reqwest::Client::builder()
            .build()
            .context("building the HTTP client")?,
        token: opts.token.clone(),
    };
    let base = opts.url.trim_end_matches('/');
    match opts.command {
        AdminCommand::Status { json } => {
            let merged = status(&admin, base).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&merged)?);
            } else {
                print_status(&merged);
            }
        }
        AdminCommand::CreateGroup { home_region } => {
            let body = json!({ "home_region": home_region });
            let answer = admin
                .call(reqwest::Method::POST, base, "/v1/admin/groups", Some(body))
                .await?;
            println!("{answer}");
        }
        AdminCommand::PlaceEvent {
            event_id,
            home_region,
            dedicated,
        } => {
            let body = json!({ "home_region": home_region, "dedicated": dedicated });
            let path = format!("/v1/admin/events/{event_id}/placement");
            println!(
                "{}",
                admin.call(reqwest::Method::POST, base, &path, Some(body)).await?
            );
        }
        AdminCommand::TransferLeader { group, to_node } => {
            let path = format!("/v1/admin/groups/{group}/transfer-leader");
            let answer = admin
                .call(
                    reqwest::Method::POST,
                    base,
                    &path,
                    Some(json!({ "to_node": to_node })),
                )
                .await?;
            println!("{answer}");
        }
        AdminCommand::AddNode {
            node_id,
            region,
            grpc_addr,
            http_addr,
        } => {
            let body = json!({ "node_id": node_id, "region": region, "grpc_addr": grpc_addr, "http_addr": http_addr });
            let answer = admin
                .call(reqwest::Method::POST, base, "/v1/admin/nodes", Some(body))
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        AdminCommand::RemoveNode { node_id } => {
            let path = format!("/v1/admin/nodes/{node_id}/remove");
            let answer = admin.call(reqwest::Method::POST, base, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        AdminCommand::CreateUser {
            email,
            password,
            name,
            role,
            region,
        } => {
            let body =
                json!({ "email": email, "password": password, "name": name, "role": role, "region": region });
            let path = "/v1/admin/users";
            let answer = admin.call(reqwest::Method::POST, base, path, Some(body)).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        AdminCommand::FxRates {
            base: currency,
            rates,
            as_of_ms,
        } => {
            let rates: serde_json::Map<String, Value> = rates
                .into_iter()
                .map(|(quote, rate)| (quote, Value::String(rate)))
                .collect();
            let body = json!({ "base": currency, "rates": rates, "as_of_ms": as_of_ms });
            let answer = admin
                .call(reqwest::Method::PUT, base, "/v1/admin/fx-rates", Some(body))
                .await?;
            println!("{answer}");
        }
        AdminCommand::GenCerts { .. } => unreachable!("handled before any call"),
    }
    Ok(())
}

/// Every node's view merged: the map from the first node, each group's
/// status from the node that leads it.
async fn status(admin: &Admin, base: &str) -> anyhow::Result<Value> {
    let first = admin
        .call(reqwest::Method::GET, base, "/v1/admin/cluster", None)
        .await?;
    let mut nodes = Vec::new();
    let mut leaders: BTreeMap<u64, (String, Value)> = BTreeMap::new();
    for node in first["nodes"].as_array().into_iter().flatten() {
        let url = format!("http://{}", node["http_addr"].as_str().unwrap_or_default());
        let view = admin
            .call(reqwest::Method::GET, &url, "/v1/admin/cluster", None)
            .await;
        let reachable = view.is_ok();
        nodes.push(json!({
            "node_id": node["node_id"], "region": node["region"], "http": url, "reachable": reachable,
        }));
        let Ok(view) = view else { continue };
        for replica in view["replicas"].as_array().into_iter().flatten() {
            if replica["state"] == "leader"
                && let Some(group) = replica["group_id"].as_u64()
            {
                leaders.insert(group, (url.clone(), replica.clone()));
            }
        }
    }
    let mut groups = Vec::new();
    let map_groups = first["groups"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<u64> = vec![booking::META_GROUP];
    ids.extend(map_groups.iter().filter_map(|g| g["group_id"].as_u64()));
    for id in ids {
        let home = map_groups
            .iter()
            .find(|g| g["group_id"] == json!(id))
            .map(|g| g["home_region"].clone())
            .unwrap_or(json!("(metadata)"));
        let events = map_groups
            .iter()
            .find(|g| g["group_id"] == json!(id))
            .map(|g| g["events"].clone())
            .unwrap_or(json!(null));
        let mut line = json!({ "group_id": id, "home_region": home, "events": events });
        if let Some((url, replica)) = leaders.get(&id) {
            line["leader_node"] = replica["leader_node"].clone();
            line["leader_http"] = json!(url);
            line["term"] = replica["term"].clone();
            line["committed_index"] = replica["committed_index"].clone();
            line["last_applied"] = replica["last_applied"].clone();
            line["members"] = replica["members"].clone();
        }
        groups.push(line);
    }
    Ok(json!({
        "map_epoch": first["map_epoch"],
        "events_placed": first["events_placed"],
        "nodes": nodes,
        "groups": groups,
    }))
}

fn print_status(status: &Value) {
    println!(
        "map epoch {}, {} events placed",
        status["map_epoch"], status["events_placed"]
    );
    println!("NODE  REGION        HTTP                         REACHABLE");
    for node in status["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:<5} {:<13} {:<28} {}",
            node["node_id"].to_string(),
            node["region"].as_str().unwrap_or("?"),
            node["http"].as_str().unwrap_or("?"),
            node["reachable"]
        );
    }
    println!(
        "GROUP  HOME          EVENTS  LEADER  TERM  COMMIT   APPLIED  LAG (node:entries, r: non-voting)"
    );
    for group in status["groups"].as_array().into_iter().flatten() {
        let lag: Vec<String> = group["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let role = if m["voter"] == json!(true) { "" } else { "r" };
                format!("{role}{}:{}", m["node_id"], m["lag"])
            })
            .collect();
        let dash = |v: &Value| {
            if v.is_null() {
                "-".to_owned()
            } else {
                v.to_string()
            }
        };
        println!(
            "{:<6} {:<13} {:<7} {:<7} {:<5} {:<8} {:<8} {}",
            group["group_id"].to_string(),
            group["home_region"].as_str().unwrap_or("?"),
            dash(&group["events"]),
            dash(&group["leader_node"]),
            dash(&group["term"]),
            dash(&group["committed_index"]),
            dash(&group["last_applied"]),
            if lag.is_empty() {
                "no leader".to_owned()
            } else {
                lag.join(" ")
            }
        );
    }
}
