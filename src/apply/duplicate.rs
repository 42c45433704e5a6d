//! Owns the duplicate step: add a checkpoint duplication of the table to its target cluster,
//! or reuse the one that exists. An unknown or silently-reusing answer is settled by asking
//! the meta which duplication exists.

use super::entry::{self, Entry};
use super::table::{Run, StepResult, Stop};
use crate::pegasus::base::err;
use crate::pegasus::messages::duplication::AddDuplicationRequest;
use crate::plan::StepKind;

impl Run<'_> {
    pub(super) async fn duplicate(&mut self) -> StepResult {
        if let Some(d) = self.find_dup().await? {
            self.dupid = Some(d.dupid);
            self.ctx.events.wait(
                &self.m.table,
                StepKind::Duplicate,
                format!("reusing duplication {} ({})", d.dupid, d.status),
            );
            return Ok(());
        }
        self.journal(Entry::Duplicate(entry::Duplicate::Intent {
            remote: self.m.to.clone(),
        }))?;
        let req = AddDuplicationRequest {
            app_name: self.m.table.clone(),
            remote_cluster_name: self.m.to.clone(),
            is_duplicating_checkpoint: Some(true),
            ..Default::default()
        };
        super::failpoint::hit("add_duplication", "before");
        let added = self.src.add_duplication(&req).await;
        super::failpoint::hit("add_duplication", "after");
        match added {
            Ok(r) if (r.err.is_ok() || r.err.is(err::DUP_EXIST)) && r.dupid > 0 => {
                self.dupid = Some(r.dupid);
            }
            // 2.5 answers ERR_OK with dupid 0 when it silently reused one; timeouts leave the
            // outcome unknown. Either way the servers know the truth.
            Ok(r) if r.err.is_ok() => self.dupid = self.find_dup().await?.map(|d| d.dupid),
            Err(e) if e.outcome_unknown() => self.dupid = self.find_dup().await?.map(|d| d.dupid),
            Ok(r) => {
                return Err(Stop::Fail(format!(
                    "add duplication: {} {}",
                    r.err,
                    r.hint.unwrap_or_default()
                )))
            }
            Err(e) => return Err(Stop::Fail(format!("add duplication: {e}"))),
        }
        let dupid = self
            .dupid
            .ok_or_else(|| Stop::Fail("the duplication did not appear after adding it".into()))?;
        self.journal(Entry::Duplicate(entry::Duplicate::Outcome { dupid }))?;
        self.ctx.events.wait(
            &self.m.table,
            StepKind::Duplicate,
            format!("added duplication {dupid} to {}", self.m.to),
        );
        Ok(())
    }
}
