//! Owns the write-block budget: how long a cut-over on a source needs from the moment the
//! deny env is set until writes would be taken again if it had to give up — the block taking
//! effect (one config sync), the drain (on 2.5, the next empty write), the switch and learning
//! its outcome, and the restore (one more config sync) — from the facts `observe` read. Pure;
//! `apply` keeps the same reserves.
//!
//! Each config sync counts one period: a server's sync on time. Upstream's comes later when
//! the sync call fails (the next try is [`after_a_failed_sync`]), when the meta answers
//! `ERR_BUSY` (asked again every 500 ms until the change concerning the server is persisted,
//! so sooner than the next tick when that is short), when a replica ignores an answer at an
//! older ballot (the next tick), or while the server is cut off from the meta (at once when it
//! is back; its replicas refuse clients meanwhile). A block that takes effect late only leaves
//! the drain less (the block waits for evidence until the drain's deadline, then gives up); a
//! restore that comes late ends the block that much past `max_write_block`: no reserve is kept
//! for a failure that seldom comes, and README says so. Where a late sync could be taken for a
//! block in force — `timeout*` silence — one failed sync is allowed for ([`silence_span`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::observed::ClusterObs;
use crate::spec::BlockMode;

/// Slack on top of a config-sync period: the sync RPC itself, clocks. (A sync the meta answers
/// `ERR_BUSY` comes 500 ms later or more: one of the late syncs of the module's doc.)
pub const SYNC_MARGIN: Duration = Duration::from_millis(250);
/// The probe requests' default deadline (`apply --probe-timeout`).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Apply's pause between two polls of the primaries.
pub const POLL_PAUSE: Duration = Duration::from_millis(50);
/// One poll of the primaries whose probes go unanswered: their watch (twice their deadline),
/// then the pause.
pub const SILENT_ROUND: Duration = PROBE_TIMEOUT.saturating_mul(2).saturating_add(POLL_PAUSE);
/// What a replica server's config sync is taken to be when `/config` could not be read.
pub const DEFAULT_CONFIG_SYNC_MS: u64 = 30_000;
/// What a replica server's group check is taken to be when `/config` could not be read: the
/// shipped `config.ini`'s value (v2.5.0 `src/server/config.ini`), ten times the 2.5 code
/// default, so the drain is never budgeted short and never allows an empty write too many.
pub const DEFAULT_GROUP_CHECK_MS: u64 = 100_000;
/// Shipping the last writes once loadable, on any version.
const SHIP_SLACK: Duration = Duration::from_secs(2);

/// The parts of a cut-over's write-block budget, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The longest config-sync period in force on the source's replica servers at the block.
    pub config_sync_ms: u64,
    /// Until the block is in force on every primary.
    pub takes_effect_ms: u64,
    /// Until every partition has shipped, after the block.
    pub drain_ms: u64,
    /// On a 2.5 source: the group-check period whose empty write lets the last write ship.
    pub empty_write_ms: Option<u64>,
    /// Reserved to send the switch and learn its outcome.
    #[serde(default)]
    pub switch_ms: u64,
    /// With the verify gate on: reserved before the switch to compare the keys the gate could
    /// not (still being written), once the source is frozen.
    #[serde(default)]
    pub exact_check_ms: u64,
    /// Reserved to restore writes if the cut-over gives up.
    pub restore_ms: u64,
}

impl Budget {
    /// The budget of a cut-over on `source` in block mode `mode`, with the speed-up's value
    /// if one applies.
    #[must_use]
    pub fn of(source: &ClusterObs, speed_up: Option<Duration>, mode: BlockMode) -> Self {
        let read = source
            .config_sync_ms
            .values()
            .max()
            .copied()
            .unwrap_or(DEFAULT_CONFIG_SYNC_MS);
        let sync = match speed_up.filter(|_| source.speed_up_takes_effect()) {
            Some(d) => ms(d).min(read),
            None => read,
        };
        let sync_d = Duration::from_millis(sync);
        let empty_write_ms =
            (!source.master).then(|| source.group_check_ms.unwrap_or(DEFAULT_GROUP_CHECK_MS));
        // A primary runs group check once per period, so the empty write comes up to two
        // periods after its last write. This assumes every primary ships at the block, which
        // catch-up waits for (each starts at its server's first duplication sync after
        // DS_LOG, up to 10 s later); a primary that moves after that starts again at its new
        // server's next sync, and the drain then waits past this estimate, within the block.
        let drain = SHIP_SLACK + Duration::from_millis(2 * empty_write_ms.unwrap_or(0));
        Self {
            config_sync_ms: sync,
            takes_effect_ms: ms(takes_effect(sync_d, mode)),
            drain_ms: ms(drain),
            empty_write_ms,
            switch_ms: ms(SWITCH_RESERVE),
            exact_check_ms: 0,
            // The speed-up is per cluster: another run or `abort` may restore it under this
            // block, so the restore allows for the period read.
            restore_ms: ms(restore_reserve(Duration::from_millis(read), PROBE_TIMEOUT)),
        }
    }

    /// The same budget with [`EXACT_CHECK`] reserved when the verify gate is on.
    #[must_use]
    pub fn with_exact_check(self, gate: bool) -> Self {
        Self {
            exact_check_ms: if gate { ms(EXACT_CHECK) } else { 0 },
            ..self
        }
    }

    /// The least `max_write_block` that fits.
    #[must_use]
    pub fn needed_ms(&self) -> u64 {
        self.takes_effect_ms
            + self.drain_ms
            + self.exact_check_ms
            + self.switch_ms
            + self.restore_ms
    }
}

/// Reserved inside the block, with the verify gate on, for the exact check: comparing the keys
/// the gate left (the source kept writing them) on both clusters. The gate leaves them only if
/// its own timed read of them says they fit (`apply::exact::fits`).
pub const EXACT_CHECK: Duration = Duration::from_secs(3);

/// Deadline of the switch's ZooKeeper transaction: an outcome not known by then is resolved by
/// reading the routing node.
pub const SWITCH_CALL: Duration = Duration::from_secs(3);
/// How long an unknown outcome of the switch is re-read before an operator is asked.
pub const SWITCH_RESOLVE: Duration = Duration::from_secs(5);
/// The switch's worst case: its transaction and resolving an unknown outcome. A switch is sent
/// only with this much left before the restore must start, so one that did not commit still
/// leaves the restore its time.
pub const SWITCH_RESERVE: Duration = SWITCH_CALL.saturating_add(SWITCH_RESOLVE);

/// Unanswered probes a partition needs before a `timeout*` block counts as in force there.
pub const MIN_SILENT_PROBES: u32 = 3;
/// The least time those probes must span: a primary stalled for less shows itself by
/// answering the first of them late.
pub const SILENCE_FLOOR: Duration = Duration::from_secs(5);

/// Deadline of a replica server's config-sync call: rDSN's default RPC timeout
/// (`rpc_timeout_milliseconds`), which the call does not override.
pub const SYNC_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after a tick whose config sync failed a server of period `sync` syncs again. A
/// connected server does not ask again after a call that timed out, and its ticks are skipped
/// while the call is pending, so the next try is the first tick after [`SYNC_CALL_TIMEOUT`]:
/// one period when the period is longer, up to a period more than the timeout when it is
/// shorter. A reply a replica ignores for its older ballot also waits for the next tick.
#[must_use]
pub fn after_a_failed_sync(sync: Duration) -> Duration {
    let period = sync.max(Duration::from_millis(1));
    let skipped = SYNC_CALL_TIMEOUT.as_nanos() / period.as_nanos();
    period.saturating_mul(u32::try_from(skipped + 1).unwrap_or(u32::MAX))
}

/// How long after a change on the meta every server of period `sync` connected to it has
/// applied it, even one whose sync failed once: its next tick, then [`after_a_failed_sync`].
/// What the waits that only report what they saw allow (a `reconfig*all` or a lift seen on
/// every primary, before a duplication is removed); two periods would not cover a failed
/// sync when the period is under the 5 s call timeout, as with the speed-up.
#[must_use]
pub fn synced_everywhere_within(sync: Duration) -> Duration {
    sync + after_a_failed_sync(sync)
}

/// How long a partition's unanswered probes must span under a `timeout*` block whose source
/// syncs config every `sync`, from when silence starts to count (a period after the env was
/// set): until a server whose sync failed once since has synced again
/// ([`after_a_failed_sync`]), at least [`SILENCE_FLOOR`]. Silence is also what a stalled
/// primary gives; a primary that lacks the deny only because its sync came late must not be
/// taken for one that has it.
#[must_use]
pub fn silence_span(sync: Duration) -> Duration {
    after_a_failed_sync(sync).max(SILENCE_FLOOR)
}

/// Until a block set now is seen in force on every primary: one config sync (on time) and its
/// margin, a probe round, and under `timeout*` the span its silence must cover. Silence is
/// judged at the start of each poll and a poll of unanswered probes lasts a [`SILENT_ROUND`],
/// so the first silent poll comes up to a round after silence starts to count and the one
/// that completes the span up to a round after the span: two rounds more.
#[must_use]
pub fn takes_effect(sync: Duration, mode: BlockMode) -> Duration {
    let evidence = match mode {
        BlockMode::Reconfig => PROBE_TIMEOUT * 2,
        BlockMode::Timeout => PROBE_TIMEOUT * 2 + silence_span(sync) + SILENT_ROUND * 2,
    };
    sync + SYNC_MARGIN + evidence
}

/// Deadline of each meta call of a lift.
pub const LIFT_CALL: Duration = Duration::from_secs(2);

/// The two meta calls of a lift (read the envs, delete the deny).
pub const LIFT_CALLS: Duration = LIFT_CALL.saturating_mul(2);

/// Time a restore needs from its start until every replica takes writes again: the lift's
/// meta calls, one config sync (on time: see the module's doc), a probe round and the margin.
#[must_use]
pub fn restore_reserve(sync_bound: Duration, probe_timeout: Duration) -> Duration {
    LIFT_CALLS + sync_bound + probe_timeout * 2 + SYNC_MARGIN
}

/// `d` in whole milliseconds (saturating), as journals, records and plans store durations.
#[must_use]
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(master: bool, sync: &[u64], group_check: Option<u64>) -> ClusterObs {
        ClusterObs {
            master,
            config_sync_ms: sync
                .iter()
                .enumerate()
                .map(|(i, ms)| (format!("n{i}"), *ms))
                .collect(),
            group_check_ms: group_check,
            dead_nodes: vec![],
            fixed_sync_timer: vec![],
        }
    }

    #[test]
    fn budgets_follow_each_version() {
        struct Case {
            name: &'static str,
            source: ClusterObs,
            speed_up: Option<Duration>,
            sync: u64,
            needed: u64,
        }
        let cases = [
            Case {
                name: "master at 30 s",
                source: cluster(true, &[30_000, 30_000], Some(100_000)),
                speed_up: None,
                sync: 30_000,
                needed: 30_850 + 2_000 + 8_000 + 34_850,
            },
            Case {
                name: "master ignores the speed-up (its /updateConfig does not re-arm the timer)",
                source: cluster(true, &[30_000], None),
                speed_up: Some(Duration::from_secs(1)),
                sync: 30_000,
                needed: 75_700,
            },
            Case {
                name: "2.5 with the speed-up waits for two group checks and restores at the period read",
                source: cluster(false, &[30_000, 20_000], Some(10_000)),
                speed_up: Some(Duration::from_secs(1)),
                sync: 1_000,
                needed: 1_850 + 22_000 + 8_000 + 34_850,
            },
            Case {
                name: "2.5 metas with a master replica server mid-upgrade: no speed-up",
                source: ClusterObs {
                    fixed_sync_timer: vec!["r3:1".into()],
                    ..cluster(false, &[30_000, 20_000], Some(10_000))
                },
                speed_up: Some(Duration::from_secs(1)),
                sync: 30_000,
                needed: 30_850 + 22_000 + 8_000 + 34_850,
            },
            Case {
                name: "unreadable servers count as the shipped config.ini has them",
                source: cluster(false, &[], None),
                speed_up: None,
                sync: 30_000,
                needed: 30_850 + 202_000 + 8_000 + 34_850,
            },
        ];
        for c in cases {
            let b = Budget::of(&c.source, c.speed_up, BlockMode::Reconfig);
            assert_eq!(b.config_sync_ms, c.sync, "{}", c.name);
            assert_eq!(b.needed_ms(), c.needed, "{}", c.name);
        }
    }

    #[test]
    fn the_verify_gate_reserves_the_exact_check_before_the_switch() {
        let c = cluster(true, &[1_000], None);
        let without = Budget::of(&c, None, BlockMode::Reconfig);
        let with = without.with_exact_check(true);
        assert_eq!(with.exact_check_ms, 3_000);
        assert_eq!(with.needed_ms(), without.needed_ms() + 3_000);
        assert_eq!(with.with_exact_check(false), without);
    }

    #[test]
    fn a_timeout_block_waits_for_its_silence_to_outlast_one_failed_sync() {
        let gap = |period_ms: u64| {
            let c = cluster(true, &[period_ms], None);
            Budget::of(&c, None, BlockMode::Timeout).takes_effect_ms
                - Budget::of(&c, None, BlockMode::Reconfig).takes_effect_ms
        };
        // Besides the span, two polls of unanswered probes (650 ms each).
        let gap = |period_ms| gap(period_ms) - 1_300;
        assert_eq!(gap(30_000), 30_000, "a 30 s sync: the next period");
        assert_eq!(gap(6_000), 6_000);
        assert_eq!(
            gap(1_000),
            6_000,
            "a 1 s sync: the first tick after the 5 s timeout"
        );
        assert_eq!(
            gap(4_900),
            9_800,
            "the tick just before the timeout is skipped"
        );
        assert_eq!(
            gap(5_000),
            10_000,
            "a tick at the timeout may find the call pending"
        );
        assert_eq!(gap(100), 5_100);
    }

    #[test]
    fn a_failed_sync_is_followed_by_the_first_tick_after_the_call_timed_out() {
        for period_ms in [1u64, 100, 700, 1_000, 2_400, 4_999, 5_000, 5_001, 30_000] {
            let period = Duration::from_millis(period_ms);
            let next = after_a_failed_sync(period);
            assert!(next > SYNC_CALL_TIMEOUT || next == period, "{period_ms} ms");
            assert!(next >= period, "{period_ms} ms");
            assert_eq!(next.as_millis() % u128::from(period_ms), 0, "a tick");
            assert!(
                next - period <= SYNC_CALL_TIMEOUT,
                "{period_ms} ms: the first tick past the timeout"
            );
        }
    }
}
