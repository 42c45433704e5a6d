//! Owns the per-table fingerprint of what a plan was computed from, and `diff`, which names
//! what changed since (the reason a saved plan is stale).
//!
//! Only facts that change what apply would do are included: progress that the servers make on
//! their own (lag, a duplication advancing from DS_APP to DS_LOG) is not staleness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::observed::{TableObs, TargetObs};
use crate::pegasus::envs::DENY_ENV;

/// The facts of one table a plan depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Source app id, status and partition count; `None` if the table was missing.
    pub source: Option<(i32, String, i32)>,
    /// The source's `replica.deny_client_request`, if set.
    pub deny_env: Option<String>,
    /// Duplications to the target: id and whether it was paused.
    pub dups: Vec<(i32, bool)>,
    pub data_versions: BTreeMap<String, String>,
    pub target: TargetObs,
    /// Routing node data and version; `None` without meta-proxy or when the node was missing.
    pub routing: Option<(String, i32)>,
}

/// The fingerprint of `obs`.
#[must_use]
pub fn of(obs: &TableObs) -> Fingerprint {
    Fingerprint {
        source: obs
            .source
            .as_ref()
            .map(|s| (s.app_id, s.status.clone(), s.partition_count)),
        deny_env: obs
            .source
            .as_ref()
            .and_then(|s| s.envs.get(DENY_ENV).cloned()),
        dups: obs
            .dups
            .iter()
            .map(|d| (d.dupid, d.status == "DS_PAUSE"))
            .collect(),
        data_versions: obs.data_versions.clone(),
        target: obs.target.clone(),
        routing: obs
            .routing
            .as_ref()
            .and_then(|r| r.node.as_ref())
            .map(|n| (n.data.clone(), n.version)),
    }
}

/// What changed from `then` to `now`, one phrase per fact; empty when nothing did.
#[must_use]
pub fn diff(then: &Fingerprint, now: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let mut changed = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what} changed from {a} to {b}"));
        }
    };
    changed(
        "source table",
        show_source(then.source.as_ref()),
        show_source(now.source.as_ref()),
    );
    changed(
        DENY_ENV,
        show_opt(then.deny_env.as_deref()),
        show_opt(now.deny_env.as_deref()),
    );
    changed(
        "duplications",
        format!("{:?}", then.dups),
        format!("{:?}", now.dups),
    );
    changed(
        "data versions",
        format!("{:?}", then.data_versions),
        format!("{:?}", now.data_versions),
    );
    changed(
        "target table",
        format!("{:?}", then.target),
        format!("{:?}", now.target),
    );
    let routing = |r: Option<&(String, i32)>| {
        r.map_or("absent".into(), |(d, v)| format!("{d} (version {v})"))
    };
    changed(
        "routing node",
        routing(then.routing.as_ref()),
        routing(now.routing.as_ref()),
    );
    out
}

fn show_source(s: Option<&(i32, String, i32)>) -> String {
    s.map_or("absent".into(), |(id, status, n)| {
        format!("app {id} {status} with {n} partitions")
    })
}

fn show_opt(v: Option<&str>) -> String {
    v.map_or("unset".into(), |v| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::observed::{DupObs, RoutingNode, RoutingObs};

    #[test]
    fn lag_and_duplication_progress_are_not_staleness() {
        let mut obs = TableObs {
            dups: vec![DupObs {
                dupid: 7,
                status: "DS_APP".into(),
                lag: Some(5),
            }],
            ..TableObs::default()
        };
        let then = of(&obs);
        obs.dups[0] = DupObs {
            dupid: 7,
            status: "DS_LOG".into(),
            lag: Some(0),
        };
        assert!(diff(&then, &of(&obs)).is_empty());
    }

    #[test]
    fn a_routing_change_is_named_with_both_versions() {
        let node = |data: &str, version| RoutingObs {
            path: "/r/t".into(),
            node: Some(RoutingNode {
                data: data.into(),
                version,
                cluster_name: None,
                invalid: None,
            }),
        };
        let a = TableObs {
            routing: Some(node("A", 1)),
            ..TableObs::default()
        };
        let b = TableObs {
            routing: Some(node("B", 2)),
            ..TableObs::default()
        };
        assert_eq!(
            diff(&of(&a), &of(&b)),
            vec!["routing node changed from A (version 1) to B (version 2)".to_string()]
        );
    }
}
