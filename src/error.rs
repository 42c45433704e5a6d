//! Owns the top-level error: every module's error converted into one type, the exit code it
//! maps to, and the one-line advice shown under the message.

use std::path::PathBuf;

use crate::exit::Exit;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Pegasus call failed.
    #[error(transparent)]
    Pegasus(#[from] crate::pegasus::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The simulator could not start.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// ZooKeeper could not be reached or used.
    #[error("ZooKeeper: {0}")]
    ZooKeeper(String),
    /// The plan file (YAML) is unreadable or invalid.
    #[error("{0}")]
    Spec(#[from] crate::spec::load::Error),
    /// The clusters or routing could not be observed.
    #[error(transparent)]
    Observe(#[from] crate::observe::Error),
    /// A verify could not finish.
    #[error("verify {table} {from} → {to}: {source}")]
    Verify {
        table: String,
        from: String,
        to: String,
        source: Box<crate::verify::Error>,
    },
    /// A saved plan no longer matches the world.
    #[error("saved plan is stale: {0}")]
    Stale(String),
    /// Another apply holds the lock.
    #[error("{0}")]
    Lock(String),
    /// The command line or the operator's answer does not allow going on.
    #[error("{0}")]
    Usage(String),
    /// A saved plan could not be used.
    #[error("{path}: {source}")]
    PlanFile {
        path: PathBuf,
        source: crate::plan::file::FileError,
    },
}

impl Error {
    /// The exit status for this error: always an error (1), never "changes" (2).
    #[must_use]
    pub fn exit(&self) -> Exit {
        Exit::Error
    }

    /// Whether stdout's reader went away (`migrator plan | head`): nothing to report.
    #[must_use]
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What the operator can do about it, when there is something specific.
    #[must_use]
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Self::ZooKeeper(_) => {
                Some("check the ZooKeeper address, or start one with scripts/zk-start.sh")
            }
            Self::Pegasus(crate::pegasus::Error::NoLeader { .. })
            | Self::Observe(crate::observe::Error::Cluster { .. }) => {
                Some("check that the meta addresses are right and the cluster is up")
            }
            Self::Observe(crate::observe::Error::ClusterName { .. }) => {
                Some("the keys under `clusters:` must be the names the clusters report")
            }
            Self::Stale(_) => Some("run `migrator plan` again, review it, then apply the new plan"),
            Self::Lock(_) => Some("wait for the other apply, or raise --lock-timeout"),
            Self::Observe(crate::observe::Error::ZooKeeper { .. }) => {
                Some("check the metaproxy.zookeeper addresses in the plan file")
            }
            _ => None,
        }
    }
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
