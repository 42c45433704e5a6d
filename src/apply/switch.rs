//! Owns the switch: the compare-and-set of the routing node (or the operator's manual
//! switch), the check that every listed meta-proxy serves the target, and `reconfig*all` on
//! the source with the evidence that every primary tells clients to move.
//!
//! From the moment the compare-and-set is sent, this run never lifts the block on the
//! source: only a definite conflict (the node was changed by someone else and does not name
//! the target) proves nothing switched.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::block::SYNC_MARGIN;
use super::evidence::{Awaited, Tally};
use super::gate::wait_until;
use super::journal::now_ms;
use super::table::{Run, StepResult, Stop};
use crate::pegasus::envs::{DENY_ALL_RECONFIG, DENY_ENV};
use crate::plan::RoutingChange;
use crate::probe::proxies::{self, ProxyAnswer};
use crate::routing::zk::Zk;
use crate::routing::Route;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Run<'_> {
    pub(super) async fn switch(&mut self, routing: Option<&RoutingChange>) -> StepResult {
        match (routing, &self.ctx.zk) {
            (Some(change), Some(zk)) => self.compare_and_set(zk, change).await?,
            (None, Some(_)) => self.switch_sent = true, // switched by an earlier run
            (_, None) => self.manual_switch().await?,
        }
        if self.ctx.zk.is_some() {
            self.verify_proxies().await?;
        }
        self.reconfig_source().await
    }

    async fn compare_and_set(&mut self, zk: &Zk, c: &RoutingChange) -> StepResult {
        if let Some(b) = self.block.filter(|b| Instant::now() >= b.give_up_at) {
            let _ = b;
            return Err(Stop::Abort(
                "the write-block budget ran out before the switch".into(),
            ));
        }
        self.journal(
            "switch",
            "intent",
            json!({"path": c.path, "version": c.version, "before": c.before, "after": c.after}),
        )?;
        self.switch_sent = true;
        let result = zk
            .compare_and_set(&c.path, c.version, c.after.as_bytes())
            .await;
        let names_target =
            |data: &[u8]| Route::parse(data).is_ok_and(|r| r.cluster_name == self.m.to);
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => {
                // Conflict or unknown outcome: the node itself says whether clients moved.
                let now = zk.read(&c.path).await;
                match now {
                    Ok(Some((data, _))) if names_target(&data) => {}
                    Ok(now) if matches!(result, Ok(Err(_))) => {
                        self.switch_sent = false;
                        let who = now.map_or_else(
                            || "deleted".to_string(),
                            |(d, v)| format!("{} at version {v}", String::from_utf8_lossy(&d)),
                        );
                        return Err(Stop::Abort(format!(
                            "routing node {} was changed by someone else since it was read at version {} (now {who}); nothing was switched",
                            c.path, c.version
                        )));
                    }
                    other => {
                        let read = match other {
                            Ok(Some((d, v))) => {
                                format!("it reads {} at version {v}", String::from_utf8_lossy(&d))
                            }
                            Ok(None) => "it is deleted".into(),
                            Err(e) => format!("it cannot be read: {e}"),
                        };
                        return Err(Stop::Operator(format!(
                            "the switch of {} may or may not have happened ({read}); writes to {} stay blocked on {}. Check the node: if it names {}, run apply again; if not, set it back to {} and run `migrator abort`",
                            c.path, self.m.table, self.m.from, self.m.to, c.before
                        )));
                    }
                }
            }
        }
        self.journal(
            "switch",
            "outcome",
            json!({"path": c.path, "after": c.after}),
        )
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
        let give_up = self.block.map_or_else(Instant::now, |b| b.give_up_at);
        eprintln!(
            "\n[{}] {instruction}.\nType 'switched' when done (deadline in {:?}):",
            self.m.table,
            give_up.saturating_duration_since(Instant::now())
        );
        let answer = tokio::time::timeout_at(give_up, read_line()).await;
        match answer {
            Ok(Some(line)) if line.trim() == "switched" => {
                self.switch_sent = true;
                self.journal("switch", "outcome", json!({"manual": true}))
            }
            _ => Err(Stop::Operator(format!(
                "no confirmation before the write-block deadline: {instruction}"
            ))),
        }
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
                let _ = self.journal("switch", "proxies", json!({"serve_target": mp.addresses}));
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
        let _ = self.journal("switch", "proxies", json!({"not_serving_target": wrong}));
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
        let sync = self.source.sync_bound();
        let wait_until_at =
            Instant::now() + sync * 2 + self.ctx.opts.probe_timeout * 2 + SYNC_MARGIN;
        let mut tally = Tally::default();
        let told = self
            .poller()
            .until_every_partition(
                Awaited::ClientsToldToMove,
                Instant::now(),
                wait_until_at,
                &mut tally,
            )
            .await;
        let started = self.block.map(|b| b.started);
        let end = if told { tally.last_seen() } else { None };
        let block_ms = started.map(|s| {
            ms(end
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(s))
        });
        self.blocked_ms = block_ms;
        self.journal(
            "switch",
            "reconfigured",
            json!({"env": DENY_ENV, "after": DENY_ALL_RECONFIG, "write_block_ms": block_ms,
                   "told_every_primary": told, "at_ms": now_ms()}),
        )?;
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
                "clients switched to {}; {DENY_ENV}={DENY_ALL_RECONFIG} is set on the meta, replicas apply it at their next config sync (within {:.0}s); not yet seen on partitions {}{measured} so far",
                self.m.to,
                sync.as_secs_f64(),
                tally.describe_missing()
            )
        };
        self.ctx.events.emit(table, "wait", "switch", msg);
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

async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok().map(|_| line)
    })
    .await
    .ok()
    .flatten()
}
