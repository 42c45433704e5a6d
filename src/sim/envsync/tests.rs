//! Tests the config-sync stub on a paused clock: every sync of one server and when each of its
//! replicas applied the deny env, on time and for each cause of a late sync (`synctrouble.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::run;
use crate::sim::config::{SimConfig, Version};
use crate::sim::liveness;
use crate::sim::state::{Cluster, DenyEvent, DENY_ENV};
use crate::sim::synctrouble;
use crate::sim::test_support::{cluster, create, Started};

const EPOCH_MS: u64 = 1_796_083_200_000;
/// The server the tests watch: with a 300 ms period its timer ticks at 100, 400, 700… ms.
const NODE: usize = 1;

/// What happens to the cluster during a test.
#[derive(Debug, Clone, Copy)]
enum Event {
    Deny(Option<&'static str>),
    Slow(u64),
    Busy(u64),
    Stale(usize, u64),
    Cut(u64),
    Down(bool),
}

/// A cluster of three servers syncing every 300 ms (RPC timeout 1 s), with table `t` of two
/// partitions, and the sync loops of its servers running.
fn setup(tweak: impl FnOnce(&mut SimConfig)) -> (Arc<Cluster>, i32, Vec<Started>) {
    let mut config = SimConfig::fast(Version::V2_5);
    config.config_sync_interval = Duration::from_millis(300);
    config.config_sync_rpc_timeout = Duration::from_secs(1);
    tweak(&mut config);
    let c = cluster(config);
    let id = create(&c, "t", 2);
    let loops = (0..3)
        .map(|node| {
            let c = c.clone();
            Started::new(move |stop| run(c, node, stop))
        })
        .collect();
    (c, id, loops)
}

fn fire(c: &Cluster, app: i32, event: Event) {
    match event {
        Event::Deny(value) => {
            let mut state = c.lock();
            let envs = &mut state.apps.get_mut(&app).expect("table t").envs;
            match value {
                Some(v) => envs.insert(DENY_ENV.into(), v.into()),
                None => envs.remove(DENY_ENV),
            };
        }
        Event::Slow(ms) => synctrouble::slow_next(c, NODE, ms),
        Event::Busy(ms) => synctrouble::busy(c, NODE, ms),
        Event::Stale(pidx, ms) => synctrouble::stale(c, NODE, "t", pidx, ms).expect("t"),
        Event::Cut(ms) => synctrouble::cut_off(c, NODE, ms),
        Event::Down(down) => liveness::set_down(c, NODE, down),
    }
}

/// What server `NODE` did: when it synced, and when each replica applied a deny change
/// (partition, deny set or not), in ms from the start.
#[derive(Debug, Default)]
struct Seen {
    syncs: Vec<u64>,
    applied: Vec<(u64, usize, bool)>,
}

/// Plays `events` (at ms from the start) for `ms` milliseconds, looking every millisecond.
async fn play(c: &Cluster, app: i32, loops: &[Started], events: &[(u64, Event)], ms: u64) -> Seen {
    let mut seen = Seen::default();
    for at in 0..=ms {
        loops[0].at(at).await;
        for (_, e) in events.iter().filter(|(when, _)| *when == at) {
            fire(c, app, *e);
        }
        let last = c.lock().nodes[NODE].last_sync_ms.saturating_sub(EPOCH_MS);
        if c.lock().nodes[NODE].last_sync_ms > 0 && seen.syncs.last() != Some(&last) {
            seen.syncs.push(last);
        }
    }
    for e in &c.lock().deny_log {
        if let DenyEvent::Applied {
            at_ms,
            node: NODE,
            pidx,
            deny,
            ..
        } = e
        {
            seen.applied
                .push((at_ms.saturating_sub(EPOCH_MS), *pidx, deny.is_some()));
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn a_server_syncs_on_connecting_then_at_every_tick_and_again_at_once_after_a_restart() {
    let _clock = crate::clock::simulate(EPOCH_MS);
    let (c, app, loops) = setup(|_| {});
    let events = [
        (200, Event::Deny(Some("reconfig*write"))),
        (820, Event::Down(true)),
        (850, Event::Down(false)),
    ];
    let seen = play(&c, app, &loops, &events, 1_500).await;
    assert_eq!(seen.syncs, [0, 100, 400, 700, 850, 1150, 1450]);
    assert_eq!(
        seen.applied,
        [
            (400, 0, true),
            (400, 1, true),
            // The process's death forgets it; the sync on connecting applies it again.
            (820, 0, false),
            (820, 1, false),
            (850, 0, true),
            (850, 1, true),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_skips_the_ticks_it_overlaps_and_a_lost_one_leaves_the_change_to_a_later_tick()
{
    let _clock = crate::clock::simulate(EPOCH_MS);
    let (c, app, loops) = setup(|_| {});
    let events = [
        // The call at 400 is answered at 850 with what the meta held at 400.
        (150, Event::Slow(450)),
        (500, Event::Deny(Some("reconfig*write"))),
        // The call at 1300 times out at 2300; the ticks up to then are skipped.
        (1_050, Event::Slow(5_000)),
        (1_200, Event::Deny(None)),
    ];
    let seen = play(&c, app, &loops, &events, 2_900).await;
    assert_eq!(seen.syncs, [0, 100, 850, 1000, 2500, 2800]);
    assert_eq!(
        seen.applied,
        [
            (1000, 0, true),
            (1000, 1, true),
            (2500, 0, false),
            (2500, 1, false)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_meta_is_asked_again_every_500_ms_while_the_ticks_wait() {
    let _clock = crate::clock::simulate(EPOCH_MS);
    let (c, app, loops) = setup(|_| {});
    let events = [
        // Busy until 1250: the tick at 400 meets it, then the retries at 900 and 1400.
        (150, Event::Busy(1_100)),
        (1_350, Event::Deny(Some("reconfig*write"))),
    ];
    let seen = play(&c, app, &loops, &events, 1_700).await;
    assert_eq!(seen.syncs, [0, 100, 1400, 1600]);
    assert_eq!(
        seen.applied,
        [(1400, 0, true), (1400, 1, true)],
        "the retry applies it before the next tick would have"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partition_whose_reply_comes_at_an_older_ballot_applies_nothing_until_a_later_sync() {
    let _clock = crate::clock::simulate(EPOCH_MS);
    let (c, app, loops) = setup(|_| {});
    let events = [
        (150, Event::Stale(0, 600)),
        (200, Event::Deny(Some("timeout*write"))),
    ];
    let seen = play(&c, app, &loops, &events, 1_100).await;
    assert_eq!(seen.syncs, [0, 100, 400, 700, 1000]);
    assert_eq!(seen.applied, [(400, 1, true), (1000, 0, true)]);
}

#[tokio::test(start_paused = true)]
async fn a_server_cut_off_from_the_meta_skips_its_ticks_serves_nobody_and_syncs_when_back() {
    let _clock = crate::clock::simulate(EPOCH_MS);
    let (c, app, loops) = setup(|_| {});
    let events = [
        (150, Event::Cut(1_000)),
        (200, Event::Deny(Some("reconfig*write"))),
    ];
    let inactive = |c: &Cluster| c.lock().nodes[NODE].inactive.len();
    let seen = play(&c, app, &loops, &events, 600).await;
    assert_eq!(inactive(&c), 2, "both replicas inactive while cut off");
    let rest = play(&c, app, &loops, &[], 1_350).await;
    assert_eq!(inactive(&c), 0, "active again once a sync applied them");
    assert_eq!(seen.syncs, [0, 100]);
    assert_eq!(rest.syncs, [100, 1150, 1300]);
    assert_eq!(rest.applied, [(1150, 0, true), (1150, 1, true)]);
}

#[tokio::test(start_paused = true)]
async fn the_meta_persisting_a_new_primary_answers_its_server_busy() {
    let _clock = crate::clock::simulate(EPOCH_MS);
    // Servers tick at 300, 100 and 200 ms past each period; a persist of 250 ms covers a tick
    // of every one.
    let (c, _app, loops) = setup(|config| config.meta_persist_delay = Duration::from_millis(250));
    loops[0].at(390).await;
    let to = liveness::failover(&c, "t", 0).expect("a secondary to move to");
    let tick = [600, 400, 500][to];
    loops[0].at(tick + 1).await;
    let synced = |c: &Cluster| c.lock().nodes[to].last_sync_ms.saturating_sub(EPOCH_MS);
    assert!(synced(&c) < tick, "its tick met ERR_BUSY");
    loops[0].at(tick + 501).await;
    assert_eq!(synced(&c), tick + 500, "asked again 500 ms later");
}
