//! Owns one table's run: each remaining step as an idempotent observe → act → verify, the
//! write-block deadline, and restoring writes when a cut-over is abandoned.
//!
//! # Guarantees
//! Every step re-reads the servers before acting, so it can be repeated after a crash. From
//! the moment the deny env is requested until the routing switch, `max_write_block` is a hard
//! deadline (kept across runs through the journal); any failure in that window restores writes
//! and confirms it on every primary before the table is reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::gate::wait_until;
use super::journal::now_ms;
use super::{Ctx, Outcome};
use crate::pegasus::base::err;
use crate::pegasus::envs::{DENY_ALL_RECONFIG, DENY_ENV};
use crate::pegasus::messages::duplication::{
    AddDuplicationRequest, DuplicationEntry, DuplicationStatus,
};
use crate::pegasus::meta::MetaClient;
use crate::plan::{RoutingChange, StepDetail, StepKind, TablePlan};
use crate::probe;
use crate::spec::Migration;

/// Why a step stopped the run.
#[derive(Debug)]
enum Stop {
    /// Give up this cut-over (writes are restored if blocked); a later apply resumes.
    Abort(String),
    /// An error; nothing was blocked by this run's step.
    Fail(String),
    /// An operator must act.
    Operator(String),
}

type StepResult = Result<(), Stop>;

fn fail(what: &str) -> impl Fn(crate::pegasus::Error) -> Stop + '_ {
    move |e| Stop::Fail(format!("{what}: {e}"))
}

struct Run<'a> {
    ctx: &'a Ctx,
    m: &'a Migration,
    src: &'a MetaClient,
    app_id: i32,
    partition_count: i32,
    replicas: Vec<SocketAddr>,
    dupid: Option<i32>,
    /// When the write block began (monotonic deadline base, wall-clock ms for the record).
    block: Option<(Instant, u64)>,
    switched: bool,
    /// How long writes were blocked, measured when clients were told to move.
    blocked_ms: Option<u64>,
    /// The plan resumes a block that an earlier run set (the deny env is in force).
    resumed_block: bool,
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
        app_id: 0,
        partition_count: 0,
        replicas: vec![],
        dupid: None,
        block: None,
        switched: false,
        blocked_ms: None,
        resumed_block: tp.phase == Some(StepKind::BlockWrites),
    };
    let mut permit = None;
    for step in &tp.steps {
        if *ctx.stopping.borrow() && run.block.is_none() {
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
        ctx.events.emit(
            &m.table,
            "start",
            step_name(step.kind),
            step.kind.label().to_string(),
        );
        if let Err(stop) = run.step(&step.detail).await {
            return run.stopped(step.kind, stop).await;
        }
        if step.kind == StepKind::Switch {
            drop(permit.take());
        }
    }
    let write_block_ms = run.blocked_ms;
    ctx.events
        .emit(&m.table, "done", "finish", "migrated".into());
    Outcome::Done { write_block_ms }
}

fn step_name(kind: StepKind) -> &'static str {
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

    fn journal(&self, step: &str, event: &str, detail: serde_json::Value) -> StepResult {
        self.ctx
            .journal
            .record(&self.m.table, step, event, detail)
            .map_err(|e| Stop::Fail(format!("cannot write the journal: {e}")))
    }

    async fn preflight(&mut self) -> StepResult {
        let cfg = self
            .src
            .query_config(&self.m.table)
            .await
            .map_err(fail("source table"))?;
        self.app_id = cfg.app_id;
        self.partition_count = cfg.partition_count;
        let nodes = self
            .src
            .list_nodes()
            .await
            .map_err(fail("list replica servers"))?;
        self.replicas = nodes.iter().filter_map(|n| n.node.to_socket()).collect();
        self.dupid = self.find_dup().await?.map(|d| d.dupid);
        Ok(())
    }

    async fn find_dup(&self) -> Result<Option<DuplicationEntry>, Stop> {
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
        match self.src.add_duplication(&req).await {
            Ok(r) if (r.err.is_ok() || r.err.is(err::DUP_EXIST)) && r.dupid > 0 => {
                self.dupid = Some(r.dupid)
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

    async fn lag_now(&self) -> Result<i64, String> {
        let d = self
            .find_dup()
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("the duplication disappeared")?;
        probe::lag(&self.ctx.replica, &self.replicas, self.app_id, &d)
            .await
            .map_err(|e| e.to_string())
    }

    async fn catch_up(&mut self) -> StepResult {
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

    /// Deadline of the write block.
    fn block_deadline(&self) -> Instant {
        self.block
            .map_or_else(Instant::now, |(start, _)| start + self.m.max_write_block)
    }

    async fn block_writes(&mut self) -> StepResult {
        let value = self.m.block_mode.deny_value();
        // A resumed run keeps the deadline of the block the journal shows still in force.
        // Only a run that resumes an interrupted block (the env is still set) keeps the old
        // block's deadline; a fresh block starts its own clock.
        let started_ms = if self.resumed_block {
            self.ctx
                .journal
                .open_block_start_ms(&self.m.table)
                .unwrap_or_else(now_ms)
        } else {
            now_ms()
        };
        let elapsed = Duration::from_millis(now_ms().saturating_sub(started_ms));
        self.journal("block_writes", "intent", json!({"env": DENY_ENV, "after": value, "max_write_block_ms": self.m.max_write_block.as_millis() as u64}))?;
        self.block = Some((
            Instant::now()
                .checked_sub(elapsed)
                .unwrap_or_else(Instant::now),
            started_ms,
        ));
        if elapsed >= self.m.max_write_block {
            return Err(Stop::Abort(
                "the write block from an earlier run passed max_write_block".into(),
            ));
        }
        self.src
            .set_app_envs(&self.m.table, &[(DENY_ENV, value)])
            .await
            .map_err(|e| Stop::Abort(format!("set {DENY_ENV}: {e}")))?;
        let what = format!(
            "{DENY_ENV}={value} in force on every primary of {}",
            self.m.table
        );
        let first_seen_ms = self
            .confirm_block(&what, value)
            .await
            .map_err(Stop::Abort)?;
        let detail = json!({"first_applied_ms": first_seen_ms, "confirmed_ms": now_ms(), "started_ms": started_ms});
        self.journal("block_writes", "outcome", detail)?;
        self.ctx.events.emit(
            &self.m.table,
            "wait",
            "block_writes",
            format!("writes blocked ({value}) and confirmed on every primary"),
        );
        Ok(())
    }

    /// Waits until every primary applied the block; returns when the first one did (clients of
    /// that primary are blocked from then on, since replicas sync envs on their own phases).
    async fn confirm_block(&self, what: &str, value: &str) -> Result<u64, String> {
        self.confirm_env(what, value, self.block_deadline()).await
    }

    /// Waits until every primary applied `value` for the deny env by `deadline`; returns when
    /// the first primary had.
    async fn confirm_env(&self, what: &str, value: &str, deadline: Instant) -> Result<u64, String> {
        let ctx = self.ctx;
        let first = std::sync::Mutex::new(None::<u64>);
        wait_until(what, deadline, ctx.opts.poll, || async {
            let primaries = probe::primaries(self.src, &self.m.table).await?;
            let applied =
                probe::applied_env(&ctx.replica, &primaries, &self.m.table, DENY_ENV).await?;
            let on = applied
                .iter()
                .filter(|(_, v)| v.as_deref() == Some(value))
                .count();
            let mut first = first.lock().expect("first-seen lock");
            if on > 0 && first.is_none() {
                *first = Some(now_ms());
            }
            Ok::<_, crate::pegasus::Error>((on == applied.len()).then_some(()))
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(first
            .into_inner()
            .expect("first-seen lock")
            .unwrap_or_else(now_ms))
    }

    /// Waits until every primary of the table has applied `value` for the deny env.
    async fn wait_env(
        &self,
        what: &str,
        value: Option<&str>,
        deadline: Instant,
    ) -> Result<(), String> {
        let ctx = self.ctx;
        wait_until(what, deadline, ctx.opts.poll, || async {
            let primaries = probe::primaries(self.src, &self.m.table).await?;
            let applied =
                probe::applied_env(&ctx.replica, &primaries, &self.m.table, DENY_ENV).await?;
            Ok::<_, crate::pegasus::Error>(
                applied
                    .iter()
                    .all(|(_, v)| v.as_deref() == value)
                    .then_some(()),
            )
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn drain(&mut self) -> StepResult {
        let dupid = self
            .dupid
            .ok_or_else(|| Stop::Abort("no duplication to drain".into()))?;
        let what = format!(
            "every partition of {} shipped to {}",
            self.m.table, self.m.to
        );
        let this = &*self;
        let want = usize::try_from(this.partition_count).unwrap_or(0);
        wait_until(
            &what,
            this.block_deadline(),
            this.ctx.opts.poll,
            || async move {
                let p = probe::primaries_progress(
                    &this.ctx.replica,
                    &this.replicas,
                    this.app_id,
                    dupid,
                )
                .await?;
                Ok::<_, crate::pegasus::Error>(
                    (p.partitions == want && p.not_duplicated == 0).then_some(()),
                )
            },
        )
        .await
        .map_err(|e| Stop::Abort(format!("{e}; writes are being restored")))?;
        let since_block = self.block.map(|(_, ms)| now_ms().saturating_sub(ms));
        self.journal(
            "drain",
            "outcome",
            json!({"drained_after_block_ms": since_block}),
        )
    }

    async fn switch(&mut self, routing: Option<&RoutingChange>) -> StepResult {
        match (routing, &self.ctx.zk) {
            (Some(change), Some(zk)) => self.compare_and_set(zk, change).await?,
            (None, Some(_)) => {} // already switched by an earlier run
            (_, None) => self.manual_switch().await?,
        }
        self.switched = true;
        self.reconfig_source().await
    }

    async fn compare_and_set(
        &mut self,
        zk: &crate::routing::zk::Zk,
        c: &RoutingChange,
    ) -> StepResult {
        if Instant::now() >= self.block_deadline() && self.block.is_some() {
            return Err(Stop::Abort(
                "max_write_block passed before the switch".into(),
            ));
        }
        self.journal(
            "switch",
            "intent",
            json!({"path": c.path, "version": c.version, "before": c.before, "after": c.after}),
        )?;
        let result = zk
            .compare_and_set(&c.path, c.version, c.after.as_bytes())
            .await;
        let switched = match result {
            Ok(Ok(_)) => true,
            Ok(Err(_)) => false,
            // Outcome unknown: the node itself says whether the switch happened.
            Err(e) if e.outcome_unknown() => zk
                .read(&c.path)
                .await
                .ok()
                .flatten()
                .is_some_and(|(d, _)| d == c.after.as_bytes()),
            Err(e) => return Err(Stop::Abort(format!("switch {}: {e}", c.path))),
        };
        if !switched {
            let now = zk.read(&c.path).await.ok().flatten();
            let who = now.map_or_else(
                || "deleted".to_string(),
                |(d, v)| format!("{} at version {v}", String::from_utf8_lossy(&d)),
            );
            return Err(Stop::Abort(format!(
                "routing node {} was changed by someone else since it was read at version {} (now {who}); nothing was switched",
                c.path, c.version
            )));
        }
        self.journal(
            "switch",
            "outcome",
            json!({"path": c.path, "after": c.after}),
        )
    }

    /// Without meta-proxy: tell the operator what to switch and wait for them, within the
    /// write-block deadline; without a terminal, restore writes and stop for the operator.
    async fn manual_switch(&mut self) -> StepResult {
        let target = self
            .ctx
            .spec
            .clusters
            .get(&self.m.to)
            .map(|c| c.meta.join(","))
            .unwrap_or_default();
        let instruction = format!(
            "point the clients of {} at cluster {} (meta servers {target}); writes to {} are blocked until then",
            self.m.table, self.m.to, self.m.from
        );
        if !self.ctx.opts.interactive {
            return Err(Stop::Operator(format!("manual cut-over needed: {instruction}; run apply in a terminal to be guided through it")));
        }
        eprintln!(
            "\n[{}] {instruction}.\nType 'switched' when done (deadline in {:?}):",
            self.m.table,
            self.block_deadline()
                .saturating_duration_since(Instant::now())
        );
        let answer = tokio::time::timeout_at(self.block_deadline(), read_line()).await;
        match answer {
            Ok(Some(line)) if line.trim() == "switched" => {
                self.journal("switch", "outcome", json!({"manual": true}))
            }
            _ => Err(Stop::Operator(format!(
                "no confirmation before the write-block deadline: {instruction}"
            ))),
        }
    }

    /// `reconfig*all` on the source so clients re-resolve; retried, since routing has moved.
    async fn reconfig_source(&mut self) -> StepResult {
        let deadline = Instant::now() + Duration::from_secs(30);
        let src = self.src;
        let table = &self.m.table;
        let set = wait_until(
            "reconfig*all on the source",
            deadline,
            self.ctx.opts.poll,
            || async {
                src.set_app_envs(table, &[(DENY_ENV, DENY_ALL_RECONFIG)])
                    .await
                    .map(Some)
            },
        )
        .await;
        if let Err(e) = set {
            return Err(Stop::Operator(format!(
                "routing points at {} but {e}: set {DENY_ENV}={DENY_ALL_RECONFIG} on {} of {} by hand",
                self.m.to, table, self.m.from
            )));
        }
        let block_ms = self.block.map(|(_, ms)| now_ms().saturating_sub(ms));
        self.blocked_ms = block_ms;
        self.journal(
            "switch",
            "reconfigured",
            json!({"env": DENY_ENV, "after": DENY_ALL_RECONFIG, "write_block_ms": block_ms}),
        )?;
        let measured = block_ms
            .map(|ms| format!("; writes were blocked for {ms} ms"))
            .unwrap_or_default();
        self.ctx.events.emit(
            table,
            "wait",
            "switch",
            format!("clients switched to {}{measured}", self.m.to),
        );
        Ok(())
    }

    /// Waits (bounded, informational) until every primary of the source applied `reconfig*all`,
    /// i.e. every client is now told to re-resolve; records when.
    async fn await_reconfig_applied(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let applied = self
            .confirm_env(
                "reconfig*all applied on every primary",
                DENY_ALL_RECONFIG,
                deadline,
            )
            .await;
        let detail = match &applied {
            Ok(first) => json!({"applied": true, "first_applied_ms": first}),
            Err(e) => json!({"applied": false, "why": e}),
        };
        let _ = self.journal("finish", "reconfig_applied", detail);
    }

    async fn finish(&mut self, remove_duplication: bool) -> StepResult {
        if self.switched {
            self.await_reconfig_applied().await;
        }
        if remove_duplication {
            if let Some(d) = self.find_dup().await? {
                self.journal("finish", "intent", json!({"remove_duplication": d.dupid}))?;
                match self
                    .src
                    .modify_duplication(&self.m.table, d.dupid, DuplicationStatus::DS_REMOVED)
                    .await
                {
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

    /// Ends the run at `kind` with `stop`, restoring writes first if this run blocked them and
    /// routing has not moved.
    async fn stopped(&mut self, kind: StepKind, stop: Stop) -> Outcome {
        let name = step_name(kind);
        let restore = self.block.is_some() && !self.switched;
        let (reason, mut outcome) = match stop {
            Stop::Abort(r) => (r.clone(), Outcome::Aborted { reason: r }),
            Stop::Fail(r) => (r.clone(), Outcome::Failed { reason: r }),
            Stop::Operator(r) => (r.clone(), Outcome::NeedsOperator { reason: r }),
        };
        if restore {
            match self.restore_writes().await {
                Ok(()) if matches!(outcome, Outcome::Failed { .. }) => {
                    outcome = Outcome::Aborted {
                        reason: reason.clone(),
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    outcome = Outcome::NeedsOperator {
                        reason: format!("{reason}; and restoring writes failed: {e}"),
                    }
                }
            }
        }
        let kind_word = if matches!(outcome, Outcome::NeedsOperator { .. }) {
            "operator"
        } else {
            "aborted"
        };
        self.ctx.events.emit(&self.m.table, kind_word, name, reason);
        outcome
    }

    async fn restore_writes(&mut self) -> Result<(), String> {
        let _ = self.journal("block_writes", "restore_intent", json!({"env": DENY_ENV}));
        let deadline = Instant::now() + self.ctx.opts.restore_timeout;
        let src = self.src;
        let table = &self.m.table;
        wait_until(
            "the deny env to be deleted",
            deadline,
            self.ctx.opts.poll,
            || async { src.del_app_envs(table, &[DENY_ENV]).await.map(Some) },
        )
        .await
        .map_err(|e| {
            format!(
                "{e}: delete {DENY_ENV} on {table} of {} by hand",
                self.m.from
            )
        })?;
        self.wait_env("writes restored on every primary", None, deadline)
            .await?;
        let block_ms = self.block.map(|(_, ms)| now_ms().saturating_sub(ms));
        let _ = self.journal(
            "block_writes",
            "restored",
            json!({"write_block_ms": block_ms}),
        );
        self.ctx.events.emit(
            table,
            "wait",
            "block_writes",
            format!("writes restored after {} ms", block_ms.unwrap_or(0)),
        );
        self.block = None;
        Ok(())
    }
}

async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok().map(|_| line)
    })
    .await
    .ok()
    .flatten()
}
