//! Owns the guardian: a process apply starts for each write block, detached from the terminal
//! and from apply itself (its own process group, no terminal I/O, SIGHUP and SIGINT ignored),
//! so the block ends at its deadline even when apply is killed, loses its host's terminal, or
//! hangs. At `give_up_ms` it lifts the deny env — only if the block record still says
//! `Blocking` (its compare-and-set to `Lifting` loses to apply's `SwitchSent`) and routing
//! still names the source — and records that. It exits as soon as the record says the block
//! was resolved, or long after the deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::journal::now_ms;
use super::record::{BlockRecord, BlockState, RecordStore, Transition};
use crate::pegasus::envs::DENY_ENV;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::routing::zk::Zk;
use crate::routing::Route;

/// How long past the deadline a guardian keeps watching before it gives up.
const LINGER: Duration = Duration::from_secs(600);
/// Pause between two reads of the record.
const POLL: Duration = Duration::from_millis(100);

/// What the guardian did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Someone else resolved the block (`Done`, `Lifted`, a switch, or no record).
    Resolved(String),
    /// The guardian lifted it at the deadline.
    Lifted,
    /// Routing no longer names the source: the block stays, an operator must look.
    LeftForOperator(String),
    /// It watched long past the deadline without being able to act.
    GaveUp(String),
}

/// Where a guardian finds its record: the arguments of `migrator guardian`.
#[must_use]
pub fn args(store: &RecordStore) -> Vec<String> {
    match store {
        RecordStore::Zk { zk, path } => vec![
            "--zookeeper".into(),
            zk.servers().join(","),
            "--record".into(),
            path.clone(),
        ],
        RecordStore::File { path } => vec!["--record-file".into(), path.display().to_string()],
    }
}

/// Starts a detached guardian for the record in `store`, logging to `log`; returns its pid.
///
/// # Errors
/// The binary could not be started.
pub fn spawn(store: &RecordStore, log: &Path) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    if let Some(dir) = log.parent() {
        super::files::private_dir(dir)?;
    }
    let out = super::files::append_private(log)?;
    let mut command = Command::new(exe);
    // Credentials travel in the environment, never on a command line others can read.
    if let Some(auth) = crate::routing::zk::ZkAuth::installed() {
        command.env(crate::routing::zk::AUTH_ENV, auth.as_env());
    }
    let child = command
        .arg("guardian")
        .args(args(store))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// Guards the block in `store` until it is resolved; `zk` reads the routing node.
pub async fn run(store: RecordStore, zk: Option<Zk>) -> Ended {
    let mut last_error = String::new();
    loop {
        let record = match store.read().await {
            Ok(Some((r, _))) => r,
            Ok(None) => return Ended::Resolved("no block record".into()),
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let now = now_ms();
        if now > record.deadline_ms + ms(LINGER) {
            return Ended::GaveUp(last_error);
        }
        match record.state {
            BlockState::Blocking if now >= record.give_up_ms => {
                match lift_at_deadline(&store, &record, zk.as_ref()).await {
                    Ok(Some(ended)) => return ended,
                    Ok(None) => {}
                    Err(e) => last_error = e,
                }
            }
            BlockState::Blocking => {}
            // A lift that its owner did not finish (it died): the switch was never sent.
            BlockState::Lifting => match finish_lift(&store, &record).await {
                Ok(()) => return Ended::Lifted,
                Err(e) => last_error = e,
            },
            state => return Ended::Resolved(format!("the block is {state:?}")),
        }
        tokio::time::sleep(POLL).await;
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The deadline came with the record still `Blocking`: lift the block unless routing moved.
/// `Ok(None)`: the record changed meanwhile; look again.
async fn lift_at_deadline(
    store: &RecordStore,
    record: &BlockRecord,
    zk: Option<&Zk>,
) -> Result<Option<Ended>, String> {
    if let (Some(r), Some(zk)) = (&record.routing, zk) {
        let node = zk.read(&r.path).await.map_err(|e| e.to_string())?;
        let names = node.and_then(|(d, _)| Route::parse(&d).ok().map(|r| r.cluster_name));
        if names.as_deref() != Some(record.source_cluster.as_str()) {
            return Ok(Some(Ended::LeftForOperator(format!(
                "routing node {} names {} instead of {}: the block stays",
                r.path,
                names.as_deref().unwrap_or("nothing"),
                record.source_cluster
            ))));
        }
    }
    let note = "guardian: the write-block deadline came before the switch";
    match store
        .transition(BlockState::Blocking, BlockState::Lifting, note)
        .await
        .map_err(|e| e.to_string())?
    {
        Transition::Done(rec, _) => finish_lift(store, &rec).await.map(|()| Some(Ended::Lifted)),
        Transition::Lost(_) => Ok(None),
        Transition::Missing => Ok(Some(Ended::Resolved("no block record".into()))),
    }
}

/// Deletes the deny env if it is still the block's own value, then records `Lifted`.
async fn finish_lift(store: &RecordStore, record: &BlockRecord) -> Result<(), String> {
    lift(record).await?;
    match store
        .transition(BlockState::Lifting, BlockState::Lifted, &record.note)
        .await
        .map_err(|e| e.to_string())?
    {
        Transition::Done(..) | Transition::Missing => Ok(()),
        Transition::Lost(r) if r.state == BlockState::Lifted => Ok(()),
        Transition::Lost(r) => Err(format!("the record became {:?} while lifting", r.state)),
    }
}

/// Deletes `record`'s deny env on its source, unless someone set another value since.
///
/// # Errors
/// The source meta could not be asked or refused.
pub async fn lift(record: &BlockRecord) -> Result<(), String> {
    let metas = record
        .source_metas
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let opts = MetaOptions {
        call_timeout: Duration::from_secs(5),
        ..MetaOptions::default()
    };
    let meta = MetaClient::new(metas, opts);
    let apps = meta
        .list_apps(crate::pegasus::messages::apps::AppStatus::AS_AVAILABLE)
        .await
        .map_err(|e| e.to_string())?;
    let current = apps
        .iter()
        .find(|a| a.app_name == record.table)
        .and_then(|a| a.envs.get(DENY_ENV).cloned());
    if current.as_deref() != Some(record.deny_value.as_str()) {
        // Deleted already, or someone else's value: not ours to remove.
        return Ok(());
    }
    meta.del_app_envs(&record.table, &[DENY_ENV])
        .await
        .map_err(|e| e.to_string())
}
