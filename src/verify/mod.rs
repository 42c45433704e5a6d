//! Owns `verify`: comparing a table on its source and target record by record — every key,
//! value and expiry — without holding the table in memory, then re-reading what differed until
//! it settles (duplication may still be shipping).
//!
//! Keys route by hash modulo the partition count, so with counts `S` and `T` a key's hash
//! modulo `gcd(S, T)` is the same on both sides: each such class is compared on its own, its
//! partitions on each side scanned together and merged into one ascending run
//! (`stream`), the two runs merged against each other (`compare`). Classes run in parallel
//! under a records-per-second limit. `sample` mode scans keys and expiries only (every key's
//! presence and expiry is still checked) and compares the values of a sample of hash keys
//! (`sample`: salted per run).

pub mod checkpoint;
pub mod compare;
pub mod diffs;
mod group;
pub mod layout;
pub mod merge;
pub mod pace;
mod reader;
pub mod recheck;
pub mod report;
mod run;
pub mod sample;
pub mod shard;
pub mod stream;

pub use run::{verify, verify_resumable, Checkpointing};

use std::sync::atomic::{AtomicU64, Ordering};

use compare::{Counts, Diff, Kind};

use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::table::TableClient;

/// Why a verify could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the source: {0}")]
    Source(crate::pegasus::Error),
    #[error("reading the target: {0}")]
    Target(crate::pegasus::Error),
    #[error("a comparison task failed: {0}")]
    Task(String),
    #[error("reading the {side}: {source}")]
    Order {
        side: layout::Side,
        source: stream::StreamError,
    },
    #[error(transparent)]
    Keys(#[from] diffs::KeysError),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A split (or its env) moved keys between partitions during the run: the groups compared
    /// were not the table's any more.
    #[error("the layout changed during the run ({0}): re-run verify")]
    LayoutChanged(layout::Moved),
    /// A group stopped because another failed (never the error a verify returns).
    #[error("stopped: another partition group failed")]
    Stopped,
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// How much is compared.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every record's key, value and expiry.
    Full,
    /// Every key and expiry; values of a sample of hash keys.
    Sample,
}

impl Mode {
    /// The mode as the command line and plan files spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Sample => "sample",
        }
    }
}

/// How a verify runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub mode: Mode,
    /// The fraction of hash keys whose values `sample` compares.
    pub sample_rate: f64,
    /// Mixed into the choice of the sample: another salt, other keys.
    pub sample_salt: u64,
    /// Most records read per second from each side (none: as fast as it goes); batches are
    /// capped at it.
    pub rate: Option<u64>,
    /// Most bytes (keys and values) scanned per second from each side (none: no limit).
    pub byte_rate: Option<u64>,
    /// The share of the partition groups this run compares (all by default).
    pub shard: shard::Shard,
    /// Classes compared at once.
    pub parallelism: usize,
    /// Records per scan batch.
    pub batch: i32,
    /// Differences kept for re-reading (more are counted as found, not re-read). 100,000 keys
    /// hold about 10 MB; first-sight differences of a caught-up table are the writes in flight.
    pub max_suspects: usize,
    pub settle: recheck::Settle,
    /// Whether expiries count. Not where a table sets `default_ttl`: each cluster gives a
    /// put without expiry one when it applies it (`db_expire_ts`), so copies differ by the lag.
    pub compare_expiry: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Full,
            sample_rate: 0.01,
            sample_salt: sample::random_salt(),
            rate: None,
            byte_rate: None,
            shard: shard::Shard::default(),
            parallelism: 8,
            batch: 1000,
            max_suspects: 100_000,
            settle: recheck::Settle::default(),
            compare_expiry: true,
        }
    }
}

impl Options {
    /// The read limits of each cluster.
    #[must_use]
    pub fn limits(&self) -> pace::Limits {
        pace::Limits {
            records: self.rate,
            bytes: self.byte_rate,
        }
    }

    /// The sample `sample` mode compares the values of.
    #[must_use]
    pub fn sample(&self) -> sample::Sample {
        sample::Sample {
            rate: self.sample_rate,
            salt: self.sample_salt,
        }
    }

    /// Records per scan batch: at most a second's worth under the rate, so no burst outruns
    /// the limit by more than a batch per group.
    #[must_use]
    pub fn batch_size(&self) -> i32 {
        let cap = self
            .rate
            .map_or(i32::MAX, |r| i32::try_from(r).unwrap_or(i32::MAX));
        self.batch.min(cap).max(1)
    }
}

/// What a verify concludes about a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every key was compared, and every one matched.
    Equal,
    /// At least one key still differs after re-reading.
    Different,
    /// None of the keys compared differs, but some were not compared: still being written on
    /// the source, or found different and not re-read (over `max_suspects`).
    Incomplete,
}

impl Verdict {
    /// The verdict as the reports spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Equal => "equal",
            Self::Different => "different",
            Self::Incomplete => "incomplete",
        }
    }

    /// The verdict of `differing` keys left after re-reading and `not_compared` keys.
    #[must_use]
    pub fn of(differing: u64, not_compared: u64) -> Self {
        match (differing, not_compared) {
            (0, 0) => Self::Equal,
            (0, _) => Self::Incomplete,
            _ => Self::Different,
        }
    }
}

/// What a verify of one table found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// `equal` only when every key was compared and matched.
    pub verdict: Verdict,
    pub mode: Mode,
    /// False where a table sets `default_ttl` (see `Options::compare_expiry`).
    pub expiry_compared: bool,
    /// What the scans found at first sight (before re-reading).
    pub scanned: Counts,
    /// What is left after re-reading.
    pub after_settling: Totals,
    /// Keys that still differ after re-reading.
    pub differing: Vec<Diff>,
    /// Keys the source was still writing in the last round: not compared, not differences.
    pub changing: Vec<Diff>,
    /// Differences found but not re-read (over `max_suspects`): not compared, so never
    /// counted as equal nor as different.
    pub not_rechecked: u64,
    /// Sampled records whose values were compared (sample mode).
    pub values_compared: u64,
    /// Sample mode: the sample's rate and salt, and what it could catch.
    pub sample: Option<sample::SampleReport>,
    /// The source's and the target's partition counts (none: `--keys`, nothing scanned).
    pub partitions: Option<[i32; 2]>,
    /// Which share of the partition groups was compared (none: `--keys`).
    pub shard: Option<shard::ShardReport>,
    /// `--keys`: how many keys were given (only they were re-checked; nothing scanned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_given: Option<u64>,
    pub rounds: u32,
    pub elapsed_ms: u64,
    /// The most records any one partition group held at once (merge and partition buffers).
    pub max_in_hand: usize,
}

impl Outcome {
    /// Keys that differ after settling.
    #[must_use]
    pub fn differences(&self) -> u64 {
        self.differing.len() as u64
    }

    /// Keys not compared: still being written on the source, or found and not re-read.
    #[must_use]
    pub fn not_compared(&self) -> u64 {
        self.changing.len() as u64 + self.not_rechecked
    }

    /// Differences of `kind` after settling (not counting those not re-read).
    #[must_use]
    pub fn count(&self, kind: Kind) -> u64 {
        let a = &self.after_settling;
        match kind {
            Kind::Missing => a.missing,
            Kind::Extra => a.extra,
            Kind::Different => a.different,
        }
    }
}

/// Differences left after re-reading, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// Found and not re-read (over `max_suspects`): not compared.
    pub not_rechecked: u64,
    /// Still being written on the source: not compared.
    pub changing: u64,
}

impl Totals {
    pub(crate) fn of(s: &recheck::Settled, not_rechecked: u64) -> Self {
        let count = |k| s.differing.iter().filter(|d| d.kind == k).count() as u64;
        Self {
            missing: count(Kind::Missing),
            extra: count(Kind::Extra),
            different: count(Kind::Different),
            not_rechecked,
            changing: s.changing.len() as u64,
        }
    }
}

/// Progress shared with whoever shows it: source records compared so far, classes done, and
/// the source's estimated record count (0: unknown).
#[derive(Debug, Default)]
pub struct Progress {
    pub records: AtomicU64,
    pub classes_done: AtomicU64,
    pub classes: AtomicU64,
    pub estimate: AtomicU64,
}

impl Progress {
    /// Seconds left after `elapsed` seconds: from the records compared against the estimate
    /// while it is ahead of them, else from the groups done; `None` before either can tell.
    #[must_use]
    pub fn eta(&self, elapsed: f64) -> Option<f64> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let (records, estimate) = (load(&self.records), load(&self.estimate));
        let (done, all) = (load(&self.classes_done), load(&self.classes));
        if records > 0.0 && estimate > records {
            Some(elapsed * (estimate - records) / records)
        } else if done > 0.0 && all > done {
            Some(elapsed * (all - done) / done)
        } else {
            None
        }
    }

    /// Takes the estimated record count of `src`'s table from its replica servers (best
    /// effort: unknown stays 0).
    pub async fn estimate_of(&self, src: &TableClient, replica: &ReplicaClient) {
        let Ok(prim) = crate::probe::Primaries::read(src.meta(), src.table()).await else {
            return;
        };
        let estimate = crate::probe::keys::estimated_keys(replica, &prim).await;
        self.estimate
            .store(estimate.unwrap_or(0), Ordering::Relaxed);
    }

    /// How far a verify is after `elapsed` seconds, in words.
    #[must_use]
    pub fn describe(&self, elapsed: f64) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (records, estimate) = (load(&self.records), load(&self.estimate));
        let (done, all) = (load(&self.classes_done), load(&self.classes));
        if all > 0 && done == all {
            return format!("{records} records compared; re-reading the differences found");
        }
        let of = if estimate > 0 {
            format!(" of about {estimate}")
        } else {
            String::new()
        };
        let eta = self
            .eta(elapsed)
            .map(|s| format!(", about {s:.0}s left"))
            .unwrap_or_default();
        format!("{records}{of} records compared, {done}/{all} partition groups{eta}")
    }
}

/// Whether `client`'s table sets a `default_ttl` (its puts without expiry get one).
pub(crate) async fn sets_default_ttl(client: &TableClient) -> crate::pegasus::error::Result<bool> {
    let app = client.meta().available_app(client.table()).await?;
    Ok(app
        .as_ref()
        .and_then(|a| a.envs.get("default_ttl"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|ttl| ttl > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_follows_the_estimate_then_the_groups() {
        let p = Progress::default();
        assert_eq!(p.eta(10.0), None, "nothing to go by yet");
        p.records.store(250, Ordering::Relaxed);
        p.estimate.store(1000, Ordering::Relaxed);
        assert_eq!(p.eta(10.0), Some(30.0), "a quarter in 10 s");
        p.classes.store(4, Ordering::Relaxed);
        assert_eq!(
            p.describe(10.0),
            "250 of about 1000 records compared, 0/4 partition groups, about 30s left"
        );
        p.records.store(1200, Ordering::Relaxed);
        p.classes_done.store(3, Ordering::Relaxed);
        let groups = p.eta(30.0);
        assert_eq!(groups, Some(10.0), "past the estimate: the groups tell");
        p.classes_done.store(4, Ordering::Relaxed);
        assert_eq!(
            p.describe(40.0),
            "1200 records compared; re-reading the differences found"
        );
    }

    #[test]
    fn equal_only_when_every_key_was_compared_and_matched() {
        assert_eq!(Verdict::of(0, 0), Verdict::Equal);
        assert_eq!(Verdict::of(0, 1), Verdict::Incomplete);
        assert_eq!(Verdict::of(1, 0), Verdict::Different);
        assert_eq!(
            Verdict::of(3, 7),
            Verdict::Different,
            "a real difference wins"
        );
    }

    #[test]
    fn batches_hold_at_most_a_seconds_worth_under_the_rate() {
        let with = |rate| Options {
            rate,
            ..Options::default()
        };
        assert_eq!(with(None).batch_size(), 1000);
        assert_eq!(with(Some(200)).batch_size(), 200);
        assert_eq!(with(Some(50_000)).batch_size(), 1000);
        assert_eq!(with(Some(0)).batch_size(), 1);
    }
}
