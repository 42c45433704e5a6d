//! Owns grouping for the text view: tables whose remaining steps read the same (for a group)
//! are told once, with their names listed; blocked tables are never grouped. Warnings and
//! notes that every table of a group shares are said once, the rest per table.

use std::collections::BTreeMap;

use super::json::TableView;
use super::words::{describe, pretty, Whose};
use crate::plan::{Action, StepDetail};

/// Tables told together (one table: told in full, as `--detailed` does).
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
}

/// Groups `tables` (done tables left out) in the order their first table appears.
#[must_use]
pub fn group(tables: &[TableView]) -> Vec<Group<'_>> {
    let mut order: Vec<Group> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for t in tables.iter().filter(|t| t.action != Action::Done) {
        if t.action == Action::Blocked {
            order.push(Group { tables: vec![t] });
            continue;
        }
        let key = key(t);
        match index.get(&key) {
            Some(&i) => order[i].tables.push(t),
            None => {
                index.insert(key, order.len());
                order.push(Group { tables: vec![t] });
            }
        }
    }
    order
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
    use super::normalize;

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
