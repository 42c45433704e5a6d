//! Owns the write block: setting the deny env with a budget, waiting until every primary
//! shows it in force (`evidence`), and restoring writes when a cut-over is abandoned, saying
//! only what was observed.

use std::time::Duration;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::evidence::{Awaited, Poller, Tally};
use super::gate::wait_until;
use super::table::{Block, Run, StepResult, Stop};
use crate::pegasus::envs::DENY_ENV;
use crate::plan::budget::ms;
use crate::plan::StepKind;

pub use crate::plan::budget::{restore_reserve, SYNC_MARGIN};

impl Run<'_> {
    pub(super) fn poller(&self) -> Poller<'_> {
        Poller {
            meta: self.src,
            table: &self.m.table,
            probes: &self.ctx.probes,
            patient: &self.ctx.replica,
            probe_deadline: self.ctx.opts.probe_timeout,
            poll: self.ctx.opts.poll,
            sync: self.source.sync_bound(),
        }
    }

    /// Waits until every primary is seen telling clients to move (`reconfig*all`), or
    /// `until`; whether it was, and the evidence per partition.
    pub(super) async fn until_clients_told(&self, until: Instant) -> (bool, Tally) {
        let mut tally = Tally::default();
        let told = self
            .poller()
            .until_every_partition(
                Awaited::ClientsToldToMove,
                Instant::now(),
                until,
                &mut tally,
            )
            .await;
        (told, tally)
    }

    /// Waits (outside the block) until a lowered config-sync period is in force.
    async fn await_speed_up(&self) {
        let ready = self.source.speed_up_ready_at();
        let wait = ready.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            let msg = format!(
                "waiting {:.1}s for the lowered config sync of {} to take effect",
                wait.as_secs_f64(),
                self.m.from
            );
            self.ctx
                .events
                .wait(&self.m.table, StepKind::BlockWrites, msg);
            tokio::time::sleep_until(ready).await;
        }
    }

    /// Waits until an earlier block's lift reached every server: until every server synced
    /// since the lift, even one whose sync failed once, for the servers that hold no primary
    /// (no probe reaches them, and one promoted would still refuse writes); then until every
    /// primary takes the probe write (up to a restore's `reserve`), probed last so that a
    /// primary that moved meanwhile is asked too. A lift reaches each server only at its next
    /// config sync, and a fresh block set before that joins the two, so that server denies
    /// writes from the earlier block's start to this one's end, longer than
    /// `max_write_block` (seeds 4170, 14594; 2390: a server's sync lost after the lift, and a
    /// primary moved onto it during the wait).
    async fn await_writes_taken(&self, reserve: Duration) -> StepResult {
        self.await_lift_synced().await;
        self.await_primaries_taking_writes(reserve).await
    }

    /// Sleeps until every server synced since this table's last block record was written
    /// `Lifted` (at the period read, allowing one failed sync, plus the margin), by
    /// ZooKeeper's clock; the whole span when that clock cannot be read.
    async fn await_lift_synced(&self) {
        let store = self.ctx.record_store(self.m);
        let Some((record, written_ms)) = store.last_written().await else {
            return;
        };
        if record.state != crate::cutover::record::BlockState::Lifted {
            return;
        }
        let period =
            crate::plan::budget::synced_everywhere_within(self.source.unsped_bound()) + SYNC_MARGIN;
        let left = match store.clock().await {
            Ok(shared) => {
                let synced = written_ms.saturating_add(ms(period));
                Duration::from_millis(synced.saturating_sub(shared.now_ms()))
            }
            Err(_) => period,
        };
        if left.is_zero() {
            return;
        }
        let msg = format!(
            "waiting {:.1}s for the last block's lift to reach every server of {} (its next config sync, or the one after a failed one)",
            left.as_secs_f64(),
            self.m.from
        );
        self.ctx
            .events
            .wait(&self.m.table, StepKind::BlockWrites, msg);
        tokio::time::sleep(left).await;
    }

    /// Waits, up to `reserve`, until every primary takes the probe write.
    async fn await_primaries_taking_writes(&self, reserve: Duration) -> StepResult {
        let now = Instant::now();
        let mut tally = Tally::default();
        let taken = self
            .poller()
            .until_every_partition(Awaited::WritesRestored, now, now + reserve, &mut tally)
            .await;
        if taken {
            return Ok(());
        }
        Err(Stop::Abort(format!(
            "{} does not yet take the probe write on partitions {} (an earlier block's lift has not reached them, or its writes commit too slowly): nothing was blocked",
            self.m.from,
            tally.describe_missing()
        )))
    }

    /// Opens (or takes over) the block record, starts its guardian and sets `self.block`.
    async fn open_block(&mut self, value: &str, sync: Duration, reserve: Duration) -> StepResult {
        let opened = self.open_record(value, reserve).await?;
        let r = &opened.record;
        if opened.resumed {
            // The earlier run's gate may have left keys to compare before its switch.
            self.exact_pending = r.exact_keys;
        }
        let now = Instant::now();
        let since = |at_ms: u64| Duration::from_millis(at_ms.saturating_sub(r.started_ms));
        let elapsed = Duration::from_millis(self.clock.now_ms().saturating_sub(r.started_ms));
        let started = now.checked_sub(elapsed).unwrap_or(now);
        self.block = Some(Block {
            started,
            started_ms: r.started_ms,
            settled_at: now + sync + SYNC_MARGIN,
            give_up_at: started + since(r.give_up_ms),
            deadline: started + since(r.deadline_ms),
            exact_reserve: if self.exact_pending > 0 {
                crate::plan::budget::EXACT_CHECK
            } else {
                Duration::ZERO
            },
        });
        // Journaled once `self.block` is set: a failing write then goes through the restore,
        // which matters when an earlier run's deny env is already in force.
        self.journal(Entry::BlockWrites(entry::Block::Intent {
            env: DENY_ENV.into(),
            after: value.into(),
            max_write_block_ms: ms(self.m.max_write_block),
            sync_bound_ms: ms(sync),
            restore_reserve_ms: ms(reserve),
            started_ms: r.started_ms,
            deadline_ms: r.deadline_ms,
            resumed: opened.resumed,
        }))?;
        self.start_guardian().await
    }

    pub(super) async fn block_writes(&mut self) -> StepResult {
        if self.ctx.zk.is_none() && !self.ctx.opts.interactive {
            // Nobody could confirm a manual switch: do not block writes for nothing.
            return Err(Stop::Operator(format!(
                "manual cut-over needed: point the clients of {} at cluster {} after the drain; run apply in a terminal to be guided through it (nothing was blocked)",
                self.m.table, self.m.to
            )));
        }
        self.begin_cutover().await;
        let value = self.m.block_mode.deny_value();
        let reserve = restore_reserve(self.source.unsped_bound(), self.ctx.opts.probe_timeout);
        // An earlier run's open block gets its guardian and keeps its deadline before anything
        // here can wait or fail — its own guardian may have died with its host, and waiting
        // for the speed-up could take one old period past its give_up (seed 1737) — at the
        // period in force now; a fresh one is opened only once the speed-up is in force and
        // the re-checks passed.
        let sync = if self.has_open_block().await {
            let sync = self.source.sync_bound();
            self.open_block(value, sync, reserve).await?;
            self.recheck_before_block().await?;
            sync
        } else {
            self.await_speed_up().await;
            self.await_writes_taken(reserve).await?;
            let sync = self.source.sync_bound();
            self.recheck_before_block().await?;
            self.open_block(value, sync, reserve).await?;
            sync
        };
        let block = self.block.expect("opened above");
        if Instant::now() >= block.drain_by() {
            return Err(Stop::Abort(format!(
                "the write block from an earlier run is past its budget (max_write_block {:?} less {:?} to restore and {:?} for the switch)",
                self.m.max_write_block, reserve, crate::plan::budget::SWITCH_RESERVE
            )));
        }
        super::failpoint::hit("set_deny", "before");
        let set = self
            .src
            .set_app_envs(&self.m.table, &[(DENY_ENV, value)])
            .await;
        super::failpoint::hit("set_deny", "after");
        set.map_err(|e| Stop::Abort(format!("set {DENY_ENV}: {e}")))?;
        // Silence counts only once a full config sync has passed since the meta took the env
        // from this run; a server whose sync failed meanwhile is waited out by the span the
        // silence must then last (`silence_span`). One later still (a second failure, a meta
        // busy for long) leaves only the late-answer watch against a stalled primary.
        let settled_at = Instant::now() + sync + SYNC_MARGIN;
        if let Some(b) = self.block.as_mut() {
            b.settled_at = settled_at;
        }
        let awaited = Awaited::WritesBlocked {
            mode: self.m.block_mode,
            settled: false,
        };
        let mut tally = Tally::default();
        let seen = self
            .poller()
            .until_every_partition(awaited, settled_at, block.drain_by(), &mut tally)
            .await;
        self.tally = tally;
        if !seen {
            return Err(Stop::Abort(format!(
                "{DENY_ENV}={value} was not seen in force on every primary within the budget; partitions without evidence: {}",
                self.tally.describe_missing()
            )));
        }
        let started = block.started;
        let since = |t: Option<Instant>| t.map(|t| ms(t.saturating_duration_since(started)));
        let (first, last) = (
            since(self.tally.first_seen()),
            since(self.tally.last_seen()),
        );
        self.journal(Entry::BlockWrites(entry::Block::Outcome {
            started_ms: block.started_ms,
            first_in_force_after_ms: first,
            all_in_force_after_ms: last,
        }))?;
        let msg = format!(
            "writes blocked ({value}), in force on every primary after {} ms (the probe write was {})",
            last.unwrap_or(0),
            match self.m.block_mode {
                crate::spec::BlockMode::Reconfig => "refused",
                crate::spec::BlockMode::Timeout => "left unanswered",
            }
        );
        self.ctx
            .events
            .wait(&self.m.table, StepKind::BlockWrites, msg);
        Ok(())
    }

    /// Lifts the block through its record (never after a switch may have happened) and waits,
    /// within the block's deadline, until every primary takes the probe write again. Returns
    /// what is known, for the operator.
    pub(super) async fn restore_writes(&mut self) -> Result<String, String> {
        let _ = self.journal(Entry::BlockWrites(entry::Block::RestoreIntent {
            env: DENY_ENV.into(),
        }));
        let unsped = self.source.unsped_bound();
        let floor = Instant::now() + restore_reserve(unsped, self.ctx.opts.probe_timeout);
        let deadline = self.block.map_or(floor, |b| b.deadline.max(floor));
        let note = "apply: the cut-over was abandoned before the switch";
        wait_until(
            "the deny env to be deleted",
            deadline,
            self.ctx.opts.poll,
            || async { self.lift_through_record(note).await.map(Some) },
        )
        .await
        .map_err(|e| {
            format!(
                "{e}: delete {DENY_ENV} on {} of {} by hand if routing still names {}",
                self.m.table, self.m.from, self.m.from
            )
        })??;
        let mut tally = Tally::default();
        let restored = self
            .poller()
            .until_every_partition(
                Awaited::WritesRestored,
                Instant::now(),
                deadline,
                &mut tally,
            )
            .await;
        let started = self.block.map(|b| b.started);
        let block_ms = started.map(|s| ms(Instant::now().saturating_duration_since(s)));
        self.block = None;
        let said = if restored {
            let after = tally
                .last_seen()
                .zip(started)
                .map_or(0, |(t, s)| ms(t.saturating_duration_since(s)));
            format!("writes restored: every primary takes writes again ({after} ms after the block began)")
        } else {
            format!(
                "writes restored on the meta; {}; not yet seen on partitions {}",
                super::evidence::not_yet_applied(unsped),
                tally.describe_missing()
            )
        };
        let _ = self.journal(Entry::BlockWrites(entry::Block::Restored {
            by: entry::LiftedBy::Apply,
            write_block_ms: block_ms,
            seen_on_every_primary: Some(restored),
            said: said.clone(),
        }));
        self.ctx
            .events
            .wait(&self.m.table, StepKind::BlockWrites, said.clone());
        Ok(said)
    }
}
