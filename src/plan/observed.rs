//! Defines what the planner knows about the world: a read-only snapshot per table of the
//! source table, its duplications to the target, data versions, the target's table and the
//! routing node. Plain data, filled by `observe` and by tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything one plan was computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Per table (the spec's table names).
    pub tables: BTreeMap<String, TableObs>,
    /// Per cluster of the plan: facts about its servers.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterObs>,
    /// Per listed meta-proxy (`host:port`): whether it can relay a master (2.6) meta's
    /// answers.
    #[serde(default)]
    pub proxy_relays_master: BTreeMap<String, Relays>,
    /// Per cluster of the plan: live replica servers whose flags stop the empty write a 2.5
    /// drain waits for.
    #[serde(default)]
    pub no_empty_write: BTreeMap<String, NoEmptyWrite>,
    /// Per cluster: the servers with access control on.
    #[serde(default)]
    pub access_control: BTreeMap<String, AccessControl>,
}

/// Replica servers (`host:port`) on which an idle primary writes no empty mutation, by the
/// flag that stops it (`/config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoEmptyWrite {
    /// `empty_write_disabled` is true (mutable: `/updateConfig` can clear it).
    pub empty_write_disabled: Vec<String>,
    /// `group_check_disabled` is true (not mutable: a config change and a restart).
    pub group_check_disabled: Vec<String>,
}

/// Replica servers (`host:port`) that check each client's user (`/config`, `[security]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessControl {
    /// `enable_acl` is true (and `enable_ranger_acl` false): the table's allowed users.
    pub legacy: Vec<String>,
    /// `enable_ranger_acl` is true: Ranger policies.
    pub ranger: Vec<String>,
}

/// One cluster's servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterObs {
    /// Master (2.6) servers: they send host_port fields, and their `/updateConfig` does not
    /// re-arm the config-sync timer.
    pub master: bool,
    /// `config_sync_interval_ms` per live replica server (`/config`).
    pub config_sync_ms: BTreeMap<String, u64>,
    /// `group_check_interval_ms`, the longest any live replica server reported.
    pub group_check_ms: Option<u64>,
    /// Replica servers the meta lists as dead.
    pub dead_nodes: Vec<String>,
    /// Live replica servers whose build does not re-arm the config-sync timer on
    /// `/updateConfig` (master builds, or a build not known to: `server-info`) — a 2.5 meta
    /// may front them mid-upgrade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed_sync_timer: Vec<String>,
}

impl ClusterObs {
    /// Whether lowering `config_sync_interval_ms` shortens every live server's period: a 2.5
    /// cluster all of whose replica servers re-arm their timer.
    #[must_use]
    pub fn speed_up_takes_effect(&self) -> bool {
        !self.master && self.fixed_sync_timer.is_empty()
    }
}

/// Whether a meta-proxy can relay a master meta's answers, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "relays", rename_all = "snake_case")]
pub enum Relays {
    Yes { evidence: String },
    No { evidence: String },
    Unknown,
}

/// One table's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableObs {
    /// The table on the source cluster; `None` if it does not exist there.
    pub source: Option<SourceApp>,
    /// Duplications of the source table to the target cluster.
    pub dups: Vec<DupObs>,
    /// Data version per replica server hosting the table (`"1"` is required).
    pub data_versions: BTreeMap<String, String>,
    /// The target cluster's table of the same name.
    pub target: TargetObs,
    /// The meta-proxy routing node, when the plan uses meta-proxy.
    pub routing: Option<RoutingObs>,
    /// What each listed meta-proxy answered for the table.
    #[serde(default)]
    pub proxies: Vec<ProxyObs>,
    /// The target table's `replica.deny_client_request`, when it exists and has one.
    #[serde(default)]
    pub target_deny: Option<String>,
    /// The state of migrator's block record for this table, when there is one (meta-proxy
    /// plans; read from `<migrator_root>/blocks/<source>/<table>`).
    #[serde(default)]
    pub block: Option<crate::cutover::record::BlockState>,
}

/// One meta-proxy's answer for a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyObs {
    pub addr: String,
    pub serves: ProxyServes,
}

/// Where a meta-proxy sends a table's clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ProxyServes {
    /// The table on this cluster of the plan.
    Cluster(String),
    /// Replica servers of no cluster in the plan.
    Elsewhere,
    /// An error in its answer.
    Error(String),
    /// No answer in time (a 2021 build behind a 2.6 meta answers nothing).
    NoAnswer,
    Unreachable(String),
}

/// The source table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceApp {
    pub app_id: i32,
    /// `AS_AVAILABLE`, `AS_DROPPED`, ...
    pub status: String,
    pub partition_count: i32,
    pub envs: BTreeMap<String, String>,
    /// Master's `atomic_idempotent`: incr and check-and-set keep working while duplicating.
    #[serde(default)]
    pub atomic_idempotent: bool,
    /// A bulk load is running on the table (`app_info.is_bulk_loading`).
    #[serde(default)]
    pub bulk_loading: bool,
}

/// One duplication to the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DupObs {
    pub dupid: i32,
    /// `DS_PREPARE`, `DS_APP`, `DS_LOG`, `DS_PAUSE`.
    pub status: String,
    /// Unshipped mutations of this table (sum over partitions), when known.
    pub lag: Option<i64>,
}

/// The target cluster's table of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetObs {
    /// No such table.
    #[default]
    Absent,
    /// The follower a duplication from the source created.
    Follower { app_id: i32 },
    /// A table that is not this source's follower.
    Unrelated { app_id: i32 },
}

/// The routing node `<root>/<table>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingObs {
    pub path: String,
    /// Node data and version; `None` when the node does not exist.
    pub node: Option<RoutingNode>,
}

/// A routing node's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingNode {
    pub data: String,
    pub version: i32,
    /// The cluster it names, when the data parses as a route.
    pub cluster_name: Option<String>,
    /// Why it does not parse, otherwise.
    pub invalid: Option<String>,
}
