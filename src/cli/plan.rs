//! Owns `migrator plan FILE`: load the spec, observe the clusters and routing, plan, render,
//! and save the plan (default `.migrator/plan.json`) with its fingerprints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::observe::{observe, ObserveOptions};
use crate::plan::file::{self, SavedPlan};
use crate::plan::fingerprint;
use crate::render::json::PlanDocument;

/// Where `plan` saves and `apply`/`show` look by default.
pub const DEFAULT_PLAN_PATH: &str = ".migrator/plan.json";

/// Flags of `migrator plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (YAML).
    pub file: PathBuf,
    /// Where to save the plan.
    #[arg(short = 'o', long = "out", default_value = DEFAULT_PLAN_PATH)]
    pub out: PathBuf,
    #[command(flatten)]
    pub view: super::PlanView,
    /// Exit 0 when nothing would change, 2 when something would, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Most tables observed at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// Plans, prints and saves.
///
/// # Errors
/// An invalid plan file, an unreachable cluster or ZooKeeper, or an unwritable plan path.
pub async fn run(args: &Args) -> Result<Exit> {
    let mut saved = make_plan(&args.file, args.concurrency).await?;
    if let Some(previous) = previous_plan(&args.out) {
        let ago = saved.created_at.saturating_sub(previous.created_at);
        saved.plan.add_trend(&previous.plan, ago);
    }
    save(&args.out, &saved)?;
    let doc = PlanDocument::of_saved(&saved);
    super::print_plan(&doc, &args.view)?;
    if args.view.format() == super::PlanFormat::Text {
        crate::tell!(
            "Saved the plan to {}; `migrator apply` uses it.",
            args.out.display()
        );
    }
    Ok(if args.detailed_exitcode && saved.plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// Loads the spec at `file`, observes and plans (no output, nothing saved).
///
/// # Errors
/// As [`run`].
pub async fn make_plan(file: &Path, concurrency: usize) -> Result<SavedPlan> {
    let bytes = std::fs::read(file).map_err(|e| Error::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    let spec = crate::spec::load(file)?;
    let opts = ObserveOptions {
        concurrency,
        ..ObserveOptions::default()
    };
    let observed = observe(&spec, opts).await?;
    let plan = crate::plan::plan(&spec, &observed);
    let fingerprints: BTreeMap<_, _> = observed
        .tables
        .iter()
        .map(|(t, o)| (t.clone(), fingerprint::of(o)))
        .collect();
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(SavedPlan {
        format_version: file::FORMAT_VERSION,
        tool_version: file::TOOL_VERSION.into(),
        created_at,
        spec_file: file.display().to_string(),
        spec_hash: file::spec_hash(&bytes),
        spec,
        plan,
        fingerprints,
    })
}

/// The plan saved at `path` by an earlier run, if it can be read (for the lag's trend).
fn previous_plan(path: &Path) -> Option<SavedPlan> {
    let bytes = std::fs::read(path).ok()?;
    file::from_bytes(&bytes).ok()
}

fn save(path: &Path, saved: &SavedPlan) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    // Write then rename, so a crash never leaves half a plan behind.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, file::to_bytes(saved)).map_err(|e| Error::Io {
        path: tmp.clone(),
        source: e,
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}
