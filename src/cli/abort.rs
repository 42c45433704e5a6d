//! Owns `migrator abort FILE [--table T] [--remove-duplication]`: before the switch, lift a
//! write block (saying whether every primary was seen taking writes again), optionally remove
//! the duplication, and restore a config-sync speed-up a run left in place; after the switch,
//! refuse and explain.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::apply::block::SYNC_MARGIN;
use crate::apply::evidence::{Awaited, Poller, Tally};
use crate::apply::journal::{self, Journal, RunInfo};
use crate::apply::speedup::Source;
use crate::error::{Error, Result};
use crate::observe::{meta_client, observe, ObserveOptions};
use crate::pegasus::envs::{DENY_ALL_RECONFIG, DENY_ENV};
use crate::pegasus::messages::duplication::DuplicationStatus;
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
}

/// Aborts the chosen tables' migrations where that is still possible.
///
/// # Errors
/// An invalid plan file, an unknown table, or an unreachable cluster.
pub async fn run(args: &Args) -> Result<u8> {
    let spec = crate::spec::load(&args.file)?;
    let chosen: Vec<&Migration> = spec
        .migrations
        .iter()
        .filter(|m| args.table.as_ref().is_none_or(|t| *t == m.table))
        .collect();
    if chosen.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no table {}",
            args.file.display(),
            args.table.clone().unwrap_or_default()
        )));
    }
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
    let mut code = 0;
    let mut sources: Vec<&str> = chosen.iter().map(|m| m.from.as_str()).collect();
    sources.dedup();
    for m in chosen {
        let obs = observed.tables.get(&m.table).cloned().unwrap_or_default();
        match abort_table(&spec, m, &obs, args.remove_duplication).await {
            Ok(done) => {
                let subject = crate::apply::journal::Subject {
                    cluster: m.from.clone(),
                    table: m.table.clone(),
                    app_id: obs.source.as_ref().map(|s| s.app_id),
                };
                let _ = journal.record(
                    &subject,
                    "block_writes",
                    "restored",
                    serde_json::json!({"by": "abort", "done": done}),
                );
                println!("{}: {done}", m.table);
            }
            Err(why) => {
                println!("{}: not aborted: {why}", m.table);
                code = 1;
            }
        }
    }
    for cluster in sources {
        if let Some(left) = journal.unrestored_speed_up(cluster) {
            let replica = ReplicaClient::new(Duration::from_secs(10));
            println!(
                "{}",
                crate::apply::speedup::restore_values(cluster, &left, &replica, &journal).await
            );
        }
    }
    Ok(code)
}

/// Waits (bounded by two config-sync periods of the source) until every primary takes the
/// probe write again, and says what was seen.
async fn restored(meta: &crate::pegasus::meta::MetaClient, m: &Migration) -> String {
    let replica = ReplicaClient::new(Duration::from_secs(10));
    let source = Source::load(&m.from, meta, &replica, None).await;
    let sync = source.sync_bound();
    let probe_timeout = crate::plan::budget::PROBE_TIMEOUT;
    let probes = ReplicaClient::new(probe_timeout);
    let poller = Poller {
        meta,
        table: &m.table,
        probes: &probes,
        probe_deadline: probe_timeout,
        poll: Duration::from_millis(200),
    };
    let now = Instant::now();
    let deadline = now + sync * 2 + probe_timeout * 2 + SYNC_MARGIN;
    let mut tally = Tally::default();
    if poller
        .until_every_partition(Awaited::WritesRestored, now, deadline, &mut tally)
        .await
    {
        "writes restored: every primary takes writes again".into()
    } else {
        format!(
            "the deny env is deleted on the meta; replicas apply it at their next config sync (within {:.0}s); not yet seen on partitions {}",
            sync.as_secs_f64(),
            tally.describe_missing()
        )
    }
}

async fn abort_table(
    spec: &Spec,
    m: &Migration,
    obs: &TableObs,
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
    if routed_to_target || deny == Some(DENY_ALL_RECONFIG) {
        return Err(format!(
            "clients already use {}; abort cannot undo a switch (writes since then exist only there). To go back, migrate {} from {} to {}",
            m.to, m.table, m.to, m.from
        ));
    }
    let meta = meta_client(spec, &m.from, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let mut done = vec![];
    if deny.is_some() {
        meta.del_app_envs(&m.table, &[DENY_ENV])
            .await
            .map_err(|e| e.to_string())?;
        done.push(restored(&meta, m).await);
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
