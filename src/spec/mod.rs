//! Owns the plan file's model: what the operator wants (clusters, routing, per-table moves),
//! the single place where defaults live, and the validated [`Spec`] the planner consumes.
//!
//! `load` reads and type-checks the YAML (file:line:column on every error); `validate` applies
//! the semantic rules; `locate` maps a YAML path back to its line and column.

pub mod load;
pub mod locate;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{load, load_str};

/// Plan file format this tool reads.
pub const SPEC_VERSION: u32 = 1;
/// Default most un-duplicated mutations of a table before writes are blocked.
pub const DEFAULT_THRESHOLD: u64 = 100_000;
/// Default hard deadline of a write block.
pub const DEFAULT_MAX_WRITE_BLOCK: Duration = Duration::from_secs(60);
/// Default meta-proxy root.
pub const DEFAULT_METAPROXY_ROOT: &str = "/pegasus/metaproxy";
/// Default root of migrator's own ZooKeeper nodes (locks, block records).
pub const DEFAULT_MIGRATOR_ROOT: &str = "/migrator";

/// How writes are blocked during the cut-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockMode {
    /// `timeout*write`: blocked writes get no reply (upstream's choice). Its evidence is
    /// silence, which a stalled primary gives too.
    Timeout,
    /// `reconfig*write`: blocked writes get `ERR_INVALID_STATE` — positive evidence the block
    /// holds — so clients re-resolve as soon as routing switches. The default.
    #[default]
    Reconfig,
}

/// Whether and how a table is compared before its writes are blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// No comparison.
    Off,
    /// Every key and expiry, and the values of a sample of hash keys.
    #[default]
    Sample,
    /// Every record's key, value and expiry.
    Full,
}

impl VerifyMode {
    /// The mode as the plan file spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Sample => "sample",
            Self::Full => "full",
        }
    }
}

impl BlockMode {
    /// The mode as the plan file spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Reconfig => "reconfig",
        }
    }

    /// The `replica.deny_client_request` value that blocks writes in this mode.
    #[must_use]
    pub fn deny_value(self) -> &'static str {
        match self {
            Self::Timeout => "timeout*write",
            Self::Reconfig => "reconfig*write",
        }
    }
}

impl fmt::Display for BlockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Reconfig => "reconfig",
        })
    }
}

/// The file as written (before defaults and semantic checks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub version: u32,
    pub clusters: BTreeMap<String, RawCluster>,
    #[serde(default)]
    pub metaproxy: Option<RawMetaproxy>,
    #[serde(default)]
    pub defaults: RawSettings,
    pub migrations: Vec<RawMigration>,
}

/// One cluster entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub meta: Vec<String>,
    /// Lower this cluster's replica `config_sync_interval_ms` to this while it is the source
    /// of a cut-over (restored afterwards).
    #[serde(default)]
    pub config_sync_during_cutover: Option<String>,
}

/// The meta-proxy section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetaproxy {
    pub zookeeper: Vec<String>,
    #[serde(default)]
    pub root: Option<String>,
    /// The meta-proxy instances clients use (`host:port`); each is asked before and after
    /// the switch.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Where migrator keeps its own nodes (locks, block records); never inside `root`.
    #[serde(default)]
    pub migrator_root: Option<String>,
}

/// Settings that `defaults` sets and each migration may override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub threshold: Option<u64>,
    pub max_write_block: Option<String>,
    pub block_mode: Option<BlockMode>,
    pub remove_duplication: Option<bool>,
    pub verify: Option<VerifyMode>,
    pub verify_rate: Option<u64>,
    pub verify_parallelism: Option<usize>,
}

/// One table to move.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub table: String,
    pub from: String,
    pub to: String,
    pub threshold: Option<u64>,
    pub max_write_block: Option<String>,
    pub block_mode: Option<BlockMode>,
    pub remove_duplication: Option<bool>,
    pub verify: Option<VerifyMode>,
    pub verify_rate: Option<u64>,
    pub verify_parallelism: Option<usize>,
}

/// A validated plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub clusters: BTreeMap<String, ClusterSpec>,
    pub metaproxy: Option<MetaproxySpec>,
    pub migrations: Vec<Migration>,
}

/// A cluster's meta servers (`host:port`, at least two) and cut-over settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub meta: Vec<String>,
    /// `config_sync_interval_ms` while this cluster is the source of a cut-over.
    #[serde(
        default,
        with = "opt_duration_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_sync_during_cutover: Option<Duration>,
}

/// Where meta-proxy keeps its routing, and the instances clients use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaproxySpec {
    pub zookeeper: Vec<String>,
    pub root: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Root of migrator's own nodes: `<migrator_root>/locks/<table>`,
    /// `<migrator_root>/blocks/<cluster>/<table>`.
    #[serde(default = "default_migrator_root")]
    pub migrator_root: String,
}

fn default_migrator_root() -> String {
    DEFAULT_MIGRATOR_ROOT.to_string()
}

/// One table's move with every setting resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub table: String,
    pub from: String,
    pub to: String,
    pub threshold: u64,
    #[serde(with = "duration_ms")]
    pub max_write_block: Duration,
    pub block_mode: BlockMode,
    pub remove_duplication: bool,
    /// The comparison before the block (older saved plans: the default).
    #[serde(default)]
    pub verify: VerifyMode,
    /// Most source records that comparison reads per second (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_rate: Option<u64>,
    /// Partition groups that comparison reads at once (none: the gate's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_parallelism: Option<usize>,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[allow(clippy::ref_option)] // serde's `with` passes a reference to the field
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|o| o.map(Duration::from_millis))
    }
}

/// Parses `90s`, `500ms`, `2m`, `1m30s`, `1h`.
///
/// # Errors
/// Text that is not a sequence of `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {text:?}: expected e.g. 60s, 500ms, 2m or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_combinations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "60", "s", "1.5s", "10 s", "-1s", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
