//! Owns duplication sync between each replica server and the meta, every
//! `dup_sync_interval` on the server's own phase (`duplication_sync_timer.cpp`,
//! `replica_duplicator_manager.cpp`, `replica_duplicator.cpp`, `meta_duplication_service.cpp
//! duplication_sync`, `duplication_info.cpp alter_progress`, v2.5.0 and master).
//!
//! A sync does what upstream does, in its order: the server reports, for its primaries, each
//! duplicator's `last_decree` when it differs from the confirmed decree the meta last
//! returned (master adds its last committed decree), and `checkpoint_prepared` in DS_PREPARE;
//! the meta first moves a duplication on if every partition had reported its checkpoint
//! prepared before this request (DS_PREPARE: it sends the follower's create; DS_APP: the
//! follower is healthy → DS_LOG), then applies the report (persisting a higher decree at most
//! every `dup_persist_period`); the reply hands each primary the persisted status: a primary
//! without a duplicator builds one (in DS_PREPARE it asks for the checkpoint), one with a
//! duplicator computes whether its checkpoint is prepared and starts shipping at DS_LOG. So a
//! new duplication reaches DS_LOG about five periods after its add, and each primary starts
//! shipping at its own server's first sync after that.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::{App, Cluster, Dup, DupPartition, State};
use super::ticks::{self, Grid, Stop};
use crate::pegasus::messages::duplication::DuplicationStatus::{self, DS_APP, DS_LOG, DS_PREPARE};

/// Runs node `index`'s duplication sync until `shutdown` turns true: every
/// `dup_sync_interval` while the cluster has a duplication; with none it sleeps until one is
/// added. Servers start at different moments: node `i` of `n` first ticks `(i + 1) / n` of a
/// period after the start (deterministic).
pub async fn run(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let Some(woken) = cluster.wakes.dup_sync(index) else {
        return;
    };
    let period = cluster.config.dup_sync_interval;
    let nodes = u32::try_from(cluster.replicas.len()).unwrap_or(1).max(1);
    let first = period / nodes * (u32::try_from(index).unwrap_or(0) + 1);
    let grid = Grid::new(Instant::now() + first, period);
    let (mut last, mut next) = (None, None);
    loop {
        if next.is_none() && any_duplication(&cluster.lock()) {
            next = Some(grid.first_from(last, ticks::after(Instant::now())));
        }
        let stop = next.map(|k| grid.stop(k, Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = woken.notified(), if next.is_none() => {}
            () = ticks::until(stop.map(Stop::instant)) => {
                if stop.is_some_and(Stop::acts) {
                    sync(&cluster, index);
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

/// What a sync changed that other loops act on.
#[derive(Default)]
struct Woke {
    /// A duplicator was built or learned a status: the engine may ship or start a step.
    engine: bool,
}

/// One duplication sync of live server `node`: its primaries' reports, the meta's handling,
/// and the reply.
pub fn sync(cluster: &Cluster, node: usize) {
    let ctx = Ctx {
        master: cluster.config.version.is_2_6(),
        persist_period: cluster.config.dup_persist_period,
        status_persist: cluster.config.meta_persist_delay,
        checkpoint_flush: cluster.config.checkpoint_delay,
        now: Instant::now(),
    };
    let mut woke = Woke::default();
    let mut state = cluster.lock();
    // A server cut off from the meta skips its duplication sync (`duplication_sync_timer::run`
    // returns while the stub is `NS_Disconnected`).
    if !state
        .nodes
        .get(node)
        .is_some_and(|n| n.alive && !n.trouble.cut_off(ctx.now))
    {
        return;
    }
    for app in state.apps.values_mut() {
        // The meta answers about tables this server is primary of somewhere.
        let here: Vec<usize> = app
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.primary == node)
            .map(|(i, _)| i)
            .collect();
        if here.is_empty() {
            continue;
        }
        let lcds = app_lcds(app);
        for dup in app.dups.values_mut() {
            woke.engine |= sync_dup(dup, &lcds, &here, &ctx);
        }
    }
    drop(state);
    if woke.engine {
        cluster.wakes.duplicators_started();
    }
}

fn app_lcds(app: &App) -> Vec<i64> {
    app.partitions.iter().map(|p| p.last_committed).collect()
}

/// A sync's settings and instant.
struct Ctx {
    master: bool,
    persist_period: Duration,
    status_persist: Duration,
    checkpoint_flush: Duration,
    now: Instant,
}

/// One duplication in one server's sync; true when the engine has something new to do.
fn sync_dup(dup: &mut Dup, lcds: &[i64], here: &[usize], ctx: &Ctx) -> bool {
    let reports: Vec<(usize, i64, bool)> = here
        .iter()
        .filter_map(|&i| report(&dup.parts[i]).map(|(d, prepared)| (i, d, prepared)))
        .collect();
    // The reply carries the status persisted before this sync: a move it starts commits
    // after the follower answers and ZooKeeper stores it.
    let status = dup.committed_status();
    let mut woke = move_status(dup, ctx);
    for (i, decree, prepared) in reports {
        apply_report(&mut dup.parts[i], decree, prepared, lcds[i], ctx);
    }
    for &i in here {
        woke |= reply(&mut dup.parts[i], status, lcds[i], ctx);
    }
    woke
}

/// What the primary reports (`get_duplication_confirms_to_update`): its `last_decree` and
/// `checkpoint_prepared`, when its last decree differs from the confirmed one it last got, or
/// in DS_PREPARE once its checkpoint is prepared.
fn report(part: &DupPartition) -> Option<(i64, bool)> {
    let prepare_news = part.replica_status == DS_PREPARE && part.checkpoint_prepared;
    (part.duplicator && (part.last_decree != part.replica_confirmed || prepare_news))
        .then_some((part.last_decree, part.checkpoint_prepared))
}

/// The meta's first loop: with every partition's checkpoint reported prepared (before this
/// request's reports are applied), DS_PREPARE sends the follower's create and DS_APP moves to
/// DS_LOG once the follower is healthy.
fn move_status(dup: &mut Dup, ctx: &Ctx) -> bool {
    let ready = dup.parts.iter().all(|p| p.meta_prepared);
    if !ready || dup.is_altering() {
        return false;
    }
    match dup.status {
        DS_PREPARE if !dup.busy => {
            dup.create_due = true;
            true
        }
        DS_APP if dup.follower_ready => {
            dup.alter(DS_LOG, ctx.status_persist);
            false
        }
        _ => false,
    }
}

/// The meta's second loop (`alter_progress`): records `checkpoint_prepared` and persists a
/// higher decree at most every `persist_period`.
fn apply_report(part: &mut DupPartition, decree: i64, prepared: bool, lcd: i64, ctx: &Ctx) {
    part.meta_prepared = prepared;
    if ctx.master {
        part.reported_lcd = lcd;
    }
    let may_persist = part
        .persisted_at
        .is_none_or(|t| ctx.now.duration_since(t) >= ctx.persist_period);
    if part.is_inited() && decree > part.confirmed && may_persist {
        part.confirmed = decree;
        part.persisted_at = Some(ctx.now);
    }
}

/// The reply on the primary (`replica_duplicator_manager::sync_duplication`): builds the
/// duplicator, or updates its progress and status; true when it built one or it starts
/// shipping.
fn reply(part: &mut DupPartition, status: DuplicationStatus, lcd: i64, ctx: &Ctx) -> bool {
    if !part.duplicator {
        // A brand-new duplication starts at the log's end; a new primary re-ships from what
        // the meta confirmed.
        part.duplicator = true;
        if part.confirmed < 0 {
            part.start_decree = lcd;
            part.last_decree = lcd;
        } else {
            part.last_decree = part.confirmed;
        }
        part.replica_confirmed = part.confirmed;
        part.replica_status = status;
        if status == DS_PREPARE {
            prepare_checkpoint(part, ctx);
        }
        return true;
    }
    part.replica_confirmed = part.confirmed;
    part.checkpoint_prepared = part.checkpoint_ready_at.is_some_and(|t| ctx.now >= t);
    let was = part.replica_status;
    part.replica_status = status;
    if status == DS_PREPARE {
        prepare_checkpoint(part, ctx);
    }
    status == DS_LOG && was != DS_LOG
}

/// `prepare_dup`: asks for an emergency checkpoint covering the start point (again on every
/// DS_PREPARE reply; one already asked for is not asked again).
fn prepare_checkpoint(part: &mut DupPartition, ctx: &Ctx) {
    if part.checkpoint_ready_at.is_none() {
        part.checkpoint_ready_at = Some(ctx.now + ctx.checkpoint_flush);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::duplication;
    use crate::sim::test_support::{cluster, create, Started};

    fn ctx(at: Instant, persist_period: Duration) -> Ctx {
        Ctx {
            master: true,
            persist_period,
            status_persist: Duration::ZERO,
            checkpoint_flush: Duration::from_millis(100),
            now: at,
        }
    }

    fn dup(status: DuplicationStatus, partitions: usize) -> Dup {
        Dup {
            dupid: 1,
            remote: "b".into(),
            status,
            prev_status: status,
            fail_mode: crate::pegasus::messages::duplication::DuplicationFailMode::FAIL_SLOW,
            create_ts_ms: 0,
            remote_app_name: "t".into(),
            remote_replica_count: 3,
            parts: (0..partitions).map(|_| DupPartition::new(-1)).collect(),
            status_since: Instant::now(),
            busy: false,
            create_due: false,
            follower_ready: false,
            altering_until: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_duplication_takes_five_syncs_to_ship_each_step_on_a_later_sync() {
        let mut d = dup(DS_PREPARE, 1);
        let lcd = [7];
        let mut at = Instant::now();
        let mut step = |d: &mut Dup| {
            at += Duration::from_secs(10);
            sync_dup(d, &lcd, &[0], &ctx(at, Duration::ZERO))
        };
        // 1: the reply builds the duplicator, at the log's end, and asks for a checkpoint.
        assert!(step(&mut d));
        let p = &d.parts[0];
        assert!(p.duplicator && p.replica_status == DS_PREPARE);
        assert_eq!((p.last_decree, p.confirmed), (7, -1));
        assert!(p.checkpoint_ready_at.is_some() && !p.checkpoint_prepared);
        // 2: reports its start; the reply computes "prepared" (the flush is done).
        let _ = step(&mut d);
        let p = &d.parts[0];
        assert_eq!((p.confirmed, p.replica_confirmed), (7, 7));
        assert!(p.checkpoint_prepared && !p.meta_prepared);
        // 3: reports it prepared; the meta checked before applying that report.
        assert!(!step(&mut d));
        assert!(d.parts[0].meta_prepared && !d.create_due);
        // 4: every partition prepared: the meta sends the follower's create.
        assert!(step(&mut d));
        assert!(d.create_due);
        // The engine's create is answered (DS_APP), then the follower is healthy.
        d.create_due = false;
        d.alter(DS_APP, Duration::ZERO);
        d.follower_ready = true;
        // 5: DS_APP with a healthy follower: DS_LOG, persisted after this reply.
        d.altering_until = None;
        let _ = step(&mut d);
        assert_eq!(d.status, DS_LOG);
        assert!(!d.parts[0].ships(), "this reply still carried DS_APP");
        // 6: the primary learns DS_LOG and ships.
        assert!(step(&mut d));
        assert!(d.parts[0].ships());
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_primaries_of_the_syncing_server_learn_a_status() {
        let mut d = dup(DS_LOG, 2);
        for p in &mut d.parts {
            p.duplicator = true;
            p.replica_status = DS_APP;
            p.confirmed = 3;
            p.replica_confirmed = 3;
            p.last_decree = 3;
        }
        let c = ctx(Instant::now(), Duration::ZERO);
        assert!(sync_dup(&mut d, &[3, 3], &[1], &c));
        assert!(!d.parts[0].ships(), "partition 0's server has not synced");
        assert!(d.parts[1].ships());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_primary_builds_its_duplicator_in_the_persisted_status_from_the_confirmed_decree()
    {
        let mut d = dup(DS_LOG, 1);
        d.parts[0].confirmed = 40;
        let c = ctx(Instant::now(), Duration::ZERO);
        assert!(sync_dup(&mut d, &[55], &[0], &c));
        let p = &d.parts[0];
        assert_eq!(p.last_decree, 40, "re-ships from what the meta confirmed");
        assert!(p.ships());
    }

    #[test]
    fn a_stalled_duplication_stops_reporting_so_the_metas_lcd_freezes() {
        let t = Instant::now();
        let c = ctx(t, Duration::ZERO);
        let mut part = DupPartition::new(10);
        part.duplicator = true;
        part.replica_confirmed = -1;
        let report_now = |p: &DupPartition| report(p).map(|(d, _)| d);
        assert_eq!(report_now(&part), Some(10));
        apply_report(&mut part, 10, false, 10, &c);
        part.replica_confirmed = part.confirmed;
        part.last_decree = 15;
        apply_report(&mut part, 15, false, 15, &c);
        part.replica_confirmed = part.confirmed;
        assert_eq!((part.confirmed, part.reported_lcd), (15, 15));
        // Shipping stalls while writes go on: nothing differs, nothing is reported.
        assert_eq!(report_now(&part), None);
    }

    #[test]
    fn the_meta_persists_at_most_once_per_period() {
        let period = Duration::from_secs(5);
        let t = Instant::now();
        let mut part = DupPartition::new(0);
        apply_report(&mut part, 3, false, 3, &ctx(t, period));
        apply_report(
            &mut part,
            7,
            false,
            7,
            &ctx(t + Duration::from_secs(1), period),
        );
        assert_eq!(part.confirmed, 3, "throttled");
        apply_report(
            &mut part,
            7,
            false,
            7,
            &ctx(t + Duration::from_secs(6), period),
        );
        assert_eq!(part.confirmed, 7);
        let mut c = ctx(t, period);
        c.master = false;
        let mut old = DupPartition::new(0);
        apply_report(&mut old, 3, false, 3, &c);
        assert_eq!(old.reported_lcd, -1, "2.5 never reports its lcd");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_duplication_it_sleeps_and_syncs_from_the_tick_after_one_is_added() {
        // Syncs every 100 ms; node 2 of 3 first ticks 100 ms after the start.
        let c = cluster(SimConfig::fast(Version::V2_6));
        let s = Started::new(|stop| run(c.clone(), 2, stop));
        let at = |ms| s.at(ms);
        at(7).await;
        create(&c, "t", 3);
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
        let built = || {
            let state = c.lock();
            let app = state.apps.values().next().expect("t");
            let dup = app.dups.values().next().expect("a duplication");
            let here: Vec<usize> = (0..3).filter(|&i| app.partitions[i].primary == 2).collect();
            assert!(!here.is_empty(), "node 2 is a primary");
            here.iter().all(|&i| dup.parts[i].duplicator)
        };
        at(1_299).await;
        assert!(!built());
        at(1_301).await;
        assert!(built(), "the sync at 1300 ms builds node 2's duplicators");
    }
}
