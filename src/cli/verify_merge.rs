//! Owns `migrator verify --merge REPORT... [--json]`: the JSON reports of a verify's shards
//! read and merged (`crate::verify::merge`) into one report and verdict, exiting as one run
//! would (0 equal, 2 different, 5 incomplete, 1 on error).

use std::path::PathBuf;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::verify::Verdict;

/// Merges the reports at `paths`.
///
/// # Errors
/// A report cannot be read or is not JSON, or the shards do not fit together.
pub fn run(paths: &[PathBuf], json: bool) -> Result<Exit> {
    let reports = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            serde_json::from_str::<Value>(&text).map_err(|e| {
                Error::Usage(format!("{}: not a verify --json report: {e}", p.display()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = crate::verify::merge::merge(&reports)
        .map_err(|e| Error::Usage(format!("the reports do not merge: {e}")))?;
    let tables = merged["tables"].as_array().cloned().unwrap_or_default();
    if json {
        crate::say!(
            "{}",
            serde_json::to_string_pretty(&merged).unwrap_or_default()
        );
    } else {
        for t in &tables {
            crate::say!("{}", line(t));
        }
    }
    let statuses = tables.iter().map(|t| match t["verdict"].as_str() {
        Some("equal") => Exit::Success,
        Some("incomplete") => Exit::Incomplete,
        _ => Exit::Changes,
    });
    Ok(Exit::worst(statuses))
}

/// One merged table in words.
fn line(t: &Value) -> String {
    let o = &t["outcome"];
    let (c, a) = (&o["scanned"], &o["after_settling"]);
    let verdict = match t["verdict"].as_str() {
        Some("equal") => Verdict::Equal.name().to_string(),
        Some("incomplete") => format!(
            "incomplete: {} key(s) not compared",
            a["changing"].as_u64().unwrap_or(0) + o["not_rechecked"].as_u64().unwrap_or(0)
        ),
        _ => format!(
            "different: missing on the target {}, extra on the target {}, different {}",
            a["missing"], a["extra"], a["different"]
        ),
    };
    format!(
        "{} {} → {}: {verdict} ({} shards merged; {} source records scanned, {} on the target, {} matched at first sight)",
        t["table"].as_str().unwrap_or("?"),
        t["from"].as_str().unwrap_or("?"),
        t["to"].as_str().unwrap_or("?"),
        o["shard"]["merged"],
        c["scanned"],
        c["target_scanned"],
        c["matched"],
    )
}
