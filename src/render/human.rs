//! Owns the human plan text, in the spirit of Terraform: a legend, one block per table with its
//! symbol and numbered steps, env changes spelled out, the routing node before/after as a diff,
//! and a summary line. Colour only when asked (the caller knows whether stdout is a terminal).

use std::io::{self, Write};

use super::group::{group, one_by_one, Group};
use super::json::{PlanDocument, StepView, TableView};
use super::words::{block_words, describe, risk, routing_diff, Change, Whose};
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

/// How the text is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextStyle {
    /// ANSI colour (the caller knows whether stdout is a terminal).
    pub color: bool,
    /// Every table in full; otherwise tables whose steps read the same are told once.
    pub detailed: bool,
}

/// Most lines of table names a group shows before saying how many more there are.
const NAME_LINES: usize = 10;
/// Width of a line of table names.
const NAME_WIDTH: usize = 96;

/// Writes the plan for people.
///
/// # Errors
/// The writer failed.
pub fn write_plan(doc: &PlanDocument, style: TextStyle, out: &mut impl Write) -> io::Result<()> {
    let p = Painter { color: style.color };
    if doc.has_changes || doc.summary.blocked > 0 {
        write_legend(&p, out)?;
    }
    if doc.has_changes {
        write_cluster_changes(&p, doc, out)?;
    }
    let shown = doc.tables.iter().filter(|t| t.action != Action::Done);
    let groups = if style.detailed {
        one_by_one(shown)
    } else {
        group(shown)
    };
    for g in groups {
        if g.is_single() {
            write_table(&p, g.first(), out)?;
        } else {
            write_group(&p, &g, out)?;
        }
    }
    writeln!(out, "{}", summary_line(&doc.summary))
}

fn action_mark(action: Action) -> (&'static str, &'static str, &'static str) {
    match action {
        Action::Migrate => ("+", GREEN, "migrate"),
        Action::Resume => ("~", YELLOW, "resume"),
        Action::Blocked => ("!", RED, "blocked"),
        Action::Done => ("=", RESET, "done"),
    }
}

fn phase_words(t: &TableView) -> String {
    t.phase
        .map(|k| format!(" from {}", k.label()))
        .filter(|_| t.action == Action::Resume)
        .unwrap_or_default()
}

/// Tables whose steps read the same: their names, the steps once, what they do not share.
fn write_group(p: &Painter, g: &Group, out: &mut impl Write) -> io::Result<()> {
    let t = g.first();
    let (symbol, style, word) = action_mark(t.action);
    writeln!(
        out,
        "{} {} tables {} → {}: {word}{}{}",
        p.paint(style, symbol),
        p.paint(BOLD, &g.tables.len().to_string()),
        t.from,
        t.to,
        phase_words(t),
        group_risk(g)
    )?;
    write_names(g, out)?;
    for s in &t.steps {
        write_step(p, t, s, Whose::Group, out)?;
    }
    let (shared, own) = g.split_lines(|t| &t.warnings);
    for w in shared {
        let w = w.replace("{table}", "each table");
        writeln!(out, "    {} {w}", p.paint(YELLOW, "warning (every table):"))?;
    }
    for (table, w) in own {
        writeln!(out, "    {} {table}: {w}", p.paint(YELLOW, "warning:"))?;
    }
    let (shared, own) = g.split_lines(|t| &t.notes);
    for n in shared {
        writeln!(out, "    note: {}", n.replace("{table}", "each table"))?;
    }
    for (table, n) in own {
        writeln!(out, "    note: {table}: {n}")?;
    }
    writeln!(out)
}

/// ` · 8 partitions · lag 0–1200 · writes blocked ≤ 30s (timeout)` for a group.
fn group_risk(g: &Group) -> String {
    let mut parts = Vec::new();
    if let Some(p) = g.partitions() {
        parts.push(format!("{p} partitions"));
    }
    if let Some(lag) = g.lag() {
        parts.push(format!("lag {lag}"));
    }
    if let Some(b) = block_words(g.first()) {
        parts.push(b);
    }
    parts.iter().map(|p| format!(" · {p}")).collect()
}

fn write_names(g: &Group, out: &mut impl Write) -> io::Result<()> {
    let mut lines: Vec<String> = vec![String::new()];
    let mut shown = 0;
    for t in &g.tables {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + t.table.len() + 2 > NAME_WIDTH {
            if lines.len() == NAME_LINES {
                break;
            }
            lines.push(String::new());
        }
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&t.table);
        shown += 1;
    }
    let left = g.tables.len() - shown;
    for l in &lines {
        writeln!(out, "    {l}")?;
    }
    if left > 0 {
        writeln!(
            out,
            "    … and {left} more (`--detailed` or `--format json` lists them all)"
        )?;
    }
    Ok(())
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
    let (symbol, style, word) = action_mark(t.action);
    let risk = risk(t);
    let risk = if risk.is_empty() || t.action == Action::Blocked {
        String::new()
    } else {
        format!(" · {risk}")
    };
    writeln!(
        out,
        "{} {} {} → {}: {word}{}{risk}",
        p.paint(style, symbol),
        p.paint(BOLD, &t.table),
        t.from,
        t.to,
        phase_words(t)
    )?;
    for b in &t.blockers {
        writeln!(out, "    reason: {}", b.reason)?;
        writeln!(out, "    fix:    {}", b.fix)?;
    }
    for s in &t.steps {
        write_step(p, t, s, Whose::One, out)?;
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

fn write_step(
    p: &Painter,
    t: &TableView,
    s: &StepView,
    whose: Whose,
    out: &mut impl Write,
) -> io::Result<()> {
    let lines = describe(t, &s.detail, whose);
    let head = format!("{}. {}", s.number, s.step.label());
    writeln!(out, "    {head:<16} {}", lines[0])?;
    for l in &lines[1..] {
        writeln!(out, "    {:<16} {l}", "")?;
    }
    if let StepDetail::Switch {
        routing: Some(change),
        source_env_value,
    } = &s.detail
    {
        write_routing_diff(p, change, out)?;
        writeln!(
            out,
            "    {:<16} then set replica.deny_client_request = {source_env_value} on {}",
            "", t.from
        )?;
    }
    Ok(())
}

fn write_routing_diff(p: &Painter, c: &RoutingChange, out: &mut impl Write) -> io::Result<()> {
    for (change, line) in routing_diff(c) {
        let style = match change {
            Change::Removed => RED,
            Change::Added => GREEN,
            Change::Kept => RESET,
        };
        let sign = change.sign();
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
