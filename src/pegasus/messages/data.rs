//! Defines the replica data RPCs (put, get, remove, multi-put, multi-get, multi-remove, ttl,
//! sort-key count, scanners) and duplicate.

use super::rpc;
use crate::pegasus::base::{Blob, TaskCode};
use crate::{thrift_enum, thrift_struct};

/// rocksdb status codes carried in the `error` field of data responses.
pub mod rocksdb {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const INCOMPLETE: i32 = 7;
    pub const INVALID_ARGUMENT: i32 = 4;
    pub const TRY_AGAIN: i32 = 13;
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

thrift_enum! {
    /// `cas_check_type`: what check_and_set / check_and_mutate check before writing.
    pub enum CasCheckType {
        CT_NO_CHECK = 0, CT_VALUE_NOT_EXIST = 1, CT_VALUE_NOT_EXIST_OR_EMPTY = 2,
        CT_VALUE_EXIST = 3, CT_VALUE_NOT_EMPTY = 4, CT_VALUE_MATCH_ANYWHERE = 5,
        CT_VALUE_MATCH_PREFIX = 6, CT_VALUE_MATCH_POSTFIX = 7, CT_VALUE_BYTES_LESS = 8,
        CT_VALUE_BYTES_LESS_OR_EQUAL = 9, CT_VALUE_BYTES_EQUAL = 10,
        CT_VALUE_BYTES_GREATER_OR_EQUAL = 11, CT_VALUE_BYTES_GREATER = 12,
        CT_VALUE_INT_LESS = 13, CT_VALUE_INT_LESS_OR_EQUAL = 14, CT_VALUE_INT_EQUAL = 15,
        CT_VALUE_INT_GREATER_OR_EQUAL = 16, CT_VALUE_INT_GREATER = 17
    }
}

thrift_enum! {
    /// `mutate_operation`.
    pub enum MutateOperation { MO_PUT = 0, MO_DELETE = 1 }
}

thrift_struct! {
    /// `incr_request`: `expire_ts_seconds` 0 keeps the TTL, > 0 sets it (absolute), < 0 clears.
    pub struct IncrRequest {
        1: key: Blob,
        2: increment: i64,
        3: expire_ts_seconds: i32,
    }
}

thrift_struct! {
    /// `incr_response`.
    pub struct IncrResponse {
        1: error: i32,
        2: new_value: i64,
        3: app_id: i32,
        4: partition_index: i32,
        5: decree: i64,
        6: server: String,
    }
}

thrift_struct! {
    /// `check_and_set_request`.
    pub struct CheckAndSetRequest {
        1: hash_key: Blob,
        2: check_sort_key: Blob,
        3: check_type: CasCheckType,
        4: check_operand: Blob,
        5: set_diff_sort_key: bool,
        6: set_sort_key: Blob,
        7: set_value: Blob,
        8: set_expire_ts_seconds: i32,
        9: return_check_value: bool,
    }
}

thrift_struct! {
    /// `check_and_set_response` (also `check_and_mutate_response`).
    pub struct CheckAndSetResponse {
        1: error: i32,
        2: check_value_returned: bool,
        3: check_value_exist: bool,
        4: check_value: Blob,
        5: app_id: i32,
        6: partition_index: i32,
        7: decree: i64,
        8: server: String,
    }
}

thrift_struct! {
    /// `mutate`: one operation of a check_and_mutate.
    pub struct Mutate {
        1: operation: MutateOperation,
        2: sort_key: Blob,
        3: value: Blob,
        4: set_expire_ts_seconds: i32,
    }
}

thrift_struct! {
    /// `check_and_mutate_request`.
    pub struct CheckAndMutateRequest {
        1: hash_key: Blob,
        2: check_sort_key: Blob,
        3: check_type: CasCheckType,
        4: check_operand: Blob,
        5: mutate_list: Vec<Mutate>,
        6: return_check_value: bool,
    }
}

thrift_struct! {
    /// `multi_remove_request`.
    pub struct MultiRemoveRequest {
        1: hash_key: Blob,
        2: sort_keys: Vec<Blob>,
        3: max_count: i64,
    }
}

thrift_struct! {
    /// `multi_remove_response`.
    pub struct MultiRemoveResponse {
        1: error: i32,
        2: count: i64,
        3: app_id: i32,
        4: partition_index: i32,
        5: decree: i64,
        6: server: String,
    }
}

thrift_struct! {
    /// `ttl_response`: seconds left, or −1 when the record has no TTL (no field 5).
    pub struct TtlResponse {
        1: error: i32,
        2: ttl_seconds: i32,
        3: app_id: i32,
        4: partition_index: i32,
        6: server: String,
    }
}

thrift_struct! {
    /// `count_response` (sort-key count; no field 5).
    pub struct CountResponse {
        1: error: i32,
        2: count: i64,
        3: app_id: i32,
        4: partition_index: i32,
        6: server: String,
    }
}

thrift_struct! {
    /// `get_scanner_request`: keys are full composite keys; an empty stop key scans to the
    /// partition's end. Fields 11–13 are optional on the wire; 14 exists from v2.5.0.
    pub struct GetScannerRequest {
        1: start_key: Blob,
        2: stop_key: Blob,
        3: start_inclusive: bool,
        4: stop_inclusive: bool,
        5: batch_size: i32,
        6: no_value: bool,
        7: hash_key_filter_type: FilterType,
        8: hash_key_filter_pattern: Blob,
        9: sort_key_filter_type: FilterType,
        10: sort_key_filter_pattern: Blob,
        11: validate_partition_hash: Option<bool>,
        12: return_expire_ts: Option<bool>,
        13: full_scan: Option<bool>,
        14: only_return_count: Option<bool>,
    }
}

thrift_struct! {
    /// `scan_request`: the next batch of an open scanner.
    pub struct ScanRequest {
        1: context_id: i64,
    }
}

thrift_struct! {
    /// `scan_response`: keys are full composite keys; `context_id` ≥ 0 means more to scan,
    /// −1 completed, −2 no such scanner.
    pub struct ScanResponse {
        1: error: i32,
        2: kvs: Vec<KeyValue>,
        3: context_id: i64,
        4: app_id: i32,
        5: partition_index: i32,
        6: server: String,
        7: kv_count: Option<i32>,
    }
}

/// `scan_response.context_id` values.
pub mod scan_context {
    /// The scan reached its end; no context is kept.
    pub const COMPLETED: i64 = -1;
    /// No scanner of that id exists.
    pub const NOT_EXIST: i64 = -2;
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
rpc!(
    /// Adds to an integer value (not idempotent: refused while duplicating).
    Incr, "RPC_RRDB_RRDB_INCR", IncrRequest, IncrResponse
);
rpc!(
    /// Writes one value if a check passes (not idempotent).
    CheckAndSet, "RPC_RRDB_RRDB_CHECK_AND_SET", CheckAndSetRequest, CheckAndSetResponse
);
rpc!(
    /// Applies several puts and deletes if a check passes (not idempotent).
    CheckAndMutate, "RPC_RRDB_RRDB_CHECK_AND_MUTATE", CheckAndMutateRequest, CheckAndSetResponse
);
rpc!(
    /// Removes sort keys of one hash key.
    MultiRemove, "RPC_RRDB_RRDB_MULTI_REMOVE", MultiRemoveRequest, MultiRemoveResponse
);
rpc!(
    /// A key's remaining time to live (args: the composite key blob).
    Ttl, "RPC_RRDB_RRDB_TTL", Blob, TtlResponse
);
rpc!(
    /// How many sort keys a hash key has (args: the raw hash key).
    SortkeyCount, "RPC_RRDB_RRDB_SORTKEY_COUNT", Blob, CountResponse
);
rpc!(
    /// Opens a scanner on one partition and returns its first batch.
    GetScanner, "RPC_RRDB_RRDB_GET_SCANNER", GetScannerRequest, ScanResponse
);
rpc!(
    /// The next batch of an open scanner.
    Scan, "RPC_RRDB_RRDB_SCAN", ScanRequest, ScanResponse
);
rpc!(
    /// Releases a scanner (one-way: the server never replies; args: the context id).
    ClearScanner, "RPC_RRDB_RRDB_CLEAR_SCANNER", i64, ScanResponse
);
