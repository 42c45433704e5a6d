//! Owns one simulated cluster's shared state: tables, partitions with their data and decrees,
//! duplications, the envs each replica node has applied, and fault switches.
//!
//! State sits behind a `std::sync::Mutex` that is never held across an `.await`; every
//! operation takes the lock, changes plain data, and releases it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::config::SimConfig;
use crate::pegasus::messages::apps::AppStatus;
use crate::pegasus::messages::duplication::{DuplicationFailMode, DuplicationStatus};

pub use crate::pegasus::envs::{
    DENY_ENV, FOLLOWER_STATUS_ENV, MASTER_APP_NAME_ENV, MASTER_CLUSTER_ENV, MASTER_METAS_ENV,
};

/// What other clusters this one knows (`[pegasus.clusters]` and `[duplication-group]`).
#[derive(Debug, Clone, Default)]
pub struct Directory(Arc<Mutex<HashMap<String, Peer>>>);

/// A cluster as seen from another one.
#[derive(Debug, Clone)]
pub struct Peer {
    pub metas: Vec<SocketAddr>,
    pub cluster_id: i8,
}

impl Directory {
    /// Registers a cluster.
    pub fn insert(&self, name: &str, peer: Peer) {
        self.0
            .lock()
            .expect("directory lock")
            .insert(name.to_string(), peer);
    }
    /// Looks a cluster up by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Peer> {
        self.0.lock().expect("directory lock").get(name).cloned()
    }
    /// Whether some cluster has duplication-group id `id`.
    #[must_use]
    pub fn knows_id(&self, id: i8) -> bool {
        self.0
            .lock()
            .expect("directory lock")
            .values()
            .any(|p| p.cluster_id == id)
    }
}

/// How a replica treats client requests of one table (`replica.deny_client_request`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deny {
    /// `reconfig*`: answer `ERR_INVALID_STATE`; otherwise (`timeout*`) do not answer.
    pub reconfig: bool,
    pub read: bool,
    pub write: bool,
}

impl Deny {
    /// Parses an env value; `None` for values the meta validator rejects.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let (mode, op) = value.split_once('*')?;
        let reconfig = match mode {
            "timeout" => false,
            "reconfig" => true,
            _ => return None,
        };
        let (read, write) = match op {
            "all" => (true, true),
            "read" => (true, false),
            "write" => (false, true),
            _ => return None,
        };
        Some(Self {
            reconfig,
            read,
            write,
        })
    }
}

/// One logged write, kept while a duplication may still need to ship it.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub decree: i64,
    pub timestamp_us: i64,
    pub code: &'static str,
    /// The request body as stored in the private log (wrapper header, value, STOP).
    pub raw: Vec<u8>,
    /// Routing hash of the write (duplication routes batches by it).
    pub hash: u64,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Vec<u8>,
    pub timetag: u64,
}

/// One partition: its replicas, data and decrees.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub primary: usize,
    pub secondaries: Vec<usize>,
    pub ballot: i64,
    pub last_committed: i64,
    pub data: BTreeMap<Vec<u8>, Record>,
    pub log: VecDeque<Mutation>,
}

/// One duplication of a table.
#[derive(Debug, Clone)]
pub struct Dup {
    pub dupid: i32,
    pub remote: String,
    pub status: DuplicationStatus,
    pub fail_mode: DuplicationFailMode,
    pub create_ts_ms: i64,
    pub remote_app_name: String,
    pub remote_replica_count: i32,
    /// Highest decree shipped and acknowledged, per partition.
    pub confirmed: Vec<i64>,
    /// (confirmed, last committed) per partition as the meta last heard them at a
    /// duplication sync; what 2.6 reports in `partition_states`.
    pub reported: Vec<(i64, i64)>,
    /// When the current status began (drives the checkpoint delay).
    pub status_since: Instant,
    /// A status step (create follower, copy checkpoint) is in flight.
    pub busy: bool,
    /// Partitions with a duplicate RPC in flight.
    pub shipping: Vec<bool>,
    /// Mutations shipped, per partition.
    pub shipped: Vec<u64>,
    /// Recent shipping rate in mutations per second, per partition (2.5 counters).
    pub ship_rate: Vec<f64>,
}

/// One table.
#[derive(Debug, Clone)]
pub struct App {
    pub id: i32,
    pub name: String,
    pub status: AppStatus,
    pub app_type: String,
    pub max_replica_count: i32,
    pub envs: BTreeMap<String, String>,
    pub data_version: u32,
    pub create_second: i64,
    pub drop_second: i64,
    pub partitions: Vec<Partition>,
    pub dups: BTreeMap<i32, Dup>,
}

impl App {
    /// Whether some live duplication needs the write log.
    #[must_use]
    pub fn is_duplicating(&self) -> bool {
        !self.dups.is_empty()
    }
    /// Lowest decree any duplication still has to ship from, per partition.
    #[must_use]
    pub fn min_confirmed(&self, pidx: usize) -> Option<i64> {
        self.dups.values().map(|d| d.confirmed[pidx]).min()
    }
}

/// A replica node's view: the envs it applied at its last config sync.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub deny: HashMap<i32, Deny>,
    pub envs: HashMap<i32, BTreeMap<String, String>>,
}

/// Mutable cluster state.
#[derive(Debug, Default)]
pub struct State {
    pub leader: usize,
    pub apps: BTreeMap<i32, App>,
    pub next_app_id: i32,
    pub nodes: Vec<Node>,
}

impl State {
    /// The live (not dropped) table called `name`.
    #[must_use]
    pub fn app_by_name(&self, name: &str) -> Option<&App> {
        self.apps
            .values()
            .find(|a| a.name == name && a.status != AppStatus::AS_DROPPED)
    }
    /// Mutable access to the live table called `name`.
    pub fn app_by_name_mut(&mut self, name: &str) -> Option<&mut App> {
        self.apps
            .values_mut()
            .find(|a| a.name == name && a.status != AppStatus::AS_DROPPED)
    }
}

/// Switchable faults of one cluster.
#[derive(Debug)]
pub struct Faults {
    /// Every node refuses connections (accepts and closes at once).
    pub unreachable: AtomicBool,
    /// Extra delay before replica servers answer data writes, in ms.
    pub slow_write_ms: AtomicU64,
    /// Duplications never leave DS_APP.
    pub stuck_in_app: AtomicBool,
    /// Bumped to make every node drop its open connections.
    pub drop_connections: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            unreachable: AtomicBool::new(false),
            slow_write_ms: AtomicU64::new(0),
            stuck_in_app: AtomicBool::new(false),
            drop_connections: watch::channel(0).0,
        }
    }
}

impl Faults {
    /// The current write delay.
    #[must_use]
    pub fn write_delay(&self) -> Duration {
        Duration::from_millis(self.slow_write_ms.load(Ordering::Relaxed))
    }
    /// Whether nodes refuse connections.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }
}

/// One simulated cluster: identity, addresses, state and faults.
#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    /// This cluster's `[duplication-group]` id.
    pub cluster_id: i8,
    pub config: SimConfig,
    pub metas: Vec<SocketAddr>,
    pub replicas: Vec<SocketAddr>,
    pub directory: Directory,
    pub faults: Faults,
    state: Mutex<State>,
}

impl Cluster {
    /// A cluster with no tables.
    #[must_use]
    pub fn new(
        name: &str,
        cluster_id: i8,
        config: SimConfig,
        metas: Vec<SocketAddr>,
        replicas: Vec<SocketAddr>,
        directory: Directory,
    ) -> Self {
        let state = State {
            leader: 0,
            apps: BTreeMap::new(),
            next_app_id: 1,
            nodes: vec![Node::default(); replicas.len()],
        };
        Self {
            name: name.to_string(),
            cluster_id,
            config,
            metas,
            replicas,
            directory,
            faults: Faults::default(),
            state: Mutex::new(state),
        }
    }

    /// Locks the state; never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a handler must not wedge the whole simulated cluster.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current leader meta's address.
    #[must_use]
    pub fn leader_addr(&self) -> SocketAddr {
        self.metas[self.lock().leader % self.metas.len()]
    }

    /// Comma-joined meta list, as `[pegasus.clusters]` and follower envs spell it.
    #[must_use]
    pub fn meta_list(&self) -> String {
        self.metas
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Microseconds since the Unix epoch.
#[must_use]
pub fn now_us() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now_secs() -> i64 {
    now_us() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_values_follow_the_meta_validator() {
        assert_eq!(
            Deny::parse("timeout*write"),
            Some(Deny {
                reconfig: false,
                read: false,
                write: true
            })
        );
        assert_eq!(
            Deny::parse("reconfig*all"),
            Some(Deny {
                reconfig: true,
                read: true,
                write: true
            })
        );
        assert_eq!(Deny::parse("delay*all"), None);
        assert_eq!(Deny::parse("timeout"), None);
        assert_eq!(Deny::parse("timeout*writes"), None);
    }
}
