//! Owns the views a replica server offers about duplication and data: the 2.5 perf counters
//! (`perf-counters-by-substr`), `/replica/data_version`, `/replica/duplication`
//! (`replica_http_service.cpp`, `duplication_sync_timer.cpp get_dup_states`), the 2.6
//! `/metrics` endpoint, and routing of `/config` and `/updateConfig` to `flags`.

use serde_json::{json, Value};

use super::replica::ReplicaNode;
use super::server::parse_query;
use super::state::{App, Dup};
use crate::pegasus::messages::duplication::DuplicationStatus;

/// Primary partitions of `app` hosted on `node`.
fn primaries<'a>(node: &'a ReplicaNode, app: &'a App) -> impl Iterator<Item = usize> + 'a {
    (0..app.partitions.len()).filter(move |&p| app.partitions[p].primary == node.index)
}

/// `not_duplicated_mutations_num`: committed on the primary but not yet shipped and
/// acknowledged by the remote.
fn not_duplicated(app: &App, dup: &Dup, pidx: usize) -> i64 {
    (app.partitions[pidx].last_committed - dup.parts[pidx].last_decree).max(0)
}

/// `not_confirmed_mutations_num`: committed on the primary but not confirmed by the meta, as
/// the primary last heard it.
fn not_confirmed(app: &App, dup: &Dup, pidx: usize) -> i64 {
    (app.partitions[pidx].last_committed - dup.parts[pidx].replica_confirmed).max(0)
}

/// Runs a remote command on a replica server.
#[must_use]
pub fn command(node: &ReplicaNode, cmd: &str, args: &[String]) -> String {
    match cmd {
        "perf-counters-by-substr" => {
            perf_counters(node, |name| args.iter().any(|a| name.contains(a.as_str())))
        }
        "perf-counters-by-prefix" => perf_counters(node, |name| {
            args.iter().any(|a| name.starts_with(a.as_str()))
        }),
        "server-info" => server_info(node),
        other => format!("unknown command '{other}'"),
    }
}

/// `server-info`: a line of text on 2.5 builds, JSON on master builds (per replica server:
/// a cluster mid-upgrade runs both).
fn server_info(node: &ReplicaNode) -> String {
    let started = "2026-12-07 00:00:00";
    if node.cluster.config.replica_version(node.index).is_2_6() {
        json!({
            "build_type": "Release",
            "git_SHA": "db756dcdf24e",
            "start_time": started,
            "version": "2.6.0-SNAPSHOT",
        })
        .to_string()
    } else {
        format!("Pegasus Server 2.5.0 (0ca31b70) Release, Started at {started}")
    }
}

fn perf_counters(node: &ReplicaNode, wanted: impl Fn(&str) -> bool) -> String {
    let mut counters = vec![];
    let v2_5 = !node.cluster.config.version.is_2_6();
    {
        let state = node.cluster.lock();
        let mut node_pending = 0;
        for app in state.apps.values() {
            for dup in app.dups.values() {
                for p in primaries(node, app).filter(|&p| dup.parts[p].duplicator) {
                    node_pending += not_duplicated(app, dup, p);
                    if v2_5 && dup.status == DuplicationStatus::DS_LOG {
                        let name = format!("replica*app.pegasus*dup_shipped_ops@{}.{p}", app.id);
                        let rate = dup.parts[p].ship_rate;
                        counters.push(json!({"name": name, "type": "RATE", "value": rate}));
                    }
                }
            }
        }
        if v2_5 {
            let name = "replica*eon.replica_stub*dup.pending_mutations_count";
            counters.push(json!({"name": name, "type": "VOLATILE_NUMBER", "value": node_pending}));
        }
    }
    if v2_5 {
        counters.extend(estimated_keys(node).into_iter().map(|(app, p, keys)| {
            let name = format!("replica*app.pegasus*rdb.estimate_num_keys@{app}.{p}");
            json!({"name": name, "type": "NUMBER", "value": keys})
        }));
    }
    counters.push(
        json!({"name": "replica*eon.replica_stub*replica(Count)", "type": "NUMBER", "value": 0}),
    );
    counters.retain(|c| wanted(c["name"].as_str().unwrap_or_default()));
    let now = super::state::now_secs();
    json!({"result": "OK", "timestamp": now, "timestamp_str": now.to_string(), "counters": counters}).to_string()
}

/// Every replica on `node` with its estimated key count: (app id, partition, keys).
fn estimated_keys(node: &ReplicaNode) -> Vec<(i32, usize, u64)> {
    let interval = node.cluster.config.rdb_stat_interval;
    let mut state = node.cluster.lock();
    let mut out = vec![];
    for app in state.apps.values_mut() {
        let id = app.id;
        for (p, part) in app.partitions.iter_mut().enumerate() {
            if part.hosted_on(node.index) {
                out.push((id, p, part.estimated_keys(interval)));
            }
        }
    }
    out
}

/// Serves the replica HTTP endpoints.
#[must_use]
pub fn http(node: &ReplicaNode, path: &str) -> (u16, String) {
    let full = path;
    let (path, query) = parse_query(path);
    let param = |k: &str| query.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    match path {
        "/replica/data_version" => data_version(node, param("app_id")),
        "/replica/duplication" => duplication(node, param("appid")),
        "/metrics" if node.cluster.config.version.is_2_6() => metrics(node, param("attributes")),
        "/config" => super::flags::get(node, full),
        "/updateConfig" => super::flags::update(node, full),
        _ => (404, format!("service not found for \"{path}\"")),
    }
}

fn parse_id(raw: Option<&str>, name: &str) -> Result<i32, (u16, String)> {
    raw.and_then(|v| v.parse().ok())
        .ok_or((400, format!("invalid {name}")))
}

fn data_version(node: &ReplicaNode, app_id: Option<&str>) -> (u16, String) {
    let id = match parse_id(app_id, "app_id") {
        Ok(id) => id,
        Err(e) => return e,
    };
    let state = node.cluster.lock();
    let Some(app) = state.apps.get(&id) else {
        return (404, format!("app_id={id} not found"));
    };
    let hosted: serde_json::Map<String, Value> = app
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.hosted_on(node.index))
        .map(|(i, _)| {
            (
                i.to_string(),
                json!({"data_version": app.data_version.to_string()}),
            )
        })
        .collect();
    if hosted.is_empty() {
        return (404, format!("app_id={id} not found"));
    }
    (200, Value::Object(hosted).to_string())
}

/// `/replica/duplication?appid=N`: per duplication, the primaries on this node that run a
/// duplicator, `duplicating` once its shipping pipeline started (DS_LOG learned at its
/// server's duplication sync); 404 when there are none.
fn duplication(node: &ReplicaNode, appid: Option<&str>) -> (u16, String) {
    let id = match appid {
        None | Some("") => return (400, "appid should not be empty".into()),
        Some(raw) => match raw.parse::<i32>() {
            Ok(id) if id >= 0 => id,
            _ => return (400, format!("invalid appid={raw}")),
        },
    };
    let state = node.cluster.lock();
    let no_primary = || (404, format!("no primary for app [appid={id}]"));
    let Some(app) = state.apps.get(&id) else {
        return no_primary();
    };
    if primaries(node, app).next().is_none() {
        return no_primary();
    }
    let v2_6 = node.cluster.config.version.is_2_6();
    let mut out = serde_json::Map::new();
    for dup in app.dups.values() {
        let mut parts = serde_json::Map::new();
        for p in primaries(node, app).filter(|&p| dup.parts[p].duplicator) {
            let mut st = json!({
                "duplicating": dup.parts[p].replica_status == DuplicationStatus::DS_LOG,
                "fail_mode": dup.fail_mode.name(),
                "not_confirmed_mutations_num": not_confirmed(app, dup, p),
                "not_duplicated_mutations_num": not_duplicated(app, dup, p),
            });
            if v2_6 {
                st["remote_app_name"] = json!(dup.remote_app_name);
            }
            parts.insert(format!("{}.{p}", app.id), st);
        }
        if !parts.is_empty() {
            out.insert(dup.dupid.to_string(), Value::Object(parts));
        }
    }
    if out.is_empty() {
        return (404, format!("no duplication assigned for app [appid={id}]"));
    }
    (200, Value::Object(out).to_string())
}

/// `/metrics?attributes=table_id,<id>`: replica entities of the primaries here with dup
/// metrics and `rdb_estimated_keys` (2.6; secondaries' entities are left out).
fn metrics(node: &ReplicaNode, attributes: Option<&str>) -> (u16, String) {
    let table_filter: Option<i32> = attributes.and_then(|a| {
        let parts: Vec<&str> = a.split(',').collect();
        parts
            .chunks(2)
            .find(|c| c[0] == "table_id")
            .and_then(|c| c.get(1)?.parse().ok())
    });
    let keys = estimated_keys(node);
    let state = node.cluster.lock();
    let mut entities = vec![];
    for app in state
        .apps
        .values()
        .filter(|a| table_filter.is_none_or(|t| t == a.id))
    {
        for p in primaries(node, app) {
            let pend: i64 = app.dups.values().map(|d| not_duplicated(app, d, p)).sum();
            let shipped: u64 = app.dups.values().map(|d| d.parts[p].shipped).sum();
            let estimated = keys
                .iter()
                .find(|(id, pidx, _)| *id == app.id && *pidx == p)
                .map_or(0, |(_, _, k)| *k);
            entities.push(json!({
                "type": "replica",
                "id": format!("replica@{}.{p}", app.id),
                "attributes": {"table_id": app.id.to_string(), "partition_id": p.to_string()},
                "metrics": [
                    {"name": "dup_pending_mutations", "value": pend},
                    {"name": "dup_shipped_successful_requests", "value": shipped},
                    {"name": "rdb_estimated_keys", "value": estimated},
                ],
            }));
        }
    }
    let addr = node.cluster.replicas[node.index];
    let body = json!({
        "cluster": node.cluster.name, "role": "replica", "host": addr.ip().to_string(),
        "port": addr.port(), "timestamp_ns": super::state::now_us() * 1000, "entities": entities,
    });
    (200, body.to_string())
}
