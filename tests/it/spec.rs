//! Plan file loading: a good file resolves defaults; each bad input is reported with its
//! message at the right line and column; hostile inputs are refused quickly.

use std::time::{Duration, Instant};

use migrator::spec::load::{Diagnostic, Error};
use migrator::spec::{load_str, BlockMode, VerifyMode};

const GOOD: &str = r#"version: 1
clusters:
  c3srv-a: { meta: ["10.0.0.1:34601", "10.0.0.2:34601"] }
  c3srv-b: { meta: ["10.0.1.1:34601", "10.0.1.2:34601"] }
metaproxy:
  zookeeper: ["10.0.2.1:2181", "10.0.2.2:2181"]
  root: /pegasus/metaproxy
defaults:
  threshold: 100000
  max_write_block: 60s
  block_mode: timeout
migrations:
  - { table: orders, from: c3srv-a, to: c3srv-b }
  - { table: users,  from: c3srv-a, to: c3srv-b, threshold: 5000, block_mode: reconfig }
"#;

#[test]
fn a_good_plan_resolves_defaults_per_table() {
    let spec = load_str("good.yaml", GOOD).unwrap();
    assert_eq!(spec.migrations.len(), 2);
    let (orders, users) = (&spec.migrations[0], &spec.migrations[1]);
    assert_eq!(
        (orders.threshold, orders.block_mode),
        (100_000, BlockMode::Timeout)
    );
    assert_eq!(
        (users.threshold, users.block_mode),
        (5000, BlockMode::Reconfig)
    );
    assert_eq!(users.max_write_block, Duration::from_secs(60));
    assert_eq!(spec.metaproxy.unwrap().root, "/pegasus/metaproxy");
    assert_eq!(orders.verify, VerifyMode::Sample, "sample by default");

    assert_eq!(orders.verify_rate, None, "no limit by default");

    let text = edit(
        "  block_mode: timeout",
        "  block_mode: timeout\n  verify: full\n  verify_rate: 50000\n  verify_parallelism: 3",
    )
    .replace(
        "threshold: 5000,",
        "threshold: 5000, verify: off, verify_rate: 20,",
    );
    let spec = load_str("verify.yaml", &text).unwrap();
    assert_eq!(
        (spec.migrations[0].verify, spec.migrations[1].verify),
        (VerifyMode::Full, VerifyMode::Off)
    );
    assert_eq!(
        (
            spec.migrations[0].verify_rate,
            spec.migrations[1].verify_rate
        ),
        (Some(50_000), Some(20))
    );
    assert_eq!(
        spec.migrations
            .iter()
            .map(|m| m.verify_parallelism)
            .collect::<Vec<_>>(),
        vec![Some(3), Some(3)],
        "from the defaults"
    );
    assert_eq!(orders.verify_parallelism, None, "the gate's own by default");
    let bad = diagnostics(&edit(
        "  block_mode: timeout",
        "  block_mode: timeout\n  verify: maybe",
    ));
    assert!(bad[0].message.contains("maybe"), "{bad:?}");
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match load_str("bad.yaml", text) {
        Err(Error::Invalid(d)) => d,
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

/// Replaces the first occurrence of `from` in the good plan.
fn edit(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn every_bad_input_is_named_at_its_line_and_column() {
    let cases: Vec<(String, usize, usize, &str)> = vec![
        (edit("version: 1", "version: 2"), 1, 10, "unsupported version 2"),
        (edit("  root:", "  rooot:"), 7, 3, "unknown field `rooot`"),
        (edit("{ table: orders,", "{ tabel: orders,"), 13, 7, "unknown field `tabel`"),
        (edit("  - { table: users,  from: c3srv-a", "  - { table: orders,  from: c3srv-a"), 14, 14, "table orders is listed twice"),
        (edit("to: c3srv-b }", "to: c3srv-a }"), 13, 41, "from and to are both c3srv-a"),
        (edit("from: c3srv-a, to: c3srv-b }", "from: c3srv-x, to: c3srv-b }"), 13, 28, "unknown cluster \"c3srv-x\""),
        (edit("max_write_block: 60s", "max_write_block: 60"), 10, 20, "bad duration \"60\""),
        (edit("max_write_block: 60s", "max_write_block: 0s"), 10, 20, "longer than zero"),
        (edit("[\"10.0.0.1:34601\", \"10.0.0.2:34601\"]", "[\"10.0.0.1:34601\"]"), 3, 20, "at least two are needed"),
        (edit("\"10.0.0.2:34601\"", "\"10.0.0.2\""), 3, 39, "bad meta address \"10.0.0.2\""),
        (edit("\"10.0.0.2:34601\"", "\"10.0.0.1:34601\""), 3, 39, "listed twice"),
        (edit("zookeeper: [\"10.0.2.1:2181\", \"10.0.2.2:2181\"]", "zookeeper: []"), 6, 14, "no ZooKeeper address"),
        (edit("\"10.0.2.2:2181\"", "\"10.0.2.2:99999\""), 6, 32, "bad ZooKeeper address"),
        (edit("root: /pegasus/metaproxy", "root: pegasus/"), 7, 9, "bad ZooKeeper path"),
        (edit("block_mode: timeout", "block_mode: drop"), 11, 15, "unknown variant `drop`"),
        (edit("threshold: 100000", "threshold: -5"), 9, 14, "expected u64"),
        (edit("{ table: orders,", "{ table: \"or ders\","), 13, 14, "bad table name"),
        (edit("migrations:\n  - { table: orders, from: c3srv-a, to: c3srv-b }\n  - { table: users,  from: c3srv-a, to: c3srv-b, threshold: 5000, block_mode: reconfig }\n", "migrations: []\n"), 12, 13, "no migrations"),
        (edit("  c3srv-b: { meta", "  c3srv-a: { meta"), 4, 3, "duplicate entry"),
        (edit("\"10.0.2.2:2181\"]", "\"10.0.2.2:2181\""), 7, 3, "did not find expected"),
        (GOOD.replace("migrations:", "migration:"), 12, 1, "unknown field `migration`"),
        (edit("\"10.0.0.1:34601\", \"10.0.0.2", "\"[::1]:34601\", \"10.0.0.2"), 3, 21, "is IPv6"),
        (edit("root: /pegasus/metaproxy", "root: /"), 7, 9, "bad ZooKeeper path"),
        (edit("{ table: orders,", "{ table: \".\","), 13, 14, "not a ZooKeeper node name"),
        (edit("{ table: orders,", "{ table: __migrator_locks__,"), 13, 14, "reserves for its own nodes"),
        (edit("threshold: 100000", "threshold: 0"), 9, 14, "threshold 0 can never be reached"),
        (edit("threshold: 100000", "threshold: 100000\n  verify_rate: 0"), 10, 16, "verify_rate 0 would never compare"),
        (edit("threshold: 100000", "threshold: 100000\n  verify_parallelism: 0"), 10, 23, "verify_parallelism 0 would never compare"),
        (edit("max_write_block: 60s", "max_write_block: 2h"), 10, 20, "longer than 15m"),
        (edit("\"10.0.0.2:34601\"] }", "\"10.0.0.2:34601\"], config_sync_during_cutover: 10ms }"), 3, 86, "below 100ms"),
    ];
    assert!(cases.len() >= 15);
    let mut wrong = vec![];
    for (text, line, column, message) in cases {
        let d = diagnostics(&text);
        let found = d.iter().find(|d| d.message.contains(message));
        let Some(found) = found else {
            panic!("no {message:?} in {d:#?}")
        };
        if (found.line, found.column) != (line, column) {
            wrong.push(format!("expected {line}:{column}, got {found}"));
        }
        assert!(found
            .to_string()
            .starts_with(&format!("bad.yaml:{}:{}: ", found.line, found.column)));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn several_problems_are_all_reported() {
    let text = edit("version: 1", "version: 3")
        .replace("to: c3srv-b }", "to: c3srv-a }")
        .replace("to: c3srv-b,", "to: nowhere,");
    let d = diagnostics(&text);
    assert!(d.len() >= 3, "{d:#?}");
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("version: 1\nclusters: *a11\nmigrations: []\n");
    let started = Instant::now();
    assert!(load_str("bomb.yaml", &text).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_ten_megabyte_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    std::fs::write(&path, "#".repeat(10 << 20)).unwrap();
    let started = Instant::now();
    let err = migrator::spec::load(&path).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("too large"));
    assert!(started.elapsed() < Duration::from_secs(1));
}
