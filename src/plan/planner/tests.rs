//! Table-driven planner tests: one case per phase and per blocker, plus mixed plans.

use std::collections::BTreeMap;

use super::*;
use crate::plan::observed::{
    ClusterObs, DupObs, Observed, ProxyObs, ProxyServes, Relays, RoutingNode, RoutingObs, SourceApp,
};
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
            atomic_idempotent: false,
            bulk_loading: false,
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
        proxies: vec![],
        target_deny: None,
        block: None,
    }
}

/// Facts of a 2.5 source with a 1 s config sync and a 1 s group check.
fn source_facts() -> ClusterObs {
    ClusterObs {
        master: false,
        config_sync_ms: [("r1:1".to_string(), 1000)].into(),
        group_check_ms: Some(1000),
        dead_nodes: vec![],
        fixed_sync_timer: vec![],
    }
}

fn observed_of(tables: Vec<(&str, TableObs)>) -> Observed {
    Observed {
        tables: tables
            .into_iter()
            .map(|(t, o)| (t.to_string(), o))
            .collect(),
        clusters: [("a".to_string(), source_facts())].into(),
        proxy_relays_master: BTreeMap::new(),
        no_empty_write: BTreeMap::new(),
        access_control: BTreeMap::new(),
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
    plan(spec, &observed_of(vec![("t", obs)])).tables.remove(0)
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
                Verify,
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
                Verify,
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
            vec![
                Preflight,
                CatchUp,
                Verify,
                BlockWrites,
                Drain,
                Switch,
                Finish,
            ],
        ),
        (
            "interrupted block resumes at block writes",
            with_env(with_dup(fresh(), "DS_LOG", 3), "reconfig*write"),
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
        (
            "switched, then routing moved back by someone",
            TableObs {
                block: Some(crate::cutover::record::BlockState::Switched),
                ..with_env(with_dup(fresh(), "DS_LOG", 0), "reconfig*write")
            },
            "routing_moved_back",
        ),
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
            with_env(fresh(), "reconfig*write"),
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
fn a_2_5_threshold_below_the_partition_count_blocks_while_catch_up_is_ahead() {
    let spec_with = |threshold: u64| {
        let text = format!(
            "version: 1\nclusters:\n  a: {{ meta: [\"a1:1\", \"a2:1\"] }}\n  b: {{ meta: [\"b1:1\", \"b2:1\"] }}\n\
             metaproxy: {{ zookeeper: [\"z:2181\"], root: /mp }}\n\
             defaults: {{ threshold: {threshold} }}\nmigrations:\n  - {{ table: t, from: a, to: b }}\n"
        );
        load_str("test.yaml", &text).unwrap()
    };
    let master = ClusterObs {
        master: true,
        ..source_facts()
    };
    // name, threshold, source is master, observed table (4 partitions), blocked
    let cases: Vec<(&str, u64, bool, TableObs, bool)> = vec![
        ("2.5, threshold 3 < 4 partitions", 3, false, fresh(), true),
        (
            "2.5, threshold 3 while catching up",
            3,
            false,
            with_dup(fresh(), "DS_LOG", 9),
            true,
        ),
        ("2.5, threshold 4 = partitions", 4, false, fresh(), false),
        (
            "master ships every write: 1 is fine",
            1,
            true,
            fresh(),
            false,
        ),
        (
            "2.5, an open block resumes past catch-up",
            3,
            false,
            with_env(with_dup(fresh(), "DS_LOG", 4), "reconfig*write"),
            false,
        ),
    ];
    for (name, threshold, is_master, obs, blocked) in cases {
        let mut observed = observed_of(vec![("t", obs)]);
        if is_master {
            observed.clusters.insert("a".into(), master.clone());
        }
        let tp = plan(&spec_with(threshold), &observed).tables.remove(0);
        let found = tp
            .blockers
            .iter()
            .find(|b| b.code == "threshold_below_partitions");
        assert_eq!(found.is_some(), blocked, "{name}: {:?}", tp.blockers);
        if let Some(b) = found {
            assert_eq!(tp.action, Action::Blocked, "{name}");
            assert!(b.fix.contains("at least 4"), "{name}: {}", b.fix);
        }
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
    let cases = [
        (BlockMode::Reconfig, "reconfig*write", "ERR_INVALID_STATE"),
        (BlockMode::Timeout, "timeout*write", "no reply"),
    ];
    for (mode, value, note) in cases {
        let mut s = spec(true, false);
        s.migrations[0].block_mode = mode;
        let tp = plan_one(&s, fresh());
        let block = tp
            .steps
            .iter()
            .find(|s| s.kind == StepKind::BlockWrites)
            .unwrap();
        assert!(
            matches!(&block.detail, StepDetail::BlockWrites { env_value, .. } if env_value == value),
            "{mode:?}"
        );
        assert!(tp.notes[0].contains(note), "{mode:?}: {}", tp.notes[0]);
    }
    assert_eq!(
        BlockMode::default(),
        BlockMode::Reconfig,
        "reconfig is the default"
    );
}

#[test]
fn a_mixed_plan_counts_each_action() {
    let text = "version: 1\nclusters:\n  a: { meta: [\"a1:1\", \"a2:1\"] }\n  b: { meta: [\"b1:1\", \"b2:1\"] }\n\
                metaproxy: { zookeeper: [\"z:2181\"], root: /mp }\nmigrations:\n\
                - { table: t1, from: a, to: b }\n- { table: t2, from: a, to: b }\n\
                - { table: t3, from: a, to: b }\n- { table: t4, from: a, to: b }\n- { table: t5, from: a, to: b }\n";
    let s = load_str("mixed.yaml", text).unwrap();
    let observed = observed_of(vec![
        ("t1", fresh()),
        ("t2", fresh()),
        ("t3", with_dup(fresh(), "DS_LOG", 10)),
        (
            "t4",
            with_env(routed(with_dup(fresh(), "DS_LOG", 0), "b"), "reconfig*all"),
        ),
        ("t5", routed(fresh(), "c")),
    ]);
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

/// A cut-over case: name, source facts, plan-file tweak, observed table, expected blocker codes.
type CutoverCase = (
    &'static str,
    ClusterObs,
    &'static str,
    TableObs,
    Vec<&'static str>,
);

fn proxied(mut obs: TableObs, serves: ProxyServes) -> TableObs {
    obs.proxies = vec![ProxyObs {
        addr: "p:1".into(),
        serves,
    }];
    obs
}

#[test]
fn cut_over_facts_block_or_pass() {
    let slow = ClusterObs {
        config_sync_ms: [("r1:1".to_string(), 30_000)].into(),
        group_check_ms: Some(10_000),
        ..source_facts()
    };
    let master_slow = ClusterObs {
        master: true,
        ..slow.clone()
    };
    let cases: Vec<CutoverCase> = vec![
        ("fast sync fits 60s", source_facts(), "", fresh(), vec![]),
        (
            "30 s sync and two 10 s group checks do not fit 60s",
            slow.clone(),
            "",
            fresh(),
            vec!["write_block_budget"],
        ),
        (
            "on 2.5 the speed-up shortens the block's taking effect, not the restore at 30 s",
            slow.clone(),
            "1s",
            fresh(),
            vec!["write_block_budget"],
        ),
        (
            "the speed-up does not help on master",
            master_slow,
            "1s",
            fresh(),
            vec!["write_block_budget"],
        ),
        (
            "a proxy serving the source is fine",
            source_facts(),
            "",
            proxied(fresh(), ProxyServes::Cluster("a".into())),
            vec![],
        ),
        (
            "a proxy serving the target before the switch is stale",
            source_facts(),
            "",
            proxied(fresh(), ProxyServes::Cluster("b".into())),
            vec!["metaproxy_stale"],
        ),
        (
            "a silent proxy blocks",
            source_facts(),
            "",
            proxied(fresh(), ProxyServes::NoAnswer),
            vec!["metaproxy_unanswered"],
        ),
        (
            "a target that denies writes blocks",
            source_facts(),
            "",
            TableObs {
                target_deny: Some("reconfig*all".into()),
                ..fresh()
            },
            vec!["target_denies_writes"],
        ),
    ];
    for (name, facts, speed_up, obs, want) in cases {
        let mut s = spec(true, false);
        if !speed_up.is_empty() {
            let d = crate::spec::parse_duration(speed_up).unwrap();
            s.clusters.get_mut("a").unwrap().config_sync_during_cutover = Some(d);
        }
        let mut observed = observed_of(vec![("t", obs)]);
        observed.clusters.insert("a".into(), facts);
        let tp = plan(&s, &observed).tables.remove(0);
        let codes: Vec<&str> = tp.blockers.iter().map(|b| b.code.as_str()).collect();
        assert_eq!(codes, want, "{name}: {:?}", tp.blockers);
    }
}

#[test]
fn a_2_5_source_whose_primaries_write_no_empty_mutation_blocks() {
    use crate::plan::observed::NoEmptyWrite;
    let servers = |names: &[&str]| names.iter().map(ToString::to_string).collect::<Vec<_>>();
    let cases: Vec<(&str, bool, NoEmptyWrite, Vec<&str>)> = vec![
        (
            "2.5, both flags clear",
            false,
            NoEmptyWrite::default(),
            vec![],
        ),
        (
            "2.5, empty_write_disabled on one server",
            false,
            NoEmptyWrite {
                empty_write_disabled: servers(&["r2:1"]),
                ..NoEmptyWrite::default()
            },
            vec!["empty_write_disabled"],
        ),
        (
            "2.5, group_check_disabled on every server",
            false,
            NoEmptyWrite {
                group_check_disabled: servers(&["r1:1", "r2:1"]),
                ..NoEmptyWrite::default()
            },
            vec!["group_check_disabled"],
        ),
        (
            "2.5, both",
            false,
            NoEmptyWrite {
                empty_write_disabled: servers(&["r1:1"]),
                group_check_disabled: servers(&["r1:1"]),
            },
            vec!["empty_write_disabled", "group_check_disabled"],
        ),
        (
            "master ships the last write at once",
            true,
            NoEmptyWrite {
                empty_write_disabled: servers(&["r1:1"]),
                group_check_disabled: servers(&["r1:1"]),
            },
            vec![],
        ),
    ];
    for (name, master, off, want) in cases {
        let mut observed = observed_of(vec![("t", fresh())]);
        observed.clusters.get_mut("a").unwrap().master = master;
        observed.no_empty_write.insert("a".into(), off);
        let tp = plan(&spec(true, false), &observed).tables.remove(0);
        let codes: Vec<&str> = tp.blockers.iter().map(|b| b.code.as_str()).collect();
        assert_eq!(codes, want, "{name}: {:?}", tp.blockers);
        for b in &tp.blockers {
            assert!(
                b.reason.contains(&b.code)
                    && (b.reason.contains("r1:1") || b.reason.contains("r2:1")),
                "{name}: the reason names the flag and the servers: {}",
                b.reason
            );
            assert!(
                b.fix.contains(&b.code),
                "{name}: the fix names the flag: {}",
                b.fix
            );
        }
    }
}

#[test]
fn a_source_whose_log_its_duplication_may_silently_skip_blocks() {
    let follower = |k: &str| {
        let mut o = fresh();
        o.source.as_mut().unwrap().envs.insert(k.into(), "x".into());
        o
    };
    let loading = || {
        let mut o = fresh();
        o.source.as_mut().unwrap().bulk_loading = true;
        o
    };
    let cases: Vec<(&str, TableObs, bool, Vec<&str>)> = vec![
        ("a plain table", fresh(), true, vec![]),
        (
            "a follower by cluster name",
            follower("duplication.master_cluster"),
            false,
            vec!["source_is_a_duplication_follower"],
        ),
        (
            "a follower by meta list",
            follower("duplication.master_metas"),
            true,
            vec!["source_is_a_duplication_follower"],
        ),
        (
            "a bulk load on master",
            loading(),
            true,
            vec!["source_is_bulk_loading"],
        ),
        (
            "a bulk load on 2.5 (only DUPLICATE is skipped there)",
            loading(),
            false,
            vec![],
        ),
    ];
    for (name, obs, master, want) in cases {
        let mut observed = observed_of(vec![("t", obs)]);
        observed.clusters.get_mut("a").unwrap().master = master;
        let tp = plan(&spec(true, false), &observed).tables.remove(0);
        let codes: Vec<&str> = tp.blockers.iter().map(|b| b.code.as_str()).collect();
        assert_eq!(codes, want, "{name}: {:?}", tp.blockers);
        for b in &tp.blockers {
            assert!(
                b.reason.contains("#2284") && b.reason.contains("t on a"),
                "{name}: {}",
                b.reason
            );
        }
    }
}

#[test]
fn access_control_that_refuses_an_anonymous_client_blocks() {
    use crate::plan::observed::AccessControl;
    let with_users = |users: &str| {
        let mut o = fresh();
        let envs = &mut o.source.as_mut().unwrap().envs;
        envs.insert(
            "replica_access_controller.allowed_users".into(),
            users.into(),
        );
        o
    };
    let on = |legacy: &[&str], ranger: &[&str]| AccessControl {
        legacy: legacy.iter().map(ToString::to_string).collect(),
        ranger: ranger.iter().map(ToString::to_string).collect(),
    };
    let cases: Vec<(&str, TableObs, AccessControl, Option<&str>)> = vec![
        ("off", with_users("svc"), on(&[], &[]), None),
        (
            "legacy, table open to all",
            fresh(),
            on(&["r1:1"], &[]),
            None,
        ),
        (
            "legacy, empty list",
            with_users(" , "),
            on(&["r1:1"], &[]),
            None,
        ),
        (
            "legacy, users listed",
            with_users("svc,ops"),
            on(&["r1:1"], &[]),
            Some("enable_acl"),
        ),
        (
            "ranger",
            fresh(),
            on(&[], &["r2:1"]),
            Some("enable_ranger_acl"),
        ),
    ];
    for (name, obs, acl, want) in cases {
        let mut observed = observed_of(vec![("t", obs)]);
        observed.access_control.insert("a".into(), acl);
        let tp = plan(&spec(true, false), &observed).tables.remove(0);
        let found = tp.blockers.iter().find(|b| b.code == "access_control");
        match (found, want) {
            (None, None) => {}
            (Some(b), Some(flag)) => assert!(
                b.reason.contains(flag)
                    && b.reason.contains("ERR_ACL_DENY")
                    && b.fix.contains(flag),
                "{name}: {b:?}"
            ),
            (found, want) => panic!("{name}: found {found:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn a_2_6_target_needs_proxies_known_to_relay_it() {
    let s = spec(true, false);
    for (relays, want) in [
        (
            Relays::Yes {
                evidence: "x".into(),
            },
            vec![],
        ),
        (
            Relays::No {
                evidence: "x".into(),
            },
            vec!["metaproxy_cannot_relay"],
        ),
        (Relays::Unknown, vec!["metaproxy_relay_unknown"]),
    ] {
        let mut observed = observed_of(vec![("t", fresh())]);
        observed.clusters.insert(
            "b".into(),
            ClusterObs {
                master: true,
                ..source_facts()
            },
        );
        observed.proxy_relays_master.insert("p:1".into(), relays);
        let tp = plan(&s, &observed).tables.remove(0);
        let codes: Vec<&str> = tp.blockers.iter().map(|b| b.code.as_str()).collect();
        assert_eq!(codes, want);
    }
}

#[test]
fn the_speed_up_is_a_cluster_change_only_where_it_works() {
    let mut s = spec(true, false);
    s.clusters.get_mut("a").unwrap().config_sync_during_cutover =
        Some(std::time::Duration::from_secs(1));
    let mut observed = observed_of(vec![("t", fresh())]);
    let p = plan(&s, &observed);
    assert_eq!(p.cluster_changes.len(), 1);
    let c = &p.cluster_changes[0];
    assert_eq!(
        (c.before.as_str(), c.after.as_str(), c.applied),
        ("1000", "1000", true)
    );
    observed.clusters.get_mut("a").unwrap().fixed_sync_timer = vec!["r2:1".into()];
    let p = plan(&s, &observed);
    let c = &p.cluster_changes[0];
    assert!(
        !c.applied && c.note.contains("r2:1"),
        "a master replica server behind a 2.5 meta ignores it: {}",
        c.note
    );
    observed.clusters.get_mut("a").unwrap().fixed_sync_timer = vec![];
    observed.clusters.get_mut("a").unwrap().master = true;
    let p = plan(&s, &observed);
    assert!(
        !p.cluster_changes[0].applied,
        "master's /updateConfig does not re-arm the timer"
    );
    let tp = &p.tables[0];
    assert!(tp
        .warnings
        .iter()
        .any(|w| w.contains("ERR_OPERATION_DISABLED")));
}

#[test]
fn verify_off_leaves_the_step_out_and_full_names_its_mode_and_rate() {
    let mut s = spec(true, false);
    s.migrations[0].verify = crate::spec::VerifyMode::Off;
    let tp = plan_one(&s, fresh());
    assert!(!kinds(&tp).contains(&StepKind::Verify));
    s.migrations[0].verify = crate::spec::VerifyMode::Full;
    s.migrations[0].verify_rate = Some(20_000);
    let tp = plan_one(&s, fresh());
    let v = tp
        .steps
        .iter()
        .find(|st| st.kind == StepKind::Verify)
        .unwrap();
    assert_eq!(
        v.detail,
        StepDetail::Verify {
            mode: crate::spec::VerifyMode::Full,
            rate: Some(20_000)
        }
    );
}
