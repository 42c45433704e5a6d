//! Owns one table's run: each remaining step as an idempotent observe → act → verify, in
//! order; the steps before the block live here, the block and restore in `block`, the drain
//! in `drain`, the switch in `switch`.
//!
//! # Guarantees
//! Every step re-reads the servers before acting, so it can be repeated after a crash. From
//! the moment the deny env is requested until the routing switch, `max_write_block` bounds
//! the time until writes are taken again (kept across runs through the journal): the
//! cut-over gives up early enough for the restore and its config sync to fit. Once the
//! switch may have happened, the block is never lifted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::evidence::Tally;
use super::gate::wait_until;
use super::journal::Subject;
use super::speedup::Source;
use super::{Ctx, Outcome};
use crate::pegasus::base::err;
use crate::pegasus::messages::duplication::{
    AddDuplicationRequest, DuplicationEntry, DuplicationStatus,
};
use crate::pegasus::meta::MetaClient;
use crate::plan::{StepDetail, StepKind, TablePlan};
use crate::probe::{progress, Primaries};
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
    /// How long writes were blocked, measured when clients were told to move.
    pub blocked_ms: Option<u64>,
    /// This table counts as a cut-over of its source cluster (for the speed-up).
    pub in_cutover: bool,
    /// The block record, once the block was opened.
    pub record: Option<super::record::RecordStore>,
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
        blocked_ms: None,
        in_cutover: false,
        record: None,
    };
    let outcome = run.steps(tp, cutover).await;
    if run.in_cutover {
        if let Some(said) = run.source.end(&ctx.replica, &ctx.journal).await {
            ctx.events.emit(&m.table, "wait", "finish", said);
        }
    }
    outcome
}

pub(super) fn step_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Preflight => "preflight",
        StepKind::Duplicate => "duplicate",
        StepKind::Checkpoint => "checkpoint",
        StepKind::CatchUp => "catch_up",
        StepKind::BlockWrites => "block_writes",
        StepKind::Drain => "drain",
        StepKind::Switch => "switch",
        StepKind::Finish => "finish",
    }
}

impl Run<'_> {
    async fn steps(&mut self, tp: &TablePlan, cutover: Arc<Semaphore>) -> Outcome {
        let (ctx, m) = (self.ctx, self.m);
        let mut permit = None;
        for step in &tp.steps {
            if *ctx.stopping.borrow() && self.block.is_none() {
                return Outcome::Aborted {
                    reason: "interrupted before the cut-over; run apply again to resume".into(),
                };
            }
            if step.kind == StepKind::BlockWrites {
                if cutover.available_permits() == 0 {
                    let why = format!("waiting for another cut-over on {} to finish", m.from);
                    ctx.events.emit(&m.table, "wait", "block_writes", why);
                }
                permit = cutover.clone().acquire_owned().await.ok();
            }
            ctx.events
                .emit(&m.table, "start", step_name(step.kind), String::new());
            if let Err(stop) = self.step(&step.detail).await {
                return self.stopped(step.kind, stop).await;
            }
            if step.kind == StepKind::Switch {
                drop(permit.take());
            }
        }
        ctx.events
            .emit(&m.table, "done", "finish", "migrated".into());
        Outcome::Done {
            write_block_ms: self.blocked_ms,
        }
    }

    async fn step(&mut self, detail: &StepDetail) -> StepResult {
        match detail {
            StepDetail::Preflight => self.preflight().await,
            StepDetail::Duplicate { .. } => self.duplicate().await,
            StepDetail::Checkpoint { .. } => self.interruptible(Self::checkpoint).await,
            StepDetail::CatchUp { .. } => self.interruptible(Self::catch_up).await,
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
            r = f(self) => r,
            _ = stopping.wait_for(|s| *s) => Err(Stop::Abort("interrupted".into())),
        }
    }

    /// What this run's journal records are about.
    pub(super) fn subject(&self) -> Subject {
        Subject {
            cluster: self.m.from.clone(),
            table: self.m.table.clone(),
            app_id: self.app_id,
        }
    }

    pub(super) fn journal(&self, step: &str, event: &str, detail: serde_json::Value) -> StepResult {
        self.ctx
            .journal
            .record(&self.subject(), step, event, detail)
            .map_err(|e| Stop::Fail(format!("cannot write the journal: {e}")))
    }

    async fn preflight(&mut self) -> StepResult {
        let prim = Primaries::read(self.src, &self.m.table)
            .await
            .map_err(fail("source table"))?;
        self.app_id = Some(prim.app_id);
        self.dupid = self.find_dup().await?.map(|d| d.dupid);
        Ok(())
    }

    pub(super) async fn find_dup(&self) -> Result<Option<DuplicationEntry>, Stop> {
        let resp = self
            .src
            .query_duplication(&self.m.table)
            .await
            .map_err(fail("query duplications"))?;
        Ok(resp.entry_list.into_iter().find(|e| e.remote == self.m.to))
    }

    async fn duplicate(&mut self) -> StepResult {
        if let Some(d) = self.find_dup().await? {
            self.dupid = Some(d.dupid);
            self.ctx.events.emit(
                &self.m.table,
                "wait",
                "duplicate",
                format!("reusing duplication {} ({})", d.dupid, d.status),
            );
            return Ok(());
        }
        self.journal("duplicate", "intent", json!({"remote": self.m.to}))?;
        let req = AddDuplicationRequest {
            app_name: self.m.table.clone(),
            remote_cluster_name: self.m.to.clone(),
            is_duplicating_checkpoint: Some(true),
            ..Default::default()
        };
        super::failpoint::hit("add_duplication", "before");
        let added = self.src.add_duplication(&req).await;
        super::failpoint::hit("add_duplication", "after");
        match added {
            Ok(r) if (r.err.is_ok() || r.err.is(err::DUP_EXIST)) && r.dupid > 0 => {
                self.dupid = Some(r.dupid);
            }
            // 2.5 answers ERR_OK with dupid 0 when it silently reused one; timeouts leave the
            // outcome unknown. Either way the servers know the truth.
            Ok(r) if r.err.is_ok() => self.dupid = self.find_dup().await?.map(|d| d.dupid),
            Err(e) if e.outcome_unknown() => self.dupid = self.find_dup().await?.map(|d| d.dupid),
            Ok(r) => {
                return Err(Stop::Fail(format!(
                    "add duplication: {} {}",
                    r.err,
                    r.hint.unwrap_or_default()
                )))
            }
            Err(e) => return Err(Stop::Fail(format!("add duplication: {e}"))),
        }
        let dupid = self
            .dupid
            .ok_or_else(|| Stop::Fail("the duplication did not appear after adding it".into()))?;
        self.journal("duplicate", "outcome", json!({"dupid": dupid}))?;
        self.ctx.events.emit(
            &self.m.table,
            "wait",
            "duplicate",
            format!("added duplication {dupid} to {}", self.m.to),
        );
        Ok(())
    }

    async fn checkpoint(&mut self) -> StepResult {
        let deadline = Instant::now() + self.ctx.opts.checkpoint_timeout;
        let what = format!("duplication of {} to reach DS_LOG", self.m.table);
        let this = &*self;
        wait_until(&what, deadline, this.ctx.opts.poll, || async move {
            match this.find_dup().await {
                Ok(Some(d)) if d.status == DuplicationStatus::DS_LOG => Ok(Some(())),
                Ok(Some(d)) if d.status == DuplicationStatus::DS_PAUSE => {
                    Err("the duplication was paused".to_string())
                }
                Ok(Some(d)) => Err(format!("status {}", d.status)),
                Ok(None) => Err("the duplication disappeared".to_string()),
                Err(e) => Err(format!("{e:?}")),
            }
        })
        .await
        .map(drop)
        .map_err(|e| Stop::Abort(e.to_string()))
    }

    /// The table's lag now; `Err` says why it is not known in this poll.
    async fn lag_now(&self) -> Result<i64, String> {
        let d = self
            .find_dup()
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("the duplication disappeared")?;
        let prim = Primaries::read(self.src, &self.m.table)
            .await
            .map_err(|e| e.to_string())?;
        let parts = progress::read(
            &self.ctx.replica,
            &prim,
            Some(d.dupid),
            self.ctx.opts.probe_timeout * 4,
        )
        .await;
        progress::lag(&d, prim.partition_count, &parts).ok_or_else(|| {
            let unknown: Vec<String> = parts
                .iter()
                .zip(&prim.parts)
                .filter_map(|(k, p)| match k {
                    progress::Known::Unknown(why) => Some(format!("{} ({why})", p.pidx)),
                    progress::Known::Yes(_) => None,
                })
                .collect();
            format!("lag unknown: partitions {}", unknown.join(", "))
        })
    }

    /// A cut-over of this table begins on its source cluster (the speed-up starts here, so
    /// that it is in force by the block).
    pub(super) async fn begin_cutover(&mut self) {
        if !self.in_cutover {
            self.in_cutover = true;
            self.source
                .begin(&self.ctx.replica, &self.ctx.journal)
                .await;
        }
    }

    async fn catch_up(&mut self) -> StepResult {
        self.begin_cutover().await;
        let deadline = Instant::now() + self.ctx.opts.catch_up_timeout;
        let threshold = i64::try_from(self.m.threshold).unwrap_or(i64::MAX);
        let what = format!("lag of {} to fall to {threshold}", self.m.table);
        let this = &*self;
        let last = std::sync::Mutex::new(None::<(Instant, i64)>);
        wait_until(&what, deadline, this.ctx.opts.poll, || async {
            let lag = this.lag_now().await?;
            let now = Instant::now();
            let mut prev = last.lock().expect("lag sample lock");
            let eta = prev.and_then(|(t, l)| {
                super::events::eta(l, lag, now.duration_since(t).as_secs_f64(), threshold)
            });
            if prev.is_none_or(|(t, _)| now.duration_since(t) >= Duration::from_secs(1)) {
                this.ctx.events.progress(
                    &this.m.table,
                    "catch_up",
                    lag,
                    eta,
                    format!("lag {lag}, threshold {threshold}"),
                );
                *prev = Some((now, lag));
            }
            Ok::<_, String>((lag <= threshold).then_some(()))
        })
        .await
        .map_err(|e| Stop::Abort(e.to_string()))
    }

    async fn finish(&mut self, remove_duplication: bool) -> StepResult {
        if remove_duplication {
            if let Some(d) = self.find_dup().await? {
                self.before_removal(d.dupid).await?;
                self.journal("finish", "intent", json!({"remove_duplication": d.dupid}))?;
                super::failpoint::hit("remove_duplication", "before");
                let removed = self
                    .src
                    .modify_duplication(&self.m.table, d.dupid, DuplicationStatus::DS_REMOVED)
                    .await;
                super::failpoint::hit("remove_duplication", "after");
                match removed {
                    Ok(()) => {}
                    Err(e) if e.is(err::OBJECT_NOT_FOUND) => {}
                    Err(e) => {
                        return Err(Stop::Operator(format!(
                            "migrated, but removing duplication {}: {e}",
                            d.dupid
                        )))
                    }
                }
            }
        }
        self.journal("finish", "outcome", json!({"migrated": true}))
    }

    /// The duplication is removed only once every primary is seen telling clients to move
    /// (`reconfig*all`, so nothing new can be written there) and every partition has shipped
    /// all but, on 2.5, its unshippable trailing empty write.
    async fn before_removal(&self, dupid: i32) -> StepResult {
        let sync = self.source.sync_bound();
        let until =
            Instant::now() + sync * 2 + self.ctx.opts.probe_timeout * 4 + Duration::from_secs(1);
        let mut tally = super::evidence::Tally::default();
        let told = self
            .poller()
            .until_every_partition(
                super::evidence::Awaited::ClientsToldToMove,
                Instant::now(),
                until,
                &mut tally,
            )
            .await;
        if !told {
            return Err(Stop::Operator(format!(
                "migrated, but the duplication is kept: reconfig*all is not yet seen on partitions {} of {}; run apply again to remove it",
                tally.describe_missing(),
                self.m.from
            )));
        }
        let tail = i64::from(!self.source.master);
        let wait = self.source.group_check * 2 + Duration::from_secs(2);
        let what = format!(
            "every partition of {} shipped before removing the duplication",
            self.m.table
        );
        wait_until(&what, Instant::now() + wait, self.ctx.opts.poll, || async {
            let prim = Primaries::read(self.src, &self.m.table)
                .await
                .map_err(|e| e.to_string())?;
            let parts = progress::read(
                &self.ctx.replica,
                &prim,
                Some(dupid),
                self.ctx.opts.probe_timeout * 4,
            )
            .await;
            let shipped = parts.iter().all(|p| {
                p.value()
                    .and_then(|p| p.counters)
                    .is_some_and(|c| c.not_duplicated <= tail)
            });
            Ok::<_, String>(shipped.then_some(()))
        })
        .await
        .map_err(|e| {
            Stop::Operator(format!(
                "migrated, but the duplication is kept: {e}; run apply again to remove it"
            ))
        })
    }

    /// Ends the run at `kind` with `stop`, restoring writes first if this run blocked them and
    /// the switch has not been sent.
    async fn stopped(&mut self, kind: StepKind, stop: Stop) -> Outcome {
        let name = step_name(kind);
        let restore = self.block.is_some() && !self.switch_sent;
        let (reason, mut outcome) = match stop {
            Stop::Abort(r) => (r.clone(), Outcome::Aborted { reason: r }),
            Stop::Fail(r) => (r.clone(), Outcome::Failed { reason: r }),
            Stop::Operator(r) => (r.clone(), Outcome::NeedsOperator { reason: r }),
        };
        if restore {
            match self.restore_writes().await {
                Ok(said) => {
                    let reason = format!("{reason}; {said}");
                    outcome = match outcome {
                        Outcome::NeedsOperator { .. } => Outcome::NeedsOperator { reason },
                        _ => Outcome::Aborted { reason },
                    };
                }
                Err(e) => {
                    outcome = Outcome::NeedsOperator {
                        reason: format!("{reason}; and restoring writes failed: {e}"),
                    }
                }
            }
        }
        if self.switch_sent && !matches!(outcome, Outcome::NeedsOperator { .. }) {
            // Routing may name the target while the source still blocks: half a cut-over is
            // never just an error.
            let reason = format!(
                "{reason}; the switch was sent, so writes to {} stay blocked on {}: run apply again to finish the cut-over",
                self.m.table, self.m.from
            );
            outcome = Outcome::NeedsOperator { reason };
        }
        let kind_word = if matches!(outcome, Outcome::NeedsOperator { .. }) {
            "operator"
        } else {
            "aborted"
        };
        self.ctx.events.emit(&self.m.table, kind_word, name, reason);
        outcome
    }
}
