//! Rendering: golden text for a representative plan; the JSON document round-trips.

use std::collections::BTreeMap;

use migrator::plan::observed::{
    ClusterObs, DupObs, Observed, RoutingNode, RoutingObs, SourceApp, TableObs, TargetObs,
};
use migrator::render::human::{write_plan, TextStyle};
use migrator::render::json::PlanDocument;

use crate::golden::assert_golden;

const SPEC: &str = r#"version: 1
clusters:
  c3srv-a: { meta: ["10.0.0.1:34601", "10.0.0.2:34601"], config_sync_during_cutover: 1s }
  c3srv-b: { meta: ["10.0.1.1:34601", "10.0.1.2:34601"] }
metaproxy: { zookeeper: ["10.0.2.1:2181"], root: /pegasus/metaproxy }
defaults: { threshold: 1000, max_write_block: 60s }
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
            bulk_loading: false,
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
        block: None,
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
                fixed_sync_timer: vec![],
            },
        )]),
        proxy_relays_master: BTreeMap::new(),
        no_empty_write: BTreeMap::new(),
        access_control: BTreeMap::new(),
    };
    let mut plan = migrator::plan::plan(&spec, &observed);
    // The previous plan, five minutes earlier, saw more lag on users.
    let mut previous = plan.clone();
    previous
        .tables
        .iter_mut()
        .for_each(|t| t.facts.lag = t.facts.lag.map(|l| l + 8_000));
    plan.add_trend(&previous, 300);
    PlanDocument::new(&plan, "migrations.yaml", "0123456789abcdef")
}

#[test]
fn human_plan_matches_the_golden_text() {
    let mut out = Vec::new();
    write_plan(&representative(), TextStyle::default(), &mut out).unwrap();
    assert_golden("plan-golden.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn markdown_plan_matches_the_golden_text() {
    let md = migrator::render::markdown::render(&representative());
    assert_golden("plan-golden.md", &md);
}

#[test]
fn colour_appears_only_when_asked() {
    let mut plain = Vec::new();
    write_plan(&representative(), TextStyle::default(), &mut plain).unwrap();
    let mut coloured = Vec::new();
    let style = TextStyle {
        color: true,
        detailed: false,
    };
    write_plan(&representative(), style, &mut coloured).unwrap();
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
    assert_eq!(v["format_version"], "1.2");
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

/// The representative plan with `n` copies of its `orders` table (`t0`, `t1`, ...), one of
/// them with a warning of its own.
fn many(n: usize) -> PlanDocument {
    let mut doc = representative();
    let orders = doc
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .unwrap()
        .clone();
    doc.tables.retain(|t| t.table != "orders");
    for i in 0..n {
        let mut t = orders.clone();
        t.table = format!("t{i}");
        t.warnings = t
            .warnings
            .iter()
            .map(|w| w.replace("orders", &t.table))
            .collect();
        if i == 7 {
            t.warnings.push("t7 holds 3 TB".into());
        }
        doc.tables.push(t);
    }
    doc.summary.migrate = n;
    doc
}

fn text_of(doc: &PlanDocument, detailed: bool) -> String {
    let mut out = Vec::new();
    let style = TextStyle {
        color: false,
        detailed,
    };
    write_plan(doc, style, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_thousand_tables_read_in_under_200_lines_unless_detailed() {
    let doc = many(1000);
    let text = text_of(&doc, false);
    let lines = text.lines().count();
    assert!(lines < 200, "{lines} lines:\n{text}");
    assert!(
        text.contains("+ 1000 tables c3srv-a → c3srv-b: migrate · 8 partitions"),
        "{text}"
    );
    let shown = text.lines().filter(|l| l.starts_with("    t0, ")).count();
    assert_eq!(shown, 1, "the names are listed once");
    let more: usize = regex_lite::Regex::new(r"… and (\d+) more")
        .unwrap()
        .captures(&text)
        .map(|c| c[1].parse().unwrap())
        .unwrap();
    let listed = text
        .lines()
        .skip_while(|l| !l.starts_with("    t0, "))
        .take_while(|l| !l.starts_with("    …"))
        .flat_map(|l| l.trim().split(", "))
        .count();
    assert_eq!(listed + more, 1000, "every table is listed or counted");
    // Shared warnings once, a table's own warning with its name; blockers per table.
    assert_eq!(
        text.matches("warning (every table): while each table is duplicated")
            .count(),
        1
    );
    assert!(text.contains("warning: t7: t7 holds 3 TB"), "{text}");
    assert!(text.contains("! legacy c3srv-a → c3srv-b: blocked"));
    assert!(text.contains("compare-and-set each table's routing node"));

    let detailed = text_of(&doc, true);
    assert!(detailed.lines().count() > 20_000);
    assert!(detailed.contains("+ t999 c3srv-a → c3srv-b: migrate"));
}

/// `many(3)` with its copies renamed, in plan-file order, to each of `names`.
fn named(names: &[&str]) -> PlanDocument {
    let mut doc = many(names.len());
    let copies = doc.tables.iter_mut().filter(|t| t.table.starts_with('t'));
    for (t, name) in copies.zip(names) {
        t.warnings = t
            .warnings
            .iter()
            .map(|w| w.replace(&t.table, name))
            .collect();
        t.table = (*name).to_string();
    }
    doc
}

#[test]
fn text_lists_names_in_natural_order_and_json_in_plan_file_order() {
    let plan_file_order = ["t10", "t2", "t1", "t100", "t9"];
    let doc = named(&plan_file_order);
    let text = text_of(&doc, false);
    assert!(text.contains("\n    t1, t2, t9, t10, t100\n"), "{text}");

    let detailed = text_of(&doc, true);
    let heads: Vec<&str> = detailed
        .lines()
        .filter_map(|l| l.strip_prefix("+ "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(heads, ["t1", "t2", "t9", "t10", "t100"]);

    let mut bytes = Vec::new();
    migrator::render::json::write(&doc, &mut bytes).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let json_order: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["table"].as_str())
        .filter(|t| t.starts_with('t'))
        .collect();
    assert_eq!(json_order, plan_file_order);
}

#[test]
fn tables_with_different_steps_are_not_grouped() {
    let mut doc = many(3);
    doc.tables.last_mut().unwrap().steps.pop();
    let text = text_of(&doc, false);
    assert!(text.contains("+ 2 tables c3srv-a → c3srv-b"), "{text}");
}

#[test]
fn markdown_tells_copies_once_with_the_warning_only_one_has() {
    use migrator::render::markdown::{render, LIMIT};
    let small = render(&many(3));
    assert!(!small.contains("left out") && !small.contains("not listed"));
    let md = render(&many(3000));
    assert!(md.len() <= LIMIT, "{} characters", md.len());
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| |"))
        .collect();
    assert_eq!(rows.len(), 4, "legacy, users, the copies, carts: {rows:#?}");
    assert!(rows[0].starts_with("| ⛔ | `legacy` |"), "blocked first");
    assert!(
        rows[2].starts_with("| ➕ | <details><summary>3000 tables</summary>t0, t1, t2, t3, "),
        "{}",
        rows[2]
    );
    assert!(
        rows[2].ends_with("| 1 on every table<br>1 on 1 table(s) |"),
        "{}",
        rows[2]
    );
    assert_eq!(
        md.matches("> ⚠️ (every table) while each table is duplicated")
            .count(),
        1
    );
    assert!(
        md.contains("> ⚠️ t7: t7 holds 3 TB"),
        "a table's own warning, named"
    );
    assert!(!md.contains("left out") && !md.contains("not listed"));
}
