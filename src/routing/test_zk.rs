//! Owns the ZooKeeper the unit tests of ZooKeeper I/O run against: the shared real server of
//! `scripts/test.sh` (`MIGRATOR_TEST_ZK`), else a private one, and paths no other test uses.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use crate::routing::zk::Zk;
use crate::sim::zk_server::ZkServer;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A ZooKeeper for one test: the shared one from `MIGRATOR_TEST_ZK` (scripts/test.sh sets
/// it), else a private server that lives as long as this value.
pub struct TestZk {
    addr: String,
    _server: Option<(ZkServer, tempfile::TempDir)>,
}

impl TestZk {
    pub fn get() -> TestZk {
        if let Ok(addr) = std::env::var("MIGRATOR_TEST_ZK") {
            return TestZk {
                addr,
                _server: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let server = ZkServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        TestZk {
            addr: server.addr().to_string(),
            _server: Some((server, dir)),
        }
    }

    pub async fn connect(&self) -> Zk {
        Zk::connect(std::slice::from_ref(&self.addr), TIMEOUT)
            .await
            .unwrap()
    }
}

/// A path no other test (or earlier run against a shared server) uses.
pub fn unique(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/migrator-test/{test}-{}-{nanos}-{n}", std::process::id())
}
