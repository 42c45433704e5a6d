//! Owns settling differences: a key found different while duplication is still shipping is
//! read again on both sides, exactly as a scan sees it, in rounds with growing pauses, until it
//! matches or the rounds or the time run out. A key the source is still writing is told apart
//! (the source read twice disagrees): it is reported as not compared, never as a difference.

use std::time::Duration;

use tokio::time::Instant;

use super::compare::{Diff, Kind};
use super::{Error, Result};
use crate::pegasus::messages::data::KeyValue;
use crate::pegasus::scanner::read_one;
use crate::pegasus::table::TableClient;

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
    /// The source changed while it was read: it is being written, and no comparison of it
    /// means anything yet. Duplication ships whole values, so the target follows the next
    /// write that reaches it.
    Changing,
}

/// How `s` and `t` (a source and a target read of one key) differ, if they do.
fn differs(s: Option<&KeyValue>, t: Option<&KeyValue>) -> Option<Kind> {
    match (s, t) {
        (None, None) => None,
        (Some(_), None) => Some(Kind::Missing),
        (None, Some(_)) => Some(Kind::Extra),
        (Some(s), Some(t)) => (s.value != t.value || s.expire_ts_seconds != t.expire_ts_seconds)
            .then_some(Kind::Different),
    }
}

/// A short fingerprint of a source read (0: absent), to tell whether the source changed.
fn fingerprint(kv: Option<&KeyValue>) -> u64 {
    kv.map_or(0, |kv| {
        crate::pegasus::key::crc64(&kv.value.0)
            ^ u64::from(kv.expire_ts_seconds.unwrap_or(0).unsigned_abs()).rotate_left(32)
            | 1
    })
}

/// Reads a key on both sides, exactly as a scan sees it, and once more on the source when
/// they differ: the target may hold what the source held a moment ago. `before`: the source's
/// fingerprint when last read. Returns how it compares and the source's fingerprint now.
///
/// # Errors
/// A read failed.
pub async fn compare_now(
    src: &TableClient,
    dst: &TableClient,
    key: &[u8],
    before: Option<u64>,
    expiry: bool,
) -> Result<(Now, u64)> {
    let read = |client, side: fn(_) -> Error| async move {
        let kv = read_one(client, key).await.map_err(side)?;
        Ok::<_, Error>(kv.map(|kv| without_expiry_unless(expiry, kv)))
    };
    let (s, t) = tokio::join!(read(src, Error::Source), read(dst, Error::Target));
    let (s, t) = (s?, t?);
    if differs(s.as_ref(), t.as_ref()).is_none() {
        return Ok((Now::Same, fingerprint(s.as_ref())));
    }
    let again = read(src, Error::Source).await?;
    let now = fingerprint(again.as_ref());
    let Some(kind) = differs(again.as_ref(), t.as_ref()) else {
        return Ok((Now::Same, now));
    };
    let changed = now != fingerprint(s.as_ref()) || before.is_some_and(|b| b != now);
    Ok((
        if changed {
            Now::Changing
        } else {
            Now::Differs(kind)
        },
        now,
    ))
}

/// `kv` as compared: its expiry dropped when expiries are not compared.
fn without_expiry_unless(expiry: bool, mut kv: KeyValue) -> KeyValue {
    if !expiry {
        kv.expire_ts_seconds = None;
    }
    kv
}

/// What re-reading left.
#[derive(Debug, Default)]
pub struct Settled {
    /// Keys that still differ, with how they differ now.
    pub differing: Vec<Diff>,
    /// Keys the source was writing in the last round (not compared).
    pub changing: Vec<Diff>,
    pub rounds: u32,
}

/// Re-reads `suspects` in rounds until they match or the rounds or the time run out. A key
/// whose source changed since the round before, or within a round, is `changing`.
///
/// # Errors
/// A read failed.
pub async fn settle(
    src: &TableClient,
    dst: &TableClient,
    suspects: Vec<Diff>,
    settle: Settle,
    expiry: bool,
) -> Result<Settled> {
    let until = Instant::now() + settle.within;
    let mut pause = settle.first_pause;
    let mut keys: Vec<(Diff, Option<u64>)> = suspects.into_iter().map(|d| (d, None)).collect();
    let mut left = Settled {
        differing: keys.iter().map(|(d, _)| d.clone()).collect(),
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
        for chunk in keys.chunks(64) {
            let answers = compare_all(src, dst, chunk, expiry).await?;
            for ((d, _), (now, fp)) in chunk.iter().zip(answers) {
                let d = match now {
                    Now::Same => continue,
                    Now::Differs(kind) => {
                        round.differing.push(Diff {
                            key: d.key.clone(),
                            kind,
                        });
                        round.differing.last()
                    }
                    Now::Changing => {
                        round.changing.push(d.clone());
                        round.changing.last()
                    }
                };
                next.extend(d.map(|d| (d.clone(), Some(fp))));
            }
        }
        keys = next;
        left = round;
    }
    Ok(left)
}

/// Compares `keys` now, in parallel; the answers in the keys' order.
async fn compare_all(
    src: &TableClient,
    dst: &TableClient,
    keys: &[(Diff, Option<u64>)],
    expiry: bool,
) -> Result<Vec<(Now, u64)>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (d, before)) in keys.iter().enumerate() {
        let (src, dst, key, before) = (src.clone(), dst.clone(), d.key.clone(), *before);
        set.spawn(async move { (i, compare_now(&src, &dst, &key, before, expiry).await) });
    }
    let mut out = vec![(Now::Same, 0); keys.len()];
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.map_err(|e| Error::Task(e.to_string()))?;
        out[i] = result?;
    }
    Ok(out)
}
