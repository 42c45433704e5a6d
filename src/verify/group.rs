//! Owns comparing one partition group: its partitions on each side scanned and merged, the
//! two runs compared, sampled values read, differences handed to the verify as suspects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::compare::{Counts, Diff, Kind, Merge, Need};
use super::layout::Side;
use super::recheck::{Now, Sides};
use super::stream::{ClassStream, StreamError};
use super::{Error, Mode, Options, Progress, Result};
use crate::pegasus::scanner::ScanOptions;

/// What every group of one verify adds to.
pub(super) struct Shared {
    pub(super) suspects: Mutex<Vec<Diff>>,
    pub(super) not_rechecked: AtomicU64,
    pub(super) values_compared: AtomicU64,
    /// Set once a group failed: the others stop at their next batch.
    pub(super) stop: std::sync::atomic::AtomicBool,
    pub(super) progress: Arc<Progress>,
}

impl Shared {
    fn suspect(&self, diffs: Vec<Diff>, cap: usize) {
        let mut s = self.suspects.lock().expect("suspects lock");
        for d in diffs {
            if s.len() < cap {
                s.push(d);
            } else {
                self.not_rechecked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One class: both sides merged against each other.
pub(super) struct ClassJob {
    /// Both copies, and the read limits every group and the re-reads share.
    pub(super) sides: Sides,
    pub(super) src_parts: Vec<i32>,
    pub(super) dst_parts: Vec<i32>,
    /// Both tables' partition counts when the run began.
    pub(super) counts: (i32, i32),
    pub(super) opts: Options,
    pub(super) shared: Arc<Shared>,
}

impl ClassJob {
    /// Compares the group; its counts and the most records it held at once.
    pub(super) async fn run(self) -> Result<(Counts, usize)> {
        let scan = ScanOptions {
            batch_size: self.opts.batch_size(),
            no_value: self.opts.mode == Mode::Sample,
            return_expire_ts: self.opts.compare_expiry,
            ..ScanOptions::default()
        };
        let (s, t) = self.counts;
        let mut source = ClassStream::new(&self.sides.src, &self.src_parts, s, scan);
        let mut target = ClassStream::new(&self.sides.dst, &self.dst_parts, t, scan);
        // The servers' scanners are released however the comparison ends (a dropped stream
        // releases its own too, when a failed class aborts the others).
        let compared = self.compare(&mut source, &mut target).await;
        let foreign = source.foreign() + target.foreign();
        source.close().await;
        target.close().await;
        let (mut counts, max_in_hand) = compared?;
        counts.foreign = foreign;
        self.shared
            .progress
            .classes_done
            .fetch_add(1, Ordering::Relaxed);
        Ok((counts, max_in_hand))
    }

    /// Merges both sides to the end; the counts and the most records held at once.
    async fn compare(
        &self,
        source: &mut ClassStream,
        target: &mut ClassStream,
    ) -> Result<(Counts, usize)> {
        let max = usize::try_from(self.opts.batch_size())
            .unwrap_or(1000)
            .max(1);
        let mut merge = Merge::default();
        let mut diffs = Vec::new();
        let mut sampled = Vec::new();
        // Records in hand at once: the merge's and the partitions' buffers.
        let mut max_in_hand = 0;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Err(Error::Stopped);
            }
            max_in_hand = max_in_hand.max(merge.in_hand() + source.held() + target.held());
            let before = merge.counts;
            let need = merge.run(&mut diffs);
            self.after_step(&merge, &before, &mut diffs, &mut sampled)
                .await?;
            match need {
                Need::Source => {
                    let batch = source.next(max).await.map_err(|e| side(Side::Source, e))?;
                    self.sides.pacers.source.pace(batch.len()).await;
                    if self.opts.mode == Mode::Sample {
                        sampled.extend(
                            batch
                                .iter()
                                .filter(|r| self.opts.sample().contains(&r.key))
                                .map(|r| r.key.clone()),
                        );
                    }
                    if batch.is_empty() {
                        merge.end_source();
                    } else {
                        merge.push_source(batch);
                    }
                }
                Need::Target => {
                    let batch = target.next(max).await.map_err(|e| side(Side::Target, e))?;
                    self.sides.pacers.target.pace(batch.len()).await;
                    if batch.is_empty() {
                        merge.end_target();
                    } else {
                        merge.push_target(batch);
                    }
                }
                Need::Nothing => break,
            }
        }
        self.compare_values(&mut sampled, &mut diffs).await?;
        self.shared.suspect(diffs, self.opts.max_suspects);
        Ok((merge.counts, max_in_hand))
    }

    /// Records progress, hands differences over, and compares sampled values in batches.
    async fn after_step(
        &self,
        merge: &Merge,
        before: &Counts,
        diffs: &mut Vec<Diff>,
        sampled: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let done = merge.counts.scanned - before.scanned;
        self.shared
            .progress
            .records
            .fetch_add(done, Ordering::Relaxed);
        if sampled.len() >= 256 {
            self.compare_values(sampled, diffs).await?;
        }
        if !diffs.is_empty() {
            self.shared
                .suspect(std::mem::take(diffs), self.opts.max_suspects);
        }
        Ok(())
    }

    /// Sample mode: reads the values of sampled keys on both sides (keys the merge already
    /// found missing or extra come back as such and are settled later anyway).
    async fn compare_values(
        &self,
        sampled: &mut Vec<Vec<u8>>,
        diffs: &mut Vec<Diff>,
    ) -> Result<()> {
        if sampled.is_empty() {
            return Ok(());
        }
        let keys = std::mem::take(sampled);
        self.shared
            .values_compared
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let keys: Vec<(Vec<u8>, Option<u64>)> = keys.into_iter().map(|k| (k, None)).collect();
        for chunk in keys.chunks(64) {
            let answers = self.sides.compare_all(chunk).await?;
            for ((key, _), (now, _)) in chunk.iter().zip(answers) {
                if matches!(now, Now::Differs(Kind::Different) | Now::Changing(_)) {
                    diffs.push(Diff {
                        key: key.clone(),
                        kind: Kind::Different,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A stream's failure as the verify's: a read error of that side, or keys out of order.
fn side(side: Side, e: StreamError) -> Error {
    match (side, e) {
        (Side::Source, StreamError::Read(e)) => Error::Source(e),
        (Side::Target, StreamError::Read(e)) => Error::Target(e),
        (side, e) => Error::Order { side, source: e },
    }
}
