//! Defines the duplication RPCs: query, add, modify and (2.6) list.

use std::collections::BTreeMap;

use super::apps::PatternMatchType;
use super::{has_err, rpc};
use crate::pegasus::base::ErrorCode;
use crate::{thrift_enum, thrift_struct};

thrift_enum! {
    /// Duplication state (2.4+ numbering).
    pub enum DuplicationStatus {
        DS_INIT = 0, DS_PREPARE = 1, DS_APP = 2, DS_LOG = 3, DS_PAUSE = 4, DS_REMOVED = 5,
    }
}

thrift_enum! {
    /// What a duplication does when loading its log fails.
    pub enum DuplicationFailMode { FAIL_SLOW = 0, FAIL_SKIP = 1, FAIL_FAST = 2 }
}

thrift_struct! {
    /// Per-partition progress reported by 2.6 metas.
    pub struct DuplicationPartitionState {
        1: confirmed_decree: i64,
        2: last_committed_decree: i64,
    }
}

thrift_struct! {
    /// One duplication of a table (`duplication_entry`).
    pub struct DuplicationEntry {
        1: dupid: i32,
        2: status: DuplicationStatus,
        3: remote: String,
        4: create_ts: i64,
        5: progress: Option<BTreeMap<i32, i64>>,
        7: fail_mode: Option<DuplicationFailMode>,
        8: remote_app_name: Option<String>,
        9: remote_replica_count: Option<i32>,
        11: partition_states: Option<BTreeMap<i32, DuplicationPartitionState>>,
    }
}

thrift_struct! {
    /// `duplication_query_request`.
    pub struct QueryDuplicationRequest {
        1: app_name: String,
    }
}

thrift_struct! {
    /// `duplication_query_response` (there is no field 2).
    pub struct QueryDuplicationResponse {
        1: err: ErrorCode,
        3: appid: i32,
        4: entry_list: Vec<DuplicationEntry>,
    }
}
has_err!(QueryDuplicationResponse);
rpc!(
    /// Lists a table's duplications.
    QueryDuplication, "RPC_CM_QUERY_DUPLICATION", QueryDuplicationRequest,
    QueryDuplicationResponse
);

thrift_struct! {
    /// `duplication_add_request`; fields 4 and 5 only for 2.6 servers.
    pub struct AddDuplicationRequest {
        1: app_name: String,
        2: remote_cluster_name: String,
        3: is_duplicating_checkpoint: Option<bool>,
        4: remote_app_name: Option<String>,
        5: remote_replica_count: Option<i32>,
    }
}

thrift_struct! {
    /// `duplication_add_response`; fields 5 and 6 come only from 2.6 servers.
    pub struct AddDuplicationResponse {
        1: err: ErrorCode,
        2: appid: i32,
        3: dupid: i32,
        4: hint: Option<String>,
        5: remote_app_name: Option<String>,
        6: remote_replica_count: Option<i32>,
    }
}
has_err!(AddDuplicationResponse, opt_hint: hint);
rpc!(
    /// Starts duplicating a table to a remote cluster.
    AddDuplication, "RPC_CM_ADD_DUPLICATION", AddDuplicationRequest, AddDuplicationResponse
);

thrift_struct! {
    /// `duplication_modify_request`; unset fields keep their value.
    pub struct ModifyDuplicationRequest {
        1: app_name: String,
        2: dupid: i32,
        3: status: Option<DuplicationStatus>,
        4: fail_mode: Option<DuplicationFailMode>,
    }
}

thrift_struct! {
    /// `duplication_modify_response`.
    pub struct ModifyDuplicationResponse {
        1: err: ErrorCode,
        2: appid: i32,
    }
}
has_err!(ModifyDuplicationResponse);
rpc!(
    /// Pauses, resumes or removes a duplication, or changes its fail mode.
    ModifyDuplication, "RPC_CM_MODIFY_DUPLICATION", ModifyDuplicationRequest,
    ModifyDuplicationResponse
);

thrift_struct! {
    /// `duplication_list_request` (2.6 only).
    pub struct ListDuplicationRequest {
        1: app_name_pattern: String,
        2: match_type: PatternMatchType,
    }
}

thrift_struct! {
    /// One table's duplications in a list reply.
    pub struct DuplicationAppState {
        1: appid: i32,
        2: duplications: BTreeMap<i32, DuplicationEntry>,
        3: app_name: String,
        4: partition_count: i32,
    }
}

thrift_struct! {
    /// `duplication_list_response` (2.6 only).
    pub struct ListDuplicationResponse {
        1: err: ErrorCode,
        2: hint_message: String,
        3: app_states: BTreeMap<String, DuplicationAppState>,
    }
}
has_err!(ListDuplicationResponse, hint: hint_message);
rpc!(
    /// Lists duplications of tables matching a pattern (2.6; 2.5 answers ERR_HANDLER_NOT_FOUND).
    ListDuplication, "RPC_CM_LIST_DUPLICATION", ListDuplicationRequest, ListDuplicationResponse
);
