//! Owns the simulator's fault switches and test hooks, reachable over the wire as remote
//! commands on any meta server (`sim.fault ...`, `sim.table ...`), so tests and operators
//! trying the sandbox can flip them with an ordinary Pegasus client.

use std::sync::atomic::Ordering;

use super::liveness;
use super::state::{Cluster, Counted};
use super::synctrouble;
use crate::pegasus::messages::command::Command;

/// Runs a simulator command; `None` if `cmd` is not one.
#[must_use]
pub fn run_command(cluster: &Cluster, cmd: &Command) -> Option<String> {
    let args: Vec<&str> = cmd.arguments.iter().map(String::as_str).collect();
    match cmd.cmd.as_str() {
        "sim.fault" => Some(fault(cluster, &args).unwrap_or_else(|e| format!("ERROR: {e}"))),
        "sim.table" => Some(table(cluster, &args).unwrap_or_else(|e| format!("ERROR: {e}"))),
        _ => None,
    }
}

fn on_off(v: Option<&&str>) -> Result<bool, String> {
    match v.copied() {
        Some("on" | "true" | "1") => Ok(true),
        Some("off" | "false" | "0") => Ok(false),
        other => Err(format!("expected on|off, got {other:?}")),
    }
}

/// The replica server and milliseconds of `sim.fault NAME REPLICA_INDEX MS`.
fn node_ms(c: &Cluster, args: &[&str], name: &str) -> Result<(usize, u64), String> {
    let (Some(idx), Some(ms)) = (
        args.get(1).and_then(|v| v.parse::<usize>().ok()),
        args.get(2).and_then(|v| v.parse::<u64>().ok()),
    ) else {
        return Err(format!("usage: sim.fault {name} REPLICA_INDEX MS"));
    };
    if idx >= c.replicas.len() {
        return Err("replica index out of range".into());
    }
    Ok((idx, ms))
}

/// `sim.fault stale_ballot REPLICA_INDEX TABLE PARTITION_INDEX MS`.
fn stale_ballot(c: &Cluster, args: &[&str]) -> Result<(), String> {
    let usage =
        || "usage: sim.fault stale_ballot REPLICA_INDEX TABLE PARTITION_INDEX MS".to_string();
    let (Some(idx), Some(table), Some(pidx), Some(ms)) = (
        args.get(1).and_then(|v| v.parse::<usize>().ok()),
        args.get(2),
        args.get(3).and_then(|v| v.parse::<usize>().ok()),
        args.get(4).and_then(|v| v.parse::<u64>().ok()),
    ) else {
        return Err(usage());
    };
    if idx >= c.replicas.len() {
        return Err("replica index out of range".into());
    }
    synctrouble::stale(c, idx, table, pidx, ms)
}

/// Most records one `sim.fault corrupt` touches.
const MAX_CORRUPT: usize = 1_000_000;

/// The `TABLE N` arguments of fault `name`.
fn table_and_count<'a>(args: &[&'a str], name: &str) -> Result<(&'a str, usize), String> {
    match (args.get(1), args.get(2).and_then(|n| n.parse().ok())) {
        (Some(table), Some(n)) => Ok((table, n)),
        _ => Err(format!("usage: sim.fault {name} TABLE N")),
    }
}

fn fault(c: &Cluster, args: &[&str]) -> Result<String, String> {
    if let Some((name, fault)) = args
        .first()
        .and_then(|name| Counted::named(name).map(|f| (*name, f)))
    {
        let (table, n) = table_and_count(args, name)?;
        c.faults.arm(fault, table, n);
        return Ok("OK".into());
    }
    match args.first().copied() {
        Some("unreachable") => {
            let on = on_off(args.get(1))?;
            c.faults.unreachable.store(on, Ordering::Relaxed);
            if on {
                drop_all(c);
            }
        }
        Some("rpc_latency_ms") => {
            let ms = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or("usage: sim.fault rpc_latency_ms MS")?;
            c.faults.rpc_latency_ms.store(ms, Ordering::Relaxed);
        }
        Some("slow_write_ms") => {
            let ms = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or("expected milliseconds")?;
            c.faults.slow_write_ms.store(ms, Ordering::Relaxed);
        }
        Some("stuck_in_app") => c
            .faults
            .stuck_in_app
            .store(on_off(args.get(1))?, Ordering::Relaxed),
        Some("drop_connections") => drop_all(c),
        Some("stall") => {
            let (idx, ms) = node_ms(c, args, "stall")?;
            c.faults.stall_ms[idx].store(ms, Ordering::Relaxed);
        }
        Some("lag") => {
            let (idx, ms) = node_ms(c, args, "lag")?;
            c.faults.commit_lag_ms[idx].store(ms, Ordering::Relaxed);
        }
        Some("sync_slow") => {
            let (idx, ms) = node_ms(c, args, "sync_slow")?;
            synctrouble::slow_next(c, idx, ms);
        }
        Some("sync_busy") => {
            let (idx, ms) = node_ms(c, args, "sync_busy")?;
            synctrouble::busy(c, idx, ms);
        }
        Some("disconnect") => {
            let (idx, ms) = node_ms(c, args, "disconnect")?;
            synctrouble::cut_off(c, idx, ms);
        }
        Some("stale_ballot") => stale_ballot(c, args)?,
        Some("metaproxy_watch_lost") => {
            if on_off(args.get(1))? {
                c.directory.expire_metaproxy_sessions();
            }
        }
        Some("replica_down") => {
            let addr = args
                .get(1)
                .ok_or("expected HOST:PORT of a replica server")?;
            let idx = c
                .replicas
                .iter()
                .position(|r| r.to_string() == *addr)
                .ok_or_else(|| format!("{addr} is not a replica server of {}", c.name))?;
            liveness::set_down(c, idx, on_off(args.get(2))?);
        }
        Some("failover") => {
            let (Some(table), Some(pidx)) = (args.get(1), args.get(2).and_then(|p| p.parse().ok()))
            else {
                return Err("usage: sim.fault failover TABLE PARTITION_INDEX".into());
            };
            let to = liveness::failover(c, table, pidx)?;
            return Ok(format!(
                "OK: primary of {table}.{pidx} is now {}",
                c.replicas[to]
            ));
        }
        Some("corrupt") => {
            let (table, n) = table_and_count(args, "corrupt")?;
            // It runs under the cluster lock: a remote command must not hang the simulator.
            if n > MAX_CORRUPT {
                return Err(format!("corrupt at most {MAX_CORRUPT} records at once"));
            }
            return corrupt(c, table, n);
        }
        Some("leader") => {
            let idx: usize = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or("expected a meta index")?;
            if idx >= c.metas.len() {
                return Err(format!("meta index {idx} out of range"));
            }
            let changed = {
                let mut state = c.lock();
                let changed = state.leader != idx;
                state.leader = idx;
                changed
            };
            if changed {
                liveness::leader_changed(c);
            }
        }
        other => return Err(format!("unknown fault {other:?}")),
    }
    Ok("OK".into())
}

/// Silently damages `n` records of `table` on this cluster, as a lost or garbled duplication
/// batch would (no decree, nothing logged or shipped): a third changed, a third dropped, a third
/// added, spread over the partitions.
fn corrupt(c: &Cluster, table: &str, n: usize) -> Result<String, String> {
    let now = super::state::pegasus_now();
    let mut state = c.lock();
    let app = state
        .app_by_name_mut(table)
        .ok_or_else(|| format!("no table {table}"))?;
    let parts = app.partitions.len();
    // Changes and drops take distinct live records (what a read sees) that no corruption
    // touched before, chosen before anything is touched: the counts said are the differences
    // a verify finds, however often this runs.
    let mut victims: Vec<std::vec::IntoIter<Vec<u8>>> = app
        .partitions
        .iter()
        .map(|p| {
            p.data
                .iter()
                .filter(|(_, r)| !r.expired(now) && !r.value.ends_with(b"corrupt"))
                .map(|(k, _)| k.clone())
                .take(n)
                .collect::<Vec<_>>()
                .into_iter()
        })
        .collect();
    let (mut changed, mut dropped, mut added) = (0, 0, 0);
    for i in 0..n {
        let pidx = i % parts;
        let p = &mut app.partitions[pidx];
        match i % 3 {
            0 | 1 => {
                let Some(k) = victims[pidx].next() else {
                    continue;
                };
                if i % 3 == 0 {
                    if let Some(r) = p.data.get_mut(&k) {
                        r.value.extend_from_slice(b"~corrupt");
                        changed += 1;
                    }
                } else if p.data.remove(&k).is_some() {
                    dropped += 1;
                }
            }
            _ => {
                let k = new_key_in(&p.data, pidx, parts);
                let rec = super::state::Record {
                    value: b"corrupt".to_vec(),
                    timetag: 0,
                    expire_ts: 0,
                };
                p.data.insert(k, rec);
                added += 1;
            }
        }
    }
    Ok(format!(
        "OK: {table} on {}: {changed} changed, {dropped} dropped, {added} added",
        c.name
    ))
}

/// A key of partition `pidx` (of `parts`) that `data` does not hold.
fn new_key_in(
    data: &std::collections::BTreeMap<Vec<u8>, super::state::Record>,
    pidx: usize,
    parts: usize,
) -> Vec<u8> {
    (0u64..)
        .filter_map(|attempt| {
            let hash_key = crate::pegasus::key::hash_key_in_partition(
                &format!("__corrupt__{attempt}_"),
                i32::try_from(pidx).unwrap_or(0),
                i32::try_from(parts).unwrap_or(1),
            );
            crate::pegasus::key::composite_key(&hash_key, b"x").ok()
        })
        .find(|k| !data.contains_key(k))
        .expect("an unused key exists")
}

/// Makes every node, meta and replica, drop its open connections.
fn drop_all(c: &Cluster) {
    c.faults.drop_connections.send_modify(|g| *g += 1);
    for node in &c.faults.node_drops {
        node.send_modify(|g| *g += 1);
    }
}

/// `sim.table data_version NAME V`: what an old table created before data version 1 looks like;
/// `sim.table split NAME`: the table as a finished partition split leaves it.
fn table(c: &Cluster, args: &[&str]) -> Result<String, String> {
    match args {
        ["data_version", name, v] => {
            let v: u32 = v.parse().map_err(|_| "expected 0 or 1")?;
            let mut state = c.lock();
            let app = state
                .app_by_name_mut(name)
                .ok_or_else(|| format!("no table {name}"))?;
            app.data_version = v;
            Ok("OK".into())
        }
        ["split", name] => {
            let count = super::tables::split(c, &mut c.lock(), name)?;
            Ok(format!("OK: {name} has {count} partitions"))
        }
        _ => Err("usage: sim.table data_version NAME 0|1 | sim.table split NAME".into()),
    }
}
