//! Owns the exact check at the switch: the keys the verify gate could not compare (the source
//! was still writing them) are compared on both clusters inside the write block, once the
//! drain has shown the source frozen, and the switch goes out only if every one matches.
//! Otherwise the block is lifted (nothing was switched) and an operator gets the keys.
//!
//! The keys wait in `.migrator/verify/<table>.exact` between the gate and the switch; the
//! block record counts them, so a run that resumes the block without that file (another host)
//! lifts it rather than switch unchecked.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::table::{Run, StepResult, Stop};
use crate::plan::StepKind;
use crate::verify::checkpoint::{hex, unhex};
use crate::verify::{self, Verdict};

/// The most keys the gate leaves to the switch; more still changing and it stops instead.
pub const MAX_EXACT_KEYS: usize = 10_000;

/// The exact check's re-reads: the source is frozen and drained, so a difference will not
/// settle; one short re-read covers a read that raced the last copy being applied.
const SETTLE: verify::recheck::Settle = verify::recheck::Settle {
    rounds: 2,
    first_pause: Duration::from_millis(200),
    within: Duration::from_secs(1),
};

/// How long the exact check may take for keys one read round of which took `read`: each
/// round's pause and its read.
#[must_use]
pub fn worst_case(read: Duration) -> Duration {
    let pauses: Duration = (0..SETTLE.rounds)
        .map(|round| SETTLE.first_pause * 2u32.pow(round))
        .sum();
    pauses + read * SETTLE.rounds
}

/// Whether keys one read round of which took `read` fit the budget's reserve for the exact
/// check.
#[must_use]
pub fn fits(read: Duration) -> bool {
    worst_case(read) <= crate::plan::budget::EXACT_CHECK
}

impl Run<'_> {
    /// Reads `keys` once on both clusters, as the exact check will, and says how long it took.
    ///
    /// # Errors
    /// A read failed.
    pub(super) async fn time_a_read_of(&self, keys: &[Vec<u8>]) -> Result<Duration, verify::Error> {
        let (src, dst) = self.table_clients();
        let opts = verify::Options {
            mode: verify::Mode::Full,
            settle: verify::recheck::Settle {
                rounds: 1,
                first_pause: Duration::ZERO,
                within: Duration::from_secs(3600),
            },
            ..verify::Options::default()
        };
        let started = Instant::now();
        verify::diffs::verify_keys(&src, &dst, opts, keys.to_vec()).await?;
        Ok(started.elapsed())
    }
}

/// Where the keys left to the switch wait.
#[must_use]
pub fn path(state_dir: &Path, table: &str) -> PathBuf {
    state_dir.join("verify").join(format!("{table}.exact"))
}

/// Saves `keys` (hex, one per line) for the switch.
///
/// # Errors
/// The file cannot be written.
pub fn save(state_dir: &Path, table: &str, keys: &[Vec<u8>]) -> std::io::Result<()> {
    let path = path(state_dir, table);
    if let Some(dir) = path.parent() {
        crate::files::private_dir(dir)?;
    }
    let mut f = crate::files::create_private(&path)?;
    for k in keys {
        writeln!(f, "{}", hex(k))?;
    }
    f.sync_all()
}

/// The keys saved for the switch, if any.
fn load(state_dir: &Path, table: &str) -> Option<Vec<Vec<u8>>> {
    let f = std::fs::File::open(path(state_dir, table)).ok()?;
    std::io::BufReader::new(f)
        .lines()
        .map(|l| l.ok().and_then(|l| unhex(l.trim())))
        .collect()
}

/// Forgets the keys (the switch compared them, or the cut-over is over).
pub fn remove(state_dir: &Path, table: &str) {
    let _ = std::fs::remove_file(path(state_dir, table));
}

impl Run<'_> {
    /// Inside the block, before the switch: compares the keys the gate left, within the time
    /// the switch still leaves.
    pub(super) async fn exact_check(&mut self) -> StepResult {
        let recorded = match &self.record {
            Some(store) => store
                .read()
                .await
                .ok()
                .flatten()
                .map_or(0, |(r, _)| r.exact_keys),
            None => 0,
        };
        let expected = self.exact_pending.max(recorded);
        let keys = match load(&self.ctx.state_dir, &self.m.table) {
            Some(keys) if !keys.is_empty() => keys,
            _ if expected > 0 => {
                return Err(Stop::Abort(format!(
                    "the verify gate left {expected} keys to compare at the switch, and their list ({}) is not on this host; nothing was switched: run apply again where the gate ran, or again from here to verify afresh",
                    path(&self.ctx.state_dir, &self.m.table).display()
                )))
            }
            _ => return Ok(()),
        };
        let (src, dst) = self.table_clients();
        let until = self.block.map_or_else(Instant::now, |b| b.switch_by());
        let given = keys.len();
        let started = Instant::now();
        let opts = verify::Options {
            mode: verify::Mode::Full,
            settle: SETTLE,
            ..verify::Options::default()
        };
        let checked =
            tokio::time::timeout_at(until, verify::diffs::verify_keys(&src, &dst, opts, keys))
                .await;
        let outcome = match checked {
            Err(_) => {
                return Err(Stop::Abort(format!(
                    "the {given} keys left to the switch were not compared within the write-block budget; nothing was switched"
                )))
            }
            Ok(Err(e)) => {
                return Err(Stop::Abort(format!(
                    "comparing the {given} keys left to the switch: {e}; nothing was switched"
                )))
            }
            Ok(Ok(o)) => o,
        };
        self.journal(Entry::Verify(entry::Verify::AtSwitch {
            keys: given as u64,
            verdict: outcome.verdict,
            took_ms: crate::plan::budget::ms(started.elapsed()),
        }))?;
        if outcome.verdict != Verdict::Equal {
            let lines = self.report_lines(&outcome);
            return Err(Stop::Operator(format!(
                "inside the write block the keys verify could not compare before did not all match ({}); the block is lifted and nothing was switched. The keys are in {}",
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join("; "),
                path(&self.ctx.state_dir, &self.m.table).display()
            )));
        }
        self.ctx.events.wait(
            &self.m.table,
            StepKind::Switch,
            format!(
                "the {given} keys the gate left were compared inside the block in {} ms: equal",
                started.elapsed().as_millis()
            ),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fit_the_reserve_only_if_two_rounds_and_their_pauses_do() {
        // 200 + 400 ms of pauses and two rounds of reads within 3 s.
        assert_eq!(
            worst_case(Duration::from_millis(500)),
            Duration::from_millis(1600)
        );
        assert!(fits(Duration::from_millis(1200)));
        assert!(!fits(Duration::from_millis(1201)));
    }

    #[test]
    fn keys_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys = vec![vec![0u8, 5, b'a'], vec![], vec![255, 16]];
        save(dir.path(), "t", &keys).unwrap();
        assert_eq!(load(dir.path(), "t"), Some(keys));
        remove(dir.path(), "t");
        assert_eq!(load(dir.path(), "t"), None);
        assert_eq!(unhex("0g"), None);
    }
}
