//! Defines the replica data RPCs (put, get, remove, multi-put, multi-get) and duplicate.

use super::rpc;
use crate::pegasus::base::{Blob, TaskCode};
use crate::{thrift_enum, thrift_struct};

/// rocksdb status codes carried in the `error` field of data responses.
pub mod rocksdb {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const INCOMPLETE: i32 = 7;
    pub const INVALID_ARGUMENT: i32 = 4;
}

thrift_enum! {
    /// Key filter of multi-get and scans.
    pub enum FilterType { FT_NO_FILTER = 0, FT_MATCH_ANYWHERE = 1, FT_MATCH_PREFIX = 2, FT_MATCH_POSTFIX = 3 }
}

thrift_struct! {
    /// `update_request`: a put of a composite key.
    pub struct UpdateRequest {
        1: key: Blob,
        2: value: Blob,
        3: expire_ts_seconds: i32,
    }
}

thrift_struct! {
    /// `update_response`: the result of a write.
    pub struct UpdateResponse {
        1: error: i32,
        2: app_id: i32,
        3: partition_index: i32,
        4: decree: i64,
        5: server: String,
    }
}

thrift_struct! {
    /// `read_response` (no field 5).
    pub struct ReadResponse {
        1: error: i32,
        2: value: Blob,
        3: app_id: i32,
        4: partition_index: i32,
        6: server: String,
    }
}

thrift_struct! {
    /// `key_value`; in multi-ops the key is a sort key.
    pub struct KeyValue {
        1: key: Blob,
        2: value: Blob,
        3: expire_ts_seconds: Option<i32>,
    }
}

thrift_struct! {
    /// `multi_put_request`.
    pub struct MultiPutRequest {
        1: hash_key: Blob,
        2: kvs: Vec<KeyValue>,
        3: expire_ts_seconds: i32,
    }
}

thrift_struct! {
    /// `multi_get_request`; empty `sort_keys` with the range fields reads a whole row.
    pub struct MultiGetRequest {
        1: hash_key: Blob,
        2: sort_keys: Vec<Blob>,
        3: max_kv_count: i32,
        4: max_kv_size: i32,
        5: no_value: bool,
        6: start_sortkey: Blob,
        7: stop_sortkey: Blob,
        8: start_inclusive: bool,
        9: stop_inclusive: bool,
        10: sort_key_filter_type: FilterType,
        11: sort_key_filter_pattern: Blob,
        12: reverse: bool,
    }
}

thrift_struct! {
    /// `multi_get_response`; kvs ascending by sort key.
    pub struct MultiGetResponse {
        1: error: i32,
        2: kvs: Vec<KeyValue>,
        3: app_id: i32,
        4: partition_index: i32,
        6: server: String,
    }
}

thrift_struct! {
    /// `duplicate_entry`: one shipped mutation.
    pub struct DuplicateEntry {
        1: timestamp: Option<i64>,
        2: task_code: Option<TaskCode>,
        3: raw_message: Option<Blob>,
        4: cluster_id: Option<i8>,
        5: verify_timetag: Option<bool>,
    }
}

thrift_struct! {
    /// `duplicate_request`: mutations shipped from a duplication master.
    pub struct DuplicateRequest {
        1: entries: Option<Vec<DuplicateEntry>>,
    }
}

thrift_struct! {
    /// `duplicate_response`.
    pub struct DuplicateResponse {
        1: error: Option<i32>,
        2: error_hint: Option<String>,
    }
}

rpc!(
    /// Writes one key.
    Put, "RPC_RRDB_RRDB_PUT", UpdateRequest, UpdateResponse
);
rpc!(
    /// Writes several sort keys of one hash key.
    MultiPut, "RPC_RRDB_RRDB_MULTI_PUT", MultiPutRequest, UpdateResponse
);
rpc!(
    /// Deletes one key (args: the composite key blob).
    Remove, "RPC_RRDB_RRDB_REMOVE", Blob, UpdateResponse
);
rpc!(
    /// Reads one key (args: the composite key blob).
    Get, "RPC_RRDB_RRDB_GET", Blob, ReadResponse
);
rpc!(
    /// Reads sort keys of one hash key.
    MultiGet, "RPC_RRDB_RRDB_MULTI_GET", MultiGetRequest, MultiGetResponse
);
rpc!(
    /// Applies mutations shipped by a duplication master.
    Duplicate, "RPC_RRDB_RRDB_DUPLICATE", DuplicateRequest, DuplicateResponse
);
