//! Owns `migrator sandbox`: two simulated clusters, a meta-proxy over real ZooKeeper, tables
//! with data, a ready plan file, and a client load that records what it saw, until
//! SIGINT/SIGTERM (or `--duration`).
//!
//! Writes `DIR/sandbox.json` (every endpoint) and `DIR/migrations.yaml` when serving, and
//! `DIR/client.json` (acknowledged, failed and lost writes, unavailability) on exit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::table::{TableClient, TableOptions};
use crate::routing::zk::Zk;
use crate::routing::{node_path, Route};
use crate::sim::load::{self, Load, LoadConfig, LoadReport};
use crate::sim::metaproxy::MetaProxy;
use crate::sim::zk_server::ZkServer;
use crate::sim::{Directory, SimCluster, SimConfig, Version};

/// Flags of `migrator sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for sandbox.json, migrations.yaml, client.json (and ZooKeeper's data).
    #[arg(long)]
    pub dir: PathBuf,
    /// Use this ZooKeeper instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    pub zookeeper: Option<String>,
    /// meta-proxy's root node in ZooKeeper.
    #[arg(long, default_value = "/pegasus/metaproxy")]
    pub root: String,
    /// Number of tables to create (t0, t1, ...).
    #[arg(long, default_value_t = 3)]
    pub tables: usize,
    /// Partitions per table (a power of two).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Rows written to each table before the load starts.
    #[arg(long, default_value_t = 100)]
    pub rows: usize,
    /// Client writes per second over all tables; 0 = as fast as possible.
    #[arg(long, default_value_t = 200)]
    pub write_rate: u32,
    /// Concurrent writers per table.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Server version each cluster emulates, source first.
    #[arg(long, default_value = "2.5,2.6")]
    pub versions: String,
    /// Replica config-sync interval in milliseconds (the real default is 30000).
    #[arg(long, default_value_t = 1000)]
    pub config_sync_ms: u64,
    /// Also create table `legacy` with data version 0 (duplication refuses it).
    #[arg(long)]
    pub with_v0_table: bool,
    /// The load client's deadline per write in ms (the Java client's default is 1000).
    #[arg(long, default_value_t = 1000)]
    pub client_timeout_ms: u64,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

const SOURCE: &str = "sandbox-a";
const TARGET: &str = "sandbox-b";

/// Runs the sandbox until a signal or the duration ends.
///
/// # Errors
/// ZooKeeper or the simulator could not start, or a file could not be written.
pub async fn run(args: Args) -> Result<u8> {
    std::fs::create_dir_all(&args.dir).map_err(|e| io_err(&args.dir, e))?;
    let (versions, sync) = (
        parse_versions(&args.versions)?,
        Duration::from_millis(args.config_sync_ms),
    );
    let (zk_server, zk_addr) = zookeeper(&args).await?;
    let zk = Zk::connect(std::slice::from_ref(&zk_addr), Duration::from_secs(10))
        .await
        .map_err(|e| Error::ZooKeeper(e.to_string()))?;
    let directory = Directory::default();
    let config = |v| SimConfig {
        config_sync_interval: sync,
        ..SimConfig::default_for(v)
    };
    let sim_err = |e: std::io::Error| Error::Sandbox(e.to_string());
    let source = SimCluster::start(SOURCE, 1, config(versions[0]), &directory)
        .await
        .map_err(sim_err)?;
    let target = SimCluster::start(TARGET, 2, config(versions[1]), &directory)
        .await
        .map_err(sim_err)?;
    let tables = create_tables(&args, &source).await?;
    for t in &tables {
        let route = Route {
            cluster_name: SOURCE.into(),
            meta_addrs: addrs(&source.metas()),
        };
        put_node(&zk, &node_path(&args.root, t), &route.to_json()).await?;
    }
    let proxy = MetaProxy::start(zk.clone(), &args.root)
        .await
        .map_err(sim_err)?;
    write_files(
        &args, &source, &target, &proxy, &zk_addr, &tables, &versions,
    )?;
    println!("sandbox serving; files in {}", args.dir.display());
    let loaded: Vec<String> = tables.iter().filter(|t| *t != "legacy").cloned().collect();
    let load = Load::start(&LoadConfig {
        tables: loaded,
        resolver: proxy.addr(),
        rate: args.write_rate,
        writers_per_table: args.writers.max(1),
        op_timeout: Duration::from_millis(args.client_timeout_ms.max(1)),
    });
    wait_for_stop(args.duration).await;
    let report = load.finish().await;
    let lost = count_lost(&zk, &args.root, report.acked.clone(), &[&source, &target]).await;
    write_client_json(&args.dir, &report, lost)?;
    println!(
        "client: {} acknowledged writes ({:.0}/s), {} failed, {} lost, longest write-unavailable window {} ms",
        report.acked_writes, report.acked_per_second, report.failed_writes, lost, report.write_unavailable_ms
    );
    drop((proxy, source, target, zk_server));
    Ok(0)
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_versions(s: &str) -> Result<[Version; 2]> {
    let parsed: Vec<Version> = s
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(Error::Sandbox)?;
    match parsed[..] {
        [v] => Ok([v, v]),
        [a, b] => Ok([a, b]),
        _ => Err(Error::Sandbox(format!(
            "--versions takes one or two versions, got {s:?}"
        ))),
    }
}

async fn zookeeper(args: &Args) -> Result<(Option<ZkServer>, String)> {
    if let Some(addr) = &args.zookeeper {
        return Ok((None, addr.clone()));
    }
    let dir = args.dir.join("zookeeper");
    // Starting blocks until ZooKeeper answers; keep it off the async workers.
    let server = tokio::task::spawn_blocking(move || ZkServer::start(&dir))
        .await
        .map_err(|e| Error::ZooKeeper(e.to_string()))?
        .map_err(|e| Error::ZooKeeper(e.to_string()))?;
    let addr = server.addr().to_string();
    Ok((Some(server), addr))
}

async fn create_tables(args: &Args, source: &SimCluster) -> Result<Vec<String>> {
    let mut names: Vec<String> = (0..args.tables).map(|i| format!("t{i}")).collect();
    if args.with_v0_table {
        names.push("legacy".into());
    }
    let meta = MetaClient::new(source.metas(), MetaOptions::default());
    for name in &names {
        let version = u32::from(name != "legacy");
        source
            .create_table(name, args.partitions, version)
            .map_err(|(code, hint)| Error::Sandbox(format!("create {name}: {code} {hint}")))?;
        let client = TableClient::new(name, meta.clone(), TableOptions::default());
        for row in 0..args.rows {
            client
                .put(format!("seed{row}").as_bytes(), b"s", b"seed")
                .await?;
        }
    }
    Ok(names)
}

async fn put_node(zk: &Zk, path: &str, data: &str) -> Result<()> {
    let zk_err = |e: crate::routing::zk::ZkError| Error::ZooKeeper(e.to_string());
    match zk.read(path).await.map_err(zk_err)? {
        Some(_) => zk
            .set(path, data.as_bytes(), None)
            .await
            .map(drop)
            .map_err(zk_err),
        None => zk.create_all(path, data.as_bytes()).await.map_err(zk_err),
    }
}

fn addrs(list: &[SocketAddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn write_files(
    args: &Args,
    source: &SimCluster,
    target: &SimCluster,
    proxy: &MetaProxy,
    zk: &str,
    tables: &[String],
    versions: &[Version; 2],
) -> Result<()> {
    let cluster = |name: &str, sim: &SimCluster, v: Version| json!({"name": name, "version": v.to_string(), "meta": addrs(&sim.metas()), "replicas": addrs(&sim.replicas())});
    let doc = json!({
        "clusters": [cluster(SOURCE, source, versions[0]), cluster(TARGET, target, versions[1])],
        "metaproxy": {"address": proxy.addr().to_string(), "zookeeper": zk, "root": args.root},
        "tables": tables,
        "config_sync_ms": args.config_sync_ms,
    });
    let path = args.dir.join("sandbox.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| io_err(&path, e))?;
    let path = args.dir.join("migrations.yaml");
    std::fs::write(
        &path,
        plan_yaml(source, target, zk, &args.root, tables, args.config_sync_ms),
    )
    .map_err(|e| io_err(&path, e))
}

/// A ready plan moving every table from the source to the target.
fn plan_yaml(
    source: &SimCluster,
    target: &SimCluster,
    zk: &str,
    root: &str,
    tables: &[String],
    config_sync_ms: u64,
) -> String {
    // The block needs up to one config sync to take effect and the switch another: leave room.
    let max_write_block_s = (config_sync_ms * 3 / 1000).max(10);
    let list = |sim: &SimCluster| {
        addrs(&sim.metas())
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut y = format!(
        "# Generated by `migrator sandbox`: moves every sandbox table from {SOURCE} to {TARGET}.\nversion: 1\nclusters:\n  {SOURCE}: {{ meta: [{}] }}\n  {TARGET}: {{ meta: [{}] }}\nmetaproxy:\n  zookeeper: [\"{zk}\"]\n  root: {root}\ndefaults:\n  threshold: 1000\n  max_write_block: {}s\n  block_mode: timeout\nmigrations:\n",
        list(source),
        list(target),
        max_write_block_s
    );
    for t in tables {
        y.push_str(&format!(
            "  - {{ table: {t}, from: {SOURCE}, to: {TARGET} }}\n"
        ));
    }
    y
}

async fn wait_for_stop(duration: Option<f64>) {
    let timer = async {
        match duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => drop(s.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = timer => {}
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Reads every acknowledged write back from the cluster each table's route now points at.
async fn count_lost(zk: &Zk, root: &str, acked: Vec<load::Acked>, clusters: &[&SimCluster]) -> u64 {
    let metas: HashMap<String, Vec<SocketAddr>> = clusters
        .iter()
        .map(|c| (c.cluster().name.clone(), c.metas()))
        .collect();
    let mut clients = HashMap::new();
    for a in &acked {
        if clients.contains_key(&a.table) {
            continue;
        }
        let route = zk
            .read(&node_path(root, &a.table))
            .await
            .ok()
            .flatten()
            .and_then(|(d, _)| Route::parse(&d).ok());
        let Some(addrs) = route.and_then(|r| metas.get(&r.cluster_name).cloned()) else {
            continue;
        };
        let client = TableClient::new(
            &a.table,
            MetaClient::new(addrs, MetaOptions::default()),
            TableOptions::default(),
        );
        clients.insert(a.table.clone(), client);
    }
    load::count_lost(acked, &clients).await
}

fn write_client_json(dir: &Path, report: &LoadReport, lost: u64) -> Result<()> {
    let mut doc = serde_json::to_value(report).unwrap_or_default();
    doc["lost_writes"] = json!(lost);
    let path = dir.join("client.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| io_err(&path, e))
}
