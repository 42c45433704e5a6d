//! Owns the Markdown plan for a pull-request comment: a heading with the counts, cluster-wide
//! changes, a summary table with one row per group of tables whose steps read the same
//! (blocked tables one by one, first; each group's names in a collapsible list), then one
//! collapsible block per group with its steps, routing diff and env changes, told once. It
//! stays under `LIMIT` characters (GitHub refuses comments over 65,536): rows come first, then
//! names, then steps, and whatever has no room is counted exactly, with how to see it.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::group::{group, Group};
use super::human::summary_line;
use super::json::{PlanDocument, TableView};
use super::words::{block_words, describe, routing_diff, Whose};
use crate::plan::{Action, StepDetail};

/// The most characters the document may have.
pub const LIMIT: usize = 60_000;
/// Kept free for the closing lines.
const TAIL: usize = 1_000;

const TABLE_HEAD: &str = concat!(
    "| | table | from → to | action | write block | lag | partitions | blockers | warnings |\n",
    "|---|---|---|---|---|---|---|---|---|\n"
);

/// Writes the plan as Markdown.
///
/// # Errors
/// The writer failed.
pub fn write_plan(doc: &PlanDocument, out: &mut impl Write) -> io::Result<()> {
    out.write_all(render(doc).as_bytes())
}

/// The Markdown text of `doc`, at most [`LIMIT`] characters.
#[must_use]
pub fn render(doc: &PlanDocument) -> String {
    let mut md = head(doc);
    let groups = by_risk(group(&doc.tables));
    if groups.is_empty() {
        return md;
    }
    let room = (LIMIT - TAIL).saturating_sub(md.len());
    let listed = rows_that_fit(&groups, room);
    let blocks: Vec<(&Group, String)> = groups[..listed]
        .iter()
        .filter(|g| has_steps(g))
        .map(|g| (g, details_block(g)))
        .collect();
    // The riskiest group's steps (and the blank line before them) are worth more than the
    // last names of a long list.
    let first_block = blocks.first().map_or(0, |(_, b)| b.len() + 1);
    md.push_str(&summary_table(&groups, listed, room, first_block));
    md.push('\n');
    push_steps(&mut md, &groups, &blocks);
    md
}

/// The first `listed` rows, each with as many names as fit in `room` once `first_block`
/// characters are kept for the first block of steps (if the rows leave that much), and the
/// count of the tables whose rows are left out.
fn summary_table(groups: &[Group], listed: usize, room: usize, first_block: usize) -> String {
    let rows_len = TABLE_HEAD.len()
        + groups[..listed]
            .iter()
            .map(|g| row(g, 0).len())
            .sum::<usize>();
    let reserve = if rows_len + first_block <= room {
        first_block
    } else {
        0
    };
    let names = names_that_fit(&groups[..listed], room.saturating_sub(rows_len + reserve));
    let mut md = TABLE_HEAD.to_string();
    for (g, shown) in groups.iter().zip(names) {
        md.push_str(&row(g, shown));
    }
    let unlisted = &groups[listed..];
    if !unlisted.is_empty() {
        let _ = writeln!(
            md,
            "\n_{} more table(s) in {} row(s) not listed (the comment size limit); run `migrator show` to see every table._",
            table_count(unlisted),
            unlisted.len()
        );
    }
    md
}

/// Appends the blocks of steps that fit, then the count of tables whose steps are left out.
fn push_steps(md: &mut String, groups: &[Group], blocks: &[(&Group, String)]) {
    let (mut told_blocks, mut told_tables) = (0, 0);
    for (g, block) in blocks {
        if md.len() + block.len() > LIMIT - TAIL {
            break;
        }
        md.push_str(block);
        told_blocks += 1;
        told_tables += g.tables.len();
    }
    let with_steps: Vec<&Group> = groups.iter().filter(|g| has_steps(g)).collect();
    if told_blocks < with_steps.len() {
        let _ = writeln!(
            md,
            "_The steps of {} table(s), in {} block(s), left out to stay under the comment size limit; `migrator show --detailed` prints them._\n",
            with_steps.iter().map(|g| g.tables.len()).sum::<usize>() - told_tables,
            with_steps.len() - told_blocks
        );
    }
}

/// How many of `groups` have a summary row within `room` characters (with no names listed).
fn rows_that_fit(groups: &[Group], room: usize) -> usize {
    let mut used = TABLE_HEAD.len();
    let mut listed = 0;
    for g in groups {
        used += row(g, 0).len();
        if used > room {
            break;
        }
        listed += 1;
    }
    listed
}

/// How many names each group's row lists within `room` more characters: every name in row
/// order until one has no room. A single table's name is always in its row.
fn names_that_fit(groups: &[Group], mut room: usize) -> Vec<usize> {
    let mut shown = Vec::with_capacity(groups.len());
    let mut full = false;
    for g in groups {
        if g.is_single() {
            shown.push(1);
            continue;
        }
        let mut n = 0;
        while !full && n < g.tables.len() {
            // Each name costs itself and its separator; the row's count of names left out
            // only gets shorter as names are added.
            let cost = escape(&g.tables[n].table).len() + 2;
            full = cost > room;
            if !full {
                room -= cost;
                n += 1;
            }
        }
        shown.push(n);
    }
    shown
}

fn has_steps(g: &Group) -> bool {
    g.first().action != Action::Done
}

fn table_count(groups: &[Group]) -> usize {
    groups.iter().map(|g| g.tables.len()).sum()
}

fn head(doc: &PlanDocument) -> String {
    let mut md = format!("### migrator plan\n\n{}\n\n", summary_line(&doc.summary));
    let _ = writeln!(
        md,
        "<sub>from `{}` (sha256 `{}`), migrator {}</sub>\n",
        escape(&doc.spec_file),
        doc.spec_hash.get(..12).unwrap_or(&doc.spec_hash),
        doc.tool_version
    );
    if doc.has_changes && !doc.cluster_changes.is_empty() {
        md.push_str("**Cluster changes**\n\n");
        for c in &doc.cluster_changes {
            let verb = if c.applied { "changes" } else { "not changed" };
            let _ = writeln!(
                md,
                "- `{}`: {} — {verb}: `{}` → `{}` during its cut-overs. {}",
                escape(&c.cluster),
                escape(&c.what),
                escape(&c.before),
                escape(&c.after),
                escape(&c.note)
            );
        }
        md.push('\n');
    }
    md
}

/// Groups blocked first, then resumed, new, and done; in natural order within.
fn by_risk(mut groups: Vec<Group>) -> Vec<Group> {
    let rank = |a: Action| match a {
        Action::Blocked => 0,
        Action::Resume => 1,
        Action::Migrate => 2,
        Action::Done => 3,
    };
    groups.sort_by_key(|g| rank(g.first().action));
    groups
}

fn mark(a: Action) -> &'static str {
    match a {
        Action::Migrate => "➕",
        Action::Resume => "🔁",
        Action::Blocked => "⛔",
        Action::Done => "✅",
    }
}

fn action_words(t: &TableView) -> String {
    match (t.action, t.phase) {
        (Action::Migrate, _) => "migrate".into(),
        (Action::Resume, Some(p)) => format!("resume from {}", p.label()),
        (Action::Resume, None) => "resume".into(),
        (Action::Blocked, _) => "**blocked**".into(),
        (Action::Done, _) => "done".into(),
    }
}

/// The summary row of `g`, listing the first `names_shown` of its names.
fn row(g: &Group, names_shown: usize) -> String {
    let t = g.first();
    let or_dash = |s: Option<String>| s.unwrap_or_else(|| "–".into());
    format!(
        "| {} | {} | {} → {} | {} | {} | {} | {} | {} | {} |\n",
        mark(t.action),
        tables_cell(g, names_shown),
        escape(&t.from),
        escape(&t.to),
        action_words(t),
        or_dash(block_words(t).map(|b| escape(&b))),
        or_dash(lag_cell(g)),
        or_dash(g.partitions().map(|p| p.to_string())),
        or_dash(blockers_cell(g)),
        or_dash(warnings_cell(g))
    )
}

/// A single table's name, or a group's count with its names folded away.
fn tables_cell(g: &Group, names_shown: usize) -> String {
    if g.is_single() {
        return format!("`{}`", escape(&g.first().table));
    }
    let names: Vec<String> = g
        .tables
        .iter()
        .take(names_shown)
        .map(|t| escape(&t.table))
        .collect();
    let mut list = names.join(", ");
    let left = g.tables.len() - names.len();
    if left > 0 {
        let sep = if list.is_empty() { "" } else { ", " };
        let _ = write!(
            list,
            "{sep}… {left} more (the comment size limit; `migrator show --detailed` lists every table)"
        );
    }
    format!(
        "<details><summary>{} tables</summary>{list}</details>",
        g.tables.len()
    )
}

/// Lag now (with its trend since the previous plan) for one table; the range for a group.
fn lag_cell(g: &Group) -> Option<String> {
    if !g.is_single() {
        return g.lag().map(|l| l.to_string());
    }
    let facts = &g.first().facts;
    let lag = facts.lag?;
    let trend = facts.lag_before.map_or("", |b| match lag.cmp(&b.lag) {
        std::cmp::Ordering::Less => " ↓",
        std::cmp::Ordering::Equal => " →",
        std::cmp::Ordering::Greater => " ↑",
    });
    Some(format!("{lag}{trend}"))
}

/// Blocked tables are never grouped, so a blocker belongs to the one table of its row.
fn blockers_cell(g: &Group) -> Option<String> {
    let blockers: Vec<String> = g
        .first()
        .blockers
        .iter()
        .map(|b| escape(&b.reason))
        .collect();
    (g.is_single() && !blockers.is_empty()).then(|| blockers.join("<br>"))
}

/// How many warnings: one table's count; for a group, those every table has and those only
/// some have.
fn warnings_cell(g: &Group) -> Option<String> {
    if g.is_single() {
        let n = g.first().warnings.len();
        return (n > 0).then(|| n.to_string());
    }
    let (shared, own) = g.split_lines(|t| &t.warnings);
    let mut parts = Vec::new();
    if !shared.is_empty() {
        parts.push(format!("{} on every table", shared.len()));
    }
    if !own.is_empty() {
        let mut tables: Vec<&str> = own.iter().map(|(t, _)| *t).collect();
        tables.dedup();
        parts.push(format!("{} on {} table(s)", own.len(), tables.len()));
    }
    (!parts.is_empty()).then(|| parts.join("<br>"))
}

/// The collapsible block of a group's steps, told once, with what its tables do not share.
fn details_block(g: &Group) -> String {
    let t = g.first();
    let (whose, who) = if g.is_single() {
        (Whose::One, format!("<b>{}</b>", html(&t.table)))
    } else {
        let (first, last) = (html(&t.table), html(&g.last().table));
        let n = g.tables.len();
        (
            Whose::Group,
            format!("<b>{n} tables</b> ({first} … {last})"),
        )
    };
    let mut md = format!(
        "<details><summary>{} {who} {} → {}: {}</summary>\n\n",
        mark(t.action),
        html(&t.from),
        html(&t.to),
        action_words(t).replace("**", "")
    );
    if g.is_single() {
        for b in &t.blockers {
            let _ = writeln!(
                md,
                "- **blocked:** {}  \n  **fix:** {}",
                escape(&b.reason),
                escape(&b.fix)
            );
        }
    }
    write_steps(&mut md, t, whose);
    write_warnings_and_notes(&mut md, g);
    if !md.ends_with("\n\n") {
        md.push('\n');
    }
    md.push_str("</details>\n\n");
    md
}

fn write_steps(md: &mut String, t: &TableView, whose: Whose) {
    for s in &t.steps {
        let lines = describe(t, &s.detail, whose);
        // Not a Markdown ordered list: it would renumber the remaining steps from 1.
        let _ = writeln!(
            md,
            "- **{}. {}** — {}",
            s.number,
            s.step.label(),
            escape(&lines[0])
        );
        for l in &lines[1..] {
            let _ = writeln!(md, "  {}", escape(l));
        }
        if let StepDetail::Switch {
            routing: Some(c),
            source_env_value,
        } = &s.detail
        {
            md.push_str("\n  ```diff\n");
            for (change, line) in routing_diff(c) {
                let _ = writeln!(md, "  {}{line}", change.sign());
            }
            md.push_str("  ```\n");
            let _ = writeln!(
                md,
                "  then `replica.deny_client_request = {source_env_value}` on {}",
                escape(&t.from)
            );
        }
    }
}

/// Warnings and notes every table shares once, then each table's own with its name; a
/// blocked table's notes are left out (nothing will be done).
fn write_warnings_and_notes(md: &mut String, g: &Group) {
    let (shared_warnings, own_warnings) = g.split_lines(|t| &t.warnings);
    let (shared_notes, own_notes) = if g.first().action == Action::Blocked {
        (Vec::new(), Vec::new())
    } else {
        g.split_lines(|t| &t.notes)
    };
    let named = |table: &str| {
        if g.is_single() {
            String::new()
        } else {
            format!("{}: ", escape(table))
        }
    };
    let every = if g.is_single() { "" } else { "(every table) " };
    if !(shared_warnings.is_empty()
        && own_warnings.is_empty()
        && shared_notes.is_empty()
        && own_notes.is_empty())
    {
        md.push('\n');
    }
    for w in &shared_warnings {
        let _ = writeln!(md, "> ⚠️ {every}{}", escape(&in_words(w, g)));
    }
    for (table, w) in &own_warnings {
        let _ = writeln!(md, "> ⚠️ {}{}", named(table), escape(w));
    }
    for n in &shared_notes {
        let _ = writeln!(md, "- note: {every}{}", escape(&in_words(n, g)));
    }
    for (table, n) in &own_notes {
        let _ = writeln!(md, "- note: {}{}", named(table), escape(n));
    }
}

/// A shared line with `{table}` put back: the table's name, or "each table" for a group.
fn in_words(line: &str, g: &Group) -> String {
    let name = if g.is_single() {
        g.first().table.as_str()
    } else {
        "each table"
    };
    line.replace("{table}", name)
}

/// Text safe inside a Markdown table cell or paragraph.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '*' => out.push_str("\\*"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text safe inside HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(escape("a|b <i>\nc*d"), "a\\|b &lt;i&gt; c\\*d");
        assert_eq!(html("<b>&"), "&lt;b&gt;&amp;");
    }
}
