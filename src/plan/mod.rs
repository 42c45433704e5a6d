//! Owns the plan: per table, what phase it is in and which of the eight steps remain (or why it
//! is blocked), computed purely from the spec and an observed snapshot.
//!
//! No I/O here: no sockets, files, clock or environment. `file` turns plans into bytes and back.

pub mod budget;
pub mod cutover;
pub mod file;
pub mod fingerprint;
pub mod observed;
pub mod planner;

use serde::{Deserialize, Serialize};

pub use observed::Observed;
pub use planner::plan;

use crate::spec::BlockMode;

/// What will happen to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing has started: every step remains.
    Migrate,
    /// Work has started (a duplication exists, writes are blocked, ...): the rest remains.
    Resume,
    /// The table already serves from the target; nothing to do.
    Done,
    /// Something needs an operator first.
    Blocked,
}

/// The eight steps of one table's life, in order (README.md, "Applying").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Preflight,
    Duplicate,
    Checkpoint,
    CatchUp,
    Verify,
    BlockWrites,
    Drain,
    Switch,
    Finish,
}

impl StepKind {
    /// Every step, in order.
    pub const ALL: [StepKind; 9] = [
        Self::Preflight,
        Self::Duplicate,
        Self::Checkpoint,
        Self::CatchUp,
        Self::Verify,
        Self::BlockWrites,
        Self::Drain,
        Self::Switch,
        Self::Finish,
    ];

    /// The name shown to operators.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Preflight => "preflight",
            Self::Duplicate => "duplicate",
            Self::Checkpoint => "checkpoint",
            Self::CatchUp => "catch up",
            Self::Verify => "verify",
            Self::BlockWrites => "block writes",
            Self::Drain => "drain",
            Self::Switch => "switch",
            Self::Finish => "finish",
        }
    }
}

/// One remaining step and what exactly it will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    pub detail: StepDetail,
}

/// The specifics of a step (what the renderers spell out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepDetail {
    /// Re-check the source, data versions, target and routing.
    Preflight,
    /// Add a checkpoint duplication, or reuse `dupid`.
    Duplicate { reuse_dupid: Option<i32> },
    /// Wait until the duplication reaches DS_LOG.
    Checkpoint { status: Option<String> },
    /// Wait until this table's lag is at most `threshold`.
    CatchUp { lag: Option<i64>, threshold: u64 },
    /// Compare the table on source and target; differences that do not settle stop the table
    /// before any write is blocked.
    Verify {
        mode: crate::spec::VerifyMode,
        /// Most source records read per second (none: no limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u64>,
    },
    /// Set the deny env and wait until every primary shows it in force; the write-block
    /// clock starts.
    BlockWrites {
        env_key: String,
        env_value: String,
        mode: BlockMode,
        max_write_block_ms: u64,
        /// What the budget is made of (absent in plans saved before it existed).
        #[serde(default)]
        budget: Option<budget::Budget>,
    },
    /// Wait until every partition's primary has shipped what it had prepared once the block
    /// was in force there.
    Drain {
        max_write_block_ms: u64,
        /// On a 2.5 source: the group-check period whose empty write ships the last write.
        #[serde(default)]
        empty_write_ms: Option<u64>,
    },
    /// Compare-and-set the routing node, then set `reconfig*all` on the source.
    Switch {
        routing: Option<RoutingChange>,
        source_env_value: String,
    },
    /// Record the result; optionally remove the duplication.
    Finish { remove_duplication: bool },
}

/// The routing node change a switch makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingChange {
    pub path: String,
    /// Version the compare-and-set expects.
    pub version: i32,
    pub before: String,
    pub after: String,
}

/// Why a table cannot proceed, and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// Stable identifier, e.g. `data_version_0`.
    pub code: String,
    pub reason: String,
    pub fix: String,
}

/// One table's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePlan {
    pub table: String,
    pub from: String,
    pub to: String,
    pub action: Action,
    /// The step the table is at (the first remaining one), if any remain.
    pub phase: Option<StepKind>,
    pub steps: Vec<Step>,
    pub blockers: Vec<Blocker>,
    /// Notes that do not block (e.g. no meta-proxy: manual cut-over).
    pub notes: Vec<String>,
    /// Things that will change for applications or operators (they do not block).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What a reviewer judges the risk by.
    #[serde(default)]
    pub facts: TableFacts,
}

/// Facts about a table for judging a plan's risk (shown beside it; they decide nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFacts {
    /// The source table's partition count.
    pub partitions: Option<i32>,
    /// Unshipped mutations now, when a duplication exists and reports it.
    pub lag: Option<i64>,
    /// The lag the previous saved plan saw, and how long before this one.
    pub lag_before: Option<LagSample>,
}

/// An earlier lag reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSample {
    pub lag: i64,
    pub seconds_ago: u64,
}

impl Plan {
    /// Adds each table's lag from `previous` (a plan saved `seconds_ago` earlier for the same
    /// tables and clusters), so the lag's trend shows.
    pub fn add_trend(&mut self, previous: &Plan, seconds_ago: u64) {
        for t in &mut self.tables {
            let before = previous
                .tables
                .iter()
                .find(|p| p.table == t.table && p.from == t.from && p.to == t.to)
                .and_then(|p| p.facts.lag);
            t.facts.lag_before = before
                .filter(|_| t.facts.lag.is_some())
                .map(|lag| LagSample { lag, seconds_ago });
        }
    }
}

/// A change to a cluster as a whole (not one table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterChange {
    pub cluster: String,
    /// What changes, e.g. `config_sync_interval_ms on 3 replica servers`.
    pub what: String,
    pub before: String,
    pub after: String,
    /// When it is undone, or why it is not applied.
    pub note: String,
    /// Whether apply will make the change.
    pub applied: bool,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub migrate: usize,
    pub resume: usize,
    pub done: usize,
    pub blocked: usize,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub tables: Vec<TablePlan>,
    /// Cluster-wide changes apply makes around the cut-overs.
    #[serde(default)]
    pub cluster_changes: Vec<ClusterChange>,
}

impl Plan {
    /// How many tables take each action.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for t in &self.tables {
            match t.action {
                Action::Migrate => s.migrate += 1,
                Action::Resume => s.resume += 1,
                Action::Done => s.done += 1,
                Action::Blocked => s.blocked += 1,
            }
        }
        s
    }

    /// Whether applying would change anything.
    #[must_use]
    pub fn has_changes(&self) -> bool {
        self.tables
            .iter()
            .any(|t| matches!(t.action, Action::Migrate | Action::Resume))
    }
}
