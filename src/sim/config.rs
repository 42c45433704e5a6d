//! Defines the simulator's knobs: server version, node counts and every interval and rate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The Pegasus release a simulated cluster behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// 2.4/2.5: perf counters, silent duplication re-add (dupid 0 quirk), no host_port fields.
    V2_5,
    /// 2.6 (master): `partition_states`, `ERR_DUP_EXIST`, `/metrics`, host_port fields.
    V2_6,
}

impl Version {
    /// Whether 2.6-only features and fields are on.
    #[must_use]
    pub fn is_2_6(self) -> bool {
        self == Self::V2_6
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2_5 => "2.5",
            Self::V2_6 => "2.6",
        })
    }
}

impl FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "2.4" | "2.5" => Ok(Self::V2_5),
            "2.6" => Ok(Self::V2_6),
            other => Err(format!(
                "unknown Pegasus version {other:?} (expected 2.5 or 2.6)"
            )),
        }
    }
}

/// Timings and sizes of one simulated cluster. Real servers' values are in the comments; tests
/// shrink them (see `fidelity.md`).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The metas' and, unless listed in `master_replicas`, the replica servers' build.
    pub version: Version,
    /// Replica servers (by index) that run a master build behind 2.5 metas: a cluster mid-
    /// upgrade. They differ only where migrator depends on it: `server-info`, and the
    /// config-sync timer that `/updateConfig` does not re-arm.
    pub master_replicas: Vec<usize>,
    /// Number of meta servers (one is leader).
    pub metas: usize,
    /// Number of replica servers.
    pub replicas: usize,
    /// Replicas per partition (primary + secondaries), capped at `replicas`.
    pub replica_count: usize,
    /// `config_sync_interval_ms` at start-up: how often replica servers pull app envs from
    /// the meta (real default 30 s).
    pub config_sync_interval: Duration,
    /// `group_check_interval_ms`: a primary idle this long writes an empty mutation (code
    /// default 10 s on 2.5, 100 s on master; shipped config.ini 100 s).
    pub group_check_interval: Duration,
    /// `empty_write_disabled` at start-up (mutable): primaries write no empty mutation.
    pub empty_write_disabled: bool,
    /// `group_check_disabled` (not mutable): primaries run no group check at all.
    pub group_check_disabled: bool,
    /// `[security] enable_acl` / `enable_ranger_acl` (not mutable): replica servers check each
    /// client request's user before anything else; the simulator's clients never authenticate.
    pub enable_acl: bool,
    pub enable_ranger_acl: bool,
    /// How often the duplication engine advances states and ships.
    pub dup_tick: Duration,
    /// Duplication sync between primaries and the meta (real: 10 s).
    pub dup_sync_interval: Duration,
    /// Least time between two persists of one partition's confirmed decree (real: 5 s).
    pub dup_persist_period: Duration,
    /// How long a meta-side duplication change is "being persisted" (a ZooKeeper write).
    pub meta_persist_delay: Duration,
    /// How long after a replica server dies the meta declares it dead (`fd_grace_seconds`,
    /// shipped config 22 s).
    pub failure_detect: Duration,
    /// How long a primary's emergency checkpoint takes to flush once asked for in DS_PREPARE
    /// (`prepare_dup`).
    pub checkpoint_delay: Duration,
    /// Most mutations shipped per second per partition.
    pub ship_rate: u32,
    /// Most mutations in one duplicate RPC.
    pub ship_batch: usize,
    /// Deadline of RPCs the simulator itself sends (create follower, duplicate).
    pub rpc_timeout: Duration,
    /// Deadline of a replica server's config-sync RPC: rDSN's default RPC timeout, 5 s
    /// (`rpc_timeout_milliseconds`, `task_spec.h`; `config.ini` `[task..default]`).
    pub config_sync_rpc_timeout: Duration,
    /// `update_rdb_stat_interval`: how often a replica refreshes its RocksDB statistics, the
    /// estimated key count among them (real: 60 s).
    pub rdb_stat_interval: Duration,
}

impl SimConfig {
    /// Settings for fast tests: 100 ms config sync, 300 ms group check, quick checkpoints.
    #[must_use]
    pub fn fast(version: Version) -> Self {
        Self {
            version,
            master_replicas: Vec::new(),
            metas: 3,
            replicas: 3,
            replica_count: 3,
            config_sync_interval: Duration::from_millis(100),
            group_check_interval: Duration::from_millis(300),
            empty_write_disabled: false,
            group_check_disabled: false,
            enable_acl: false,
            enable_ranger_acl: false,
            dup_tick: Duration::from_millis(20),
            dup_sync_interval: Duration::from_millis(100),
            dup_persist_period: Duration::from_millis(50),
            meta_persist_delay: Duration::from_millis(20),
            failure_detect: Duration::from_millis(500),
            checkpoint_delay: Duration::from_millis(100),
            ship_rate: 50_000,
            ship_batch: 200,
            rpc_timeout: Duration::from_secs(2),
            config_sync_rpc_timeout: Duration::from_secs(5),
            rdb_stat_interval: Duration::from_millis(200),
        }
    }

    /// The build replica server `index` runs.
    #[must_use]
    pub fn replica_version(&self, index: usize) -> Version {
        if self.master_replicas.contains(&index) {
            Version::V2_6
        } else {
            self.version
        }
    }

    /// Default settings for `version`: 1 s config sync, 10 s group check and duplication
    /// sync, 3 s failure detection.
    #[must_use]
    pub fn default_for(version: Version) -> Self {
        Self {
            version,
            ..Self::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            config_sync_interval: Duration::from_secs(1),
            group_check_interval: Duration::from_secs(10),
            dup_sync_interval: Duration::from_secs(10),
            dup_persist_period: Duration::from_secs(5),
            meta_persist_delay: Duration::from_millis(50),
            failure_detect: Duration::from_secs(3),
            checkpoint_delay: Duration::from_millis(500),
            dup_tick: Duration::from_millis(50),
            rdb_stat_interval: Duration::from_secs(60),
            ..Self::fast(Version::V2_5)
        }
    }
}
