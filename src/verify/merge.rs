//! Owns `verify --merge`: adding up the JSON reports of the shards of one verify
//! (`--shard I/N --json`) into one report and verdict, as one run would have given — counts
//! summed, differing and changing keys joined — after checking the shards fit together: every
//! share 0..N of each table exactly once, with the same layout, mode and sample.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::Verdict;

/// Why reports could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("report {0}: {1}")]
    Report(usize, String),
    #[error("{table}: {why}")]
    Shards { table: String, why: String },
}

/// Counts summed over the shards.
const SUMMED: [(&str, &[&str]); 2] = [
    (
        "scanned",
        &[
            "scanned",
            "target_scanned",
            "matched",
            "missing",
            "extra",
            "different",
            "foreign",
        ],
    ),
    (
        "after_settling",
        &["missing", "extra", "different", "not_rechecked", "changing"],
    ),
];

/// What must be the same in every shard's outcome.
const SAME: [&str; 3] = ["mode", "expiry_compared", "partitions"];

/// One report per shard (as `verify --json --shard I/N` prints it) merged into one.
///
/// # Errors
/// A report is not one, a table misses a shard or has one twice, or the shards ran
/// differently.
pub fn merge(reports: &[Value]) -> Result<Value, MergeError> {
    let mut tables: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        let bad = |why: &str| MergeError::Report(i + 1, why.to_string());
        let list = r["tables"].as_array().ok_or_else(|| bad("no tables"))?;
        for t in list {
            if let Some(e) = t["error"].as_str() {
                return Err(bad(&format!("{} was not verified: {e}", t["table"])));
            }
            let name = |k: &str| t[k].as_str().map(str::to_string).ok_or_else(|| bad(k));
            tables
                .entry((name("table")?, name("from")?, name("to")?))
                .or_default()
                .push(t);
        }
    }
    let merged = tables
        .into_iter()
        .map(|((table, from, to), shards)| {
            let outcome = merge_table(&table, &shards)?;
            let verdict = outcome["verdict"].clone();
            Ok(json!({
                "table": table, "from": from, "to": to,
                "verdict": verdict, "equal": verdict == "equal", "outcome": outcome,
            }))
        })
        .collect::<Result<Vec<_>, MergeError>>()?;
    Ok(json!({"format_version": "1.0", "tables": merged}))
}

/// The shards of one table merged into one outcome.
fn merge_table(table: &str, shards: &[&Value]) -> Result<Value, MergeError> {
    let bad = |why: String| MergeError::Shards {
        table: table.to_string(),
        why,
    };
    let outcomes: Vec<&Value> = shards.iter().map(|s| &s["outcome"]).collect();
    let count = outcomes[0]["shard"]["count"]
        .as_u64()
        .ok_or_else(|| bad("a report was not run with --shard".into()))?;
    let mut seen = vec![false; usize::try_from(count).unwrap_or(0)];
    for o in &outcomes {
        if o["shard"]["count"].as_u64() != Some(count) {
            return Err(bad(format!(
                "shards of {count} and of {}",
                o["shard"]["count"]
            )));
        }
        let i = o["shard"]["index"]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok());
        match i.and_then(|i| seen.get_mut(i)) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(bad(format!(
                    "shard {}/{count} given twice",
                    o["shard"]["index"]
                )))
            }
        }
        for k in SAME.iter().chain(["sample"].iter()) {
            let (a, b) = (&outcomes[0][*k], &o[*k]);
            // Shards sample alike only with the same rate and salt.
            let differs = if *k == "sample" {
                a["rate"] != b["rate"] || a["salt"] != b["salt"]
            } else {
                a != b
            };
            if differs {
                return Err(bad(format!("the shards' {k} differ ({a} and {b}): give every shard the same settings (--sample-salt too)")));
            }
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(bad(format!("shard {missing}/{count} is missing")));
    }
    let mut out = outcomes[0].as_object().cloned().unwrap_or_default();
    for (part, fields) in SUMMED {
        let mut sums = Map::new();
        for f in fields {
            let total: u64 = outcomes.iter().filter_map(|o| o[part][*f].as_u64()).sum();
            sums.insert((*f).to_string(), total.into());
        }
        out.insert(part.to_string(), Value::Object(sums));
    }
    for f in ["not_rechecked", "values_compared"] {
        let total: u64 = outcomes.iter().filter_map(|o| o[f].as_u64()).sum();
        out.insert(f.to_string(), total.into());
    }
    for f in ["rounds", "elapsed_ms", "max_in_hand"] {
        let most = outcomes
            .iter()
            .filter_map(|o| o[f].as_u64())
            .max()
            .unwrap_or(0);
        out.insert(f.to_string(), most.into());
    }
    for f in ["differing", "changing"] {
        let all: Vec<Value> = outcomes
            .iter()
            .filter_map(|o| o[f].as_array())
            .flatten()
            .cloned()
            .collect();
        out.insert(f.to_string(), Value::Array(all));
    }
    let n = |f: &str| out[f].as_array().map_or(0, Vec::len) as u64;
    let not_compared = n("changing") + out["not_rechecked"].as_u64().unwrap_or(0);
    let verdict = Verdict::of(n("differing"), not_compared);
    out.insert("verdict".into(), json!(verdict));
    out.insert("shard".into(), json!({"merged": count}));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(i: u64, n: u64, scanned: u64, differing: Vec<Value>) -> Value {
        json!({"format_version": "1.0", "tables": [{
            "table": "t", "from": "a", "to": "b", "verdict": "x", "equal": false,
            "outcome": {
                "verdict": "x", "mode": "full", "expiry_compared": true, "partitions": [8, 4],
                "sample": null,
                "scanned": {"scanned": scanned, "target_scanned": scanned, "matched": scanned,
                            "missing": 0, "extra": 0, "different": 0, "foreign": 0},
                "after_settling": {"missing": differing.len(), "extra": 0, "different": 0,
                                   "not_rechecked": 0, "changing": 0},
                "differing": differing, "changing": [], "not_rechecked": 0,
                "values_compared": 0, "rounds": i, "elapsed_ms": 100 * i, "max_in_hand": 5,
                "shard": {"index": i, "count": n, "groups": 1, "groups_total": n}
            }
        }]})
    }

    #[test]
    fn shards_add_up_to_one_verdict() {
        let lost = json!({"kind": "missing", "hash_key": "h", "sort_key": "s"});
        let merged = merge(&[
            shard(2, 3, 30, vec![]),
            shard(0, 3, 10, vec![lost.clone()]),
            shard(1, 3, 20, vec![]),
        ])
        .unwrap();
        let t = &merged["tables"][0];
        assert_eq!(
            (&t["verdict"], &t["equal"]),
            (&json!("different"), &json!(false))
        );
        let o = &t["outcome"];
        assert_eq!(o["scanned"]["scanned"], 60);
        assert_eq!(o["after_settling"]["missing"], 1);
        assert_eq!(o["differing"], json!([lost]));
        assert_eq!((&o["rounds"], &o["elapsed_ms"]), (&json!(2), &json!(200)));
        assert_eq!(o["shard"], json!({"merged": 3}));
        let equal = merge(&[shard(0, 2, 1, vec![]), shard(1, 2, 1, vec![])]).unwrap();
        assert_eq!(equal["tables"][0]["verdict"], "equal");
    }

    #[test]
    fn shards_that_do_not_fit_together_are_refused() {
        let e = merge(&[shard(0, 3, 1, vec![]), shard(2, 3, 1, vec![])]).unwrap_err();
        assert_eq!(e.to_string(), "t: shard 1/3 is missing");
        let e = merge(&[shard(0, 2, 1, vec![]), shard(0, 2, 1, vec![])]).unwrap_err();
        assert_eq!(e.to_string(), "t: shard 0/2 given twice");
        let e = merge(&[shard(0, 2, 1, vec![]), shard(1, 3, 1, vec![])]).unwrap_err();
        assert!(e.to_string().contains("shards of 2 and of 3"), "{e}");
        let mut other = shard(1, 2, 1, vec![]);
        other["tables"][0]["outcome"]["partitions"] = json!([16, 4]);
        let e = merge(&[shard(0, 2, 1, vec![]), other]).unwrap_err();
        assert!(
            e.to_string().contains("the shards' partitions differ"),
            "{e}"
        );
        let e = merge(&[json!({"tables": [{"table": "t", "error": "boom"}]})]).unwrap_err();
        assert!(e.to_string().contains("was not verified: boom"), "{e}");
        let mut plain = shard(0, 1, 1, vec![]);
        plain["tables"][0]["outcome"]["shard"] = Value::Null;
        let e = merge(&[plain]).unwrap_err();
        assert!(e.to_string().contains("not run with --shard"), "{e}");
    }
}
