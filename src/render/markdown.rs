//! Owns the Markdown plan for a pull-request comment: a heading with the counts, cluster-wide
//! changes, a summary table (riskiest first), then one collapsible block per table with its
//! steps, routing diff and env changes. It stays under `LIMIT` characters (GitHub refuses
//! comments over 65,536): past that, rows and details are left out with a line saying how
//! many and how to see them.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::human::summary_line;
use super::json::{PlanDocument, TableView};
use super::words::{block_words, describe, routing_diff, Whose};
use crate::plan::{Action, StepDetail};

/// The most characters the document may have.
pub const LIMIT: usize = 60_000;
/// Kept free for the closing lines.
const TAIL: usize = 1_000;

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
    let tables = by_risk(doc);
    if tables.is_empty() {
        return md;
    }
    md.push_str(
        "| | table | from → to | action | write block | lag | partitions | blockers | warnings |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut rows = 0;
    for t in &tables {
        let row = row(t);
        if md.len() + row.len() > LIMIT - TAIL {
            break;
        }
        md.push_str(&row);
        rows += 1;
    }
    if rows < tables.len() {
        let _ = writeln!(
            md,
            "\n_{} more table(s) not listed (the comment size limit); run `migrator show` to see every table._",
            tables.len() - rows
        );
    }
    md.push('\n');
    let with_details: Vec<&&TableView> =
        tables.iter().filter(|t| t.action != Action::Done).collect();
    let mut details = 0;
    for t in with_details.iter().take(rows) {
        let block = details_block(t);
        if md.len() + block.len() > LIMIT - TAIL {
            break;
        }
        md.push_str(&block);
        details += 1;
    }
    if details < with_details.len() {
        let _ = writeln!(
            md,
            "_Details of {} table(s) left out to stay under the comment size limit; `migrator show --detailed` prints them._\n",
            with_details.len() - details
        );
    }
    md
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

/// Every table, blocked first, then resumed, new, and done; by name within.
fn by_risk(doc: &PlanDocument) -> Vec<&TableView> {
    let rank = |a: Action| match a {
        Action::Blocked => 0,
        Action::Resume => 1,
        Action::Migrate => 2,
        Action::Done => 3,
    };
    let mut tables: Vec<&TableView> = doc.tables.iter().collect();
    tables.sort_by(|a, b| (rank(a.action), &a.table).cmp(&(rank(b.action), &b.table)));
    tables
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

fn row(t: &TableView) -> String {
    let or_dash = |s: Option<String>| s.unwrap_or_else(|| "–".into());
    let lag = t.facts.lag.map(|l| {
        let trend = t.facts.lag_before.map_or("", |b| match l.cmp(&b.lag) {
            std::cmp::Ordering::Less => " ↓",
            std::cmp::Ordering::Equal => " →",
            std::cmp::Ordering::Greater => " ↑",
        });
        format!("{l}{trend}")
    });
    let blockers: Vec<String> = t.blockers.iter().map(|b| escape(&b.reason)).collect();
    format!(
        "| {} | `{}` | {} → {} | {} | {} | {} | {} | {} | {} |\n",
        mark(t.action),
        escape(&t.table),
        escape(&t.from),
        escape(&t.to),
        action_words(t),
        or_dash(block_words(t).map(|b| escape(&b))),
        or_dash(lag),
        or_dash(t.facts.partitions.map(|p| p.to_string())),
        if blockers.is_empty() {
            "–".into()
        } else {
            blockers.join("<br>")
        },
        if t.warnings.is_empty() {
            "–".into()
        } else {
            t.warnings.len().to_string()
        }
    )
}

fn details_block(t: &TableView) -> String {
    let mut md = format!(
        "<details><summary>{} <b>{}</b> {} → {}: {}</summary>\n\n",
        mark(t.action),
        html(&t.table),
        html(&t.from),
        html(&t.to),
        action_words(t).replace("**", "")
    );
    for b in &t.blockers {
        let _ = writeln!(
            md,
            "- **blocked:** {}  \n  **fix:** {}",
            escape(&b.reason),
            escape(&b.fix)
        );
    }
    for s in &t.steps {
        let lines = describe(t, &s.detail, Whose::One);
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
    if !t.warnings.is_empty() || (!t.notes.is_empty() && t.action != Action::Blocked) {
        md.push('\n');
    }
    for w in &t.warnings {
        let _ = writeln!(md, "> ⚠️ {}", escape(w));
    }
    if t.action != Action::Blocked {
        for n in &t.notes {
            let _ = writeln!(md, "- note: {}", escape(n));
        }
    }
    if !md.ends_with("\n\n") {
        md.push('\n');
    }
    md.push_str("</details>\n\n");
    md
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
