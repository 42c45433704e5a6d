//! Owns the invariants every simulated run must keep, checked on what the run recorded:
//! (a) no write acknowledged by the source once the target acknowledged one (per table);
//! (b) every acknowledged write is where routing points at the end, at its latest version;
//! (d) every guardian exits within its bound;
//! (f) apply converges — migrated, lifted (exit 3) or an operator needed (exit 4) — within
//!     bounded virtual time, never a hang.

use std::collections::BTreeMap;
use std::time::Duration;

use super::scenario::RunEnd;
use super::writers::{key_of, Write};
use crate::pegasus::table::{TableClient, TableOptions};
use crate::sim::world::{meta_client, World};
use crate::sim::zk_model::Change;

/// One guardian's life.
#[derive(Debug, Clone)]
pub struct GuardianLife {
    pub pid: u32,
    pub record: String,
    pub started_ms: u64,
    pub ended_ms: u64,
}

/// What a run recorded, for the checks.
#[derive(Debug, Clone)]
pub struct Facts {
    pub source: String,
    pub target: String,
    pub tables: Vec<String>,
    pub writes: Vec<Write>,
    pub liveness_runs: Vec<RunEnd>,
    pub guardians: Vec<GuardianLife>,
    /// Guardians still running at the end: pid and record.
    pub guardians_running: Vec<(u32, String)>,
    /// Where each table's routing node points at the end.
    pub routing: BTreeMap<String, Option<String>>,
    pub zk_history: Vec<Change>,
}

/// The version each writer's key holds at the end, where routing points, per table and
/// writer; `None`: the read failed.
pub type FinalValues = BTreeMap<(String, usize), Option<u64>>;

/// Reads every writer key on the cluster its table's routing names.
pub async fn read_final_values(world: &World, facts: &Facts) -> FinalValues {
    let mut out = BTreeMap::new();
    let writers: std::collections::BTreeSet<(String, usize)> = facts
        .writes
        .iter()
        .map(|w| (w.table.clone(), w.writer))
        .collect();
    for (table, writer) in writers {
        let home = facts.routing.get(&table).cloned().flatten();
        let Some(sim) = home.as_deref().and_then(|c| world.cluster(c)) else {
            out.insert((table, writer), None);
            continue;
        };
        let client = TableClient::new(&table, meta_client(sim), TableOptions::default());
        let value = client
            .get(&key_of(writer), b"v")
            .await
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok());
        out.insert((table, writer), value);
    }
    out
}

/// Every invariant that did not hold.
#[must_use]
pub fn all(facts: &Facts, values: &FinalValues) -> Vec<String> {
    let mut v = Vec::new();
    no_split_writes(facts, &mut v);
    nothing_lost(facts, values, &mut v);
    guardians_exit(facts, &mut v);
    converges(facts, &mut v);
    v
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

/// (b) Each writer's key holds, where routing points, at least its last acknowledged version
/// and at most its last sent one.
fn nothing_lost(facts: &Facts, values: &FinalValues, v: &mut Vec<String>) {
    let mut last: BTreeMap<(String, usize), (u64, u64)> = BTreeMap::new();
    for w in &facts.writes {
        let e = last.entry((w.table.clone(), w.writer)).or_default();
        e.1 = e.1.max(w.version);
        if w.acked.is_some() {
            e.0 = e.0.max(w.version);
        }
    }
    for ((table, writer), (acked, sent)) in last {
        if acked == 0 {
            continue;
        }
        let home = facts.routing.get(&table).cloned().flatten();
        match values.get(&(table.clone(), writer)).copied().flatten() {
            Some(found) if found >= acked && found <= sent => {}
            found => v.push(format!(
                "(b) lost write on {table}: writer {writer}'s key holds {found:?} on {} but version {acked} was acknowledged (last sent {sent})",
                home.as_deref().unwrap_or("no cluster")
            )),
        }
    }
}

/// How long after its block ends a guardian may live: aftercare of a lift and a few polls.
pub const GUARDIAN_AFTER_END: Duration = Duration::from_secs(130);

/// (d) No guardian is still running at the end (the run waits well past every block's end).
fn guardians_exit(facts: &Facts, v: &mut Vec<String>) {
    for (pid, record) in &facts.guardians_running {
        v.push(format!(
            "(d) guardian {pid} of {record} is still running {}s after the last run",
            GUARDIAN_AFTER_END.as_secs()
        ));
    }
}

/// (f) The liveness phase ends with a verdict, never a hang or an endless series of runs.
fn converges(facts: &Facts, v: &mut Vec<String>) {
    match facts.liveness_runs.last() {
        Some(RunEnd::Exit(0 | 4)) => {}
        Some(RunEnd::Hung) => v.push("(f) apply hung in the liveness phase".into()),
        other => v.push(format!(
            "(f) apply did not converge after {} runs without faults (last: {other:?})",
            facts.liveness_runs.len()
        )),
    }
}
