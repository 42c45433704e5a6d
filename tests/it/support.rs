//! Shared test fixtures: simulated clusters on loopback, clients, polling with a deadline.

use std::future::Future;
use std::time::Duration;

use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::sim::{Directory, SimCluster, SimConfig, Version};

/// Starts a fast simulated cluster in its own directory.
pub async fn start(name: &str, id: i8, version: Version) -> SimCluster {
    start_in(&Directory::default(), name, id, version).await
}

/// Starts a fast simulated cluster that knows the others in `directory`.
pub async fn start_in(directory: &Directory, name: &str, id: i8, version: Version) -> SimCluster {
    SimCluster::start(name, id, SimConfig::fast(version), directory)
        .await
        .expect("bind loopback")
}

/// A meta client of `sim` with short timeouts.
pub fn meta_client(sim: &SimCluster) -> MetaClient {
    let opts = MetaOptions {
        call_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..MetaOptions::default()
    };
    MetaClient::new(sim.metas(), opts)
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after 15 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(15), check).await;
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until duplication `dupid` of `table` is in DS_LOG and every primary's duplicator
/// ships (each learns DS_LOG at its own server's next duplication sync).
pub async fn shipping_everywhere(meta: &MetaClient, table: &str, dupid: i32) {
    shipping_is(meta, table, dupid, true).await;
}

/// Waits until every primary's duplicator of `dupid` ships (`true`) or is known not to.
pub async fn shipping_is(meta: &MetaClient, table: &str, dupid: i32, shipping: bool) {
    use migrator::probe::progress;
    let replica = migrator::pegasus::replica::ReplicaClient::new(Duration::from_secs(2));
    let what = format!("every primary's duplicator shipping: {shipping}");
    eventually(&what, || async {
        let Ok(prim) = migrator::probe::Primaries::read(meta, table).await else {
            return false;
        };
        let parts = progress::read(&replica, &prim, Some(dupid), Duration::from_secs(1)).await;
        parts.iter().all(|p| {
            p.value()
                .and_then(|p| p.counters)
                .is_some_and(|c| c.duplicating == shipping)
        })
    })
    .await;
}

/// A ZooKeeper for one test: the shared one from `MIGRATOR_TEST_ZK` (scripts/test.sh sets it),
/// else a private real server that lives as long as this value.
pub struct TestZk {
    pub addr: String,
    _server: Option<(migrator::sim::zk_server::ZkServer, tempfile::TempDir)>,
}

impl TestZk {
    /// Finds or starts ZooKeeper; fails (never skips) when it is not installed.
    pub async fn get() -> TestZk {
        if let Ok(addr) = std::env::var("MIGRATOR_TEST_ZK") {
            return TestZk {
                addr,
                _server: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let server =
            tokio::task::spawn_blocking(move || migrator::sim::zk_server::ZkServer::start(&path))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}"));
        TestZk {
            addr: server.addr().to_string(),
            _server: Some((server, dir)),
        }
    }

    /// A session with this server.
    pub async fn connect(&self) -> migrator::routing::zk::Zk {
        migrator::routing::zk::Zk::connect(std::slice::from_ref(&self.addr), Duration::from_secs(5))
            .await
            .unwrap()
    }
}

/// A ZooKeeper path no other test or run uses.
pub fn unique_root(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/migrator-test/{test}-{nanos}")
}
