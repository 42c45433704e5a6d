//! Owns the drain: with writes blocked, wait until every partition's current primary has
//! shipped (lcd − `not_duplicated`) at least the decree it had prepared once the block was in
//! force there (`src/sim/fidelity.md`, duplication rows). Prepared, not committed: a write that passed the deny
//! check just before the block commits a moment later and must be shipped too. A write the
//! primary admitted but has not logged yet (a slow disk) shows in no reply: it may commit after
//! the drain, even after the switch; the duplication ships it then, and `finish` waits for it
//! before removing the duplication (`finish::ADMITTED_SETTLE`).
//!
//! Each partition counts once, on the primary the meta names in that poll. A new primary
//! (new ballot) starts its partition over: first evidence that the block holds there, then a
//! new baseline. On 2.5 the last write is shipped only after the primary's next empty write
//! (group check), which the budget allows for.
//!
//! A partition whose prepared decree grows faster than its primary's empty writes can explain
//! is taking writes: its evidence was wrong (a slow primary also leaves a probe unanswered),
//! so it starts over rather than be declared drained.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::evidence::Awaited;
use super::table::{Run, StepResult, Stop};
use crate::plan::StepKind;
use crate::probe::progress::{self, Known};
use crate::probe::Primaries;

/// One partition's drain state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Baseline {
    ballot: i64,
    /// The primary's prepared decree, read after the block was in force on it.
    decree: i64,
    /// When it was read.
    at: Instant,
    drained: bool,
}

/// Decrees a blocked primary may add in `elapsed`: its group check's empty writes.
fn empty_writes_allowed(elapsed: std::time::Duration, group_check: std::time::Duration) -> i64 {
    let periods = elapsed.as_millis() / group_check.as_millis().max(1);
    i64::try_from(periods).unwrap_or(i64::MAX).saturating_add(1)
}

impl Run<'_> {
    pub(super) async fn drain(&mut self) -> StepResult {
        let dupid = match self.dupid {
            Some(id) => id,
            None => self
                .find_dup()
                .await?
                .map(|d| d.dupid)
                .ok_or_else(|| Stop::Abort("no duplication to drain".into()))?,
        };
        let block = self
            .block
            .ok_or_else(|| Stop::Abort("drain without a write block".into()))?;
        let awaited = Awaited::WritesBlocked {
            mode: self.m.block_mode,
            settled: false,
        };
        let mut baselines: BTreeMap<i32, Baseline> = BTreeMap::new();
        let mut last_state = String::from("not polled");
        loop {
            // The block is probed again at every poll: a served probe (a new primary, a late
            // config sync, a deny env deleted under the block) voids that partition's evidence.
            let mut tally = std::mem::take(&mut self.tally);
            self.poller()
                .poll_once(awaited, block.settled_at, &mut tally)
                .await;
            self.tally = tally;
            let read_at = Instant::now();
            if let Ok((prim, parts)) = self.progress_now(dupid).await {
                let waiting = self.advance(&prim, &parts, read_at, &mut baselines);
                let n = usize::try_from(prim.partition_count).unwrap_or(0);
                if n > 0 && baselines.len() == n && baselines.values().all(|b| b.drained) {
                    break;
                }
                let state = describe(&waiting);
                if state != last_state {
                    let msg = format!("waiting for {state}");
                    self.ctx.events.wait(&self.m.table, StepKind::Drain, msg);
                    last_state = state;
                }
            }
            if Instant::now() + self.ctx.opts.poll >= block.drain_by() {
                return Err(Stop::Abort(format!(
                    "not every partition shipped in time to leave the switch its reserve: {last_state}"
                )));
            }
            tokio::time::sleep(self.ctx.opts.poll).await;
        }
        self.drained_at = Some(Instant::now());
        let since_block = self.clock.now_ms().saturating_sub(block.started_ms);
        self.journal(Entry::Drain(entry::Drain::Outcome {
            drained_after_block_ms: since_block,
            baselines: baselines
                .iter()
                .map(|(p, b)| (p.to_string(), b.decree))
                .collect(),
        }))
    }

    /// Updates each partition's baseline and drained flag from one poll; returns the
    /// partitions still waiting, each with why.
    fn advance(
        &mut self,
        prim: &Primaries,
        parts: &[Known<progress::PartitionProgress>],
        read_at: Instant,
        baselines: &mut BTreeMap<i32, Baseline>,
    ) -> Vec<String> {
        let mut waiting = Vec::new();
        for (p, known) in prim.parts.iter().zip(parts) {
            let evidence = self.tally.seen.get(&p.pidx).copied();
            let in_force_before_read =
                evidence.is_some_and(|(ballot, at)| ballot == p.ballot && at <= read_at);
            if baselines.get(&p.pidx).is_some_and(|b| b.ballot != p.ballot) {
                baselines.remove(&p.pidx);
            }
            let pp = match known {
                Known::Yes(pp) if pp.ballot == p.ballot => pp,
                Known::Yes(_) => {
                    waiting.push(format!("{} (primary changed)", p.pidx));
                    continue;
                }
                Known::Unknown(why) => {
                    waiting.push(format!("{} ({why})", p.pidx));
                    continue;
                }
            };
            if !in_force_before_read {
                // Writes may have been taken since the baseline was read.
                baselines.remove(&p.pidx);
                waiting.push(format!("{} (block not yet seen on its primary)", p.pidx));
                continue;
            }
            if !baselines.contains_key(&p.pidx) && pp.last_prepared != pp.last_committed {
                // Writes that passed the deny check may still wait in the primary's queue for a
                // decree; with nothing in flight, that queue is empty.
                waiting.push(format!(
                    "{} (writes in flight: prepared {}, committed {})",
                    p.pidx, pp.last_prepared, pp.last_committed
                ));
                continue;
            }
            let base = *baselines.entry(p.pidx).or_insert(Baseline {
                ballot: p.ballot,
                decree: pp.last_prepared,
                at: read_at,
                drained: false,
            });
            let allowed = empty_writes_allowed(read_at - base.at, self.source.group_check);
            if pp.last_prepared > base.decree + allowed {
                baselines.remove(&p.pidx);
                self.tally
                    .disprove(p.pidx, "its prepared decree grew under the block");
                waiting.push(format!(
                    "{} (its primary still takes writes: decree {} → {}; waiting for the block there)",
                    p.pidx, base.decree, pp.last_prepared
                ));
                continue;
            }
            let base = baselines.get_mut(&p.pidx).expect("inserted above");
            let shipped = pp.shipped().unwrap_or(i64::MIN);
            base.drained = shipped >= base.decree;
            if !base.drained {
                waiting.push(format!("{} (shipped {shipped} of {})", p.pidx, base.decree));
            }
        }
        waiting
    }
}

/// The partitions still waiting, for messages.
fn describe(waiting: &[String]) -> String {
    if waiting.is_empty() {
        "every partition shipped".into()
    } else {
        format!("partitions {}", waiting.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_blocked_primary_may_add_one_empty_write_per_group_check() {
        let g = Duration::from_secs(10);
        assert_eq!(empty_writes_allowed(Duration::ZERO, g), 1);
        assert_eq!(empty_writes_allowed(Duration::from_secs(9), g), 1);
        assert_eq!(empty_writes_allowed(Duration::from_secs(25), g), 3);
    }
}
