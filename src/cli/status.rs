//! Owns `migrator status FILE [--watch]`: each table's phase and lag, and its write block as
//! the block record tells it (state, deadline, who), once or every 2 s.

use std::path::PathBuf;
use std::time::Duration;

use std::path::Path;

use crate::apply::journal::now_ms;
use crate::apply::record::{BlockRecord, BlockState, RecordStore};
use crate::error::Result;
use crate::exit::Exit;
use crate::observe::{observe, ObserveOptions};
use crate::plan::{Action, StepDetail};

/// Flags of `migrator status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (YAML).
    pub file: PathBuf,
    /// Print again every 2 seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
}

/// Prints where each table stands.
///
/// # Errors
/// An invalid plan file or an unreachable cluster.
pub async fn run(args: &Args) -> Result<Exit> {
    let spec = crate::spec::load(&args.file)?;
    let zk = crate::observe::zookeeper(&spec, Duration::from_secs(10)).await?;
    loop {
        let observed = observe(&spec, ObserveOptions::default()).await?;
        let plan = crate::plan::plan(&spec, &observed);
        for t in &plan.tables {
            let lag = t.steps.iter().find_map(|s| match &s.detail {
                StepDetail::CatchUp { lag: Some(l), .. } => Some(format!(", lag {l}")),
                _ => None,
            });
            let state = match t.action {
                Action::Done => "done".to_string(),
                Action::Migrate => "not started".to_string(),
                Action::Resume => format!(
                    "at {}{}",
                    t.phase.map_or("?", |p| p.label()),
                    lag.unwrap_or_default()
                ),
                Action::Blocked => format!(
                    "blocked: {}",
                    t.blockers
                        .iter()
                        .map(|b| b.reason.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            crate::say!("{}: {} → {}: {state}", t.table, t.from, t.to);
            if let Some(m) = spec.migrations.iter().find(|m| m.table == t.table) {
                let store = RecordStore::of(&spec, zk.as_ref(), Path::new(".migrator"), m);
                if let Ok(Some((r, _))) = store.read().await {
                    if let Some(line) = describe_block(&r) {
                        crate::say!("    {line}");
                    }
                }
            }
        }
        if !args.watch {
            return Ok(Exit::Success);
        }
        crate::say!();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One line about a block that is not over, from its record.
fn describe_block(r: &BlockRecord) -> Option<String> {
    let now = now_ms();
    let secs = |ms: u64| format!("{:.0}s", Duration::from_millis(ms).as_secs_f64());
    let since = secs(now.saturating_sub(r.started_ms));
    match r.state {
        BlockState::Blocking if now < r.deadline_ms => Some(format!(
            "writes blocked ({}) for {since} by {}; deadline in {}: unless switched, its guardian lifts the block in {}",
            r.deny_value,
            r.owner,
            secs(r.deadline_ms - now),
            secs(r.give_up_ms.saturating_sub(now))
        )),
        BlockState::Blocking => Some(format!(
            "writes blocked ({}) past the deadline by {}: the guardian did not lift it; check {} and run `migrator abort`",
            r.deny_value,
            secs(now - r.deadline_ms),
            r.source_cluster
        )),
        BlockState::SwitchSent | BlockState::Switched => Some(format!(
            "routing switch {} ({}); writes stay blocked on {} until apply sets reconfig*all",
            if r.state == BlockState::Switched { "done" } else { "sent" },
            r.note,
            r.source_cluster
        )),
        BlockState::Lifting => Some(format!("the block is being lifted ({})", r.note)),
        BlockState::Done | BlockState::Lifted => None,
    }
}
