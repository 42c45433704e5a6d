//! Rendering: golden text for a representative plan; the JSON document round-trips.

use std::collections::BTreeMap;

use migrator::plan::observed::{
    ClusterObs, DupObs, Observed, RoutingNode, RoutingObs, SourceApp, TableObs, TargetObs,
};
use migrator::render::human::{write_plan, TextStyle};
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
            },
        )]),
        proxy_relays_master: BTreeMap::new(),
        no_empty_write: BTreeMap::new(),
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

/// Compares `text` with the golden file `name` (rewritten with `UPDATE_GOLDEN=1`).
fn assert_golden(name: &str, text: &str) {
    let golden = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, text).unwrap();
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&golden).unwrap(),
        "set UPDATE_GOLDEN=1 to accept"
    );
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

#[test]
fn tables_with_different_steps_are_not_grouped() {
    let mut doc = many(3);
    doc.tables.last_mut().unwrap().steps.pop();
    let text = text_of(&doc, false);
    assert!(text.contains("+ 2 tables c3srv-a → c3srv-b"), "{text}");
}

#[test]
fn markdown_stays_under_the_comment_limit_and_says_what_it_left_out() {
    use migrator::render::markdown::{render, LIMIT};
    let small = render(&many(3));
    assert!(!small.contains("left out") && !small.contains("not listed"));
    let doc = many(3000);
    let md = render(&doc);
    assert!(md.len() <= LIMIT, "{} characters", md.len());
    let rows = md
        .lines()
        .filter(|l| {
            ["| ⛔ |", "| 🔁 |", "| ➕ |", "| ✅ |"]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .count();
    let not_listed: usize = regex_lite::Regex::new(r"_(\d+) more table\(s\) not listed")
        .unwrap()
        .captures(&md)
        .map(|c| c[1].parse().unwrap())
        .expect("says how many rows were left out");
    // Every table of the plan (3000 copies, and the blocked, resumed and done ones) is a row
    // or counted.
    assert_eq!(rows + not_listed, 3003, "{rows} rows");
    let details = md.matches("<details>").count();
    let left: usize = regex_lite::Regex::new(r"_Details of (\d+) table\(s\) left out")
        .unwrap()
        .captures(&md)
        .map(|c| c[1].parse().unwrap())
        .expect("says how many details were left out");
    assert_eq!(
        details + left,
        3002,
        "every table not done has details or is counted"
    );
    assert!(md.contains("`migrator show"), "says how to see them");
}
