//! Owns the verify step: after catch-up and before anything is blocked, compare the table on
//! source and target (`crate::verify`); anything but `equal` (differences that do not settle,
//! or keys that could not be compared) stops the table for an operator with nothing blocked.
//! A verify stopped before its verdict (the run ended, a read failed) goes on from its
//! checkpoint at the next apply.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::table::{Run, StepResult, Stop};
use crate::pegasus::table::{TableClient, TableOptions};
use crate::plan::StepKind;
use crate::spec::VerifyMode;
use crate::verify::checkpoint::Store;
use crate::verify::{self, Checkpointing, Mode, Options, Progress, Verdict};

/// Differing keys named in the stop message.
const FIRST_KEYS: usize = 5;

/// Partition groups the gate compares at once unless the plan sets `verify_parallelism`:
/// with every partition of both sides read at once, 8 groups cover the 8 + 8 partitions of a
/// usual table (about 240,000 records/s measured at a 30 ms round trip, `benches/README.md`).
const GATE_PARALLELISM: usize = 8;

/// How often the verify saves its progress under `.migrator/verify/`.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// How often a long verify says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl Run<'_> {
    /// Clients of the table on its source and its target.
    pub(super) fn table_clients(&self) -> (TableClient, TableClient) {
        let client = |cluster: &str| {
            TableClient::new(
                &self.m.table,
                self.ctx.metas[cluster].clone(),
                TableOptions::default(),
            )
        };
        (client(&self.m.from), client(&self.m.to))
    }

    /// What `outcome` says of this table, a line each, with the first differing keys.
    pub(super) fn report_lines(&self, outcome: &verify::Outcome) -> Vec<String> {
        verify::report::lines(&self.m.table, &self.m.from, &self.m.to, outcome, FIRST_KEYS)
    }

    /// Says every `PROGRESS_EVERY` how far the verify is; never ends by itself.
    async fn tell_progress(&self, p: &Progress) -> std::convert::Infallible {
        let started = Instant::now();
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let said = p.describe(started.elapsed().as_secs_f64());
            self.ctx.events.wait(&self.m.table, StepKind::Verify, said);
        }
    }

    pub(super) async fn verify(&mut self, mode: VerifyMode, rate: Option<u64>) -> StepResult {
        let mode = match mode {
            VerifyMode::Off => return Ok(()),
            VerifyMode::Sample => Mode::Sample,
            VerifyMode::Full => Mode::Full,
        };
        let (src, dst) = self.table_clients();
        super::failpoint::hit("verify", "before");
        let opts = Options {
            mode,
            rate,
            parallelism: self.m.verify_parallelism.unwrap_or(GATE_PARALLELISM),
            ..Options::default()
        };
        let progress = Arc::new(Progress::default());
        progress.estimate_of(&src, &self.ctx.replica).await;
        let store = Store::new(
            &self.ctx.state_dir,
            &self.m.table,
            &self.m.from,
            &self.m.to,
            CHECKPOINT_EVERY,
        );
        // A run stopped before its verdict goes on where it was, if it compared the same way.
        let resume = store.load().ok().flatten().is_some_and(|s| s.mode == mode);
        let checkpointing = Checkpointing { store, resume };
        let run = async {
            // The tables apply verifies at once share each cluster's limit.
            let pacers = || {
                self.ctx
                    .pacers
                    .pacers(&self.m.from, &self.m.to, opts.limits())
            };
            match verify::verify_resumable(
                &src,
                &dst,
                opts,
                progress.clone(),
                Some(&checkpointing),
                Some(pacers()),
            )
            .await
            {
                // A checkpoint that does not fit (a split since) is dropped: start over.
                Err(verify::Error::Checkpoint(_)) => {
                    checkpointing.store.remove();
                    let fresh = Checkpointing {
                        resume: false,
                        ..checkpointing.clone()
                    };
                    verify::verify_resumable(
                        &src,
                        &dst,
                        opts,
                        progress.clone(),
                        Some(&fresh),
                        Some(pacers()),
                    )
                    .await
                }
                other => other,
            }
        };
        let outcome = tokio::select! {
            biased;
            outcome = run => outcome,
            never = self.tell_progress(&progress) => match never {},
        }
        .map_err(|e| Stop::Abort(format!("verify: {e}")))?;
        self.journal(Entry::Verify(entry::Verify::Outcome {
            mode,
            verdict: Some(outcome.verdict),
            scanned: outcome.scanned.scanned,
            differences: outcome.differences(),
            changing: outcome.changing.len() as u64,
            not_rechecked: outcome.not_rechecked,
            expiry_compared: Some(outcome.expiry_compared),
            sample_salt: outcome.sample.map(|s| s.salt),
            rounds: outcome.rounds,
        }))?;
        let lines = self.report_lines(&outcome);
        if let Some(keys) = left_to_the_switch(&outcome) {
            // Still being written, so not comparable now: compared exactly inside the block,
            // once the source is frozen, before the switch (`exact`) — if that fits the reserve.
            let read = self.time_a_read_of(&keys).await.map_err(|e| {
                Stop::Abort(format!(
                    "verify: timing a read of the keys still being written: {e}"
                ))
            })?;
            if !super::exact::fits(read) {
                return Err(Stop::Operator(format!(
                    "{} keys were still being written on {}, and comparing them inside the write block would take up to {:.1}s (one read of them took {} ms), more than the {}s the budget reserves; nothing was blocked. Run apply again when {} writes fewer keys this often",
                    keys.len(),
                    self.m.from,
                    super::exact::worst_case(read).as_secs_f64(),
                    read.as_millis(),
                    crate::plan::budget::EXACT_CHECK.as_secs(),
                    self.m.table
                )));
            }
            super::exact::save(&self.ctx.state_dir, &self.m.table, &keys)
                .map_err(|e| Stop::Fail(format!("saving the keys left to the switch: {e}")))?;
            self.exact_pending = keys.len() as u64;
            self.ctx.events.wait(
                &self.m.table,
                StepKind::Verify,
                format!(
                    "{} keys were still being written on {}: they are compared inside the write block, before the switch",
                    keys.len(),
                    self.m.from
                ),
            );
            super::failpoint::hit("verify", "after");
            return Ok(());
        }
        super::exact::remove(&self.ctx.state_dir, &self.m.table);
        if let Some(why) = not_passed(outcome.verdict) {
            return Err(Stop::Operator(format!(
                "{why}, so nothing was blocked: {}. Find out why (`migrator verify <plan file> --table {}` shows them), then run apply again",
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join("; "),
                self.m.table
            )));
        }
        self.ctx.events.wait(
            &self.m.table,
            StepKind::Verify,
            lines.into_iter().next().unwrap_or_default(),
        );
        super::failpoint::hit("verify", "after");
        Ok(())
    }
}

/// The keys an otherwise equal verdict could not compare because the source kept writing
/// them, if few enough to compare inside the block; `None` when the verdict stands as it is.
fn left_to_the_switch(outcome: &verify::Outcome) -> Option<Vec<Vec<u8>>> {
    let only_changing = outcome.verdict == Verdict::Incomplete
        && outcome.differences() == 0
        && outcome.not_rechecked == 0
        && !outcome.changing.is_empty()
        && outcome.changing.len() <= super::exact::MAX_EXACT_KEYS;
    only_changing.then(|| outcome.changing.iter().map(|d| d.key.clone()).collect())
}

/// Why a verdict does not let the cut-over go on (`None`: it does). Only `equal` passes: a key
/// not compared may hide a difference as well as a key that differs.
fn not_passed(v: Verdict) -> Option<&'static str> {
    match v {
        Verdict::Equal => None,
        Verdict::Different => Some("verify found differences that did not settle"),
        Verdict::Incomplete => Some(
            "verify could not compare every key (some still being written on the source, or not re-read)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_equal_verdict_passes_the_gate() {
        assert_eq!(not_passed(Verdict::Equal), None);
        assert!(not_passed(Verdict::Different).is_some());
        assert!(not_passed(Verdict::Incomplete).is_some());
    }
}
