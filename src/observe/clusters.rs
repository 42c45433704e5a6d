//! Owns the per-cluster facts of a snapshot: whether the servers are master (2.6), and each
//! live replica server's `config_sync_interval_ms`, `group_check_interval_ms`,
//! `empty_write_disabled`, `group_check_disabled`, `enable_acl` and `enable_ranger_acl`
//! (`/config`), and whether its build re-arms the config-sync timer (`server-info`).

use std::collections::BTreeMap;

use tokio::task::JoinSet;

use super::Shared;
use crate::pegasus::replica::ReplicaClient;
use crate::plan::observed::{AccessControl, ClusterObs, NoEmptyWrite};
use crate::probe::build::{self, SyncTimer};
use crate::probe::flags::{
    self, CONFIG_SYNC, EMPTY_WRITE_DISABLED, ENABLE_ACL, ENABLE_RANGER_ACL, GROUP_CHECK,
    GROUP_CHECK_DISABLED,
};

/// What one live replica server's `/config` said (`None`: not read).
struct ServerFlags {
    sync: Option<u64>,
    check: Option<u64>,
    empty_write_disabled: Option<bool>,
    group_check_disabled: Option<bool>,
    enable_acl: Option<bool>,
    enable_ranger_acl: Option<bool>,
    timer: SyncTimer,
}

async fn server_flags(replica: &ReplicaClient, node: std::net::SocketAddr) -> ServerFlags {
    ServerFlags {
        sync: flags::read(replica, node, CONFIG_SYNC).await.ok(),
        check: flags::read(replica, node, GROUP_CHECK).await.ok(),
        empty_write_disabled: flags::read_bool(replica, node, EMPTY_WRITE_DISABLED)
            .await
            .ok(),
        group_check_disabled: flags::read_bool(replica, node, GROUP_CHECK_DISABLED)
            .await
            .ok(),
        enable_acl: flags::read_bool(replica, node, ENABLE_ACL).await.ok(),
        enable_ranger_acl: flags::read_bool(replica, node, ENABLE_RANGER_ACL)
            .await
            .ok(),
        timer: build::sync_timer(replica, node).await,
    }
}

/// Per cluster: its facts, the servers whose flags stop the empty write, and those with access
/// control on.
pub(super) struct ClusterFacts {
    pub clusters: BTreeMap<String, ClusterObs>,
    pub no_empty_write: BTreeMap<String, NoEmptyWrite>,
    pub access_control: BTreeMap<String, AccessControl>,
}

impl Shared {
    /// Facts of every cluster of the plan.
    pub(super) async fn cluster_facts(&self) -> ClusterFacts {
        let mut out = BTreeMap::new();
        let mut no_empty_write = BTreeMap::new();
        let mut access_control = BTreeMap::new();
        for (name, view) in &self.clusters {
            let mut asks = JoinSet::new();
            for node in view.alive.clone() {
                let replica = self.replica.clone();
                asks.spawn(async move { (node, server_flags(&replica, node).await) });
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
            let mut off = NoEmptyWrite::default();
            let mut acl = AccessControl::default();
            while let Some(Ok((node, f))) = asks.join_next().await {
                if let Some(ms) = f.sync {
                    obs.config_sync_ms.insert(node.to_string(), ms);
                }
                obs.group_check_ms = obs.group_check_ms.max(f.check);
                if f.timer == SyncTimer::Ignores {
                    obs.fixed_sync_timer.push(node.to_string());
                }
                if f.empty_write_disabled == Some(true) {
                    off.empty_write_disabled.push(node.to_string());
                }
                if f.group_check_disabled == Some(true) {
                    off.group_check_disabled.push(node.to_string());
                }
                if f.enable_ranger_acl == Some(true) {
                    acl.ranger.push(node.to_string());
                } else if f.enable_acl == Some(true) {
                    acl.legacy.push(node.to_string());
                }
            }
            obs.fixed_sync_timer.sort();
            off.empty_write_disabled.sort();
            off.group_check_disabled.sort();
            acl.legacy.sort();
            acl.ranger.sort();
            out.insert(name.clone(), obs);
            no_empty_write.insert(name.clone(), off);
            access_control.insert(name.clone(), acl);
        }
        ClusterFacts {
            clusters: out,
            no_empty_write,
            access_control,
        }
    }
}
