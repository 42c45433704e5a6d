//! Owns `migrator sandbox`: two simulated clusters, meta-proxies over real ZooKeeper, tables
//! with data, a ready plan file, and a client load that records what it saw, until
//! SIGINT/SIGTERM (or `--duration`).
//!
//! Writes `DIR/sandbox.json` (every endpoint) and `DIR/migrations.yaml` when serving, and
//! `DIR/client.json` (acknowledged, failed and lost writes, unavailability) on exit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pegasus::table::{TableClient, TableOptions};
use crate::sim::load::{self, Load, LoadConfig, LoadReport};
use crate::sim::metaproxy::Build;
use crate::sim::world::{self, TableSpec, World, WorldConfig, ZkSource};
use crate::sim::{SimConfig, Version};

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
    /// Number of tables to create on the source (t0, t1, ...).
    #[arg(long, default_value_t = 3)]
    pub tables: usize,
    /// Tables that already live on the target and are routed through meta-proxy (r0, ...).
    #[arg(long, default_value_t = 1)]
    pub target_tables: usize,
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
    /// Milliseconds between two writes of each partition's fixed key (0 = none).
    #[arg(long, default_value_t = 20)]
    pub partition_write_ms: u64,
    /// Server version each cluster emulates, source first.
    #[arg(long, default_value = "2.5,2.6")]
    pub versions: String,
    /// Replica config-sync interval in milliseconds (the real default is 30000).
    #[arg(long, default_value_t = 1000)]
    pub config_sync_ms: u64,
    /// Primary group-check interval in milliseconds (code default 10000 on 2.5, 100000 on
    /// master and in the shipped config; a 2.5 source ships a partition's last write only
    /// after the next empty write).
    #[arg(long, default_value_t = 10000)]
    pub group_check_ms: u64,
    /// Duplication sync interval in milliseconds (10000 on real servers).
    #[arg(long, default_value_t = 10000)]
    pub dup_sync_ms: u64,
    /// How long the meta takes to declare a stopped replica server dead, in milliseconds
    /// (about 22000 with the shipped config).
    #[arg(long, default_value_t = 3000)]
    pub failure_detect_ms: u64,
    /// meta-proxy instances on the same ZooKeeper.
    #[arg(long, default_value_t = 1)]
    pub metaproxies: usize,
    /// Which meta-proxy runs: `legacy` (the 2021 code: cannot relay 2.6 answers) or
    /// `hostport`.
    #[arg(long, default_value = "hostport")]
    pub metaproxy_build: Build,
    /// Also create table `legacy` with data version 0 (duplication refuses it).
    #[arg(long)]
    pub with_v0_table: bool,
    /// The load client's deadline per write in ms (the Java client's default is 1000).
    #[arg(long, default_value_t = 1000)]
    pub client_timeout_ms: u64,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Also create table `copy` on both clusters with this many identical rows (written
    /// straight into the simulator, not loaded, not in migrations.yaml): a table and its copy
    /// to try `verify` on.
    #[arg(long, default_value_t = 0)]
    pub copy_rows: usize,
    /// Network latency added to every data RPC answer of both clusters' replica servers, in
    /// ms (as `sim.fault rpc_latency_ms`): a table as far away as a real network puts it.
    #[arg(long, default_value_t = 0)]
    pub rpc_latency_ms: u64,
}

const SOURCE: &str = "sandbox-a";
const TARGET: &str = "sandbox-b";

/// Runs the sandbox until a signal or the duration ends.
///
/// # Errors
/// ZooKeeper or the simulator could not start, or a file could not be written.
pub async fn run(args: Args) -> Result<Exit> {
    std::fs::create_dir_all(&args.dir).map_err(|e| io_err(&args.dir, e))?;
    let world = World::start(world_config(&args)?)
        .await
        .map_err(|e| Error::Sandbox(e.to_string()))?;
    if args.copy_rows > 0 {
        for sim in [&world.source, &world.target] {
            sim.create_table("copy", args.partitions, 1)
                .map_err(|(code, hint)| Error::Sandbox(format!("create copy: {code} {hint}")))?;
            sim.seed_direct("copy", args.copy_rows, 32)
                .map_err(Error::Sandbox)?;
        }
    }
    for sim in [&world.source, &world.target] {
        sim.cluster()
            .faults
            .rpc_latency_ms
            .store(args.rpc_latency_ms, std::sync::atomic::Ordering::Relaxed);
    }
    write_files(&args, &world)?;
    crate::say!("sandbox serving; files in {}", args.dir.display());
    let load = Load::start(&LoadConfig {
        tables: world
            .tables
            .iter()
            .filter(|t| *t != "legacy")
            .cloned()
            .collect(),
        resolver: world.proxy_addrs()[0],
        rate: args.write_rate,
        writers_per_table: args.writers.max(1),
        op_timeout: Duration::from_millis(args.client_timeout_ms.max(1)),
        partition_every: (args.partition_write_ms > 0)
            .then(|| Duration::from_millis(args.partition_write_ms)),
    });
    wait_for_stop(args.duration).await;
    let report = load.finish().await;
    let lost = count_lost(&world, report.acked.clone()).await;
    write_client_json(&args.dir, &report, lost)?;
    let lost_text = lost.map_or_else(|| "unknown (read-back timed out)".into(), |n| n.to_string());
    crate::say!(
        "client: {} acknowledged writes ({:.0}/s), {} failed, {lost_text} lost, longest write-unavailable window {} ms table-wide, {} ms per partition",
        report.acked_writes, report.acked_per_second, report.failed_writes, report.write_unavailable_ms, report.write_unavailable_per_partition_ms
    );
    drop(world);
    Ok(Exit::Success)
}

fn world_config(args: &Args) -> Result<WorldConfig> {
    let versions = parse_versions(&args.versions)?;
    let ms = Duration::from_millis;
    let config = |v| SimConfig {
        config_sync_interval: ms(args.config_sync_ms.max(1)),
        group_check_interval: ms(args.group_check_ms.max(1)),
        dup_sync_interval: ms(args.dup_sync_ms.max(1)),
        failure_detect: ms(args.failure_detect_ms.max(1)),
        ..SimConfig::default_for(v)
    };
    let mut tables: Vec<TableSpec> = (0..args.tables)
        .map(|i| TableSpec::new(&format!("t{i}"), args.partitions, args.rows))
        .collect();
    if args.with_v0_table {
        tables.push(TableSpec {
            data_version: 0,
            ..TableSpec::new("legacy", args.partitions, args.rows)
        });
    }
    Ok(WorldConfig {
        source_name: SOURCE.into(),
        target_name: TARGET.into(),
        source: config(versions[0]),
        target: config(versions[1]),
        zookeeper: match &args.zookeeper {
            Some(addr) => ZkSource::Existing(addr.clone()),
            None => ZkSource::Start(args.dir.join("zookeeper")),
        },
        root: args.root.clone(),
        migrator_root: crate::spec::DEFAULT_MIGRATOR_ROOT.into(),
        tables,
        target_tables: (0..args.target_tables)
            .map(|i| TableSpec::new(&format!("r{i}"), args.partitions, 10))
            .collect(),
        metaproxies: args.metaproxies.max(1),
        metaproxy_build: args.metaproxy_build,
    })
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

fn write_files(args: &Args, world: &World) -> Result<()> {
    let mut doc = world.endpoints();
    doc["config_sync_ms"] = json!(args.config_sync_ms);
    doc["group_check_ms"] = json!(args.group_check_ms);
    let path = args.dir.join("sandbox.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| io_err(&path, e))?;
    let path = args.dir.join("migrations.yaml");
    std::fs::write(&path, plan_yaml(args, world)).map_err(|e| io_err(&path, e))
}

/// A ready plan moving every table from the source to the target, with the least write-block
/// budget `plan` accepts for the sandbox's config sync and group check, plus two seconds.
fn plan_yaml(args: &Args, world: &World) -> String {
    let source = crate::plan::observed::ClusterObs {
        master: world.source.cluster().config.version.is_2_6(),
        config_sync_ms: [("sandbox".to_string(), args.config_sync_ms)].into(),
        group_check_ms: Some(args.group_check_ms),
        dead_nodes: vec![],
        fixed_sync_timer: vec![],
    };
    let mode = crate::spec::BlockMode::default();
    // The sandbox's plan keeps the verify gate on (the default), with its exact check.
    let needed = crate::plan::budget::Budget::of(&source, None, mode)
        .with_exact_check(true)
        .needed_ms()
        + 2000;
    let budget_s = needed.div_ceil(1000).max(10);
    world.plan_yaml(&[
        "threshold: 1000".into(),
        format!("max_write_block: {budget_s}s"),
        format!("block_mode: {}", mode.name()),
    ])
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
        biased;
        () = timer => {}
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Reads every acknowledged write back from the cluster each table's route now points at.
/// Reads every acknowledged write back where routing points; `None` when the routes cannot be
/// read quickly (ZooKeeper gone): the sandbox still exits promptly.
async fn count_lost(world: &World, acked: Vec<load::Acked>) -> Option<u64> {
    let mut clients = HashMap::new();
    for t in &world.tables {
        let route = tokio::time::timeout(ROUTE_READ_LIMIT, world.routed_to(t)).await;
        let Ok(Ok(Some(name))) = route else {
            return None;
        };
        let Some(sim) = world.cluster(&name) else {
            continue;
        };
        let client = TableClient::new(t, world::meta_client(sim), TableOptions::default());
        clients.insert(t.clone(), client);
    }
    tokio::time::timeout(READ_BACK_LIMIT, load::count_lost(acked, &clients))
        .await
        .ok()
}

/// How long reading one routing node may take after SIGTERM.
const ROUTE_READ_LIMIT: Duration = Duration::from_millis(300);
/// How long reading every acknowledged write back may take.
const READ_BACK_LIMIT: Duration = Duration::from_secs(60);

fn write_client_json(dir: &Path, report: &LoadReport, lost: Option<u64>) -> Result<()> {
    let mut doc = serde_json::to_value(report).unwrap_or_default();
    doc["lost_writes"] = json!(lost);
    let path = dir.join("client.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| io_err(&path, e))
}
