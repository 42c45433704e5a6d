//! Defines the table RPCs: list apps, query partition config, update envs, create and drop,
//! and the replica-side query app info.

use std::collections::BTreeMap;

use super::{has_err, rpc};
use crate::pegasus::base::{ErrorCode, Gpid, HostPort, RpcAddress};
use crate::{thrift_enum, thrift_struct};

thrift_enum! {
    /// Lifecycle of a table (`app_status`).
    pub enum AppStatus {
        AS_INVALID = 0, AS_AVAILABLE = 1, AS_CREATING = 2, AS_CREATE_FAILED = 3,
        AS_DROPPING = 4, AS_DROP_FAILED = 5, AS_DROPPED = 6, AS_RECALLING = 7,
    }
}

thrift_enum! {
    /// Operation of an app-env update.
    pub enum AppEnvOperation {
        APP_ENV_OP_INVALID = 0, APP_ENV_OP_SET = 1, APP_ENV_OP_DEL = 2, APP_ENV_OP_CLEAR = 3,
    }
}

thrift_enum! {
    /// Name matching of list requests (2.6).
    pub enum PatternMatchType {
        PMT_INVALID = 0, PMT_MATCH_ALL = 1, PMT_MATCH_EXACT = 2, PMT_MATCH_ANYWHERE = 3,
        PMT_MATCH_PREFIX = 4, PMT_MATCH_POSTFIX = 5, PMT_MATCH_REGEX = 6,
    }
}

thrift_struct! {
    /// A table as the meta server describes it (`app_info`).
    pub struct AppInfo {
        1: status: AppStatus,
        2: app_type: String,
        3: app_name: String,
        4: app_id: i32,
        5: partition_count: i32,
        6: envs: BTreeMap<String, String>,
        7: is_stateful: bool,
        8: max_replica_count: i32,
        9: expire_second: i64,
        10: create_second: i64,
        11: drop_second: i64,
        12: duplicating: Option<bool>,
        13: init_partition_count: i32,
        14: is_bulk_loading: Option<bool>,
        15: atomic_idempotent: Option<bool>,
    }
}

thrift_struct! {
    /// `configuration_list_apps_request`; `status` AS_INVALID lists every table.
    pub struct ListAppsRequest {
        1: status: AppStatus,
        2: app_name_pattern: Option<String>,
        3: match_type: Option<PatternMatchType>,
    }
}

thrift_struct! {
    /// `configuration_list_apps_response`.
    pub struct ListAppsResponse {
        1: err: ErrorCode,
        2: infos: Vec<AppInfo>,
        3: hint_message: Option<String>,
    }
}
has_err!(ListAppsResponse, opt_hint: hint_message);
rpc!(
    /// Lists tables.
    ListApps, "RPC_CM_LIST_APPS", ListAppsRequest, ListAppsResponse
);

thrift_struct! {
    /// One partition's replicas (`partition_configuration`); `hp_*` only from 2.6 servers.
    pub struct PartitionConfiguration {
        1: pid: Gpid,
        2: ballot: i64,
        3: max_replica_count: i32,
        4: primary: RpcAddress,
        5: secondaries: Vec<RpcAddress>,
        6: last_drops: Vec<RpcAddress>,
        7: last_committed_decree: i64,
        8: partition_flags: i32,
        9: hp_primary: Option<HostPort>,
        10: hp_secondaries: Option<Vec<HostPort>>,
        11: hp_last_drops: Option<Vec<HostPort>>,
    }
}

thrift_struct! {
    /// `query_cfg_request`; empty `partition_indices` asks for all partitions.
    pub struct QueryCfgRequest {
        1: app_name: String,
        2: partition_indices: Vec<i32>,
    }
}

thrift_struct! {
    /// `query_cfg_response`; a non-leader puts the leader in `partitions[0].primary`.
    pub struct QueryCfgResponse {
        1: err: ErrorCode,
        2: app_id: i32,
        3: partition_count: i32,
        4: is_stateful: bool,
        5: partitions: Vec<PartitionConfiguration>,
    }
}
has_err!(QueryCfgResponse);
rpc!(
    /// Reads a table's partition configuration (also served by meta-proxy).
    QueryConfig, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", QueryCfgRequest, QueryCfgResponse
);

thrift_struct! {
    /// `configuration_update_app_env_request`.
    pub struct UpdateAppEnvRequest {
        1: app_name: String,
        2: op: AppEnvOperation,
        3: keys: Option<Vec<String>>,
        4: values: Option<Vec<String>>,
        5: clear_prefix: Option<String>,
    }
}

thrift_struct! {
    /// `configuration_update_app_env_response`.
    pub struct UpdateAppEnvResponse {
        1: err: ErrorCode,
        2: hint_message: String,
    }
}
has_err!(UpdateAppEnvResponse, hint: hint_message);
rpc!(
    /// Sets, deletes or clears table envs.
    UpdateAppEnv, "RPC_CM_UPDATE_APP_ENV", UpdateAppEnvRequest, UpdateAppEnvResponse
);

thrift_struct! {
    /// `create_app_options`.
    pub struct CreateAppOptions {
        1: partition_count: i32,
        2: replica_count: i32,
        3: success_if_exist: bool,
        4: app_type: String,
        5: is_stateful: bool,
        6: envs: BTreeMap<String, String>,
        7: atomic_idempotent: Option<bool>,
    }
}

thrift_struct! {
    /// `configuration_create_app_request`.
    pub struct CreateAppRequest {
        1: app_name: String,
        2: options: CreateAppOptions,
    }
}

thrift_struct! {
    /// `configuration_create_app_response`.
    pub struct CreateAppResponse {
        1: err: ErrorCode,
        2: appid: i32,
    }
}
has_err!(CreateAppResponse);
rpc!(
    /// Creates a table (the source meta also uses it to create a duplication follower).
    CreateApp, "RPC_CM_CREATE_APP", CreateAppRequest, CreateAppResponse
);

thrift_struct! {
    /// `drop_app_options`.
    pub struct DropAppOptions {
        1: success_if_not_exist: bool,
        2: reserve_seconds: Option<i64>,
    }
}

thrift_struct! {
    /// `configuration_drop_app_request`.
    pub struct DropAppRequest {
        1: app_name: String,
        2: options: DropAppOptions,
    }
}

thrift_struct! {
    /// `configuration_drop_app_response`.
    pub struct DropAppResponse {
        1: err: ErrorCode,
    }
}
has_err!(DropAppResponse);
rpc!(
    /// Drops a table.
    DropApp, "RPC_CM_DROP_APP", DropAppRequest, DropAppResponse
);

thrift_struct! {
    /// `query_app_info_request` (sent to a replica server).
    pub struct QueryAppInfoRequest {
        1: meta_server: RpcAddress,
        2: hp_meta_server: Option<HostPort>,
    }
}

thrift_struct! {
    /// `query_app_info_response`: the tables a replica server hosts.
    pub struct QueryAppInfoResponse {
        1: err: ErrorCode,
        2: apps: Vec<AppInfo>,
    }
}
has_err!(QueryAppInfoResponse);
rpc!(
    /// Asks a replica server which tables it hosts.
    QueryAppInfo, "RPC_QUERY_APP_INFO", QueryAppInfoRequest, QueryAppInfoResponse
);
