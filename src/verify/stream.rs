//! Owns reading one side of a partition class: the partitions of a table whose keys all fall in
//! that class (hash mod the gcd of both partition counts), scanned together and merged into
//! one ascending run (a heap picks the partition with the lowest key), a batch at a time, each
//! partition read ahead by a task of its own (`reader`). Each
//! partition's keys must ascend (else the merge would be wrong: an error), and a record whose
//! hash names another partition (left behind by a split) is counted and left out: its own
//! partition holds the copy that counts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::compare::Rec;
use super::pace::Pacer;
use super::reader::Reader;
use crate::pegasus::key;
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

/// Why a side of a class could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Read(#[from] crate::pegasus::Error),
    /// The scan of a partition did not ascend: nothing compared of it can be trusted.
    #[error("partition {partition} returned {key} after {previous}: a scan must ascend")]
    OutOfOrder {
        partition: i32,
        key: String,
        previous: String,
    },
}

struct Part {
    pidx: i32,
    reader: Reader,
    buf: VecDeque<Rec>,
    done: bool,
    /// The last key the scan returned.
    last: Option<Vec<u8>>,
    /// Records whose hash names another partition.
    foreign: u64,
}

/// One side of a class, merged.
pub struct ClassStream {
    parts: Vec<Part>,
    /// The table's partition count when the run began.
    count: i32,
}

impl ClassStream {
    /// Reads `partitions` of `client`'s table of `count` partitions under `pacer`, from just
    /// after `after` (a resumed group's last key compared) or from the start.
    #[must_use]
    pub fn new(
        (client, pacer): (&TableClient, &Arc<Pacer>),
        partitions: &[i32],
        count: i32,
        opts: ScanOptions,
        after: Option<&[u8]>,
    ) -> Self {
        let parts = partitions
            .iter()
            .map(|&p| {
                let scanner = PartitionScanner::new(client.clone(), p, opts);
                let scanner = match after {
                    Some(k) => scanner.resume_after(k.to_vec()),
                    None => scanner,
                };
                Part {
                    pidx: p,
                    reader: Reader::start(scanner, pacer.clone()),
                    buf: VecDeque::new(),
                    done: false,
                    last: after.map(<[u8]>::to_vec),
                    foreign: 0,
                }
            })
            .collect();
        Self { parts, count }
    }

    /// Records left out because their hash names another partition.
    #[must_use]
    pub fn foreign(&self) -> u64 {
        self.parts.iter().map(|p| p.foreign).sum()
    }

    /// Up to `max` next records in key order; empty once every partition is read.
    ///
    /// # Errors
    /// A scan failed past its retries, or returned keys out of order.
    pub async fn next(&mut self, max: usize) -> Result<Vec<Rec>, StreamError> {
        let count = self.count;
        if let [only] = self.parts.as_mut_slice() {
            return next_of_one(only, count).await;
        }
        for part in &mut self.parts {
            fill(part, count).await?;
        }
        // Each partition's lowest key in hand; the lowest of all goes next.
        let mut heap: BinaryHeap<Reverse<(Vec<u8>, usize)>> = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.buf.front().map(|r| Reverse((r.key.clone(), i))))
            .collect();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let part = &mut self.parts[i];
            out.extend(part.buf.pop_front());
            fill(part, count).await?;
            if let Some(r) = part.buf.front() {
                heap.push(Reverse((r.key.clone(), i)));
            }
        }
        Ok(out)
    }

    /// Records read and not yet handed out, read ahead ones included.
    #[must_use]
    pub fn held(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.buf.len() + p.reader.ahead())
            .sum()
    }
}

/// One partition: its batches as they come.
async fn next_of_one(part: &mut Part, count: i32) -> Result<Vec<Rec>, StreamError> {
    fill(part, count).await?;
    Ok(part.buf.drain(..).collect())
}

/// Reads batches until `part` has a record in hand or is done (batches may be empty, or hold
/// only records of other partitions).
async fn fill(part: &mut Part, count: i32) -> Result<(), StreamError> {
    while part.buf.is_empty() && !part.done {
        match part.reader.next().await? {
            Some(batch) => take(part, batch, count)?,
            None => part.done = true,
        }
    }
    Ok(())
}

/// Adds `batch` to `part`'s records: checks the keys ascend, and leaves out (counting them)
/// records whose hash names another partition of `count`.
fn take(part: &mut Part, batch: Vec<KeyValue>, count: i32) -> Result<(), StreamError> {
    for kv in batch {
        if let Some(previous) = part.last.as_ref().filter(|l| kv.key.0 <= **l) {
            return Err(StreamError::OutOfOrder {
                partition: part.pidx,
                key: super::report::key_text(&kv.key.0),
                previous: super::report::key_text(previous),
            });
        }
        part.last = Some(kv.key.0.clone());
        if key::partition_index(key::key_hash(&kv.key.0), count) == part.pidx {
            part.buf.push_back(rec(kv));
        } else {
            part.foreign += 1;
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
    use crate::pegasus::base::Blob;

    fn kv(hash_key: &str) -> KeyValue {
        KeyValue {
            key: Blob(key::composite_key(hash_key.as_bytes(), b"s").unwrap()),
            value: Blob::default(),
            expire_ts_seconds: None,
        }
    }

    /// Partition `pidx`, with nothing to read (only `take` is tried here).
    fn part(pidx: i32) -> Part {
        Part {
            pidx,
            reader: Reader::finished(),
            buf: VecDeque::new(),
            done: false,
            last: None,
            foreign: 0,
        }
    }

    #[test]
    fn records_of_other_partitions_are_left_out_and_keys_must_ascend() {
        let mut keys: Vec<KeyValue> = (0..40).map(|i| kv(&format!("k{i:02}"))).collect();
        keys.sort_by(|a, b| a.key.0.cmp(&b.key.0));
        let mut p = part(1);
        take(&mut p, keys.clone(), 4).unwrap();
        let mine = keys
            .iter()
            .filter(|kv| key::partition_index(key::key_hash(&kv.key.0), 4) == 1)
            .count();
        assert!(mine > 0 && mine < 40, "{mine}");
        assert_eq!(p.buf.len(), mine);
        assert_eq!(p.foreign, 40 - mine as u64);

        // A key again, or one before the last, even in a later batch: an error.
        let again = take(&mut p, vec![keys[39].clone()], 4).unwrap_err();
        assert!(
            matches!(again, StreamError::OutOfOrder { partition: 1, .. }),
            "{again}"
        );
        let mut p = part(2);
        let backwards = vec![keys[5].clone(), keys[3].clone()];
        let e = take(&mut p, backwards, 4).unwrap_err().to_string();
        assert_eq!(
            e,
            "partition 2 returned k03 / s after k05 / s: a scan must ascend"
        );
    }

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
