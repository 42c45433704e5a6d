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

/// How long a duplication may stay in DS_PREPARE with its follower already on the target: the
/// meta moves to DS_APP as soon as its create is answered (one ZooKeeper write later).
const PREPARE_STUCK: Duration = Duration::from_secs(30);

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
        let seen = wait_until(&what, deadline, this.ctx.opts.idle_poll(), || async {
            match this.find_dup().await {
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
