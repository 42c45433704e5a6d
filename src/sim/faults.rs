//! Owns the simulator's fault switches and test hooks, reachable over the wire as remote
//! commands on any meta server (`sim.fault ...`, `sim.table ...`), so tests and operators
//! trying the sandbox can flip them with an ordinary Pegasus client.

use std::sync::atomic::Ordering;

use super::state::Cluster;
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

fn fault(c: &Cluster, args: &[&str]) -> Result<String, String> {
    match args.first().copied() {
        Some("unreachable") => {
            let on = on_off(args.get(1))?;
            c.faults.unreachable.store(on, Ordering::Relaxed);
            if on {
                c.faults.drop_connections.send_modify(|g| *g += 1);
            }
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
        Some("drop_connections") => c.faults.drop_connections.send_modify(|g| *g += 1),
        Some("leader") => {
            let idx: usize = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or("expected a meta index")?;
            if idx >= c.metas.len() {
                return Err(format!("meta index {idx} out of range"));
            }
            c.lock().leader = idx;
        }
        other => return Err(format!("unknown fault {other:?}")),
    }
    Ok("OK".into())
}

/// `sim.table data_version NAME V`: what an old table created before data version 1 looks like.
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
        _ => Err("usage: sim.table data_version NAME 0|1".into()),
    }
}
