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
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
