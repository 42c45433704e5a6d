//! Property tests: every message survives encode → decode unchanged, inside a full frame, and
//! no input (random, truncated, or with absurd lengths) makes a decoder panic.

use migrator::pegasus::frame::{self, RequestHeader};
use migrator::pegasus::messages::apps::{
    CreateApp, DropApp, ListApps, QueryAppInfo, QueryConfig, UpdateAppEnv,
};
use migrator::pegasus::messages::command::RemoteCommand;
use migrator::pegasus::messages::data::{
    CheckAndMutate, CheckAndSet, ClearScanner, Duplicate, Get, GetScanner, Incr, MultiGet,
    MultiPut, MultiRemove, Put, Remove, Scan, SortkeyCount, Ttl,
};
use migrator::pegasus::messages::duplication::{
    AddDuplication, ListDuplication, ModifyDuplication, QueryDuplication,
};
use migrator::pegasus::messages::nodes::{ClusterInfo, ListNodes};
use migrator::pegasus::messages::replica_admin::QueryReplicaInfo;
use migrator::pegasus::messages::Rpc;
use migrator::pegasus::thrift::{from_bytes, to_bytes, Gen, Sample, Wire};
use proptest::prelude::*;

fn round_trip<T: Wire + Sample + PartialEq + std::fmt::Debug>(seed: u64) {
    let v = T::sample(&mut Gen::new(seed));
    let bytes = to_bytes(&v);
    assert_eq!(from_bytes::<T>(&bytes).unwrap(), v);
}

fn frames_round_trip<R: Rpc>(seed: u64)
where
    R::Request: Sample + PartialEq + std::fmt::Debug,
    R::Response: Sample + PartialEq + std::fmt::Debug,
{
    round_trip::<R::Request>(seed);
    round_trip::<R::Response>(seed ^ 0x5555);
    let mut g = Gen::new(seed);
    let req = R::Request::sample(&mut g);
    let header = RequestHeader {
        app_id: 3,
        partition_index: 1,
        client_timeout_ms: 9,
        thread_hash: 7,
        partition_hash: 11,
    };
    let parsed = frame::parse_request(&frame::encode_request(&header, R::NAME, 42, &req)).unwrap();
    assert_eq!(
        (parsed.header, parsed.name.as_str(), parsed.seqid),
        (header, R::NAME, 42)
    );
    assert_eq!(parsed.decode_args::<R::Request>().unwrap(), req);
    let resp = R::Response::sample(&mut g);
    let reply = frame::parse_reply(&frame::encode_reply(R::NAME, 43, &resp)).unwrap();
    assert_eq!(reply.decode_result::<R::Response>().unwrap(), resp);
}

macro_rules! every_rpc {
    ($seed:expr; $($rpc:ty),*) => { $( frames_round_trip::<$rpc>($seed); )* };
}

fn decode_everything(bytes: &[u8]) {
    let _ = frame::check_request(bytes);
    let _ = frame::parse_request(bytes);
    let _ = frame::check_reply(bytes);
    if let Ok(reply) = frame::parse_reply(bytes) {
        let _ = reply.decode_result::<<QueryConfig as Rpc>::Response>();
    }
    macro_rules! try_all {
        ($($rpc:ty),*) => { $(
            let _ = from_bytes::<<$rpc as Rpc>::Request>(bytes);
            let _ = from_bytes::<<$rpc as Rpc>::Response>(bytes);
        )* };
    }
    try_all!(
        ListApps,
        QueryConfig,
        QueryDuplication,
        AddDuplication,
        ListDuplication,
        UpdateAppEnv,
        ListNodes,
        MultiGet,
        Duplicate,
        QueryReplicaInfo
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(seed in any::<u64>()) {
        every_rpc!(seed; ListApps, QueryConfig, UpdateAppEnv, CreateApp, DropApp, QueryAppInfo,
            ClusterInfo, ListNodes, QueryDuplication, AddDuplication, ModifyDuplication,
            ListDuplication, RemoteCommand, Put, Get, Remove, MultiPut, MultiGet, Duplicate,
            QueryReplicaInfo, MultiRemove, Ttl, SortkeyCount, GetScanner, Scan, ClearScanner, Incr,
            CheckAndSet, CheckAndMutate);
    }

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn truncated_or_corrupted_frames_never_panic(seed in any::<u64>(), cut in any::<usize>(), flip in any::<usize>()) {
        let mut g = Gen::new(seed);
        let resp = <QueryConfig as Rpc>::Response::sample(&mut g);
        let mut bytes = frame::encode_reply(QueryConfig::NAME, 1, &resp);
        let at = flip % bytes.len();
        bytes[at] ^= 0xff;
        bytes.truncate(cut % (bytes.len() + 1));
        decode_everything(&bytes);
    }
}
