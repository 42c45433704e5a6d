//! Owns reading how many records a table holds, as its replica servers estimate it: RocksDB's
//! estimated key count, refreshed every `update_rdb_stat_interval` (60 s) — 2.5's perf
//! counter `rdb.estimate_num_keys@<app>.<pidx>`, master's `/metrics` gauge
//! `rdb_estimated_keys` (`update_replica_rocksdb_statistics`). It counts overwritten versions
//! and deletes until a compaction: a gauge for progress, never a fact to act on.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::Primaries;
use crate::pegasus::replica::ReplicaClient;

/// The table's estimated record count, summed over its primaries; `None` unless every
/// partition's primary answered.
pub async fn estimated_keys(replica: &ReplicaClient, prim: &Primaries) -> Option<u64> {
    if !prim.is_complete() || prim.parts.iter().any(|p| p.addr.is_none()) {
        return None;
    }
    let mut total: u64 = 0;
    for node in prim.nodes() {
        let per_partition = node_estimates(replica, node, prim.app_id).await?;
        for p in prim.parts.iter().filter(|p| p.addr == Some(node)) {
            total = total.saturating_add(*per_partition.get(&p.pidx)?);
        }
    }
    Some(total)
}

/// One node's estimates for `app_id`'s partitions: master's `/metrics`, else (2.5 has none)
/// the perf counters.
async fn node_estimates(
    replica: &ReplicaClient,
    node: SocketAddr,
    app_id: i32,
) -> Option<BTreeMap<i32, u64>> {
    let path =
        format!("/metrics?types=replica&attributes=table_id,{app_id}&metrics=rdb_estimated_keys");
    if let Ok((200, body)) = replica.http_get(node, &path).await {
        return from_metrics(&body);
    }
    let substr = format!("rdb.estimate_num_keys@{app_id}.");
    let out = replica
        .command(node, "perf-counters-by-substr", &[substr.as_str()])
        .await
        .ok()?;
    from_counters(&out, app_id)
}

/// Partition → estimate from a `/metrics` body (replica entities with `partition_id`).
fn from_metrics(body: &str) -> Option<BTreeMap<i32, u64>> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut out = BTreeMap::new();
    for e in v.get("entities")?.as_array()? {
        let pidx = e["attributes"]["partition_id"].as_str()?.parse().ok()?;
        let keys = e["metrics"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == "rdb_estimated_keys")
            .and_then(|m| m["value"].as_u64());
        if let Some(keys) = keys {
            out.insert(pidx, keys);
        }
    }
    Some(out)
}

/// Partition → estimate from a `perf-counters-by-substr` answer for `app_id`.
fn from_counters(out: &str, app_id: i32) -> Option<BTreeMap<i32, u64>> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    let prefix = format!("rdb.estimate_num_keys@{app_id}.");
    let mut found = BTreeMap::new();
    for c in v.get("counters")?.as_array()? {
        let name = c["name"].as_str()?;
        let Some(at) = name.find(&prefix) else {
            continue;
        };
        let pidx = name[at + prefix.len()..].parse().ok()?;
        // Counter values are numbers, possibly written as floats.
        let keys = c["value"].as_f64()?;
        found.insert(pidx, keys.max(0.0) as u64);
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_read_from_metrics_and_counters() {
        let metrics = r#"{"entities":[
            {"type":"replica","attributes":{"table_id":"2","partition_id":"1"},
             "metrics":[{"name":"dup_pending_mutations","value":0},{"name":"rdb_estimated_keys","value":42}]},
            {"type":"replica","attributes":{"table_id":"2","partition_id":"3"},"metrics":[]}]}"#;
        assert_eq!(from_metrics(metrics), Some(BTreeMap::from([(1, 42)])));
        let counters = r#"{"result":"OK","counters":[
            {"name":"replica*app.pegasus*rdb.estimate_num_keys@2.0","type":"NUMBER","value":7.0},
            {"name":"replica*app.pegasus*rdb.estimate_num_keys@12.0","type":"NUMBER","value":9}]}"#;
        assert_eq!(from_counters(counters, 2), Some(BTreeMap::from([(0, 7)])));
        assert_eq!(from_counters("not json", 2), None);
    }
}
