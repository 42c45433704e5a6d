//! Owns config sync: each replica node applies the meta's app envs (and so
//! `replica.deny_client_request`) only every `config_sync_interval`, each on its own phase,
//! as real replica servers do.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::state::{Cluster, Deny, DENY_ENV};

/// Runs node `index`'s config sync until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let interval = cluster.config.config_sync_interval;
    let nodes = u32::try_from(cluster.replicas.len()).unwrap_or(1).max(1);
    let phase = interval / nodes * u32::try_from(index).unwrap_or(0);
    sync(&cluster, index);
    let start = tokio::time::Instant::now() + phase.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(start, interval);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => sync(&cluster, index),
        }
    }
}

/// Applies the current envs of every table on node `index`.
pub fn sync(cluster: &Cluster, index: usize) {
    let mut state = cluster.lock();
    let applied: Vec<_> = state
        .apps
        .values()
        .map(|a| {
            (
                a.id,
                a.envs.clone(),
                a.envs.get(DENY_ENV).and_then(|v| Deny::parse(v)),
            )
        })
        .collect();
    let node = &mut state.nodes[index];
    node.deny.clear();
    node.envs.clear();
    for (id, envs, deny) in applied {
        if let Some(d) = deny {
            node.deny.insert(id, d);
        }
        node.envs.insert(id, envs);
    }
}
