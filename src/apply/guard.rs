//! Owns a run's side of the block record: opening it before the deny env is set (or taking
//! over an earlier run's, with its deadline), starting the guardian, moving it to
//! `SwitchSent` before the switch and on to `Switched` and `Done`, and lifting through it so
//! that apply and the guardian never both decide how a block ends.

use super::entry::{self, Entry};
use super::guardian;
use super::table::{Run, Stop};
use crate::cutover::protocol::{self, Adopt};
use crate::cutover::record::{BlockRecord, BlockState, Lift, RecordStore, RoutingRef, Transition};
use crate::plan::budget::ms;
use crate::routing::Route;

/// What `open` found.
pub(super) struct Opened {
    pub record: BlockRecord,
    /// The record existed: its block (and deadline) carry over.
    pub resumed: bool,
}

/// The note apply writes when it moves a record to `SwitchSent`.
const SWITCHING: &str = "apply: switching";

/// How long a new guardian may take to read the record and announce itself.
const GUARDIAN_READY: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an earlier block's guardian may take to stop once told: a round of lift calls,
/// or its ZooKeeper session's timeout if it died without removing its announcement.
const GUARDIAN_RETIRE: std::time::Duration = crate::routing::zk::SESSION_TIMEOUT
    .saturating_add(crate::plan::budget::LIFT_CALLS)
    .saturating_add(std::time::Duration::from_secs(2));

impl Run<'_> {
    /// A new record for a block starting at `started_ms` (the shared clock).
    fn fresh_record(
        &self,
        value: &str,
        reserve: std::time::Duration,
        started_ms: u64,
    ) -> BlockRecord {
        let deadline_ms = started_ms + ms(self.m.max_write_block);
        let routing = self.ctx.spec.metaproxy.as_ref().map(|mp| RoutingRef {
            zookeeper: mp.zookeeper.clone(),
            path: crate::routing::node_path(&mp.root, &self.m.table),
        });
        BlockRecord {
            source_cluster: self.m.from.clone(),
            source_metas: self.src.metas().iter().map(ToString::to_string).collect(),
            target_cluster: self.m.to.clone(),
            table: self.m.table.clone(),
            app_id: self.app_id.unwrap_or(0),
            deny_value: value.into(),
            started_ms,
            deadline_ms,
            give_up_ms: deadline_ms.saturating_sub(ms(reserve)),
            state: BlockState::Blocking,
            owner: format!("{} pid {}", super::journal::operator(), crate::clock::pid()),
            note: String::new(),
            routing,
            fence: None,
            fence_epoch: None,
            exact_keys: self.exact_pending,
            superseded: false,
        }
    }

    /// Opens the block record before the deny env is set: a new one, or an earlier run's
    /// still-open block (whose deadline holds, whichever host set it).
    pub(super) async fn open_record(
        &mut self,
        value: &str,
        reserve: std::time::Duration,
    ) -> Result<Opened, Stop> {
        let store = self.ctx.record_store(self.m);
        self.record = Some(store.clone());
        let fail =
            |e: crate::cutover::record::RecordError| Stop::Abort(format!("block record: {e}"));
        // Times in the record are ZooKeeper's: another host may resume or guard this block.
        let clock = store.clock().await.map_err(fail)?;
        self.clock = clock;
        for _ in 0..3 {
            let (record, version) = match store.read().await.map_err(fail)? {
                None => (self.fresh_record(value, reserve, clock.now_ms()), None),
                Some((r, v)) => match self.adopt(&store, r).await? {
                    Some(r) => {
                        return Ok(Opened {
                            record: r,
                            resumed: true,
                        })
                    }
                    // Retiring the old block's guardian rewrote the record: its version now.
                    None => {
                        let now = store.read().await.map_err(fail)?.map_or(v, |(_, v)| v);
                        (self.fresh_record(value, reserve, clock.now_ms()), Some(now))
                    }
                },
            };
            if store.put(&record, version).await.map_err(fail)?.is_some() {
                return Ok(Opened {
                    record,
                    resumed: false,
                });
            }
        }
        Err(Stop::Abort(format!(
            "the block record {} keeps changing under this run",
            store.describe()
        )))
    }

    /// An existing record: its open block to resume, or `None` when it is over and a new one
    /// may replace it.
    async fn adopt(
        &self,
        store: &RecordStore,
        r: BlockRecord,
    ) -> Result<Option<BlockRecord>, Stop> {
        let fail =
            |e: crate::cutover::record::RecordError| Stop::Abort(format!("block record: {e}"));
        let value = self.m.block_mode.deny_value();
        let manual = self.ctx.zk.is_none();
        let routing = match r.state {
            BlockState::SwitchSent if !manual => self.routing_now().await?,
            _ => None,
        };
        // Routing that names the target, or the earlier switch's marker (it committed, and
        // routing was moved back since), means the switch may have carried writes over.
        let may_have_committed = routing
            .as_ref()
            .is_some_and(|(names_target, _)| *names_target)
            || (r.state == BlockState::SwitchSent
                && !manual
                && guardian::switch_committed(store, &r).await != Some(false));
        match protocol::adopt(r.state, r.deny_value == value, manual, may_have_committed) {
            Adopt::ResumeWithNewValue => {
                // The block mode changed: the record must name the value this run sets, or
                // every lift would take it for someone else's.
                let note = format!("apply: block mode changed to {value}");
                match store
                    .modify(BlockState::Blocking, None, |r| {
                        r.deny_value = value.to_string();
                        r.note = note;
                    })
                    .await
                    .map_err(fail)?
                {
                    Transition::Done(r, _) => Ok(Some(r)),
                    _ => Err(Stop::Abort("the block record changed; run apply again".into())),
                }
            }
            Adopt::Resume => Ok(Some(r)),
            Adopt::Replace => {
                self.retire_guardian(store, r).await?;
                Ok(None)
            }
            Adopt::FinishLiftThenReplace => {
                // Lifting proves the switch was never sent: finish the lift, then start anew.
                guardian::finish_lift(store, &r)
                    .await
                    .map_err(|e| Stop::Abort(format!("finishing an earlier lift: {e}")))?;
                let lifted = store.read().await.map_err(fail)?.map(|(r, _)| r);
                if let Some(r) = lifted {
                    self.retire_guardian(store, r).await?;
                }
                Ok(None)
            }
            // Without meta-proxy a person switches clients: no fence proves they did not.
            Adopt::Operator if manual && r.state == BlockState::SwitchSent => Err(Stop::Operator(format!(
                "the block record ({}) says the operator was asked to switch the clients of {}; the block stays. If they were not switched, run `migrator abort --not-switched`; if they were, confirm by running apply again after setting {} = reconfig*all on {}",
                store.describe(), self.m.table, crate::pegasus::envs::DENY_ENV, self.m.from
            ))),
            Adopt::RevertDeadSwitch => {
                // This run holds the lock, so the earlier run's session (and the lock node its
                // switch was fenced on) is gone: that switch can no longer happen.
                let note = "apply: the earlier run's switch did not happen and cannot any more";
                let path = self.routing_path();
                let guard = path.as_deref().zip(routing.map(|(_, v)| v));
                match store
                    .modify(BlockState::SwitchSent, guard, |r| {
                        r.state = BlockState::Blocking;
                        r.note = note.into();
                    })
                    .await
                    .map_err(|e| Stop::Abort(format!("block record: {e}")))?
                {
                    Transition::Done(r, _) => Ok(Some(r)),
                    _ => Err(Stop::Abort("the block record changed; run apply again".into())),
                }
            }
            Adopt::Operator => Err(Stop::Operator(format!(
                "the block record {} says {:?} but routing was not switched by this run; check the routing node, then run apply again",
                store.describe(),
                r.state
            ))),
        }
    }

    /// Before an ended block is replaced: tells its guardian to stop (the record says
    /// superseded), waits until its announcement is gone, then a lift call more, so that no
    /// delete of the deny env it sent can land in the new block.
    async fn retire_guardian(&self, store: &RecordStore, r: BlockRecord) -> Result<(), Stop> {
        if r.state == BlockState::Lifted && !r.superseded {
            let state = r.state;
            let marked = store
                .modify(state, None, |r| r.superseded = true)
                .await
                .map_err(|e| Stop::Abort(format!("block record: {e}")))?;
            if !matches!(marked, Transition::Done(..)) {
                return Err(Stop::Abort(
                    "the block record changed while this run replaced it; run apply again".into(),
                ));
            }
        }
        let until = tokio::time::Instant::now() + GUARDIAN_RETIRE;
        // Not knowing (ZooKeeper did not answer) counts as still running.
        while guardian::any_announced(store, r.started_ms).await != Some(false) {
            if tokio::time::Instant::now() >= until {
                return Err(Stop::Abort(format!(
                    "a guardian of the earlier block ({}) is still running after {GUARDIAN_RETIRE:?}; nothing was blocked, run apply again",
                    guardian::marker(store, r.started_ms, 0)
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(crate::plan::budget::LIFT_CALL).await;
        Ok(())
    }

    /// The routing node of this table, with meta-proxy.
    fn routing_path(&self) -> Option<String> {
        let mp = self.ctx.spec.metaproxy.as_ref()?;
        Some(crate::routing::node_path(&mp.root, &self.m.table))
    }

    /// Whether the routing node names the target now, and its version (`None`: no node or
    /// no meta-proxy).
    async fn routing_now(&self) -> Result<Option<(bool, i32)>, Stop> {
        let (Some(zk), Some(path)) = (&self.ctx.zk, self.routing_path()) else {
            return Ok(None);
        };
        let node = zk
            .read(&path)
            .await
            .map_err(|e| Stop::Abort(format!("read {path}: {e}")))?;
        Ok(node.map(|(d, v)| {
            let names = Route::parse(&d).is_ok_and(|r| r.cluster_name == self.m.to);
            (names, v)
        }))
    }

    /// Whether an earlier run left this table's block open.
    pub(super) async fn has_open_block(&self) -> bool {
        let store = self.ctx.record_store(self.m);
        matches!(store.read().await, Ok(Some((r, _))) if matches!(r.state, BlockState::Blocking | BlockState::SwitchSent | BlockState::Lifting))
    }

    /// Starts the guardian of the open record and waits until it announces that it read the
    /// record; without that, no write is blocked (or the block is lifted again).
    pub(super) async fn start_guardian(&self) -> Result<(), Stop> {
        let store = self.record.as_ref().expect("opened before");
        let log = self
            .ctx
            .state_dir
            .join("guardians")
            .join(format!("{}.{}.log", self.m.from, self.m.table));
        let started_ms = self.block.map_or(0, |b| b.started_ms);
        guardian::forget_announcement(store, started_ms);
        let pid = guardian::spawn(store, &log).map_err(|e| {
            Stop::Abort(format!(
                "cannot start the guardian that ends the block if apply dies: {e}"
            ))
        })?;
        self.journal(Entry::BlockWrites(entry::Block::Guardian {
            pid,
            record: store.describe(),
            log: log.display().to_string(),
        }))?;
        let until = tokio::time::Instant::now() + GUARDIAN_READY;
        while guardian::any_announced(store, started_ms).await != Some(true) {
            if tokio::time::Instant::now() >= until {
                return Err(Stop::Abort(format!(
                    "the guardian (pid {pid}) did not announce itself within {GUARDIAN_READY:?}; see {}",
                    log.display()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Moves the record from `Blocking` to `SwitchSent`; returns its new version, or why the
    /// switch must not be sent.
    pub(super) async fn record_switch_sent(&self) -> Result<Option<i32>, Stop> {
        let Some(store) = &self.record else {
            return Ok(None);
        };
        let fence = self.ctx.fences.get(&self.m.table).cloned();
        let t = match store
            .modify(BlockState::Blocking, None, |r| {
                r.state = BlockState::SwitchSent;
                r.note = SWITCHING.into();
                r.fence = fence.as_ref().map(|f| f.lock.clone());
                r.fence_epoch = fence.map(|f| (f.epoch, f.epoch_version));
            })
            .await
        {
            Ok(t) => t,
            Err(e) => {
                // The write may have landed: no switch was sent, so take it back if it did.
                let back = store
                    .transition(
                        BlockState::SwitchSent,
                        BlockState::Blocking,
                        "apply: no switch was sent",
                    )
                    .await;
                let settled = matches!(back, Ok(Transition::Done(..) | Transition::Lost(_)));
                return Err(if settled {
                    Stop::Abort(format!("block record: {e}; nothing was switched"))
                } else {
                    Stop::Operator(format!(
                        "block record: {e}; nothing was switched, but the record may say SwitchSent: check {} and run `migrator abort`",
                        store.describe()
                    ))
                });
            }
        };
        match t {
            Transition::Done(_, v) => Ok(Some(v)),
            Transition::Lost(r) if matches!(r.state, BlockState::Lifting | BlockState::Lifted) => {
                Err(Stop::Abort(format!(
                    "the write block was lifted before the switch ({}); nothing was switched",
                    r.note
                )))
            }
            Transition::Lost(r) => Err(Stop::Operator(format!(
                "the block record says {:?} ({}); nothing was switched by this run",
                r.state, r.note
            ))),
            Transition::Missing => Err(Stop::Abort(
                "the block record disappeared; nothing was switched".into(),
            )),
        }
    }

    /// Moves the record (the block itself is already decided), trying a few times: a record
    /// left behind keeps a guardian watching until it finds out on its own.
    pub(super) async fn record_state(&self, from: BlockState, to: BlockState, note: &str) {
        let Some(store) = &self.record else {
            return;
        };
        for attempt in 0..3u32 {
            match store.transition(from, to, note).await {
                Ok(Transition::Done(..) | Transition::Lost(_) | Transition::Missing) => return,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200) * (attempt + 1)).await;
                }
            }
        }
    }

    /// Lifts the block through the record: only from `Blocking` and only while routing names
    /// the source, so never after a switch may have happened. `Ok(Err(why))`: the block must
    /// stay; `Err`: not done this time (try again).
    pub(super) async fn lift_through_record(
        &self,
        note: &str,
    ) -> Result<Result<(), String>, String> {
        let Some(store) = &self.record else {
            return Err("no block record".into());
        };
        let routing = self
            .ctx
            .spec
            .metaproxy
            .as_ref()
            .map(|mp| crate::routing::node_path(&mp.root, &self.m.table));
        let began = store
            .begin_lift(routing.as_deref(), &self.m.from, note)
            .await
            .map_err(|e| e.to_string())?;
        let t = match began {
            Lift::Began(t) => *t,
            Lift::RoutingElsewhere(names) => {
                return Ok(Err(format!(
                    "routing names {} now, not {}: the block on {} stays",
                    names.as_deref().unwrap_or("nothing"),
                    self.m.from,
                    self.m.from
                )))
            }
        };
        let lifted = match t {
            Transition::Done(record, _) => {
                super::failpoint::hit("delete_deny", "before");
                guardian::finish_lift(store, &record).await?;
                super::failpoint::hit("delete_deny", "after");
                Ok(())
            }
            // Someone (maybe this run, earlier) is lifting or lifted: make sure the delete was
            // sent; both are idempotent.
            Transition::Lost(r) if r.state == BlockState::Lifting => {
                guardian::finish_lift(store, &r).await
            }
            Transition::Lost(r) if r.state == BlockState::Lifted => guardian::lift(&r).await,
            // Still blocking: routing moved between the read and the transaction; look again.
            Transition::Lost(r) if r.state == BlockState::Blocking => {
                Err("routing changed while lifting".into())
            }
            Transition::Lost(r) => {
                return Ok(Err(format!(
                    "the block record says {:?}: a switch may have happened, so the block stays",
                    r.state
                )))
            }
            Transition::Missing => return Ok(Err("the block record disappeared".into())),
        };
        lifted.map(Ok)
    }
}
