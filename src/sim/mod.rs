//! Owns the simulated Pegasus clusters and meta-proxy used by tests, benchmarks and
//! `migrator sandbox`.
//!
//! A [`SimCluster`] binds its meta and replica servers on `127.0.0.1:0`, serves the real
//! protocol on them, and runs config sync and the duplication engine in the background until
//! it is dropped. Clusters that share a [`Directory`] know each other, as
//! `[pegasus.clusters]` and `[duplication-group]` make real clusters do. [`world`] builds a
//! source, a target and meta-proxies for the sandbox, the tests and the benchmarks.
//!
//! The simulator models real servers, not migrator: `fidelity.md` in this directory lists every
//! behaviour migrator depends on, the upstream file and tag it follows, and the test that pins
//! it.

pub mod app_envs;
pub mod atomic;
pub mod config;
pub mod duplication;
pub mod dupsync;
pub mod envsync;
pub mod faults;
pub mod flags;
pub mod groupcheck;
pub mod liveness;
pub mod load;
pub mod meta;
pub mod metaproxy;
pub mod multi_get;
pub mod replica;
pub mod replica_views;
pub mod scan;
pub mod server;
pub mod shipping;
pub mod state;
pub mod storage;
pub mod syncreply;
pub mod synctrouble;
pub mod tables;
#[cfg(test)]
pub(crate) mod test_support;
pub mod ticks;
pub mod wakes;
pub mod world;
pub mod zk_model;
pub mod zk_server;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::net::Listener;
use tokio::sync::watch;

pub use config::{SimConfig, Version};
pub use state::{Cluster, Directory, Peer};

use crate::pegasus::messages::apps::CreateAppOptions;

/// A running simulated cluster; dropping it stops every server and background task.
pub struct SimCluster {
    cluster: Arc<Cluster>,
    shutdown: watch::Sender<bool>,
}

impl SimCluster {
    /// Starts cluster `name` with duplication-group id `cluster_id`, registered in `directory`.
    ///
    /// # Errors
    /// A loopback port could not be bound.
    pub async fn start(
        name: &str,
        cluster_id: i8,
        config: SimConfig,
        directory: &Directory,
    ) -> std::io::Result<Self> {
        let metas = bind_all(config.metas.max(1)).await?;
        let replicas = bind_all(config.replicas.max(1)).await?;
        let addrs = |ls: &[Listener]| {
            ls.iter()
                .map(Listener::local_addr)
                .collect::<std::io::Result<Vec<_>>>()
        };
        let cluster = Arc::new(Cluster::new(
            name,
            cluster_id,
            config,
            addrs(&metas)?,
            addrs(&replicas)?,
            directory.clone(),
        ));
        directory.insert(
            name,
            Peer {
                metas: cluster.metas.clone(),
                cluster_id,
            },
        );
        let (shutdown, stop) = watch::channel(false);
        let drops = cluster.faults.drop_connections.subscribe();
        for (index, l) in metas.into_iter().enumerate() {
            let node = Arc::new(meta::MetaNode {
                cluster: cluster.clone(),
                index,
            });
            tokio::spawn(server::serve(l, node, stop.clone(), drops.clone()));
        }
        for (index, l) in replicas.into_iter().enumerate() {
            let node = Arc::new(replica::ReplicaNode {
                cluster: cluster.clone(),
                index,
                admitted: false,
                logged_early: false,
            });
            let node_drops = cluster.faults.node_drops[index].subscribe();
            tokio::spawn(server::serve(l, node, stop.clone(), node_drops));
            tokio::spawn(envsync::run(cluster.clone(), index, stop.clone()));
            tokio::spawn(dupsync::run(cluster.clone(), index, stop.clone()));
        }
        tokio::spawn(groupcheck::run(cluster.clone(), stop.clone()));
        tokio::spawn(liveness::run(cluster.clone(), stop.clone()));
        tokio::spawn(shipping::run(cluster.clone(), stop));
        Ok(Self { cluster, shutdown })
    }

    /// The shared cluster state (for tests and the sandbox).
    #[must_use]
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Meta server addresses.
    #[must_use]
    pub fn metas(&self) -> Vec<SocketAddr> {
        self.cluster.metas.clone()
    }

    /// Replica server addresses.
    #[must_use]
    pub fn replicas(&self) -> Vec<SocketAddr> {
        self.cluster.replicas.clone()
    }

    /// Creates a table directly (no RPC); `data_version` 0 emulates a table from before v1.
    ///
    /// # Errors
    /// The meta's create errors (`ERR_APP_EXIST`, bad counts).
    pub fn create_table(
        &self,
        name: &str,
        partitions: i32,
        data_version: u32,
    ) -> Result<i32, tables::AppError> {
        let c = &self.cluster;
        let mut state = c.lock();
        let opts = CreateAppOptions {
            partition_count: partitions,
            replica_count: i32::try_from(c.config.replica_count).unwrap_or(3),
            app_type: "pegasus".into(),
            is_stateful: true,
            ..Default::default()
        };
        let id = tables::create_app(c, &mut state, name, &opts)?;
        if let Some(app) = state.apps.get_mut(&id) {
            app.data_version = data_version;
        }
        Ok(id)
    }

    /// Writes `rows` records (`seed{i}` / `s` = `seed{i}` padded to `value_len` bytes) straight
    /// into `table`'s partitions, bypassing RPCs and the log: a table as a bulk load or an
    /// earlier copy leaves it, for trying `verify` on large tables.
    ///
    /// # Errors
    /// No such table.
    pub fn seed_direct(&self, table: &str, rows: usize, value_len: usize) -> Result<(), String> {
        let mut state = self.cluster.lock();
        let app = state
            .app_by_name_mut(table)
            .ok_or_else(|| format!("no table {table}"))?;
        let count = i32::try_from(app.partitions.len()).unwrap_or(1);
        for i in 0..rows {
            let hash_key = format!("seed{i}");
            let Ok(k) = crate::pegasus::key::composite_key(hash_key.as_bytes(), b"s") else {
                continue;
            };
            let pidx =
                crate::pegasus::key::partition_index(crate::pegasus::key::key_hash(&k), count);
            let mut value = hash_key.into_bytes();
            value.resize(value_len.max(value.len()), b'.');
            let rec = state::Record {
                value,
                timetag: 0,
                expire_ts: 0,
            };
            app.partitions[usize::try_from(pidx).unwrap_or(0)]
                .data
                .insert(k, rec);
        }
        Ok(())
    }

    /// Stops the servers and background tasks.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn bind_all(n: usize) -> std::io::Result<Vec<Listener>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Listener::bind_loopback().await?);
    }
    Ok(out)
}
