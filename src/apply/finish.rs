//! Owns the finish step: optionally remove the duplication (only once every primary tells
//! clients to move and everything has shipped), then record the table as migrated.

use std::time::Duration;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::gate::{wait_until, TimedOut};
use super::table::{Run, StepResult, Stop};
use crate::pegasus::base::err;
use crate::pegasus::messages::duplication::DuplicationStatus;
use crate::plan::budget::synced_everywhere_within;
use crate::plan::StepKind;

/// How long after the drain a write a stalled source primary admitted before the block may
/// still commit there and need shipping. Nothing bounds it on a real server (a slow disk holds
/// the mutation unlogged, and unlogged mutations show in no reply): ten seconds is ten times the Java
/// client's default operation timeout (1 s, `ClientOptions.DEFAULT_OPERATION_TIMEOUT` in the
/// upstream java-client), so such a write's client has long since seen one.
pub const ADMITTED_SETTLE: Duration = Duration::from_secs(10);

impl Run<'_> {
    pub(super) async fn finish(&mut self, remove_duplication: bool) -> StepResult {
        // Switched: the keys the gate left were compared before the switch.
        super::exact::remove(&self.ctx.state_dir, &self.m.table);
        if remove_duplication {
            if let Some(d) = self.find_dup().await? {
                self.before_removal(d.dupid).await?;
                self.journal(Entry::Finish(entry::Finish::Intent {
                    remove_duplication: d.dupid,
                }))?;
                super::failpoint::hit("remove_duplication", "before");
                let removed = self
                    .src
                    .modify_duplication(&self.m.table, d.dupid, DuplicationStatus::DS_REMOVED)
                    .await;
                super::failpoint::hit("remove_duplication", "after");
                match removed {
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
        self.journal(Entry::Finish(entry::Finish::Outcome { migrated: true }))
    }

    /// The duplication is removed only once every primary is seen telling clients to move
    /// (`reconfig*all`, so nothing new can be written there), writes a primary admitted before
    /// the block had [`ADMITTED_SETTLE`] to land, and every partition has shipped the decree it
    /// had committed after that — on 2.5 the next empty write makes the last one shippable.
    pub(super) async fn before_removal(&self, dupid: i32) -> StepResult {
        let sync = self.source.sync_bound();
        let until = Instant::now()
            + synced_everywhere_within(sync)
            + self.ctx.opts.probe_timeout * 4
            + Duration::from_secs(1);
        let (told, tally) = self.until_clients_told(until).await;
        if !told {
            return Err(Stop::Operator(format!(
                "migrated, but the duplication is kept: reconfig*all is not yet seen on partitions {} of {}; run apply again to remove it",
                tally.describe_missing(),
                self.m.from
            )));
        }
        self.settle_admitted_writes().await;
        let wait = self.source.group_check * 2 + Duration::from_secs(2);
        let deadline = Instant::now() + wait;
        let kept = |e: TimedOut| {
            Stop::Operator(format!(
                "migrated, but the duplication is kept: {e}; run apply again to remove it"
            ))
        };
        let what = format!(
            "the last committed decree of every partition of {}",
            self.m.table
        );
        let marks = wait_until(&what, deadline, self.ctx.opts.poll, || async {
            let (_, parts) = self.progress_now(dupid).await?;
            let committed: Option<Vec<i64>> = parts
                .iter()
                .map(|p| p.value().map(|p| p.last_committed))
                .collect();
            Ok::<_, String>(committed)
        })
        .await
        .map_err(kept)?;
        let what = format!(
            "every partition of {} shipped what it had committed (decrees {marks:?})",
            self.m.table
        );
        wait_until(&what, deadline, self.ctx.opts.poll, || async {
            let (_, parts) = self.progress_now(dupid).await?;
            let shipped = parts.len() == marks.len()
                && parts.iter().zip(&marks).all(|(p, mark)| {
                    p.value()
                        .and_then(|p| p.shipped())
                        .is_some_and(|shipped| shipped >= *mark)
                });
            Ok::<_, String>(shipped.then_some(()))
        })
        .await
        .map_err(kept)
    }

    /// Waits until [`ADMITTED_SETTLE`] has passed since the drain (or from now, when this run
    /// did not drain): no reply shows a write a stalled primary admitted before the block and
    /// has not logged yet.
    async fn settle_admitted_writes(&self) {
        let from = self.drained_at.unwrap_or_else(Instant::now);
        let until = from + ADMITTED_SETTLE;
        let wait = until.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            let msg = format!(
                "waiting {:.1}s for writes a source primary admitted before the block to land before removing the duplication",
                wait.as_secs_f64()
            );
            self.ctx.events.wait(&self.m.table, StepKind::Finish, msg);
            tokio::time::sleep_until(until).await;
        }
    }
}
