//! Owns a replica server's flags over HTTP on its RPC port: `GET /config?name=NAME` and
//! `GET /updateConfig?NAME=VALUE` (`src/http/config_http_service.cpp`, `src/utils/flags.cpp`,
//! `src/http/http_server.cpp`, v2.5.0 and master): both answer 200 with the outcome in the
//! body; only `FT_MUTABLE` flags change, in memory until a restart.

use serde_json::json;

use super::replica::ReplicaNode;
use super::server::parse_query;
use super::state::millis;

/// How a flag is declared.
struct Flag {
    name: &'static str,
    section: &'static str,
    kind: &'static str,
    mutable: bool,
    description: &'static str,
}

const CONFIG_SYNC: Flag = Flag {
    name: "config_sync_interval_ms",
    section: "replication",
    kind: "FV_UINT32",
    mutable: true,
    description: "The interval milliseconds of replica server to syncs replica configuration with meta server",
};

const GROUP_CHECK: Flag = Flag {
    name: "group_check_interval_ms",
    section: "replication",
    kind: "FV_INT32",
    mutable: false,
    description: "every what period we send group check message",
};

const EMPTY_WRITE_DISABLED: Flag = Flag {
    name: "empty_write_disabled",
    section: "replication",
    kind: "FV_BOOL",
    mutable: true,
    description: "whether primaries skip the empty write of an idle group check",
};

const GROUP_CHECK_DISABLED: Flag = Flag {
    name: "group_check_disabled",
    section: "replication",
    kind: "FV_BOOL",
    mutable: false,
    description: "whether primaries run no group check",
};

const ENABLE_ACL: Flag = Flag {
    name: "enable_acl",
    section: "security",
    kind: "FV_BOOL",
    mutable: false,
    description: "whether to enable access control",
};

const ENABLE_RANGER_ACL: Flag = Flag {
    name: "enable_ranger_acl",
    section: "security",
    kind: "FV_BOOL",
    mutable: false,
    description: "whether to enable access control integrated with Apache Ranger",
};

fn find(name: &str) -> Option<&'static Flag> {
    [
        &CONFIG_SYNC,
        &GROUP_CHECK,
        &EMPTY_WRITE_DISABLED,
        &GROUP_CHECK_DISABLED,
        &ENABLE_ACL,
        &ENABLE_RANGER_ACL,
    ]
    .into_iter()
    .find(|f| f.name == name)
}

fn not_found(node: &ReplicaNode, name: &str) -> String {
    // master quotes the name, v2.5.0 does not.
    if node.cluster.config.version.is_2_6() {
        format!("ERR_OBJECT_NOT_FOUND: '{name}' is not found")
    } else {
        format!("ERR_OBJECT_NOT_FOUND: {name} is not found")
    }
}

/// The flag's value as `/config` prints it (booleans as `true`/`false`).
fn value(node: &ReplicaNode, flag: &Flag) -> String {
    let config = &node.cluster.config;
    let state = node.cluster.lock();
    let server = &state.nodes[node.index];
    match flag.name {
        n if n == CONFIG_SYNC.name => server.config_sync_interval_ms.to_string(),
        n if n == EMPTY_WRITE_DISABLED.name => server.empty_write_disabled.to_string(),
        n if n == GROUP_CHECK_DISABLED.name => config.group_check_disabled.to_string(),
        n if n == ENABLE_ACL.name => config.enable_acl.to_string(),
        n if n == ENABLE_RANGER_ACL.name => config.enable_ranger_acl.to_string(),
        _ => millis(config.group_check_interval).to_string(),
    }
}

/// `GET /config?name=NAME`.
#[must_use]
pub fn get(node: &ReplicaNode, path: &str) -> (u16, String) {
    let (_, query) = parse_query(path);
    let name = match query.as_slice() {
        [("name", name)] => *name,
        [] if node.cluster.config.version.is_2_6() => {
            return (400, "name shouldn't be empty".into())
        }
        [] => "",
        _ => return (400, String::new()),
    };
    let Some(flag) = find(name) else {
        return (200, not_found(node, name));
    };
    let tags = if flag.mutable {
        "flag_tag::FT_MUTABLE"
    } else {
        ""
    };
    let doc = json!({
        "name": flag.name, "section": flag.section, "type": flag.kind, "tags": tags,
        "description": flag.description, "value": value(node, flag),
    });
    (200, format!("{doc}\n"))
}

/// `GET /updateConfig?NAME=VALUE`.
#[must_use]
pub fn update(node: &ReplicaNode, path: &str) -> (u16, String) {
    let (_, query) = parse_query(path);
    let status = match query.as_slice() {
        [(name, raw)] => set(node, name, raw),
        _ => "ERR_INVALID_PARAMETERS: there should be exactly one config to be updated once".into(),
    };
    (200, format!("{}\n", json!({ "update_status": status })))
}

fn set(node: &ReplicaNode, name: &str, raw: &str) -> String {
    let Some(flag) = find(name) else {
        return format!("ERR_OBJECT_NOT_FOUND: {name} is not found");
    };
    if !flag.mutable {
        return format!("ERR_INVALID_PARAMETERS: {name} is not mutable");
    }
    let invalid = || format!("ERR_INVALID_PARAMETERS: {raw} is invalid");
    if flag.name == EMPTY_WRITE_DISABLED.name {
        let Some(on) = parse_bool(raw) else {
            return invalid();
        };
        node.cluster.lock().nodes[node.index].empty_write_disabled = on;
        return "ERR_OK".into();
    }
    let Ok(ms) = raw.parse::<u32>() else {
        return invalid();
    };
    if ms == 0 {
        return "ERR_INVALID_PARAMETERS: value validation failed".into();
    }
    // Only the flag changes here; whether the config-sync timer follows is envsync's concern.
    node.cluster.lock().nodes[node.index].config_sync_interval_ms = ms;
    "ERR_OK".into()
}

/// `true` or `false` in any case, as the server's `buf2bool` reads a flag's new value.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
