//! Owns the command line: the clap definitions, logging set-up, and dispatch to one file per
//! subcommand.

pub mod abort;
pub mod apply;
pub mod dst;
pub mod guardian;
pub mod out;
pub mod plan;
pub mod sandbox;
pub mod show;
pub mod sim_command;
pub mod status;
pub mod validate;
pub mod verify;
pub mod verify_merge;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::exit::Exit;

/// Moves Apache Pegasus tables between clusters while their clients keep running.
#[derive(Debug, Parser)]
#[command(name = "migrator", version, about)]
pub struct Cli {
    /// More log output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// ZooKeeper digest credentials (`user:password`) from this file; else from the
    /// MIGRATOR_ZK_AUTH environment variable. Never from the plan file. With credentials,
    /// migrator's own nodes (locks, block records) can be changed only with them.
    #[arg(long, global = true, value_name = "FILE")]
    pub zk_auth_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan file offline.
    Validate(validate::Args),
    /// Show what apply would do against the live clusters and routing; save the plan.
    Plan(plan::Args),
    /// Print a saved plan.
    Show(show::Args),
    /// Carry out a saved plan, or plan a file afresh and carry it out after confirmation.
    Apply(apply::Args),
    /// Print each table's phase and lag.
    Status(status::Args),
    /// Lift a write block and optionally remove the duplication, before the switch.
    Abort(abort::Args),
    /// Compare each table on its source and target, record by record (exit 2 if they differ).
    Verify(verify::Args),
    /// Run simulated clusters, a meta-proxy and a client load to try plans on.
    Sandbox(sandbox::Args),
    /// Send a remote command to a server (the sandbox's `sim.fault ...`).
    #[command(hide = true)]
    SimCommand(sim_command::Args),
    /// Guard one write block until it ends (apply starts it; not for direct use).
    #[command(hide = true)]
    Guardian(guardian::Args),
    /// Runs seeds of the deterministic simulation of the cut-over (scripts/dst.sh).
    #[command(hide = true)]
    Dst(dst::Args),
}

/// How a plan is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PlanFormat {
    /// Text for people (coloured on a terminal).
    #[default]
    Text,
    /// The versioned JSON document.
    Json,
    /// Markdown for a pull-request comment (under 60,000 characters).
    Markdown,
}

/// The flags that choose how a plan is printed (`plan`, `show`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlanView {
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Text: every table in full, instead of telling tables whose steps read the same once.
    #[arg(long)]
    pub detailed: bool,
}

impl PlanView {
    /// The chosen format.
    #[must_use]
    pub fn format(&self) -> PlanFormat {
        if self.json {
            PlanFormat::Json
        } else {
            self.format
        }
    }
}

/// Prints a plan on stdout in `view`'s format.
///
/// # Errors
/// Stdout could not be written.
pub fn print_plan(doc: &crate::render::json::PlanDocument, view: &PlanView) -> Result<()> {
    use std::io::IsTerminal;
    let mut out = Vec::new();
    let written = match view.format() {
        PlanFormat::Json => crate::render::json::write(doc, &mut out),
        PlanFormat::Markdown => crate::render::markdown::write_plan(doc, &mut out),
        PlanFormat::Text => {
            let style = crate::render::human::TextStyle {
                color: std::io::stdout().is_terminal(),
                detailed: view.detailed,
            };
            crate::render::human::write_plan(doc, style, &mut out)
        }
    };
    written
        .and_then(|()| out::text(&out))
        .map_err(|e| crate::error::Error::Io {
            path: "stdout".into(),
            source: e,
        })
}

/// Where local state lives (block records, locks and guardian logs without meta-proxy): the
/// journal's directory.
#[must_use]
pub fn state_dir(journal: &std::path::Path) -> std::path::PathBuf {
    journal
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        )
}

/// The plan file's migrations of `table` (all of them without one); an unknown table is a
/// usage error naming the file.
///
/// # Errors
/// No migration of `table` in the file.
pub fn chosen_migrations<'a>(
    spec: &'a crate::spec::Spec,
    file: &std::path::Path,
    table: Option<&str>,
) -> Result<Vec<&'a crate::spec::Migration>> {
    let chosen: Vec<_> = spec
        .migrations
        .iter()
        .filter(|m| table.is_none_or(|t| t == m.table))
        .collect();
    if chosen.is_empty() {
        return Err(crate::error::Error::Usage(format!(
            "{} has no table {}",
            file.display(),
            table.unwrap_or_default()
        )));
    }
    Ok(chosen)
}

/// Sends `tracing` output to stderr; `-v` for info, `-vv` for debug (or `RUST_LOG`).
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,zookeeper_client=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// ZooKeeper credentials from `file`, else from the environment.
fn zk_auth(file: Option<&std::path::Path>) -> Result<Option<crate::routing::zk::ZkAuth>> {
    use crate::routing::zk::{ZkAuth, AUTH_ENV};
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| crate::error::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?,
        None => match std::env::var(AUTH_ENV) {
            Ok(v) if !v.is_empty() => v,
            _ => return Ok(None),
        },
    };
    let first = text.lines().next().unwrap_or_default();
    ZkAuth::parse(first)
        .map(Some)
        .map_err(|e| crate::error::Error::Usage(format!("ZooKeeper credentials: {e}")))
}

/// Runs the chosen command; returns its exit status on success.
///
/// # Errors
/// Whatever the command fails with.
pub async fn run(cli: Cli) -> Result<Exit> {
    crate::routing::zk::ZkAuth::install(zk_auth(cli.zk_auth_file.as_deref())?);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args).await,
        Command::Show(args) => show::run(&args),
        Command::Apply(args) => apply::run(&args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Abort(args) => abort::run(&args).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Verify(args) => verify::run(&args).await,
        Command::SimCommand(args) => sim_command::run(&args).await,
        Command::Guardian(args) => guardian::run(&args).await,
        Command::Dst(args) => dst::run(&args).await,
    }
}
