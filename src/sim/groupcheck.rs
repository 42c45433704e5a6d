//! Owns group check on primaries: each primary runs a round every `group_check_interval`,
//! the first as it takes over, and writes an empty mutation when it has prepared nothing
//! for that long (`replica_check.cpp` `init_group_check`/`broadcast_group_check`, v2.5.0 and
//! master). On 2.5 that empty write is what lets a partition's newest mutation be shipped.
//! `group_check_disabled` stops the rounds and `empty_write_disabled` (the primary's server's
//! value, mutable) the empty write (`replica_check.cpp`, `replication_common.cpp`).
//!
//! The loop keeps each primary's next round in a schedule and wakes only at the ticks of its
//! timer (a twentieth of the interval, 5–100 ms) at which a round is due, so the rounds run at
//! the instants a timer checking every partition at every tick ran them; an idle partition
//! costs one schedule entry per interval. A write does not move a round, only what the round
//! does. A primary whose server is down drops out until the server restarts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::{Cluster, Partition, State};
use super::storage;
use super::ticks::{self, Grid, Stop};

/// Runs group check for every primary of `cluster` until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    if cluster.config.group_check_disabled {
        return;
    }
    let interval = cluster.config.group_check_interval;
    // The ticks of the fixed timer this loop had: rounds run only on them.
    let grid = Grid::new(Instant::now(), tick(interval));
    let mut rounds = Schedule::of(&cluster.lock(), interval);
    let mut last = None;
    loop {
        let now = Instant::now();
        let next = rounds
            .first()
            .map(|due| grid.first_from(last, due.max(now)));
        let stop = next.map(|k| grid.stop(k, now));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = cluster.wakes.group_check().notified() => {
                rounds = rounds.again(&cluster.lock(), interval, Instant::now());
            }
            () = ticks::until(stop.map(Stop::instant)) => {
                if stop.is_some_and(Stop::acts) {
                    round(&cluster, interval, &mut rounds);
                    last = next;
                }
            }
        }
    }
}

/// The period of the timer that runs the rounds: a twentieth of the interval, 5–100 ms.
fn tick(interval: Duration) -> Duration {
    (interval / 20).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

/// Runs the rounds that are due, on primaries whose server runs.
fn round(cluster: &Cluster, interval: Duration, rounds: &mut Schedule) {
    let now = Instant::now();
    let mut state = cluster.lock();
    let alive: Vec<bool> = state.nodes.iter().map(|n| n.alive).collect();
    let empty_write_off: Vec<bool> = state.nodes.iter().map(|n| n.empty_write_disabled).collect();
    let mut logged = false;
    for (app_id, pidx) in rounds.take_due(now) {
        let Some(app) = state.apps.get_mut(&app_id) else {
            continue;
        };
        let Some(p) = app.partitions.get_mut(pidx) else {
            continue;
        };
        if !alive.get(p.primary).copied().unwrap_or(false) {
            // Its rounds wait for the server: a restart schedules them again.
            continue;
        }
        let writes_empty = !empty_write_off.get(p.primary).copied().unwrap_or(false);
        let due = rounds_due(now.duration_since(p.primary_since), interval);
        if due > p.group_checks {
            p.group_checks = due;
            if writes_empty && now.duration_since(p.last_prepare) >= interval {
                storage::apply_empty_write(app, pidx);
                logged |= app.is_duplicating();
            }
        }
        rounds.push(next_round(&app.partitions[pidx], interval), app_id, pidx);
    }
    drop(state);
    if logged {
        cluster.wakes.logged();
    }
}

/// Each primary's next group-check round, earliest first.
#[derive(Debug, Default)]
struct Schedule(BinaryHeap<Reverse<Round>>);

/// A partition's next round: when the loop runs it, and when it is due by the partition's
/// state (later only for a round that came due by a change the tick at its instant ran
/// before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Round {
    at: Instant,
    app_id: i32,
    pidx: usize,
    due: Instant,
}

impl Schedule {
    /// The next round of every partition whose primary's server runs (dropped tables too:
    /// their replicas still run group check).
    fn of(state: &State, interval: Duration) -> Self {
        let alive: Vec<bool> = state.nodes.iter().map(|n| n.alive).collect();
        let mut rounds = Self::default();
        for app in state.apps.values() {
            for (pidx, p) in app.partitions.iter().enumerate() {
                if alive.get(p.primary).copied().unwrap_or(false) {
                    rounds.push(next_round(p, interval), app.id, pidx);
                }
            }
        }
        rounds
    }

    /// The schedule after `state` changed at `now`: a round due when it was before keeps its
    /// instant; one new to the schedule (a new table or primary, a server back) runs from the
    /// next tick (see `ticks::after`).
    fn again(&self, state: &State, interval: Duration, now: Instant) -> Self {
        let before: HashMap<(i32, usize), Round> = self
            .0
            .iter()
            .map(|Reverse(r)| ((r.app_id, r.pidx), *r))
            .collect();
        let mut rounds = Self::default();
        for Reverse(mut round) in Self::of(state, interval).0 {
            match before.get(&(round.app_id, round.pidx)) {
                Some(was) if was.due == round.due => round.at = was.at,
                _ => round.at = round.due.max(ticks::after(now)),
            }
            rounds.0.push(Reverse(round));
        }
        rounds
    }

    fn push(&mut self, due: Instant, app_id: i32, pidx: usize) {
        self.0.push(Reverse(Round {
            at: due,
            app_id,
            pidx,
            due,
        }));
    }

    /// When the earliest round runs.
    fn first(&self) -> Option<Instant> {
        self.0.peek().map(|Reverse(r)| r.at)
    }

    /// The partitions whose round runs at `now`, in table and partition order (the order the
    /// rounds always ran in).
    fn take_due(&mut self, now: Instant) -> Vec<(i32, usize)> {
        let mut due = Vec::new();
        while self.0.peek().is_some_and(|Reverse(r)| r.at <= now) {
            if let Some(Reverse(r)) = self.0.pop() {
                due.push((r.app_id, r.pidx));
            }
        }
        due.sort_unstable();
        due
    }
}

/// When the current primary of `p` runs its next round: its rounds run from `primary_since`,
/// one per interval, and `group_checks` of them have run.
fn next_round(p: &Partition, interval: Duration) -> Instant {
    let ran = u32::try_from(p.group_checks).unwrap_or(u32::MAX);
    p.primary_since + interval * ran
}

/// Rounds a primary has run `since` it took over: one at once, then one per interval.
fn rounds_due(since: Duration, interval: Duration) -> u64 {
    let whole = since.as_nanos() / interval.as_nanos().max(1);
    u64::try_from(whole).unwrap_or(u64::MAX).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::liveness;
    use crate::sim::test_support::{cluster, create, Counted, History};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_first_round_runs_at_once_then_one_per_interval() {
        let i = Duration::from_secs(10);
        assert_eq!(rounds_due(Duration::ZERO, i), 1);
        assert_eq!(rounds_due(Duration::from_millis(9_999), i), 1);
        assert_eq!(rounds_due(Duration::from_secs(10), i), 2);
        assert_eq!(rounds_due(Duration::from_secs(35), i), 4);
    }

    /// The loop as it was before it kept a schedule: a fixed tick that looked at every
    /// partition. The tests hold the schedule to it.
    async fn fixed_tick(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        let interval = cluster.config.group_check_interval;
        let mut timer = tokio::time::interval(tick(interval));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = timer.tick() => every_partition(&cluster, interval),
            }
        }
    }

    fn every_partition(cluster: &Cluster, interval: Duration) {
        let now = Instant::now();
        let mut state = cluster.lock();
        let alive: Vec<bool> = state.nodes.iter().map(|n| n.alive).collect();
        let off: Vec<bool> = state.nodes.iter().map(|n| n.empty_write_disabled).collect();
        for app in state.apps.values_mut() {
            for pidx in 0..app.partitions.len() {
                let p = &mut app.partitions[pidx];
                if !alive[p.primary] {
                    continue;
                }
                let due = rounds_due(now.duration_since(p.primary_since), interval);
                if due <= p.group_checks {
                    continue;
                }
                p.group_checks = due;
                if !off[p.primary] && now.duration_since(p.last_prepare) >= interval {
                    storage::apply_empty_write(app, pidx);
                }
            }
        }
    }

    /// What happens to a cluster during a test, at a millisecond from the start.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        Create(&'static str, i32),
        Write(&'static str, usize),
        Failover(&'static str, usize),
        Down(usize, bool),
        EmptyWriteOff(usize, bool),
    }

    fn apply(c: &Cluster, event: Event) {
        match event {
            Event::Create(name, partitions) => {
                create(c, name, partitions);
            }
            Event::Write(name, pidx) => {
                let mut state = c.lock();
                storage::take_decree(state.app_by_name_mut(name).expect("table"), pidx);
            }
            Event::Failover(name, pidx) => {
                liveness::failover(c, name, pidx).expect("a live secondary");
            }
            Event::Down(node, down) => liveness::set_down(c, node, down),
            Event::EmptyWriteOff(node, off) => c.lock().nodes[node].empty_write_disabled = off,
        }
    }

    /// Each partition's (decree, last prepare in ms, rounds run, primary), as it changed.
    type Histories = BTreeMap<(i32, usize), History<(i64, u128, u64, usize)>>;

    /// Plays `events` on every cluster at once for `ms` milliseconds, recording each one's
    /// partitions every millisecond.
    async fn play(clusters: &[Arc<Cluster>], events: &[(u64, Event)], ms: u64) -> Vec<Histories> {
        let t0 = Instant::now();
        let mut out = vec![Histories::new(); clusters.len()];
        for at in 0..=ms {
            tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
            for (c, seen) in clusters.iter().zip(&mut out) {
                for (_, event) in events.iter().filter(|(when, _)| *when == at) {
                    apply(c, *event);
                }
                let state = c.lock();
                for app in state.apps.values() {
                    for (pidx, p) in app.partitions.iter().enumerate() {
                        let prepared = p.last_prepare.duration_since(t0).as_millis();
                        let now = (p.last_committed, prepared, p.group_checks, p.primary);
                        seen.entry((app.id, pidx)).or_default().see(now);
                    }
                }
            }
        }
        out
    }

    fn config() -> SimConfig {
        // Rounds every 300 ms on a 15 ms tick.
        SimConfig::fast(Version::V2_5)
    }

    #[tokio::test(start_paused = true)]
    async fn the_rounds_run_at_the_instants_the_fixed_tick_ran_them() {
        let (old, new) = (cluster(config()), cluster(config()));
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(fixed_tick(old.clone(), stopped.clone()));
        tokio::spawn(run(new.clone(), stopped));
        // Off the 15 ms grid, so that no event shares an instant with a tick.
        let events = [
            (7, Event::Create("t", 4)),
            (124, Event::Create("u", 2)),
            (512, Event::Write("t", 1)),
            (1_333, Event::Write("u", 0)),
            (1_717, Event::Failover("t", 2)),
            (2_207, Event::Write("t", 1)),
            (2_404, Event::Down(1, true)),
            (2_888, Event::Down(1, false)),
            (3_101, Event::EmptyWriteOff(0, true)),
            (3_601, Event::EmptyWriteOff(0, false)),
        ];
        let seen = play(&[old, new], &events, 4_500).await;
        assert_eq!(seen[0], seen[1]);
        let decrees: i64 = seen[0].values().map(|h| h.0.last().expect("seen").0).sum();
        assert!(decrees > 60, "empty writes were written: {decrees}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_partition_writes_empty_each_interval_and_a_write_puts_it_off() {
        let c = cluster(config());
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(run(c.clone(), stopped));
        let seen = play(
            std::slice::from_ref(&c),
            &[(7, Event::Create("t", 1)), (700, Event::Write("t", 0))],
            1_300,
        )
        .await;
        let mut decrees = History::default();
        for (decree, prepared, ..) in &seen[0][&(1, 0)].0 {
            decrees.see((*decree, *prepared));
        }
        // Created at 7 ms, first round at the next tick (15 ms); a round a period later writes
        // empty at the tick that follows 307 ms, and again a period after it. The write at
        // 700 ms leaves the round at 915 ms nothing to do: the next empty write is at 1215 ms.
        assert_eq!(
            decrees.0,
            [(0, 7), (1, 315), (2, 615), (3, 700), (4, 1_215)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_cluster_wakes_once_per_round_not_at_every_tick_or_for_every_partition() {
        let (old, new) = (cluster(config()), cluster(config()));
        let (_stop, stopped) = watch::channel(false);
        let polls = |c: &Arc<Cluster>, fixed: bool| {
            let n = Arc::new(AtomicU64::new(0));
            if fixed {
                tokio::spawn(Counted::new(
                    fixed_tick(c.clone(), stopped.clone()),
                    n.clone(),
                ));
            } else {
                tokio::spawn(Counted::new(run(c.clone(), stopped.clone()), n.clone()));
            }
            n
        };
        let (old_polls, new_polls) = (polls(&old, true), polls(&new, false));
        // 24 partitions created at one instant share their rounds' instants.
        let events = [
            (7, Event::Create("a", 8)),
            (7, Event::Create("b", 8)),
            (7, Event::Create("c", 8)),
        ];
        play(&[old, new], &events, 3_000).await;
        let (old_polls, new_polls) = (
            old_polls.load(Ordering::Relaxed),
            new_polls.load(Ordering::Relaxed),
        );
        // 3 s is 200 ticks and 10 periods: the schedule wakes at start, once for the new
        // tables, and twice per round: a tick before it (see `ticks::Stop`) and at it.
        assert!(old_polls >= 200, "the fixed tick woke {old_polls} times");
        assert!(
            new_polls <= 2 + 2 * 11,
            "the schedule woke {new_polls} times"
        );
    }
}
