//! Owns config sync: each replica server applies the meta's app envs (and so
//! `replica.deny_client_request`) only when its config-sync timer fires, on its own phase,
//! for the partitions it hosts, primaries and secondaries alike (`replica_stub.cpp`
//! `query_configuration_by_node`, `replica::on_config_sync`, v2.5.0 and master).
//!
//! The timer re-arms with `config_sync_interval_ms` as the flag stands when a period ends on
//! v2.5.0 (`/updateConfig` calls `timer_task::update_interval`); on master `/updateConfig`
//! reaches the metrics service's no-op hook instead, so the period never changes. A server
//! syncs at once when it (re)starts, then every period.
//!
//! The loop sleeps from one sync to the next; a restart or a delayed sync wakes it, and it
//! acts at the instant the loop it replaced, which looked at the server every twentieth of a
//! period (2–50 ms), would have.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::state::{Cluster, Deny, DenyEvent, DENY_ENV};
use super::ticks::{self, Stop};

/// Runs node `index`'s config sync until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let Some(woken) = cluster.wakes.config_sync(index) else {
        return;
    };
    let started = cluster.config.config_sync_interval;
    let nodes = u32::try_from(cluster.replicas.len()).unwrap_or(1).max(1);
    let mut timer = Timer {
        // Servers start at different moments; spread their phases over one interval.
        phase: started / nodes * u32::try_from(index).unwrap_or(0),
        started,
        poll: (started / 20).clamp(Duration::from_millis(2), Duration::from_millis(50)),
        epoch: None,
        next: Instant::now(),
        polled: Instant::now(),
    };
    // The first look is at once.
    let mut wake = Some(Instant::now());
    loop {
        let stop = wake.map(|at| timer.stop(at, Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = woken.notified() => {
                let poll = timer.poll_after_change(Instant::now());
                wake = Some(wake.map_or(poll, |w| w.min(poll)));
            }
            () = ticks::until(stop.map(Stop::instant)) => {
                if !stop.is_some_and(Stop::acts) {
                    continue;
                }
                match timer.look(&cluster, index) {
                    Look::Gone => break,
                    Look::Down => wake = None,
                    Look::Up => wake = Some(timer.sync_poll()),
                }
            }
        }
    }
}

/// What a look at the server found.
enum Look {
    /// No such server.
    Gone,
    /// Stopped: nothing happens until it restarts.
    Down,
    /// Running: its next sync is at `Timer::next`.
    Up,
}

/// One server's config-sync timer, as a loop that polled the server every `poll` (a
/// twentieth of the period, 2–50 ms) ran it. A look between syncs does something only when
/// the server restarted or its sync was put off, and both wake the loop, so it looks only at
/// the poll instants at which there is something to do.
struct Timer {
    phase: Duration,
    started: Duration,
    poll: Duration,
    /// The server's epoch at the last look; `None` before the first.
    epoch: Option<u64>,
    /// When the next sync is due.
    next: Instant,
    /// When the last look was: the polls went on from there.
    polled: Instant,
}

impl Timer {
    /// The first poll after the last look and at or after `at`.
    fn poll_at_or_after(&self, at: Instant) -> Instant {
        ticks::poll_wake(self.polled, self.next, self.poll, at)
    }

    /// The poll that finds a restart or a delay made at `now`: the next one (a poll at `now`
    /// ran first, see `ticks::after`), or at once for a stopped server whose sync was due,
    /// which the polling loop looked at without sleeping.
    fn poll_after_change(&self, now: Instant) -> Instant {
        if now >= self.next {
            now
        } else {
            self.poll_at_or_after(ticks::after(now))
        }
    }

    /// Where to sleep to on the way to the poll at `at`.
    fn stop(&self, at: Instant, now: Instant) -> Stop {
        ticks::poll_stop(self.polled, self.next, self.poll, at, now)
    }

    /// The poll that syncs, unless a restart or a delay comes first.
    fn sync_poll(&self) -> Instant {
        self.poll_at_or_after(self.next)
    }

    /// One look at the server, as each poll took it.
    fn look(&mut self, cluster: &Cluster, index: usize) -> Look {
        let now = Instant::now();
        self.polled = now;
        let Some((alive, now_epoch, flag_ms)) = node_facts(cluster, index) else {
            return Look::Gone;
        };
        if !alive {
            return Look::Down;
        }
        if self.epoch != Some(now_epoch) {
            // (Re)started: sync on connecting to the meta; the first period starts now. Only
            // the server's first start (epoch 0) takes the spread phase: a restart that came
            // before this loop's first look is still a restart, with a full period.
            let first = now_epoch == 0;
            self.epoch = Some(now_epoch);
            sync(cluster, index);
            self.next = now
                + if first {
                    self.phase.max(self.poll)
                } else {
                    self.started
                };
            return Look::Up;
        }
        let late = cluster.faults.late_sync_ms[index].swap(0, std::sync::atomic::Ordering::Relaxed);
        if late > 0 {
            // The sync RPC found the meta busy, or its previous one still pending: the next
            // one comes at least `late` from now. Causes that overlap do not add up.
            self.next = self.next.max(now + Duration::from_millis(late));
            return Look::Up;
        }
        if now >= self.next {
            sync(cluster, index);
            let period = if cluster.config.replica_version(index).is_2_6() {
                self.started
            } else {
                Duration::from_millis(u64::from(flag_ms))
            };
            self.next += period;
        }
        Look::Up
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::liveness;
    use crate::sim::test_support::{cluster, Counted, History};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The loop as it was before it slept between syncs: a look every poll. The test holds
    /// the new loop to it.
    async fn polling(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let started = cluster.config.config_sync_interval;
        let phase = started / 3 * u32::try_from(index).unwrap_or(0);
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
                let first = epoch.is_none();
                epoch = Some(now_epoch);
                sync(&cluster, index);
                next = Instant::now() + if first { phase.max(poll) } else { started };
                continue;
            }
            let late = cluster.faults.late_sync_ms[index].swap(0, Ordering::Relaxed);
            if late > 0 {
                next = next.max(Instant::now() + Duration::from_millis(late));
                continue;
            }
            if Instant::now() >= next {
                sync(&cluster, index);
                next += Duration::from_millis(u64::from(flag_ms));
            }
        }
    }

    /// What happens to a cluster's servers during the test.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        Late(usize, u64),
        Down(usize, bool),
        Period(usize, u32),
    }

    /// Plays `events` (at milliseconds from the start) on every cluster for `ms`
    /// milliseconds; returns, per cluster and server, the wall times of its syncs.
    async fn play(clusters: &[Arc<Cluster>], events: &[(u64, Event)], ms: u64) -> Vec<Syncs> {
        let t0 = Instant::now();
        let mut out: Vec<Syncs> = vec![vec![History::default(); 3]; clusters.len()];
        for at in 0..=ms {
            tokio::time::sleep_until(t0 + Duration::from_millis(at)).await;
            for (c, seen) in clusters.iter().zip(&mut out) {
                for (_, event) in events.iter().filter(|(when, _)| *when == at) {
                    match *event {
                        Event::Late(node, ms) => delay_next(c, node, ms),
                        Event::Down(node, down) => liveness::set_down(c, node, down),
                        Event::Period(node, ms) => {
                            c.lock().nodes[node].config_sync_interval_ms = ms
                        }
                    }
                }
                for (node, history) in c.lock().nodes.iter().zip(seen.iter_mut()) {
                    history.see(node.last_sync_ms);
                }
            }
        }
        out
    }

    type Syncs = Vec<History<u64>>;

    #[tokio::test(start_paused = true)]
    async fn syncs_come_when_the_polling_loop_made_them_and_it_sleeps_between() {
        let _clock = crate::clock::simulate(1_796_083_200_000);
        // Config sync every 100 ms, polled every 5 ms; servers at phases 0, 33 and 67 ms.
        let (old, new) = (
            cluster(SimConfig::fast(Version::V2_5)),
            cluster(SimConfig::fast(Version::V2_5)),
        );
        let (_stop, stopped) = watch::channel(false);
        let (old_polls, new_polls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        for node in 0..3 {
            let polls = Counted::new(
                polling(old.clone(), node, stopped.clone()),
                old_polls.clone(),
            );
            tokio::spawn(polls);
            tokio::spawn(Counted::new(
                run(new.clone(), node, stopped.clone()),
                new_polls.clone(),
            ));
        }
        let events = [
            (407, Event::Late(1, 230)),
            // Down and back between two of its syncs (the polling loop spun once a stopped
            // server's sync was due, and under a paused clock that would never end).
            (1_203, Event::Down(2, true)),
            (1_233, Event::Down(2, false)),
            (2_011, Event::Period(0, 50)),
            (2_507, Event::Late(0, 120)),
            (2_509, Event::Late(0, 30)),
        ];
        let seen = play(&[old, new], &events, 3_000).await;
        assert_eq!(seen[0], seen[1]);
        assert!(
            seen[0].iter().all(|syncs| syncs.0.len() > 20),
            "{:?}",
            seen[0]
        );
        let (old_polls, new_polls) = (
            old_polls.load(Ordering::Relaxed),
            new_polls.load(Ordering::Relaxed),
        );
        assert!(
            new_polls * 4 < old_polls,
            "the loop woke {new_polls} times, the polling one {old_polls}"
        );
    }
}
