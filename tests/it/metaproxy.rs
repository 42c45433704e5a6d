//! meta-proxy over real ZooKeeper: routes from `<root>/<table>`, follows node changes, and
//! answers like upstream for missing or malformed nodes.

use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::routing::{node_path, Route};
use migrator::sim::metaproxy::{Build, MetaProxy};
use migrator::sim::{Directory, SimCluster, Version};

use crate::support::{eventually, meta_client, start_in, unique_root, TestZk};

fn route_to(sim: &SimCluster) -> String {
    let meta_addrs = sim.metas().iter().map(ToString::to_string).collect();
    Route {
        cluster_name: sim.cluster().name.clone(),
        meta_addrs,
    }
    .to_json()
}

async fn start_proxy(zk: &migrator::routing::zk::Zk, root: &str, build: Build) -> MetaProxy {
    let sessions = tokio::sync::watch::channel(0).1;
    MetaProxy::start(zk.clone(), root, build, sessions)
        .await
        .unwrap()
}

fn proxy_client(proxy: &MetaProxy) -> MetaClient {
    let opts = MetaOptions {
        call_timeout: Duration::from_millis(500),
        ..MetaOptions::default()
    };
    MetaClient::new(vec![proxy.addr()], opts)
}

fn holds(sim: &SimCluster, table: &str, key: &[u8]) -> bool {
    let k = migrator::pegasus::key::composite_key(key, b"s").unwrap();
    let state = sim.cluster().lock();
    state
        .app_by_name(table)
        .is_some_and(|a| a.partitions.iter().any(|p| p.data.contains_key(&k)))
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_follow_a_routing_change_once_the_source_says_reconfig() {
    let zk_server = TestZk::get().await;
    let zk = zk_server.connect().await;
    let root = unique_root("follow");
    let directory = Directory::default();
    let (a, b) = (
        start_in(&directory, "a", 1, Version::V2_5).await,
        start_in(&directory, "b", 2, Version::V2_6).await,
    );
    a.create_table("t", 4, 1).unwrap();
    b.create_table("t", 8, 1).unwrap();
    zk.create_all(&node_path(&root, "t"), route_to(&a).as_bytes())
        .await
        .unwrap();
    let proxy = start_proxy(&zk, &root, Build::HostPort).await;
    let opts = TableOptions {
        op_timeout: Duration::from_secs(3),
        ..TableOptions::default()
    };
    let table = TableClient::new("t", proxy_client(&proxy), opts);
    table.put(b"before", b"s", b"1").await.unwrap();
    assert!(holds(&a, "t", b"before") && !holds(&b, "t", b"before"));

    // The cut-over order: the source refuses (so nothing more lands there), then routing moves.
    meta_client(&a)
        .set_app_envs("t", &[("replica.deny_client_request", "reconfig*all")])
        .await
        .unwrap();
    let probe = TableClient::new(
        "t",
        proxy_client(&proxy),
        TableOptions {
            op_timeout: Duration::from_millis(300),
            ..opts
        },
    );
    eventually("the source refuses", || async {
        probe
            .put(b"probe", b"s", b"x")
            .await
            .is_err_and(|e| e.is(err::INVALID_STATE))
    })
    .await;
    zk.set(&node_path(&root, "t"), route_to(&b).as_bytes(), None)
        .await
        .unwrap();
    eventually("writes land on b", || async {
        table.put(b"after", b"s", b"2").await.is_ok() && holds(&b, "t", b"after")
    })
    .await;
    assert!(!holds(&a, "t", b"after"));
    assert_eq!(
        table.get(b"after", b"s").await.unwrap(),
        Some(b"2".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_malformed_nodes_get_upstream_errors_and_other_rpcs_no_reply() {
    let zk_server = TestZk::get().await;
    let zk = zk_server.connect().await;
    let root = unique_root("errors");
    zk.create_all(
        &node_path(&root, "bad"),
        br#"{"cluster_name":"a","meta_addrs":"127.0.0.1:1"}"#,
    )
    .await
    .unwrap();
    let proxy = start_proxy(&zk, &root, Build::HostPort).await;
    let client = proxy_client(&proxy);
    let missing = client.query_config("nope").await.unwrap_err();
    assert!(missing.is(err::OBJECT_NOT_FOUND), "{missing}");
    let bad = client.query_config("bad").await.unwrap_err();
    assert!(bad.is(err::INVALID_DATA), "{bad}");
    let other = client.cluster_info().await.unwrap_err();
    assert!(other.to_string().contains("no reply"), "{other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routing_change_reaches_proxy_clients_promptly() {
    let zk_server = TestZk::get().await;
    let zk = zk_server.connect().await;
    let root = unique_root("latency");
    let directory = Directory::default();
    let (a, b) = (
        start_in(&directory, "a", 1, Version::V2_5).await,
        start_in(&directory, "b", 2, Version::V2_5).await,
    );
    a.create_table("t", 4, 1).unwrap();
    b.create_table("t", 4, 1).unwrap();
    zk.create_all(&node_path(&root, "t"), route_to(&a).as_bytes())
        .await
        .unwrap();
    let proxy = start_proxy(&zk, &root, Build::HostPort).await;
    let client = proxy_client(&proxy);
    let first = client.query_config("t").await.unwrap();
    let b_id = b.cluster().lock().app_by_name("t").unwrap().id;
    let a_id = first.app_id;
    zk.set(&node_path(&root, "t"), route_to(&b).as_bytes(), None)
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    eventually("the proxy serves b", || async {
        client.query_config("t").await.is_ok_and(|c| {
            c.app_id == b_id && b_id != a_id
                || c.partitions[0]
                    .primary
                    .to_socket()
                    .is_some_and(|p| b.replicas().contains(&p))
        })
    })
    .await;
    let took = changed.elapsed();
    eprintln!("proxy followed the change after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
