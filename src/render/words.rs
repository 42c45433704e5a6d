//! Owns the words a plan is told in, shared by the text and Markdown views: what each step
//! does, durations, and a table's risk facts — for one table, or for a group of tables alike.

use std::time::Duration;

use super::json::TableView;
use crate::plan::{StepDetail, TableFacts};

/// Whom a description is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    One,
    Group,
}

/// `30s`, `1.9s`, `250ms`.
#[must_use]
pub fn secs(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if ms % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What a `timeout*` block waits for on each primary: silence over the span
/// (`plan::budget::silence_span`) of the budget's config sync when there is one.
fn silence_words(budget: Option<&crate::plan::budget::Budget>) -> String {
    let span = budget.map_or_else(
        || "a config sync (at least 5s)".to_string(),
        |b| {
            let sync = Duration::from_millis(b.config_sync_ms);
            secs(crate::plan::budget::ms(crate::plan::budget::silence_span(
                sync,
            )))
        },
    );
    format!("leaves probe writes unanswered, none of them late, over {span} (long enough for a server whose config sync failed once to sync again) once a full config sync has passed")
}

/// What a step does, in words (first line on the step's row, the rest indented below).
/// `Whose::Group` words it for several tables at once: no table name, no per-table readings.
#[must_use]
pub fn describe(t: &TableView, detail: &StepDetail, whose: Whose) -> Vec<String> {
    let table = match whose {
        Whose::One => t.table.as_str(),
        Whose::Group => "each table",
    };
    let per_table = whose == Whose::One;
    match detail {
        StepDetail::Preflight => vec![format!(
            "check {table} is available with data version 1, {} has no other table of that name, routing points at {}",
            t.to, t.from
        )],
        StepDetail::Duplicate {
            reuse_dupid: Some(id),
        } => vec![format!("reuse duplication {id} to {}", t.to)],
        StepDetail::Duplicate { reuse_dupid: None } => vec![format!(
            "add a duplication of {table} to {} with checkpoint",
            t.to
        )],
        StepDetail::Checkpoint { status } => {
            let now = status
                .as_deref()
                .filter(|_| per_table)
                .map(|s| format!(" (now {s})"))
                .unwrap_or_default();
            vec![format!("wait until the duplication reaches DS_LOG{now}")]
        }
        StepDetail::CatchUp { lag, threshold } => {
            let now = lag
                .filter(|_| per_table)
                .map(|l| format!(" (now {l})"))
                .unwrap_or_default();
            vec![format!(
                "wait until {table} has at most {threshold} unshipped mutations{now}"
            )]
        }
        StepDetail::Verify { mode, rate } => vec![format!(
            "compare {table} on {} and {} ({} mode: {}{}); differences that do not settle stop the table before any write is blocked; then the lag is checked against the threshold again",
            t.from,
            t.to,
            mode.name(),
            match mode {
                crate::spec::VerifyMode::Full => "every record's key, value and expiry",
                _ => "every key and expiry, the values of a sample of hash keys",
            },
            rate.map(|r| format!(", at most {r} records/s"))
                .unwrap_or_default()
        )],
        StepDetail::BlockWrites {
            env_key,
            env_value,
            mode,
            max_write_block_ms,
            budget,
        } => {
            let (clients, evidence) = match mode {
                crate::spec::BlockMode::Timeout => (
                    "blocked writes get no reply",
                    silence_words(budget.as_ref()),
                ),
                crate::spec::BlockMode::Reconfig => (
                    "blocked writes get ERR_INVALID_STATE",
                    "refuses a probe write".to_string(),
                ),
            };
            let mut lines = vec![
                format!(
                    "set {env_key} = {env_value} on {} and wait until every primary {evidence}",
                    t.from
                ),
                format!(
                    "({clients}; writes are taken again within {} of the block, restore included, while the source's config syncs come on time)",
                    secs(*max_write_block_ms)
                ),
            ];
            if let Some(b) = budget {
                let exact = if b.exact_check_ms > 0 {
                    format!(", {} to compare keys still being written at the gate", secs(b.exact_check_ms))
                } else {
                    String::new()
                };
                lines.push(format!(
                    "(budget: up to {} to take effect at config_sync_interval_ms {}, {} to drain{exact}, {} for the switch, {} reserved to restore)",
                    secs(b.takes_effect_ms), b.config_sync_ms, secs(b.drain_ms), secs(b.switch_ms), secs(b.restore_ms)
                ));
            }
            lines
        }
        StepDetail::Drain {
            max_write_block_ms,
            empty_write_ms,
        } => {
            let mut lines = vec![format!(
                "wait until every partition's primary has shipped what it had prepared once the block was in force there (within {} of the block)",
                secs(*max_write_block_ms)
            )];
            if let Some(gc) = empty_write_ms {
                lines.push(format!(
                    "(2.5 source: each partition's last write ships after its primary's next empty write, up to 2 × group_check_interval_ms = {})",
                    secs(2 * gc)
                ));
            }
            lines
        }
        StepDetail::Switch {
            routing: Some(c), ..
        } if per_table => vec![format!(
            "compare-and-set {} (expecting version {}):",
            c.path, c.version
        )],
        StepDetail::Switch { routing: Some(_), .. } => vec![
            "compare-and-set each table's routing node (expecting the version read by this plan):".into(),
        ],
        StepDetail::Switch {
            routing: None,
            source_env_value,
        } => vec![
            format!("routing already points at {}, or is switched by hand", t.to),
            format!(
                "set replica.deny_client_request = {source_env_value} on {}",
                t.from
            ),
        ],
        StepDetail::Finish {
            remove_duplication: true,
        } => vec![format!(
            "record the result and remove the duplication to {}",
            t.to
        )],
        StepDetail::Finish {
            remove_duplication: false,
        } => vec!["record the result (the duplication is kept)".into()],
    }
}

/// How a diff line of the routing node changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Removed,
    Added,
    Kept,
}

impl Change {
    /// The diff sign: `-`, `+` or a space.
    #[must_use]
    pub fn sign(self) -> char {
        match self {
            Self::Removed => '-',
            Self::Added => '+',
            Self::Kept => ' ',
        }
    }
}

/// The routing node's change, pretty-printed, line by line.
#[must_use]
pub fn routing_diff(c: &crate::plan::RoutingChange) -> Vec<(Change, String)> {
    use similar::{ChangeTag, TextDiff};
    let (before, after) = (pretty(&c.before), pretty(&c.after));
    TextDiff::from_lines(&before, &after)
        .iter_all_changes()
        .map(|change| {
            let kind = match change.tag() {
                ChangeTag::Delete => Change::Removed,
                ChangeTag::Insert => Change::Added,
                ChangeTag::Equal => Change::Kept,
            };
            (kind, change.value().trim_end_matches('\n').to_string())
        })
        .collect()
}

/// The JSON of a routing node, indented.
#[must_use]
pub fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_string())
}

/// What a reviewer judges a table's risk by: `8 partitions · lag 1200, falling (12000 5m ago)
/// · writes blocked ≤ 30s (timeout)`. Parts that are not known are left out.
#[must_use]
pub fn risk(t: &TableView) -> String {
    let mut parts = Vec::new();
    if let Some(p) = t.facts.partitions {
        parts.push(format!("{p} partitions"));
    }
    if let Some(lag) = lag_words(&t.facts) {
        parts.push(lag);
    }
    if let Some(b) = block_words(t) {
        parts.push(b);
    }
    parts.join(" · ")
}

fn lag_words(f: &TableFacts) -> Option<String> {
    let lag = f.lag?;
    let Some(before) = f.lag_before else {
        return Some(format!("lag {lag}"));
    };
    let trend = match lag.cmp(&before.lag) {
        std::cmp::Ordering::Less => "falling",
        std::cmp::Ordering::Equal => "steady",
        std::cmp::Ordering::Greater => "rising",
    };
    Some(format!(
        "lag {lag}, {trend} ({} {} ago)",
        before.lag,
        ago(before.seconds_ago)
    ))
}

fn ago(seconds: u64) -> String {
    match seconds {
        0..=119 => format!("{seconds}s"),
        120..=7199 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

/// `writes blocked ≤ 30s (timeout)`, when a block remains to be done.
#[must_use]
pub fn block_words(t: &TableView) -> Option<String> {
    t.steps.iter().find_map(|s| match &s.detail {
        StepDetail::BlockWrites {
            mode,
            max_write_block_ms,
            ..
        } => Some(format!(
            "writes blocked ≤ {} ({})",
            secs(*max_write_block_ms),
            mode.name()
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LagSample;

    #[test]
    fn lag_trends_read_as_words() {
        let f = |lag, before: Option<(i64, u64)>| TableFacts {
            partitions: None,
            lag,
            lag_before: before.map(|(lag, seconds_ago)| LagSample { lag, seconds_ago }),
        };
        let cases = [
            (f(None, None), None),
            (f(Some(5), None), Some("lag 5")),
            (
                f(Some(5), Some((50, 300))),
                Some("lag 5, falling (50 5m ago)"),
            ),
            (f(Some(5), Some((5, 30))), Some("lag 5, steady (5 30s ago)")),
            (
                f(Some(9), Some((5, 7200))),
                Some("lag 9, rising (5 2h ago)"),
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(lag_words(&facts).as_deref(), want);
        }
    }
}
