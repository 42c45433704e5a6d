//! Owns duplication sync between primaries and the meta, every `dup_sync_interval`
//! (`duplication_sync_timer.cpp`, `meta_duplication_service.cpp duplication_sync`,
//! `duplication_info.cpp alter_progress`, v2.5.0 and master): a primary creates its
//! duplicators here; it reports `last_decree` when it differs from the confirmed decree the
//! meta last returned (master adds its last committed decree); the meta persists a higher
//! decree at most every `dup_persist_period` and returns what it has stored.

use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::{Cluster, DupPartition, State};
use super::ticks::{self, Grid, Stop};

/// Runs duplication sync until `shutdown` turns true: every `dup_sync_interval` while the
/// cluster has a duplication; with none it sleeps until one is added.
pub async fn run(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let period = cluster.config.dup_sync_interval;
    let grid = Grid::new(Instant::now() + period, period);
    let (mut last, mut next) = (None, None);
    loop {
        if next.is_none() && any_duplication(&cluster.lock()) {
            next = Some(grid.first_from(last, ticks::after(Instant::now())));
        }
        let stop = next.map(|k| grid.stop(k, Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = cluster.wakes.dup_sync().notified(), if next.is_none() => {}
            () = ticks::until(stop.map(Stop::instant)) => {
                if stop.is_some_and(Stop::acts) {
                    sync(&cluster);
                    last = next;
                    next = any_duplication(&cluster.lock())
                        .then(|| grid.first_from(last, Instant::now()));
                }
            }
        }
    }
}

/// Whether some table duplicates (a sync of a cluster without one does nothing).
fn any_duplication(state: &State) -> bool {
    state.apps.values().any(|a| !a.dups.is_empty())
}

/// One duplication sync of every live primary.
pub fn sync(cluster: &Cluster) {
    let master = cluster.config.version.is_2_6();
    let persist_period = cluster.config.dup_persist_period;
    let now = Instant::now();
    let mut state = cluster.lock();
    // A server cut off from the meta skips its duplication sync (`duplication_sync_timer::run`
    // returns while the stub is `NS_Disconnected`).
    let alive: Vec<bool> = state
        .nodes
        .iter()
        .map(|n| n.alive && !n.trouble.cut_off(now))
        .collect();
    let mut started = false;
    for app in state.apps.values_mut() {
        let partitions = &app.partitions;
        for dup in app.dups.values_mut() {
            for (part, p) in dup.parts.iter_mut().zip(partitions) {
                if !alive.get(p.primary).copied().unwrap_or(false) {
                    continue;
                }
                started |= sync_partition(part, p.last_committed, master, persist_period, now);
            }
        }
    }
    drop(state);
    if started {
        cluster.wakes.duplicators_started();
    }
}

/// Syncs one partition; true when its primary created its duplicator here.
fn sync_partition(
    part: &mut DupPartition,
    lcd: i64,
    master: bool,
    persist_period: std::time::Duration,
    now: Instant,
) -> bool {
    if !part.duplicator {
        // A new primary's duplicator starts from what the meta confirmed (it re-ships the
        // rest); a brand-new duplication from its checkpoint.
        part.duplicator = true;
        part.last_decree = if part.confirmed >= 0 {
            part.confirmed
        } else {
            part.start_decree
        };
        part.replica_confirmed = part.confirmed;
        return true;
    }
    if part.last_decree != part.replica_confirmed {
        if master {
            part.reported_lcd = lcd;
        }
        let may_persist = part
            .persisted_at
            .is_none_or(|t| now.duration_since(t) >= persist_period);
        if part.is_inited() && part.last_decree > part.confirmed && may_persist {
            part.confirmed = part.last_decree;
            part.persisted_at = Some(now);
        }
    }
    part.replica_confirmed = part.confirmed;
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::duplication;
    use crate::sim::test_support::{cluster, create, Started};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn without_a_duplication_it_sleeps_and_syncs_from_the_tick_after_one_is_added() {
        // Syncs every 100 ms, the first 100 ms after the start.
        let c = cluster(SimConfig::fast(Version::V2_6));
        let s = Started::new(|stop| run(c.clone(), stop));
        let at = |ms| s.at(ms);
        at(7).await;
        create(&c, "t", 2);
        let woke = s.woke();
        at(1_250).await;
        assert_eq!(s.woke(), woke, "no duplication: no wake-up");
        c.directory.insert(
            "b",
            crate::sim::Peer {
                metas: vec![],
                cluster_id: 2,
            },
        );
        let q = crate::pegasus::messages::duplication::AddDuplicationRequest {
            app_name: "t".into(),
            remote_cluster_name: "b".into(),
            ..Default::default()
        };
        assert!(duplication::add(&c, &q).appid > 0, "added");
        let started = || {
            c.lock().apps.values().all(|a| {
                a.dups
                    .values()
                    .all(|d| d.parts.iter().all(|p| p.duplicator))
            })
        };
        at(1_299).await;
        assert!(!started());
        at(1_301).await;
        assert!(started(), "the sync at 1300 ms creates the duplicators");
    }

    #[test]
    fn a_stalled_duplication_stops_reporting_so_the_metas_lcd_freezes() {
        let period = Duration::from_millis(0);
        let mut part = DupPartition::new(10);
        let t = Instant::now();
        assert!(sync_partition(&mut part, 10, true, period, t), "creates it");
        assert!(part.duplicator);
        part.last_decree = 15;
        assert!(!sync_partition(&mut part, 15, true, period, t));
        assert_eq!((part.confirmed, part.reported_lcd), (15, 15));
        // Shipping stalls while writes go on: nothing differs, nothing is reported.
        let _ = sync_partition(&mut part, 40, true, period, t);
        assert_eq!((part.confirmed, part.reported_lcd), (15, 15));
    }

    #[test]
    fn the_meta_persists_at_most_once_per_period() {
        let period = Duration::from_secs(5);
        let mut part = DupPartition::new(0);
        let t = Instant::now();
        let _ = sync_partition(&mut part, 0, false, period, t);
        part.last_decree = 3;
        let _ = sync_partition(&mut part, 3, false, period, t);
        part.last_decree = 7;
        let _ = sync_partition(&mut part, 7, false, period, t + Duration::from_secs(1));
        assert_eq!(part.confirmed, 3, "throttled");
        assert_eq!(part.replica_confirmed, 3);
        let _ = sync_partition(&mut part, 7, false, period, t + Duration::from_secs(6));
        assert_eq!(part.confirmed, 7);
        assert_eq!(part.reported_lcd, -1, "2.5 never reports its lcd");
    }
}
