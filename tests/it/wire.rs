//! Golden-bytes tests: every vector in tests/data/pegasus-wire-vectors.json decodes to the
//! documented value and re-encodes to the identical bytes.

use migrator::pegasus::base::{Blob, ErrorCode, Gpid, HostPort, RpcAddress, TaskCode};
use migrator::pegasus::frame::{self, RequestHeader};
use migrator::pegasus::key;
use migrator::pegasus::messages::apps::{
    CreateApp, DropApp, ListApps, PartitionConfiguration, PatternMatchType, QueryConfig,
    UpdateAppEnv,
};
use migrator::pegasus::messages::command::RemoteCommand;
use migrator::pegasus::messages::data::{
    Duplicate, Get, MultiGet, MultiPut, Put, Remove, UpdateRequest,
};
use migrator::pegasus::messages::duplication::{
    AddDuplication, ListDuplication, ModifyDuplication, QueryDuplication,
};
use migrator::pegasus::messages::nodes::{ClusterInfo, ListNodes};
use migrator::pegasus::messages::Rpc;
use migrator::pegasus::thrift::{from_bytes, to_bytes, Wire};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = include_str!("../data/pegasus-wire-vectors.json");
    serde_json::from_str(text).expect("vectors parse")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Decodes `bytes` as T and checks the value and the re-encoding.
fn check_value<T: Wire>(name: &str, bytes: &[u8], expected: &Value) -> T {
    let v: T = from_bytes(bytes).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    assert_eq!(&v.to_json(), expected, "{name}: decoded value");
    assert_eq!(to_bytes(&v), bytes, "{name}: re-encoding");
    v
}

fn check_request<R: Rpc>(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let hex = unhex(v["hex"].as_str().unwrap());
    let req = frame::parse_request(&hex).unwrap_or_else(|e| panic!("{name}: {e}"));
    let h = &v["header"];
    assert_eq!(req.name, R::NAME, "{name}");
    assert_eq!(i64::from(req.seqid), v["seqid"].as_i64().unwrap(), "{name}");
    assert_eq!(
        i64::from(req.header.app_id),
        h["app_id"].as_i64().unwrap(),
        "{name}"
    );
    assert_eq!(
        i64::from(req.header.partition_index),
        h["partition_index"].as_i64().unwrap()
    );
    assert_eq!(
        i64::from(req.header.client_timeout_ms),
        h["client_timeout_ms"].as_i64().unwrap()
    );
    assert_eq!(
        i64::from(req.header.thread_hash),
        h["thread_hash"].as_i64().unwrap(),
        "{name}"
    );
    let phash = u64::from_str_radix(
        h["partition_hash"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    );
    assert_eq!(req.header.partition_hash, phash.unwrap(), "{name}");
    // GET and REMOVE take a bare blob; the vectors name it `key`.
    let expected = match R::NAME {
        "RPC_RRDB_RRDB_GET" | "RPC_RRDB_RRDB_REMOVE" => v["value"]["key"].clone(),
        // This vector spells the enum as its number; ours uses names throughout.
        "RPC_CM_LIST_DUPLICATION" => {
            let mut value = v["value"].clone();
            let n = value["match_type"].as_i64().unwrap();
            value["match_type"] = PatternMatchType::from_value(n as i32).name().into();
            value
        }
        _ => v["value"].clone(),
    };
    let args: R::Request = check_value(name, &req.args, &expected);
    let again = frame::encode_request(&req.header, R::NAME, req.seqid, &args);
    assert_eq!(again, hex, "{name}: request frame re-encoding");
}

fn check_response<R: Rpc>(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let hex = unhex(v["hex"].as_str().unwrap());
    let reply = frame::parse_reply(&hex).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(reply.name, v["reply_name"].as_str().unwrap(), "{name}");
    assert_eq!(
        reply.rpc_error.as_str(),
        v["rpc_error"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        i64::from(reply.seqid),
        v["seqid"].as_i64().unwrap(),
        "{name}"
    );
    if v["value"].is_null() {
        assert!(reply.result.is_none(), "{name}: unexpected body");
        let again = frame::encode_error_reply(reply.rpc_error.as_str(), R::NAME, reply.seqid);
        assert_eq!(again, hex, "{name}: error reply re-encoding");
        return;
    }
    let (ttype, bytes) = reply.result.clone().expect("result");
    let expected_type = u8::from_str_radix(
        v["result_field_type"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    );
    assert_eq!(ttype, expected_type.unwrap(), "{name}");
    let result: R::Response = check_value(name, &bytes, &renamed_2_5_fields(v));
    assert_eq!(
        frame::encode_reply(R::NAME, reply.seqid, &result),
        hex,
        "{name}: reply re-encoding"
    );
}

/// The expected value with v2.5.0 field names mapped to the 2.6 names our structs use
/// (same ids and types): `node_info.address` became `node`.
fn renamed_2_5_fields(v: &Value) -> Value {
    let mut value = v["value"].clone();
    if v["rpc"] == "RPC_CM_LIST_NODES" && v["server_version"] == "2.5" {
        for info in value["infos"].as_array_mut().unwrap() {
            let info = info.as_object_mut().unwrap();
            let addr = info.remove("address").unwrap();
            info.insert("node".into(), addr);
        }
    }
    value
}

fn check_frame(v: &Value) {
    let request = v["kind"] == "request-frame";
    macro_rules! dispatch {
        ($($rpc:ty),*) => {
            match v["rpc"].as_str().unwrap() {
                $( n if n == <$rpc>::NAME => if request { check_request::<$rpc>(v) } else { check_response::<$rpc>(v) }, )*
                other => panic!("no message type for {other}"),
            }
        };
    }
    dispatch!(
        ListApps,
        QueryConfig,
        ClusterInfo,
        ListNodes,
        QueryDuplication,
        AddDuplication,
        ModifyDuplication,
        UpdateAppEnv,
        CreateApp,
        DropApp,
        RemoteCommand,
        ListDuplication,
        Put,
        Get,
        Remove,
        MultiPut,
        MultiGet,
        Duplicate
    );
}

fn check_struct(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let hex = unhex(v["hex"].as_str().unwrap());
    let value = &v["value"];
    match v["struct"].as_str().unwrap() {
        "rpc_address" => drop(check_value::<RpcAddress>(name, &hex, value)),
        "host_port" => drop(check_value::<HostPort>(name, &hex, value)),
        "gpid" => drop(check_value::<Gpid>(name, &hex, value)),
        "error_code" => drop(check_value::<ErrorCode>(name, &hex, value)),
        "task_code" => drop(check_value::<TaskCode>(name, &hex, value)),
        "blob" => drop(check_value::<Blob>(name, &hex, value)),
        "partition_configuration" => drop(check_value::<PartitionConfiguration>(name, &hex, value)),
        "update_request" => drop(check_value::<UpdateRequest>(name, &hex, value)),
        other => panic!("{name}: no type for struct {other}"),
    }
}

fn check_key_hash(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let bytes = unhex(v["hex"].as_str().unwrap());
    let val = &v["value"];
    let hex_u64 =
        |s: &Value| u64::from_str_radix(s.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    if val.get("hash_key").is_none() {
        assert_eq!(key::crc64(&bytes), hex_u64(&val["crc64"]), "{name}");
        return;
    }
    let hash = key::key_hash(&bytes);
    assert_eq!(hash, hex_u64(&val["crc64"]), "{name}");
    assert_eq!(hash as i64, val["crc64_as_i64"].as_i64().unwrap(), "{name}");
    let (hash_key, _) = key::split_key(&bytes).unwrap();
    assert_eq!(
        key::crc64(hash_key),
        hex_u64(&val["hash_key_crc64"]),
        "{name}"
    );
    for (count, pidx) in val["partition_index"].as_object().unwrap() {
        let count: i32 = count.parse().unwrap();
        assert_eq!(
            i64::from(key::partition_index(hash, count)),
            pidx.as_i64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn every_vector_decodes_to_its_value_and_reencodes_identically() {
    let all = vectors();
    assert_eq!(all.len(), 81, "vector file changed");
    for v in &all {
        match v["kind"].as_str().unwrap() {
            "request-frame" | "response-frame" => check_frame(v),
            "struct" => check_struct(v),
            "key-hash" => check_key_hash(v),
            other => panic!("unknown kind {other}"),
        }
    }
}

#[test]
fn worked_example_of_pegasus_wire_1_3_is_98_bytes() {
    use migrator::pegasus::messages::duplication::QueryDuplicationRequest;
    let header = RequestHeader {
        client_timeout_ms: 5000,
        ..Default::default()
    };
    let args = QueryDuplicationRequest {
        app_name: "t1".into(),
    };
    let bytes = frame::encode_request(&header, QueryDuplication::NAME, 1, &args);
    let expected = "54484654000000000000003000000000000000320000000000000000000000000000138800000000000000000000000080010001000000185250435f434d5f51554552595f4455504c49434154494f4e000000010c00010b00010000000274310000";
    assert_eq!(bytes.len(), 98);
    assert_eq!(bytes, unhex(expected));
}
