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
use migrator::probe::{progress, Primaries};
use migrator::sim::{Directory, SimCluster, Version};

use crate::support::{eventually, meta_client, shipping_everywhere, shipping_is, start_in};

fn add_request(table: &str, remote: &str) -> AddDuplicationRequest {
    AddDuplicationRequest {
        app_name: table.into(),
        remote_cluster_name: remote.into(),
        is_duplicating_checkpoint: Some(true),
        ..Default::default()
    }
}

async fn status_of(meta: &MetaClient, table: &str) -> Option<DuplicationStatus> {
    meta.query_duplication(table)
        .await
        .ok()?
        .entry_list
        .first()
        .map(|e| e.status)
}

/// This table's unshipped mutations, read the way the migrator does: the primaries' live
/// counters, and master's partition states when they are complete.
async fn lag(meta: &MetaClient, table: &str) -> Option<i64> {
    let entry = meta
        .query_duplication(table)
        .await
        .ok()?
        .entry_list
        .first()?
        .clone();
    let prim = Primaries::read(meta, table).await.ok()?;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let parts = progress::read(&replica, &prim, Some(entry.dupid), Duration::from_secs(2)).await;
    progress::lag(&entry, prim.partition_count, &parts)
}

async fn writes_reach_the_target(version: Version) {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, version).await;
    let dst = start_in(&directory, "dst", 2, version).await;
    let (src_meta, dst_meta) = (meta_client(&src), meta_client(&dst));
    let opts = CreateAppOptions {
        partition_count: 4,
        replica_count: 3,
        ..Default::default()
    };
    src_meta.create_app("orders", opts).await.unwrap();
    let source = TableClient::new("orders", src_meta.clone(), TableOptions::default());
    for i in 0..100 {
        source
            .put(format!("before{i}").as_bytes(), b"s", b"old")
            .await
            .unwrap();
    }

    let added = src_meta
        .add_duplication(&add_request("orders", "dst"))
        .await
        .unwrap();
    assert!(added.err.is_ok() && added.dupid > 0, "{added:?}");
    assert_eq!(added.remote_app_name.is_some(), version.is_2_6());
    for i in 0..100 {
        source
            .put(format!("during{i}").as_bytes(), b"s", b"new")
            .await
            .unwrap();
    }
    eventually("duplication reaches DS_LOG", || async {
        status_of(&src_meta, "orders").await == Some(DuplicationStatus::DS_LOG)
    })
    .await;
    for i in 0..100 {
        source
            .put(format!("after{i}").as_bytes(), b"s", b"x")
            .await
            .unwrap();
    }
    // 2.5 ships a partition's last write only after its primary's next empty write (group
    // check), and that empty write then stays unshipped itself: the lag never reaches 0.
    let floor = if version.is_2_6() { 0 } else { 4 };
    eventually("lag reaches its floor", || async {
        lag(&src_meta, "orders").await.is_some_and(|l| l <= floor)
    })
    .await;

    let follower = dst_meta.list_apps(Default::default()).await.unwrap();
    let envs = &follower
        .iter()
        .find(|a| a.app_name == "orders")
        .expect("follower created")
        .envs;
    assert_eq!(
        envs.get("duplication.master_cluster").map(String::as_str),
        Some("src")
    );
    assert_eq!(
        envs.contains_key("duplication.follower_app_status"),
        version.is_2_6()
    );
    let target = TableClient::new("orders", dst_meta, TableOptions::default());
    let all_there = || async {
        for (prefix, value) in [("before", &b"old"[..]), ("during", b"new"), ("after", b"x")] {
            for i in 0..100 {
                let got = target.get(format!("{prefix}{i}").as_bytes(), b"s").await;
                if got.ok().flatten().as_deref() != Some(value) {
                    return false;
                }
            }
        }
        true
    };
    // On 2.5 the last write of each partition lands after the next group check.
    eventually("every write is on the target", all_there).await;
}

#[tokio::test]
async fn duplication_ships_every_write_on_2_5() {
    writes_reach_the_target(Version::V2_5).await;
}

#[tokio::test]
async fn duplication_ships_every_write_on_2_6() {
    writes_reach_the_target(Version::V2_6).await;
}

/// Starts source and target, creates `t` with 4 partitions, and duplicates it to DS_LOG.
async fn duplicating(version: Version) -> (SimCluster, SimCluster, MetaClient, TableClient) {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, version).await;
    let dst = start_in(&directory, "dst", 2, version).await;
    let meta = meta_client(&src);
    meta.create_app(
        "t",
        CreateAppOptions {
            partition_count: 4,
            replica_count: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dupid = meta
        .add_duplication(&add_request("t", "dst"))
        .await
        .unwrap()
        .dupid;
    shipping_everywhere(&meta, "t", dupid).await;
    let table = TableClient::new("t", meta.clone(), TableOptions::default());
    (src, dst, meta, table)
}

async fn re_add_after_log(
    version: Version,
) -> migrator::pegasus::messages::duplication::AddDuplicationResponse {
    let (_src, _dst, meta, _) = duplicating(version).await;
    // Entering DS_LOG is persisted first; meanwhile a re-add would get ERR_BUSY.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = meta
        .add_duplication(&add_request("t", "dst"))
        .await
        .unwrap();
    assert_eq!(
        meta.query_duplication("t").await.unwrap().entry_list.len(),
        1,
        "no second duplication"
    );
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
    let opts = CreateAppOptions {
        partition_count: 2,
        replica_count: 3,
        ..Default::default()
    };
    meta.create_app("t", opts.clone()).await.unwrap();
    meta_client(&dst).create_app("t", opts).await.unwrap();
    let first = meta
        .add_duplication(&add_request("t", "dst"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_of(&meta, "t").await,
        Some(DuplicationStatus::DS_PREPARE)
    );
    let again = meta
        .add_duplication(&add_request("t", "dst"))
        .await
        .unwrap();
    assert!(again.err.is(err::DUP_EXIST), "{again:?}");
    assert_eq!(again.dupid, first.dupid);
}

#[tokio::test]
async fn a_duplication_to_an_unknown_cluster_or_itself_is_refused_with_a_hint() {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, Version::V2_5).await;
    let meta = meta_client(&src);
    meta.create_app(
        "t",
        CreateAppOptions {
            partition_count: 2,
            replica_count: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let unknown = meta
        .add_duplication(&add_request("t", "nowhere"))
        .await
        .unwrap();
    assert!(unknown.err.is(err::INVALID_PARAMETERS) && unknown.hint.unwrap().contains("nowhere"));
    let itself = meta
        .add_duplication(&add_request("t", "src"))
        .await
        .unwrap();
    assert!(itself.err.is(err::INVALID_PARAMETERS));
    let missing = meta
        .add_duplication(&add_request("nope", "src"))
        .await
        .unwrap();
    assert!(!missing.err.is_ok());
}

#[tokio::test]
async fn pause_holds_mutations_back_and_resume_ships_them() {
    let (_src, _dst, meta, table) = duplicating(Version::V2_6).await;
    let dupid = meta.query_duplication("t").await.unwrap().entry_list[0].dupid;
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_PAUSE)
        .await
        .unwrap();
    // Each primary pauses at its server's next duplication sync.
    shipping_is(&meta, "t", dupid, false).await;
    // What had not shipped, or its confirmation not persisted, by the pause.
    let base = lag(&meta, "t").await.expect("a lag");
    for i in 0..40 {
        table
            .put(format!("k{i}").as_bytes(), b"s", b"v")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status_of(&meta, "t").await,
        Some(DuplicationStatus::DS_PAUSE)
    );
    // Group check adds an empty write to an idle partition every 300 ms meanwhile.
    let unshipped = |writes: i64| base + writes..=base + writes + 12;
    let lag_now = lag(&meta, "t").await.expect("a lag");
    assert!(
        unshipped(40).contains(&lag_now),
        "nothing shipped while paused: {lag_now}"
    );
    let states = || async {
        meta.query_duplication("t").await.unwrap().entry_list[0]
            .partition_states
            .clone()
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = states().await;
    for i in 40..50 {
        table
            .put(format!("k{i}").as_bytes(), b"s", b"v")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        states().await,
        before,
        "master's partition states freeze while nothing ships"
    );
    let lag_now = lag(&meta, "t").await.expect("a lag");
    assert!(
        unshipped(50).contains(&lag_now),
        "the primaries still count: {lag_now}"
    );
    let bad = meta
        .modify_duplication("t", dupid, DuplicationStatus::DS_APP)
        .await
        .unwrap_err();
    assert!(bad.is(err::INVALID_PARAMETERS), "{bad}");
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_LOG)
        .await
        .unwrap();
    eventually("lag drains after resume", || async {
        lag(&meta, "t").await == Some(0)
    })
    .await;
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_REMOVED)
        .await
        .unwrap();
    assert!(meta
        .query_duplication("t")
        .await
        .unwrap()
        .entry_list
        .is_empty());
    let gone = meta
        .modify_duplication("t", dupid, DuplicationStatus::DS_LOG)
        .await
        .unwrap_err();
    assert!(gone.is(err::OBJECT_NOT_FOUND), "{gone}");
}

#[tokio::test]
async fn a_2_5_replica_reports_dup_perf_counters_scoped_by_gpid() {
    let (src, dst, meta, table) = duplicating(Version::V2_5).await;
    let appid = meta.query_duplication("t").await.unwrap().appid;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let counted = || async {
        let (mut pending, mut shipped_ops) = (0.0, 0);
        for addr in src.replicas() {
            let out = replica
                .command(addr, "perf-counters-by-substr", &["dup"])
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            for c in v["counters"].as_array().unwrap() {
                let name = c["name"].as_str().unwrap();
                if name.ends_with("dup.pending_mutations_count") {
                    pending += c["value"].as_f64().unwrap();
                }
                if name.contains(&format!("dup_shipped_ops@{appid}.")) {
                    shipped_ops += 1;
                }
            }
        }
        (pending, shipped_ops)
    };
    let (before, _) = counted().await;
    ReplicaClient::new(Duration::from_secs(1))
        .command(dst.metas()[0], "sim.fault", &["unreachable", "on"])
        .await
        .unwrap();
    for i in 0..30 {
        table
            .put(format!("k{i}").as_bytes(), b"s", b"v")
            .await
            .unwrap();
    }
    let (pending, shipped_ops) = counted().await;
    // 2.5 keeps each partition's newest mutation until a later one is logged, and group
    // check adds empty writes: more may be pending, never fewer than the writes.
    assert!(
        pending >= 30.0,
        "target unreachable: every write is pending: {before} then {pending}"
    );
    assert_eq!(
        shipped_ops, 4,
        "one shipped-ops counter per primary partition"
    );
    let (status, _) = replica
        .http_get(src.replicas()[0], "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 404, "2.5 has no /metrics");
}

#[tokio::test]
async fn a_2_6_replica_reports_dup_metrics_and_has_no_dup_perf_counters() {
    let (src, _dst, meta, table) = duplicating(Version::V2_6).await;
    let appid = meta.query_duplication("t").await.unwrap().appid;
    table.put(b"k", b"s", b"v").await.unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let metrics = || async {
        let (mut entities, mut shipped) = (0, 0);
        for addr in src.replicas() {
            let path = format!("/metrics?types=replica&attributes=table_id,{appid}");
            let (status, body) = replica.http_get(addr, &path).await.unwrap();
            assert_eq!(status, 200);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            for e in v["entities"].as_array().unwrap() {
                entities += 1;
                let m = e["metrics"].as_array().unwrap();
                let s = m
                    .iter()
                    .find(|m| m["name"] == "dup_shipped_successful_requests")
                    .unwrap();
                shipped += s["value"].as_i64().unwrap();
            }
        }
        (entities, shipped)
    };
    eventually("the write is shipped", || async {
        metrics().await == (4, 1)
    })
    .await;
    for addr in src.replicas() {
        let out = replica
            .command(addr, "perf-counters-by-substr", &["dup"])
            .await
            .unwrap();
        assert!(!out.contains("pending_mutations_count"), "{out}");
    }
}

#[tokio::test]
async fn a_duplication_can_be_held_in_ds_app_by_a_fault() {
    let directory = Directory::default();
    let src = start_in(&directory, "src", 1, Version::V2_5).await;
    let _dst = start_in(&directory, "dst", 2, Version::V2_5).await;
    let meta = meta_client(&src);
    ReplicaClient::new(Duration::from_secs(1))
        .command(src.metas()[0], "sim.fault", &["stuck_in_app", "on"])
        .await
        .unwrap();
    meta.create_app(
        "t",
        CreateAppOptions {
            partition_count: 2,
            replica_count: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    meta.add_duplication(&add_request("t", "dst"))
        .await
        .unwrap();
    eventually("DS_APP", || async {
        status_of(&meta, "t").await == Some(DuplicationStatus::DS_APP)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&meta, "t").await, Some(DuplicationStatus::DS_APP));
    ReplicaClient::new(Duration::from_secs(1))
        .command(src.metas()[0], "sim.fault", &["stuck_in_app", "off"])
        .await
        .unwrap();
    eventually("DS_LOG", || async {
        status_of(&meta, "t").await == Some(DuplicationStatus::DS_LOG)
    })
    .await;
}
