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
}

/// The source table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceApp {
    pub app_id: i32,
    /// `AS_AVAILABLE`, `AS_DROPPED`, ...
    pub status: String,
    pub partition_count: i32,
    pub envs: BTreeMap<String, String>,
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
