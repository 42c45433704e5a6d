//! Owns comparing two sorted runs of records — the source's and the target's of one group of
//! partitions — without holding more than the batches in hand: a pure merge that says what it
//! needs next and which keys differ.

use std::collections::VecDeque;

/// A record as compared: its full key, value and absolute expiry (0 = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub expire_ts: u32,
}

/// How a key differs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// On the source only.
    Missing,
    /// On the target only.
    Extra,
    /// On both, with another value or expiry.
    Different,
}

/// One differing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub key: Vec<u8>,
    pub kind: Kind,
}

/// What the merge needs before it can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Source,
    Target,
    /// Both sides are exhausted and compared.
    Nothing,
}

/// Counts of one comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Source records compared.
    pub scanned: u64,
    /// Target records seen.
    pub target_scanned: u64,
    pub matched: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// Records of either side left out: their hash names another partition than the one
    /// that returned them (left behind by a split); their own partition's copy is compared.
    pub foreign: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.foreign += other.foreign;
        self.scanned += other.scanned;
        self.target_scanned += other.target_scanned;
        self.matched += other.matched;
        self.missing += other.missing;
        self.extra += other.extra;
        self.different += other.different;
    }

    /// Keys found different in any way.
    #[must_use]
    pub fn differences(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

/// A merge of two ascending runs fed batch by batch.
#[derive(Debug, Default)]
pub struct Merge {
    source: VecDeque<Rec>,
    target: VecDeque<Rec>,
    source_done: bool,
    target_done: bool,
    /// The last key compared: every key up to it is compared on both sides.
    through: Option<Vec<u8>>,
    pub counts: Counts,
}

impl Merge {
    /// The last key compared: the merge goes in key order over both sides, so every key up
    /// to it, on either side, is compared.
    #[must_use]
    pub fn through(&self) -> Option<&[u8]> {
        self.through.as_deref()
    }

    /// Records given and not yet compared.
    #[must_use]
    pub fn in_hand(&self) -> usize {
        self.source.len() + self.target.len()
    }

    /// Adds the source's next records (ascending, after those given before).
    pub fn push_source(&mut self, batch: impl IntoIterator<Item = Rec>) {
        self.source.extend(batch);
    }

    /// Adds the target's next records.
    pub fn push_target(&mut self, batch: impl IntoIterator<Item = Rec>) {
        self.target.extend(batch);
    }

    /// The source has no more records.
    pub fn end_source(&mut self) {
        self.source_done = true;
    }

    /// The target has no more records.
    pub fn end_target(&mut self) {
        self.target_done = true;
    }

    /// Compares as far as the records in hand allow, appending differing keys to `diffs`;
    /// returns what is needed to go on.
    pub fn run(&mut self, diffs: &mut Vec<Diff>) -> Need {
        loop {
            match (self.source.front(), self.target.front()) {
                (Some(s), Some(t)) => {
                    let order = s.key.cmp(&t.key);
                    match order {
                        std::cmp::Ordering::Less => self.only_source(diffs),
                        std::cmp::Ordering::Greater => self.only_target(diffs),
                        std::cmp::Ordering::Equal => self.both(diffs),
                    }
                }
                (Some(_), None) if self.target_done => self.only_source(diffs),
                (None, Some(_)) if self.source_done => self.only_target(diffs),
                (Some(_), None) => return Need::Target,
                (None, Some(_)) => return Need::Source,
                (None, None) => {
                    return match (self.source_done, self.target_done) {
                        (true, true) => Need::Nothing,
                        (false, _) => Need::Source,
                        (true, false) => Need::Target,
                    }
                }
            }
        }
    }

    fn only_source(&mut self, diffs: &mut Vec<Diff>) {
        let s = self.source.pop_front().expect("a source record");
        self.counts.scanned += 1;
        self.counts.missing += 1;
        diffs.push(Diff {
            key: s.key.clone(),
            kind: Kind::Missing,
        });
        self.through = Some(s.key);
    }

    fn only_target(&mut self, diffs: &mut Vec<Diff>) {
        let t = self.target.pop_front().expect("a target record");
        self.counts.target_scanned += 1;
        self.counts.extra += 1;
        diffs.push(Diff {
            key: t.key.clone(),
            kind: Kind::Extra,
        });
        self.through = Some(t.key);
    }

    fn both(&mut self, diffs: &mut Vec<Diff>) {
        let s = self.source.pop_front().expect("a source record");
        let t = self.target.pop_front().expect("a target record");
        self.counts.scanned += 1;
        self.counts.target_scanned += 1;
        if s.value == t.value && s.expire_ts == t.expire_ts {
            self.counts.matched += 1;
        } else {
            self.counts.different += 1;
            diffs.push(Diff {
                key: s.key.clone(),
                kind: Kind::Different,
            });
        }
        self.through = Some(s.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, value: &str, expire_ts: u32) -> Rec {
        Rec {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            expire_ts,
        }
    }

    /// Feeds `source` and `target` in batches of `batch` as the merge asks for them.
    fn merge(source: &[Rec], target: &[Rec], batch: usize) -> (Counts, Vec<(String, Kind)>) {
        let (counts, diffs, _) = merge_through(source, target, batch);
        (counts, diffs)
    }

    /// Like `merge`, with the last key compared.
    fn merge_through(
        source: &[Rec],
        target: &[Rec],
        batch: usize,
    ) -> (Counts, Vec<(String, Kind)>, Option<Vec<u8>>) {
        let mut m = Merge::default();
        let (mut s, mut t) = (source.chunks(batch), target.chunks(batch));
        let mut diffs = Vec::new();
        loop {
            match m.run(&mut diffs) {
                Need::Source => match s.next() {
                    Some(b) => m.push_source(b.to_vec()),
                    None => m.end_source(),
                },
                Need::Target => match t.next() {
                    Some(b) => m.push_target(b.to_vec()),
                    None => m.end_target(),
                },
                Need::Nothing => break,
            }
        }
        let named = diffs
            .into_iter()
            .map(|d| (String::from_utf8(d.key).unwrap(), d.kind))
            .collect();
        (m.counts, named, m.through().map(<[u8]>::to_vec))
    }

    #[test]
    fn every_kind_of_difference_is_found_once_whatever_the_batches() {
        let source = vec![
            rec("a", "1", 0),
            rec("b", "2", 0),
            rec("c", "3", 100),
            rec("d", "4", 0),
            rec("f", "6", 0),
        ];
        let target = vec![
            rec("a", "1", 0),
            rec("b", "two", 0),
            rec("c", "3", 200),
            rec("e", "5", 0),
            rec("f", "6", 0),
            rec("g", "7", 0),
        ];
        for batch in [1, 2, 3, 10] {
            let (counts, diffs, last) = merge_through(&source, &target, batch);
            assert_eq!(
                diffs,
                vec![
                    ("b".into(), Kind::Different),
                    ("c".into(), Kind::Different),
                    ("d".into(), Kind::Missing),
                    ("e".into(), Kind::Extra),
                    ("g".into(), Kind::Extra),
                ],
                "batch {batch}"
            );
            let want = Counts {
                scanned: 5,
                target_scanned: 6,
                matched: 2,
                missing: 1,
                extra: 2,
                different: 2,
                foreign: 0,
            };
            assert_eq!(counts, want, "batch {batch}");
            assert_eq!(last, Some(b"g".to_vec()), "batch {batch}");
        }
    }

    #[test]
    fn empty_sides() {
        let some = vec![rec("a", "1", 0), rec("b", "2", 0)];
        let cases: Vec<(&[Rec], &[Rec], u64, u64)> = vec![
            (&[], &[], 0, 0),
            (&some, &[], 2, 0),
            (&[], &some, 0, 2),
            (&some, &some, 0, 0),
        ];
        for (source, target, missing, extra) in cases {
            let (counts, _) = merge(source, target, 1);
            assert_eq!((counts.missing, counts.extra), (missing, extra));
        }
    }
}
