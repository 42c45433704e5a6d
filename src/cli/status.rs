//! Owns `migrator status FILE [--watch]`: each table's phase and lag, and its write block as
//! the block record and the source meta's deny env tell it (state, deadline, who), once or
//! every 2 s.
//!
//! A record alone does not mean writes are blocked: apply writes it before it sets the deny
//! env, so a run killed between the two leaves a record over a table that takes writes.

use std::path::PathBuf;
use std::time::Duration;

use std::path::Path;

use crate::apply::journal::now_ms;
use crate::cutover::record::{BlockRecord, BlockState, RecordStore};
use crate::error::Result;
use crate::exit::Exit;
use crate::observe::{observe, ObserveOptions};
use crate::pegasus::envs::DENY_ENV;
use crate::plan::observed::Observed;
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
                    let deny = source_deny_env(&observed, &t.table);
                    if let Some(line) = describe_block(&r, deny, now_ms()) {
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

/// The source table's `replica.deny_client_request` as its meta holds it, when set.
fn source_deny_env<'a>(observed: &'a Observed, table: &str) -> Option<&'a str> {
    let source = observed.tables.get(table)?.source.as_ref()?;
    source.envs.get(DENY_ENV).map(String::as_str)
}

fn secs(ms: u64) -> String {
    format!("{:.0}s", Duration::from_millis(ms).as_secs_f64())
}

/// One line about a block that is not over, from its record and the source's deny env
/// (`deny`) at `now` (ms since the epoch).
fn describe_block(r: &BlockRecord, deny: Option<&str>, now: u64) -> Option<String> {
    let since = secs(now.saturating_sub(r.started_ms));
    match (r.state, deny) {
        (BlockState::Blocking, None) => Some(open_record_without_deny(r, now)),
        (BlockState::Blocking, Some(deny)) if now < r.deadline_ms => Some(format!(
            "writes blocked ({deny}) for {since} by {}; deadline in {}: unless switched, its guardian lifts the block in {}",
            r.owner,
            secs(r.deadline_ms - now),
            secs(r.give_up_ms.saturating_sub(now))
        )),
        (BlockState::Blocking, Some(deny)) => Some(format!(
            "writes blocked ({deny}) past the deadline by {}: the guardian did not lift it; check {} and run `migrator abort`",
            secs(now - r.deadline_ms),
            r.source_cluster
        )),
        (BlockState::SwitchSent | BlockState::Switched, _) => Some(format!(
            "routing switch {} ({}); writes stay blocked on {} until apply sets reconfig*all",
            if r.state == BlockState::Switched { "done" } else { "sent" },
            r.note,
            r.source_cluster
        )),
        (BlockState::Lifting, _) => Some(format!("the block is being lifted ({})", r.note)),
        (BlockState::Done | BlockState::Lifted, _) => None,
    }
}

/// A `Blocking` record whose deny env the source meta does not hold: the run that wrote it
/// stopped before setting the env (or the env was deleted by hand), so writes are taken.
fn open_record_without_deny(r: &BlockRecord, now: u64) -> String {
    let until = if now < r.give_up_ms {
        format!(
            "unless an apply resumes it, its guardian closes the record in {}",
            secs(r.give_up_ms - now)
        )
    } else {
        "the guardian did not close it; run `migrator abort` to close it".to_string()
    };
    format!(
        "block record open ({} by {}, {} ago), deny env not set on {}: writes are taken; {until}",
        r.deny_value,
        r.owner,
        secs(now.saturating_sub(r.started_ms)),
        r.source_cluster
    )
}
