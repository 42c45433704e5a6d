//! Owns group check on primaries: each primary runs a round every `group_check_interval`,
//! the first as it takes over, and writes an empty mutation when it has prepared nothing
//! for that long (`replica_check.cpp` `init_group_check`/`broadcast_group_check`, v2.5.0 and
//! master). On 2.5 that empty write is what lets a partition's newest mutation be shipped.
//! `group_check_disabled` stops the rounds and `empty_write_disabled` (the primary's server's
//! value, mutable) the empty write (`replica_check.cpp`, `replication_common.cpp`).

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::Cluster;
use super::storage;

/// Runs group check for every primary of `cluster` until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    if cluster.config.group_check_disabled {
        return;
    }
    let interval = cluster.config.group_check_interval;
    let tick = (interval / 20).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = timer.tick() => round(&cluster, interval),
        }
    }
}

/// Runs the rounds that are due on every live primary.
fn round(cluster: &Cluster, interval: Duration) {
    let now = Instant::now();
    let mut state = cluster.lock();
    let alive: Vec<bool> = state.nodes.iter().map(|n| n.alive).collect();
    let empty_write_off: Vec<bool> = state.nodes.iter().map(|n| n.empty_write_disabled).collect();
    for app in state.apps.values_mut() {
        for pidx in 0..app.partitions.len() {
            let p = &mut app.partitions[pidx];
            if !alive.get(p.primary).copied().unwrap_or(false) {
                continue;
            }
            let writes_empty = !empty_write_off.get(p.primary).copied().unwrap_or(false);
            let due = rounds_due(now.duration_since(p.primary_since), interval);
            if due <= p.group_checks {
                continue;
            }
            p.group_checks = due;
            if writes_empty && now.duration_since(p.last_prepare) >= interval {
                storage::apply_empty_write(app, pidx);
            }
        }
    }
}

/// Rounds a primary has run `since` it took over: one at once, then one per interval.
fn rounds_due(since: Duration, interval: Duration) -> u64 {
    let whole = since.as_nanos() / interval.as_nanos().max(1);
    u64::try_from(whole).unwrap_or(u64::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_round_runs_at_once_then_one_per_interval() {
        let i = Duration::from_secs(10);
        assert_eq!(rounds_due(Duration::ZERO, i), 1);
        assert_eq!(rounds_due(Duration::from_millis(9_999), i), 1);
        assert_eq!(rounds_due(Duration::from_secs(10), i), 2);
        assert_eq!(rounds_due(Duration::from_secs(35), i), 4);
    }
}
