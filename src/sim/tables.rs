//! Owns table-level operations on a simulated cluster's state: create, drop, split, and the
//! views meta replies are built from (app info, partition configuration).

use std::collections::BTreeMap;

use super::state::{App, Cluster, Partition, State, FOLLOWER_STATUS_ENV, MASTER_CLUSTER_ENV};
use crate::pegasus::base::{err, Gpid, HostPort, RpcAddress};
use crate::pegasus::messages::apps::{
    AppInfo, AppStatus, CreateAppOptions, PartitionConfiguration,
};

/// An application error: the `ERR_*` name and a hint.
pub type AppError = (&'static str, String);

/// Creates a table; returns its app id. Mirrors the meta's create path, including 2.6's
/// idempotent re-create of a duplication follower that is still `creating`.
///
/// # Errors
/// `ERR_INVALID_PARAMETERS` for bad counts, `ERR_APP_EXIST` when the name is taken.
pub fn create_app(
    cluster: &Cluster,
    state: &mut State,
    name: &str,
    opts: &CreateAppOptions,
) -> Result<i32, AppError> {
    if opts.partition_count <= 0 || opts.replica_count <= 0 || name.is_empty() {
        return Err((
            err::INVALID_PARAMETERS,
            "invalid app name, partition count or replica count".into(),
        ));
    }
    if let Some(existing) = state.app_by_name(name) {
        if opts.success_if_exist || is_follower_retry(cluster, existing, opts) {
            return Ok(existing.id);
        }
        return Err((err::APP_EXIST, format!("app {name} already exists")));
    }
    let id = state.next_app_id;
    state.next_app_id += 1;
    let app = new_app(cluster, id, name, opts);
    state.apps.insert(id, app);
    cluster.wakes.primaries_changed();
    Ok(id)
}

fn is_follower_retry(cluster: &Cluster, existing: &App, opts: &CreateAppOptions) -> bool {
    cluster.config.version.is_2_6()
        && existing.envs.contains_key(MASTER_CLUSTER_ENV)
        && existing.envs.get(MASTER_CLUSTER_ENV) == opts.envs.get(MASTER_CLUSTER_ENV)
        && existing.envs.get(FOLLOWER_STATUS_ENV).map(String::as_str) == Some("creating")
}

fn new_app(cluster: &Cluster, id: i32, name: &str, opts: &CreateAppOptions) -> App {
    let nodes = cluster.replicas.len();
    let copies = usize::try_from(opts.replica_count)
        .unwrap_or(1)
        .clamp(1, nodes);
    let partitions = (0..usize::try_from(opts.partition_count).unwrap_or(1))
        .map(|p| Partition::new(p % nodes, (1..copies).map(|k| (p + k) % nodes).collect()))
        .collect();
    App {
        id,
        name: name.to_string(),
        status: AppStatus::AS_AVAILABLE,
        app_type: if opts.app_type.is_empty() {
            "pegasus".into()
        } else {
            opts.app_type.clone()
        },
        max_replica_count: opts.replica_count,
        envs: opts.envs.clone(),
        created_envs: opts.envs.clone(),
        data_version: 1,
        create_second: super::state::now_secs(),
        drop_second: 0,
        partitions,
        dups: BTreeMap::new(),
    }
}

/// Drops a table (it stays listed as AS_DROPPED).
///
/// # Errors
/// `ERR_APP_NOT_EXIST` for an unknown name.
pub fn drop_app(state: &mut State, name: &str) -> Result<(), AppError> {
    let app = state
        .app_by_name_mut(name)
        .ok_or((err::APP_NOT_EXIST, format!("app {name} does not exist")))?;
    app.status = AppStatus::AS_DROPPED;
    app.drop_second = super::state::now_secs();
    app.dups.clear();
    Ok(())
}

/// The `app_info` a meta reports for `app`.
#[must_use]
pub fn app_info(app: &App, v2_6: bool) -> AppInfo {
    let count = i32::try_from(app.partitions.len()).unwrap_or(i32::MAX);
    AppInfo {
        status: app.status,
        app_type: app.app_type.clone(),
        app_name: app.name.clone(),
        app_id: app.id,
        partition_count: count,
        envs: app.envs.clone(),
        is_stateful: true,
        max_replica_count: app.max_replica_count,
        expire_second: 0,
        create_second: app.create_second,
        drop_second: app.drop_second,
        duplicating: Some(app.is_duplicating()),
        init_partition_count: count,
        is_bulk_loading: Some(false),
        atomic_idempotent: v2_6.then_some(false),
    }
}

/// The `partition_configuration` of partition `pidx`; host_port fields only on 2.6.
#[must_use]
pub fn partition_config(cluster: &Cluster, app: &App, pidx: usize) -> PartitionConfiguration {
    let p = &app.partitions[pidx];
    let addr = |node: usize| RpcAddress::from_socket(v4(cluster.replicas[node]));
    let hp = |node: usize| HostPort::new("localhost", cluster.replicas[node].port());
    let v2_6 = cluster.config.version.is_2_6();
    PartitionConfiguration {
        pid: Gpid::new(app.id, i32::try_from(pidx).unwrap_or(i32::MAX)),
        ballot: p.ballot,
        max_replica_count: app.max_replica_count,
        primary: addr(p.primary),
        secondaries: p.secondaries.iter().map(|&n| addr(n)).collect(),
        last_drops: vec![],
        last_committed_decree: p.last_committed,
        partition_flags: 0,
        hp_primary: v2_6.then(|| hp(p.primary)),
        hp_secondaries: v2_6.then(|| p.secondaries.iter().map(|&n| hp(n)).collect()),
        hp_last_drops: v2_6.then(Vec::new),
    }
}

/// The IPv4 form of a simulator address (the simulator binds only IPv4 loopback).
#[must_use]
pub fn v4(addr: std::net::SocketAddr) -> std::net::SocketAddrV4 {
    match addr {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(a) => {
            std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, a.port())
        }
    }
}

/// Splits table `name` as a finished partition split leaves it: twice the partitions, child
/// `p + n` served where its parent `p` is, each child holding a copy of its parent's records
/// (a child learns the parent's whole data; the keys of the other half stay on both until a
/// manual compaction, hidden from scans only while `replica.split.validate_partition_hash`
/// is on). Simplified: at once (no `ERR_SPLITTING` window), and not while the table
/// duplicates.
///
/// # Errors
/// No such table, or one that duplicates.
pub fn split(cluster: &Cluster, state: &mut State, name: &str) -> Result<usize, String> {
    let app = state
        .app_by_name_mut(name)
        .ok_or_else(|| format!("no table {name}"))?;
    if app.is_duplicating() {
        return Err(format!(
            "{name} duplicates: the simulator splits only other tables"
        ));
    }
    let children: Vec<Partition> = app
        .partitions
        .iter()
        .map(|p| {
            let mut child = Partition::new(p.primary, p.secondaries.clone());
            child.data = p.data.clone();
            child.last_committed = p.last_committed;
            child
        })
        .collect();
    app.partitions.extend(children);
    cluster.wakes.primaries_changed();
    Ok(app.partitions.len())
}
