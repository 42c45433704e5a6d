//! The writes applications call besides put and remove, as upstream serves them
//! (`pegasus_write_service_impl.h`, `replica_2pc.cpp`): multi_remove counts what it was asked
//! for; incr starts from nothing and refuses text; check_and_set / check_and_mutate write only
//! when the check passes (else error 13, nothing written); while the table is a duplication
//! master the last three are refused with ERR_OPERATION_DISABLED and multi_remove is shipped.

use std::time::Duration;

use migrator::pegasus::base::{err, Blob, Gpid};
use migrator::pegasus::key;
use migrator::pegasus::messages::data::{
    rocksdb, CasCheckType, CheckAndMutate, CheckAndMutateRequest, CheckAndSet, CheckAndSetRequest,
    Incr, IncrRequest, MultiRemove, MultiRemoveRequest, Mutate, MutateOperation,
};
use migrator::pegasus::messages::duplication::AddDuplicationRequest;
use migrator::pegasus::messages::Rpc;
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::sim::{Directory, Version};

use crate::support::{eventually, meta_client, start_in};

/// Sends `R` for hash key `hk` straight to its primary.
async fn call<R: Rpc>(
    t: &TableClient,
    hk: &[u8],
    req: &R::Request,
) -> migrator::pegasus::error::Result<R::Response> {
    let routing = t.refresh().await.unwrap();
    let hash = key::crc64(hk);
    let pidx = key::partition_index(hash, routing.partition_count);
    let addr = routing.primaries[usize::try_from(pidx).unwrap()].unwrap();
    ReplicaClient::new(Duration::from_secs(2))
        .call::<R>(addr, Gpid::new(routing.app_id, pidx), hash, req)
        .await
}

fn incr(hk: &[u8], by: i64) -> IncrRequest {
    IncrRequest {
        key: Blob(key::composite_key(hk, b"n").unwrap()),
        increment: by,
        expire_ts_seconds: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_and_multi_writes_follow_the_server_and_stop_while_duplicating() {
    let dir = Directory::default();
    let src = start_in(&dir, "src", 1, Version::V2_5).await;
    let _dst = start_in(&dir, "dst", 2, Version::V2_6).await;
    src.create_table("t", 4, 1).unwrap();
    let t = TableClient::new("t", meta_client(&src), TableOptions::default());

    // incr: from nothing, then on, then refusing text.
    assert_eq!(
        call::<Incr>(&t, b"c", &incr(b"c", 5))
            .await
            .unwrap()
            .new_value,
        5
    );
    let r = call::<Incr>(&t, b"c", &incr(b"c", 2)).await.unwrap();
    assert_eq!((r.error, r.new_value), (rocksdb::OK, 7));
    assert_eq!(t.get(b"c", b"n").await.unwrap().as_deref(), Some(&b"7"[..]));
    t.put(b"c", b"n", b"seven").await.unwrap();
    assert_eq!(
        call::<Incr>(&t, b"c", &incr(b"c", 1)).await.unwrap().error,
        rocksdb::INVALID_ARGUMENT
    );

    // check_and_set: a failed check writes nothing and returns the value it saw.
    let cas = CheckAndSetRequest {
        hash_key: Blob::new(b"c"),
        check_sort_key: Blob::new(b"n"),
        check_type: CasCheckType::CT_VALUE_NOT_EXIST,
        set_value: Blob::new(b"new"),
        return_check_value: true,
        ..CheckAndSetRequest::default()
    };
    let r = call::<CheckAndSet>(&t, b"c", &cas).await.unwrap();
    assert_eq!(
        (r.error, r.check_value_exist, r.check_value.0.as_slice()),
        (rocksdb::TRY_AGAIN, true, &b"seven"[..])
    );
    let cas = CheckAndSetRequest {
        check_type: CasCheckType::CT_VALUE_MATCH_PREFIX,
        check_operand: Blob::new(b"sev"),
        ..cas
    };
    assert_eq!(
        call::<CheckAndSet>(&t, b"c", &cas).await.unwrap().error,
        rocksdb::OK
    );
    assert_eq!(
        t.get(b"c", b"n").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );

    // check_and_mutate: every put and delete at once when the check passes.
    let mutate = |op, sk: &[u8], v: &[u8]| Mutate {
        operation: op,
        sort_key: Blob::new(sk),
        value: Blob::new(v),
        set_expire_ts_seconds: 0,
    };
    let cam = CheckAndMutateRequest {
        hash_key: Blob::new(b"c"),
        check_sort_key: Blob::new(b"n"),
        check_type: CasCheckType::CT_VALUE_BYTES_EQUAL,
        check_operand: Blob::new(b"new"),
        mutate_list: vec![
            mutate(MutateOperation::MO_PUT, b"a", b"1"),
            mutate(MutateOperation::MO_DELETE, b"n", b""),
        ],
        return_check_value: false,
    };
    assert_eq!(
        call::<CheckAndMutate>(&t, b"c", &cam).await.unwrap().error,
        rocksdb::OK
    );
    assert_eq!(t.get(b"c", b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(t.get(b"c", b"n").await.unwrap(), None);

    // multi_remove: the count is what was asked for; none asked for is error 4.
    let mr = |sks: Vec<&[u8]>| MultiRemoveRequest {
        hash_key: Blob::new(b"c"),
        sort_keys: sks.into_iter().map(Blob::new).collect(),
        max_count: 0,
    };
    let r = call::<MultiRemove>(&t, b"c", &mr(vec![b"a", b"missing"]))
        .await
        .unwrap();
    assert_eq!((r.error, r.count), (rocksdb::OK, 2));
    assert_eq!(t.get(b"c", b"a").await.unwrap(), None);
    assert_eq!(
        call::<MultiRemove>(&t, b"c", &mr(vec![]))
            .await
            .unwrap()
            .error,
        rocksdb::INVALID_ARGUMENT
    );

    // A duplication master refuses the non-idempotent writes; multi_remove still goes.
    let meta = meta_client(&src);
    let req = AddDuplicationRequest {
        app_name: "t".into(),
        remote_cluster_name: "dst".into(),
        is_duplicating_checkpoint: Some(true),
        ..Default::default()
    };
    meta.add_duplication(&req).await.unwrap();
    eventually("the table is a duplication master", || async {
        call::<Incr>(&t, b"c", &incr(b"c", 1))
            .await
            .is_err_and(|e| e.is(err::OPERATION_DISABLED))
    })
    .await;
    let refused = call::<CheckAndSet>(&t, b"c", &cas).await.unwrap_err();
    assert!(refused.is(err::OPERATION_DISABLED), "{refused}");
    let refused = call::<CheckAndMutate>(&t, b"c", &cam).await.unwrap_err();
    assert!(refused.is(err::OPERATION_DISABLED), "{refused}");
    assert_eq!(
        call::<MultiRemove>(&t, b"c", &mr(vec![b"x"]))
            .await
            .unwrap()
            .error,
        rocksdb::OK
    );
}
