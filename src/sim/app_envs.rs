//! Owns the meta's app-env update: key validation as `app_env_validator` does it, and each
//! version's errors (`server_state::set_app_envs`, v2.5.0 and master).

use super::state::{Deny, DenyEvent, State, DENY_ENV};
use super::tables::AppError;
use crate::pegasus::base::err;
use crate::pegasus::messages::apps::{AppEnvOperation, UpdateAppEnvRequest};

/// Keys v2.5.0's meta accepts (`register_all_validators`, src/meta/app_env_validator.cpp).
const KEYS_2_5: [&str; 29] = [
    "replica.slow_query_threshold",
    "replica.write_throttling",
    "replica.write_throttling_by_size",
    "replica.rocksdb_iteration_threshold_time_ms",
    "replica.rocksdb_block_cache_enabled",
    "replica.read_throttling",
    "replica.read_throttling_by_size",
    "replica.split.validate_partition_hash",
    "user_specified_compaction",
    "replica.backup_request_throttling",
    "rocksdb.allow_ingest_behind",
    DENY_ENV,
    "rocksdb.write_buffer_size",
    "rocksdb.num_levels",
    "business.info",
    "default_ttl",
    "rocksdb.usage_scenario",
    "rocksdb.checkpoint.reserve_min_count",
    "rocksdb.checkpoint.reserve_time_seconds",
    "manual_compact.disabled",
    "manual_compact.max_concurrent_running_count",
    "manual_compact.once.trigger_time",
    "manual_compact.once.target_level",
    "manual_compact.once.bottommost_level_compaction",
    "manual_compact.periodic.trigger_time",
    "manual_compact.periodic.target_level",
    "manual_compact.periodic.bottommost_level_compaction",
    "replica_access_controller.allowed_users",
    "replica_access_controller.ranger_policies",
];

/// Keys master adds (the follower markers a master source's meta sets).
const KEYS_MASTER_ONLY: [&str; 4] = [
    "duplication.master_cluster",
    "duplication.master_metas",
    "duplication.master_app_name",
    "duplication.follower_app_status",
];

const DENY_HINT: &str = "Invalid deny client args, valid include: timeout*all, timeout*write, timeout*read; reconfig*all, reconfig*write, reconfig*read";

/// Checks one key and value as the meta's validator does; `Err` carries the hint.
fn validate(key: &str, value: &str, master: bool) -> Result<(), String> {
    let known = KEYS_2_5.contains(&key) || (master && KEYS_MASTER_ONLY.contains(&key));
    if !known {
        // v2.5.0 quotes the key with double quotes, master with single ones.
        return Err(if master {
            format!("app_env '{key}' is not supported")
        } else {
            format!("app_env \"{key}\" is not supported")
        });
    }
    if key == DENY_ENV && Deny::parse(value).is_none() {
        return Err(DENY_HINT.into());
    }
    Ok(())
}

/// Applies an env update as the meta does; replicas see it at their next config sync.
///
/// # Errors
/// `ERR_INVALID_PARAMETERS` with the validator's hint (checked before the table is looked
/// up); an unknown table is `ERR_INVALID_PARAMETERS` ("invalid app name") on 2.5 and
/// `ERR_APP_NOT_EXIST` on master.
pub fn update(state: &mut State, req: &UpdateAppEnvRequest, master: bool) -> Result<(), AppError> {
    let keys = req.keys.clone().unwrap_or_default();
    if req.op == AppEnvOperation::APP_ENV_OP_SET {
        let values = req.values.clone().unwrap_or_default();
        if keys.is_empty() || keys.len() != values.len() {
            return Err((err::INVALID_PARAMETERS, String::new()));
        }
        for (k, v) in keys.iter().zip(&values) {
            validate(k, v, master).map_err(|hint| (err::INVALID_PARAMETERS, hint))?;
        }
    }
    let before = state
        .app_by_name(&req.app_name)
        .and_then(|a| a.envs.get(DENY_ENV).cloned());
    let Some(app) = state.app_by_name_mut(&req.app_name) else {
        return Err(if master {
            (err::APP_NOT_EXIST, "app cannot be found".into())
        } else {
            (err::INVALID_PARAMETERS, "invalid app name".into())
        });
    };
    match req.op {
        AppEnvOperation::APP_ENV_OP_SET => {
            let values = req.values.clone().unwrap_or_default();
            app.envs.extend(keys.into_iter().zip(values));
        }
        // Deleting a key that is not set is not an error.
        AppEnvOperation::APP_ENV_OP_DEL if !keys.is_empty() => {
            keys.iter().for_each(|k| drop(app.envs.remove(k)));
        }
        AppEnvOperation::APP_ENV_OP_CLEAR => {
            let prefix = req.clear_prefix.clone().unwrap_or_default();
            app.envs
                .retain(|k, _| !prefix.is_empty() && !k.starts_with(&format!("{prefix}.")));
        }
        _ => return Err((err::INVALID_PARAMETERS, "invalid app env operation".into())),
    }
    let (app_id, after) = (app.id, app.envs.get(DENY_ENV).cloned());
    if after != before {
        state.deny_log.push(DenyEvent::Meta {
            at_ms: crate::clock::now_ms(),
            app_id,
            value: after,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_each_versions_validator() {
        assert!(validate(DENY_ENV, "timeout*write", false).is_ok());
        assert_eq!(
            validate(DENY_ENV, "delay*all", true).unwrap_err(),
            DENY_HINT
        );
        assert_eq!(
            validate("no.such", "1", false).unwrap_err(),
            "app_env \"no.such\" is not supported"
        );
        assert_eq!(
            validate("no.such", "1", true).unwrap_err(),
            "app_env 'no.such' is not supported"
        );
        assert!(validate("duplication.master_cluster", "a", false).is_err());
        assert!(validate("duplication.master_cluster", "a", true).is_ok());
    }
}
