//! Owns the checkpoint step: wait until the duplication has shipped its checkpoint and
//! replays the log (DS_LOG); a paused or vanished duplication stops the run.

use tokio::time::Instant;

use super::gate::wait_until;
use super::table::{Run, StepResult, Stop};
use crate::pegasus::messages::duplication::DuplicationStatus;

impl Run<'_> {
    pub(super) async fn checkpoint(&mut self) -> StepResult {
        let deadline = Instant::now() + self.ctx.opts.checkpoint_timeout;
        let what = format!("duplication of {} to reach DS_LOG", self.m.table);
        let this = &*self;
        wait_until(&what, deadline, this.ctx.opts.idle_poll(), || async move {
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
}
