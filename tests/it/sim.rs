//! Client ↔ simulator over TCP: every admin RPC, leader redirection, data RPCs, the deny env
//! after config sync, and garbage on the wire.

use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::messages::apps::{
    AppStatus, CreateAppOptions, QueryAppInfo, QueryAppInfoRequest,
};
use migrator::pegasus::messages::duplication::{ListDuplication, ListDuplicationRequest};
use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::pegasus::Error;
use migrator::sim::{Directory, SimCluster, SimConfig, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{eventually, meta_client, start};

fn options(partitions: i32) -> CreateAppOptions {
    CreateAppOptions {
        partition_count: partitions,
        replica_count: 3,
        app_type: "pegasus".into(),
        is_stateful: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn admin_rpcs_work_against_the_simulator() {
    let sim = start("sim-a", 1, Version::V2_6).await;
    let meta = meta_client(&sim);
    let id = meta.create_app("t1", options(8)).await.unwrap();
    let cfg = meta.query_config("t1").await.unwrap();
    assert_eq!(
        (cfg.app_id, cfg.partition_count, cfg.partitions.len()),
        (id, 8, 8)
    );
    assert!(cfg
        .partitions
        .iter()
        .all(|p| p.primary.is_valid() && p.secondaries.len() == 2));
    assert!(
        cfg.partitions[0].hp_primary.is_some(),
        "2.6 sends host_port fields"
    );

    let info = meta.cluster_info().await.unwrap();
    assert_eq!(info.get("cluster_name"), Some("sim-a"));
    assert_eq!(meta.list_nodes().await.unwrap().len(), 3);

    meta.set_app_envs("t1", &[("business.info", "1"), ("default_ttl", "2")])
        .await
        .unwrap();
    meta.del_app_envs("t1", &["default_ttl"]).await.unwrap();
    let apps = meta.list_apps(AppStatus::AS_AVAILABLE).await.unwrap();
    let t1 = apps.iter().find(|a| a.app_name == "t1").unwrap();
    assert_eq!(
        t1.envs.iter().collect::<Vec<_>>(),
        vec![(&"business.info".to_string(), &"1".to_string())]
    );
    meta.clear_app_envs("t1", "").await.unwrap();
    assert!(meta.list_apps(AppStatus::AS_AVAILABLE).await.unwrap()[0]
        .envs
        .is_empty());

    let bad = meta
        .set_app_envs("t1", &[("replica.deny_client_request", "delay*all")])
        .await
        .unwrap_err();
    assert!(
        bad.is(err::INVALID_PARAMETERS) && bad.to_string().contains("Invalid deny client args"),
        "{bad}"
    );
    let exists = meta.create_app("t1", options(8)).await.unwrap_err();
    assert!(exists.is(err::APP_EXIST), "{exists}");

    let replica = ReplicaClient::new(Duration::from_secs(2));
    let hosted = replica_query_app_info(&replica, sim.replicas()[0]).await;
    assert_eq!(hosted, vec!["t1".to_string()]);

    meta.drop_app("t1").await.unwrap();
    let gone = meta.query_config("t1").await.unwrap_err();
    assert!(gone.is(err::OBJECT_NOT_FOUND), "{gone}");
}

async fn replica_query_app_info(
    replica: &ReplicaClient,
    addr: std::net::SocketAddr,
) -> Vec<String> {
    use migrator::pegasus::connection::Connection;
    use migrator::pegasus::frame::RequestHeader;
    let conn = Connection::connect(addr, Duration::from_secs(1))
        .await
        .unwrap();
    let resp = conn
        .call::<QueryAppInfo>(
            RequestHeader::default(),
            &QueryAppInfoRequest::default(),
            replica.timeout(),
        )
        .await
        .unwrap();
    resp.apps.into_iter().map(|a| a.app_name).collect()
}

#[tokio::test]
async fn a_2_5_meta_rejects_list_duplication_and_sends_no_host_ports() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(4)).await.unwrap();
    let cfg = meta.query_config("t1").await.unwrap();
    assert!(cfg
        .partitions
        .iter()
        .all(|p| p.hp_primary.is_none() && p.hp_secondaries.is_none()));
    let e = meta
        .call_any::<ListDuplication>(&ListDuplicationRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Rpc { .. }) && e.is(err::HANDLER_NOT_FOUND),
        "{e}"
    );
}

#[tokio::test]
async fn the_client_follows_a_leader_change() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(4)).await.unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let out = replica
        .command(sim.metas()[0], "sim.fault", &["leader", "2"])
        .await
        .unwrap();
    assert_eq!(out, "OK");
    // query-config carries the leader hint; list-apps only gets ERR_FORWARD_TO_OTHERS.
    assert_eq!(meta.query_config("t1").await.unwrap().partition_count, 4);
    assert_eq!(meta.leader(), sim.metas()[2]);
    replica
        .command(sim.metas()[0], "sim.fault", &["leader", "1"])
        .await
        .unwrap();
    assert_eq!(
        meta.list_apps(AppStatus::AS_INVALID).await.unwrap().len(),
        1
    );
    assert_eq!(meta.leader(), sim.metas()[1]);
}

#[tokio::test]
async fn an_unreachable_cluster_is_one_clear_error() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let opts = MetaOptions {
        call_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..MetaOptions::default()
    };
    let meta = MetaClient::new(sim.metas(), opts);
    ReplicaClient::new(Duration::from_secs(1))
        .command(sim.metas()[0], "sim.fault", &["unreachable", "on"])
        .await
        .unwrap();
    let e = meta.cluster_info().await.unwrap_err();
    assert!(matches!(e, Error::NoLeader { .. }), "{e}");
    assert!(e.to_string().contains(&sim.metas()[0].to_string()), "{e}");
}

#[tokio::test]
async fn data_rpcs_route_by_key_and_read_back() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(8)).await.unwrap();
    let table = TableClient::new("t1", meta, TableOptions::default());
    for i in 0..50 {
        table
            .put(format!("h{i}").as_bytes(), b"s", format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    for i in 0..50 {
        assert_eq!(
            table.get(format!("h{i}").as_bytes(), b"s").await.unwrap(),
            Some(format!("v{i}").into_bytes())
        );
    }
    table.remove(b"h1", b"s").await.unwrap();
    assert_eq!(table.get(b"h1", b"s").await.unwrap(), None);
    let used: std::collections::BTreeSet<usize> = {
        let state = sim.cluster().lock();
        let app = state.app_by_name("t1").unwrap();
        app.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.data.is_empty())
            .map(|(i, _)| i)
            .collect()
    };
    assert!(used.len() > 4, "keys spread over partitions: {used:?}");
}

#[tokio::test]
async fn deny_env_takes_effect_at_config_sync_with_the_real_semantics() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(4)).await.unwrap();
    let opts = TableOptions {
        op_timeout: Duration::from_millis(300),
        ..TableOptions::default()
    };
    let table = TableClient::new("t1", meta.clone(), opts);
    table.put(b"k", b"s", b"v").await.unwrap();

    meta.set_app_envs("t1", &[("replica.deny_client_request", "timeout*write")])
        .await
        .unwrap();
    eventually("timeout*write drops writes", || async {
        matches!(
            table.put(b"k", b"s", b"v2").await,
            Err(Error::Timeout { .. })
        )
    })
    .await;
    // Writes before the sync went through; reads are still served after it.
    assert!(
        table.get(b"k", b"s").await.unwrap().is_some(),
        "reads still served"
    );

    meta.set_app_envs("t1", &[("replica.deny_client_request", "reconfig*all")])
        .await
        .unwrap();
    eventually("reconfig*all answers ERR_INVALID_STATE", || async {
        table
            .get(b"k", b"s")
            .await
            .is_err_and(|e| e.is(err::INVALID_STATE))
    })
    .await;

    meta.del_app_envs("t1", &["replica.deny_client_request"])
        .await
        .unwrap();
    eventually("writes restored", || async {
        table.put(b"k", b"s", b"v3").await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn garbage_on_the_wire_closes_the_connection_but_not_the_server() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    for junk in [
        &b"THFT\x00\x00\x00\x07garbage-garbage-garbage-garbage-garbage-garbage"[..],
        b"\xff\xff\xff\xff",
        b"THFT\x00\x00\x00\x00\x00\x00\x00\x30\x00\x00\x00\x00\x7f\xff\xff\xff",
    ] {
        let mut s = tokio::net::TcpStream::connect(sim.replicas()[0])
            .await
            .unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("server closes")
            .unwrap_or(0);
        assert_eq!(n, 0, "no reply to garbage");
    }
    let meta = meta_client(&sim);
    assert!(meta.cluster_info().await.is_ok());
}

#[tokio::test]
async fn the_http_endpoint_reports_data_versions_of_hosted_partitions_only() {
    let directory = Directory::default();
    let config = SimConfig {
        replicas: 4,
        replica_count: 1,
        ..SimConfig::fast(Version::V2_5)
    };
    let sim = SimCluster::start("sim-a", 1, config, &directory)
        .await
        .unwrap();
    let id = sim.create_table("t0", 2, 0).unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let mut versions = vec![];
    for addr in sim.replicas() {
        let (status, body) = replica
            .http_get(addr, &format!("/replica/data_version?app_id={id}"))
            .await
            .unwrap();
        versions.push((status, body));
    }
    assert_eq!(
        versions.iter().filter(|(s, _)| *s == 200).count(),
        2,
        "{versions:?}"
    );
    assert_eq!(
        versions.iter().filter(|(s, _)| *s == 404).count(),
        2,
        "{versions:?}"
    );
    assert!(
        versions
            .iter()
            .any(|(_, b)| b.contains("\"data_version\":\"0\"")),
        "{versions:?}"
    );
}

#[tokio::test]
async fn a_slow_cluster_delays_writes_but_not_reads() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(4)).await.unwrap();
    let table = TableClient::new("t1", meta, TableOptions::default());
    table.put(b"k", b"s", b"v").await.unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    replica
        .command(sim.metas()[0], "sim.fault", &["slow_write_ms", "300"])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    table.put(b"k", b"s", b"v2").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // Reads are not delayed: a read client whose deadline is below the write delay succeeds.
    let opts = TableOptions {
        op_timeout: Duration::from_millis(250),
        ..TableOptions::default()
    };
    let reader = TableClient::new("t1", meta_client(&sim), opts);
    eventually("a quick read succeeds", || async {
        reader
            .get(b"k", b"s")
            .await
            .is_ok_and(|v| v == Some(b"v2".to_vec()))
    })
    .await;
    let writer = TableClient::new("t1", meta_client(&sim), opts);
    assert!(
        writer.put(b"k", b"s", b"v3").await.is_err(),
        "a write cannot beat the 300 ms delay"
    );
}

#[tokio::test]
async fn dropped_connections_are_reopened_by_the_client() {
    let sim = start("sim-a", 1, Version::V2_5).await;
    let meta = meta_client(&sim);
    meta.create_app("t1", options(4)).await.unwrap();
    let table = TableClient::new("t1", meta.clone(), TableOptions::default());
    table.put(b"k", b"s", b"v").await.unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    assert_eq!(
        replica
            .command(sim.metas()[0], "sim.fault", &["drop_connections"])
            .await
            .unwrap(),
        "OK"
    );
    eventually("the client reconnects", || async {
        table.put(b"k", b"s", b"v2").await.is_ok()
    })
    .await;
    assert!(meta.cluster_info().await.is_ok());
    let bad = replica
        .command(sim.metas()[0], "sim.fault", &["leader", "9"])
        .await
        .unwrap();
    assert!(bad.starts_with("ERROR"), "{bad}");
}
