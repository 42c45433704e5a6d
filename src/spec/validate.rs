//! Owns the plan file's semantic rules (supported version, at least two meta addresses per
//! cluster, addresses and durations well formed, every table once, known clusters, from ≠ to)
//! and the resolution of each migration's settings from `defaults`.
//!
//! Pure. Each problem names the YAML path it is about; `load` turns paths into positions.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{
    parse_duration, ClusterSpec, MetaproxySpec, Migration, RawMigration, RawSettings, RawSpec,
    Spec, DEFAULT_MAX_WRITE_BLOCK, DEFAULT_METAPROXY_ROOT, DEFAULT_THRESHOLD, SPEC_VERSION,
};

/// A rule violation at a YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Checks `raw` and resolves defaults.
///
/// # Errors
/// Every rule violation found.
pub fn validate(raw: &RawSpec) -> Result<Spec, Vec<Issue>> {
    let mut issues = Issues::default();
    if raw.version != SPEC_VERSION {
        issues.add(
            "version",
            format!(
                "unsupported version {}: this tool reads version {SPEC_VERSION}",
                raw.version
            ),
        );
    }
    let clusters = clusters(raw, &mut issues);
    let metaproxy = raw.metaproxy.as_ref().map(|m| metaproxy(m, &mut issues));
    let defaults = settings(&raw.defaults, &Resolved::default(), "defaults", &mut issues);
    let migrations = migrations(raw, &defaults, &mut issues);
    if issues.0.is_empty() {
        Ok(Spec {
            clusters,
            metaproxy,
            migrations,
        })
    } else {
        Err(issues.0)
    }
}

/// Whether `addr` is `host:port` with a non-empty host and a port in 1..=65535.
#[must_use]
pub fn is_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c));
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Whether `path` is an absolute ZooKeeper path below the root, without empty, `.` or `..`
/// parts.
fn is_zk_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && !path.contains("//")
        && !path.split('/').any(|part| part == "." || part == "..")
}

/// Whether `addr` names its host by an IPv6 literal (`[::1]:34601`).
fn is_ipv6_literal(addr: &str) -> bool {
    addr.starts_with('[')
}

/// Pegasus addresses (`rpc_address`) carry IPv4 only: meta servers and meta-proxies must be
/// reachable over IPv4.
fn pegasus_addresses(list: &[String], path: &str, what: &str, issues: &mut Issues) {
    for (i, a) in list.iter().enumerate().filter(|(_, a)| is_ipv6_literal(a)) {
        issues.add(
            format!("{path}[{i}]"),
            format!("{what} address {a} is IPv6; Pegasus addresses are IPv4 (rpc_address): use an IPv4 address or a host name"),
        );
    }
    addresses(list, path, what, issues);
}

fn addresses(list: &[String], path: &str, what: &str, issues: &mut Issues) {
    let mut seen = HashMap::new();
    for (i, a) in list.iter().enumerate() {
        if is_ipv6_literal(a) && !is_host_port(a) {
            issues.add(
                format!("{path}[{i}]"),
                format!("bad {what} address {a:?}: expected [ipv6]:port"),
            );
        } else if !is_host_port(a) {
            issues.add(
                format!("{path}[{i}]"),
                format!("bad {what} address {a:?}: expected host:port"),
            );
        } else if let Some(first) = seen.insert(a.as_str(), i) {
            issues.add(
                format!("{path}[{i}]"),
                format!("{what} address {a} is listed twice (also item {first})"),
            );
        }
    }
}

fn clusters(raw: &RawSpec, issues: &mut Issues) -> BTreeMap<String, ClusterSpec> {
    for (name, c) in &raw.clusters {
        let path = format!("clusters.{name}.meta");
        if c.meta.len() < 2 {
            let n = c.meta.len();
            issues.add(&path, format!("cluster {name} has {n} meta address(es); at least two are needed (meta-proxy rejects fewer)"));
        }
        pegasus_addresses(&c.meta, &path, "meta", issues);
    }
    raw.clusters
        .iter()
        .map(|(n, c)| {
            let path = format!("clusters.{n}.config_sync_during_cutover");
            let sync = c
                .config_sync_during_cutover
                .as_deref()
                .and_then(|text| config_sync(text, &path, issues));
            (
                n.clone(),
                ClusterSpec {
                    meta: c.meta.clone(),
                    config_sync_during_cutover: sync,
                },
            )
        })
        .collect()
}

/// Least config-sync interval accepted: each sync is one RPC per replica server to the meta.
const MIN_CONFIG_SYNC: Duration = Duration::from_millis(100);

fn config_sync(text: &str, path: &str, issues: &mut Issues) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if d < MIN_CONFIG_SYNC => {
            issues.add(
                path,
                format!("config_sync_during_cutover {text} is below 100ms; every replica server would ask the meta that often"),
            );
            None
        }
        Ok(d) if d.as_millis() > u128::from(i32::MAX.unsigned_abs()) => {
            // v2.5.0 casts the flag to int and aborts the server above this.
            issues.add(
                path,
                format!("config_sync_during_cutover {text} is too long"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            issues.add(path, e);
            None
        }
    }
}

fn metaproxy(m: &super::RawMetaproxy, issues: &mut Issues) -> MetaproxySpec {
    if m.zookeeper.is_empty() {
        issues.add(
            "metaproxy.zookeeper",
            "no ZooKeeper address: list at least one host:port",
        );
    }
    addresses(&m.zookeeper, "metaproxy.zookeeper", "ZooKeeper", issues);
    let root = m
        .root
        .clone()
        .unwrap_or_else(|| DEFAULT_METAPROXY_ROOT.to_string());
    if !is_zk_path(&root) {
        issues.add(
            "metaproxy.root",
            format!(
                "bad ZooKeeper path {root:?}: expected an absolute path below / such as /pegasus/metaproxy (meta-proxy cannot route tables from the root itself)"
            ),
        );
    }
    pegasus_addresses(&m.addresses, "metaproxy.addresses", "meta-proxy", issues);
    let migrator_root = m
        .migrator_root
        .clone()
        .unwrap_or_else(|| super::DEFAULT_MIGRATOR_ROOT.to_string());
    let nested =
        |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    if !is_zk_path(&migrator_root) {
        issues.add(
            "metaproxy.migrator_root",
            format!("bad ZooKeeper path {migrator_root:?}: expected an absolute path below / such as /migrator"),
        );
    } else if nested(&migrator_root, &root) || nested(&root, &migrator_root) {
        issues.add(
            "metaproxy.migrator_root",
            format!("migrator_root {migrator_root} and the meta-proxy root {root} must not contain each other: meta-proxy would read migrator's nodes as routes"),
        );
    }
    MetaproxySpec {
        zookeeper: m.zookeeper.clone(),
        root,
        addresses: m.addresses.clone(),
        migrator_root,
    }
}

/// Settings with every value decided.
#[derive(Debug, Clone)]
struct Resolved {
    threshold: u64,
    max_write_block: Duration,
    block_mode: super::BlockMode,
    remove_duplication: bool,
    verify: super::VerifyMode,
    verify_rate: Option<u64>,
    verify_parallelism: Option<usize>,
}

impl Default for Resolved {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            max_write_block: DEFAULT_MAX_WRITE_BLOCK,
            block_mode: super::BlockMode::default(),
            remove_duplication: false,
            verify: super::VerifyMode::default(),
            verify_rate: None,
            verify_parallelism: None,
        }
    }
}

fn settings(s: &RawSettings, base: &Resolved, path: &str, issues: &mut Issues) -> Resolved {
    let max_write_block = match &s.max_write_block {
        None => base.max_write_block,
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                issues.add(
                    format!("{path}.max_write_block"),
                    "max_write_block must be longer than zero",
                );
                base.max_write_block
            }
            Ok(d) if d > MAX_WRITE_BLOCK_CEILING => {
                issues.add(
                    format!("{path}.max_write_block"),
                    format!("max_write_block {text} is longer than 15m: that is an outage, not a cut-over"),
                );
                base.max_write_block
            }
            Ok(d) => d,
            Err(e) => {
                issues.add(format!("{path}.max_write_block"), e);
                base.max_write_block
            }
        },
    };
    if s.threshold == Some(0) {
        issues.add(
            format!("{path}.threshold"),
            "threshold 0 can never be reached (a 2.5 primary always has an unshipped empty write): use at least 1",
        );
    }
    if s.verify_rate == Some(0) {
        issues.add(
            format!("{path}.verify_rate"),
            "verify_rate 0 would never compare a record: use at least 1 (records per second), or leave it out for no limit",
        );
    }
    if s.verify_parallelism == Some(0) {
        issues.add(
            format!("{path}.verify_parallelism"),
            "verify_parallelism 0 would never compare a partition group: use at least 1",
        );
    }
    Resolved {
        threshold: s.threshold.unwrap_or(base.threshold),
        max_write_block,
        block_mode: s.block_mode.unwrap_or(base.block_mode),
        remove_duplication: s.remove_duplication.unwrap_or(base.remove_duplication),
        verify: s.verify.unwrap_or(base.verify),
        verify_rate: s.verify_rate.filter(|r| *r > 0).or(base.verify_rate),
        verify_parallelism: s
            .verify_parallelism
            .filter(|p| *p > 0)
            .or(base.verify_parallelism),
    }
}

fn overrides(m: &RawMigration) -> RawSettings {
    RawSettings {
        threshold: m.threshold,
        max_write_block: m.max_write_block.clone(),
        block_mode: m.block_mode,
        remove_duplication: m.remove_duplication,
        verify: m.verify,
        verify_rate: m.verify_rate,
        verify_parallelism: m.verify_parallelism,
    }
}

/// Names migrator uses for its own nodes next to the routing nodes.
const RESERVED_PREFIX: &str = "__migrator";

/// Longest write block accepted: past this, an outage is no longer a cut-over.
pub const MAX_WRITE_BLOCK_CEILING: Duration = Duration::from_secs(15 * 60);

fn table_name_problem(name: &str) -> Option<String> {
    let chars_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !chars_ok {
        return Some(format!(
            "bad table name {name:?}: letters, digits, '_', '.' and '-' only"
        ));
    }
    if name == "." || name == ".." {
        return Some(format!(
            "bad table name {name:?}: it is not a ZooKeeper node name"
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Some(format!(
            "table name {name:?} starts with {RESERVED_PREFIX}, which migrator reserves for its own nodes"
        ));
    }
    None
}

fn migrations(raw: &RawSpec, defaults: &Resolved, issues: &mut Issues) -> Vec<Migration> {
    if raw.migrations.is_empty() {
        issues.add(
            "migrations",
            "no migrations: list at least one table to move",
        );
    }
    let known = raw.clusters.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, m) in raw.migrations.iter().enumerate() {
        let path = format!("migrations[{i}]");
        if let Some(problem) = table_name_problem(&m.table) {
            issues.add(format!("{path}.table"), problem);
        } else if let Some(first) = first_seen.insert(&m.table, i) {
            issues.add(
                format!("{path}.table"),
                format!(
                    "table {} is listed twice (also migrations[{first}])",
                    m.table
                ),
            );
        }
        for (field, name) in [("from", &m.from), ("to", &m.to)] {
            if !raw.clusters.contains_key(name) {
                issues.add(
                    format!("{path}.{field}"),
                    format!("unknown cluster {name:?}; the clusters section has: {known}"),
                );
            }
        }
        if m.from == m.to {
            issues.add(
                format!("{path}.to"),
                format!(
                    "from and to are both {}: a table moves between two clusters",
                    m.to
                ),
            );
        }
        let s = settings(&overrides(m), defaults, &path, issues);
        out.push(Migration {
            table: m.table.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            threshold: s.threshold,
            max_write_block: s.max_write_block,
            block_mode: s.block_mode,
            remove_duplication: s.remove_duplication,
            verify: s.verify,
            verify_rate: s.verify_rate,
            verify_parallelism: s.verify_parallelism,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_needs_both_parts() {
        assert!(is_host_port("10.0.0.1:34601"));
        assert!(is_host_port("meta-1.example.com:34601"));
        for bad in [
            "10.0.0.1",
            ":34601",
            "host:0",
            "host:70000",
            "a b:1",
            "host:port",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
