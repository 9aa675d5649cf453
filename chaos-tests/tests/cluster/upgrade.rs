//! A store written in the flat format 4 opens with today's build and serves
//! the same answers, fields added since aside (issue #20: a tested migration path).
//!
//! `fixtures/store-v4/db` is the RocksDB directory of a one-node cluster
//! written by the last release that used format 4 (see `workload.sh` beside
//! it: venues, listings, two events on two groups, accounts with sessions, a
//! paid order with a checked-in ticket, a released hold, a cancelled
//! box-office sale, a waitlist entry, notices). `expected.json` holds what
//! that release answered to reads of it. The test copies the store, starts
//! today's node on it (new ports and certificates; the cluster's secrets are
//! the launcher's, as when it was written), and compares:
//!
//! - every recorded answer, after dropping what depends on the hour it is
//!   read (`as_of_index`, a listing's `status`, countdowns);
//! - logins of both customers (password hashes, e-mail claims and accounts
//!   read back);
//! - a new booking on the migrated store, and its answers after a restart
//!   (written in the new format, read back).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use chaos_tests::shop::{call, expect};
use chaos_tests::{ApiClient, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v4");

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Removes what a read answers differently by the hour, not by the data.
fn stable(mut value: Value) -> Value {
    fn scrub(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("as_of_index");
                map.remove("expires_in_ms");
                map.remove("request_id");
                if map.contains_key("venue") && map.contains_key("starts_at_ms") {
                    // A listing's status turns `ended` once its end has passed.
                    map.remove("status");
                }
                map.values_mut().for_each(scrub);
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    scrub(&mut value);
    value
}

/// Whether `now` says everything `was` said, the same way: every field of an
/// object is there with the same answer (a newer release may add fields,
/// such as RFC 3339 times beside epoch milliseconds), arrays item by item.
fn answers_at_least(was: &Value, now: &Value) -> bool {
    match (was, now) {
        (Value::Object(was), Value::Object(now)) => was
            .iter()
            .all(|(key, value)| now.get(key).is_some_and(|new| answers_at_least(value, new))),
        (Value::Array(was), Value::Array(now)) => {
            was.len() == now.len() && was.iter().zip(now).all(|(a, b)| answers_at_least(a, b))
        }
        (was, now) => was == now,
    }
}

struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path, log: &Path) -> anyhow::Result<Node> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = Command::new(node::launcher::find_binary()?)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()?;
    Ok(Node { child })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_4_store_opens_and_answers_the_same() -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(180), scenario())
        .await
        .context("the test did not finish in time")?
}

async fn scenario() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("boxoffice-upgrade-").tempdir()?;
    let data: PathBuf = dir.path().join("node-1");
    copy_dir(&Path::new(FIXTURE).join("db"), &data.join("db"))?;
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(
        Path::new(FIXTURE).join("expected.json"),
    )?)?;

    let addrs = node::launcher::ephemeral_addrs(1)?[0];
    let certs = node::certs::CertDir::open_or_create(&dir.path().join("tls"))?;
    let member = region_config::MemberConfig {
        node_id: 1,
        region: region_config::RegionId::new("eu-west")?,
        grpc_addr: addrs.grpc,
        http_addr: addrs.http,
    };
    let config = region_config::NodeConfig {
        node_id: 1,
        region: member.region.clone(),
        data_dir: data.clone(),
        http_addr: addrs.http,
        grpc_addr: addrs.grpc,
        bootstrap: false,
        members: vec![member],
        raft: region_config::RaftTuning::default(),
        layout: region_config::ClusterLayout::default(),
        admin_token: Some(node::launcher::LOCAL_ADMIN_TOKEN.to_owned()),
        auth: Some(node::launcher::local_auth()),
        payments: Some(node::launcher::local_payments()),
        limits: region_config::LimitsConfig::default(),
        notifications: region_config::NotificationsConfig::default(),
        tls: Some(certs.node(1)?),
        http: region_config::HttpConfig::default(),
        login: region_config::LoginLimits::default(),
        allow_insecure_demo_secrets: true,
        regions: Vec::new(),
        wan: region_config::WanConfig::default(),
    };
    config.validate()?;
    let config_path = dir.path().join("node-1.toml");
    std::fs::write(&config_path, config.to_toml())?;
    let log = dir.path().join("node-1.log");
    let client = ApiClient::new(vec![format!("http://{}", addrs.http)])?;

    let node = start(&config_path, &log)?;
    let ready = |client: ApiClient| async move {
        eventually(
            "the upgraded node is ready",
            Duration::from_secs(60),
            async || Ok(client.health(1).await.ok().filter(|h| h.ready)),
        )
        .await
    };
    ready(client.clone())
        .await
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;

    let staff = Some(chaos_tests::LOCAL_ADMIN_TOKEN);
    let answers = expected["answers"].as_object().context("answers")?;
    ensure!(answers.len() >= 15, "the fixture answers too little");
    for (path, was) in answers {
        let now = call(&client, staff, Method::GET, 1, path, None, None).await?;
        let now_body = if now.0.is_success() {
            now.1
        } else {
            json!({ "http_status": now.0.as_u16(), "body": now.1 })
        };
        ensure!(
            answers_at_least(&stable(was.clone()), &stable(now_body.clone())),
            "GET {path} answers differently after the upgrade:\nbefore: {was}\nafter:  {now_body}"
        );
    }

    // Passwords, e-mail claims and accounts read back: both customers log in.
    for (email, password, who) in [
        ("alice@demo.boxoffice.dev", "demo-password", "alice"),
        ("bob@fixture.example", "fixture-password", "bob"),
    ] {
        let login = call(
            &client,
            None,
            Method::POST,
            1,
            "/v1/auth/login",
            Some(json!({ "email": email, "password": password })),
            None,
        )
        .await?;
        expect(&format!("{who} logs in"), &login, StatusCode::OK, None)?;
        ensure!(
            login.1["customer_id"] == expected["customers"][who],
            "{}",
            login.1
        );
    }

    // The migrated store takes new writes, kept in the new format.
    let held = call(
        &client,
        staff,
        Method::POST,
        1,
        "/v1/events/1/holds",
        Some(json!({ "holder": "after-upgrade", "seats": ["A-5-5"] })),
        Some("after-upgrade-hold"),
    )
    .await?;
    expect("a hold after the upgrade", &held, StatusCode::CREATED, None)?;
    let confirmed = call(
        &client,
        staff,
        Method::POST,
        1,
        &format!("/v1/events/1/holds/{}/confirm", held.1["hold_id"]),
        Some(json!({ "holder": "after-upgrade" })),
        Some("after-upgrade-confirm"),
    )
    .await?;
    expect("its confirmation", &confirmed, StatusCode::CREATED, None)?;
    let order_path = format!("/v1/events/1/orders/{}", confirmed.1["order_id"]);
    let order = call(&client, staff, Method::GET, 1, &order_path, None, None).await?;
    let sold_before = expected["answers"]["/v1/events/1"]["sold"]
        .as_u64()
        .context("sold")?;

    // A restart reads old and new records together.
    drop(node);
    let node = start(&config_path, &log)?;
    ready(client.clone()).await?;
    let again = call(&client, staff, Method::GET, 1, &order_path, None, None).await?;
    ensure!(
        stable(again.1.clone()) == stable(order.1.clone()),
        "{} vs {}",
        again.1,
        order.1
    );
    let event = call(&client, staff, Method::GET, 1, "/v1/events/1", None, None).await?;
    ensure!(event.1["sold"].as_u64() == Some(sold_before + 1), "{}", event.1);
    drop(node);
    Ok(())
}
