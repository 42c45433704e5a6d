//! Owns the catch-up step: wait until the table's duplication lag (from the primaries' live
//! counters) is at most its threshold, reporting the lag and an ETA. The source cluster's
//! config-sync speed-up begins here, so that it is in force by the block.

use std::time::Duration;

use tokio::time::Instant;

use super::gate::wait_until;
use super::table::{Run, StepResult, Stop};
use crate::plan::StepKind;
use crate::probe::progress;

impl Run<'_> {
    /// The table's lag now; `Err` says why it is not known in this poll.
    pub(super) async fn lag_now(&self) -> Result<i64, String> {
        let d = self
            .find_dup()
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("the duplication disappeared")?;
        let (prim, parts) = self.progress_now(d.dupid).await?;
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

    pub(super) async fn catch_up(&mut self) -> StepResult {
        self.begin_cutover().await;
        let deadline = Instant::now() + self.ctx.opts.catch_up_timeout;
        let threshold = i64::try_from(self.m.threshold).unwrap_or(i64::MAX);
        let what = format!("lag of {} to fall to {threshold}", self.m.table);
        let this = &*self;
        let last = std::sync::Mutex::new(None::<(Instant, i64)>);
        wait_until(&what, deadline, this.ctx.opts.idle_poll(), || async {
            let lag = this.lag_now().await?;
            let now = Instant::now();
            let mut prev = last.lock().expect("lag sample lock");
            let eta = prev.and_then(|(t, l)| {
                super::events::eta(l, lag, now.duration_since(t).as_secs_f64(), threshold)
            });
            if prev.is_none_or(|(t, _)| now.duration_since(t) >= Duration::from_secs(1)) {
                this.ctx.events.progress(
                    &this.m.table,
                    StepKind::CatchUp,
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
}
