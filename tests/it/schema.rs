//! The JSON Schema and the model agree: every example in plans/ passes both, each structural
//! mistake fails both, and the few rules a schema cannot express fail the model only.
//!
//! The checker below implements the keywords schemas/migrations.schema.json uses.

use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(include_str!("../../schemas/migrations.schema.json")).unwrap()
}

fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            root,
            root.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("bad $ref {r}")),
        ),
        None => s,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unsupported type {other}"),
    }
}

/// Schema violations of `v` (paths), empty when valid.
fn check(root: &Value, s: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let s = resolve(root, s);
    let mut fail = |why: &str| out.push(format!("{path}: {why}"));
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        if !type_ok(t, v) {
            return fail(&format!("not {t}"));
        }
    }
    if s.get("const").is_some_and(|c| c != v) {
        fail("const");
    }
    if s.get("enum")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.contains(v))
    {
        fail("enum");
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !regex_lite::Regex::new(p).unwrap().is_match(text) {
            fail("pattern");
        }
    }
    if s.get("minLength")
        .and_then(Value::as_u64)
        .is_some_and(|n| v.as_str().is_some_and(|t| (t.len() as u64) < n))
    {
        fail("minLength");
    }
    if s.get("minimum")
        .and_then(Value::as_i64)
        .is_some_and(|m| v.as_i64().is_some_and(|x| x < m))
    {
        fail("minimum");
    }
    if let Some(items) = v.as_array() {
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|n| (items.len() as u64) < n)
        {
            fail("minItems");
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true))
            && items
                .iter()
                .enumerate()
                .any(|(i, x)| items[..i].contains(x))
        {
            fail("uniqueItems");
        }
        if let Some(item_schema) = s.get("items") {
            for (i, x) in items.iter().enumerate() {
                check(root, item_schema, x, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        check_object(root, s, obj, path, out);
    }
}

fn check_object(
    root: &Value,
    s: &Value,
    obj: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !obj.contains_key(r.as_str().unwrap()) {
            out.push(format!("{path}: missing {r}"));
        }
    }
    if s.get("minProperties")
        .and_then(Value::as_u64)
        .is_some_and(|n| (obj.len() as u64) < n)
    {
        out.push(format!("{path}: minProperties"));
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, x) in obj {
        let child = format!("{path}.{k}");
        match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
            (Some(ps), _) => check(root, ps, x, &child, out),
            (None, Some(Value::Bool(false))) => out.push(format!("{child}: not allowed")),
            (None, Some(extra)) => check(root, extra, x, &child, out),
            (None, None) => {}
        }
    }
}

fn schema_errors(yaml: &str) -> Vec<String> {
    let doc: Value = serde_yaml::from_str(yaml).unwrap();
    let root = schema();
    let mut out = vec![];
    check(&root, &root, &doc, "$", &mut out);
    out
}

fn model_ok(yaml: &str) -> bool {
    migrator::spec::load_str("x.yaml", yaml).is_ok()
}

#[test]
fn every_example_plan_passes_the_schema_and_the_model_and_names_the_schema() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/plans");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/migrations.schema.json"),
            "{}",
            path.display()
        );
        assert_eq!(
            schema_errors(&text),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        migrator::spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen >= 3, "plans/ has the three documented examples");
}

const BASE: &str = "version: 1\nclusters:\n  a: { meta: [\"h1:1\", \"h2:1\"] }\n  b: { meta: [\"h3:1\", \"h4:1\"] }\n\
                    metaproxy: { zookeeper: [\"z:2181\"], root: /mp }\ndefaults: { threshold: 5, max_write_block: 30s }\n\
                    migrations:\n  - { table: t, from: a, to: b }\n";

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_schema_rejects_what_the_model_rejects() {
    assert!(model_ok(BASE) && schema_errors(BASE).is_empty());
    let both = [
        edit("version: 1", "version: 2"),
        edit("root: /mp }", "root: /mp, port: 1 }"),
        edit("root: /mp", "root: mp"),
        edit("root: /mp", "root: /mp/"),
        edit("threshold: 5", "threshold: -5"),
        edit("threshold: 5", "threshold: 5, extra: 1"),
        edit("30s", "30"),
        edit("30s", "half a minute"),
        edit("[\"h1:1\", \"h2:1\"]", "[\"h1:1\"]"),
        edit("[\"h1:1\", \"h2:1\"]", "[\"h1:1\", \"h1:1\"]"),
        edit("\"h2:1\"", "\"h2\""),
        edit("[\"z:2181\"]", "[]"),
        edit("table: t,", "table: \"t t\","),
        edit("table: t,", "tabel: t,"),
        edit("to: b }", "to: b, block_mode: drop }"),
        edit("to: b }", "to: b, verify_rate: 0 }"),
        edit("to: b }", "to: b, verify_rate: fast }"),
        edit("to: b }", "to: b, verify_parallelism: 0 }"),
        edit("  - { table: t, from: a, to: b }\n", ""),
        BASE.replace("migrations:\n  - { table: t, from: a, to: b }\n", ""),
    ];
    let mut disagreements = vec![];
    for doc in &both {
        if model_ok(doc) || schema_errors(doc).is_empty() {
            disagreements.push(format!(
                "model ok: {}, schema errors: {:?}\n{doc}",
                model_ok(doc),
                schema_errors(doc)
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[test]
fn cross_references_and_ranges_are_the_models_alone() {
    let model_only = [
        edit("from: a", "from: c"),
        edit("to: b }", "to: a }"),
        edit(
            "  - { table: t, from: a, to: b }\n",
            "  - { table: t, from: a, to: b }\n  - { table: t, from: a, to: b }\n",
        ),
        edit("\"h2:1\"", "\"h2:99999\""),
        edit("max_write_block: 30s", "max_write_block: 0s"),
    ];
    for doc in model_only {
        assert!(
            schema_errors(&doc).is_empty(),
            "the schema cannot see this one: {doc}"
        );
        assert!(!model_ok(&doc), "the model must: {doc}");
    }
}
