//! Owns `migrator show [PATH] [--format text|json|markdown]`: print a saved plan.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::render::json::PlanDocument;

/// Flags of `migrator show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The saved plan.
    #[arg(default_value = super::plan::DEFAULT_PLAN_PATH)]
    pub path: PathBuf,
    #[command(flatten)]
    pub view: super::PlanView,
}

/// Prints the saved plan.
///
/// # Errors
/// The file is missing or not a plan of this tool.
pub fn run(args: &Args) -> Result<Exit> {
    let bytes = std::fs::read(&args.path).map_err(|e| Error::Io {
        path: args.path.clone(),
        source: e,
    })?;
    let saved = crate::plan::file::from_bytes(&bytes).map_err(|e| Error::PlanFile {
        path: args.path.clone(),
        source: e,
    })?;
    let doc = PlanDocument::of_saved(&saved);
    super::print_plan(&doc, &args.view)?;
    Ok(Exit::Success)
}
