//! Tests how long migrator's waits on an env change take against a simulated source, on a
//! paused clock: with every server on time, and with the primary's server missing one config
//! sync — the change set just after it ticked and its next sync call timing out (5 s), so it
//! applies the change only at the first tick after the timeout (`src/sim/fidelity.md`).

use std::time::Duration;

use tokio::time::Instant;

use super::{Awaited, Poller, Tally};
use crate::pegasus::envs::DENY_ENV;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::replica::ReplicaClient;
use crate::sim::{Directory, SimCluster, SimConfig, Version};
use crate::spec::BlockMode;

const EPOCH_MS: u64 = 1_796_083_200_000;

/// A source of one partition whose primary's server just ticked (and may miss its next
/// sync); the change is set on its meta.
struct World {
    sim: SimCluster,
    meta: MetaClient,
    primary: usize,
    t0: Instant,
    _net: crate::net::SimGuard,
    _clock: crate::clock::SimGuard,
}

impl World {
    /// Syncing every `sync`, the primary stalling writes for `stall_ms`; `value` is set as
    /// the deny env just after the primary's server's first tick, and that server's next sync
    /// call is lost if `lose`.
    async fn start(sync: Duration, stall_ms: u64, value: &str, lose: bool) -> Self {
        let net = crate::net::simulate(None);
        let clock = crate::clock::simulate(EPOCH_MS);
        let t0 = Instant::now();
        let config = SimConfig {
            config_sync_interval: sync,
            ..SimConfig::fast(Version::V2_5)
        };
        let sim = SimCluster::start("a", 1, config, &Directory::default())
            .await
            .expect("a simulated cluster");
        sim.create_table("t", 1, 1).expect("table t");
        let primary = sim.cluster().lock().app_by_name("t").expect("t").partitions[0].primary;
        // Server 0 ticks a full period after its start, then every period.
        assert_eq!(primary, 0, "partition 0's primary is on server 0");
        sim.cluster().faults.stall_ms[primary]
            .store(stall_ms, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep_until(t0 + sync + Duration::from_millis(1)).await;
        if lose {
            crate::sim::synctrouble::slow_next(sim.cluster(), primary, 6_000);
        }
        let meta = MetaClient::new(sim.metas(), MetaOptions::default());
        meta.set_app_envs("t", &[(DENY_ENV, value)])
            .await
            .expect("deny set");
        Self {
            sim,
            meta,
            primary,
            t0,
            _net: net,
            _clock: clock,
        }
    }

    /// Milliseconds since the start.
    fn now_ms(&self) -> u64 {
        u64::try_from((Instant::now() - self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    /// When the primary's server applied the deny, in ms since the start.
    fn applied(&self) -> Option<u64> {
        self.sim
            .cluster()
            .lock()
            .deny_log
            .iter()
            .find_map(|e| match e {
                crate::sim::state::DenyEvent::Applied {
                    at_ms,
                    node,
                    deny: Some(_),
                    ..
                } if *node == self.primary => Some(at_ms - EPOCH_MS),
                _ => None,
            })
    }

    /// Polls `awaited` as apply does, with the source's period `sync`, until `deadline`.
    async fn poll(
        &self,
        sync: Duration,
        awaited: Awaited,
        settled_at: Instant,
        deadline: Instant,
    ) -> bool {
        let (probes, patient) = (
            ReplicaClient::new(Duration::from_millis(300)),
            ReplicaClient::new(Duration::from_secs(10)),
        );
        let poller = Poller {
            meta: &self.meta,
            table: "t",
            probes: &probes,
            patient: &patient,
            probe_deadline: Duration::from_millis(300),
            poll: Duration::from_millis(50),
            sync,
        };
        let mut tally = Tally::default();
        poller
            .until_every_partition(awaited, settled_at, deadline, &mut tally)
            .await
    }
}

/// Under `timeout*write`, with the primary stalling every write past the probes' watch, its
/// probes go unanswered before the deny is in force as after: silence must not count before
/// its server has applied the deny. A 4.9 s period: the call at 9.8 s times out at 14.8 s,
/// just after the tick at 14.7 s, which it skips; the deny lands at 19.6 s.
#[tokio::test(start_paused = true)]
async fn timeout_evidence_waits_out_a_server_whose_sync_call_timed_out() {
    let sync = Duration::from_millis(4900);
    let w = World::start(sync, 60_000, "timeout*write", true).await;
    let settled_at = Instant::now() + sync + crate::plan::budget::SYNC_MARGIN;
    let awaited = Awaited::WritesBlocked {
        mode: BlockMode::Timeout,
        settled: false,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    assert!(w.poll(sync, awaited, settled_at, deadline).await);
    let (judged, applied) = (w.now_ms(), w.applied());
    assert!(
        applied.is_some_and(|at| judged >= at),
        "judged in force at {judged} ms; applied on the primary's server: {applied:?}"
    );
}

/// The waits that report whether a change was seen on every primary allow for one failed
/// sync: with a 1 s period, `reconfig*all` set at 1 s reaches the primary's server at the
/// first tick after its call timed out, 7 s.
#[tokio::test(start_paused = true)]
async fn the_wait_for_every_primary_outlasts_a_server_whose_sync_call_timed_out() {
    let sync = Duration::from_secs(1);
    let w = World::start(sync, 0, "reconfig*all", true).await;
    let deadline = Instant::now() + crate::plan::budget::synced_everywhere_within(sync);
    let now = Instant::now();
    let told = w
        .poll(sync, Awaited::ClientsToldToMove, now, deadline)
        .await;
    assert!(
        told,
        "not told by {} ms; applied on the primary's server at {:?} ms",
        w.now_ms(),
        w.applied()
    );
}

/// With every server on time, `timeout*write` is seen in force within what the budget gives
/// it: silence is judged at the start of each poll, and a poll whose probes go unanswered lasts
/// their whole watch.
#[tokio::test(start_paused = true)]
async fn timeout_evidence_comes_within_the_time_the_budget_gives_it() {
    let sync = Duration::from_millis(1182);
    let w = World::start(sync, 0, "timeout*write", false).await;
    let set = Instant::now();
    let settled_at = set + sync + crate::plan::budget::SYNC_MARGIN;
    let awaited = Awaited::WritesBlocked {
        mode: BlockMode::Timeout,
        settled: false,
    };
    let budget = crate::plan::budget::takes_effect(sync, BlockMode::Timeout);
    let deadline = set + Duration::from_secs(60);
    assert!(w.poll(sync, awaited, settled_at, deadline).await);
    let took = Instant::now() - set;
    assert!(
        took <= budget,
        "seen in force {took:?} after the set; the budget gives {budget:?}"
    );
}
