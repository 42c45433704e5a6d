//! Owns `migrator guardian` (hidden; apply starts it): guard one write block until it is
//! resolved, lifting it at its deadline if apply did not get to the switch. It ignores SIGHUP
//! and SIGINT, so a closed terminal or a Ctrl-C aimed at apply does not stop it.

use std::path::PathBuf;
use std::time::Duration;

use crate::apply::guardian::{self, Ended};
use crate::cutover::record::RecordStore;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::routing::zk::Zk;

/// Flags of `migrator guardian`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ZooKeeper servers (comma-separated) holding the record and the routing node.
    #[arg(long)]
    pub zookeeper: Option<String>,
    /// The record's ZooKeeper path.
    #[arg(long, requires = "zookeeper")]
    pub record: Option<String>,
    /// The record's file (without meta-proxy).
    #[arg(long, conflicts_with = "record")]
    pub record_file: Option<PathBuf>,
}

/// Guards one block; exits 0 when it is resolved or lifted, 4 when an operator must look.
///
/// # Errors
/// No record location, or ZooKeeper cannot be reached.
pub async fn run(args: &Args) -> Result<Exit> {
    ignore_terminal_signals();
    guard(args).await
}

/// The guardian's work, without the process's signal set-up (a simulation runs it as a task).
///
/// # Errors
/// As [`run`].
pub async fn guard(args: &Args) -> Result<Exit> {
    let zk = match &args.zookeeper {
        Some(servers) => {
            let list: Vec<String> = servers.split(',').map(str::to_string).collect();
            let zk = connect(&list).await?;
            Some(zk)
        }
        None => None,
    };
    let store = match (&args.record, &args.record_file, &zk) {
        (Some(path), None, Some(zk)) => RecordStore::Zk {
            zk: zk.clone(),
            path: path.clone(),
        },
        (None, Some(path), _) => RecordStore::File { path: path.clone() },
        _ => {
            return Err(Error::Usage(
                "guardian needs --zookeeper with --record, or --record-file".into(),
            ))
        }
    };
    crate::tell!(
        "guardian {}: watching {}",
        crate::clock::pid(),
        store.describe()
    );
    let servers = args
        .zookeeper
        .as_deref()
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let watch = guardian::Watch {
        store,
        routing_zk: zk,
        servers,
    };
    let ended = guardian::run(watch).await;
    crate::tell!("guardian {}: {ended:?}", crate::clock::pid());
    Ok(match ended {
        Ended::Resolved(_) | Ended::Lifted => Exit::Success,
        Ended::LeftForOperator(_) => Exit::NeedsOperator,
    })
}

async fn connect(servers: &[String]) -> Result<Zk> {
    // ZooKeeper may be briefly unreachable; the block's deadline is what matters.
    let mut last = None;
    for _ in 0..30 {
        match Zk::connect(servers, Duration::from_secs(5)).await {
            Ok(zk) => return Ok(zk),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::ZooKeeper(
        last.map(|e| e.to_string()).unwrap_or_default(),
    ))
}

/// Keeps SIGHUP and SIGINT from ending the guardian (they are received and dropped).
fn ignore_terminal_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::hangup(), SignalKind::interrupt()] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move { while s.recv().await.is_some() {} });
        }
    }
}
