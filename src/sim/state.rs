//! Owns one simulated cluster's shared state: tables, partitions with their data and decrees,
//! duplications, the envs each replica node has applied, fault switches, and the wake-ups of
//! the loops that act on them.
//!
//! State sits behind a `std::sync::Mutex` that is never held across an `.await`; every
//! operation takes the lock, changes plain data, and releases it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;

use super::config::SimConfig;
use super::synctrouble::{Pid, SyncTrouble};
use super::wakes::Wakes;
use crate::pegasus::messages::apps::AppStatus;
use crate::pegasus::messages::duplication::{DuplicationFailMode, DuplicationStatus};

pub use crate::pegasus::envs::{
    DENY_ENV, FOLLOWER_STATUS_ENV, MASTER_APP_NAME_ENV, MASTER_CLUSTER_ENV, MASTER_METAS_ENV,
};

/// What other clusters this one knows (`[pegasus.clusters]` and `[duplication-group]`), and
/// the switches shared by everything in one simulated world (the meta-proxies' ZooKeeper
/// sessions).
#[derive(Debug, Clone)]
pub struct Directory {
    peers: Arc<Mutex<BTreeMap<String, Peer>>>,
    /// Bumped to end every meta-proxy watch, as a ZooKeeper session expiry does.
    metaproxy_sessions: Arc<watch::Sender<u64>>,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            peers: Arc::default(),
            metaproxy_sessions: Arc::new(watch::channel(0).0),
        }
    }
}

impl Directory {
    /// What meta-proxies watch to learn their sessions expired.
    #[must_use]
    pub fn metaproxy_sessions(&self) -> watch::Receiver<u64> {
        self.metaproxy_sessions.subscribe()
    }

    /// Expires every meta-proxy's ZooKeeper session: all their watches end.
    pub fn expire_metaproxy_sessions(&self) {
        self.metaproxy_sessions.send_modify(|g| *g += 1);
    }
}

/// A cluster as seen from another one.
#[derive(Debug, Clone)]
pub struct Peer {
    pub metas: Vec<SocketAddr>,
    pub cluster_id: i8,
}

impl Directory {
    /// Registers a cluster.
    pub fn insert(&self, name: &str, peer: Peer) {
        self.peers
            .lock()
            .expect("directory lock")
            .insert(name.to_string(), peer);
    }
    /// Looks a cluster up by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Peer> {
        self.peers
            .lock()
            .expect("directory lock")
            .get(name)
            .cloned()
    }
    /// Whether some cluster has duplication-group id `id`.
    #[must_use]
    pub fn knows_id(&self, id: i8) -> bool {
        self.peers
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

/// The task code of a primary's empty write (group check); never shipped.
pub const EMPTY_WRITE: &str = "RPC_REPLICATION_WRITE_EMPTY";

/// The task code of mutations a duplication master shipped here; logged, never forwarded.
pub const DUPLICATE_WRITE: &str = "RPC_RRDB_RRDB_DUPLICATE";

/// `[replication] duplicate_log_batch_bytes`: a duplicator sends what it gathered once it
/// reaches this many bytes, or at its batch's last mutation.
pub const DUPLICATE_LOG_BATCH_BYTES: usize = 4096;

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
    /// Absolute expiry in seconds since 2016-01-01 UTC; 0 = never (`pegasus_utils.h`).
    pub expire_ts: u32,
}

pub use crate::pegasus::key::epoch_now as pegasus_now;

impl Record {
    /// Whether the record has expired at `now` (Pegasus epoch seconds): reads skip it.
    #[must_use]
    pub fn expired(&self, now: u32) -> bool {
        self.expire_ts > 0 && self.expire_ts <= now
    }
}

/// One partition: its replicas, data and decrees. The data is shared by its replicas, so a
/// failover never loses an acknowledged write.
#[derive(Debug, Clone)]
pub struct Partition {
    pub primary: usize,
    pub secondaries: Vec<usize>,
    pub ballot: i64,
    pub last_committed: i64,
    pub data: BTreeMap<Vec<u8>, Record>,
    pub log: VecDeque<Mutation>,
    /// The primary's last prepare (client write or empty write): group check writes an empty
    /// mutation once it is `group_check_interval` old.
    pub last_prepare: Instant,
    /// When the current primary took over; its group-check rounds run from here.
    pub primary_since: Instant,
    /// Group-check rounds the current primary has run.
    pub group_checks: u64,
    /// The estimated key count as last refreshed, and when (see `estimated_keys`).
    pub key_estimate: (u64, Instant),
    /// Observation only, not server state: keys last changed by a write this primary admitted
    /// before the table's write deny reached it and committed after (a stalled primary). No
    /// RPC shows such a write while it waits (`last_prepared_decree` counts logged mutations
    /// only), so no tool can wait for it before the switch; the simulation's check at the
    /// switch leaves these keys to the checks on acknowledged writes.
    pub landed_under_block: BTreeSet<Vec<u8>>,
    /// Per replica server: client writes it logged as this partition's primary that wait for
    /// their commit (slow secondaries): its `last_prepared_decree` counts them.
    pub logged_uncommitted: BTreeMap<usize, u32>,
}

impl Partition {
    /// A partition served by `primary` and `secondaries`, with no data.
    #[must_use]
    pub fn new(primary: usize, secondaries: Vec<usize>) -> Self {
        let now = Instant::now();
        Self {
            primary,
            secondaries,
            ballot: 1,
            last_committed: 0,
            data: BTreeMap::new(),
            log: VecDeque::new(),
            last_prepare: now,
            primary_since: now,
            group_checks: 0,
            key_estimate: (0, now),
            landed_under_block: BTreeSet::new(),
            logged_uncommitted: BTreeMap::new(),
        }
    }

    /// The `last_prepared_decree` server `node` reports: what it committed, plus the writes it
    /// logged as primary that wait for their commit.
    #[must_use]
    pub fn last_prepared_on(&self, node: usize) -> i64 {
        let logged = self.logged_uncommitted.get(&node).copied().unwrap_or(0);
        self.last_committed + i64::from(logged)
    }

    /// RocksDB's estimated key count as a replica reports it: refreshed at most every
    /// `interval` (`update_rdb_stat_interval`), so up to that old. Simplified: records as
    /// held (expired ones included); RocksDB also counts overwritten versions and deletes until
    /// a compaction (`update_replica_rocksdb_statistics`).
    pub fn estimated_keys(&mut self, interval: Duration) -> u64 {
        let now = Instant::now();
        if now.duration_since(self.key_estimate.1) >= interval {
            self.key_estimate = (self.data.len() as u64, now);
        }
        self.key_estimate.0
    }

    /// Whether `node` holds a replica of this partition.
    #[must_use]
    pub fn hosted_on(&self, node: usize) -> bool {
        self.primary == node || self.secondaries.contains(&node)
    }

    /// Makes `node` the primary under a higher ballot; the old primary stays a secondary if
    /// `keep_old`, else it leaves the configuration.
    pub fn promote(&mut self, node: usize, keep_old: bool) {
        let old = self.primary;
        self.secondaries.retain(|&n| n != node && n != old);
        if keep_old && old != node {
            self.secondaries.push(old);
        }
        self.primary = node;
        self.ballot += 1;
        self.primary_since = Instant::now();
        self.last_prepare = self.primary_since;
        self.group_checks = 0;
    }
}

/// One partition's duplication progress, on its primary and on the meta.
#[derive(Debug, Clone)]
pub struct DupPartition {
    /// The primary has a duplicator for this duplication (created at its server's
    /// duplication sync).
    pub duplicator: bool,
    /// Primary: the status its duplicator last learned from its server's duplication sync;
    /// it ships only once that is DS_LOG (`start_dup_log`), and `/replica/duplication` says
    /// `duplicating` only then.
    pub replica_status: DuplicationStatus,
    /// Primary: when the emergency checkpoint that covers its start point is flushed
    /// (`prepare_dup`, asked in DS_PREPARE); `None` until asked.
    pub checkpoint_ready_at: Option<Instant>,
    /// Primary: `checkpoint_has_prepared`, computed only while a sync reply is handled.
    pub checkpoint_prepared: bool,
    /// Meta: `checkpoint_prepared` as this partition's primary last reported it.
    pub meta_prepared: bool,
    /// Where a brand-new duplicator starts while the meta has no confirmed decree yet.
    pub start_decree: i64,
    /// Primary: highest decree shipped and acknowledged by the remote (`last_decree`).
    pub last_decree: i64,
    /// Primary: the meta's stored confirmed decree, as its last duplication sync returned it.
    pub replica_confirmed: i64,
    /// Meta: the persisted confirmed decree (−1 until the first persist).
    pub confirmed: i64,
    /// Meta (master): last committed decree the primary last reported; −1 when unknown.
    pub reported_lcd: i64,
    /// Meta: from when this partition's progress is initialised (listed in
    /// `partition_states`); `None` while it is not.
    pub inited_at: Option<Instant>,
    /// Meta: when the confirmed decree was last persisted.
    pub persisted_at: Option<Instant>,
    /// A duplicate RPC is in flight.
    pub shipping: bool,
    /// Mutations shipped.
    pub shipped: u64,
    /// Recent shipping rate in mutations per second (2.5 counters).
    pub ship_rate: f64,
}

impl DupPartition {
    /// Progress of a new duplication whose checkpoint covers decrees up to `start_decree`.
    #[must_use]
    pub fn new(start_decree: i64) -> Self {
        Self {
            duplicator: false,
            replica_status: DuplicationStatus::DS_INIT,
            checkpoint_ready_at: None,
            checkpoint_prepared: false,
            meta_prepared: false,
            start_decree,
            last_decree: start_decree,
            replica_confirmed: -1,
            confirmed: -1,
            reported_lcd: -1,
            inited_at: Some(Instant::now()),
            persisted_at: None,
            shipping: false,
            shipped: 0,
            ship_rate: 0.0,
        }
    }

    /// Its primary's duplicator is gone (the primary moved): the next primary builds its own.
    pub fn drop_duplicator(&mut self) {
        self.duplicator = false;
        self.replica_status = DuplicationStatus::DS_INIT;
        self.checkpoint_ready_at = None;
        self.checkpoint_prepared = false;
    }

    /// Whether its primary's duplicator runs its shipping pipeline: it learned DS_LOG and
    /// the meta's confirmed decree (`load_from_private_log` waits for it).
    #[must_use]
    pub fn ships(&self) -> bool {
        self.duplicator
            && self.replica_status == DuplicationStatus::DS_LOG
            && self.replica_confirmed >= 0
    }

    /// Whether the meta lists this partition in `partition_states`.
    #[must_use]
    pub fn is_inited(&self) -> bool {
        self.inited_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Lowest decree the private log must keep for this duplication: a new primary re-ships
    /// from the meta's confirmed decree.
    #[must_use]
    pub fn log_floor(&self) -> i64 {
        self.last_decree.min(self.confirmed.max(self.start_decree))
    }
}

/// One duplication of a table.
#[derive(Debug, Clone)]
pub struct Dup {
    pub dupid: i32,
    pub remote: String,
    /// The status as the meta last set it; while [`Dup::is_altering`] it is not yet
    /// persisted, and duplication sync still answers `prev_status`.
    pub status: DuplicationStatus,
    /// The status before the last change.
    pub prev_status: DuplicationStatus,
    pub fail_mode: DuplicationFailMode,
    pub create_ts_ms: i64,
    pub remote_app_name: String,
    pub remote_replica_count: i32,
    /// Progress per partition.
    pub parts: Vec<DupPartition>,
    /// When the current status began (drives the checkpoint delay).
    pub status_since: Instant,
    /// A status step (create follower, copy checkpoint) is in flight.
    pub busy: bool,
    /// A duplication sync found every checkpoint prepared in DS_PREPARE: the meta sends the
    /// follower's create (the engine does, and clears this).
    pub create_due: bool,
    /// The follower table is healthy, its checkpoint copied: the next duplication sync in
    /// DS_APP moves to DS_LOG.
    pub follower_ready: bool,
    /// A status change is being persisted until then; a modify meanwhile gets `ERR_BUSY`.
    pub altering_until: Option<Instant>,
}

impl Dup {
    /// Whether a status change is still being persisted.
    #[must_use]
    pub fn is_altering(&self) -> bool {
        self.altering_until.is_some_and(|t| Instant::now() < t)
    }

    /// The persisted status: what a duplication sync hands the primaries
    /// (`duplication_info::to_duplication_entry` carries `_status`, never `_next_status`).
    #[must_use]
    pub fn committed_status(&self) -> DuplicationStatus {
        if self.is_altering() {
            self.prev_status
        } else {
            self.status
        }
    }

    /// Moves to `to`, persisted `persist` from now.
    pub fn alter(&mut self, to: DuplicationStatus, persist: Duration) {
        self.prev_status = self.committed_status();
        self.status = to;
        self.status_since = Instant::now();
        self.altering_until = Some(self.status_since + persist);
    }
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
    /// The envs the table was created with: what replicas report in their app info, which
    /// config sync never updates.
    pub created_envs: BTreeMap<String, String>,
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
    /// Lowest decree the private log of `pidx` must keep for the duplications.
    #[must_use]
    pub fn log_floor(&self, pidx: usize) -> Option<i64> {
        self.dups.values().map(|d| d.parts[pidx].log_floor()).min()
    }
}

/// A replica server: whether it runs, its runtime flags, and the deny flags it applied at its
/// last config sync.
#[derive(Debug, Clone)]
pub struct Node {
    /// The process runs (it refuses connections otherwise).
    pub alive: bool,
    /// What the meta's failure detector believes; lags `alive` by `failure_detect`.
    pub listed_alive: bool,
    /// When the meta last heard from it; the failure detector counts from here.
    pub last_beacon: Instant,
    /// Bumped at every restart: background loops start over, runtime flags are forgotten.
    pub epoch: u64,
    /// `config_sync_interval_ms` as `/config` shows it (changed by `/updateConfig`).
    pub config_sync_interval_ms: u32,
    /// `empty_write_disabled` as `/config` shows it (changed by `/updateConfig`).
    pub empty_write_disabled: bool,
    /// `replica.deny_client_request` as each replica here applied it at a config sync, per
    /// partition (a replica that ignored an older-ballot reply keeps what it had).
    pub deny: BTreeMap<Pid, Deny>,
    /// Replicas here that are duplication masters, as of the config sync each applied
    /// (`_is_duplication_master = info.duplicating`, `replica::on_config_sync`).
    pub dup_masters: BTreeSet<Pid>,
    /// Replicas here that serve no client (`PS_INACTIVE`) until a config sync applies their
    /// partition: the server lost the meta, or restarted.
    pub inactive: BTreeSet<Pid>,
    /// What delays this server's config sync (faults, the meta persisting a change).
    pub trouble: SyncTrouble,
    /// Open scanners of the replicas on this server.
    pub scanners: super::scan::Scanners,
    /// When its last config sync ran (wall ms; 0: never).
    pub last_sync_ms: u64,
}

impl Node {
    /// A running node with the configured flags.
    #[must_use]
    pub fn new(config: &SimConfig) -> Self {
        Self {
            alive: true,
            listed_alive: true,
            last_beacon: Instant::now(),
            epoch: 0,
            config_sync_interval_ms: millis(config.config_sync_interval),
            empty_write_disabled: config.empty_write_disabled,
            deny: BTreeMap::new(),
            dup_masters: BTreeSet::new(),
            inactive: BTreeSet::new(),
            trouble: SyncTrouble::default(),
            scanners: super::scan::Scanners::new(crate::clock::now_ms()),
            last_sync_ms: 0,
        }
    }
}

/// `d` in whole milliseconds, as a u32 flag value.
#[must_use]
pub fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Mutable cluster state.
#[derive(Debug, Default)]
pub struct State {
    pub leader: usize,
    pub apps: BTreeMap<i32, App>,
    pub next_app_id: i32,
    pub nodes: Vec<Node>,
    /// Every change of `replica.deny_client_request`, on the meta and as each server applied
    /// it (a simulation's checks read it; a change a sync does not make is not logged).
    pub deny_log: Vec<DenyEvent>,
}

/// One change of the deny env, with the true time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyEvent {
    /// The meta took a new value (`None`: deleted).
    Meta {
        at_ms: u64,
        app_id: i32,
        value: Option<String>,
    },
    /// Replica server `node`'s replica of partition `pidx` applied a new value at a config
    /// sync (or forgot it: a restart, a replica no longer listed).
    Applied {
        at_ms: u64,
        node: usize,
        app_id: i32,
        pidx: usize,
        deny: Option<Deny>,
    },
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
    /// Bumped to make one replica server drop its open connections (it went down).
    pub node_drops: Vec<watch::Sender<u64>>,
    /// Extra delay before replica servers answer data writes, in ms.
    pub slow_write_ms: AtomicU64,
    /// Network latency added to every data RPC answer of the replica servers, in ms.
    pub rpc_latency_ms: AtomicU64,
    /// Duplications never leave DS_APP.
    pub stuck_in_app: AtomicBool,
    /// Bumped to make every node drop its open connections.
    pub drop_connections: watch::Sender<u64>,
    /// Faults that strike a table's next N events, with how many are left.
    pub counted: std::sync::Mutex<BTreeMap<(Counted, String), usize>>,
    /// Per replica server: client writes that pass its checks are logged and committed this
    /// many ms later (a stalled primary).
    pub stall_ms: Vec<AtomicU64>,
    /// Per replica server: client writes that pass its checks are logged at once and committed
    /// this many ms later (slow secondaries).
    pub commit_lag_ms: Vec<AtomicU64>,
}

/// A fault that strikes the next N events of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counted {
    /// Shipped duplicate entries this cluster acknowledges and drops (a silently lost batch,
    /// as upstream issue #2284 describes): `sim.fault dup_drop`.
    DupDrop,
    /// Scanner batches that end as if the iteration time limit passed: `sim.fault scan_slow`.
    ScanSlow,
    /// Scanner calls a read-throttled replica refuses (`ERR_BUSY`): `sim.fault read_busy`.
    ReadBusy,
    /// Scanner batches that run out of time before they read a record (a long run of expired
    /// or deleted records): `sim.fault scan_stuck`.
    ScanStuck,
}

impl Counted {
    /// The fault of `sim.fault NAME TABLE N`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "dup_drop" => Some(Self::DupDrop),
            "scan_slow" => Some(Self::ScanSlow),
            "read_busy" => Some(Self::ReadBusy),
            "scan_stuck" => Some(Self::ScanStuck),
            _ => None,
        }
    }
}

impl Faults {
    /// Switches for a cluster of `replicas` replica servers.
    #[must_use]
    pub fn new(replicas: usize) -> Self {
        Self {
            unreachable: AtomicBool::new(false),
            node_drops: (0..replicas).map(|_| watch::channel(0).0).collect(),
            slow_write_ms: AtomicU64::new(0),
            rpc_latency_ms: AtomicU64::new(0),
            stuck_in_app: AtomicBool::new(false),
            drop_connections: watch::channel(0).0,
            counted: std::sync::Mutex::default(),
            stall_ms: (0..replicas).map(|_| AtomicU64::new(0)).collect(),
            commit_lag_ms: (0..replicas).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Makes `fault` strike the next `n` events of `table`.
    pub fn arm(&self, fault: Counted, table: &str, n: usize) {
        let mut counted = self.counted.lock().expect("counted faults lock");
        counted.insert((fault, table.to_string()), n);
    }

    /// How many events of `table` `fault` has yet to strike.
    #[must_use]
    pub fn left(&self, fault: Counted, table: &str) -> usize {
        let counted = self.counted.lock().expect("counted faults lock");
        counted
            .get(&(fault, table.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// How many of `events` more events of `table` `fault` strikes (and counts them off).
    #[must_use]
    pub fn strike(&self, fault: Counted, table: &str, events: usize) -> usize {
        let mut counted = self.counted.lock().expect("counted faults lock");
        let Some(left) = counted.get_mut(&(fault, table.to_string())) else {
            return 0;
        };
        let n = (*left).min(events);
        *left -= n;
        n
    }

    /// How long server `node` stalls the writes it admits.
    #[must_use]
    pub fn stall(&self, node: usize) -> Duration {
        Duration::from_millis(
            self.stall_ms
                .get(node)
                .map_or(0, |s| s.load(Ordering::Relaxed)),
        )
    }

    /// How long server `node` takes to commit a write it logged (slow secondaries).
    #[must_use]
    pub fn commit_lag(&self, node: usize) -> Duration {
        Duration::from_millis(
            self.commit_lag_ms
                .get(node)
                .map_or(0, |s| s.load(Ordering::Relaxed)),
        )
    }

    /// The current write delay.
    #[must_use]
    pub fn write_delay(&self) -> Duration {
        Duration::from_millis(self.slow_write_ms.load(Ordering::Relaxed))
    }
    /// The network latency every data RPC answer gets.
    #[must_use]
    pub fn rpc_latency(&self) -> Duration {
        Duration::from_millis(self.rpc_latency_ms.load(Ordering::Relaxed))
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
    /// Wakes the background loops when what they sleep on changes.
    pub wakes: Wakes,
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
            nodes: vec![Node::new(&config); replicas.len()],
            deny_log: Vec::new(),
        };
        Self {
            name: name.to_string(),
            cluster_id,
            config,
            metas,
            faults: Faults::new(replicas.len()),
            wakes: Wakes::new(replicas.len()),
            replicas,
            directory,
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
    i64::try_from(crate::clock::now_us()).unwrap_or(i64::MAX)
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
