//! Owns replica-server flags over HTTP: `GET /config?name=NAME` (a JSON object whose `value`
//! is a string) and `GET /updateConfig?NAME=VALUE` (`{"update_status":"ERR_OK"}` on success;
//! both answer 200 whatever happened, so the body decides).

use std::net::SocketAddr;

use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::Error;

/// The replica servers' config-sync period flag.
pub const CONFIG_SYNC: &str = "config_sync_interval_ms";
/// The primaries' group-check period flag (not mutable).
pub const GROUP_CHECK: &str = "group_check_interval_ms";
/// Primaries write no empty mutation when idle (mutable).
pub const EMPTY_WRITE_DISABLED: &str = "empty_write_disabled";
/// Primaries run no group check at all (not mutable).
pub const GROUP_CHECK_DISABLED: &str = "group_check_disabled";
/// `[security]`: access control by the table's allowed users (`replica_access_controller`).
pub const ENABLE_ACL: &str = "enable_acl";
/// `[security]`: access control by Apache Ranger policies.
pub const ENABLE_RANGER_ACL: &str = "enable_ranger_acl";

fn http_error(node: SocketAddr, path: &str, reason: String) -> Error {
    Error::Http {
        addr: node,
        path: path.to_string(),
        reason,
        status: Some(200),
    }
}

/// Reads integer flag `name` on `node`.
///
/// # Errors
/// The node could not be asked, or does not know the flag.
pub async fn read(replica: &ReplicaClient, node: SocketAddr, name: &str) -> Result<u64, Error> {
    read_parsed(replica, node, name, |s| s.parse().ok()).await
}

/// Reads boolean flag `name` on `node` (the server prints `true` or `false`).
///
/// # Errors
/// The node could not be asked, or does not know the flag.
pub async fn read_bool(
    replica: &ReplicaClient,
    node: SocketAddr,
    name: &str,
) -> Result<bool, Error> {
    read_parsed(replica, node, name, |s| match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    })
    .await
}

async fn read_parsed<T>(
    replica: &ReplicaClient,
    node: SocketAddr,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let path = format!("/config?name={name}");
    let (_, body) = replica.http_get(node, &path).await?;
    let value = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["value"].as_str().and_then(&parse));
    value.ok_or_else(|| http_error(node, &path, body.trim().to_string()))
}

/// Sets mutable flag `name` to `value` on `node` (a number, or `true`/`false`).
///
/// # Errors
/// The node could not be asked, or refused (the body's `update_status` says why).
pub async fn update(
    replica: &ReplicaClient,
    node: SocketAddr,
    name: &str,
    value: impl std::fmt::Display,
) -> Result<(), Error> {
    let path = format!("/updateConfig?{name}={value}");
    let (_, body) = replica.http_get(node, &path).await?;
    let status = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["update_status"].as_str().map(str::to_string));
    match status.as_deref() {
        Some("ERR_OK") => Ok(()),
        _ => Err(http_error(node, &path, body.trim().to_string())),
    }
}
