//! Owns the versioned JSON plan document (`plan --json`, `show --json`) and its mapping from
//! the internal plan.

use serde::{Deserialize, Serialize};

use crate::plan::file::{SavedPlan, TOOL_VERSION};
use crate::plan::{
    Action, Blocker, ClusterChange, Plan, StepDetail, StepKind, Summary, TableFacts,
};

/// Version of the JSON document; minor bumps add fields, major bumps break readers.
pub const FORMAT_VERSION: &str = "1.2";

/// The plan as JSON consumers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDocument {
    pub format_version: String,
    pub tool_version: String,
    pub spec_file: String,
    pub spec_hash: String,
    pub summary: Summary,
    pub has_changes: bool,
    /// Cluster-wide changes around the cut-overs (1.1).
    #[serde(default)]
    pub cluster_changes: Vec<ClusterChange>,
    pub tables: Vec<TableView>,
}

/// One table in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableView {
    pub table: String,
    pub from: String,
    pub to: String,
    pub action: Action,
    pub phase: Option<StepKind>,
    pub steps: Vec<StepView>,
    pub blockers: Vec<Blocker>,
    pub notes: Vec<String>,
    /// (1.1)
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Partitions, lag now and at the previous plan (1.2).
    #[serde(default)]
    pub facts: TableFacts,
}

/// One remaining step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub step: StepKind,
    pub number: usize,
    pub detail: StepDetail,
}

impl PlanDocument {
    /// The document for `plan`, made from `spec_file` with hash `spec_hash`.
    #[must_use]
    pub fn new(plan: &Plan, spec_file: &str, spec_hash: &str) -> Self {
        let tables = plan
            .tables
            .iter()
            .map(|t| TableView {
                table: t.table.clone(),
                from: t.from.clone(),
                to: t.to.clone(),
                action: t.action,
                phase: t.phase,
                steps: t
                    .steps
                    .iter()
                    .map(|s| StepView {
                        step: s.kind,
                        number: number(s.kind),
                        detail: s.detail.clone(),
                    })
                    .collect(),
                blockers: t.blockers.clone(),
                notes: t.notes.clone(),
                warnings: t.warnings.clone(),
                facts: t.facts.clone(),
            })
            .collect();
        Self {
            format_version: FORMAT_VERSION.into(),
            tool_version: TOOL_VERSION.into(),
            spec_file: spec_file.into(),
            spec_hash: spec_hash.into(),
            summary: plan.summary(),
            has_changes: plan.has_changes(),
            cluster_changes: plan.cluster_changes.clone(),
            tables,
        }
    }

    /// The document of a saved plan.
    #[must_use]
    pub fn of_saved(saved: &SavedPlan) -> Self {
        Self::new(&saved.plan, &saved.spec_file, &saved.spec_hash)
    }
}

/// The step's position among the eight (1-based).
#[must_use]
pub fn number(kind: StepKind) -> usize {
    StepKind::ALL
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i + 1)
}

/// Writes the document as pretty JSON.
///
/// # Errors
/// The writer failed.
pub fn write(doc: &PlanDocument, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}
