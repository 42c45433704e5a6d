//! Owns comparing one partition group: its partitions on each side scanned and merged, the
//! two runs compared, sampled values read, differences handed to the verify as suspects, and
//! how far it got published after every step, so a failed attempt (or a later run) goes on
//! from there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::compare::{Counts, Diff, Kind, Merge, Need};
use super::layout::Side;
use super::recheck::{Now, Sides};
use super::stream::{ClassStream, StreamError};
use super::{Error, Mode, Options, Progress, Result};
use crate::pegasus::scanner::ScanOptions;

/// Attempts a group gets: a read failing past the scanner's own retries is tried again from
/// the group's last published key, after a pause.
const ATTEMPTS: u32 = 3;

/// Sampled keys are compared once this many are waiting, or once the oldest has waited
/// `SAMPLE_WAIT`: until then the group's progress cannot move past them.
const SAMPLE_BATCH: usize = 256;
const SAMPLE_WAIT: Duration = Duration::from_secs(2);

/// How far one group got: every key up to `through` compared on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassState {
    /// The last key compared (`None`: none yet).
    pub through: Option<Vec<u8>>,
    pub counts: Counts,
    pub values_compared: u64,
    pub done: bool,
}

/// What every group of one verify adds to.
pub(super) struct Shared {
    pub(super) suspects: Mutex<Vec<Diff>>,
    pub(super) not_rechecked: AtomicU64,
    pub(super) values_compared: AtomicU64,
    /// Set once a group failed: the others stop at their next batch.
    pub(super) stop: AtomicBool,
    /// Each group's published progress, by class.
    pub(super) classes: Mutex<Vec<ClassState>>,
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

    fn state(&self, class: usize) -> ClassState {
        self.classes.lock().expect("classes lock")[class].clone()
    }

    fn publish(&self, class: usize, state: ClassState) {
        self.classes.lock().expect("classes lock")[class] = state;
    }
}

/// One class: both sides merged against each other.
pub(super) struct ClassJob {
    pub(super) class: usize,
    /// Both copies, and the read limits every group and the re-reads share.
    pub(super) sides: Sides,
    pub(super) src_parts: Vec<i32>,
    pub(super) dst_parts: Vec<i32>,
    /// Both tables' partition counts when the run began.
    pub(super) counts: (i32, i32),
    pub(super) opts: Options,
    pub(super) shared: Arc<Shared>,
}

/// One attempt's streams and what it adds to the state it started from.
struct Attempt {
    start: ClassState,
    source: ClassStream,
    target: ClassStream,
    merge: Merge,
    values_compared: u64,
    max_in_hand: usize,
}

impl Attempt {
    /// The group's state now: the start plus what this attempt compared.
    fn state(&self, done: bool) -> ClassState {
        let mut counts = self.start.counts;
        counts.add(&self.merge.counts);
        counts.foreign += self.source.foreign() + self.target.foreign();
        ClassState {
            through: self
                .merge
                .through()
                .map(<[u8]>::to_vec)
                .or_else(|| self.start.through.clone()),
            counts,
            values_compared: self.start.values_compared + self.values_compared,
            done,
        }
    }
}

impl ClassJob {
    /// Compares the group from where it got, retrying a failed read from there; the most
    /// records it held at once. Its counts are in the shared state.
    pub(super) async fn run(self) -> Result<usize> {
        let mut attempt = 1;
        loop {
            if self.shared.state(self.class).done {
                return Ok(0);
            }
            match self.attempt().await {
                Err(Error::Source(_) | Error::Target(_)) if attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    attempt += 1;
                }
                Ok(held) => {
                    self.shared
                        .progress
                        .classes_done
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(held);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt from the published state.
    async fn attempt(&self) -> Result<usize> {
        let scan = ScanOptions {
            batch_size: self.opts.batch_size(),
            no_value: self.opts.mode == Mode::Sample,
            return_expire_ts: self.opts.compare_expiry,
            ..ScanOptions::default()
        };
        let start = self.shared.state(self.class);
        let after = start.through.as_deref();
        let (s, t) = self.counts;
        let mut a = Attempt {
            source: ClassStream::new(
                (&self.sides.src, &self.sides.pacers.source),
                &self.src_parts,
                s,
                scan,
                after,
            ),
            target: ClassStream::new(
                (&self.sides.dst, &self.sides.pacers.target),
                &self.dst_parts,
                t,
                scan,
                after,
            ),
            start,
            merge: Merge::default(),
            values_compared: 0,
            max_in_hand: 0,
        };
        let compared = self.compare(&mut a).await;
        if compared.is_ok() {
            self.shared.publish(self.class, a.state(true));
        }
        // Dropped streams stop their readers, which release the servers' scanners.
        let held = a.max_in_hand;
        drop(a);
        compared.map(|()| held)
    }

    /// Merges both sides to the end, publishing the group's state as it goes.
    async fn compare(&self, a: &mut Attempt) -> Result<()> {
        let max = usize::try_from(self.opts.batch_size())
            .unwrap_or(1000)
            .max(1);
        let mut diffs = Vec::new();
        let mut sampled = Vec::new();
        let mut waiting_since = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Err(Error::Stopped);
            }
            let held = a.merge.in_hand() + a.source.held() + a.target.held();
            a.max_in_hand = a.max_in_hand.max(held);
            let before = a.merge.counts;
            let need = a.merge.run(&mut diffs);
            self.shared
                .progress
                .records
                .fetch_add(a.merge.counts.scanned - before.scanned, Ordering::Relaxed);
            if sampled.len() >= SAMPLE_BATCH
                || (!sampled.is_empty() && waiting_since.elapsed() >= SAMPLE_WAIT)
            {
                a.values_compared += self.compare_values(&mut sampled, &mut diffs).await?;
            }
            if !diffs.is_empty() {
                self.shared
                    .suspect(std::mem::take(&mut diffs), self.opts.max_suspects);
            }
            // Keys up to the merge's last are compared, sampled values included: published.
            if sampled.is_empty() {
                self.shared.publish(self.class, a.state(false));
                waiting_since = Instant::now();
            }
            match need {
                Need::Source => {
                    let batch = a
                        .source
                        .next(max)
                        .await
                        .map_err(|e| side(Side::Source, e))?;
                    if self.opts.mode == Mode::Sample {
                        let sample = self.opts.sample();
                        sampled.extend(
                            batch
                                .iter()
                                .filter(|r| sample.contains(&r.key))
                                .map(|r| r.key.clone()),
                        );
                    }
                    if batch.is_empty() {
                        a.merge.end_source();
                    } else {
                        a.merge.push_source(batch);
                    }
                }
                Need::Target => {
                    let batch = a
                        .target
                        .next(max)
                        .await
                        .map_err(|e| side(Side::Target, e))?;
                    if batch.is_empty() {
                        a.merge.end_target();
                    } else {
                        a.merge.push_target(batch);
                    }
                }
                Need::Nothing => break,
            }
        }
        a.values_compared += self.compare_values(&mut sampled, &mut diffs).await?;
        self.shared.suspect(diffs, self.opts.max_suspects);
        Ok(())
    }

    /// Sample mode: reads the values of sampled keys on both sides (keys the merge already
    /// found missing or extra come back as such and are settled later anyway); how many.
    async fn compare_values(
        &self,
        sampled: &mut Vec<Vec<u8>>,
        diffs: &mut Vec<Diff>,
    ) -> Result<u64> {
        if sampled.is_empty() {
            return Ok(0);
        }
        let keys = std::mem::take(sampled);
        let n = keys.len() as u64;
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
        self.shared.values_compared.fetch_add(n, Ordering::Relaxed);
        Ok(n)
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
