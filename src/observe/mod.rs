//! Owns observing: a read-only snapshot of everything a plan depends on, per table, read
//! concurrently with a bound — source app, duplications to the target with this table's lag,
//! data versions on the replicas that host it, the target's table, the routing node and what
//! each listed meta-proxy serves — and per cluster, its servers' config-sync and group-check
//! periods (`clusters`) and the meta-proxies' ability to relay a 2.6 meta (`proxies`).
//!
//! The only I/O before planning. Each cluster's reported name must equal its key in the plan
//! file; an unreachable cluster or ZooKeeper is one error naming it. A dead replica server is
//! skipped; a live one that cannot be asked makes only what depends on it unknown.

mod clusters;
mod proxies;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::pegasus::envs::follows;
use crate::pegasus::messages::apps::{AppInfo, AppStatus};
use crate::pegasus::messages::nodes::NodeStatus;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::replica::ReplicaClient;
use crate::plan::observed::{
    DupObs, Observed, RoutingNode, RoutingObs, SourceApp, TableObs, TargetObs,
};
use crate::probe::progress;
use crate::routing::zk::Zk;
use crate::routing::{node_path, Route};
use crate::spec::{Migration, Spec};

/// How observation runs.
#[derive(Debug, Clone, Copy)]
pub struct ObserveOptions {
    /// Most tables observed at once.
    pub concurrency: usize,
    /// Deadline of each call.
    pub timeout: Duration,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        Self {
            concurrency: 32,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A meta address in the plan file does not resolve.
    #[error("cluster {cluster}: cannot resolve meta address {addr}: {reason}")]
    Resolve {
        cluster: String,
        addr: String,
        reason: String,
    },
    /// A cluster did not answer.
    #[error("cluster {cluster} is unreachable: {source}")]
    Cluster {
        cluster: String,
        source: crate::pegasus::Error,
    },
    /// The meta reports another cluster name than the plan file's key.
    #[error("cluster {key} in the plan file is {reported} according to its meta servers")]
    ClusterName { key: String, reported: String },
    /// ZooKeeper could not be used.
    #[error("meta-proxy ZooKeeper {servers}: {reason}")]
    ZooKeeper { servers: String, reason: String },
}

/// A cluster's meta client, tables and replica servers, read once per plan.
struct ClusterView {
    meta: MetaClient,
    apps: Vec<AppInfo>,
    /// Every replica server the meta lists, dead ones included.
    replicas: Vec<SocketAddr>,
    /// The ones it lists alive.
    alive: Vec<SocketAddr>,
    /// Master (2.6) servers: list-nodes carries host_port fields.
    master: bool,
}

impl ClusterView {
    /// The live table called `name`.
    fn app(&self, name: &str) -> Option<&AppInfo> {
        let live = |a: &&AppInfo| a.app_name == name && a.status != AppStatus::AS_DROPPED;
        self.apps
            .iter()
            .find(|a| live(a) && a.status == AppStatus::AS_AVAILABLE)
            .or_else(|| self.apps.iter().find(live))
    }
}

/// Takes the snapshot for every table of `spec`.
///
/// # Errors
/// An unreachable or misnamed cluster, or unusable ZooKeeper.
pub async fn observe(spec: &Spec, opts: ObserveOptions) -> Result<Observed, Error> {
    let mut clusters = BTreeMap::new();
    for name in used_clusters(spec) {
        let view = cluster_view(spec, &name, opts).await?;
        clusters.insert(name, view);
    }
    let zk = zookeeper(spec, opts.timeout).await?;
    let proxy_addrs = spec
        .metaproxy
        .as_ref()
        .map(|m| m.addresses.iter().filter_map(|a| a.parse().ok()).collect())
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        clusters,
        zk,
        root: spec.metaproxy.as_ref().map(|m| m.root.clone()),
        migrator_root: spec.metaproxy.as_ref().map(|m| m.migrator_root.clone()),
        replica: ReplicaClient::new(opts.timeout),
        proxies: proxy_addrs,
        proxy_pool: crate::pegasus::connection::Pool::new(opts.timeout.min(Duration::from_secs(3))),
        proxy_timeout: opts.timeout.min(Duration::from_secs(3)),
    });
    let limit = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for m in spec.migrations.clone() {
        let (shared, limit) = (shared.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let obs = shared.table(&m).await;
            (m.table, obs)
        });
    }
    let mut tables = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (table, obs) = done.expect("observation tasks do not panic");
        tables.insert(table, obs?);
    }
    let facts = shared.cluster_facts().await;
    let proxy_relays_master = shared.proxy_relays(spec, &tables).await;
    Ok(Observed {
        tables,
        clusters: facts.clusters,
        proxy_relays_master,
        no_empty_write: facts.no_empty_write,
        access_control: facts.access_control,
    })
}

fn used_clusters(spec: &Spec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .migrations
        .iter()
        .flat_map(|m| [m.from.clone(), m.to.clone()])
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn resolve(cluster: &str, addrs: &[String]) -> Result<Vec<SocketAddr>, Error> {
    let mut out = Vec::new();
    for a in addrs {
        let found = tokio::net::lookup_host(a.as_str())
            .await
            .map_err(|e| Error::Resolve {
                cluster: cluster.into(),
                addr: a.clone(),
                reason: e.to_string(),
            })?;
        let before = out.len();
        out.extend(found.filter(SocketAddr::is_ipv4).take(1));
        if out.len() == before {
            return Err(Error::Resolve {
                cluster: cluster.into(),
                addr: a.clone(),
                reason: "it has no IPv4 address (Pegasus addresses are IPv4)".into(),
            });
        }
    }
    Ok(out)
}

/// A meta client of cluster `name` of `spec`, its addresses resolved.
///
/// # Errors
/// An address does not resolve.
pub async fn meta_client(spec: &Spec, name: &str, timeout: Duration) -> Result<MetaClient, Error> {
    let addrs = spec
        .clusters
        .get(name)
        .map(|c| c.meta.clone())
        .unwrap_or_default();
    let opts = MetaOptions {
        call_timeout: timeout,
        connect_timeout: timeout.min(Duration::from_secs(3)),
        ..MetaOptions::default()
    };
    Ok(MetaClient::new(resolve(name, &addrs).await?, opts))
}

/// Connects to the meta-proxy ZooKeeper of `spec`, if it has one.
///
/// # Errors
/// ZooKeeper cannot be reached.
pub async fn zookeeper(spec: &Spec, timeout: Duration) -> Result<Option<Zk>, Error> {
    match &spec.metaproxy {
        Some(mp) => connect_zk(&mp.zookeeper, timeout).await.map(Some),
        None => Ok(None),
    }
}

async fn cluster_view(spec: &Spec, name: &str, opts: ObserveOptions) -> Result<ClusterView, Error> {
    let meta = meta_client(spec, name, opts.timeout).await?;
    let unreachable = |source| Error::Cluster {
        cluster: name.into(),
        source,
    };
    let info = meta.cluster_info().await.map_err(unreachable)?;
    let reported = info.get("cluster_name").unwrap_or_default().to_string();
    if reported != name {
        return Err(Error::ClusterName {
            key: name.into(),
            reported,
        });
    }
    let apps = meta
        .list_apps(AppStatus::AS_INVALID)
        .await
        .map_err(unreachable)?;
    let nodes = meta.list_nodes().await.map_err(unreachable)?;
    let replicas = nodes.iter().filter_map(|n| n.node.to_socket()).collect();
    let alive = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::NS_ALIVE)
        .filter_map(|n| n.node.to_socket())
        .collect();
    Ok(ClusterView {
        meta,
        apps,
        replicas,
        alive,
        master: nodes.iter().any(|n| n.hp_node.is_some()),
    })
}

async fn connect_zk(servers: &[String], timeout: Duration) -> Result<Zk, Error> {
    Zk::connect(servers, timeout)
        .await
        .map_err(|e| Error::ZooKeeper {
            servers: servers.join(","),
            reason: e.to_string(),
        })
}

/// What every table's observation shares.
struct Shared {
    clusters: BTreeMap<String, ClusterView>,
    zk: Option<Zk>,
    root: Option<String>,
    migrator_root: Option<String>,
    replica: ReplicaClient,
    /// The listed meta-proxy instances.
    proxies: Vec<SocketAddr>,
    proxy_pool: crate::pegasus::connection::Pool,
    proxy_timeout: Duration,
}

impl Shared {
    async fn table(&self, m: &Migration) -> Result<TableObs, Error> {
        let (src, dst) = (&self.clusters[&m.from], &self.clusters[&m.to]);
        let mut obs = TableObs {
            routing: self.routing(&m.table).await?,
            ..TableObs::default()
        };
        obs.proxies = self.proxy_answers(&m.table, &m.from, &m.to).await;
        obs.block = self.block_state(&m.from, &m.table).await?;
        obs.target = match dst.app(&m.table) {
            None => TargetObs::Absent,
            Some(a) if follows(&a.envs, &m.from, &src.meta.metas()) => {
                TargetObs::Follower { app_id: a.app_id }
            }
            Some(a) => TargetObs::Unrelated { app_id: a.app_id },
        };
        obs.target_deny = dst
            .app(&m.table)
            .and_then(|a| a.envs.get(crate::pegasus::envs::DENY_ENV).cloned());
        let Some(app) = src.app(&m.table) else {
            return Ok(obs);
        };
        obs.source = Some(SourceApp {
            app_id: app.app_id,
            status: app.status.name(),
            partition_count: app.partition_count,
            envs: app.envs.clone(),
            atomic_idempotent: app.atomic_idempotent.unwrap_or(false),
            bulk_loading: app.is_bulk_loading.unwrap_or(false),
        });
        if app.status == AppStatus::AS_AVAILABLE {
            obs.data_versions = self.data_versions(src, &m.table, app.app_id).await;
            obs.dups = self
                .dups(src, &m.table, &m.to, app.app_id)
                .await
                .map_err(|source| Error::Cluster {
                    cluster: m.from.clone(),
                    source,
                })?;
        }
        Ok(obs)
    }

    /// The state of migrator's block record of `table` of `cluster`, if there is one.
    async fn block_state(
        &self,
        cluster: &str,
        table: &str,
    ) -> Result<Option<crate::cutover::record::BlockState>, Error> {
        let (Some(zk), Some(root)) = (&self.zk, &self.migrator_root) else {
            return Ok(None);
        };
        let store = crate::cutover::record::RecordStore::Zk {
            zk: zk.clone(),
            path: crate::cutover::record::zk_path(root, cluster, table),
        };
        let read = store.read().await.map_err(|e| Error::ZooKeeper {
            servers: zk.servers().join(","),
            reason: e.to_string(),
        })?;
        Ok(read.map(|(r, _)| r.state))
    }

    async fn routing(&self, table: &str) -> Result<Option<RoutingObs>, Error> {
        let (Some(zk), Some(root)) = (&self.zk, &self.root) else {
            return Ok(None);
        };
        let path = node_path(root, table);
        let read = zk.read(&path).await.map_err(|e| Error::ZooKeeper {
            servers: zk.servers().join(","),
            reason: e.to_string(),
        })?;
        let node = read.map(|(bytes, version)| {
            let parsed = Route::parse(&bytes);
            RoutingNode {
                data: String::from_utf8_lossy(&bytes).into_owned(),
                version,
                cluster_name: parsed.as_ref().ok().map(|r| r.cluster_name.clone()),
                invalid: parsed.err().map(|e| e.to_string()),
            }
        });
        Ok(Some(RoutingObs { path, node }))
    }

    /// Data version per live node hosting the table, asked of every such node at once; a
    /// node that hosts none is skipped, a live node that cannot be asked is recorded as such
    /// (and so blocks) when it holds one of the table's primaries.
    async fn data_versions(
        &self,
        src: &ClusterView,
        table: &str,
        app_id: i32,
    ) -> BTreeMap<String, String> {
        let primaries = crate::probe::Primaries::read(&src.meta, table)
            .await
            .map(|p| p.nodes())
            .unwrap_or_default();
        let mut asks = JoinSet::new();
        for node in src.alive.clone() {
            let replica = self.replica.clone();
            asks.spawn(async move {
                let path = format!("/replica/data_version?app_id={app_id}");
                let version = match replica.http_get(node, &path).await {
                    Ok((200, body)) => Some(versions_in(&body)),
                    Ok((404, _)) => None,
                    Ok((status, body)) => Some(format!("unknown (HTTP {status}: {})", body.trim())),
                    Err(e) => Some(format!("unknown ({e})")),
                };
                (node, version)
            });
        }
        let mut out = BTreeMap::new();
        while let Some(Ok((node, version))) = asks.join_next().await {
            match version {
                Some(v) if !v.starts_with("unknown") || primaries.contains(&node) => {
                    out.insert(node.to_string(), v);
                }
                _ => {}
            }
        }
        out
    }

    async fn dups(
        &self,
        src: &ClusterView,
        table: &str,
        to: &str,
        _app_id: i32,
    ) -> Result<Vec<DupObs>, crate::pegasus::Error> {
        let resp = src.meta.query_duplication(table).await?;
        let mut out = Vec::new();
        for e in resp.entry_list.iter().filter(|e| e.remote == to) {
            // Primaries that cannot be asked leave the lag unknown rather than failing the plan.
            let lag = match crate::probe::Primaries::read(&src.meta, table).await {
                Ok(prim) => {
                    let parts =
                        progress::read(&self.replica, &prim, Some(e.dupid), self.proxy_timeout)
                            .await;
                    progress::lag(e, prim.partition_count, &parts)
                }
                Err(_) => None,
            };
            out.push(DupObs {
                dupid: e.dupid,
                status: e.status.name(),
                lag,
            });
        }
        Ok(out)
    }
}

/// The data version a node reports for its partitions (`"1"`, or the distinct values).
fn versions_in(body: &str) -> String {
    let Ok(serde_json::Value::Object(parts)) = serde_json::from_str(body) else {
        return format!("unknown (unreadable reply {body:?})");
    };
    let mut values: Vec<String> = parts
        .values()
        .filter_map(|p| p["data_version"].as_str().map(str::to_string))
        .collect();
    values.sort();
    values.dedup();
    values.join("/")
}
