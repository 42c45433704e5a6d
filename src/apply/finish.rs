//! Owns the finish step: optionally remove the duplication (only once every primary tells
//! clients to move and everything has shipped), then record the table as migrated.

use std::time::Duration;

use tokio::time::Instant;

use super::entry::{self, Entry};
use super::gate::wait_until;
use super::table::{Run, StepResult, Stop};
use crate::pegasus::base::err;
use crate::pegasus::messages::duplication::DuplicationStatus;

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
    /// (`reconfig*all`, so nothing new can be written there) and every partition has shipped
    /// all but, on 2.5, its unshippable trailing empty write.
    pub(super) async fn before_removal(&self, dupid: i32) -> StepResult {
        let sync = self.source.sync_bound();
        let until =
            Instant::now() + sync * 2 + self.ctx.opts.probe_timeout * 4 + Duration::from_secs(1);
        let (told, tally) = self.until_clients_told(until).await;
        if !told {
            return Err(Stop::Operator(format!(
                "migrated, but the duplication is kept: reconfig*all is not yet seen on partitions {} of {}; run apply again to remove it",
                tally.describe_missing(),
                self.m.from
            )));
        }
        let tail = i64::from(!self.source.master);
        let wait = self.source.group_check * 2 + Duration::from_secs(2);
        let what = format!(
            "every partition of {} shipped before removing the duplication",
            self.m.table
        );
        wait_until(&what, Instant::now() + wait, self.ctx.opts.poll, || async {
            let (_, parts) = self.progress_now(dupid).await?;
            let shipped = parts.iter().all(|p| {
                p.value()
                    .and_then(|p| p.counters)
                    .is_some_and(|c| c.not_duplicated <= tail)
            });
            Ok::<_, String>(shipped.then_some(()))
        })
        .await
        .map_err(|e| {
            Stop::Operator(format!(
                "migrated, but the duplication is kept: {e}; run apply again to remove it"
            ))
        })
    }
}
