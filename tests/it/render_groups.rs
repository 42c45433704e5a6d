//! Large plans as a reviewer sees them in a pull request: the Markdown of the sandbox's 1,000
//! tables and of 3,000 tables in ten shapes (golden files), every table named or counted
//! however much has to be left out, and names in natural order.

use std::collections::{BTreeMap, BTreeSet};

use migrator::plan::observed::{
    ClusterObs, DupObs, Observed, ProxyObs, ProxyServes, Relays, RoutingNode, RoutingObs,
    SourceApp, TableObs, TargetObs,
};
use migrator::plan::Action;
use migrator::render::json::PlanDocument;
use migrator::render::markdown::{render, LIMIT};
use regex_lite::Regex;

use crate::golden::assert_golden;

const SOURCE: &str = "sandbox-a";
const TARGET: &str = "sandbox-b";
const SOURCE_METAS: [&str; 3] = ["127.0.0.1:36619", "127.0.0.1:39307", "127.0.0.1:45927"];
const TARGET_METAS: [&str; 3] = ["127.0.0.1:37311", "127.0.0.1:38995", "127.0.0.1:35519"];
const PROXY: &str = "127.0.0.1:46313";
const SOURCE_REPLICAS: [&str; 3] = ["127.0.0.1:34801", "127.0.0.1:34802", "127.0.0.1:34803"];

/// How one table of a test plan looks: its plan-file entry's extra fields and what the
/// clusters show of it.
struct Shape {
    fields: String,
    obs: TableObs,
}

/// The plan file `migrator sandbox` writes (its addresses fixed), with an entry per name.
fn spec_text(entries: &[(String, String)]) -> String {
    let list = |a: &[&str]| {
        a.iter()
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut y = format!(
        "# Moves every table of {SOURCE} to {TARGET}.\nversion: 1\nclusters:\n  {SOURCE}: {{ meta: [{}] }}\n  {TARGET}: {{ meta: [{}] }}\nmetaproxy:\n  zookeeper: [\"127.0.0.1:45123\"]\n  root: /pegasus/metaproxy\n  migrator_root: /migrator\n  addresses: [\"{PROXY}\"]\ndefaults:\n  threshold: 1000\n  max_write_block: 43s\n  block_mode: reconfig\nmigrations:\n",
        list(&SOURCE_METAS),
        list(&TARGET_METAS)
    );
    for (table, fields) in entries {
        y.push_str(&format!(
            "  - {{ table: {table}, from: {SOURCE}, to: {TARGET}{fields} }}\n"
        ));
    }
    y
}

fn route(cluster: &str, metas: &[&str]) -> String {
    format!(
        "{{\"cluster_name\":\"{cluster}\",\"meta_addrs\":\"{}\"}}",
        metas.join(",")
    )
}

/// A sandbox table as `plan` sees it before anything started: 4 partitions, data version 1,
/// routed to the source, the meta-proxy serving it from there.
fn fresh(table: &str, app_id: i32, partitions: i32) -> TableObs {
    TableObs {
        source: Some(SourceApp {
            app_id,
            status: "AS_AVAILABLE".into(),
            partition_count: partitions,
            envs: BTreeMap::new(),
            atomic_idempotent: false,
            bulk_loading: false,
        }),
        dups: vec![],
        data_versions: SOURCE_REPLICAS
            .iter()
            .map(|r| ((*r).to_string(), "1".to_string()))
            .collect(),
        target: TargetObs::Absent,
        routing: Some(RoutingObs {
            path: format!("/pegasus/metaproxy/{table}"),
            node: Some(RoutingNode {
                data: route(SOURCE, &SOURCE_METAS),
                version: 0,
                cluster_name: Some(SOURCE.into()),
                invalid: None,
            }),
        }),
        proxies: vec![ProxyObs {
            addr: PROXY.into(),
            serves: ProxyServes::Cluster(SOURCE.into()),
        }],
        target_deny: None,
        block: None,
    }
}

/// The sandbox's clusters: a 2.5 source (1 s config sync, 10 s group check), a 2.6 target
/// that the meta-proxy is seen relaying.
fn sandbox_observed(tables: BTreeMap<String, TableObs>) -> Observed {
    let config_sync =
        |replicas: &[&str]| replicas.iter().map(|r| ((*r).to_string(), 1000)).collect();
    Observed {
        tables,
        no_empty_write: BTreeMap::new(),
        access_control: BTreeMap::new(),
        clusters: BTreeMap::from([
            (
                SOURCE.into(),
                ClusterObs {
                    master: false,
                    config_sync_ms: config_sync(&SOURCE_REPLICAS),
                    group_check_ms: Some(10_000),
                    dead_nodes: vec![],
                    fixed_sync_timer: vec![],
                },
            ),
            (
                TARGET.into(),
                ClusterObs {
                    master: true,
                    config_sync_ms: config_sync(&["127.0.0.1:34811"]),
                    group_check_ms: None,
                    dead_nodes: vec![],
                    fixed_sync_timer: vec![],
                },
            ),
        ]),
        proxy_relays_master: BTreeMap::from([(
            PROXY.into(),
            Relays::Yes {
                evidence: "it serves r0 from sandbox-b".into(),
            },
        )]),
    }
}

/// The plan of `names`, each table shaped by `shape(index, name)`.
fn plan_of(names: &[String], shape: impl Fn(usize, &str) -> Shape) -> PlanDocument {
    let shapes: Vec<Shape> = names.iter().enumerate().map(|(i, n)| shape(i, n)).collect();
    let entries: Vec<(String, String)> = names
        .iter()
        .zip(&shapes)
        .map(|(n, s)| (n.clone(), s.fields.clone()))
        .collect();
    let spec = migrator::spec::load_str("migrations.yaml", &spec_text(&entries)).unwrap();
    let observed = sandbox_observed(
        names
            .iter()
            .cloned()
            .zip(shapes.into_iter().map(|s| s.obs))
            .collect(),
    );
    let plan = migrator::plan::plan(&spec, &observed);
    PlanDocument::new(&plan, "migrations.yaml", "fe51435ae2a9c0ffee")
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn app_id(i: usize) -> i32 {
    i32::try_from(i).unwrap() + 1
}

/// `migrator sandbox --tables 1000`: every table alike, nothing started.
fn sandbox_thousand() -> PlanDocument {
    plan_of(&numbered("t", 1000), |i, name| Shape {
        fields: String::new(),
        obs: fresh(name, app_id(i), 4),
    })
}

/// Ten shapes, by the table's number modulo 10: eight new with different thresholds and
/// block modes, one caught up halfway (lag varies), one already done; 4, 8 or 16 partitions.
fn ten_shapes(i: usize, name: &str) -> Shape {
    let partitions = 4 << (i % 3);
    let mut obs = fresh(name, app_id(i), partitions);
    let kind = i % 10;
    let fields = match kind {
        0..=3 => format!(", threshold: {}", 1000 * (kind + 1)),
        4..=7 => format!(
            ", threshold: {}, block_mode: timeout, max_write_block: 51s",
            1000 * (kind - 3)
        ),
        _ => String::new(),
    };
    if kind >= 8 {
        let lag = i64::try_from(i * 37 % 20_000).unwrap();
        obs.dups = vec![DupObs {
            dupid: 1_700_000_000,
            status: "DS_LOG".into(),
            lag: Some(lag),
        }];
        obs.target = TargetObs::Follower {
            app_id: app_id(i) + 10_000,
        };
    }
    if kind == 9 {
        let node = obs.routing.as_mut().unwrap().node.as_mut().unwrap();
        node.data = route(TARGET, &TARGET_METAS);
        node.cluster_name = Some(TARGET.into());
        obs.source
            .as_mut()
            .unwrap()
            .envs
            .insert("replica.deny_client_request".into(), "reconfig*all".into());
        obs.proxies[0].serves = ProxyServes::Cluster(TARGET.into());
    }
    Shape { fields, obs }
}

/// What a Markdown plan says of its tables.
#[derive(Debug, Default)]
struct Account {
    /// Names in the summary table, row by row.
    rows: Vec<Vec<String>>,
    /// Tables counted in the summary table without their names.
    unnamed: usize,
    /// Tables whose steps are shown (once per block).
    steps_shown: usize,
    /// Tables counted as having their steps left out.
    steps_left_out: usize,
}

fn count(re: &str, text: &str) -> usize {
    Regex::new(re)
        .unwrap()
        .captures_iter(text)
        .map(|c| c[1].parse::<usize>().unwrap())
        .sum()
}

/// Reads the summary rows, the blocks of steps and the counts of what was left out.
fn account(md: &str) -> Account {
    let group = Regex::new(r"^<details><summary>(\d+) tables</summary>(.*)</details>$").unwrap();
    let more = Regex::new(r"(?:, )?… (\d+) more \(.*$").unwrap();
    let mut a = Account::default();
    for line in md.lines().filter(|l| {
        ["| ➕ |", "| 🔁 |", "| ⛔ |", "| ✅ |"]
            .iter()
            .any(|m| l.starts_with(m))
    }) {
        let cell = line.split(" | ").nth(1).unwrap();
        if let Some(name) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
            a.rows.push(vec![name.to_string()]);
            continue;
        }
        let c = group.captures(cell).unwrap_or_else(|| panic!("{cell}"));
        let total: usize = c[1].parse().unwrap();
        let (names, left) = match more.captures(&c[2]) {
            Some(m) => (&c[2][..m.get(0).unwrap().start()], m[1].parse().unwrap()),
            None => (&c[2], 0),
        };
        let names: Vec<String> = names
            .split(", ")
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        assert_eq!(names.len() + left, total, "a row's names or count: {cell}");
        a.rows.push(names);
        a.unnamed += left;
    }
    a.unnamed += count(r"_(\d+) more table\(s\) in \d+ row\(s\) not listed", md);
    let block = Regex::new(r"^<details><summary>\S+ <b>(?:(\d+) tables|[^<]+)</b>").unwrap();
    a.steps_shown = md
        .lines()
        .filter_map(|l| block.captures(l))
        .map(|c| c.get(1).map_or(1, |n| n.as_str().parse().unwrap()))
        .sum();
    a.steps_left_out = count(
        r"_The steps of (\d+) table\(s\), in \d+ block\(s\), left out",
        md,
    );
    a
}

/// `name` as (text, number) when it ends in digits: the natural order of test names.
fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (text, number) = name.split_at(name.len() - digits);
    (text.to_string(), number.parse().unwrap_or(0))
}

/// The Markdown of `doc` fits a comment, names each table at most once and counts the rest,
/// lists each row's names in natural order, and shows or counts every table's steps.
fn assert_every_table_named_or_counted(doc: &PlanDocument, md: &str) -> Account {
    assert!(md.len() <= LIMIT, "{} characters", md.len());
    let a = account(md);
    let named: Vec<&String> = a.rows.iter().flatten().collect();
    let unique: BTreeSet<&String> = named.iter().copied().collect();
    assert_eq!(unique.len(), named.len(), "no table is named twice");
    let in_plan: BTreeSet<&String> = doc.tables.iter().map(|t| &t.table).collect();
    assert!(
        unique.is_subset(&in_plan),
        "only tables of the plan are named"
    );
    assert_eq!(
        named.len() + a.unnamed,
        doc.tables.len(),
        "every table is named or counted"
    );
    for row in &a.rows {
        let keys: Vec<(String, u64)> = row.iter().map(|n| natural_key(n)).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "natural order: {row:?}"
        );
    }
    let with_steps = doc
        .tables
        .iter()
        .filter(|t| t.action != Action::Done)
        .count();
    assert_eq!(
        a.steps_shown + a.steps_left_out,
        with_steps,
        "every table's steps are shown or counted"
    );
    a
}

#[test]
fn the_sandbox_thousand_tables_are_all_named_and_their_steps_told_once() {
    let doc = sandbox_thousand();
    let md = render(&doc);
    assert_golden("plan-sandbox-1000.md", &md);
    let a = assert_every_table_named_or_counted(&doc, &md);
    assert_eq!((a.rows.len(), a.unnamed), (1, 0), "one row names all 1000");
    assert_eq!(a.steps_shown, 1000, "one block of steps for all");
    assert_eq!(md.matches("- **1. preflight**").count(), 1);
    assert!(!md.contains("left out") && !md.contains("not listed"));
}

#[test]
fn three_thousand_tables_in_ten_shapes_fit_one_comment() {
    let doc = plan_of(&numbered("t", 3000), ten_shapes);
    let md = render(&doc);
    assert_golden("plan-3000-ten-shapes.md", &md);
    let a = assert_every_table_named_or_counted(&doc, &md);
    assert_eq!(a.rows.len(), 10, "one row per shape");
    assert!(a.rows.iter().all(|r| r.len() == 300), "every name is shown");
    // Caught up halfway sorts before new; done comes last, with no steps.
    let resumed = md.find("| 🔁 |").unwrap();
    assert!(resumed < md.find("| ➕ |").unwrap());
    assert!(md.find("| ✅ |").unwrap() > md.rfind("| ➕ |").unwrap());
    assert!(md.contains("| 🔁 | <details><summary>300 tables</summary>t8, t18, t28,"));
    assert!(md.contains("| 4–16 |"), "partitions range over the group");
}

#[test]
fn blocked_tables_come_first_one_by_one() {
    let names = numbered("t", 40);
    let doc = plan_of(&names, |i, name| {
        let mut obs = fresh(name, app_id(i), 4);
        if i % 4 == 3 {
            obs.data_versions.values_mut().for_each(|v| *v = "0".into());
        }
        Shape {
            fields: String::new(),
            obs,
        }
    });
    let md = render(&doc);
    let a = assert_every_table_named_or_counted(&doc, &md);
    let blocked: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ⛔ |"))
        .map(|l| l.split(" | ").nth(1).unwrap())
        .collect();
    assert_eq!(blocked.len(), 10, "{md}");
    assert_eq!(
        (blocked[0], blocked[1], blocked[9]),
        ("`t3`", "`t7`", "`t39`")
    );
    assert!(md.find("| ➕ |").unwrap() > md.rfind("| ⛔ |").unwrap());
    assert_eq!(a.rows.len(), 11, "blocked one by one, the rest together");
}

#[test]
fn rows_that_have_no_room_are_counted() {
    // Each table its own threshold: 2,500 shapes, far more rows than a comment holds.
    let doc = plan_of(&numbered("t", 2500), |i, name| Shape {
        fields: format!(", threshold: {}", 1000 + i),
        obs: fresh(name, app_id(i), 4),
    });
    let md = render(&doc);
    let a = assert_every_table_named_or_counted(&doc, &md);
    assert!(
        a.rows.len() < 2500 && a.unnamed > 0,
        "{} rows",
        a.rows.len()
    );
    assert!(a.steps_left_out > 0);
    assert!(md.contains("run `migrator show` to see every table"));
}

#[test]
fn names_that_have_no_room_are_counted_and_the_first_steps_still_shown() {
    let names = numbered("customer_order_history_archive_shard_", 4000);
    let doc = plan_of(&names, |i, name| Shape {
        fields: if i % 2 == 0 {
            String::new()
        } else {
            ", block_mode: timeout, max_write_block: 51s".into()
        },
        obs: fresh(name, app_id(i), 4),
    });
    let md = render(&doc);
    let a = assert_every_table_named_or_counted(&doc, &md);
    assert_eq!(a.rows.len(), 2);
    assert!(a.unnamed > 0, "the names cannot all fit");
    assert!(a.steps_shown >= 2000, "the first group's steps are shown");
    assert!(md.contains("`migrator show --detailed` lists every table"));
}
