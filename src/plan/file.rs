//! Owns the saved plan file: `Plan` plus the spec it came from, the spec's hash, the tool
//! version and each table's fingerprint, as versioned JSON bytes.
//!
//! Pure: bytes in, bytes out (`cli` reads and writes the file).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use super::Plan;
use crate::spec::Spec;

/// Format of the saved plan file; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
/// This tool's version, recorded in every saved plan.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plan saved by `migrator plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub tool_version: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    pub spec_file: String,
    /// FNV-1a 64 of the plan file's bytes (change detection, not tamper-proofing).
    pub spec_hash: String,
    pub spec: Spec,
    pub plan: Plan,
    pub fingerprints: BTreeMap<String, Fingerprint>,
}

/// Why bytes are not a usable saved plan.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not JSON of a saved plan.
    #[error("not a migrator plan file: {0}")]
    NotAPlan(String),
    /// A format this tool cannot read.
    #[error("plan file format {found} is not supported (this tool reads format {FORMAT_VERSION})")]
    UnsupportedFormat { found: u32 },
    /// Made by another version of the tool.
    #[error("plan was made by migrator {found}, this is {TOOL_VERSION}: plan again")]
    OtherToolVersion { found: String },
}

/// The spec hash recorded in plans.
#[must_use]
pub fn spec_hash(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// Encodes a saved plan.
#[must_use]
pub fn to_bytes(plan: &SavedPlan) -> Vec<u8> {
    // Compact: a plan of 1,000 tables is megabytes, and `show` renders it for people anyway.
    let mut bytes = serde_json::to_vec(plan).expect("plans serialize");
    bytes.push(b'\n');
    bytes
}

/// Decodes a saved plan, checking format and tool version.
///
/// # Errors
/// [`FileError`] naming why the bytes cannot be used.
pub fn from_bytes(bytes: &[u8]) -> Result<SavedPlan, FileError> {
    let head: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FileError::NotAPlan(e.to_string()))?;
    let found = head
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| FileError::NotAPlan("no format_version".into()))?;
    if found != u64::from(FORMAT_VERSION) {
        return Err(FileError::UnsupportedFormat {
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let plan: SavedPlan =
        serde_json::from_value(head).map_err(|e| FileError::NotAPlan(e.to_string()))?;
    if plan.tool_version != TOOL_VERSION {
        return Err(FileError::OtherToolVersion {
            found: plan.tool_version,
        });
    }
    Ok(plan)
}
