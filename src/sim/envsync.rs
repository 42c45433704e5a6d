//! Owns config sync: each replica server applies the meta's app envs (and so
//! `replica.deny_client_request`) only when its config-sync timer fires, on its own phase,
//! for the partitions it hosts, primaries and secondaries alike (`replica_stub.cpp`
//! `query_configuration_by_node`, `replica::on_config_sync`, v2.5.0 and master).
//!
//! The timer re-arms with `config_sync_interval_ms` as the flag stands when a period ends on
//! v2.5.0 (`/updateConfig` calls `timer_task::update_interval`); on master `/updateConfig`
//! reaches the metrics service's no-op hook instead, so the period never changes. A server
//! syncs at once when it (re)starts, then every period.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::state::{Cluster, Deny, DenyEvent, DENY_ENV};

/// Runs node `index`'s config sync until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let started = cluster.config.config_sync_interval;
    let nodes = u32::try_from(cluster.replicas.len()).unwrap_or(1).max(1);
    // Servers start at different moments; spread their phases over one interval.
    let phase = started / nodes * u32::try_from(index).unwrap_or(0);
    let poll = (started / 20).clamp(Duration::from_millis(2), Duration::from_millis(50));
    let mut epoch = None;
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now()).min(poll);
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let Some((alive, now_epoch, flag_ms)) = node_facts(&cluster, index) else {
            break;
        };
        if !alive {
            continue;
        }
        if epoch != Some(now_epoch) {
            // (Re)started: sync on connecting to the meta; the first period starts now.
            let first = epoch.is_none();
            epoch = Some(now_epoch);
            sync(&cluster, index);
            next = Instant::now() + if first { phase.max(poll) } else { started };
            continue;
        }
        let late = cluster.faults.late_sync_ms[index].swap(0, std::sync::atomic::Ordering::Relaxed);
        if late > 0 {
            // The sync RPC found the meta busy, or its previous one still pending: the next
            // one comes at least `late` from now. Causes that overlap do not add up.
            next = next.max(Instant::now() + Duration::from_millis(late));
            continue;
        }
        if Instant::now() >= next {
            sync(&cluster, index);
            let period = if cluster.config.version.is_2_6() {
                started
            } else {
                Duration::from_millis(u64::from(flag_ms))
            };
            next += period;
        }
    }
}

/// Puts off server `node`'s next config sync: it comes at least `ms` after the server's next
/// poll (`sim.fault late_sync`).
pub fn delay_next(cluster: &Cluster, node: usize, ms: u64) {
    if let Some(slot) = cluster.faults.late_sync_ms.get(node) {
        slot.store(ms, std::sync::atomic::Ordering::Relaxed);
        cluster.wakes.sync_delayed(node);
    }
}

fn node_facts(cluster: &Cluster, index: usize) -> Option<(bool, u64, u32)> {
    let state = cluster.lock();
    let node = state.nodes.get(index)?;
    Some((node.alive, node.epoch, node.config_sync_interval_ms))
}

/// Applies the current envs, and whether each table is a duplication master, for every table
/// hosted on node `index`.
pub fn sync(cluster: &Cluster, index: usize) {
    let mut state = cluster.lock();
    let applied: Vec<_> = state
        .apps
        .values()
        .filter(|a| a.partitions.iter().any(|p| p.hosted_on(index)))
        .map(|a| {
            let deny = a.envs.get(DENY_ENV).and_then(|v| Deny::parse(v));
            (a.id, deny, a.is_duplicating())
        })
        .collect();
    let node = &mut state.nodes[index];
    node.last_sync_ms = crate::clock::now_ms();
    let before = std::mem::take(&mut node.deny);
    node.dup_masters.clear();
    for (id, deny, duplicating) in &applied {
        if let Some(d) = deny {
            node.deny.insert(*id, *d);
        }
        if *duplicating {
            node.dup_masters.insert(*id);
        }
    }
    let changed: Vec<DenyEvent> = applied
        .iter()
        .filter(|(id, deny, _)| before.get(id) != deny.as_ref())
        .map(|(id, deny, _)| DenyEvent::Applied {
            at_ms: crate::clock::now_ms(),
            node: index,
            app_id: *id,
            deny: *deny,
        })
        .collect();
    state.deny_log.extend(changed);
}
