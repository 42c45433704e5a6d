//! Owns `migrator status FILE [--watch]`: each table's phase and lag, once or every 2 s.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
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
pub async fn run(args: &Args) -> Result<u8> {
    let spec = crate::spec::load(&args.file)?;
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
            println!("{}: {} → {}: {state}", t.table, t.from, t.to);
        }
        if !args.watch {
            return Ok(0);
        }
        println!();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
