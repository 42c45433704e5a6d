//! Owns the catch-up step: wait until every primary's duplicator ships and the table's
//! duplication lag (from the primaries' live counters) is at most its threshold, reporting the
//! lag and an ETA. The source cluster's config-sync speed-up begins here, so that it is in
//! force by the block.
//!
//! A primary starts shipping at its own server's first duplication sync after the meta's
//! DS_LOG, up to a sync period (10 s) later; a block taken before then drains that much longer
//! than the budget's estimate, which assumes every primary ships (measured on real 2.5.0: a
//! block 0.25 s after DS_LOG drained in 9.8 s against 8 s planned).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::gate::wait_until;
use super::table::{Run, StepResult, Stop};
use crate::plan::StepKind;
use crate::probe::progress;

/// The table's duplication as one poll saw it.
#[derive(Debug)]
pub(super) struct Lag {
    /// Mutations not yet shipped, summed over the partitions.
    pub total: i64,
    /// Partitions whose primary's duplicator does not ship yet.
    pub not_shipping: Vec<i32>,
}

impl Lag {
    /// Whether a block may begin: every primary ships and the lag is within `threshold`.
    pub(super) fn ready(&self, threshold: i64) -> bool {
        self.not_shipping.is_empty() && self.total <= threshold
    }

    /// The lag, and the partitions not shipping yet; `explain` adds why they may not.
    fn describe(&self, threshold: i64, explain: bool) -> String {
        let lag = format!("lag {}, threshold {threshold}", self.total);
        if self.not_shipping.is_empty() {
            return lag;
        }
        let parts: Vec<String> = self.not_shipping.iter().map(i32::to_string).collect();
        let why = if explain {
            " (each primary starts at its server's first duplication sync after DS_LOG, up to 10 s on real servers)"
        } else {
            ""
        };
        format!(
            "{lag}; waiting for partitions {} to start shipping{why}",
            parts.join(", ")
        )
    }
}

impl Run<'_> {
    /// The table's lag now; `Err` says why it is not known in this poll.
    pub(super) async fn lag_now(&self) -> Result<Lag, String> {
        let d = self
            .find_dup()
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("the duplication disappeared")?;
        let (prim, parts) = self.progress_now(d.dupid).await?;
        let not_shipping = progress::not_shipping(&parts)
            .into_iter()
            .filter_map(|i| prim.parts.get(i).map(|p| p.pidx))
            .collect();
        let total = progress::lag(&d, prim.partition_count, &parts).ok_or_else(|| {
            let unknown: Vec<String> = parts
                .iter()
                .zip(&prim.parts)
                .filter_map(|(k, p)| match k {
                    progress::Known::Unknown(why) => Some(format!("{} ({why})", p.pidx)),
                    progress::Known::Yes(_) => None,
                })
                .collect();
            format!("lag unknown: partitions {}", unknown.join(", "))
        })?;
        Ok(Lag {
            total,
            not_shipping,
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
        // The progress lines say once why a partition may not ship yet.
        let explained = std::sync::atomic::AtomicBool::new(false);
        wait_until(&what, deadline, this.ctx.opts.idle_poll(), || async {
            let seen = this.lag_now().await?;
            let lag = seen.total;
            let waiting_to_ship =
                (!seen.not_shipping.is_empty()).then(|| seen.describe(threshold, true));
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
                    seen.describe(
                        threshold,
                        !seen.not_shipping.is_empty() && !explained.swap(true, Relaxed),
                    ),
                );
                *prev = Some((now, lag));
            }
            if let Some(why) = waiting_to_ship {
                // Not "not yet" but why: a timeout names it.
                return Err(why);
            }
            Ok::<_, String>(seen.ready(threshold).then_some(()))
        })
        .await
        .map_err(|e| Stop::Abort(e.to_string()))
    }
}
