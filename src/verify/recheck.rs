//! Owns settling differences: a key found different while duplication is still shipping is
//! read again on both sides, exactly as a scan sees it, in rounds with growing pauses, until it
//! matches or the rounds or the time run out.

use std::time::Duration;

use tokio::time::Instant;

use super::compare::{Diff, Kind};
use super::{Error, Result};
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

/// How a key compares now: `None` when it matches (or is absent on both sides).
///
/// # Errors
/// A read failed.
pub async fn compare_now(src: &TableClient, dst: &TableClient, key: &[u8]) -> Result<Option<Kind>> {
    let (s, t) = tokio::join!(read_one(src, key), read_one(dst, key));
    let (s, t) = (s.map_err(Error::Source)?, t.map_err(Error::Target)?);
    Ok(match (s, t) {
        (None, None) => None,
        (Some(_), None) => Some(Kind::Missing),
        (None, Some(_)) => Some(Kind::Extra),
        (Some(s), Some(t)) => (s.value != t.value || s.expire_ts_seconds != t.expire_ts_seconds)
            .then_some(Kind::Different),
    })
}

/// Re-reads `suspects` in rounds until they match; returns those still differing (with how
/// they differ now) and the rounds run.
///
/// # Errors
/// A read failed.
pub async fn settle(
    src: &TableClient,
    dst: &TableClient,
    mut suspects: Vec<Diff>,
    settle: Settle,
) -> Result<(Vec<Diff>, u32)> {
    let until = Instant::now() + settle.within;
    let mut pause = settle.first_pause;
    let mut rounds = 0;
    while !suspects.is_empty() && rounds < settle.rounds && Instant::now() + pause < until {
        tokio::time::sleep(pause).await;
        pause *= 2;
        rounds += 1;
        let mut left = Vec::new();
        for chunk in suspects.chunks(64) {
            let now = compare_all(src, dst, chunk).await?;
            left.extend(now);
        }
        suspects = left;
    }
    Ok((suspects, rounds))
}

/// Compares `keys` now, 64 at a time in parallel.
async fn compare_all(src: &TableClient, dst: &TableClient, keys: &[Diff]) -> Result<Vec<Diff>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, d) in keys.iter().enumerate() {
        let (src, dst, key) = (src.clone(), dst.clone(), d.key.clone());
        set.spawn(async move { (i, compare_now(&src, &dst, &key).await) });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.map_err(|e| Error::Task(e.to_string()))?;
        if let Some(kind) = result? {
            out.push((
                i,
                Diff {
                    key: keys[i].key.clone(),
                    kind,
                },
            ));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, d)| d).collect())
}
