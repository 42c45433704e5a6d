//! Owns the switch: the compare-and-set of the routing node (or the operator's manual
//! switch), the check that every listed meta-proxy serves the target, and `reconfig*all` on
//! the source with the evidence that every primary tells clients to move.
//!
//! Before the compare-and-set is sent the block record moves to `SwitchSent`, so the guardian
//! can no longer lift the block; the compare-and-set checks that record version and this
//! run's lock node in the same transaction (a run that lost its ZooKeeper session cannot
//! switch). From then on the block is lifted only when the node proves nothing switched: a
//! definite conflict, or an unknown outcome re-read on the same session as the old version.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::block::SYNC_MARGIN;
use super::entry::{self, Entry};
use super::gate::wait_until;
use super::journal::now_ms;
use super::table::{Run, StepResult, Stop};
use crate::cutover::protocol::{self, SwitchReading};
use crate::cutover::record::BlockState;
use crate::pegasus::envs::{DENY_ALL_RECONFIG, DENY_ENV};
use crate::plan::budget::{
    ms, synced_everywhere_within, SWITCH_CALL, SWITCH_RESERVE, SWITCH_RESOLVE,
};
use crate::plan::{RoutingChange, StepKind};
use crate::probe::proxies::{self, ProxyAnswer};
use crate::routing::zk::Zk;
use crate::routing::Route;

impl Run<'_> {
    /// Whether the block leaves the switch its worst case — the transaction and resolving an
    /// unknown outcome — before the restore must start, so a switch that did not commit still
    /// leaves writes to be taken again by the deadline.
    fn time_for_the_switch(&self) -> StepResult {
        match self.block {
            Some(b) if Instant::now() > b.switch_by() => Err(Stop::Abort(format!(
                "too little of the write-block budget is left to send the switch and learn its outcome ({}s); nothing was switched",
                SWITCH_RESERVE.as_secs()
            ))),
            _ => Ok(()),
        }
    }

    pub(super) async fn switch(&mut self, routing: Option<&RoutingChange>) -> StepResult {
        if self.record.is_none() {
            // Resumed after the block: the earlier run's record moves on from here.
            self.record = Some(self.ctx.record_store(self.m));
        }
        match (routing, &self.ctx.zk) {
            (Some(change), Some(zk)) => self.compare_and_set(zk, change).await?,
            (None, Some(_)) => {
                // Switched by an earlier run.
                self.switch_sent = true;
                self.record_state(
                    BlockState::SwitchSent,
                    BlockState::Switched,
                    "apply: routing names the target",
                )
                .await;
            }
            (_, None) => self.manual_switch().await?,
        }
        if self.ctx.zk.is_some() {
            self.verify_proxies().await?;
        }
        self.reconfig_source().await
    }

    async fn compare_and_set(&mut self, zk: &Zk, c: &RoutingChange) -> StepResult {
        self.block_still_in_force().await?;
        self.exact_check().await?;
        self.time_for_the_switch()?;
        let zk = &zk.with_call_timeout(SWITCH_CALL);
        self.journal(Entry::Switch(entry::Switch::Intent {
            path: c.path.clone(),
            version: c.version,
            before: c.before.clone(),
            after: c.after.clone(),
        }))?;
        // The record says SwitchSent before anything is sent: the guardian can no longer lift
        // the block, and the switch is fenced on that record version and on this run's lock.
        let record_version = self.record_switch_sent().await?;
        let mut guards: Vec<(&str, i32)> = Vec::new();
        let mut marker = None;
        if let (Some(v), Some(crate::cutover::record::RecordStore::Zk { path, .. })) =
            (record_version, &self.record)
        {
            guards.push((path.as_str(), v));
            let started_ms = self.block.map_or(0, |b| b.started_ms);
            marker = Some(crate::cutover::record::switch_marker(path, started_ms));
        }
        if let Some(fence) = self.ctx.fences.get(&self.m.table) {
            guards.extend(fence.guards());
        }
        if let Err(stop) = self.time_for_the_switch() {
            // The record write ate the time: nothing was sent, so the record goes back.
            self.not_switched("apply: too little time left to switch")
                .await;
            return Err(stop);
        }
        self.switch_sent = true;
        super::failpoint::hit("switch", "before");
        let result = zk
            .compare_and_set_guarded(
                &c.path,
                c.version,
                c.after.as_bytes(),
                &guards,
                marker.as_deref(),
            )
            .await;
        super::failpoint::hit("switch", "after");
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(conflict)) => self.after_conflict(zk, c, &conflict).await?,
            Err(e) => self.resolve_unknown(zk, c, &e.to_string()).await?,
        }
        self.record_state(
            BlockState::SwitchSent,
            BlockState::Switched,
            "apply: routing switched",
        )
        .await;
        self.journal(Entry::Switch(entry::Switch::Outcome {
            path: c.path.clone(),
            after: c.after.clone(),
        }))
    }

    /// Probes every primary once more right before the switch is sent: a block seen in force
    /// earlier may have been lifted since (a late delete of the deny env, a new primary).
    async fn block_still_in_force(&mut self) -> StepResult {
        let Some(block) = self.block else {
            return Ok(());
        };
        let awaited = super::evidence::Awaited::WritesBlocked {
            mode: self.m.block_mode,
            settled: false,
        };
        // A failed read of the primaries is no evidence either way: try again within the budget.
        // A partition whose evidence was voided (its primary took a write) is not retried:
        // writes since the drain's baseline may not have shipped.
        for _ in 0..3 {
            let mut tally = std::mem::take(&mut self.tally);
            let held = self
                .poller()
                .poll_once(awaited, block.settled_at, &mut tally)
                .await;
            self.tally = tally;
            if held {
                return Ok(());
            }
            if !self.tally.complete() || Instant::now() + self.ctx.opts.poll >= block.drain_by() {
                break;
            }
            tokio::time::sleep(self.ctx.opts.poll).await;
        }
        Err(Stop::Abort(format!(
            "right before the switch, the write block was not seen in force on every primary; nothing was switched; partitions without evidence: {}",
            self.tally.describe_missing()
        )))
    }

    /// The multi failed as a whole, so it wrote nothing; a node that names the target anyway
    /// was switched by someone else, which counts as switched.
    async fn after_conflict(
        &mut self,
        zk: &Zk,
        c: &RoutingChange,
        conflict: &crate::routing::zk::CasConflict,
    ) -> StepResult {
        let why = conflict.to_string();
        let now = zk.read(&c.path).await;
        let read = now.as_ref().ok().map(|node| {
            let names_target = node.as_ref().is_some_and(|(d, _)| self.names_target(d));
            (names_target, false)
        });
        match protocol::switch_reading(true, read) {
            SwitchReading::Switched => return Ok(()),
            SwitchReading::Unknown => return self.resolve_unknown(zk, c, &why).await,
            SwitchReading::Unchanged => {}
        }
        self.not_switched("apply: the switch was refused").await;
        let who = now.ok().flatten().map_or_else(
            || "deleted".to_string(),
            |(d, v)| format!("{} at version {v}", String::from_utf8_lossy(&d)),
        );
        Err(Stop::Abort(match conflict {
            crate::routing::zk::CasConflict::Guard { path } => format!(
                "the switch was refused: {path} no longer fences this run (its ZooKeeper session lost the lock, or the block record moved on); nothing was switched"
            ),
            _ => format!(
                "routing node {} was changed by someone else since it was read at version {} (now {who}); nothing was switched",
                c.path, c.version
            ),
        }))
    }

    /// The outcome is unknown: re-read the node (on this session, which orders the read after
    /// the multi) until it tells, within a bound; then stop with the block kept.
    async fn resolve_unknown(&mut self, zk: &Zk, c: &RoutingChange, why: &str) -> StepResult {
        let until = Instant::now() + SWITCH_RESOLVE;
        let mut last = why.to_string();
        while Instant::now() < until {
            let node = zk.read(&c.path).await;
            let read = node.as_ref().ok().map(|node| match node {
                Some((data, v)) => (
                    self.names_target(data),
                    *v == c.version && data == c.before.as_bytes(),
                ),
                None => (false, false),
            });
            match protocol::switch_reading(false, read) {
                SwitchReading::Switched => return Ok(()),
                SwitchReading::Unchanged => {
                    // A read may be stale; the record moves back only in one transaction with a
                    // check that routing is still at the old version, linearized at the leader.
                    if self.not_switched_guarded(&c.path, c.version).await {
                        return Err(Stop::Abort(format!(
                            "the switch of {} did not happen ({why}); nothing was switched",
                            c.path
                        )));
                    }
                }
                SwitchReading::Unknown => match node {
                    Ok(other) => {
                        last = format!(
                            "it reads {}",
                            other.map_or_else(
                                || "nothing (deleted)".into(),
                                |(d, v)| format!("{} at version {v}", String::from_utf8_lossy(&d))
                            )
                        );
                        break;
                    }
                    Err(e) => last = e.to_string(),
                },
            }
            tokio::time::sleep(self.ctx.opts.poll * 4).await;
        }
        Err(Stop::Operator(format!(
            "the switch of {} may or may not have happened ({last}); writes to {} stay blocked on {}. If the node names {}, run apply again; if it still names {}, run `migrator abort`",
            c.path, self.m.table, self.m.from, self.m.to, self.m.from
        )))
    }

    fn names_target(&self, data: &[u8]) -> bool {
        Route::parse(data).is_ok_and(|r| r.cluster_name == self.m.to)
    }

    /// Moves the record back to `Blocking` only if the routing node is still at `version`;
    /// whether it did.
    async fn not_switched_guarded(&mut self, path: &str, version: i32) -> bool {
        let Some(store) = self.record.clone() else {
            return false;
        };
        let back = store
            .modify(BlockState::SwitchSent, Some((path, version)), |r| {
                r.state = BlockState::Blocking;
                r.note = "apply: the switch did not happen".into();
            })
            .await;
        let moved = matches!(back, Ok(crate::cutover::record::Transition::Done(..)));
        if moved {
            self.switch_sent = false;
        }
        moved
    }

    /// Nothing was switched after all (the transaction failed as a whole): the block may be
    /// lifted again.
    async fn not_switched(&mut self, note: &str) {
        self.switch_sent = false;
        self.record_state(BlockState::SwitchSent, BlockState::Blocking, note)
            .await;
    }

    /// Without meta-proxy: tell the operator what to switch and wait for them, within the
    /// write-block budget; without a terminal, stop for the operator.
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
        // From the moment the instruction is shown, the clients may move: the block is never
        // lifted automatically after this.
        self.record_switch_sent().await?;
        self.switch_sent = true;
        let give_up = self.block.map_or_else(Instant::now, |b| b.deadline);
        let expected = format!("switched {}", self.m.table);
        let unconfirmed = || {
            Stop::Operator(format!(
                "no '{expected}' before the write-block deadline: {instruction}. The block on {} stays, since the clients may have moved. If they were not switched, run `migrator abort --not-switched --table {}`; if they were, run apply again and answer",
                self.m.from, self.m.table
            ))
        };
        // One prompt at a time: each answer names its table.
        let Ok(_turn) = tokio::time::timeout_at(give_up, self.ctx.prompt.lock()).await else {
            return Err(unconfirmed());
        };
        let mut lines = self.ctx.stdin.lock().await;
        let lines = lines.get_or_insert_with(stdin_lines);
        while lines.try_recv().is_ok() {} // answers typed before this question
        self.ctx.events.wait(
            &self.m.table,
            StepKind::Switch,
            format!(
                "{instruction}. Type '{expected}' when done (deadline in {:.0}s)",
                give_up
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            ),
        );
        loop {
            match tokio::time::timeout_at(give_up, lines.recv()).await {
                Ok(Some(line)) if line.trim() == expected => break,
                Ok(Some(_)) => self.ctx.events.wait(
                    &self.m.table,
                    StepKind::Switch,
                    format!(
                        "type exactly '{expected}' once the clients use {}",
                        self.m.to
                    ),
                ),
                Ok(None) | Err(_) => return Err(unconfirmed()),
            }
        }
        self.record_state(
            BlockState::SwitchSent,
            BlockState::Switched,
            "operator: clients switched",
        )
        .await;
        self.journal(Entry::Switch(entry::Switch::Confirmed))
    }

    /// Asks every listed meta-proxy until each serves the table from the target.
    async fn verify_proxies(&self) -> StepResult {
        let Some(mp) = &self.ctx.spec.metaproxy else {
            return Ok(());
        };
        let proxies: Vec<SocketAddr> = mp.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        if proxies.is_empty() {
            return Ok(());
        }
        let target_nodes: BTreeSet<SocketAddr> = self.ctx.metas[&self.m.to]
            .list_nodes()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.node.to_socket())
            .collect();
        let deadline = Instant::now() + self.ctx.opts.proxy_timeout;
        let deadline_probe = self.ctx.opts.probe_timeout * 4;
        let mut pending = proxies.clone();
        let mut last: Vec<(SocketAddr, ProxyAnswer)> = Vec::new();
        loop {
            last.clear();
            for p in &pending {
                let answer =
                    proxies::ask(&self.ctx.proxy_pool, *p, &self.m.table, deadline_probe).await;
                last.push((*p, answer));
            }
            pending = last
                .iter()
                .filter(|(_, a)| !matches!(a, ProxyAnswer::Served(s) if !s.is_empty() && s.is_subset(&target_nodes)))
                .map(|(p, _)| *p)
                .collect();
            if pending.is_empty() {
                let _ = self.journal(Entry::Switch(entry::Switch::Proxies {
                    serve_target: mp.addresses.clone(),
                    not_serving_target: Vec::new(),
                }));
                return Ok(());
            }
            if Instant::now() + self.ctx.opts.poll >= deadline {
                break;
            }
            tokio::time::sleep(self.ctx.opts.poll).await;
        }
        let wrong: Vec<String> = last
            .iter()
            .filter(|(p, _)| pending.contains(p))
            .map(|(p, a)| format!("{p} {}", describe(a, &target_nodes)))
            .collect();
        let _ = self.journal(Entry::Switch(entry::Switch::Proxies {
            serve_target: Vec::new(),
            not_serving_target: wrong.clone(),
        }));
        Err(Stop::Operator(format!(
            "routing of {} names {}, but meta-proxy {}; writes to {} stay blocked on {} and `reconfig*all` was not set. Restart those meta-proxy instances (a lost ZooKeeper watch keeps a stale route; a build from the 2021 code cannot relay a 2.6 cluster and must be replaced), then run apply again: it checks them and finishes the switch",
            self.m.table, self.m.to, wrong.join("; "), self.m.table, self.m.from
        )))
    }

    /// `reconfig*all` on the source so clients re-resolve, then waits (bounded) until every
    /// primary refuses the probe read: from then on every client is told to move.
    async fn reconfig_source(&mut self) -> StepResult {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (src, table) = (self.src, &self.m.table);
        let set = wait_until(
            "reconfig*all on the source",
            deadline,
            self.ctx.opts.poll,
            || async {
                super::failpoint::hit("reconfig_all", "before");
                let set = src
                    .set_app_envs(table, &[(DENY_ENV, DENY_ALL_RECONFIG)])
                    .await;
                super::failpoint::hit("reconfig_all", "after");
                set.map(Some)
            },
        )
        .await;
        if let Err(e) = set {
            return Err(Stop::Operator(format!(
                "routing points at {} but {e}: set {DENY_ENV}={DENY_ALL_RECONFIG} on {} of {} by hand",
                self.m.to, table, self.m.from
            )));
        }
        let sync = self.source.sync_bound();
        let wait_until_at = Instant::now()
            + synced_everywhere_within(sync)
            + self.ctx.opts.probe_timeout * 2
            + SYNC_MARGIN;
        let (told, tally) = self.until_clients_told(wait_until_at).await;
        let started = self.block.map(|b| b.started);
        let end = if told { tally.last_seen() } else { None };
        let block_ms = started.map(|s| {
            ms(end
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(s))
        });
        self.blocked_ms = block_ms;
        self.record_state(
            BlockState::Switched,
            BlockState::Done,
            "apply: reconfig*all set",
        )
        .await;
        self.record_state(
            BlockState::SwitchSent,
            BlockState::Done,
            "apply: reconfig*all set",
        )
        .await;
        self.journal(Entry::Switch(entry::Switch::Reconfigured {
            env: DENY_ENV.into(),
            after: DENY_ALL_RECONFIG.into(),
            write_block_ms: block_ms,
            told_every_primary: told,
            at_ms: now_ms(),
        }))?;
        let measured = block_ms
            .map(|ms| format!("; writes were blocked for {ms} ms"))
            .unwrap_or_default();
        let msg = if told {
            format!(
                "clients switched to {}: every primary of {} tells them to move{measured}",
                self.m.to, self.m.from
            )
        } else {
            format!(
                "clients switched to {}; {DENY_ENV}={DENY_ALL_RECONFIG} is set on the meta, {}; not yet seen on partitions {}{measured} so far",
                self.m.to,
                super::evidence::not_yet_applied(sync),
                tally.describe_missing()
            )
        };
        self.ctx.events.wait(table, StepKind::Switch, msg);
        Ok(())
    }
}

fn describe(a: &ProxyAnswer, target: &BTreeSet<SocketAddr>) -> String {
    match a {
        ProxyAnswer::Served(s) if s.is_subset(target) => "serves the target".into(),
        ProxyAnswer::Served(_) => "still serves it from another cluster".into(),
        ProxyAnswer::Error(e) => format!("answers {e}"),
        ProxyAnswer::NoAnswer => "does not answer".into(),
        ProxyAnswer::Unreachable(e) => format!("is unreachable ({e})"),
    }
}

/// One reader of stdin for the whole run: a thread that sends each line on; prompts take
/// them in turn, so no orphaned read can swallow another table's answer.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    rx
}
