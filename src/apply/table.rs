//! Owns one table's run: each remaining step, in order, as an idempotent observe → act →
//! verify, each step in its own file (`preflight`, `duplicate`, `checkpoint`, `catch_up`,
//! `block`, `drain`, `switch`, `finish`); how a stop becomes the table's outcome, with the one
//! restore path before the switch.
//!
//! # Guarantees
//! Every step re-reads the servers before acting, so it can be repeated after a crash. From
//! the moment the deny env is requested until the routing switch, `max_write_block` bounds
//! the time until writes are taken again (kept across runs through the journal): the
//! cut-over gives up early enough for the restore and its config sync to fit. Once the
//! switch may have happened, the block is never lifted.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::entry::Entry;
use super::events::EventKind;
use super::evidence::Tally;
use super::journal::Subject;
use super::speedup::Source;
use super::{Ctx, Outcome};
use crate::pegasus::meta::MetaClient;
use crate::plan::{StepDetail, StepKind, TablePlan};
use crate::probe::progress::{self, Known, PartitionProgress};
use crate::probe::Primaries;
use crate::spec::Migration;

/// Why a step stopped the run.
#[derive(Debug)]
pub(super) enum Stop {
    /// Give up this cut-over (writes are restored if blocked); a later apply resumes.
    Abort(String),
    /// An error; nothing was blocked by this run's step.
    Fail(String),
    /// An operator must act.
    Operator(String),
}

pub(super) type StepResult = Result<(), Stop>;

pub(super) fn fail(what: &str) -> impl Fn(crate::pegasus::Error) -> Stop + '_ {
    move |e| Stop::Fail(format!("{what}: {e}"))
}

/// A write block this run set or resumed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    /// When the deny env was requested (monotonic), and the same as wall-clock ms.
    pub started: Instant,
    pub started_ms: u64,
    /// From here a `timeout*` primary's silence counts as the block being in force.
    pub settled_at: Instant,
    /// The last moment a restore can start and still have writes taken by the deadline.
    pub give_up_at: Instant,
    /// `started + max_write_block`.
    pub deadline: Instant,
    /// Kept before the switch for the exact check when the verify gate left it keys.
    pub exact_reserve: std::time::Duration,
}

impl Block {
    /// The last moment the switch may be sent: its worst case must end before `give_up_at`.
    #[must_use]
    pub fn switch_by(&self) -> Instant {
        self.give_up_at
            .checked_sub(crate::plan::budget::SWITCH_RESERVE)
            .unwrap_or(self.started)
    }

    /// The last moment for the evidence, the drain and the probes before the switch: the exact
    /// check's reserve comes before the switch's.
    #[must_use]
    pub fn drain_by(&self) -> Instant {
        self.switch_by()
            .checked_sub(self.exact_reserve)
            .unwrap_or(self.started)
    }
}

pub(super) struct Run<'a> {
    pub ctx: &'a Ctx,
    pub m: &'a Migration,
    pub src: &'a MetaClient,
    pub source: Arc<Source>,
    /// The source table's app id, once preflight read it.
    pub app_id: Option<i32>,
    pub dupid: Option<i32>,
    pub block: Option<Block>,
    /// The evidence that the block is in force, per partition.
    pub tally: Tally,
    /// The compare-and-set was sent: from here on the block is never lifted by this tool.
    pub switch_sent: bool,
    /// When this run's drain found every partition shipped.
    pub drained_at: Option<Instant>,
    /// The clock the block record's times are in (ZooKeeper's), once the record was opened.
    pub clock: crate::clock::Shared,
    /// How long writes were blocked, measured when clients were told to move.
    pub blocked_ms: Option<u64>,
    /// This table counts as a cut-over of its source cluster (for the speed-up).
    pub in_cutover: bool,
    /// The block record, once the block was opened.
    pub record: Option<crate::cutover::record::RecordStore>,
    /// Keys the verify gate left to compare inside the block (`exact`), as the block record
    /// counts them.
    pub exact_pending: u64,
}

/// Runs `tp`'s remaining steps; `cutover` bounds concurrent cut-overs on the source cluster.
pub async fn run(ctx: &Ctx, tp: &TablePlan, cutover: Arc<Semaphore>) -> Outcome {
    let m = ctx
        .spec
        .migrations
        .iter()
        .find(|m| m.table == tp.table)
        .expect("plans come from the spec");
    let mut run = Run {
        ctx,
        m,
        src: &ctx.metas[&m.from],
        source: ctx.sources[&m.from].clone(),
        app_id: None,
        dupid: None,
        block: None,
        tally: Tally::default(),
        switch_sent: false,
        drained_at: None,
        clock: crate::clock::Shared::LOCAL,
        blocked_ms: None,
        in_cutover: false,
        record: None,
        exact_pending: 0,
    };
    let outcome = run.steps(tp, cutover).await;
    if run.in_cutover {
        if let Some(said) = run.source.end(&ctx.replica, &ctx.journal).await {
            ctx.events.wait(&m.table, StepKind::Finish, said);
        }
    }
    outcome
}

impl Run<'_> {
    async fn steps(&mut self, tp: &TablePlan, cutover: Arc<Semaphore>) -> Outcome {
        let (ctx, m) = (self.ctx, self.m);
        let mut permit = None;
        let mut caught_up = false;
        for step in &tp.steps {
            if *ctx.stopping.borrow() && self.block.is_none() {
                return Outcome::Stopped {
                    reason: "interrupted before the cut-over; run apply again to resume".into(),
                };
            }
            if step.kind == StepKind::BlockWrites {
                match self.cutover_turn(&cutover, caught_up).await {
                    Ok(p) => permit = p,
                    Err(outcome) => return outcome,
                }
            }
            ctx.events.start(&m.table, step.kind);
            if let Err(stop) = self.step(&step.detail).await {
                return self.stopped(step.kind, stop).await;
            }
            caught_up |= step.kind == StepKind::CatchUp;
            if step.kind == StepKind::Switch {
                drop(permit.take());
            }
        }
        ctx.events.emit(
            &m.table,
            EventKind::Done,
            Some(StepKind::Finish),
            "migrated".into(),
        );
        Outcome::Done {
            write_block_ms: self.blocked_ms,
        }
    }

    /// Waits for this table's turn to cut over on its source (one permit per concurrent
    /// cut-over) with its lag under the threshold: verify, or another table's cut-over, took
    /// time in which the lag may have grown, and the block's budget holds only under it. The
    /// lag is waited for without the permit, so a slow table never holds up the others.
    async fn cutover_turn(
        &mut self,
        cutover: &Arc<Semaphore>,
        caught_up: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, Outcome> {
        let threshold = i64::try_from(self.m.threshold).unwrap_or(i64::MAX);
        loop {
            if caught_up {
                if let Err(stop) = self.interruptible(Self::catch_up).await {
                    return Err(self.stopped(StepKind::CatchUp, stop).await);
                }
            }
            if cutover.available_permits() == 0 {
                let why = format!("waiting for another cut-over on {} to finish", self.m.from);
                self.ctx
                    .events
                    .wait(&self.m.table, StepKind::BlockWrites, why);
            }
            let mut stopping = self.ctx.stopping.clone();
            // Only a stop request ends the wait early (a closed channel disables that branch).
            let permit = tokio::select! {
                biased;
                p = cutover.clone().acquire_owned() => p.ok(),
                Ok(_) = stopping.wait_for(|s| *s) => None,
            };
            if *self.ctx.stopping.borrow() {
                if self.block.is_none() {
                    return Err(Outcome::Stopped {
                        reason: "interrupted before the cut-over; run apply again to resume".into(),
                    });
                }
                let stop = Stop::Abort("interrupted".into());
                return Err(self.stopped(StepKind::BlockWrites, stop).await);
            }
            if !caught_up || self.lag_now().await.is_ok_and(|l| l.ready(threshold)) {
                return Ok(permit);
            }
        }
    }

    async fn step(&mut self, detail: &StepDetail) -> StepResult {
        match detail {
            StepDetail::Preflight => self.preflight().await,
            StepDetail::Duplicate { .. } => self.duplicate().await,
            StepDetail::Checkpoint { .. } => self.interruptible(Self::checkpoint).await,
            StepDetail::CatchUp { .. } => self.interruptible(Self::catch_up).await,
            StepDetail::Verify { mode, rate } => {
                let (mode, rate) = (*mode, *rate);
                self.interruptible(|r| r.verify(mode, rate)).await
            }
            StepDetail::BlockWrites { .. } => self.interruptible(Self::block_writes).await,
            StepDetail::Drain { .. } => self.interruptible(Self::drain).await,
            StepDetail::Switch { routing, .. } => self.switch(routing.as_ref()).await,
            StepDetail::Finish { remove_duplication } => self.finish(*remove_duplication).await,
        }
    }

    /// Runs a waiting step, giving up at the first SIGINT/SIGTERM (its effects are idempotent).
    async fn interruptible<'s, F, Fut>(&'s mut self, f: F) -> StepResult
    where
        F: FnOnce(&'s mut Self) -> Fut,
        Fut: std::future::Future<Output = StepResult> + 's,
    {
        let mut stopping = self.ctx.stopping.clone();
        tokio::select! {
            biased;
            r = f(self) => r,
            _ = stopping.wait_for(|s| *s) => Err(Stop::Abort("interrupted".into())),
        }
    }

    /// The table's primaries and each one's decrees and duplication counters for `dupid`,
    /// read now.
    ///
    /// # Errors
    /// The meta could not name the primaries.
    pub(super) async fn progress_now(
        &self,
        dupid: i32,
    ) -> Result<(Primaries, Vec<Known<PartitionProgress>>), String> {
        let prim = Primaries::read(self.src, &self.m.table)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = self.ctx.opts.probe_timeout * 4;
        let parts = progress::read(&self.ctx.replica, &prim, Some(dupid), deadline).await;
        Ok((prim, parts))
    }

    /// What this run's journal records are about.
    pub(super) fn subject(&self) -> Subject {
        Subject {
            cluster: self.m.from.clone(),
            table: self.m.table.clone(),
            app_id: self.app_id,
        }
    }

    pub(super) fn journal(&self, entry: Entry) -> StepResult {
        self.ctx
            .journal
            .record(&self.subject(), &entry)
            .map_err(|e| Stop::Fail(format!("cannot write the journal: {e}")))
    }

    /// Ends the run at `kind` with `stop`: the one way out of a step. Writes this run blocked
    /// are restored first unless the switch was sent; then it is an abort (exit 3) only if
    /// the block was lifted, and anything after the switch needs an operator.
    async fn stopped(&mut self, kind: StepKind, stop: Stop) -> Outcome {
        let restore =
            crate::cutover::protocol::restores_on_stop(self.block.is_some(), self.switch_sent);
        let mut outcome = match stop {
            Stop::Abort(reason) => Outcome::Stopped { reason },
            Stop::Fail(reason) => Outcome::Failed { reason },
            Stop::Operator(reason) => Outcome::NeedsOperator { reason },
        };
        if restore {
            outcome = match (self.restore_writes().await, outcome) {
                (Ok(said), Outcome::NeedsOperator { reason }) => Outcome::NeedsOperator {
                    reason: format!("{reason}; {said}"),
                },
                (Ok(said), other) => Outcome::Aborted {
                    reason: format!("{}; {said}", other.reason()),
                },
                (Err(e), other) => Outcome::NeedsOperator {
                    reason: format!("{}; and restoring writes failed: {e}", other.reason()),
                },
            };
        }
        if self.switch_sent && !matches!(outcome, Outcome::NeedsOperator { .. }) {
            // Routing may name the target while the source still blocks: half a cut-over is
            // never just an error.
            outcome = Outcome::NeedsOperator {
                reason: format!(
                    "{}; the switch was sent, so writes to {} stay blocked on {}: run apply again to finish the cut-over",
                    outcome.reason(),
                    self.m.table,
                    self.m.from
                ),
            };
        }
        self.ctx.events.emit(
            &self.m.table,
            outcome.event_kind(),
            Some(kind),
            outcome.reason().to_string(),
        );
        outcome
    }
}
