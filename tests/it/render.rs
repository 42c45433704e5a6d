//! Rendering: golden text for a representative plan; the JSON document round-trips.

use std::collections::BTreeMap;

use migrator::plan::observed::{
    ClusterObs, DupObs, Observed, RoutingNode, RoutingObs, SourceApp, TableObs, TargetObs,
};
use migrator::render::human::write_plan;
use migrator::render::json::PlanDocument;

const SPEC: &str = r#"version: 1
clusters:
  c3srv-a: { meta: ["10.0.0.1:34601", "10.0.0.2:34601"], config_sync_during_cutover: 1s }
  c3srv-b: { meta: ["10.0.1.1:34601", "10.0.1.2:34601"] }
metaproxy: { zookeeper: ["10.0.2.1:2181"], root: /pegasus/metaproxy }
defaults: { threshold: 1000, max_write_block: 30s }
migrations:
  - { table: orders, from: c3srv-a, to: c3srv-b }
  - { table: users, from: c3srv-a, to: c3srv-b, block_mode: reconfig, remove_duplication: true }
  - { table: carts, from: c3srv-a, to: c3srv-b }
  - { table: legacy, from: c3srv-a, to: c3srv-b }
"#;

fn node(cluster: &str, version: i32) -> Option<RoutingObs> {
    let meta = if cluster == "c3srv-a" {
        "10.0.0.1:34601,10.0.0.2:34601"
    } else {
        "10.0.1.1:34601,10.0.1.2:34601"
    };
    Some(RoutingObs {
        path: "/pegasus/metaproxy/t".into(),
        node: Some(RoutingNode {
            data: format!("{{\"cluster_name\":\"{cluster}\",\"meta_addrs\":\"{meta}\"}}"),
            version,
            cluster_name: Some(cluster.into()),
            invalid: None,
        }),
    })
}

fn table(
    id: i32,
    version: &str,
    dups: Vec<DupObs>,
    routing: Option<RoutingObs>,
    envs: &[(&str, &str)],
) -> TableObs {
    TableObs {
        source: Some(SourceApp {
            app_id: id,
            status: "AS_AVAILABLE".into(),
            partition_count: 8,
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            atomic_idempotent: false,
        }),
        target: if dups.is_empty() {
            TargetObs::Absent
        } else {
            TargetObs::Follower { app_id: id + 10 }
        },
        dups,
        data_versions: BTreeMap::from([
            ("10.0.0.11:34801".into(), version.into()),
            ("10.0.0.12:34801".into(), version.into()),
        ]),
        routing,
        proxies: vec![],
        target_deny: None,
    }
}

fn representative() -> PlanDocument {
    let spec = migrator::spec::load_str("migrations.yaml", SPEC).unwrap();
    let dup = |lag| {
        vec![DupObs {
            dupid: 1_700_000_000,
            status: "DS_LOG".into(),
            lag: Some(lag),
        }]
    };
    let observed = Observed {
        tables: BTreeMap::from([
            (
                "orders".into(),
                table(1, "1", vec![], node("c3srv-a", 0), &[]),
            ),
            (
                "users".into(),
                table(2, "1", dup(52_000), node("c3srv-a", 3), &[]),
            ),
            (
                "carts".into(),
                table(
                    3,
                    "1",
                    dup(0),
                    node("c3srv-b", 5),
                    &[("replica.deny_client_request", "reconfig*all")],
                ),
            ),
            (
                "legacy".into(),
                table(4, "0", vec![], node("c3srv-a", 0), &[]),
            ),
        ]),
        clusters: BTreeMap::from([(
            "c3srv-a".into(),
            ClusterObs {
                master: false,
                config_sync_ms: BTreeMap::from([
                    ("10.0.0.11:34801".into(), 30_000),
                    ("10.0.0.12:34801".into(), 30_000),
                ]),
                group_check_ms: Some(5_000),
                dead_nodes: vec![],
            },
        )]),
        proxy_relays_master: BTreeMap::new(),
    };
    let plan = migrator::plan::plan(&spec, &observed);
    PlanDocument::new(&plan, "migrations.yaml", "0123456789abcdef")
}

#[test]
fn human_plan_matches_the_golden_text() {
    let mut out = Vec::new();
    write_plan(&representative(), false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/plan-golden.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &text).unwrap();
    }
    assert_eq!(
        text,
        std::fs::read_to_string(golden).unwrap(),
        "set UPDATE_GOLDEN=1 to accept"
    );
}

#[test]
fn colour_appears_only_when_asked() {
    let mut plain = Vec::new();
    write_plan(&representative(), false, &mut plain).unwrap();
    let mut coloured = Vec::new();
    write_plan(&representative(), true, &mut coloured).unwrap();
    assert!(!plain.contains(&0x1b));
    assert!(coloured.contains(&0x1b));
}

#[test]
fn the_json_document_round_trips_with_every_field() {
    let doc = representative();
    let mut bytes = Vec::new();
    migrator::render::json::write(&doc, &mut bytes).unwrap();
    let back: PlanDocument = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, doc);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["format_version"], "1.1");
    assert_eq!(v["cluster_changes"][0]["after"], "1000");
    assert_eq!(
        v["summary"],
        serde_json::json!({"migrate": 1, "resume": 1, "done": 1, "blocked": 1})
    );
    let users = &v["tables"][1];
    assert_eq!(
        (users["action"].as_str(), users["phase"].as_str()),
        (Some("resume"), Some("catch_up"))
    );
    let block = users["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "block_writes")
        .unwrap();
    assert_eq!(block["detail"]["env_value"], "reconfig*write");
    assert_eq!(v["tables"][3]["blockers"][0]["code"], "data_version");
}
