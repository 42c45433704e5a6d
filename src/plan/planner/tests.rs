//! Table-driven planner tests: one case per phase and per blocker, plus mixed plans.

use std::collections::BTreeMap;

use super::*;
use crate::plan::observed::{DupObs, Observed, RoutingNode, RoutingObs, SourceApp};
use crate::spec::{load_str, BlockMode};

fn spec(metaproxy: bool, remove_duplication: bool) -> Spec {
    let mp = if metaproxy {
        "metaproxy: { zookeeper: [\"z:2181\"], root: /mp }\n"
    } else {
        ""
    };
    let text = format!(
        "version: 1\nclusters:\n  a: {{ meta: [\"a1:1\", \"a2:1\"] }}\n  b: {{ meta: [\"b1:1\", \"b2:1\"] }}\n{mp}\
         defaults: {{ threshold: 100, remove_duplication: {remove_duplication} }}\nmigrations:\n  - {{ table: t, from: a, to: b }}\n"
    );
    load_str("test.yaml", &text).unwrap()
}

fn route(cluster: &str) -> String {
    format!("{{\"cluster_name\":\"{cluster}\",\"meta_addrs\":\"x:1,y:1\"}}")
}

/// A healthy table on `a`, routed to `a`, with nothing started.
fn fresh() -> TableObs {
    TableObs {
        source: Some(SourceApp {
            app_id: 3,
            status: "AS_AVAILABLE".into(),
            partition_count: 4,
            envs: BTreeMap::new(),
        }),
        dups: vec![],
        data_versions: [
            ("r1:1".to_string(), "1".to_string()),
            ("r2:1".into(), "1".into()),
        ]
        .into(),
        target: TargetObs::Absent,
        routing: Some(RoutingObs {
            path: "/mp/t".into(),
            node: Some(RoutingNode {
                data: route("a"),
                version: 4,
                cluster_name: Some("a".into()),
                invalid: None,
            }),
        }),
    }
}

fn with_dup(mut obs: TableObs, status: &str, lag: i64) -> TableObs {
    obs.dups = vec![DupObs {
        dupid: 9,
        status: status.into(),
        lag: Some(lag),
    }];
    if status != "DS_PREPARE" {
        obs.target = TargetObs::Follower { app_id: 1 };
    }
    obs
}

fn with_env(mut obs: TableObs, value: &str) -> TableObs {
    obs.source
        .as_mut()
        .unwrap()
        .envs
        .insert(DENY_ENV.into(), value.into());
    obs
}

fn routed(mut obs: TableObs, cluster: &str) -> TableObs {
    let node = obs.routing.as_mut().unwrap().node.as_mut().unwrap();
    node.data = route(cluster);
    node.cluster_name = Some(cluster.into());
    obs
}

fn plan_one(spec: &Spec, obs: TableObs) -> TablePlan {
    let observed = Observed {
        tables: [("t".to_string(), obs)].into(),
    };
    plan(spec, &observed).tables.remove(0)
}

fn kinds(tp: &TablePlan) -> Vec<StepKind> {
    tp.steps.iter().map(|s| s.kind).collect()
}

/// A phase case: name, observed facts, expected action, phase and remaining steps.
type PhaseCase = (
    &'static str,
    TableObs,
    Action,
    Option<StepKind>,
    Vec<StepKind>,
);

#[test]
fn phases() {
    use StepKind::*;
    let s = spec(true, false);
    let cases: Vec<PhaseCase> = vec![
        (
            "fresh table migrates fully",
            fresh(),
            Action::Migrate,
            Some(Preflight),
            StepKind::ALL.to_vec(),
        ),
        (
            "preparing duplication resumes at checkpoint",
            with_dup(fresh(), "DS_PREPARE", 0),
            Action::Resume,
            Some(Checkpoint),
            vec![
                Preflight,
                Checkpoint,
                CatchUp,
                BlockWrites,
                Drain,
                Switch,
                Finish,
            ],
        ),
        (
            "duplication in DS_APP resumes at checkpoint",
            with_dup(fresh(), "DS_APP", 0),
            Action::Resume,
            Some(Checkpoint),
            vec![
                Preflight,
                Checkpoint,
                CatchUp,
                BlockWrites,
                Drain,
                Switch,
                Finish,
            ],
        ),
        (
            "lagging duplication resumes at catch-up",
            with_dup(fresh(), "DS_LOG", 5000),
            Action::Resume,
            Some(CatchUp),
            vec![Preflight, CatchUp, BlockWrites, Drain, Switch, Finish],
        ),
        (
            "interrupted block resumes at block writes",
            with_env(with_dup(fresh(), "DS_LOG", 3), "timeout*write"),
            Action::Resume,
            Some(BlockWrites),
            vec![Preflight, BlockWrites, Drain, Switch, Finish],
        ),
        (
            "switched but source not reconfigured resumes at switch",
            routed(with_dup(fresh(), "DS_LOG", 0), "b"),
            Action::Resume,
            Some(Switch),
            vec![Switch, Finish],
        ),
        (
            "switched and reconfigured is done",
            with_env(routed(with_dup(fresh(), "DS_LOG", 0), "b"), "reconfig*all"),
            Action::Done,
            None,
            vec![],
        ),
    ];
    for (name, obs, action, phase, steps) in cases {
        let tp = plan_one(&s, obs);
        assert_eq!(
            (tp.action, tp.phase, kinds(&tp)),
            (action, phase, steps),
            "{name}: {tp:#?}"
        );
        assert!(tp.blockers.is_empty(), "{name}");
    }
}

#[test]
fn blockers() {
    let s = spec(true, false);
    let missing = TableObs {
        source: None,
        ..fresh()
    };
    let mut dropped = fresh();
    dropped.source.as_mut().unwrap().status = "AS_DROPPED".into();
    let mut v0 = fresh();
    v0.data_versions.insert("r3:1".into(), "0".into());
    let no_versions = TableObs {
        data_versions: BTreeMap::new(),
        ..fresh()
    };
    let unrelated = TableObs {
        target: TargetObs::Unrelated { app_id: 8 },
        ..fresh()
    };
    let mut no_node = fresh();
    no_node.routing.as_mut().unwrap().node = None;
    let mut bad_node = fresh();
    bad_node
        .routing
        .as_mut()
        .unwrap()
        .node
        .as_mut()
        .unwrap()
        .invalid = Some("not JSON".into());
    let cases: Vec<(&str, TableObs, &str)> = vec![
        ("source missing", missing, "source_missing"),
        ("source dropped", dropped, "source_missing"),
        ("data version 0", v0, "data_version"),
        ("no data versions", no_versions, "data_version_unknown"),
        (
            "target exists and is not the follower",
            unrelated,
            "target_exists",
        ),
        (
            "routing at a third cluster",
            routed(fresh(), "c"),
            "routing_elsewhere",
        ),
        ("routing node missing", no_node, "routing_missing"),
        ("routing node unusable", bad_node, "routing_invalid"),
        (
            "duplication paused",
            with_dup(fresh(), "DS_PAUSE", 7),
            "dup_paused",
        ),
        (
            "follower left by a removed duplication",
            TableObs {
                target: TargetObs::Follower { app_id: 2 },
                ..fresh()
            },
            "target_orphaned",
        ),
        (
            "deny env set by someone else",
            with_env(fresh(), "timeout*all"),
            "deny_env_set",
        ),
        (
            "our block value without a duplication",
            with_env(fresh(), "timeout*write"),
            "deny_env_set",
        ),
        (
            "reconfig*all before any switch",
            with_env(with_dup(fresh(), "DS_LOG", 0), "reconfig*all"),
            "deny_env_set",
        ),
    ];
    for (name, obs, code) in cases {
        let tp = plan_one(&s, obs);
        assert_eq!(tp.action, Action::Blocked, "{name}");
        assert!(tp.steps.is_empty(), "{name}");
        assert!(
            tp.blockers.iter().any(|b| b.code == code),
            "{name}: {:?}",
            tp.blockers
        );
        assert!(
            tp.blockers.iter().all(|b| !b.fix.is_empty()),
            "{name}: every blocker says what to do"
        );
    }
}

#[test]
fn switch_step_spells_out_the_compare_and_set() {
    let tp = plan_one(&spec(true, false), fresh());
    let switch = tp
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Switch)
        .unwrap();
    let StepDetail::Switch {
        routing: Some(change),
        source_env_value,
    } = &switch.detail
    else {
        panic!("{switch:?}")
    };
    assert_eq!((change.path.as_str(), change.version), ("/mp/t", 4));
    assert_eq!(change.before, route("a"));
    assert_eq!(
        change.after,
        "{\"cluster_name\":\"b\",\"meta_addrs\":\"b1:1,b2:1\"}"
    );
    assert_eq!(source_env_value, "reconfig*all");
}

#[test]
fn without_metaproxy_the_plan_says_the_switch_is_manual() {
    let mut obs = fresh();
    obs.routing = None;
    let tp = plan_one(&spec(false, false), obs.clone());
    assert_eq!(tp.action, Action::Migrate);
    assert!(tp
        .notes
        .iter()
        .any(|n| n.contains("switch clients by hand")));
    let switch = tp
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Switch)
        .unwrap();
    assert!(matches!(
        switch.detail,
        StepDetail::Switch { routing: None, .. }
    ));
    let done = with_env(with_dup(obs, "DS_LOG", 0), "reconfig*all");
    assert_eq!(plan_one(&spec(false, false), done).action, Action::Done);
}

#[test]
fn removing_the_duplication_is_a_remaining_finish_step() {
    let obs = with_env(routed(with_dup(fresh(), "DS_LOG", 0), "b"), "reconfig*all");
    let tp = plan_one(&spec(true, true), obs.clone());
    assert_eq!(
        (tp.action, kinds(&tp)),
        (Action::Resume, vec![StepKind::Finish])
    );
    let removed = TableObs {
        dups: vec![],
        ..obs
    };
    assert_eq!(plan_one(&spec(true, true), removed).action, Action::Done);
}

#[test]
fn block_mode_shows_in_the_block_step_and_notes() {
    let mut s = spec(true, false);
    s.migrations[0].block_mode = BlockMode::Reconfig;
    let tp = plan_one(&s, fresh());
    let block = tp
        .steps
        .iter()
        .find(|s| s.kind == StepKind::BlockWrites)
        .unwrap();
    assert!(
        matches!(&block.detail, StepDetail::BlockWrites { env_value, .. } if env_value == "reconfig*write")
    );
    assert!(tp.notes[0].contains("ERR_INVALID_STATE"));
}

#[test]
fn a_mixed_plan_counts_each_action() {
    let text = "version: 1\nclusters:\n  a: { meta: [\"a1:1\", \"a2:1\"] }\n  b: { meta: [\"b1:1\", \"b2:1\"] }\n\
                metaproxy: { zookeeper: [\"z:2181\"], root: /mp }\nmigrations:\n\
                - { table: t1, from: a, to: b }\n- { table: t2, from: a, to: b }\n\
                - { table: t3, from: a, to: b }\n- { table: t4, from: a, to: b }\n- { table: t5, from: a, to: b }\n";
    let s = load_str("mixed.yaml", text).unwrap();
    let observed = Observed {
        tables: [
            ("t1".to_string(), fresh()),
            ("t2".into(), fresh()),
            ("t3".into(), with_dup(fresh(), "DS_LOG", 10)),
            (
                "t4".into(),
                with_env(routed(with_dup(fresh(), "DS_LOG", 0), "b"), "reconfig*all"),
            ),
            ("t5".into(), routed(fresh(), "c")),
        ]
        .into(),
    };
    let p = plan(&s, &observed);
    let sum = p.summary();
    assert_eq!(
        (sum.migrate, sum.resume, sum.done, sum.blocked),
        (2, 1, 1, 1)
    );
    assert!(p.has_changes());
    let unknown = plan(&s, &Observed::default());
    assert_eq!(
        unknown.summary().blocked,
        5,
        "a table nobody observed is never planned as migratable"
    );
}
