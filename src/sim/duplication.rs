//! Owns the meta side of duplication: add, query, modify and (2.6) list, with each version's
//! quirks — 2.5 silently reuses an existing duplication (answering dupid 0 once it has left
//! DS_PREPARE), 2.6 answers `ERR_DUP_EXIST`.

use std::collections::BTreeMap;
use tokio::time::Instant;

use super::state::{now_us, App, Cluster, Dup, DupPartition};
use crate::pegasus::base::{err, ErrorCode};
use crate::pegasus::messages::apps::{AppStatus, PatternMatchType};
use crate::pegasus::messages::duplication::{
    AddDuplicationRequest, AddDuplicationResponse, DuplicationAppState, DuplicationEntry,
    DuplicationFailMode, DuplicationPartitionState, DuplicationStatus, ListDuplicationRequest,
    ListDuplicationResponse, ModifyDuplicationRequest, ModifyDuplicationResponse,
    QueryDuplicationRequest, QueryDuplicationResponse,
};

use DuplicationStatus::{DS_APP, DS_INIT, DS_LOG, DS_PAUSE, DS_PREPARE, DS_REMOVED};

fn add_error(code: &str, hint: String) -> AddDuplicationResponse {
    AddDuplicationResponse {
        err: ErrorCode::new(code),
        hint: Some(hint),
        ..Default::default()
    }
}

/// Handles `RPC_CM_ADD_DUPLICATION`.
#[must_use]
pub fn add(c: &Cluster, q: &AddDuplicationRequest) -> AddDuplicationResponse {
    let v2_6 = c.config.version.is_2_6();
    let remote = q.remote_cluster_name.as_str();
    if remote == c.name {
        return add_error(
            err::INVALID_PARAMETERS,
            "illegal operation: adding duplication to itself".into(),
        );
    }
    if c.directory.get(remote).is_none() {
        let hint = format!("failed to find cluster[{remote}] address in config [pegasus.clusters]");
        return add_error(err::INVALID_PARAMETERS, hint);
    }
    if v2_6 && q.remote_replica_count.is_some_and(|n| n < 0) {
        return add_error(
            err::INVALID_PARAMETERS,
            "remote_replica_count should be >= 0".into(),
        );
    }
    let mut state = c.lock();
    let Some(app) = state
        .app_by_name_mut(&q.app_name)
        .filter(|a| a.status == AppStatus::AS_AVAILABLE)
    else {
        return add_error(
            err::APP_NOT_EXIST,
            format!("app {} does not exist", q.app_name),
        );
    };
    if let Some(dup) = app.dups.values().find(|d| d.remote == remote) {
        return re_add(app.id, dup, v2_6);
    }
    let checkpoint = q.is_duplicating_checkpoint.unwrap_or(true);
    let remote_app_name = q
        .remote_app_name
        .clone()
        .filter(|n| v2_6 && !n.is_empty())
        .unwrap_or_else(|| app.name.clone());
    let replicas = q
        .remote_replica_count
        .filter(|&n| v2_6 && n > 0)
        .unwrap_or(app.max_replica_count);
    let dup = new_dup(c, app, remote, checkpoint, remote_app_name, replicas);
    let resp = AddDuplicationResponse {
        err: ErrorCode::ok(),
        appid: app.id,
        dupid: dup.dupid,
        hint: None,
        remote_app_name: v2_6.then(|| dup.remote_app_name.clone()),
        remote_replica_count: v2_6.then_some(dup.remote_replica_count),
    };
    app.dups.insert(dup.dupid, dup);
    drop(state);
    c.wakes.duplications_changed();
    resp
}

/// Re-adding a duplication to the same remote: `start()` is called again, which is only a
/// valid transition while it is still DS_PREPARE and not being persisted.
fn re_add(appid: i32, dup: &Dup, v2_6: bool) -> AddDuplicationResponse {
    let preparing = dup.status == DS_PREPARE && !dup.is_altering();
    if v2_6 && dup.is_altering() {
        return add_error(
            err::BUSY,
            format!("start dup[{appid}({})] failed: err = ERR_BUSY", dup.dupid),
        );
    }
    match (v2_6, preparing) {
        (true, true) => AddDuplicationResponse {
            err: ErrorCode::new(err::DUP_EXIST),
            appid,
            dupid: dup.dupid,
            hint: Some(format!("duplication[{}] already exists", dup.dupid)),
            remote_app_name: Some(dup.remote_app_name.clone()),
            remote_replica_count: Some(dup.remote_replica_count),
        },
        (true, false) => add_error(
            err::INVALID_PARAMETERS,
            format!(
                "start dup[{appid}({})] failed: err = ERR_INVALID_PARAMETERS",
                dup.dupid
            ),
        ),
        (false, true) => AddDuplicationResponse {
            err: ErrorCode::ok(),
            appid,
            dupid: dup.dupid,
            ..Default::default()
        },
        // v2.5.0 only logs a failed start: the reply keeps ERR_OK with appid and dupid 0.
        (false, false) => AddDuplicationResponse {
            err: ErrorCode::ok(),
            ..Default::default()
        },
    }
}

fn new_dup(
    c: &Cluster,
    app: &App,
    remote: &str,
    checkpoint: bool,
    remote_app_name: String,
    replicas: i32,
) -> Dup {
    let now_s = i32::try_from(now_us() / 1_000_000).unwrap_or(i32::MAX);
    let mut dupid = now_s;
    while app.dups.contains_key(&dupid) {
        dupid += 1;
    }
    let status = if checkpoint { DS_PREPARE } else { DS_LOG };
    Dup {
        dupid,
        remote: remote.to_string(),
        status,
        prev_status: status,
        fail_mode: DuplicationFailMode::FAIL_SLOW,
        create_ts_ms: now_us() / 1000,
        remote_app_name,
        remote_replica_count: replicas,
        // The checkpoint covers everything committed so far; shipping starts after it.
        parts: app
            .partitions
            .iter()
            .map(|p| DupPartition::new(p.last_committed))
            .collect(),
        status_since: Instant::now(),
        busy: false,
        create_due: false,
        follower_ready: false,
        altering_until: Some(Instant::now() + c.config.meta_persist_delay),
    }
}

/// The entry a meta reports; partition states (initialised partitions only) and remote
/// fields only on master.
fn entry(dup: &Dup, v2_6: bool) -> DuplicationEntry {
    let states = dup
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_inited())
        .map(|(pidx, p)| {
            (
                i32::try_from(pidx).unwrap_or(i32::MAX),
                DuplicationPartitionState {
                    confirmed_decree: p.confirmed,
                    last_committed_decree: p.reported_lcd,
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    DuplicationEntry {
        dupid: dup.dupid,
        status: dup.status,
        remote: dup.remote.clone(),
        create_ts: dup.create_ts_ms,
        progress: None,
        fail_mode: Some(dup.fail_mode),
        remote_app_name: v2_6.then(|| dup.remote_app_name.clone()),
        remote_replica_count: v2_6.then_some(dup.remote_replica_count),
        partition_states: v2_6.then_some(states),
    }
}

/// Handles `RPC_CM_QUERY_DUPLICATION`.
#[must_use]
pub fn query(c: &Cluster, q: &QueryDuplicationRequest) -> QueryDuplicationResponse {
    let state = c.lock();
    let Some(app) = state
        .app_by_name(&q.app_name)
        .filter(|a| a.status == AppStatus::AS_AVAILABLE)
    else {
        return QueryDuplicationResponse {
            err: ErrorCode::new(err::APP_NOT_EXIST),
            ..Default::default()
        };
    };
    let v2_6 = c.config.version.is_2_6();
    QueryDuplicationResponse {
        err: ErrorCode::ok(),
        appid: app.id,
        entry_list: app.dups.values().map(|d| entry(d, v2_6)).collect(),
    }
}

/// Whether a status change is allowed (`is_valid_alteration`).
#[must_use]
pub fn valid_alteration(from: DuplicationStatus, to: DuplicationStatus) -> bool {
    from == to
        || to == DS_REMOVED
        || matches!(
            (from, to),
            (DS_INIT, DS_PREPARE)
                | (DS_PREPARE, DS_APP)
                | (DS_APP | DS_INIT | DS_PAUSE, DS_LOG)
                | (DS_LOG, DS_PAUSE)
        )
}

/// Handles `RPC_CM_MODIFY_DUPLICATION` in `alter_status`'s order: a change still being
/// persisted answers `ERR_BUSY`; no change answers `ERR_OK` without a write (and appid 0).
#[must_use]
pub fn modify(c: &Cluster, q: &ModifyDuplicationRequest) -> ModifyDuplicationResponse {
    let fail = |code: &str| ModifyDuplicationResponse {
        err: ErrorCode::new(code),
        appid: 0,
    };
    let mut state = c.lock();
    let Some(app) = state
        .app_by_name_mut(&q.app_name)
        .filter(|a| a.status == AppStatus::AS_AVAILABLE)
    else {
        return fail(err::APP_NOT_EXIST);
    };
    let appid = app.id;
    let Some(dup) = app.dups.get_mut(&q.dupid) else {
        return fail(err::OBJECT_NOT_FOUND);
    };
    if dup.is_altering() {
        return fail(err::BUSY);
    }
    let to = q.status.unwrap_or(dup.status);
    let mode = q.fail_mode.unwrap_or(dup.fail_mode);
    if !valid_alteration(dup.status, to) {
        return fail(err::INVALID_PARAMETERS);
    }
    if to == dup.status && mode == dup.fail_mode {
        return fail(err::OK);
    }
    if to == DS_REMOVED {
        app.dups.remove(&q.dupid);
    } else {
        if to == dup.status {
            dup.altering_until = Some(Instant::now() + c.config.meta_persist_delay);
        } else {
            dup.alter(to, c.config.meta_persist_delay);
        }
        dup.fail_mode = mode;
    }
    drop(state);
    c.wakes.duplications_changed();
    ModifyDuplicationResponse {
        err: ErrorCode::ok(),
        appid,
    }
}

/// Handles `RPC_CM_LIST_DUPLICATION` (2.6 only).
#[must_use]
pub fn list(c: &Cluster, q: &ListDuplicationRequest) -> ListDuplicationResponse {
    let state = c.lock();
    let matches = |name: &str| match q.match_type {
        PatternMatchType::PMT_MATCH_EXACT => name == q.app_name_pattern,
        PatternMatchType::PMT_MATCH_PREFIX => name.starts_with(&q.app_name_pattern),
        PatternMatchType::PMT_MATCH_POSTFIX => name.ends_with(&q.app_name_pattern),
        PatternMatchType::PMT_MATCH_ANYWHERE => name.contains(&q.app_name_pattern),
        _ => true,
    };
    let app_states = state
        .apps
        .values()
        .filter(|a| a.status == AppStatus::AS_AVAILABLE && !a.dups.is_empty() && matches(&a.name))
        .map(|a| {
            let dups = a.dups.values().map(|d| (d.dupid, entry(d, true))).collect();
            let count = i32::try_from(a.partitions.len()).unwrap_or(i32::MAX);
            let st = DuplicationAppState {
                appid: a.id,
                duplications: dups,
                app_name: a.name.clone(),
                partition_count: count,
            };
            (a.name.clone(), st)
        })
        .collect();
    ListDuplicationResponse {
        err: ErrorCode::ok(),
        hint_message: String::new(),
        app_states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alterations_follow_the_meta_rules() {
        assert!(valid_alteration(DS_PREPARE, DS_APP));
        assert!(valid_alteration(DS_LOG, DS_PAUSE));
        assert!(valid_alteration(DS_PAUSE, DS_LOG));
        assert!(valid_alteration(DS_APP, DS_REMOVED));
        assert!(!valid_alteration(DS_LOG, DS_PREPARE));
        assert!(!valid_alteration(DS_PAUSE, DS_APP));
    }
}
