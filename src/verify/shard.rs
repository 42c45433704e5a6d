//! Owns splitting one verify across processes: `--shard I/N` takes every N-th partition group
//! (those whose class modulo N is I), so N processes on N hosts compare one table between
//! them, and `--merge` (`merge`) adds their JSON reports up to one verdict.

use std::fmt;
use std::str::FromStr;

/// Which of N shares of the partition groups a run compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether partition group `class` is this shard's.
    #[must_use]
    pub fn takes(&self, class: i32) -> bool {
        u32::try_from(class).is_ok_and(|c| c % self.count == self.index)
    }

    /// Whether the run is one share of several.
    #[must_use]
    pub fn is_split(&self) -> bool {
        self.count > 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a shard: expected I/N with 0 <= I < N, as 0/3, 1/3, 2/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// A shard's part in its report: which share, and how many groups it compared of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShardReport {
    pub index: u32,
    pub count: u32,
    pub groups: u32,
    pub groups_total: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_share_the_groups_out_once() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!((s.index, s.count, s.to_string()), (1, 3, "1/3".to_string()));
        for bad in ["3/3", "1/0", "x/2", "1", "-1/2", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("is not a shard"), "{bad}: {e}");
        }
        let all: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for class in 0..16 {
            assert_eq!(all.iter().filter(|s| s.takes(class)).count(), 1, "{class}");
        }
        assert!(Shard::default().takes(7) && !Shard::default().is_split());
    }
}
