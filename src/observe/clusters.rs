//! Owns the per-cluster facts of a snapshot: whether the servers are master (2.6), and each
//! live replica server's `config_sync_interval_ms` and `group_check_interval_ms` (`/config`).

use std::collections::BTreeMap;

use tokio::task::JoinSet;

use super::Shared;
use crate::plan::observed::ClusterObs;
use crate::probe::flags::{self, CONFIG_SYNC, GROUP_CHECK};

impl Shared {
    /// Facts of every cluster of the plan.
    pub(super) async fn cluster_facts(&self) -> BTreeMap<String, ClusterObs> {
        let mut out = BTreeMap::new();
        for (name, view) in &self.clusters {
            let mut asks = JoinSet::new();
            for node in view.alive.clone() {
                let replica = self.replica.clone();
                asks.spawn(async move {
                    let sync = flags::read(&replica, node, CONFIG_SYNC).await.ok();
                    let check = flags::read(&replica, node, GROUP_CHECK).await.ok();
                    (node, sync, check)
                });
            }
            let mut obs = ClusterObs {
                master: view.master,
                dead_nodes: view
                    .replicas
                    .iter()
                    .filter(|r| !view.alive.contains(r))
                    .map(ToString::to_string)
                    .collect(),
                ..ClusterObs::default()
            };
            while let Some(Ok((node, sync, check))) = asks.join_next().await {
                if let Some(ms) = sync {
                    obs.config_sync_ms.insert(node.to_string(), ms);
                }
                obs.group_check_ms = obs.group_check_ms.max(check);
            }
            out.insert(name.clone(), obs);
        }
        out
    }
}
