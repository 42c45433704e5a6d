//! Owns reading one side of a partition class: the partitions of a table whose keys all fall in
//! that class (hash mod the gcd of both partition counts), scanned together and merged into
//! one ascending run, a batch at a time, holding at most one batch per partition.

use std::collections::VecDeque;

use super::compare::Rec;
use crate::pegasus::error::Result;
use crate::pegasus::messages::data::KeyValue;
use crate::pegasus::scanner::{PartitionScanner, ScanOptions};
use crate::pegasus::table::TableClient;

/// The partitions of a table with `count` partitions that make up class `class` of `classes`.
#[must_use]
pub fn class_partitions(count: i32, classes: i32, class: i32) -> Vec<i32> {
    (0..count).filter(|p| p % classes == class).collect()
}

/// The number of classes two tables with these partition counts share: a key's class is its
/// hash modulo this, the same on both sides.
#[must_use]
pub fn classes(a: i32, b: i32) -> i32 {
    let (mut x, mut y) = (a.max(1), b.max(1));
    while y != 0 {
        (x, y) = (y, x % y);
    }
    x
}

struct Part {
    scanner: PartitionScanner,
    buf: VecDeque<Rec>,
    done: bool,
}

/// One side of a class, merged.
pub struct ClassStream {
    parts: Vec<Part>,
}

impl ClassStream {
    /// Scanners of `partitions` of `client`'s table.
    #[must_use]
    pub fn new(client: &TableClient, partitions: &[i32], opts: ScanOptions) -> Self {
        let parts = partitions
            .iter()
            .map(|&p| Part {
                scanner: PartitionScanner::new(client.clone(), p, opts),
                buf: VecDeque::new(),
                done: false,
            })
            .collect();
        Self { parts }
    }

    /// Up to `max` next records in key order; empty once every partition is read.
    ///
    /// # Errors
    /// A scan failed past its retries.
    pub async fn next(&mut self, max: usize) -> Result<Vec<Rec>> {
        if let [only] = self.parts.as_mut_slice() {
            return next_of_one(only).await;
        }
        let mut out = Vec::new();
        while out.len() < max {
            for part in &mut self.parts {
                fill(part).await?;
            }
            let min = self
                .parts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.buf.front().map(|r| (i, &r.key)))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = min else { break };
            out.extend(self.parts[i].buf.pop_front());
        }
        Ok(out)
    }

    /// Records read and not yet handed out.
    #[must_use]
    pub fn held(&self) -> usize {
        self.parts.iter().map(|p| p.buf.len()).sum()
    }

    /// Releases the servers' scanners still open.
    pub async fn close(self) {
        for p in self.parts {
            p.scanner.close().await;
        }
    }
}

/// One partition: its batches as they come.
async fn next_of_one(part: &mut Part) -> Result<Vec<Rec>> {
    fill(part).await?;
    Ok(part.buf.drain(..).collect())
}

/// Reads batches until `part` has a record in hand or is done (batches may be empty).
async fn fill(part: &mut Part) -> Result<()> {
    while part.buf.is_empty() && !part.done {
        match part.scanner.next_batch().await? {
            Some(batch) => part.buf.extend(batch.into_iter().map(rec)),
            None => part.done = true,
        }
    }
    Ok(())
}

fn rec(kv: KeyValue) -> Rec {
    Rec {
        key: kv.key.0,
        value: kv.value.0,
        expire_ts: kv
            .expire_ts_seconds
            .and_then(|e| u32::try_from(e).ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_pair_partitions_whose_keys_coincide() {
        assert_eq!(classes(8, 8), 8);
        assert_eq!(classes(4, 16), 4);
        assert_eq!(classes(16, 4), 4);
        assert_eq!(classes(6, 4), 2);
        assert_eq!(class_partitions(16, 4, 1), vec![1, 5, 9, 13]);
        assert_eq!(class_partitions(4, 4, 3), vec![3]);
        // A key's partition on either side decides the same class.
        for hash in [0u64, 7, 12_345, u64::MAX] {
            let (a, b) = (hash % 16, hash % 4);
            assert_eq!(a % 4, b);
        }
    }
}
