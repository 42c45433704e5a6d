//! Owns liveness: replica servers that go down and come back, the meta's failure detector
//! that declares them dead after `failure_detect` without a beacon (stopped, or cut off from
//! the meta) and moves their primaries, a primary moved by hand, and what a meta leader change
//! forgets.
//!
//! Upstream: `meta_service.cpp` (failure detector, `set_node_state`, `start_service`),
//! `server_state.cpp` (`downgrade_primary_to_inactive`), `partition_guardian.cpp`
//! (`on_missing_primary`: the alive secondary with the fewest primaries), v2.5.0 and master.
//! A new primary applies envs only at its own server's config sync (`replica_config.cpp`).
//! Each configuration change is written to ZooKeeper before it takes effect; meanwhile the
//! meta answers the config sync of the server it concerns `ERR_BUSY` (`server_state.cpp`
//! `on_config_sync`): the new primary's, or the returning secondary's.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::{millis, Cluster, Node, Partition, State};
use super::synctrouble::persisting;
use super::ticks::{self, Grid, Stop};

/// Runs the failure detector until `shutdown` turns true. It checks at the ticks of its timer
/// (a tenth of `failure_detect`, at least 10 ms), and only at those at which some server's
/// state is due to change; while every server is where the meta lists it, it sleeps.
pub async fn run(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let tick = (cluster.config.failure_detect / 10).max(Duration::from_millis(10));
    let grace = cluster.config.failure_detect;
    let grid = Grid::new(Instant::now(), tick);
    let mut last = None;
    let mut next = next_change(&cluster.lock(), grace).map(|due| grid.first_from(None, due));
    loop {
        let stop = next.map(|k| grid.stop(k, Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = cluster.wakes.liveness().notified() => {
                let changed = next_change(&cluster.lock(), grace)
                    .map(|due| grid.first_from(last, due.max(ticks::after(Instant::now()))));
                // What was due stays due; a change is acted on from the next tick.
                next = match (next, changed) {
                    (Some(due), Some(now_due)) => Some(due.min(now_due)),
                    (_, now_due) => now_due,
                };
            }
            () = ticks::until(stop.map(Stop::instant)) => {
                if stop.is_some_and(Stop::acts) {
                    detect(&cluster);
                    last = next;
                    next = next_change(&cluster.lock(), grace)
                        .map(|due| grid.first_from(last, due.max(Instant::now())));
                }
            }
        }
    }
}

/// Whether the meta hears server `n`'s beacons at `now`: it runs and reaches the meta.
fn heard(n: &Node, now: Instant) -> bool {
    n.alive && !n.trouble.cut_off(now)
}

/// When `detect` next has something to do: a silent server listed alive is declared dead
/// `grace` after it was last heard from; a server heard again but listed dead is taken back
/// at once (a cut-off one when it gets the meta back).
fn next_change(state: &State, grace: Duration) -> Option<Instant> {
    let now = Instant::now();
    state
        .nodes
        .iter()
        .filter_map(|n| match (heard(n, now), n.listed_alive) {
            (false, true) => Some(n.last_beacon + grace),
            (true, false) => Some(now),
            (false, false) if n.alive => n.trouble.reconnects_at(now),
            _ => None,
        })
        .min()
}

/// Declares dead the servers silent for `failure_detect`, moving their replicas away, and
/// takes back the ones that returned.
pub fn detect(cluster: &Cluster) {
    let now = Instant::now();
    let grace = cluster.config.failure_detect;
    let mut state = cluster.lock();
    let persist = cluster.config.meta_persist_delay;
    for idx in 0..state.nodes.len() {
        let node = &state.nodes[idx];
        let beacons = heard(node, now);
        if node.listed_alive && !beacons && now.duration_since(node.last_beacon) >= grace {
            state.nodes[idx].listed_alive = false;
            remove_node(&mut state, idx, persist);
            cluster.wakes.primaries_changed();
        } else if beacons && !node.listed_alive {
            state.nodes[idx].listed_alive = true;
            readd_node(&mut state, idx, persist);
        }
    }
}

/// Stops or restarts replica server `idx`. A stopped server refuses connections and drops
/// open ones; a restarted one forgets its runtime flags and applied envs.
pub fn set_down(cluster: &Cluster, idx: usize, down: bool) {
    let mut state = cluster.lock();
    let node = &mut state.nodes[idx];
    if down {
        node.alive = false;
        node.last_beacon = Instant::now();
        // The process is gone, and with it the envs its replicas applied.
        super::syncreply::forget(&mut state, idx);
        drop(state);
        cluster.faults.node_drops[idx].send_modify(|g| *g += 1);
        cluster.wakes.server_changed(idx);
    } else if !node.alive {
        node.alive = true;
        node.epoch += 1;
        node.last_beacon = Instant::now();
        node.config_sync_interval_ms = millis(cluster.config.config_sync_interval);
        node.empty_write_disabled = cluster.config.empty_write_disabled;
        super::syncreply::forget(&mut state, idx);
        drop(state);
        cluster.wakes.server_changed(idx);
    }
}

/// Moves the primary of `table`'s partition `pidx` to another live replica (the old primary
/// stays a secondary); returns the new primary's index.
///
/// # Errors
/// No such table or partition, or no live secondary to move to.
pub fn failover(cluster: &Cluster, table: &str, pidx: usize) -> Result<usize, String> {
    let mut state = cluster.lock();
    let usable = usable_nodes(&state);
    let counts = primary_counts(&state);
    let app = state
        .app_by_name_mut(table)
        .ok_or_else(|| format!("no table {table}"))?;
    let p = app
        .partitions
        .get_mut(pidx)
        .ok_or_else(|| format!("{table} has no partition {pidx}"))?;
    let to = pick_primary(p, &usable, &counts).ok_or("no live secondary to move to")?;
    p.promote(to, true);
    reset_duplicators(&mut state, table, pidx);
    persisting(&mut state, to, cluster.config.meta_persist_delay);
    cluster.wakes.primaries_changed();
    Ok(to)
}

/// A meta leader change: the new leader lists every node alive again (until its own
/// failure detector catches up), forgets the duplication `last_committed_decree`s, and
/// restores each partition's progress from storage asynchronously.
pub fn leader_changed(cluster: &Cluster) {
    let now = Instant::now();
    let restore = cluster.config.meta_persist_delay;
    let mut state = cluster.lock();
    for node in &mut state.nodes {
        node.listed_alive = true;
        node.last_beacon = now;
    }
    for app in state.apps.values_mut() {
        let n = u32::try_from(app.partitions.len()).unwrap_or(1).max(1);
        for dup in app.dups.values_mut() {
            for (pidx, part) in dup.parts.iter_mut().enumerate() {
                let k = u32::try_from(pidx).unwrap_or(0) + 1;
                part.reported_lcd = -1;
                part.inited_at = Some(now + restore * k / n);
            }
        }
    }
    drop(state);
    cluster.wakes.leader_changed();
}

fn usable_nodes(state: &State) -> Vec<bool> {
    state
        .nodes
        .iter()
        .map(|n| n.alive && n.listed_alive)
        .collect()
}

fn primary_counts(state: &State) -> Vec<usize> {
    let mut counts = vec![0; state.nodes.len()];
    for p in state.apps.values().flat_map(|a| &a.partitions) {
        counts[p.primary] += 1;
    }
    counts
}

/// The live secondary with the fewest primaries.
fn pick_primary(p: &Partition, usable: &[bool], counts: &[usize]) -> Option<usize> {
    p.secondaries
        .iter()
        .copied()
        .filter(|&n| usable[n])
        .min_by_key(|&n| (counts[n], n))
}

/// A primary's duplicators live on its server: the new primary creates its own at the next
/// duplication sync.
fn reset_duplicators(state: &mut State, table: &str, pidx: usize) {
    if let Some(app) = state.app_by_name_mut(table) {
        for dup in app.dups.values_mut() {
            dup.parts[pidx].drop_duplicator();
        }
    }
}

fn remove_node(state: &mut State, dead: usize, persist: Duration) {
    let usable = usable_nodes(state);
    let mut counts = primary_counts(state);
    let mut moved = Vec::new();
    for app in state.apps.values_mut() {
        for (pidx, p) in app.partitions.iter_mut().enumerate() {
            if p.primary == dead {
                if let Some(to) = pick_primary(p, &usable, &counts) {
                    counts[to] += 1;
                    p.promote(to, false);
                    moved.push((app.name.clone(), pidx, to));
                }
            } else if p.secondaries.contains(&dead) {
                p.secondaries.retain(|&n| n != dead);
                p.ballot += 1;
            }
        }
    }
    for (table, pidx, to) in moved {
        reset_duplicators(state, &table, pidx);
        persisting(state, to, persist);
    }
}

/// A server that is back rejoins the partitions that lack replicas, as a secondary.
fn readd_node(state: &mut State, idx: usize, persist: Duration) {
    let mut joined = false;
    for app in state.apps.values_mut() {
        let want = usize::try_from(app.max_replica_count).unwrap_or(1);
        for p in &mut app.partitions {
            if !p.hosted_on(idx) && 1 + p.secondaries.len() < want {
                p.secondaries.push(idx);
                p.ballot += 1;
                joined = true;
            }
        }
    }
    if joined {
        persisting(state, idx, persist);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::test_support::{cluster, Started};

    #[tokio::test(start_paused = true)]
    async fn the_detector_sleeps_while_every_server_is_as_listed() {
        // Declares a server dead 500 ms after it stopped, looking every 50 ms.
        let c = cluster(SimConfig::fast(Version::V2_5));
        let s = Started::new(|stop| run(c.clone(), stop));
        let at = |ms| s.at(ms);
        let listed = |c: &Cluster| c.lock().nodes[1].listed_alive;
        at(1_003).await;
        assert!(s.woke() <= 1, "nothing to detect: no wake-up");
        set_down(&c, 1, true);
        at(1_549).await;
        assert!(listed(&c));
        at(1_551).await;
        assert!(
            !listed(&c),
            "dead at the first look 500 ms after it stopped"
        );
        set_down(&c, 1, false);
        at(1_599).await;
        assert!(!listed(&c));
        at(1_601).await;
        assert!(listed(&c), "back at the next look");
        let woke = s.woke();
        at(5_000).await;
        assert_eq!(s.woke(), woke, "asleep again");
    }
}
