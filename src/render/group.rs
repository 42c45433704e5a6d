//! Owns grouping tables for the text and Markdown views: tables whose remaining steps read the
//! same are told once, with their names in natural order; blocked tables are never grouped.
//! Warnings and notes that every table of a group shares are said once, the rest per table.

use std::collections::BTreeMap;
use std::fmt;

use super::json::TableView;
use super::natural::natural_cmp;
use super::words::{describe, pretty, Whose};
use crate::plan::{Action, StepDetail};

/// Tables told together, in natural order (one table: told in full, as `--detailed` does).
#[derive(Debug)]
pub struct Group<'a> {
    pub tables: Vec<&'a TableView>,
}

impl Group<'_> {
    /// The first table (all share its steps).
    #[must_use]
    pub fn first(&self) -> &TableView {
        self.tables[0]
    }

    /// The last table in natural order.
    #[must_use]
    pub fn last(&self) -> &TableView {
        self.tables[self.tables.len() - 1]
    }

    /// Whether the group is a single table, told by name.
    #[must_use]
    pub fn is_single(&self) -> bool {
        self.tables.len() == 1
    }

    /// Lines every table has (`{table}` standing for each one's name), and per table the
    /// lines only it has, from `lines_of` (its warnings or notes).
    #[must_use]
    pub fn split_lines<'t>(
        &'t self,
        lines_of: impl Fn(&'t TableView) -> &'t [String],
    ) -> (Vec<String>, Vec<(&'t str, &'t str)>) {
        let normal: Vec<Vec<String>> = self
            .tables
            .iter()
            .map(|t| lines_of(t).iter().map(|l| normalize(l, &t.table)).collect())
            .collect();
        let shared: Vec<String> = normal[0]
            .iter()
            .filter(|l| normal.iter().all(|n| n.contains(l)))
            .cloned()
            .collect();
        let mut own = Vec::new();
        for (t, n) in self.tables.iter().zip(&normal) {
            for (line, norm) in lines_of(t).iter().zip(n) {
                if !shared.contains(norm) {
                    own.push((t.table.as_str(), line.as_str()));
                }
            }
        }
        (shared, own)
    }

    /// The fewest and most partitions of the group's tables, where known.
    #[must_use]
    pub fn partitions(&self) -> Option<Span> {
        Span::of(
            self.tables
                .iter()
                .filter_map(|t| t.facts.partitions.map(i64::from)),
        )
    }

    /// The least and greatest lag of the group's tables, where known.
    #[must_use]
    pub fn lag(&self) -> Option<Span> {
        Span::of(self.tables.iter().filter_map(|t| t.facts.lag))
    }
}

/// The range of a figure over a group's tables: `8`, or `0–1200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub least: i64,
    pub most: i64,
}

impl Span {
    fn of(values: impl Iterator<Item = i64>) -> Option<Self> {
        values.fold(None, |span, v| {
            Some(match span {
                None => Self { least: v, most: v },
                Some(s) => Self {
                    least: s.least.min(v),
                    most: s.most.max(v),
                },
            })
        })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.least == self.most {
            write!(f, "{}", self.least)
        } else {
            write!(f, "{}–{}", self.least, self.most)
        }
    }
}

/// Groups `tables` (the caller leaves out what it does not show); groups come in the natural
/// order of their first table.
#[must_use]
pub fn group<'a>(tables: impl IntoIterator<Item = &'a TableView>) -> Vec<Group<'a>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for t in tables {
        if t.action == Action::Blocked {
            groups.push(Group { tables: vec![t] });
            continue;
        }
        let key = key(t);
        match index.get(&key) {
            Some(&i) => groups[i].tables.push(t),
            None => {
                index.insert(key, groups.len());
                groups.push(Group { tables: vec![t] });
            }
        }
    }
    for g in &mut groups {
        g.tables.sort_by(|a, b| natural_cmp(&a.table, &b.table));
    }
    groups.sort_by(|a, b| natural_cmp(&a.first().table, &b.first().table));
    groups
}

/// Every table on its own (as `--detailed` tells them), in natural order.
#[must_use]
pub fn one_by_one<'a>(tables: impl IntoIterator<Item = &'a TableView>) -> Vec<Group<'a>> {
    let mut groups: Vec<Group> = tables
        .into_iter()
        .map(|t| Group { tables: vec![t] })
        .collect();
    groups.sort_by(|a, b| natural_cmp(&a.first().table, &b.first().table));
    groups
}

/// What makes two tables' plans read the same.
fn key(t: &TableView) -> String {
    let mut k = format!("{:?}|{:?}|{}|{}", t.action, t.phase, t.from, t.to);
    for s in &t.steps {
        k.push_str(&format!("|{:?}:", s.step));
        k.push_str(&describe(t, &s.detail, Whose::Group).join("\n"));
        if let StepDetail::Switch {
            routing: Some(c), ..
        } = &s.detail
        {
            k.push_str(&pretty(&c.before));
            k.push_str(&pretty(&c.after));
        }
    }
    k
}

/// `text` with whole-word mentions of `table` replaced by `{table}`.
#[must_use]
pub fn normalize(text: &str, table: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(table) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + table.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(word) || after.is_some_and(word) {
            out.push_str(table);
        } else {
            out.push_str("{table}");
        }
        rest = &rest[i + table.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{normalize, Span};

    #[test]
    fn a_span_reads_as_one_figure_or_a_range() {
        assert_eq!(Span::of([7, 7].into_iter()).unwrap().to_string(), "7");
        assert_eq!(Span::of([9, 0, 4].into_iter()).unwrap().to_string(), "0–9");
        assert_eq!(Span::of(std::iter::empty()), None);
    }

    #[test]
    fn only_whole_names_are_replaced() {
        let cases = [
            ("while t is duplicated", "t", "while {table} is duplicated"),
            ("at t.x and t_2, t", "t", "at t.x and t_2, {table}"),
            ("orders (orders)", "orders", "{table} ({table})"),
            ("no mention", "users", "no mention"),
        ];
        for (text, table, want) in cases {
            assert_eq!(normalize(text, table), want);
        }
    }
}
