//! Owns telling which build a replica server runs, from its `server-info` remote command, as
//! far as migrator depends on it: whether `/updateConfig` of `config_sync_interval_ms` re-arms
//! the server's config-sync timer. A v2.5 build answers a line of text ("Pegasus Server 2.5.0
//! (<commit>) Release, Started at …") and re-arms it (`replica_http_service` →
//! `replica_stub::update_config`); a master build answers JSON (`"version"`, `"git_SHA"`, …)
//! and its `/updateConfig` reaches the metrics service's no-op hook instead (`src/server/
//! main.cpp` v2.5.0, `src/server/server_utils.cpp` master). The meta's build says nothing of
//! its replica servers': a cluster mid-upgrade runs both.

use std::net::SocketAddr;

use crate::pegasus::replica::ReplicaClient;

/// What a replica server's build does with a new `config_sync_interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTimer {
    /// Re-armed with the new period when the current one ends (v2.5).
    Rearms,
    /// Left as it is: the flag changes, the timer does not (master), or the build is not
    /// known to re-arm it.
    Ignores,
}

/// The build's behaviour, from `server-info`; a server that does not answer, or a build not
/// known to re-arm, counts as [`SyncTimer::Ignores`] (no speed-up is relied on there).
pub async fn sync_timer(replica: &ReplicaClient, node: SocketAddr) -> SyncTimer {
    match replica.command(node, "server-info", &[]).await {
        Ok(out) => of_server_info(&out),
        Err(_) => SyncTimer::Ignores,
    }
}

/// Reads a `server-info` answer.
#[must_use]
pub fn of_server_info(out: &str) -> SyncTimer {
    let version = out
        .trim()
        .strip_prefix("Pegasus Server ")
        .and_then(|rest| rest.split_whitespace().next());
    match version {
        Some(v) if v.starts_with("2.5.") => SyncTimer::Rearms,
        _ => SyncTimer::Ignores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2_5_build_re_arms_its_config_sync_timer() {
        let cases = [
            (
                "Pegasus Server 2.5.0 (0ca31b70) Release, Started at 2026-12-07 03:00:00",
                SyncTimer::Rearms,
            ),
            (
                r#"{"build_type":"Release","git_SHA":"db756dcd","start_time":"2026-12-07 03:00:00","version":"2.6.0-SNAPSHOT"}"#,
                SyncTimer::Ignores,
            ),
            (
                "Pegasus Server 2.4.0 (abc) Release, Started at x",
                SyncTimer::Ignores,
            ),
            ("unknown command 'server-info'", SyncTimer::Ignores),
        ];
        for (out, want) in cases {
            assert_eq!(of_server_info(out), want, "{out}");
        }
    }
}
