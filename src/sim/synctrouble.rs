//! Owns what keeps a replica server's config sync from coming on time, as upstream has it: its
//! sync RPC slow or lost, the meta answering `ERR_BUSY` while it persists a change concerning
//! the server, a reply that carries a partition at an older ballot than the server's replica,
//! and the server cut off from the meta. Each is a `sim.fault`; the meta's own
//! reconfigurations (`liveness.rs`) open busy windows too. `envsync.rs` acts on them.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Cluster, State};

/// A partition: app id and partition index.
pub type Pid = (i32, usize);

/// What stands between one replica server and its config sync.
#[derive(Debug, Clone, Default)]
pub struct SyncTrouble {
    /// The server's next sync RPC is answered this much later; at or past the RPC timeout it
    /// is never answered and fails at the timeout (`sim.fault sync_slow`).
    pub slow_next: Option<Duration>,
    /// Until then the meta answers the server's syncs `ERR_BUSY`: a configuration change
    /// concerning it is being written to ZooKeeper (`pending_remote_sync`).
    pub busy_until: Option<Instant>,
    /// Per partition: until then the meta's replies carry it at a ballot older than the
    /// server's replica holds (`sim.fault stale_ballot`).
    pub stale_until: BTreeMap<Pid, Instant>,
    /// Until then the server's failure detector has lost the meta (`sim.fault disconnect`).
    pub cut_off_until: Option<Instant>,
}

impl SyncTrouble {
    /// Whether the meta answers this server's sync `ERR_BUSY` at `now`.
    #[must_use]
    pub fn busy(&self, now: Instant) -> bool {
        self.busy_until.is_some_and(|t| now < t)
    }

    /// Whether the meta's reply at `now` carries `pid` at an older ballot than the replica's.
    #[must_use]
    pub fn stale(&self, pid: Pid, now: Instant) -> bool {
        self.stale_until.get(&pid).is_some_and(|t| now < *t)
    }

    /// Whether the server is cut off from the meta at `now`.
    #[must_use]
    pub fn cut_off(&self, now: Instant) -> bool {
        self.cut_off_until.is_some_and(|t| now < t)
    }

    /// When a server cut off at `now` gets the meta back.
    #[must_use]
    pub fn reconnects_at(&self, now: Instant) -> Option<Instant> {
        self.cut_off_until.filter(|t| now < *t)
    }

    /// The meta persists a change concerning this server until `until`.
    pub fn busy_until(&mut self, until: Instant) {
        self.busy_until = Some(self.busy_until.map_or(until, |t| t.max(until)));
    }
}

/// The meta writes a configuration change concerning server `node` to ZooKeeper: its config
/// syncs are answered `ERR_BUSY` meanwhile (`server_state::on_config_sync`).
pub fn persisting(state: &mut State, node: usize, window: Duration) {
    if let Some(n) = state.nodes.get_mut(node) {
        n.trouble.busy_until(Instant::now() + window);
    }
}

/// `sim.fault sync_slow NODE MS`: server `node`'s next config-sync RPC is answered `ms` later.
pub fn slow_next(cluster: &Cluster, node: usize, ms: u64) {
    cluster.lock().nodes[node].trouble.slow_next = Some(Duration::from_millis(ms));
    cluster.wakes.config_sync_changed(node);
}

/// `sim.fault sync_busy NODE MS`: the meta answers server `node`'s config syncs `ERR_BUSY`
/// for `ms`, as while it persists a change concerning the server.
pub fn busy(cluster: &Cluster, node: usize, ms: u64) {
    persisting(&mut cluster.lock(), node, Duration::from_millis(ms));
    cluster.wakes.config_sync_changed(node);
}

/// `sim.fault stale_ballot NODE TABLE PIDX MS`: for `ms`, the meta's config-sync replies to
/// server `node` carry partition `pidx` of `table` at an older ballot than its replica holds.
///
/// # Errors
/// No such table or partition.
pub fn stale(
    cluster: &Cluster,
    node: usize,
    table: &str,
    pidx: usize,
    ms: u64,
) -> Result<(), String> {
    let mut state = cluster.lock();
    let app = state
        .app_by_name(table)
        .ok_or_else(|| format!("no table {table}"))?;
    if pidx >= app.partitions.len() {
        return Err(format!("{table} has no partition {pidx}"));
    }
    let pid = (app.id, pidx);
    let until = Instant::now() + Duration::from_millis(ms);
    let stale = state.nodes[node]
        .trouble
        .stale_until
        .entry(pid)
        .or_insert(until);
    *stale = (*stale).max(until);
    Ok(())
}

/// `sim.fault disconnect NODE MS`: server `node` loses the meta for `ms` (its beacons go
/// unanswered) while clients still reach it.
pub fn cut_off(cluster: &Cluster, node: usize, ms: u64) {
    let now = Instant::now();
    {
        let mut state = cluster.lock();
        let n = &mut state.nodes[node];
        if !n.trouble.cut_off(now) {
            // The meta's failure detector counts from the last beacon it heard.
            n.last_beacon = now;
        }
        let until = now + Duration::from_millis(ms);
        n.trouble.cut_off_until = Some(n.trouble.cut_off_until.map_or(until, |t| t.max(until)));
    }
    cluster.wakes.meta_link_changed(node);
}

/// Ends every config-sync fault of the cluster.
pub fn heal(cluster: &Cluster) {
    let now = Instant::now();
    let nodes = {
        let mut state = cluster.lock();
        for n in &mut state.nodes {
            n.trouble.slow_next = None;
            n.trouble.busy_until = None;
            n.trouble.stale_until.clear();
            if n.trouble.cut_off(now) {
                n.trouble.cut_off_until = Some(now);
            }
        }
        state.nodes.len()
    };
    for node in 0..nodes {
        cluster.wakes.meta_link_changed(node);
    }
}
