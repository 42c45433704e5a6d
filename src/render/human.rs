//! Owns the human plan text, in the spirit of Terraform: a legend, one block per table with its
//! symbol and numbered steps, env changes spelled out, the routing node before/after as a diff,
//! and a summary line. Colour only when asked (the caller knows whether stdout is a terminal).

use std::io::{self, Write};
use std::time::Duration;

use similar::{ChangeTag, TextDiff};

use super::json::{PlanDocument, StepView, TableView};
use crate::plan::{Action, RoutingChange, StepDetail, Summary};

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// Writes the plan for people.
///
/// # Errors
/// The writer failed.
pub fn write_plan(doc: &PlanDocument, color: bool, out: &mut impl Write) -> io::Result<()> {
    let p = Painter { color };
    if doc.has_changes || doc.summary.blocked > 0 {
        write_legend(&p, out)?;
    }
    if doc.has_changes {
        write_cluster_changes(&p, doc, out)?;
    }
    for t in doc.tables.iter().filter(|t| t.action != Action::Done) {
        write_table(&p, t, out)?;
    }
    writeln!(out, "{}", summary_line(&doc.summary))
}

fn write_legend(p: &Painter, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "migrator will act on the tables below. Symbols:")?;
    writeln!(
        out,
        "  {} migrate  nothing has started; every step remains",
        p.paint(GREEN, "+")
    )?;
    writeln!(
        out,
        "  {} resume   work has started; the steps from the current phase remain",
        p.paint(YELLOW, "~")
    )?;
    writeln!(
        out,
        "  {} blocked  an operator must act first; nothing will be done",
        p.paint(RED, "!")
    )?;
    writeln!(out, "Tables that are already done are not listed.")?;
    writeln!(out)
}

fn write_table(p: &Painter, t: &TableView, out: &mut impl Write) -> io::Result<()> {
    let (symbol, style, word) = match t.action {
        Action::Migrate => ("+", GREEN, "migrate"),
        Action::Resume => ("~", YELLOW, "resume"),
        Action::Blocked => ("!", RED, "blocked"),
        Action::Done => ("=", RESET, "done"),
    };
    let phase = t
        .phase
        .map(|k| format!(" from {}", k.label()))
        .filter(|_| t.action == Action::Resume)
        .unwrap_or_default();
    writeln!(
        out,
        "{} {} {} → {}: {word}{phase}",
        p.paint(style, symbol),
        p.paint(BOLD, &t.table),
        t.from,
        t.to
    )?;
    for b in &t.blockers {
        writeln!(out, "    reason: {}", b.reason)?;
        writeln!(out, "    fix:    {}", b.fix)?;
    }
    for s in &t.steps {
        write_step(p, t, s, out)?;
    }
    for w in &t.warnings {
        writeln!(out, "    {} {w}", p.paint(YELLOW, "warning:"))?;
    }
    if t.action != Action::Blocked {
        for n in &t.notes {
            writeln!(out, "    note: {n}")?;
        }
    }
    writeln!(out)
}

fn write_cluster_changes(p: &Painter, doc: &PlanDocument, out: &mut impl Write) -> io::Result<()> {
    for c in &doc.cluster_changes {
        let symbol = if c.applied {
            p.paint(YELLOW, "~")
        } else {
            p.paint(RED, "-")
        };
        writeln!(
            out,
            "{symbol} cluster {}: {}",
            p.paint(BOLD, &c.cluster),
            c.what
        )?;
        writeln!(out, "    {} → {} during its cut-overs", c.before, c.after)?;
        writeln!(out, "    {}", c.note)?;
        writeln!(out)?;
    }
    Ok(())
}

fn write_step(p: &Painter, t: &TableView, s: &StepView, out: &mut impl Write) -> io::Result<()> {
    let lines = describe(t, &s.detail);
    let head = format!("{}. {}", s.number, s.step.label());
    writeln!(out, "    {head:<16} {}", lines[0])?;
    for l in &lines[1..] {
        writeln!(out, "    {:<16} {l}", "")?;
    }
    if let StepDetail::Switch {
        routing: Some(change),
        ..
    } = &s.detail
    {
        write_routing_diff(p, change, out)?;
        writeln!(
            out,
            "    {:<16} then set replica.deny_client_request = reconfig*all on {}",
            "", t.from
        )?;
    }
    Ok(())
}

fn secs(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if ms % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// What a step does, in words (first line on the step's row, the rest indented below).
fn describe(t: &TableView, detail: &StepDetail) -> Vec<String> {
    match detail {
        StepDetail::Preflight => vec![format!(
            "check {} is available with data version 1, {} has no other {}, routing points at {}",
            t.table, t.to, t.table, t.from
        )],
        StepDetail::Duplicate {
            reuse_dupid: Some(id),
        } => vec![format!("reuse duplication {id} to {}", t.to)],
        StepDetail::Duplicate { reuse_dupid: None } => vec![format!(
            "add a duplication of {} to {} with checkpoint",
            t.table, t.to
        )],
        StepDetail::Checkpoint { status } => {
            let now = status
                .as_deref()
                .map(|s| format!(" (now {s})"))
                .unwrap_or_default();
            vec![format!("wait until the duplication reaches DS_LOG{now}")]
        }
        StepDetail::CatchUp { lag, threshold } => {
            let now = lag.map(|l| format!(" (now {l})")).unwrap_or_default();
            vec![format!(
                "wait until {} has at most {threshold} unshipped mutations{now}",
                t.table
            )]
        }
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
                    "leaves a probe write unanswered after a full config sync",
                ),
                crate::spec::BlockMode::Reconfig => (
                    "blocked writes get ERR_INVALID_STATE",
                    "refuses a probe write",
                ),
            };
            let mut lines = vec![
                format!(
                    "set {env_key} = {env_value} on {} and wait until every primary {evidence}",
                    t.from
                ),
                format!(
                    "({clients}; writes are taken again within {} of the block, restore included)",
                    secs(*max_write_block_ms)
                ),
            ];
            if let Some(b) = budget {
                lines.push(format!(
                    "(budget: up to {} to take effect at config_sync_interval_ms {}, {} to drain, {} reserved to restore)",
                    secs(b.takes_effect_ms), b.config_sync_ms, secs(b.drain_ms), secs(b.restore_ms)
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
        } => vec![format!(
            "compare-and-set {} (expecting version {}):",
            c.path, c.version
        )],
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

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_string())
}

fn write_routing_diff(p: &Painter, c: &RoutingChange, out: &mut impl Write) -> io::Result<()> {
    let (before, after) = (pretty(&c.before), pretty(&c.after));
    let diff = TextDiff::from_lines(&before, &after);
    for change in diff.iter_all_changes() {
        let line = change.value().trim_end_matches('\n');
        let (sign, style) = match change.tag() {
            ChangeTag::Delete => ("-", RED),
            ChangeTag::Insert => ("+", GREEN),
            ChangeTag::Equal => (" ", RESET),
        };
        writeln!(
            out,
            "    {:<18} {}",
            "",
            p.paint(style, &format!("{sign} {line}"))
        )?;
    }
    Ok(())
}

/// `Plan: 3 to migrate, 1 to resume, 2 already done, 1 blocked.`
#[must_use]
pub fn summary_line(s: &Summary) -> String {
    if s.migrate + s.resume + s.blocked == 0 {
        return format!("No changes. {} table(s) already done.", s.done);
    }
    format!(
        "Plan: {} to migrate, {} to resume, {} already done, {} blocked.",
        s.migrate, s.resume, s.done, s.blocked
    )
}
