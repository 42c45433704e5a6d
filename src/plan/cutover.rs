//! Owns what the planner concludes from the facts around a cut-over: the write-block budget
//! and whether `max_write_block` fits it, a 2.5 drain that can never complete (no empty
//! writes), what each listed meta-proxy serves, a target that
//! refuses writes, the config-sync speed-up as a cluster change, and warnings for
//! applications (non-idempotent writes refused while duplicating). Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::budget::Budget;
use super::observed::{ClusterObs, Observed, ProxyServes, Relays, TableObs};
use super::{Blocker, ClusterChange, TablePlan};
use crate::pegasus::envs::{MASTER_CLUSTER_ENV, MASTER_METAS_ENV};
use crate::spec::{Migration, Spec, VerifyMode};

fn blocker(code: &str, reason: String, fix: String) -> Blocker {
    Blocker {
        code: code.into(),
        reason,
        fix,
    }
}

fn secs(ms: u64) -> String {
    let s = Duration::from_millis(ms).as_secs_f64();
    if ms % 1000 == 0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// The speed-up the plan asks for on `m`'s source.
#[must_use]
pub fn speed_up(spec: &Spec, m: &Migration) -> Option<Duration> {
    spec.clusters
        .get(&m.from)
        .and_then(|c| c.config_sync_during_cutover)
}

/// The source's facts, or what is assumed when they were not observed.
fn source_of<'a>(observed: &'a Observed, m: &Migration) -> std::borrow::Cow<'a, ClusterObs> {
    observed.clusters.get(&m.from).map_or_else(
        || std::borrow::Cow::Owned(ClusterObs::default()),
        std::borrow::Cow::Borrowed,
    )
}

/// The cut-over budget of `m`.
#[must_use]
pub fn budget(spec: &Spec, m: &Migration, observed: &Observed) -> Budget {
    Budget::of(&source_of(observed, m), speed_up(spec, m), m.block_mode)
        .with_exact_check(m.verify != VerifyMode::Off)
}

/// A blocker when `max_write_block` cannot hold the cut-over's budget.
#[must_use]
pub fn budget_blocker(spec: &Spec, m: &Migration, observed: &Observed) -> Option<Blocker> {
    let b = budget(spec, m, observed);
    let have = u64::try_from(m.max_write_block.as_millis()).unwrap_or(u64::MAX);
    if have >= b.needed_ms() {
        return None;
    }
    let source = source_of(observed, m);
    let drain = match b.empty_write_ms {
        Some(gc) => format!(
            "up to {} to drain (a 2.5 source ships a partition's last write after its next empty write: group_check_interval_ms {gc})",
            secs(b.drain_ms)
        ),
        None => format!("up to {} to drain", secs(b.drain_ms)),
    };
    let exact = if b.exact_check_ms > 0 {
        format!(
            "{} to compare the keys the verify gate leaves to the switch, ",
            secs(b.exact_check_ms)
        )
    } else {
        String::new()
    };
    let reason = format!(
        "max_write_block {} cannot hold the cut-over: up to {} for the block to reach every primary (config_sync_interval_ms {} on {}), {drain}, {exact}{} to send the switch and learn its outcome, and {} reserved to restore writes",
        secs(have),
        secs(b.takes_effect_ms),
        b.config_sync_ms,
        m.from,
        secs(b.switch_ms),
        secs(b.restore_ms)
    );
    let mut fix = format!(
        "set max_write_block to at least {}",
        secs(b.needed_ms().div_ceil(1000) * 1000)
    );
    if speed_up(spec, m).is_none() && source.speed_up_takes_effect() && b.config_sync_ms > 1000 {
        fix.push_str(&format!(
            ", or set config_sync_during_cutover: 1s on cluster {}",
            m.from
        ));
    }
    Some(blocker("write_block_budget", reason, fix))
}

/// Blockers for a source table whose own log carries mutations its duplication may drop
/// without a word (upstream apache/incubator-pegasus#2284, v2.5.0 and master): a batch whose
/// last mutation is a DUPLICATE (the table is itself a duplication follower) or, on master, a
/// BULK_LOAD is skipped while the shipped decree moves on, so the drain and the finish count
/// it shipped.
#[must_use]
pub fn silent_loss_blockers(m: &Migration, obs: &TableObs, observed: &Observed) -> Vec<Blocker> {
    let Some(app) = &obs.source else {
        return vec![];
    };
    let mut out = Vec::new();
    let master_of = [MASTER_CLUSTER_ENV, MASTER_METAS_ENV]
        .iter()
        .find_map(|k| app.envs.get(*k).map(|v| format!("{k}={v}")));
    if let Some(env) = master_of {
        out.push(blocker(
            "source_is_a_duplication_follower",
            format!(
                "{} on {} is a duplication follower ({env}): writes a duplication ships into it are logged as DUPLICATE mutations, and {}'s duplication to {} skips a batch that ends with one while counting it shipped (apache/incubator-pegasus#2284), so writes could be lost without a trace",
                m.table, m.from, m.from, m.to
            ),
            format!(
                "remove the duplication that ships into {} (on the cluster named in {env}); once none does, delete the envs {MASTER_CLUSTER_ENV} and {MASTER_METAS_ENV} from {} on {}",
                m.table, m.table, m.from
            ),
        ));
    }
    let master = observed.clusters.get(&m.from).is_some_and(|c| c.master);
    if app.bulk_loading && master {
        out.push(blocker(
            "source_is_bulk_loading",
            format!(
                "a bulk load is running on {} on {}: its BULK_LOAD mutations make {}'s duplication skip a batch while counting it shipped (apache/incubator-pegasus#2284, master)",
                m.table, m.from, m.from
            ),
            format!("wait until the bulk load of {} has finished, then plan again", m.table),
        ));
    }
    out
}

/// The table env listing the users the legacy access control lets in.
const ALLOWED_USERS_ENV: &str = "replica_access_controller.allowed_users";

/// A blocker when the source's replica servers check each client's user and would refuse
/// migrator's: it does not authenticate (no SASL), so its probe write meets `ERR_ACL_DENY`
/// before the deny check (`replica_2pc.cpp` `on_client_write`, v2.5.0 and master) and the
/// block could never be evidenced. Legacy ACL lets anyone in while the table lists no allowed
/// users; Ranger matches no policy for an anonymous client.
#[must_use]
pub fn access_control_blocker(
    m: &Migration,
    obs: &TableObs,
    observed: &Observed,
) -> Option<Blocker> {
    let acl = observed.access_control.get(&m.from)?;
    let allowed = obs
        .source
        .as_ref()
        .and_then(|a| a.envs.get(ALLOWED_USERS_ENV))
        .filter(|users| users.split(',').any(|u| !u.trim().is_empty()));
    let (flag, servers) = if !acl.ranger.is_empty() {
        ("enable_ranger_acl", &acl.ranger)
    } else if !acl.legacy.is_empty() && allowed.is_some() {
        ("enable_acl", &acl.legacy)
    } else {
        return None;
    };
    let whom = allowed.map_or_else(String::new, |u| {
        format!(" and {} lets in only {u}", m.table)
    });
    Some(blocker(
        "access_control",
        format!(
            "{flag} is on on {} ({}){whom}: migrator does not authenticate, so its probe writes would be refused with ERR_ACL_DENY before the deny check and the write block could never be seen in force",
            m.from,
            servers.join(", ")
        ),
        format!(
            "migrate {} while {flag} is off on {}'s replica servers and metas, or (legacy ACL) with the table env {ALLOWED_USERS_ENV} empty for the window",
            m.table, m.from
        ),
    ))
}

/// Blockers for a 2.5 source whose primaries write no empty mutation: its drain waits for one
/// (the last write ships only after a later mutation), so every cut-over would give up.
#[must_use]
pub fn empty_write_blockers(m: &Migration, observed: &Observed) -> Vec<Blocker> {
    let on_2_5 = observed.clusters.get(&m.from).is_some_and(|c| !c.master);
    let Some(off) = observed.no_empty_write.get(&m.from).filter(|_| on_2_5) else {
        return vec![];
    };
    let why = |flag: &str, servers: &[String]| {
        format!(
            "{flag} is true on {} replica server(s) of {} ({}): a 2.5 source ships a partition's last write only after its primary's next empty write, which never comes, so the drain would never complete and the cut-over would give up at its deadline",
            servers.len(),
            m.from,
            servers.join(", ")
        )
    };
    let mut out = vec![];
    if !off.empty_write_disabled.is_empty() {
        out.push(blocker(
            "empty_write_disabled",
            why("empty_write_disabled", &off.empty_write_disabled),
            "set it to false on each of them (GET /updateConfig?empty_write_disabled=false on the replica server's port; also in [replication] of its config file, or a restart sets it again), then plan again".into(),
        ));
    }
    if !off.group_check_disabled.is_empty() {
        out.push(blocker(
            "group_check_disabled",
            why("group_check_disabled", &off.group_check_disabled),
            "set group_check_disabled = false in [replication] of their config file and restart them (the flag cannot change at run time), then plan again".into(),
        ));
    }
    out
}

/// Blockers from what the listed meta-proxies serve, for a table routed to `expected`.
#[must_use]
pub fn proxy_blockers(
    m: &Migration,
    obs: &TableObs,
    expected: &str,
    observed: &Observed,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    for p in &obs.proxies {
        let wrong = match &p.serves {
            ProxyServes::Cluster(c) if c == expected => continue,
            ProxyServes::Cluster(c) => format!("serves it from {c}"),
            ProxyServes::Elsewhere => "serves it from a cluster outside this plan".into(),
            ProxyServes::Error(e) => format!("answers {e}"),
            ProxyServes::NoAnswer => "does not answer".into(),
            ProxyServes::Unreachable(e) => format!("is unreachable ({e})"),
        };
        let stale = matches!(p.serves, ProxyServes::Cluster(_) | ProxyServes::Elsewhere);
        let (code, fix) = if stale {
            ("metaproxy_stale", "a meta-proxy whose ZooKeeper watch ended keeps a stale route until restarted: restart it, then plan again")
        } else {
            ("metaproxy_unanswered", "check that meta-proxy instance (a build from the 2021 code answers nothing for tables on a 2.6 cluster), then plan again")
        };
        let reason = format!(
            "meta-proxy {} {wrong}, but routing sends {} to {expected}",
            p.addr, m.table
        );
        out.push(blocker(code, reason, fix.into()));
    }
    let target_master = observed.clusters.get(&m.to).is_some_and(|c| c.master);
    if target_master {
        for (addr, relays) in &observed.proxy_relays_master {
            match relays {
                Relays::Yes { .. } => {}
                Relays::No { evidence } => out.push(blocker(
                    "metaproxy_cannot_relay",
                    format!("meta-proxy {addr} cannot relay {}, a 2.6 cluster: {evidence}", m.to),
                    "replace it with a build whose client reads host_port fields, then plan again".into(),
                )),
                Relays::Unknown => out.push(blocker(
                    "metaproxy_relay_unknown",
                    format!("nothing shows that meta-proxy {addr} can relay {}, a 2.6 cluster (a build from the 2021 code answers nothing for it)", m.to),
                    format!("route a table of {} through it (a node under the meta-proxy root naming {}), check a client gets answers, then plan again", m.to, m.to),
                )),
            }
        }
    }
    out
}

/// A target table that refuses writes would refuse the clients after the switch.
#[must_use]
pub fn target_blocker(m: &Migration, obs: &TableObs) -> Option<Blocker> {
    let deny = obs.target_deny.as_ref()?;
    Some(blocker(
        "target_denies_writes",
        format!("{} of {} has replica.deny_client_request={deny}: clients would be refused after the switch", m.table, m.to),
        format!("find out why it is set on {}; delete it there, then plan again", m.to),
    ))
}

/// Warnings for the applications and operators of `m`'s table.
#[must_use]
pub fn warnings(m: &Migration, obs: &TableObs, observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if obs.source.as_ref().is_some_and(|s| !s.atomic_idempotent) {
        out.push(format!(
            "while {} is duplicated (from the moment the duplication exists until it is removed), {} refuses incr, check_and_set and check_and_mutate with ERR_OPERATION_DISABLED",
            m.table, m.from
        ));
    }
    if let Some(c) = observed
        .clusters
        .get(&m.from)
        .filter(|c| !c.dead_nodes.is_empty())
    {
        out.push(format!(
            "{} lists dead replica servers {}; their partitions are served elsewhere",
            m.from,
            c.dead_nodes.join(", ")
        ));
    }
    out
}

/// The speed-up of each source cluster that has a cut-over ahead.
#[must_use]
pub fn cluster_changes(
    spec: &Spec,
    tables: &[TablePlan],
    observed: &Observed,
) -> Vec<ClusterChange> {
    let mut by_source: BTreeMap<&str, Duration> = BTreeMap::new();
    for t in tables.iter().filter(|t| {
        t.steps
            .iter()
            .any(|s| s.kind == super::StepKind::BlockWrites)
    }) {
        if let Some(d) = spec
            .clusters
            .get(&t.from)
            .and_then(|c| c.config_sync_during_cutover)
        {
            by_source.insert(&t.from, d);
        }
    }
    by_source
        .into_iter()
        .map(|(cluster, to)| {
            let obs = observed.clusters.get(cluster).cloned().unwrap_or_default();
            let mut values: Vec<u64> = obs.config_sync_ms.values().copied().collect();
            values.sort_unstable();
            values.dedup();
            let before = if values.is_empty() {
                "unknown".to_string()
            } else {
                values.iter().map(u64::to_string).collect::<Vec<_>>().join("/")
            };
            let after = u64::try_from(to.as_millis()).unwrap_or(u64::MAX).to_string();
            let (note, applied) = if obs.master {
                ("not applied: on 2.6 (master) servers /updateConfig changes the flag but not the config-sync timer (it reaches the metrics service's no-op hook); the block still takes up to one full config sync".to_string(), false)
            } else if !obs.fixed_sync_timer.is_empty() {
                (format!("not applied: replica server(s) {} run a build whose /updateConfig does not re-arm the config-sync timer (master, or not known to: `server-info`), as in a cluster mid-upgrade; the block still takes up to one full config sync", obs.fixed_sync_timer.join(", ")), false)
            } else {
                ("set with /updateConfig before the first cut-over (in force one old interval later); the values read are restored when the cluster's last cut-over ends, or by the next apply or abort if migrator stops first".to_string(), true)
            };
            ClusterChange {
                cluster: cluster.to_string(),
                what: format!(
                    "config_sync_interval_ms on {} replica server(s)",
                    obs.config_sync_ms.len()
                ),
                before,
                after,
                note,
                applied,
            }
        })
        .collect()
}
