//! Owns the invariants every simulated run must keep, checked on what the run recorded:
//! (a) no write acknowledged by the source once the target acknowledged one (per table);
//! (b) every acknowledged write is where routing points at the end, at its latest version;
//! (c) a write block ends — deny lifted on every server, or routing switched — within
//!     `max_write_block` (its restore included) + the config-sync lateness the run injected +
//!     a margin, whoever ends it;
//! (d) every guardian exits within its bound;
//! (e) nobody deletes the deny env of a block whose record does not say it is being lifted,
//!     nor changes one another operator set by hand;
//! (f) apply converges — migrated, lifted (exit 3) or an operator needed (exit 4) — within
//!     bounded virtual time, never a hang.

use std::collections::BTreeMap;
use std::time::Duration;

use super::hand_deny::HandDeny;
use super::procs::RunEnd;
use super::writers::{key_of, Write};
use crate::cutover::record::{BlockRecord, BlockState};
use crate::sim::state::DenyEvent;
use crate::sim::world::World;
use crate::sim::zk_model::Change;

/// Slack on top of the stated bound of a block: one poll of the guardian and a probe.
pub const BLOCK_MARGIN: Duration = Duration::from_secs(2);

/// What a run recorded, for the checks.
#[derive(Debug, Clone)]
pub struct Facts {
    pub source: String,
    pub target: String,
    pub tables: Vec<String>,
    pub writes: Vec<Write>,
    pub liveness_runs: Vec<RunEnd>,
    /// Guardians still running at the end: pid and record.
    pub guardians_running: Vec<(u32, String)>,
    /// Where each table's routing node points at the end.
    pub routing: BTreeMap<String, Option<String>>,
    pub zk_history: Vec<Change>,
    /// The source's deny env changes, on the meta and on each server.
    pub deny_log: Vec<DenyEvent>,
    /// Table name of each source app id.
    pub app_ids: BTreeMap<i32, String>,
    /// The source's config-sync period as the servers' config has it (what `plan` reads).
    pub config_sync: Duration,
    /// What the late config syncs the run injected can add, in total (`LateSync::lateness`).
    pub sync_lateness: Duration,
    /// (true wall-clock ms, cost in ms) of every faulted ZooKeeper call a migrator process
    /// made: a lift records itself in ZooKeeper before it deletes the deny env.
    pub zk_lateness: Vec<(u64, u64)>,
    /// (g) what differed between the clusters each time a table's routing switched.
    pub at_switch: Vec<String>,
    /// Where block records and routing nodes live.
    pub record_root: String,
    pub routing_root: String,
    /// When the run ended (true ms).
    pub end_ms: u64,
    /// Whether apply ran again after the faults (else only the guardians end the blocks).
    pub rerun: bool,
    /// When an apply's host crashed, taking its guardians with it (true ms).
    pub crashes: Vec<u64>,
    /// When each apply run started (true ms).
    pub apply_starts: Vec<u64>,
    /// Deny envs another operator set by hand.
    pub hand_denies: Vec<HandDeny>,
}

/// The version each writer's key holds at the end on each cluster, per (table, writer,
/// cluster); `None`: the key is not there.
pub type FinalValues = BTreeMap<(String, usize, String), Option<u64>>;

/// Reads every writer key on both clusters straight from the simulator's storage (a denied
/// or dead server would refuse a client).
#[must_use]
pub fn read_final_values(world: &World, facts: &Facts) -> FinalValues {
    let mut out = BTreeMap::new();
    let writers: std::collections::BTreeSet<(String, usize)> = facts
        .writes
        .iter()
        .map(|w| (w.table.clone(), w.writer))
        .collect();
    for (table, writer) in writers {
        for sim in [&world.source, &world.target] {
            let cluster = sim.cluster();
            let value = stored(cluster, &table, &key_of(writer));
            out.insert((table.clone(), writer, cluster.name.clone()), value);
        }
    }
    out
}

/// The version stored under writer key `hash_key` of `table` on `cluster`'s primary.
fn stored(cluster: &crate::sim::Cluster, table: &str, hash_key: &[u8]) -> Option<u64> {
    let key = crate::pegasus::key::composite_key(hash_key, b"v").ok()?;
    let state = cluster.lock();
    let app = state.app_by_name(table)?;
    let count = i32::try_from(app.partitions.len()).ok()?;
    let pidx = crate::pegasus::key::partition_index(crate::pegasus::key::key_hash(&key), count);
    let record = app
        .partitions
        .get(usize::try_from(pidx).ok()?)?
        .data
        .get(&key)?;
    String::from_utf8(record.value.clone()).ok()?.parse().ok()
}

/// Every invariant that did not hold.
#[must_use]
pub fn all(facts: &Facts, values: &FinalValues) -> Vec<String> {
    let mut v = Vec::new();
    no_split_writes(facts, &mut v);
    nothing_lost(facts, values, &mut v);
    blocks_bounded(facts, &mut v);
    guardians_exit(facts, &mut v);
    lifts_owned(facts, &mut v);
    hand_denies_untouched(facts, &mut v);
    converges(facts, &mut v);
    v.extend(facts.at_switch.iter().cloned());
    v
}

/// Whether the meta's change of `app_id`'s deny env to `value` at `at_ms` was another
/// operator's own, setting or deleting a value by hand.
fn by_hand(facts: &Facts, app_id: i32, at_ms: u64, value: Option<&str>) -> bool {
    facts.hand_denies.iter().any(|h| {
        h.app_id == app_id
            && match value {
                Some(v) => h.set_ms == at_ms && h.value == v,
                None => h.deleted_ms == Some(at_ms),
            }
    })
}

/// When another operator first set `app_id`'s deny env by hand at or after `from_ms`: they
/// look first, so migrator's block had been lifted on the meta by then, and what servers deny
/// from there on is theirs.
fn set_by_hand_after(facts: &Facts, app_id: i32, from_ms: u64) -> Option<u64> {
    facts
        .hand_denies
        .iter()
        .filter(|h| h.app_id == app_id && h.set_ms >= from_ms)
        .map(|h| h.set_ms)
        .min()
}

/// (e) Nobody but the operator who set a deny env by hand changes or deletes it while it is
/// theirs.
fn hand_denies_untouched(facts: &Facts, v: &mut Vec<String>) {
    for h in &facts.hand_denies {
        let until = h.deleted_ms.unwrap_or(facts.end_ms);
        for e in &facts.deny_log {
            let DenyEvent::Meta {
                at_ms,
                app_id,
                value,
            } = e
            else {
                continue;
            };
            let theirs = by_hand(facts, *app_id, *at_ms, value.as_deref());
            if *app_id == h.app_id && (h.set_ms..=until).contains(at_ms) && !theirs {
                v.push(format!(
                    "(e) the deny env {} an operator set by hand on {} at {} ms was changed to {value:?} at {at_ms} ms by someone else",
                    h.value, h.table, h.set_ms
                ));
            }
        }
    }
}

/// The record of `table` as it stood at `at_ms` (true time), from the ZooKeeper history.
fn record_at(facts: &Facts, table: &str, at_ms: u64) -> Option<BlockRecord> {
    let path = format!("{}/{table}", facts.record_root);
    facts
        .zk_history
        .iter()
        .rfind(|c| c.path == path && c.at_ms <= at_ms)
        .and_then(|c| serde_json::from_slice(c.data.as_ref()?).ok())
}

/// When `table`'s routing node first named the target at or after `from_ms`.
fn switched_at(facts: &Facts, table: &str, from_ms: u64) -> Option<u64> {
    let path = format!("{}/{table}", facts.routing_root);
    facts
        .zk_history
        .iter()
        .filter(|c| c.path == path && c.at_ms >= from_ms)
        .find(|c| {
            c.data.as_ref().is_some_and(|d| {
                crate::routing::Route::parse(d).is_ok_and(|r| r.cluster_name == facts.target)
            })
        })
        .map(|c| c.at_ms)
}

/// When, after a block set at `from_ms` took effect on some replica, no replica of the source
/// denied writes to `app` any more (`from_ms` if it never took effect; the moment the meta
/// dropped it if that came first).
fn writes_taken_at(facts: &Facts, app: i32, from_ms: u64) -> Option<u64> {
    let mut denying: BTreeMap<(usize, usize), bool> = BTreeMap::new();
    let mut in_force = false;
    for e in &facts.deny_log {
        let (at_ms, replica, app_id, deny) = match e {
            DenyEvent::Applied {
                at_ms,
                node,
                app_id,
                pidx,
                deny,
            } => (at_ms, (*node, *pidx), app_id, deny),
            DenyEvent::Meta {
                at_ms,
                app_id,
                value: None,
            } if *app_id == app && *at_ms > from_ms && !in_force => {
                // Deleted before any server applied it: no server ever denied a write.
                if !denying.values().any(|d| *d) {
                    return Some(*at_ms);
                }
                continue;
            }
            DenyEvent::Meta { .. } => continue,
        };
        if *app_id != app {
            continue;
        }
        if *at_ms >= from_ms && !in_force && denying.values().any(|d| *d) {
            // Already in force when it was set (a block resumed or set again).
            in_force = true;
        }
        denying.insert(replica, deny.is_some_and(|d| d.write));
        if *at_ms < from_ms {
            continue;
        }
        let anyone = denying.values().any(|d| *d);
        if !in_force && !anyone {
            continue;
        }
        in_force = true;
        if !anyone {
            return Some(*at_ms);
        }
    }
    if in_force || denying.values().any(|d| *d) {
        None
    } else {
        Some(from_ms)
    }
}

/// How long before a block's give_up a faulted ZooKeeper call can still delay its lift.
const LIFT_ZK_WINDOW_MS: u64 = 15_000;

/// How long after a run's host crashed the next apply run may take to end a block: its
/// plan, the crashed run's lock (gone a session timeout after the crash), the restore's calls.
const ACT_AFTER_CRASH: Duration = Duration::from_secs(6);

/// How long a block set at `at_ms` (ending at `end`) may hold: its budget; when the host of
/// the run holding it crashed meanwhile (its guardians with it), until the last apply run
/// started before the block ended could act (runs before it may have failed on a faulted
/// ZooKeeper) and restore writes, if that is later; `None` when no run got through after the
/// crash.
fn held_until(facts: &Facts, at_ms: u64, ended: Option<u64>, budget: Duration) -> Option<Duration> {
    let end = ended.unwrap_or(facts.end_ms);
    let Some(crash) = facts
        .crashes
        .iter()
        .copied()
        .find(|x| (at_ms..end).contains(x))
    else {
        return Some(budget);
    };
    // Never ended: only acceptable while no run got through to an end of its own (migrated
    // or lifted, each of which ends the block); else the bound below judges it.
    let got_through = facts
        .liveness_runs
        .iter()
        .any(|r| matches!(r, RunEnd::Exit(0 | 3)));
    if ended.is_none() && !got_through {
        return None;
    }
    let next = facts
        .apply_starts
        .iter()
        .copied()
        .filter(|s| (crash..=end).contains(s))
        .max()?;
    let session = u64::try_from(crate::routing::zk::SESSION_TIMEOUT.as_millis()).unwrap_or(0);
    let acts_at =
        next.max(crash + session) + u64::try_from(ACT_AFTER_CRASH.as_millis()).unwrap_or(0);
    // Its restore then takes what any restore takes, at the period the servers' config has.
    let restore =
        crate::plan::budget::restore_reserve(facts.config_sync, crate::plan::budget::PROBE_TIMEOUT);
    Some(budget.max(Duration::from_millis(acts_at.saturating_sub(at_ms)) + restore))
}

/// (c) Each deny env set on the meta is followed, within the bound, by writes taken again:
/// no server denying them, or routing naming the target.
fn blocks_bounded(facts: &Facts, v: &mut Vec<String>) {
    for e in &facts.deny_log {
        let DenyEvent::Meta {
            at_ms,
            app_id,
            value: Some(value),
        } = e
        else {
            continue;
        };
        let Some(table) = facts.app_ids.get(app_id) else {
            continue;
        };
        if !value.ends_with("write") || by_hand(facts, *app_id, *at_ms, Some(value)) {
            continue;
        }
        let Some(record) = record_at(facts, table, *at_ms) else {
            continue;
        };
        let budget = Duration::from_millis(record.deadline_ms.saturating_sub(record.started_ms));
        let ended = [
            switched_at(facts, table, *at_ms),
            writes_taken_at(facts, *app_id, *at_ms),
            set_by_hand_after(facts, *app_id, *at_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        let end = ended.unwrap_or(facts.end_ms);
        // Only calls around the lift can delay it: from a call deadline or two before the
        // block's give_up on.
        let lift_from = (at_ms + record.give_up_ms.saturating_sub(record.started_ms))
            .saturating_sub(LIFT_ZK_WINDOW_MS);
        let zk_late: u64 = facts
            .zk_lateness
            .iter()
            .filter(|(at, _)| (lift_from..end).contains(at))
            .map(|(_, cost)| cost)
            .sum();
        let lateness = facts.sync_lateness + Duration::from_millis(zk_late);
        let Some(held) = held_until(facts, *at_ms, ended, budget) else {
            // Its host crashed and no apply run got through since: an operator's to end
            // (README).
            continue;
        };
        // No config sync on top: the budget reserves the restore's own, at the period read
        // (R5: a sped-up period may be restored under the block).
        let bound = held + lateness + BLOCK_MARGIN;
        let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        if end.saturating_sub(*at_ms) > bound_ms {
            v.push(format!(
                "(c) the write block on {table} set at {at_ms} ms ({value}) ended {} — more than {} ms (max_write_block {}s, or after its host crashed until the next run could restore writes) + {} ms of injected lateness ({zk_late} ms of it ZooKeeper's) + {}s",
                ended.map_or_else(|| "never".to_string(), |e| format!("after {} ms", e - at_ms)),
                held.as_millis(),
                budget.as_secs(),
                lateness.as_millis(),
                BLOCK_MARGIN.as_secs()
            ));
        }
    }
}

/// (e) The deny env is deleted only while its table's record says the block is being lifted
/// (or was): never under a block that is open or may have been switched.
fn lifts_owned(facts: &Facts, v: &mut Vec<String>) {
    for e in &facts.deny_log {
        let DenyEvent::Meta {
            at_ms,
            app_id,
            value: None,
        } = e
        else {
            continue;
        };
        let Some(table) = facts.app_ids.get(app_id) else {
            continue;
        };
        if by_hand(facts, *app_id, *at_ms, None) {
            continue;
        }
        let Some(record) = record_at(facts, table, *at_ms) else {
            continue;
        };
        if !matches!(record.state, BlockState::Lifting | BlockState::Lifted) {
            v.push(format!(
                "(e) the deny env of {table} was deleted at {at_ms} ms while its block record (started at {}) said {:?}",
                record.started_ms, record.state
            ));
        }
    }
}

/// (a) Per table: no write sent after the target acknowledged one is acknowledged by the
/// source. Such a write was taken by the source while clients already wrote to the target.
fn no_split_writes(facts: &Facts, v: &mut Vec<String>) {
    for table in &facts.tables {
        let acks = || {
            facts
                .writes
                .iter()
                .filter(move |w| &w.table == table)
                .filter_map(|w| w.acked.as_ref().map(|(c, at)| (w, c, *at)))
        };
        let Some(first_target) = acks()
            .filter(|(_, c, _)| **c == facts.target)
            .map(|(_, _, at)| at)
            .min()
        else {
            continue;
        };
        if let Some((w, _, at)) = acks()
            .filter(|(w, c, _)| **c == facts.source && w.sent_ms > first_target)
            .min_by_key(|(_, _, at)| *at)
        {
            v.push(format!(
                "(a) split writes on {table}: writer {} version {} sent at {} ms was acknowledged by the source at {at} ms, after the target acknowledged a write at {first_target} ms",
                w.writer, w.version, w.sent_ms
            ));
        }
    }
}

/// (b) Each writer's last acknowledged version is kept (or overwritten by a later one it
/// sent) by the cluster that acknowledged it, and — when that was the source and the table
/// was migrated — by the target too: the drain shipped it.
fn nothing_lost(facts: &Facts, values: &FinalValues, v: &mut Vec<String>) {
    let mut last: BTreeMap<(String, usize), (u64, String, u64)> = BTreeMap::new();
    for w in &facts.writes {
        let e = last.entry((w.table.clone(), w.writer)).or_default();
        e.2 = e.2.max(w.version);
        if let Some((cluster, _)) = &w.acked {
            if w.version > e.0 {
                (e.0, e.1) = (w.version, cluster.clone());
            }
        }
    }
    for ((table, writer), (acked, by, sent)) in last {
        if acked == 0 {
            continue;
        }
        let migrated =
            facts.routing.get(&table).cloned().flatten().as_deref() == Some(&facts.target);
        let mut holders = vec![by.clone()];
        if migrated && by != facts.target {
            holders.push(facts.target.clone());
        }
        for cluster in holders {
            let found = values
                .get(&(table.clone(), writer, cluster.clone()))
                .copied()
                .flatten();
            if !found.is_some_and(|f| f >= acked && f <= sent) {
                v.push(format!(
                    "(b) lost write on {table}: writer {writer}'s key holds {found:?} on {cluster} but version {acked} was acknowledged by {by} (last sent {sent})"
                ));
            }
        }
    }
}

/// How long after its block ends a guardian may live: aftercare of a lift and a few polls.
pub const GUARDIAN_AFTER_END: Duration = Duration::from_secs(130);
/// How long past its deadline a guardian may watch a block nobody resolves.
pub const GUARDIAN_LINGER: Duration = Duration::from_secs(620);

/// (d) No guardian is still running at the end: the run waits well past every block's end
/// ([`GUARDIAN_AFTER_END`], or [`GUARDIAN_LINGER`] past the deadline when a block was left
/// to an operator).
fn guardians_exit(facts: &Facts, v: &mut Vec<String>) {
    for (pid, record) in &facts.guardians_running {
        v.push(format!(
            "(d) guardian {pid} of {record} is still running when every guardian should have ended"
        ));
    }
}

/// (f) The liveness phase ends with a verdict, never a hang or an endless series of runs.
fn converges(facts: &Facts, v: &mut Vec<String>) {
    if !facts.rerun {
        return;
    }
    match facts.liveness_runs.last() {
        Some(RunEnd::Exit(0 | 4)) => {}
        Some(RunEnd::Hung) => v.push("(f) apply hung in the liveness phase".into()),
        other => v.push(format!(
            "(f) apply did not converge after {} runs without faults (last: {other:?})",
            facts.liveness_runs.len()
        )),
    }
}
