//! Owns mapping YAML paths (`migrations[2].from`) to the line and column where that node
//! starts, so semantic errors found on the typed model can point into the file.
//!
//! Pure: works on the text. A document the parser cannot read yields an empty index (the
//! typed loader reports the syntax error itself).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, StrInput};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where each node of a document starts, and the mapping keys that appear twice.
#[derive(Debug, Default)]
pub struct Index {
    positions: HashMap<String, Position>,
    duplicates: Vec<(String, Position, Position)>,
}

impl Index {
    /// Indexes `text`.
    #[must_use]
    pub fn build(text: &str) -> Self {
        let mut walker = Walker {
            parser: Parser::new_from_str(text),
            positions: HashMap::new(),
            duplicates: vec![],
        };
        // Skip StreamStart and DocumentStart; a broken document leaves what was indexed.
        let started = matches!(walker.next(), Some((Event::StreamStart, _)))
            && matches!(walker.next(), Some((Event::DocumentStart(_), _)));
        if started {
            let _ = walker.node(String::new());
        }
        Self {
            positions: walker.positions,
            duplicates: walker.duplicates,
        }
    }

    /// Keys given twice in one mapping: the key's path, where it is first and again.
    /// YAML parsers keep the last silently, which would hide e.g. a cluster defined twice.
    #[must_use]
    pub fn duplicate_keys(&self) -> &[(String, Position, Position)] {
        &self.duplicates
    }

    /// Where `path` starts, or the nearest indexed ancestor, or the file's start.
    #[must_use]
    pub fn position(&self, path: &str) -> Position {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self
                        .positions
                        .get("")
                        .copied()
                        .unwrap_or(Position { line: 1, column: 1 })
                }
            }
        }
    }
}

struct Walker<'a> {
    parser: Parser<'a, StrInput<'a>>,
    positions: HashMap<String, Position>,
    duplicates: Vec<(String, Position, Position)>,
}

impl<'a> Walker<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Position)> {
        let (event, span) = self.parser.next_event()?.ok()?;
        Some((
            event,
            Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            },
        ))
    }

    /// Indexes one node and its children; `None` when the stream ends early.
    fn node(&mut self, path: String) -> Option<()> {
        let (event, pos) = self.next()?;
        self.node_from(event, pos, path)
    }

    fn node_from(&mut self, event: Event<'a>, pos: Position, path: String) -> Option<()> {
        self.positions.entry(path.clone()).or_insert(pos);
        match event {
            Event::MappingStart(..) => loop {
                let (key, key_pos) = self.next()?;
                let name = match key {
                    Event::MappingEnd => return Some(()),
                    Event::Scalar(text, ..) => text.into_owned(),
                    other => {
                        // A complex key: index nothing under it, but keep the stream aligned.
                        self.node_from(other, key_pos, format!("{path}.?"))?;
                        "?".to_string()
                    }
                };
                let child = if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                };
                if let Some(first) = self.positions.get(&child) {
                    self.duplicates.push((child.clone(), *first, key_pos));
                }
                self.node(child)?;
            },
            Event::SequenceStart(..) => {
                for i in 0.. {
                    let (item, item_pos) = self.next()?;
                    if matches!(item, Event::SequenceEnd) {
                        return Some(());
                    }
                    self.node_from(item, item_pos, format!("{path}[{i}]"))?;
                }
                Some(())
            }
            _ => Some(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_nodes_are_located() {
        let text = "version: 1\nmigrations:\n  - { table: a, from: x, to: y }\n  - table: b\n    from: x\n";
        let idx = Index::build(text);
        assert_eq!(
            idx.position("version"),
            Position {
                line: 1,
                column: 10
            }
        );
        assert_eq!(
            idx.position("migrations[0].from"),
            Position {
                line: 3,
                column: 23
            }
        );
        assert_eq!(
            idx.position("migrations[1].from"),
            Position {
                line: 5,
                column: 11
            }
        );
        assert_eq!(
            idx.position("migrations[1].nope"),
            Position { line: 4, column: 5 }
        );
    }

    #[test]
    fn a_broken_document_gives_an_empty_index() {
        assert_eq!(
            Index::build("a: [").position("a"),
            Position { line: 1, column: 4 }
        );
    }
}
