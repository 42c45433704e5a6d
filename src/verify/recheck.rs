//! Owns settling differences: a key found different while duplication is still shipping is
//! read again on both sides, exactly as a scan sees it, in rounds with growing pauses, until it
//! matches or the rounds or the time run out. A key the source is still writing is told apart
//! (the source read twice disagrees), as is a target copy about to expire that the source's
//! `default_ttl` expired already: reported as not compared, never as a difference.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::compare::{Diff, Kind};
use super::pace::Pacers;
use super::{Error, Result};
use crate::pegasus::messages::data::KeyValue;
use crate::pegasus::scanner::read_one;
use crate::pegasus::table::TableClient;

/// Keys re-read at once: each costs up to three point reads, so this bounds the reads in
/// flight per cluster. Round trips, not servers, limit a re-read round (the exact check at the
/// switch runs one inside the write block: `scripts/bench-verify.sh` measures keys/s).
const READS_AT_ONCE: usize = 256;

/// How long and how often differences are re-read.
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    pub rounds: u32,
    /// The pause before the first round; it doubles each round.
    pub first_pause: Duration,
    /// No round starts after this much time.
    pub within: Duration,
}

impl Default for Settle {
    fn default() -> Self {
        Self {
            rounds: 5,
            first_pause: Duration::from_millis(500),
            within: Duration::from_secs(60),
        }
    }
}

/// How a key compares when read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    /// The target holds what the source holds (or held a moment ago), or neither holds it.
    Same,
    /// The source held still and the target differs from it.
    Differs(Kind),
    /// The key is moving and no comparison of it means anything yet (how it differs now):
    /// the source changed while it was read (duplication ships whole values, so the target
    /// follows the next write that reaches it), or, where expiries are not compared, the
    /// target's copy expires within `EXPIRING_SOON` of a source copy that already has.
    Changing(Kind),
}

/// Where expiries are not compared (`default_ttl`), a target copy of a key the source no
/// longer holds that expires within this many seconds is taken for the source's own copy,
/// stamped later by the lag when the target applied it.
const EXPIRING_SOON: u32 = 600;

/// The two copies of a table, how they are compared, and the limits their reads keep to.
#[derive(Debug, Clone)]
pub struct Sides {
    pub src: TableClient,
    pub dst: TableClient,
    /// Whether expiries count (`Options::compare_expiry`).
    pub expiry: bool,
    pub pacers: Arc<Pacers>,
}

impl Sides {
    /// How `s` and `t` (a source and a target read of one key) differ, if they do.
    fn differs(&self, s: Option<&KeyValue>, t: Option<&KeyValue>) -> Option<Kind> {
        match (s, t) {
            (None, None) => None,
            (Some(_), None) => Some(Kind::Missing),
            (None, Some(_)) => Some(Kind::Extra),
            (Some(s), Some(t)) => (s.value != t.value
                || (self.expiry && s.expire_ts_seconds != t.expire_ts_seconds))
                .then_some(Kind::Different),
        }
    }

    /// Reads a key on both sides, exactly as a scan sees it, and once more on the source
    /// when they differ: the target may hold what the source held a moment ago. `before`:
    /// the source's fingerprint when last read. Returns how it compares and the source's
    /// fingerprint now.
    ///
    /// # Errors
    /// A read failed.
    pub async fn compare_now(&self, key: &[u8], before: Option<u64>) -> Result<(Now, u64)> {
        let source = || async { read_one(&self.src, key).await.map_err(Error::Source) };
        let target = async { read_one(&self.dst, key).await.map_err(Error::Target) };
        let (s, t) = tokio::join!(source(), target);
        let (s, t) = (s?, t?);
        if self.differs(s.as_ref(), t.as_ref()).is_none() {
            return Ok((Now::Same, fingerprint(s.as_ref())));
        }
        let again = source().await?;
        let now = fingerprint(again.as_ref());
        let Some(kind) = self.differs(again.as_ref(), t.as_ref()) else {
            return Ok((Now::Same, now));
        };
        let changed = now != fingerprint(s.as_ref()) || before.is_some_and(|b| b != now);
        let expiring = !self.expiry && kind == Kind::Extra && t.as_ref().is_some_and(expires_soon);
        Ok((
            if changed || expiring {
                Now::Changing(kind)
            } else {
                Now::Differs(kind)
            },
            now,
        ))
    }

    /// Compares `keys` (with the source's fingerprint when last read) now, in parallel, under
    /// the read limits; the answers in the keys' order.
    ///
    /// # Errors
    /// A read failed.
    pub async fn compare_all(&self, keys: &[(Vec<u8>, Option<u64>)]) -> Result<Vec<(Now, u64)>> {
        // Two source reads and one target read per key, at most.
        self.pacers.source.pace(2 * keys.len(), 0).await;
        self.pacers.target.pace(keys.len(), 0).await;
        let mut set = tokio::task::JoinSet::new();
        for (i, (key, before)) in keys.iter().enumerate() {
            let (sides, key, before) = (self.clone(), key.clone(), *before);
            set.spawn(async move { (i, sides.compare_now(&key, before).await) });
        }
        let mut out = vec![(Now::Same, 0); keys.len()];
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined.map_err(|e| Error::Task(e.to_string()))?;
            out[i] = result?;
        }
        Ok(out)
    }
}

/// Whether a record expires within `EXPIRING_SOON` from now.
fn expires_soon(kv: &KeyValue) -> bool {
    let now = crate::pegasus::key::epoch_now();
    kv.expire_ts_seconds
        .and_then(|e| u32::try_from(e).ok())
        .is_some_and(|e| e > 0 && e <= now.saturating_add(EXPIRING_SOON))
}

/// A short fingerprint of a source read (0: absent), to tell whether the source changed.
fn fingerprint(kv: Option<&KeyValue>) -> u64 {
    kv.map_or(0, |kv| {
        (crate::pegasus::key::crc64(&kv.value.0)
            ^ u64::from(kv.expire_ts_seconds.unwrap_or(0).unsigned_abs()).rotate_left(32))
            | 1
    })
}

/// What re-reading left.
#[derive(Debug, Default)]
pub struct Settled {
    /// Keys that still differ, with how they differ now.
    pub differing: Vec<Diff>,
    /// Keys that were moving in the last round (not compared), with how they differed then.
    pub changing: Vec<Diff>,
    pub rounds: u32,
}

/// Re-reads `suspects` in rounds until they match or the rounds or the time run out (no
/// round starts after `within`). A key whose source changed since the round before, or
/// within a round, is `changing`.
///
/// # Errors
/// A read failed.
pub async fn settle(sides: &Sides, suspects: Vec<Diff>, settle: Settle) -> Result<Settled> {
    let until = Instant::now() + settle.within;
    let mut pause = settle.first_pause;
    let mut keys: Vec<(Vec<u8>, Option<u64>)> =
        suspects.iter().map(|d| (d.key.clone(), None)).collect();
    let mut left = Settled {
        differing: suspects,
        ..Settled::default()
    };
    while !keys.is_empty() && left.rounds < settle.rounds && Instant::now() + pause < until {
        tokio::time::sleep(pause).await;
        pause *= 2;
        let mut round = Settled {
            rounds: left.rounds + 1,
            ..Settled::default()
        };
        let mut next = Vec::new();
        for chunk in keys.chunks(READS_AT_ONCE) {
            let answers = sides.compare_all(chunk).await?;
            for ((key, _), (now, fp)) in chunk.iter().zip(answers) {
                let (list, kind) = match now {
                    Now::Same => continue,
                    Now::Differs(kind) => (&mut round.differing, kind),
                    Now::Changing(kind) => (&mut round.changing, kind),
                };
                list.push(Diff {
                    key: key.clone(),
                    kind,
                });
                next.push((key.clone(), Some(fp)));
            }
        }
        keys = next;
        left = round;
    }
    Ok(left)
}
