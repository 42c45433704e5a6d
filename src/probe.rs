//! Owns reading a table's live migration state from the servers, for `observe` and the apply
//! gates: duplication progress on the primaries, a table's lag, and which envs the primaries
//! have applied.
//!
//! Read-only I/O; no decisions.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::pegasus::messages::duplication::DuplicationEntry;
use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::Error;

/// One duplication's progress summed over the primaries that reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DupProgress {
    /// Mutations the meta has not confirmed (last committed − confirmed decree).
    pub not_confirmed: i64,
    /// Mutations not yet shipped and acknowledged by the target (live on the primary).
    pub not_duplicated: i64,
    /// How many partitions reported.
    pub partitions: usize,
}

/// Progress of duplication `dupid` of app `app_id` from the primaries' `/replica/duplication`.
///
/// # Errors
/// A replica server could not be asked or answered something unreadable.
pub async fn primaries_progress(
    replica: &ReplicaClient,
    nodes: &[SocketAddr],
    app_id: i32,
    dupid: i32,
) -> Result<DupProgress, Error> {
    let mut total = DupProgress::default();
    for node in nodes {
        let path = format!("/replica/duplication?appid={app_id}");
        let (status, body) = replica.http_get(*node, &path).await?;
        if status == 404 {
            continue;
        }
        let unreadable = |why: &str| Error::Http {
            addr: *node,
            path: path.clone(),
            reason: why.to_string(),
            status: Some(status),
        };
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| unreadable("not JSON"))?;
        let Some(parts) = v
            .get(dupid.to_string())
            .and_then(serde_json::Value::as_object)
        else {
            continue;
        };
        for p in parts.values() {
            total.not_confirmed += p["not_confirmed_mutations_num"]
                .as_i64()
                .ok_or_else(|| unreadable("no not_confirmed_mutations_num"))?;
            total.not_duplicated += p["not_duplicated_mutations_num"]
                .as_i64()
                .ok_or_else(|| unreadable("no not_duplicated_mutations_num"))?;
            total.partitions += 1;
        }
    }
    Ok(total)
}

/// This table's lag for `entry`: from 2.6 `partition_states` when present, else from the
/// primaries (2.5).
///
/// # Errors
/// The replica servers could not be asked (2.5 only).
pub async fn lag(
    replica: &ReplicaClient,
    nodes: &[SocketAddr],
    app_id: i32,
    entry: &DuplicationEntry,
) -> Result<i64, Error> {
    if let Some(states) = &entry.partition_states {
        return Ok(states
            .values()
            .map(|s| (s.last_committed_decree - s.confirmed_decree).max(0))
            .sum());
    }
    Ok(primaries_progress(replica, nodes, app_id, entry.dupid)
        .await?
        .not_confirmed)
}

/// The table's primaries (distinct replica servers).
///
/// # Errors
/// The meta could not be asked.
pub async fn primaries(meta: &MetaClient, table: &str) -> Result<Vec<SocketAddr>, Error> {
    let cfg = meta.query_config(table).await?;
    let set: BTreeSet<SocketAddr> = cfg
        .partitions
        .iter()
        .filter_map(|p| p.primary.to_socket())
        .collect();
    Ok(set.into_iter().collect())
}

/// The value of env `key` each of `nodes` has applied for `table` (`None` = not set there).
///
/// # Errors
/// A replica server could not be asked.
pub async fn applied_env(
    replica: &ReplicaClient,
    nodes: &[SocketAddr],
    table: &str,
    key: &str,
) -> Result<Vec<(SocketAddr, Option<String>)>, Error> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let apps = replica.query_app_info(*node).await?;
        let value = apps
            .iter()
            .find(|a| a.app_name == table)
            .and_then(|a| a.envs.get(key).cloned());
        out.push((*node, value));
    }
    Ok(out)
}
