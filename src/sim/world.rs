//! Owns building a simulated world: a source and a target cluster that know each other, a
//! ZooKeeper (given, or a real server started for it), routing nodes sending each table's
//! clients to the source, tables seeded with rows, and meta-proxy instances of one build.
//! `migrator sandbox`, the integration tests and the benchmarks all build theirs here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::metaproxy::{Build, MetaProxy};
use super::zk_server::ZkServer;
use super::{Directory, SimCluster, SimConfig};
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::table::{TableClient, TableOptions};
use crate::routing::zk::Zk;
use crate::routing::{node_path, Route};

/// Where the world's ZooKeeper comes from.
#[derive(Debug, Clone)]
pub enum ZkSource {
    /// A server that already runs.
    Existing(String),
    /// Start a real server with its data under this directory.
    Start(PathBuf),
}

/// One table to create.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub partitions: i32,
    /// 1, or 0 for a table from before data version 1 (duplication refuses it).
    pub data_version: u32,
    /// Rows written before the world is handed over.
    pub rows: usize,
}

impl TableSpec {
    /// A data-version-1 table of `partitions` partitions with `rows` rows.
    #[must_use]
    pub fn new(name: &str, partitions: i32, rows: usize) -> Self {
        Self {
            name: name.into(),
            partitions,
            data_version: 1,
            rows,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub source_name: String,
    pub target_name: String,
    pub source: SimConfig,
    pub target: SimConfig,
    pub zookeeper: ZkSource,
    /// meta-proxy's root node.
    pub root: String,
    /// migrator's own root (locks, block records), written into the plan file.
    pub migrator_root: String,
    /// Tables on the source, routed to it.
    pub tables: Vec<TableSpec>,
    /// Tables that already live on the target and are routed to it (other applications).
    pub target_tables: Vec<TableSpec>,
    pub metaproxies: usize,
    pub metaproxy_build: Build,
}

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("cannot start ZooKeeper: {0}")]
    ZooKeeperServer(#[from] super::zk_server::ZkServerError),
    #[error("ZooKeeper: {0}")]
    ZooKeeper(#[from] crate::routing::zk::ZkError),
    #[error("cannot bind a loopback port: {0}")]
    Bind(#[from] std::io::Error),
    #[error("cannot create table {table}: {code} {hint}")]
    CreateTable {
        table: String,
        code: &'static str,
        hint: String,
    },
    #[error("cannot seed table {table}: {source}")]
    Seed {
        table: String,
        source: crate::pegasus::Error,
    },
}

/// A running world; dropping it stops everything it started.
pub struct World {
    pub source: SimCluster,
    pub target: SimCluster,
    pub directory: Directory,
    pub zk: Zk,
    pub zk_addr: String,
    pub root: String,
    pub proxies: Vec<MetaProxy>,
    pub tables: Vec<String>,
    pub target_tables: Vec<String>,
    pub config: WorldConfig,
    // Dropped last: the proxies and clients above use it.
    _zk_server: Option<ZkServer>,
}

impl World {
    /// Builds `config`'s world.
    ///
    /// # Errors
    /// ZooKeeper cannot be started or reached, a port cannot be bound, a table cannot be
    /// created or seeded.
    pub async fn start(config: WorldConfig) -> Result<World, WorldError> {
        let (zk_server, zk_addr) = zookeeper(&config.zookeeper).await?;
        let zk = Zk::connect(std::slice::from_ref(&zk_addr), Duration::from_secs(10)).await?;
        let directory = Directory::default();
        let source =
            SimCluster::start(&config.source_name, 1, config.source.clone(), &directory).await?;
        let target =
            SimCluster::start(&config.target_name, 2, config.target.clone(), &directory).await?;
        let mut proxies = Vec::new();
        for _ in 0..config.metaproxies {
            let sessions = directory.metaproxy_sessions();
            let root = config.root.as_str();
            proxies
                .push(MetaProxy::start(zk.clone(), root, config.metaproxy_build, sessions).await?);
        }
        let world = World {
            tables: config.tables.iter().map(|t| t.name.clone()).collect(),
            target_tables: config
                .target_tables
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            source,
            target,
            directory,
            zk,
            zk_addr,
            root: config.root.clone(),
            proxies,
            config,
            _zk_server: zk_server,
        };
        for t in &world.config.tables {
            world.create(&world.source, t).await?;
        }
        for t in &world.config.target_tables {
            world.create(&world.target, t).await?;
        }
        Ok(world)
    }

    async fn create(&self, sim: &SimCluster, t: &TableSpec) -> Result<(), WorldError> {
        sim.create_table(&t.name, t.partitions, t.data_version)
            .map_err(|(code, hint)| WorldError::CreateTable {
                table: t.name.clone(),
                code,
                hint,
            })?;
        let client = TableClient::new(&t.name, meta_client(sim), TableOptions::default());
        for row in 0..t.rows {
            let key = format!("seed{row}");
            client
                .put(key.as_bytes(), b"s", key.as_bytes())
                .await
                .map_err(|source| WorldError::Seed {
                    table: t.name.clone(),
                    source,
                })?;
        }
        let route = Route {
            cluster_name: sim.cluster().name.clone(),
            meta_addrs: addrs(&sim.metas()),
        };
        put_node(&self.zk, &node_path(&self.root, &t.name), &route.to_json()).await?;
        Ok(())
    }

    /// The cluster called `name` (source or target).
    #[must_use]
    pub fn cluster(&self, name: &str) -> Option<&SimCluster> {
        [&self.source, &self.target]
            .into_iter()
            .find(|c| c.cluster().name == name)
    }

    /// The meta-proxy addresses.
    #[must_use]
    pub fn proxy_addrs(&self) -> Vec<SocketAddr> {
        self.proxies.iter().map(MetaProxy::addr).collect()
    }

    /// The cluster `table`'s routing node names now.
    ///
    /// # Errors
    /// ZooKeeper could not be read.
    pub async fn routed_to(&self, table: &str) -> Result<Option<String>, WorldError> {
        let node = self.zk.read(&node_path(&self.root, table)).await?;
        Ok(node.and_then(|(d, _)| Route::parse(&d).ok().map(|r| r.cluster_name)))
    }

    /// A plan file moving every source table to the target, with `defaults` (YAML lines
    /// indented under `defaults:`, e.g. `  threshold: 1000`).
    #[must_use]
    pub fn plan_yaml(&self, defaults: &[String]) -> String {
        let list = |a: &[String]| {
            a.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (src, dst) = (&self.config.source_name, &self.config.target_name);
        let proxies: Vec<String> = self.proxy_addrs().iter().map(ToString::to_string).collect();
        let mut y = format!(
            "# Moves every table of {src} to {dst}.\nversion: 1\nclusters:\n  {src}: {{ meta: [{}] }}\n  {dst}: {{ meta: [{}] }}\nmetaproxy:\n  zookeeper: [\"{}\"]\n  root: {}\n  migrator_root: {}\n  addresses: [{}]\n",
            list(&addrs(&self.source.metas())),
            list(&addrs(&self.target.metas())),
            self.zk_addr,
            self.root,
            self.config.migrator_root,
            list(&proxies),
        );
        if !defaults.is_empty() {
            y.push_str("defaults:\n");
            for line in defaults {
                y.push_str(&format!("  {line}\n"));
            }
        }
        y.push_str("migrations:\n");
        for t in &self.tables {
            y.push_str(&format!("  - {{ table: {t}, from: {src}, to: {dst} }}\n"));
        }
        y
    }

    /// Every endpoint, as `sandbox.json` lists them.
    #[must_use]
    pub fn endpoints(&self) -> serde_json::Value {
        let cluster = |sim: &SimCluster| {
            json!({"name": sim.cluster().name, "version": sim.cluster().config.version.to_string(),
                   "meta": addrs(&sim.metas()), "replicas": addrs(&sim.replicas())})
        };
        let proxies: Vec<String> = self.proxy_addrs().iter().map(ToString::to_string).collect();
        json!({
            "clusters": [cluster(&self.source), cluster(&self.target)],
            "metaproxy": {
                "address": proxies.first(),
                "addresses": proxies,
                "build": format!("{:?}", self.config.metaproxy_build).to_lowercase(),
                "zookeeper": self.zk_addr,
                "root": self.root,
            },
            "tables": self.tables,
            "target_tables": self.target_tables,
        })
    }
}

/// A meta client of `sim`.
#[must_use]
pub fn meta_client(sim: &SimCluster) -> MetaClient {
    MetaClient::new(sim.metas(), MetaOptions::default())
}

/// `host:port` strings of `list`.
#[must_use]
pub fn addrs(list: &[SocketAddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

async fn zookeeper(source: &ZkSource) -> Result<(Option<ZkServer>, String), WorldError> {
    match source {
        ZkSource::Existing(addr) => Ok((None, addr.clone())),
        ZkSource::Start(dir) => {
            let dir = dir.clone();
            // Starting blocks until ZooKeeper answers; keep it off the async workers.
            let server = tokio::task::spawn_blocking(move || ZkServer::start(&dir))
                .await
                .map_err(|e| WorldError::Bind(std::io::Error::other(e)))??;
            let addr = server.addr().to_string();
            Ok((Some(server), addr))
        }
    }
}

async fn put_node(zk: &Zk, path: &str, data: &str) -> Result<(), crate::routing::zk::ZkError> {
    match zk.read(path).await? {
        Some(_) => zk.set(path, data.as_bytes(), None).await.map(drop),
        None => zk.create_all(path, data.as_bytes()).await,
    }
}
