//! Owns the preflight step (the source table's app id and an existing duplication) and the
//! re-checks right before writes are blocked: what the plan assumed may have changed
//! since it was made. Routing must still name the source, the deny env must be absent or a
//! block migrator itself left open (a value someone else set is never overwritten), the
//! duplication must still ship to this table on the target, and the target table must have a
//! primary for every partition.

use super::table::{fail, Run, StepResult, Stop};
use crate::cutover::record::BlockState;
use crate::pegasus::envs::DENY_ENV;
use crate::pegasus::messages::duplication::DuplicationEntry;
use crate::probe::Primaries;
use crate::routing::Route;

impl Run<'_> {
    /// Reads the source table's app id and the duplication to reuse, if any.
    pub(super) async fn preflight(&mut self) -> StepResult {
        let prim = Primaries::read(self.src, &self.m.table)
            .await
            .map_err(fail("source table"))?;
        self.app_id = Some(prim.app_id);
        self.dupid = self.find_dup().await?.map(|d| d.dupid);
        Ok(())
    }

    /// The duplication of this table to its target cluster, if there is one.
    pub(super) async fn find_dup(&self) -> Result<Option<DuplicationEntry>, Stop> {
        let resp = self
            .src
            .query_duplication(&self.m.table)
            .await
            .map_err(fail("query duplications"))?;
        Ok(resp.entry_list.into_iter().find(|e| e.remote == self.m.to))
    }

    /// Everything the plan assumed, read again right before the deny env is set.
    pub(super) async fn recheck_before_block(&self) -> StepResult {
        self.recheck_routing().await?;
        self.recheck_deny_env().await?;
        self.recheck_duplication().await?;
        self.recheck_target().await
    }

    async fn recheck_routing(&self) -> StepResult {
        let (Some(zk), Some(mp)) = (&self.ctx.zk, &self.ctx.spec.metaproxy) else {
            return Ok(());
        };
        let path = crate::routing::node_path(&mp.root, &self.m.table);
        let node = zk
            .read(&path)
            .await
            .map_err(|e| Stop::Fail(format!("read {path}: {e}")))?;
        let names = node.and_then(|(d, _)| Route::parse(&d).ok().map(|r| r.cluster_name));
        if names.as_deref() == Some(self.m.from.as_str()) {
            return Ok(());
        }
        Err(Stop::Fail(format!(
            "routing node {path} names {} now, not {}: someone moved it since the plan; plan again",
            names.as_deref().unwrap_or("nothing"),
            self.m.from
        )))
    }

    /// A deny env is ours only when an open block record of this table says so.
    async fn recheck_deny_env(&self) -> StepResult {
        let app = self
            .src
            .available_app(&self.m.table)
            .await
            .map_err(fail("list tables"))?;
        let Some(value) = app.and_then(|a| a.envs.get(DENY_ENV).cloned()) else {
            return Ok(());
        };
        let store = self.ctx.record_store(self.m);
        let ours = matches!(
            store.read().await,
            Ok(Some((r, _))) if r.state == BlockState::Blocking && r.deny_value == value
        );
        if ours {
            return Ok(());
        }
        Err(Stop::Operator(format!(
            "{DENY_ENV}={value} is set on {} and no open migrator block record says migrator set it; it is left as it is. Find out who set it and why; delete it to let the migration block writes itself",
            self.m.from
        )))
    }

    async fn recheck_duplication(&self) -> StepResult {
        let dup = self
            .find_dup()
            .await?
            .ok_or_else(|| Stop::Fail(format!("the duplication to {} is gone", self.m.to)))?;
        match dup.remote_app_name.as_deref() {
            Some(name) if !name.is_empty() && name != self.m.table => Err(Stop::Fail(format!(
                "duplication {} ships to table {name} on {}, not {}",
                dup.dupid, self.m.to, self.m.table
            ))),
            _ => Ok(()),
        }
    }

    async fn recheck_target(&self) -> StepResult {
        let meta = &self.ctx.metas[&self.m.to];
        let prim = Primaries::read(meta, &self.m.table)
            .await
            .map_err(fail("the target table"))?;
        let headless: Vec<String> = prim
            .parts
            .iter()
            .filter(|p| p.addr.is_none())
            .map(|p| p.pidx.to_string())
            .collect();
        if prim.is_complete() && headless.is_empty() {
            return Ok(());
        }
        Err(Stop::Fail(format!(
            "table {} on {} is not healthy (partitions without a primary: {})",
            self.m.table,
            self.m.to,
            if headless.is_empty() {
                "incomplete configuration".into()
            } else {
                headless.join(", ")
            }
        )))
    }
}
