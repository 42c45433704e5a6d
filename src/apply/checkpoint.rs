//! Owns the checkpoint step: wait until the duplication has shipped its checkpoint and
//! replays the log (DS_LOG); a paused or vanished duplication stops the run, and so does one
//! that can never leave DS_PREPARE.
//!
//! The source meta creates the follower table with `success_if_exist = false` and moves to
//! DS_APP only on `ERR_OK` (`meta_duplication_service::create_follower_app_for_duplication`,
//! v2.5.0 and master): when the reply to its create is lost, every retry gets
//! `ERR_APP_EXIST` and the duplication stays in DS_PREPARE for good, its follower on the
//! target. Waiting on cannot help; an operator must remove it and the follower.

use std::time::Duration;

use tokio::time::Instant;

use super::gate::wait_until;
use super::table::{Run, StepResult, Stop};
use crate::pegasus::envs::follows;
use crate::pegasus::messages::apps::AppStatus;
use crate::pegasus::messages::duplication::{DuplicationEntry, DuplicationStatus};
use crate::plan::StepKind;

/// How long a duplication may stay in DS_PREPARE with its follower already on the target: the
/// meta moves to DS_APP as soon as its create is answered (one ZooKeeper write later).
const PREPARE_STUCK: Duration = Duration::from_secs(30);

/// A stage of a new duplication on its way to DS_LOG, each ended by a duplication sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The primaries flush and report their checkpoints.
    Prepare,
    /// The follower exists; the meta records it.
    FollowerCreated,
    /// The follower copies the checkpoint until healthy.
    App,
}

impl Phase {
    fn of(status: DuplicationStatus, follower: bool) -> Option<Self> {
        match status {
            DuplicationStatus::DS_PREPARE if follower => Some(Self::FollowerCreated),
            DuplicationStatus::DS_PREPARE => Some(Self::Prepare),
            DuplicationStatus::DS_APP => Some(Self::App),
            _ => None,
        }
    }
}

/// What one poll of the duplication found.
enum Seen {
    Log,
    /// Stuck for good: why, for the operator.
    Stuck(String),
}

impl Run<'_> {
    pub(super) async fn checkpoint(&mut self) -> StepResult {
        let deadline = Instant::now() + self.ctx.opts.checkpoint_timeout;
        let what = format!("duplication of {} to reach DS_LOG", self.m.table);
        let this = &*self;
        let follower_since = std::sync::Mutex::new(None::<Instant>);
        let told = std::sync::Mutex::new(None::<Phase>);
        let seen = wait_until(&what, deadline, this.ctx.opts.idle_poll(), || async {
            let found = this.find_dup().await;
            if let Ok(Some(d)) = &found {
                let phase = Phase::of(
                    d.status,
                    follower_since.lock().expect("not poisoned").is_some(),
                );
                let mut last = told.lock().expect("not poisoned");
                if phase.is_some() && *last != phase {
                    *last = phase;
                    if let Some(p) = phase {
                        this.ctx.events.wait(
                            &this.m.table,
                            StepKind::Checkpoint,
                            this.phase_text(p),
                        );
                    }
                }
            }
            match found {
                Ok(Some(d)) if d.status == DuplicationStatus::DS_LOG => Ok(Some(Seen::Log)),
                Ok(Some(d)) if d.status == DuplicationStatus::DS_PAUSE => {
                    Err("the duplication was paused".to_string())
                }
                Ok(Some(d)) if d.status == DuplicationStatus::DS_PREPARE => {
                    let exists = this.follower_exists(&d).await;
                    let since = {
                        let mut first = follower_since.lock().expect("not poisoned");
                        *first = exists.then(|| first.unwrap_or_else(Instant::now));
                        *first
                    };
                    let Some(since) = since else {
                        return Err(format!("status {}", d.status));
                    };
                    if since.elapsed() < PREPARE_STUCK {
                        return Err(format!("status {}, its follower created", d.status));
                    }
                    Ok(Some(Seen::Stuck(this.stuck_in_prepare(&d))))
                }
                Ok(Some(d)) => Err(format!("status {}", d.status)),
                Ok(None) => Err("the duplication disappeared".to_string()),
                Err(e) => Err(format!("{e:?}")),
            }
        })
        .await
        .map_err(|e| Stop::Abort(e.to_string()))?;
        match seen {
            Seen::Log => Ok(()),
            Seen::Stuck(why) => Err(Stop::Operator(why)),
        }
    }

    /// Whether the target holds the follower table of `d`, made by this source.
    async fn follower_exists(&self, d: &DuplicationEntry) -> bool {
        let name = d.remote_app_name.as_deref().unwrap_or(&self.m.table);
        let Some(target) = self.ctx.metas.get(&self.m.to) else {
            return false;
        };
        target
            .list_apps(AppStatus::AS_AVAILABLE)
            .await
            .is_ok_and(|apps| {
                apps.iter().any(|a| {
                    a.app_name == name && follows(&a.envs, &self.m.from, &self.src.metas())
                })
            })
    }

    /// What a stage waits for. The meta moves a new duplication on only at the primaries'
    /// duplication syncs (every 10 s on real servers): add → DS_LOG took 54–67 s on real
    /// 2.5.0 and master (`meta_duplication_service::duplication_sync`).
    fn phase_text(&self, phase: Phase) -> String {
        let (t, to) = (&self.m.table, &self.m.to);
        match phase {
            Phase::Prepare => "DS_PREPARE: each primary flushes a checkpoint and reports it at its server's duplication sync; the meta creates the follower at the sync after the last report (add → DS_LOG takes about five syncs, 50–60 s on real servers)".to_string(),
            Phase::FollowerCreated => format!("DS_PREPARE: the follower {t} exists on {to}; waiting for the meta to record it (DS_APP)"),
            Phase::App => format!("DS_APP: the follower {t} on {to} copies the checkpoint; the meta moves to DS_LOG at a duplication sync once every partition there has a primary and a secondary"),
        }
    }

    fn stuck_in_prepare(&self, d: &DuplicationEntry) -> String {
        let (t, from, to) = (&self.m.table, &self.m.from, &self.m.to);
        format!(
            "duplication {} of {t} has stayed in DS_PREPARE for {}s though its follower {t} exists on {to}: {from}'s meta created it, lost the reply, and its retries get ERR_APP_EXIST, so it never moves on (apache/incubator-pegasus create_follower_app_for_duplication). Remove the duplication (`remove_dup {t} {}` on {from}), drop {t} on {to} (it is the follower this duplication made), and run apply again",
            d.dupid,
            PREPARE_STUCK.as_secs(),
            d.dupid
        )
    }
}
