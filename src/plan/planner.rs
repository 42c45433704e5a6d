//! Owns `plan(&Spec, &Observed) -> Plan`: each table's phase and remaining steps, or the
//! blockers that need an operator. Pure; table-driven tests at the bottom.

use super::budget::ms;
use super::cutover;
use super::observed::{RoutingObs, TableObs, TargetObs};
use super::{Action, Blocker, Plan, RoutingChange, Step, StepDetail, StepKind, TablePlan};
use crate::pegasus::envs::{DENY_ALL_RECONFIG as SOURCE_FINAL_DENY, DENY_ENV};
use crate::routing::Route;
use crate::spec::{Migration, Spec};

/// Plans every table of `spec` against `observed`.
#[must_use]
pub fn plan(spec: &Spec, observed: &super::Observed) -> Plan {
    let empty = TableObs::default();
    let tables: Vec<TablePlan> = spec
        .migrations
        .iter()
        .map(|m| {
            let obs = observed.tables.get(&m.table).unwrap_or(&empty);
            plan_table(spec, m, obs, observed)
        })
        .collect();
    let cluster_changes = cutover::cluster_changes(spec, &tables, observed);
    Plan {
        tables,
        cluster_changes,
    }
}

fn blocker(code: &str, reason: String, fix: &str) -> Blocker {
    Blocker {
        code: code.into(),
        reason,
        fix: fix.into(),
    }
}

/// Where the routing node points, when it names a cluster.
fn routed_to(obs: &TableObs) -> Option<&str> {
    obs.routing.as_ref()?.node.as_ref()?.cluster_name.as_deref()
}

fn deny_env(obs: &TableObs) -> Option<&str> {
    obs.source.as_ref()?.envs.get(DENY_ENV).map(String::as_str)
}

/// Whether clients of the table already go to the target.
fn switched(spec: &Spec, m: &Migration, obs: &TableObs) -> bool {
    match spec.metaproxy {
        Some(_) => routed_to(obs) == Some(m.to.as_str()),
        // Without meta-proxy the finished state is the source refusing everything.
        None => {
            deny_env(obs) == Some(SOURCE_FINAL_DENY)
                && matches!(obs.target, TargetObs::Follower { .. })
        }
    }
}

fn plan_table(spec: &Spec, m: &Migration, obs: &TableObs, observed: &super::Observed) -> TablePlan {
    let mut tp = TablePlan {
        table: m.table.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        action: Action::Migrate,
        phase: None,
        steps: vec![],
        blockers: vec![],
        notes: notes(spec, m),
        warnings: vec![],
        facts: super::TableFacts {
            partitions: obs.source.as_ref().map(|s| s.partition_count),
            lag: obs.dups.first().and_then(|d| d.lag),
            lag_before: None,
        },
    };
    if switched(spec, m, obs) {
        finish_after_switch(spec, m, obs, observed, &mut tp);
        return tp;
    }
    tp.blockers = blockers(spec, m, obs);
    tp.blockers.extend(threshold_blocker(m, obs, observed));
    tp.blockers
        .extend(cutover::empty_write_blockers(m, observed));
    tp.blockers
        .extend(cutover::budget_blocker(spec, m, observed));
    tp.blockers.extend(cutover::target_blocker(m, obs));
    tp.blockers
        .extend(cutover::silent_loss_blockers(m, obs, observed));
    tp.blockers
        .extend(cutover::access_control_blocker(m, obs, observed));
    if obs.routing.is_some() && routed_to(obs) == Some(m.from.as_str()) {
        tp.blockers
            .extend(cutover::proxy_blockers(m, obs, &m.from, observed));
    }
    if !tp.blockers.is_empty() {
        tp.action = Action::Blocked;
        return tp;
    }
    tp.warnings = cutover::warnings(m, obs, observed);
    let start = resume_point(m, obs);
    tp.action = if start == StepKind::Preflight {
        Action::Migrate
    } else {
        Action::Resume
    };
    tp.phase = Some(start);
    tp.steps = std::iter::once(StepKind::Preflight)
        .chain(StepKind::ALL.into_iter().filter(|k| {
            *k >= start
                && *k != StepKind::Preflight
                && (*k != StepKind::Verify || m.verify != crate::spec::VerifyMode::Off)
        }))
        .map(|kind| Step {
            kind,
            detail: detail(spec, m, obs, observed, kind),
        })
        .collect();
    tp
}

/// After the routing switch only `reconfig*all` and the optional removal can remain; the
/// meta-proxies must serve the target before clients are told to move.
fn finish_after_switch(
    spec: &Spec,
    m: &Migration,
    obs: &TableObs,
    observed: &super::Observed,
    tp: &mut TablePlan,
) {
    let reconfigured = deny_env(obs) == Some(SOURCE_FINAL_DENY);
    let dup_left = m.remove_duplication && !obs.dups.is_empty();
    let start = match (reconfigured, dup_left) {
        (true, false) => {
            tp.action = Action::Done;
            return;
        }
        (false, _) => StepKind::Switch,
        (true, true) => StepKind::Finish,
    };
    tp.action = Action::Resume;
    tp.phase = Some(start);
    if start == StepKind::Switch {
        // Informational: apply waits for the proxies and stops for an operator if one lags.
        let lagging = cutover::proxy_blockers(m, obs, &m.to, observed);
        tp.warnings.extend(
            lagging
                .into_iter()
                .map(|b| format!("{} ({})", b.reason, b.fix)),
        );
    }
    tp.steps = [StepKind::Switch, StepKind::Finish]
        .into_iter()
        .filter(|k| *k >= start)
        .map(|kind| Step {
            kind,
            detail: detail(spec, m, obs, observed, kind),
        })
        .collect();
}

fn notes(spec: &Spec, m: &Migration) -> Vec<String> {
    let mut notes = vec![match m.block_mode {
        crate::spec::BlockMode::Timeout => "block mode timeout: while writes are blocked clients get no reply and time out".to_string(),
        crate::spec::BlockMode::Reconfig => "block mode reconfig: blocked writes get ERR_INVALID_STATE, so clients re-resolve as soon as routing switches".to_string(),
    }];
    if spec.metaproxy.is_none() {
        notes.push("no meta-proxy in the plan: apply blocks and drains, then stops for you to switch clients by hand (exit 4)".into());
    }
    notes
}

fn blockers(spec: &Spec, m: &Migration, obs: &TableObs) -> Vec<Blocker> {
    let mut out = Vec::new();
    if spec.metaproxy.is_some() {
        out.extend(routing_blocker(m, obs.routing.as_ref()));
        out.extend(moved_back_blocker(m, obs));
    }
    let Some(source) = obs.source.as_ref().filter(|s| s.status == "AS_AVAILABLE") else {
        let fix = "check the table name and the source cluster";
        out.push(blocker(
            "source_missing",
            format!("table {} is not available on {}", m.table, m.from),
            fix,
        ));
        return out;
    };
    let bad: Vec<String> = obs
        .data_versions
        .iter()
        .filter(|(_, v)| *v != "1")
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if !bad.is_empty() {
        let reason = format!(
            "data version is not 1 on {} (duplication needs data version 1)",
            bad.join(", ")
        );
        out.push(blocker(
            "data_version",
            reason,
            "move this table with copy_data or backup/restore instead",
        ));
    } else if obs.data_versions.is_empty() {
        out.push(blocker(
            "data_version_unknown",
            "no replica server reported the table's data version".into(),
            "check that the replica servers are up",
        ));
    }
    if let TargetObs::Unrelated { app_id } = obs.target {
        let reason = format!(
            "{} already has a table {} (app id {app_id}) that is not a follower of {}",
            m.to, m.table, m.from
        );
        out.push(blocker(
            "target_exists",
            reason,
            "drop or rename the target table, or remove this migration",
        ));
    }
    if matches!(obs.target, TargetObs::Follower { .. }) && obs.dups.is_empty() {
        let reason = format!("{} has a follower table {} left by a removed duplication; a new duplication cannot create it again", m.to, m.table);
        out.push(blocker(
            "target_orphaned",
            reason,
            "drop the table on the target (after checking nobody uses it), then plan again",
        ));
    }
    if let Some(d) = obs.dups.iter().find(|d| d.status == "DS_PAUSE") {
        let reason = format!("duplication {} to {} is paused", d.dupid, m.to);
        out.push(blocker(
            "dup_paused",
            reason,
            "resume it (duplication status DS_LOG) or remove it, then plan again",
        ));
    }
    out.extend(deny_blocker(m, obs, source));
    out
}

/// A threshold a 2.5 source can never reach while catch-up is still ahead: each partition
/// that has taken a write keeps at least one unshipped mutation (its last write until the next
/// empty write, then that empty write), so the lag never falls under the partition count.
fn threshold_blocker(m: &Migration, obs: &TableObs, observed: &super::Observed) -> Option<Blocker> {
    let partitions = u64::try_from(obs.source.as_ref()?.partition_count).ok()?;
    let on_2_5 = !observed.clusters.get(&m.from)?.master;
    let catch_up_ahead = resume_point(m, obs) < StepKind::BlockWrites;
    if !on_2_5 || !catch_up_ahead || m.threshold >= partitions {
        return None;
    }
    Some(Blocker {
        code: "threshold_below_partitions".into(),
        reason: format!(
            "threshold {} can never be reached: {} is a 2.5 source, where each of the {partitions} partitions of {} keeps at least one unshipped mutation once it has taken a write, so the lag stays at {partitions} or more",
            m.threshold, m.from, m.table
        ),
        fix: format!("set threshold to at least {partitions} for {}", m.table),
    })
}

/// The block record says the switch happened, yet routing names the source: someone moved it
/// back, and the block on the source must stay until a person decides.
fn moved_back_blocker(m: &Migration, obs: &TableObs) -> Option<Blocker> {
    let names_source = obs
        .routing
        .as_ref()
        .and_then(|r| r.node.as_ref())
        .and_then(|n| n.cluster_name.as_deref())
        == Some(m.from.as_str());
    let state = obs.block?;
    if !crate::cutover::protocol::switched_then_moved_back(state, names_source) {
        return None;
    }
    Some(blocker(
        "routing_moved_back",
        format!(
            "migrator's block record says routing was switched to {}, but the routing node names {} again: writes since the switch are on {}, and writes to {} stay blocked on {}",
            m.to, m.from, m.to, m.table, m.from
        ),
        "if the clients belong on the target, set the routing node back to it and run apply; to go back to the source, migrate the table from the target to the source",
    ))
}

fn routing_blocker(m: &Migration, routing: Option<&RoutingObs>) -> Option<Blocker> {
    let Some(r) = routing else {
        return Some(blocker(
            "routing_unread",
            "the routing node was not read".into(),
            "check ZooKeeper",
        ));
    };
    let Some(node) = &r.node else {
        let reason = format!(
            "routing node {} does not exist, so no client reaches {} through meta-proxy",
            r.path, m.table
        );
        return Some(blocker(
            "routing_missing",
            reason,
            "create it pointing at the source cluster, or drop metaproxy from the plan",
        ));
    };
    if let Some(why) = &node.invalid {
        return Some(blocker(
            "routing_invalid",
            format!("routing node {} is unusable: {why}", r.path),
            "fix the node's JSON",
        ));
    }
    match node.cluster_name.as_deref() {
        Some(c) if c == m.from => None,
        other => {
            let reason = format!(
                "routing node {} points at {}, neither {} nor {}",
                r.path,
                other.unwrap_or("?"),
                m.from,
                m.to
            );
            Some(blocker(
                "routing_elsewhere",
                reason,
                "find out who moved it; fix the plan or the node",
            ))
        }
    }
}

/// The deny env on the source is ours only when it is this plan's block value with a
/// duplication in DS_LOG (a cut-over that was interrupted); anything else was set by someone.
fn deny_blocker(
    m: &Migration,
    obs: &TableObs,
    source: &super::observed::SourceApp,
) -> Option<Blocker> {
    let value = source.envs.get(DENY_ENV)?;
    let ours = value == m.block_mode.deny_value() && obs.dups.iter().any(|d| d.status == "DS_LOG");
    (!ours).then(|| {
        let reason = format!(
            "{DENY_ENV}={value} is already set on {} by someone else",
            m.from
        );
        blocker(
            "deny_env_set",
            reason,
            "find out why; delete the env to let the migration block writes itself",
        )
    })
}

/// The first step that still has work, from what the servers show.
fn resume_point(m: &Migration, obs: &TableObs) -> StepKind {
    let Some(dup) = obs.dups.first() else {
        return StepKind::Preflight;
    };
    if deny_env(obs) == Some(m.block_mode.deny_value()) {
        return StepKind::BlockWrites;
    }
    match dup.status.as_str() {
        "DS_LOG" => StepKind::CatchUp,
        _ => StepKind::Checkpoint,
    }
}

fn detail(
    spec: &Spec,
    m: &Migration,
    obs: &TableObs,
    observed: &super::Observed,
    kind: StepKind,
) -> StepDetail {
    let dup = obs.dups.first();
    match kind {
        StepKind::Preflight => StepDetail::Preflight,
        StepKind::Duplicate => StepDetail::Duplicate {
            reuse_dupid: dup.map(|d| d.dupid),
        },
        StepKind::Checkpoint => StepDetail::Checkpoint {
            status: dup.map(|d| d.status.clone()),
        },
        StepKind::CatchUp => StepDetail::CatchUp {
            lag: dup.and_then(|d| d.lag),
            threshold: m.threshold,
        },
        StepKind::Verify => StepDetail::Verify {
            mode: m.verify,
            rate: m.verify_rate,
        },
        StepKind::BlockWrites => StepDetail::BlockWrites {
            env_key: DENY_ENV.into(),
            env_value: m.block_mode.deny_value().into(),
            mode: m.block_mode,
            max_write_block_ms: ms(m.max_write_block),
            budget: Some(cutover::budget(spec, m, observed)),
        },
        StepKind::Drain => StepDetail::Drain {
            max_write_block_ms: ms(m.max_write_block),
            empty_write_ms: cutover::budget(spec, m, observed).empty_write_ms,
        },
        StepKind::Switch => StepDetail::Switch {
            routing: routing_change(spec, m, obs),
            source_env_value: SOURCE_FINAL_DENY.into(),
        },
        StepKind::Finish => StepDetail::Finish {
            remove_duplication: m.remove_duplication,
        },
    }
}

fn routing_change(spec: &Spec, m: &Migration, obs: &TableObs) -> Option<RoutingChange> {
    let node = obs.routing.as_ref()?.node.as_ref()?;
    if routed_to(obs) == Some(m.to.as_str()) {
        return None;
    }
    let meta_addrs = spec
        .clusters
        .get(&m.to)
        .map(|c| c.meta.clone())
        .unwrap_or_default();
    let after = Route {
        cluster_name: m.to.clone(),
        meta_addrs,
    }
    .to_json();
    Some(RoutingChange {
        path: obs.routing.as_ref()?.path.clone(),
        version: node.version,
        before: node.data.clone(),
        after,
    })
}

#[cfg(test)]
mod tests;
