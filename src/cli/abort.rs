//! Owns `migrator abort FILE [--table T] [--remove-duplication]`: with the tables' apply lock
//! held, before the switch, lift a write block through its block record (saying whether every
//! primary was seen taking writes again), optionally remove the duplication, and restore a
//! config-sync speed-up a run left in place. It refuses when routing names the target or the
//! record says a switch may have happened, and never deletes a deny value migrator did not
//! set.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::chosen_migrations;
use crate::apply::block::SYNC_MARGIN;
use crate::apply::entry::{self, Entry};
use crate::apply::evidence::{Awaited, Poller, Tally};
use crate::apply::journal::{self, Journal, RunInfo, Subject};
use crate::apply::speedup::Source;
use crate::apply::{guardian, lock};
use crate::cutover::protocol::{self, AbortRefusal};
use crate::cutover::record::{BlockState, Lift, RecordStore, Transition};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::observe::{meta_client, observe, ObserveOptions};
use crate::pegasus::envs::{DENY_ALL_RECONFIG, DENY_ENV};
use crate::pegasus::messages::duplication::DuplicationStatus;
use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::plan::observed::TableObs;
use crate::spec::{Migration, Spec};

/// Flags of `migrator abort`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (YAML).
    pub file: PathBuf,
    /// Only this table (default: every table of the file).
    #[arg(long)]
    pub table: Option<String>,
    /// Also remove the duplication to the target.
    #[arg(long)]
    pub remove_duplication: bool,
    /// The journal file (abort records what it undid there too).
    #[arg(long, default_value = ".migrator/journal.jsonl")]
    pub journal: PathBuf,
    /// How long to wait for a running apply's lock.
    #[arg(long, default_value = "10s")]
    pub lock_timeout: String,
    /// Without meta-proxy only: the clients were NOT switched after apply asked for it, so the
    /// block may be lifted although the record says the switch was asked for.
    #[arg(long)]
    pub not_switched: bool,
}

/// Aborts the chosen tables' migrations where that is still possible.
///
/// # Errors
/// An invalid plan file, an unknown table, a held lock, or an unreachable cluster.
pub async fn run(args: &Args) -> Result<Exit> {
    let spec = crate::spec::load(&args.file)?;
    let chosen = chosen_migrations(&spec, &args.file, args.table.as_deref())?;
    let zk = crate::observe::zookeeper(&spec, Duration::from_secs(10)).await?;
    let locks = take_locks(&spec, zk.as_ref(), &chosen, args).await?;
    let observed = observe(&spec, ObserveOptions::default()).await?;
    let run = RunInfo {
        plan_hash: String::new(),
        git_commit: journal::git_commit(&args.file),
        operator: journal::operator(),
    };
    let journal = Journal::open(&args.journal, run).map_err(|e| Error::Io {
        path: args.journal.clone(),
        source: e,
    })?;
    let state_dir = super::state_dir(&args.journal);
    let mut code = Exit::Success;
    let mut sources: Vec<&str> = chosen.iter().map(|m| m.from.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    for m in chosen {
        let obs = observed.tables.get(&m.table).cloned().unwrap_or_default();
        let store = RecordStore::of(&spec, zk.as_ref(), &state_dir, m);
        let subject = Subject {
            cluster: m.from.clone(),
            table: m.table.clone(),
            app_id: obs.source.as_ref().map(|s| s.app_id),
        };
        let manual_not_switched = args.not_switched && spec.metaproxy.is_none();
        if manual_not_switched {
            if let Err(e) = operator_says_not_switched(&store).await {
                crate::say!("{}: not aborted: {e}", m.table);
                code = Exit::Error;
                continue;
            }
        }
        match abort_table(&spec, m, &obs, &store, args.remove_duplication).await {
            Ok(done) => {
                let entry = Entry::BlockWrites(entry::Block::Restored {
                    by: entry::LiftedBy::Abort,
                    write_block_ms: None,
                    seen_on_every_primary: None,
                    said: done.clone(),
                });
                let _ = journal.record(&subject, &entry);
                crate::say!("{}: {done}", m.table);
            }
            Err(why) => {
                crate::say!("{}: not aborted: {why}", m.table);
                code = Exit::Error;
            }
        }
    }
    for cluster in sources {
        if let Some(left) = journal.unrestored_speed_up(cluster) {
            let replica = ReplicaClient::new(Duration::from_secs(10));
            crate::say!(
                "{}",
                crate::apply::speedup::restore_values(cluster, &left, &replica, &journal).await
            );
        }
    }
    locks.release().await;
    Ok(code)
}

/// The same locks apply takes: abort never races a running apply.
async fn take_locks(
    spec: &Spec,
    zk: Option<&crate::routing::zk::Zk>,
    chosen: &[&Migration],
    args: &Args,
) -> Result<lock::Locks> {
    let timeout = crate::spec::parse_duration(&args.lock_timeout)
        .map_err(|e| Error::Usage(format!("--lock-timeout: {e}")))?;
    let holder = serde_json::json!({"operator": journal::operator(), "pid": crate::clock::pid(), "command": "abort"}).to_string();
    let tables: Vec<String> = chosen.iter().map(|m| m.table.clone()).collect();
    let taken = match (zk, &spec.metaproxy) {
        (Some(zk), Some(mp)) => {
            lock::take_zk(zk, &mp.migrator_root, &tables, &holder, timeout).await
        }
        _ => {
            let dir = super::state_dir(&args.journal);
            lock::take_file(&dir.join("lock"), &holder, timeout).await
        }
    };
    taken.map_err(|e| {
        Error::Lock(format!(
            "{e}; a running apply restores writes itself when stopped (Ctrl-C), and its guardian ends the block at the deadline"
        ))
    })
}

async fn abort_table(
    spec: &Spec,
    m: &Migration,
    obs: &TableObs,
    store: &RecordStore,
    remove_duplication: bool,
) -> Result<String, String> {
    let routed_to_target = obs
        .routing
        .as_ref()
        .and_then(|r| r.node.as_ref())
        .and_then(|n| n.cluster_name.as_deref())
        == Some(m.to.as_str());
    let deny = obs
        .source
        .as_ref()
        .and_then(|s| s.envs.get(DENY_ENV))
        .map(String::as_str);
    let record = store.read().await.map_err(|e| e.to_string())?;
    let state = record.as_ref().map(|(r, _)| r.state);
    match protocol::abort_may_lift(routed_to_target, deny == Some(DENY_ALL_RECONFIG), state) {
        Ok(()) => {}
        Err(AbortRefusal::Switched) => return Err(format!(
            "clients already use {}; abort cannot undo a switch (writes since then exist only there). To go back, migrate {} from {} to {}",
            m.to, m.table, m.to, m.from
        )),
        Err(AbortRefusal::SwitchMayHaveHappened) => return Err(format!(
            "the block record ({}) says {:?}: a switch may have happened, so the block on {} stays. If routing names {}, run apply to finish; if it names {} and no apply runs, run apply to resume",
            store.describe(), state, m.from, m.to, m.from
        )),
    }
    let meta = meta_client(spec, &m.from, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let mut done = vec![];
    // A record still open with no deny env in force (its apply died before setting it, or
    // the env is gone) is closed too: a later apply would otherwise resume its deadline.
    let open = record
        .as_ref()
        .filter(|(r, _)| r.state == BlockState::Blocking)
        .map(|(r, _)| r.deny_value.clone());
    if let Some(value) = deny.or(open.as_deref()) {
        lift(spec, store, m, value).await?;
        done.push(if deny.is_some() {
            restored(&meta, m).await
        } else {
            format!(
                "the open block record {} is closed ({DENY_ENV} was not in force)",
                store.describe()
            )
        });
    }
    if remove_duplication {
        for d in &obs.dups {
            meta.modify_duplication(&m.table, d.dupid, DuplicationStatus::DS_REMOVED)
                .await
                .map_err(|e| e.to_string())?;
            done.push(format!(
                "duplication {} removed (the follower table {} stays on {}: drop it before migrating again)",
                d.dupid, m.table, m.to
            ));
        }
    }
    Ok(if done.is_empty() {
        "nothing to undo".into()
    } else {
        done.join("; ")
    })
}

/// The operator states that a manual switch did not happen: the record goes back to
/// `Blocking` (the only way out of `SwitchSent` without meta-proxy).
async fn operator_says_not_switched(store: &RecordStore) -> Result<(), String> {
    let note = "abort: the operator says the clients were not switched";
    match store
        .transition(BlockState::SwitchSent, BlockState::Blocking, note)
        .await
        .map_err(|e| e.to_string())?
    {
        Transition::Done(..) | Transition::Missing => Ok(()),
        Transition::Lost(r) if r.state == BlockState::Blocking => Ok(()),
        Transition::Lost(r) => Err(format!("the block record says {:?}", r.state)),
    }
}

/// Lifts the block on `m`'s source through its record; a deny value migrator did not set is
/// left alone.
async fn lift(spec: &Spec, store: &RecordStore, m: &Migration, value: &str) -> Result<(), String> {
    let note = "abort: asked by an operator";
    let routing = spec
        .metaproxy
        .as_ref()
        .map(|mp| crate::routing::node_path(&mp.root, &m.table));
    let began = store
        .begin_lift(routing.as_deref(), &m.from, note)
        .await
        .map_err(|e| e.to_string())?;
    let t = match began {
        Lift::Began(t) => *t,
        Lift::RoutingElsewhere(names) => {
            return Err(format!(
                "routing names {} now, not {}: the block stays",
                names.as_deref().unwrap_or("nothing"),
                m.from
            ))
        }
    };
    match t {
        Transition::Done(record, _) => guardian::finish_lift(store, &record).await,
        // Someone is lifting or lifted it: finish (both steps are idempotent).
        Transition::Lost(r) if matches!(r.state, BlockState::Lifting | BlockState::Lifted) => {
            if r.deny_value != value {
                Err(not_ours(m, value))
            } else if r.state == BlockState::Lifting {
                guardian::finish_lift(store, &r).await
            } else if guardian::lifted_moments_ago(store).await {
                // Its own set, sent before the lift, may have landed late.
                guardian::lift(&r).await
            } else {
                // Long after the lift an env of that value is someone else's (set by hand).
                Err(not_ours(m, value))
            }
        }
        Transition::Lost(r) => Err(format!("the block record says {:?}", r.state)),
        Transition::Missing => Err(not_ours(m, value)),
    }
}

fn not_ours(m: &Migration, value: &str) -> String {
    format!(
        "{DENY_ENV}={value} on {} has no open migrator block record, so migrator did not set it (or its block is over); it is left alone: delete it by hand if that is intended",
        m.from
    )
}

/// Waits (bounded by `synced_everywhere_within` the source's config-sync period) until every
/// primary takes the probe write again, and says what was seen.
async fn restored(meta: &MetaClient, m: &Migration) -> String {
    let replica = ReplicaClient::new(Duration::from_secs(10));
    let source = Source::load(&m.from, meta, &replica, None).await;
    let sync = source.sync_bound();
    let probe_timeout = crate::plan::budget::PROBE_TIMEOUT;
    let probes = ReplicaClient::new(probe_timeout);
    let poller = Poller {
        meta,
        table: &m.table,
        probes: &probes,
        patient: &replica,
        probe_deadline: probe_timeout,
        poll: Duration::from_millis(200),
        sync,
    };
    let now = Instant::now();
    let deadline =
        now + crate::plan::budget::synced_everywhere_within(sync) + probe_timeout * 2 + SYNC_MARGIN;
    let mut tally = Tally::default();
    if poller
        .until_every_partition(Awaited::WritesRestored, now, deadline, &mut tally)
        .await
    {
        "writes restored: every primary takes writes again".into()
    } else {
        format!(
            "the deny env is deleted on the meta; {}; not yet seen on partitions {}",
            crate::apply::evidence::not_yet_applied(sync),
            tally.describe_missing()
        )
    }
}
