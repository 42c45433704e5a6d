//! Owns `migrator apply [PATH]`: a saved plan (refused when stale) or a YAML file planned
//! afresh and confirmed; then lock, journal, execute, and report with the exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::apply::events::Events;
use crate::apply::journal::{self, Journal, RunInfo};
use crate::apply::{self as executor, lock, Ctx, Options};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::observe::{self, observe, ObserveOptions};
use crate::plan::file::{self, SavedPlan};
use crate::plan::{fingerprint, Plan};
use crate::render::json::PlanDocument;
use crate::spec::{parse_duration, Spec};

/// Flags of `migrator apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan (`.json`, default `.migrator/plan.json`) or a plan file (YAML) to plan afresh.
    pub path: Option<PathBuf>,
    /// Do not ask for confirmation (a YAML file is otherwise confirmed with `yes`).
    #[arg(long)]
    pub auto_approve: bool,
    /// Tables worked on at once.
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// Cut-overs at once per source cluster.
    #[arg(long, default_value_t = 1)]
    pub max_concurrent_cutovers: usize,
    /// How long to wait for another apply's lock.
    #[arg(long, default_value = "10s")]
    pub lock_timeout: String,
    /// Longest wait for a duplication to reach DS_LOG.
    #[arg(long, default_value = "1h")]
    pub checkpoint_timeout: String,
    /// Longest wait for a table to catch up.
    #[arg(long, default_value = "1h")]
    pub catch_up_timeout: String,
    /// Emit NDJSON events on stdout instead of log lines on stderr.
    #[arg(long)]
    pub json: bool,
    /// The journal file.
    #[arg(long, default_value = ".migrator/journal.jsonl")]
    pub journal: PathBuf,
}

fn duration(flag: &str, text: &str) -> Result<Duration> {
    parse_duration(text).map_err(|e| Error::Usage(format!("--{flag}: {e}")))
}

/// Applies a plan.
///
/// # Errors
/// A stale or unusable plan, refusal to confirm, an unreachable cluster, a held lock.
pub async fn run(args: &Args) -> Result<Exit> {
    let saved = load_or_plan(args).await?;
    let (spec, plan, plan_hash, spec_file) = (
        saved.spec.clone(),
        saved.plan.clone(),
        saved.spec_hash.clone(),
        saved.spec_file.clone(),
    );
    if !plan.has_changes() {
        close_finished_records(&spec, &plan, &args.journal).await;
        let blocked = plan.summary().blocked;
        if blocked == 0 {
            crate::say!("No changes. Every table is already done.");
            return Ok(Exit::Success);
        }
        crate::say!("Nothing to apply; {blocked} table(s) are blocked and need an operator (see `migrator plan`).");
        return Ok(Exit::NeedsOperator);
    }
    let opts = Options {
        parallelism: args.parallelism,
        max_concurrent_cutovers: args.max_concurrent_cutovers,
        checkpoint_timeout: duration("checkpoint-timeout", &args.checkpoint_timeout)?,
        catch_up_timeout: duration("catch-up-timeout", &args.catch_up_timeout)?,
        interactive: std::io::stdin().is_terminal(),
        ..Options::default()
    };
    let run = RunInfo {
        plan_hash,
        git_commit: journal::git_commit(Path::new(&spec_file)),
        operator: journal::operator(),
    };
    let holder = json!({"operator": run.operator, "pid": crate::clock::pid(), "since_ms": journal::now_ms(), "plan_hash": run.plan_hash}).to_string();
    let zk = observe::zookeeper(&spec, Duration::from_secs(10)).await?;
    let tables: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| !t.steps.is_empty())
        .map(|t| t.table.clone())
        .collect();
    let lock_timeout = duration("lock-timeout", &args.lock_timeout)?;
    let locks = match (&zk, &spec.metaproxy) {
        (Some(zk), Some(mp)) => {
            lock::take_zk(zk, &mp.migrator_root, &tables, &holder, lock_timeout).await
        }
        _ => {
            lock::take_file(
                &super::state_dir(&args.journal).join("lock"),
                &holder,
                lock_timeout,
            )
            .await
        }
    }
    .map_err(|e| Error::Lock(e.to_string()))?;
    // Another run may have moved these tables on while this one waited for their locks:
    // plan again from what the clusters say now that no one else can change it.
    let plan = match replan_under_locks(&spec, &tables).await {
        Ok(fresh) => fresh,
        Err(e) => {
            locks.release().await;
            return Err(e);
        }
    };
    let journal = Journal::open(&args.journal, run).map_err(|e| Error::Io {
        path: args.journal.clone(),
        source: e,
    })?;
    let mut metas = BTreeMap::new();
    for name in spec.clusters.keys() {
        metas.insert(
            name.clone(),
            observe::meta_client(&spec, name, Duration::from_secs(10)).await?,
        );
    }
    let cutting_over: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| {
            t.steps
                .iter()
                .any(|s| s.kind <= crate::plan::StepKind::BlockWrites)
        })
        .map(|t| t.from.clone())
        .collect();
    let ctx = Ctx::new(
        spec,
        metas,
        zk,
        journal,
        Events::new(args.json, std::io::stderr().is_terminal()),
        opts,
        stop_on_signal(),
    )
    .with_fences(&locks, super::state_dir(&args.journal))
    .load_sources(&cutting_over)
    .await;
    let ctx = Arc::new(ctx);
    let outcomes = executor::execute(ctx, &plan).await;
    locks.release().await;
    Events::report(&outcomes, args.json);
    Ok(executor::exit(&outcomes))
}

/// Moves the block records of done tables to `Done` (a run may have died after the switch).
async fn close_finished_records(spec: &Spec, plan: &Plan, journal: &Path) {
    let Ok(zk) = observe::zookeeper(spec, Duration::from_secs(10)).await else {
        return;
    };
    let dir = super::state_dir(journal);
    for t in plan
        .tables
        .iter()
        .filter(|t| t.action == crate::plan::Action::Done)
    {
        if let Some(m) = spec.migrations.iter().find(|m| m.table == t.table) {
            let store = crate::cutover::record::RecordStore::of(spec, zk.as_ref(), &dir, m);
            crate::cutover::record::close_finished(&store).await;
        }
    }
}

/// The spec and the plan to run, with the spec's hash and file name.
/// The plan to apply, with the fingerprints it was made from: a saved one refreshed for the
/// servers' progress (refused if anything else changed), or one made now and confirmed.
async fn load_or_plan(args: &Args) -> Result<SavedPlan> {
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::plan::DEFAULT_PLAN_PATH));
    if path.extension().is_some_and(|e| e == "json") {
        let mut saved = load_saved(&path)?;
        saved.plan = fresh_plan_if_unchanged(&saved).await?;
        return Ok(saved);
    }
    let saved = super::plan::make_plan(&path, 64).await?;
    let doc = PlanDocument::of_saved(&saved);
    super::print_plan(&doc, &super::PlanView::default())?;
    if saved.plan.has_changes() {
        confirm(args.auto_approve)?;
    }
    Ok(saved)
}

fn load_saved(path: &Path) -> Result<SavedPlan> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    file::from_bytes(&bytes).map_err(|e| Error::PlanFile {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The plan for the servers' state now, once this run holds the locks of `locked`; refused
/// if it has work for a table this run did not lock (it had nothing to do when planned).
async fn replan_under_locks(spec: &Spec, locked: &[String]) -> Result<Plan> {
    let observed = observe(spec, ObserveOptions::default()).await?;
    let fresh = crate::plan::plan(spec, &observed);
    let unlocked = fresh
        .tables
        .iter()
        .find(|t| !t.steps.is_empty() && !locked.contains(&t.table));
    if let Some(t) = unlocked {
        return Err(Error::Stale(format!(
            "{} has work now that it had none when planned: plan again",
            t.table
        )));
    }
    Ok(fresh)
}

/// Re-observes; refuses if the plan file or any table's facts changed since the plan was made,
/// otherwise returns the plan for the servers' current progress.
async fn fresh_plan_if_unchanged(saved: &SavedPlan) -> Result<Plan> {
    if let Ok(bytes) = std::fs::read(&saved.spec_file) {
        if file::spec_hash(&bytes) != saved.spec_hash {
            return Err(Error::Stale(format!(
                "{} changed since the plan was made",
                saved.spec_file
            )));
        }
    }
    let observed = observe(&saved.spec, ObserveOptions::default()).await?;
    for (table, then) in &saved.fingerprints {
        let now = observed.tables.get(table).map(fingerprint::of);
        let changes = now.map_or_else(
            || vec!["no longer observed".to_string()],
            |now| fingerprint::diff(then, &now),
        );
        if let Some(first) = changes.first() {
            return Err(Error::Stale(format!("{table}: {first}")));
        }
    }
    Ok(crate::plan::plan(&saved.spec, &observed))
}

fn confirm(auto_approve: bool) -> Result<()> {
    if auto_approve {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "no terminal to confirm on: pass --auto-approve, or apply a saved plan".into(),
        ));
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::Io {
            path: "stdin".into(),
            source: e,
        })?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Usage("apply cancelled".into()))
    }
}

/// The first SIGINT/SIGTERM/SIGHUP turns the watch true: nothing new starts, blocked writes
/// are restored. The handlers stay installed, so a second signal changes nothing: the restore
/// is never skipped (and the guardian ends the block even if this process is killed).
fn stop_on_signal() -> watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(false);
    if crate::net::simulated() {
        // A simulated host has no terminal; its runs end by being killed.
        std::mem::forget(tx);
        return rx;
    }
    tokio::spawn(async move {
        let wait_for = |kind: SignalKind| async move {
            match signal(kind) {
                Ok(mut s) => drop(s.recv().await),
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = wait_for(SignalKind::terminate()) => {}
            () = wait_for(SignalKind::hangup()) => {}
            () = wait_for(SignalKind::interrupt()) => {}
        }
        crate::tell!("stopping: no new steps; blocked writes are being restored");
        let _ = tx.send(true);
    });
    rx
}
