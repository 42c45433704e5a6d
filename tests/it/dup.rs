//! Duplication end to end in the simulator, 2.5 and 2.6: the follower is created by the
//! source meta, writes on the source appear on the target, confirmed decrees reach the last
//! committed decree, and re-adds behave as each version does.

use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::messages::apps::CreateAppOptions;
use migrator::pegasus::messages::duplication::{AddDuplicationRequest, DuplicationStatus};
use migrator::pegasus::meta::MetaClient;
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::sim::{Directory, SimCluster, Version};

use crate::support::{eventually, meta_client, start_in};

fn add_request(table: &str, remote: &str) -> AddDuplicationRequest {
    AddDuplicationRequest {
        app_name: table.into(),
        remote_cluster_name: remote.into(),
        is_duplicating_checkpoint: Some(true),
        ..Default::default()
    }
}

async fn status_of(meta: &MetaClient, table: &str) -> Option<DuplicationStatus> {
    meta.query_duplication(table).await.ok()?.entry_list.first().map(|e| e.status)
}

/// This table's unshipped mutations, read the way the migrator will: 2.6 from the meta's
/// partition states, 2.5 from the primaries' `/replica/duplication`.
async fn lag(version: Version, meta: &MetaClient, src: &SimCluster, table: &str) -> i64 {
    let resp = meta.query_duplication(table).await.unwrap();
    if version.is_2_6() {
        let states = resp.entry_list[0].partition_states.clone().unwrap();
        return states.values().map(|s| s.last_committed_decree - s.confirmed_decree).sum();
    }
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let mut total = 0;
    for addr in src.replicas() {
        let (_, body) = replica.http_get(addr, &format!("/replica/duplication?appid={}", resp.appid)).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for parts in v.as_object().unwrap().values() {
            total += parts.as_object().unwrap().values().map(|p| p["not_confirmed_mutations_num"].as_i64().unwrap()).sum::<i64>();
        }
    }
    total
}

async fn writes_reach_the_target(version: Version) {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, version).await;
    let dst = start_in(&directory, "dst", 2, version).await;
    let (src_meta, dst_meta) = (meta_client(&src), meta_client(&dst));
    let opts = CreateAppOptions { partition_count: 4, replica_count: 3, ..Default::default() };
    src_meta.create_app("orders", opts).await.unwrap();
    let source = TableClient::new("orders", src_meta.clone(), TableOptions::default());
    for i in 0..100 {
        source.put(format!("before{i}").as_bytes(), b"s", b"old").await.unwrap();
    }

    let added = src_meta.add_duplication(&add_request("orders", "dst")).await.unwrap();
    assert!(added.err.is_ok() && added.dupid > 0, "{added:?}");
    assert_eq!(added.remote_app_name.is_some(), version.is_2_6());
    for i in 0..100 {
        source.put(format!("during{i}").as_bytes(), b"s", b"new").await.unwrap();
    }
    eventually("duplication reaches DS_LOG", || async { status_of(&src_meta, "orders").await == Some(DuplicationStatus::DS_LOG) }).await;
    for i in 0..100 {
        source.put(format!("after{i}").as_bytes(), b"s", b"x").await.unwrap();
    }
    eventually("lag reaches zero", || async { lag(version, &src_meta, &src, "orders").await == 0 }).await;

    let follower = dst_meta.list_apps(Default::default()).await.unwrap();
    let envs = &follower.iter().find(|a| a.app_name == "orders").expect("follower created").envs;
    assert_eq!(envs.get("duplication.master_cluster").map(String::as_str), Some("src"));
    assert_eq!(envs.contains_key("duplication.follower_app_status"), version.is_2_6());
    let target = TableClient::new("orders", dst_meta, TableOptions::default());
    for (prefix, value) in [("before", &b"old"[..]), ("during", b"new"), ("after", b"x")] {
        for i in 0..100 {
            let got = target.get(format!("{prefix}{i}").as_bytes(), b"s").await.unwrap();
            assert_eq!(got.as_deref(), Some(value), "{prefix}{i} on the target");
        }
    }
}

#[tokio::test]
async fn duplication_ships_every_write_on_2_5() {
    writes_reach_the_target(Version::V2_5).await;
}

#[tokio::test]
async fn duplication_ships_every_write_on_2_6() {
    writes_reach_the_target(Version::V2_6).await;
}

async fn re_add_after_log(version: Version) -> migrator::pegasus::messages::duplication::AddDuplicationResponse {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, version).await;
    let _dst = start_in(&directory, "dst", 2, version).await;
    let meta = meta_client(&src);
    meta.create_app("t", CreateAppOptions { partition_count: 2, replica_count: 3, ..Default::default() }).await.unwrap();
    meta.add_duplication(&add_request("t", "dst")).await.unwrap();
    eventually("DS_LOG", || async { status_of(&meta, "t").await == Some(DuplicationStatus::DS_LOG) }).await;
    let again = meta.add_duplication(&add_request("t", "dst")).await.unwrap();
    assert_eq!(meta.query_duplication("t").await.unwrap().entry_list.len(), 1, "no second duplication");
    again
}

#[tokio::test]
async fn re_adding_an_advanced_duplication_is_silent_on_2_5_with_dupid_0() {
    let again = re_add_after_log(Version::V2_5).await;
    assert!(again.err.is_ok());
    assert_eq!(again.dupid, 0);
}

#[tokio::test]
async fn re_adding_an_advanced_duplication_fails_on_2_6() {
    let again = re_add_after_log(Version::V2_6).await;
    assert!(again.err.is(err::INVALID_PARAMETERS), "{again:?}");
}

#[tokio::test]
async fn an_unrelated_target_table_keeps_the_duplication_in_prepare_and_2_6_says_dup_exist() {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, Version::V2_6).await;
    let dst = start_in(&directory, "dst", 2, Version::V2_6).await;
    let meta = meta_client(&src);
    let opts = CreateAppOptions { partition_count: 2, replica_count: 3, ..Default::default() };
    meta.create_app("t", opts.clone()).await.unwrap();
    meta_client(&dst).create_app("t", opts).await.unwrap();
    let first = meta.add_duplication(&add_request("t", "dst")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&meta, "t").await, Some(DuplicationStatus::DS_PREPARE));
    let again = meta.add_duplication(&add_request("t", "dst")).await.unwrap();
    assert!(again.err.is(err::DUP_EXIST), "{again:?}");
    assert_eq!(again.dupid, first.dupid);
}

#[tokio::test]
async fn a_duplication_to_an_unknown_cluster_or_itself_is_refused_with_a_hint() {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, Version::V2_5).await;
    let meta = meta_client(&src);
    meta.create_app("t", CreateAppOptions { partition_count: 2, replica_count: 3, ..Default::default() }).await.unwrap();
    let unknown = meta.add_duplication(&add_request("t", "nowhere")).await.unwrap();
    assert!(unknown.err.is(err::INVALID_PARAMETERS) && unknown.hint.unwrap().contains("nowhere"));
    let itself = meta.add_duplication(&add_request("t", "src")).await.unwrap();
    assert!(itself.err.is(err::INVALID_PARAMETERS));
    let missing = meta.add_duplication(&add_request("nope", "src")).await.unwrap();
    assert!(!missing.err.is_ok());
}
